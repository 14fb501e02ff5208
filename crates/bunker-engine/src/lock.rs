//! Locks: session locks announce writers to prune; the exclusive lock keeps
//! two prunes (or repairs) apart. Backups never wait for anything.
//!
//! A lock names its holder (host, pid, command) and is refreshed every
//! [`REFRESH_INTERVAL`] by a background thread. It expires when its holder
//! dies: at once when the holder ran on this host and its process is gone,
//! otherwise when it has not been refreshed for [`STALE_AFTER`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bunker_backend::{Backend, ErrorKind, FileKind};
use bunker_format::crypto::{fill_random, RepoKeys};
use bunker_format::id::LockId;
use bunker_format::lock::{Lock, LockKind};
use bunker_format::object::{open_object, seal_object, ObjectKind};
use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

use crate::identity::{hostname, now_ns};
use crate::repository::Repository;
use crate::{EngineError, Result};

/// How often a holder proves it is alive.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// A lock from another host not refreshed for this long belongs to a dead holder.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// Reads and writes lock files; cheap to clone into the refresher thread.
#[derive(Clone)]
pub struct LockStore {
    backend: Arc<dyn Backend>,
    keys: RepoKeys,
}

impl LockStore {
    /// The lock files of a repository.
    pub fn new<S>(repo: &Repository<S>) -> Self {
        LockStore {
            backend: repo.backend().clone(),
            keys: repo.keys().clone(),
        }
    }

    fn write(&self, id: &LockId, lock: &Lock) -> Result<()> {
        let stored = seal_object(&self.keys, ObjectKind::Lock, &lock.encode(), 0);
        Ok(self.backend.write(FileKind::Lock, &id.to_hex(), &stored)?)
    }

    /// Reads one lock; `None` if it is gone.
    pub fn read(&self, id: &LockId) -> Result<Option<Lock>> {
        let max = crate::repository::max_file_len(FileKind::Lock);
        let stored = match self.backend.read_at_most(FileKind::Lock, &id.to_hex(), max) {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let label = format!("locks/{id}");
        let plain = open_object(&self.keys, ObjectKind::Lock, &stored)
            .map_err(|e| EngineError::corrupt(&label, e))?;
        Lock::decode(&plain)
            .map(Some)
            .map_err(|e| EngineError::corrupt(label, e))
    }

    /// Every lock present. A lock that cannot be read (not ours, or damaged)
    /// is returned as `None`: callers treat it as held by someone unknown.
    pub fn list(&self) -> Result<Vec<(LockId, Option<Lock>)>> {
        let mut out = Vec::new();
        for name in self.backend.list_names(FileKind::Lock)? {
            let Ok(id) = name.parse::<LockId>() else {
                continue;
            };
            match self.read(&id) {
                Ok(Some(lock)) => out.push((id, Some(lock))),
                Ok(None) => {}
                Err(_) => out.push((id, None)),
            }
        }
        Ok(out)
    }

    /// Removes a lock file.
    pub fn remove(&self, id: &LockId) -> Result<()> {
        Ok(self.backend.remove(FileKind::Lock, &id.to_hex())?)
    }

    /// Ids of the session locks whose holders may be alive (an unreadable
    /// lock counts as alive). With `remove_stale`, the locks of dead holders
    /// are removed, which tells such a holder, should it wake up, that it
    /// must not commit.
    pub fn live_sessions(&self, remove_stale: bool) -> Result<Vec<LockId>> {
        let mut live = Vec::new();
        for (id, lock) in self.list()? {
            match lock {
                Some(l) if l.kind == LockKind::Exclusive => {}
                Some(l) if is_stale(&l) => {
                    if remove_stale {
                        self.remove(&id)?;
                    }
                }
                _ => live.push(id),
            }
        }
        Ok(live)
    }
}

/// True when the lock's holder is known to be dead.
pub fn is_stale(lock: &Lock) -> bool {
    if lock.hostname == hostname() && !process_alive(lock.pid) {
        return true;
    }
    let age = now_ns().saturating_sub(lock.refreshed_ns);
    age > STALE_AFTER.as_nanos() as i64
}

/// True if a process with this id runs on this host.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Who holds a lock, for messages.
pub fn describe(lock: &Lock) -> String {
    let when = chrono::DateTime::from_timestamp_nanos(lock.created_ns)
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S");
    format!(
        "{} (pid {} on {}, since {when})",
        lock.command, lock.pid, lock.hostname
    )
}

/// A held lock: refreshed in the background, removed on drop.
pub struct LockGuard {
    store: LockStore,
    id: LockId,
    lost: Arc<AtomicBool>,
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

impl LockGuard {
    /// Fails if the lock was removed by someone who judged its holder dead:
    /// a session must not commit a snapshot after prune stopped waiting for it.
    pub fn confirm(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) || self.store.read(&self.id)?.is_none() {
            return Err(EngineError::LockLost(self.id.short()));
        }
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let _ = self.store.remove(&self.id);
    }
}

/// Takes a session lock: never waits, never fails because of other locks.
pub fn session<S>(repo: &Repository<S>, command: &str) -> Result<LockGuard> {
    take(LockStore::new(repo), LockKind::Session, command)
}

/// Takes the exclusive lock, or fails with [`EngineError::Locked`] naming
/// the live holder. Locks of dead holders are removed on the way.
pub fn exclusive<S>(repo: &Repository<S>, command: &str) -> Result<LockGuard> {
    let store = LockStore::new(repo);
    check_exclusive_free(&store, None)?;
    let guard = take(store.clone(), LockKind::Exclusive, command)?;
    // Two processes may have passed the first check at once: look again now
    // that ours is visible; if both see each other, both back off.
    check_exclusive_free(&store, Some(guard.id))?;
    Ok(guard)
}

fn check_exclusive_free(store: &LockStore, ours: Option<LockId>) -> Result<()> {
    for (id, lock) in store.list()? {
        if Some(id) == ours {
            continue;
        }
        match lock {
            Some(l) if l.kind == LockKind::Session => {}
            Some(l) if is_stale(&l) => store.remove(&id)?,
            Some(l) => return Err(EngineError::Locked(describe(&l))),
            None => {
                return Err(EngineError::Locked(format!(
                    "an unreadable lock locks/{id}; remove it if no other bunker is running"
                )))
            }
        }
    }
    Ok(())
}

fn take(store: LockStore, kind: LockKind, command: &str) -> Result<LockGuard> {
    let mut raw = [0u8; 32];
    fill_random(&mut raw);
    let id = LockId(raw);
    let now = now_ns();
    let mut lock = Lock {
        kind,
        hostname: hostname(),
        pid: std::process::id(),
        created_ns: now,
        refreshed_ns: now,
        command: command.to_string(),
    };
    store.write(&id, &lock)?;
    let lost = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = bounded::<()>(0);
    let refresher = {
        let store = store.clone();
        let lost = lost.clone();
        std::thread::Builder::new()
            .name("bunker-lock".into())
            .spawn(move || loop {
                match stopped.recv_timeout(REFRESH_INTERVAL) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                // Never resurrect a lock someone removed: they judged us
                // dead and may have acted on it.
                match store.read(&id) {
                    Ok(Some(_)) => {
                        lock.refreshed_ns = now_ns();
                        let _ = store.write(&id, &lock);
                    }
                    Ok(None) => lost.store(true, Ordering::SeqCst),
                    Err(_) => {}
                }
            })
            .map_err(|e| EngineError::io("lock refresher thread", e))?
    };
    Ok(LockGuard {
        store,
        id,
        lost,
        stop: Some(stop),
        refresher: Some(refresher),
    })
}

//! Locks: session locks announce writers to prune; the exclusive lock keeps
//! two prunes (or repairs) apart. Backups never wait for anything.
//!
//! A lock names its holder (host, pid, command) and is refreshed every
//! [`REFRESH_INTERVAL`] by a background thread. It expires when its holder
//! dies: at once when the holder ran on this host and its process is gone,
//! otherwise when this client has seen its bytes stay the same for
//! [`STALE_AFTER`] by its own clock (each refresh rewrites them). No clock of
//! another host is ever compared with this one's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bunker_backend::{Backend, ErrorKind, FileKind};
use bunker_format::crypto::{fill_random, RepoKeys};
use bunker_format::id::{storage_hash, LockId};
use bunker_format::lock::{Lock, LockKind};
use bunker_format::lock_watch::Seen;
use bunker_format::object::{open_object, seal_object, ObjectKind};
use crossbeam_channel::{bounded, RecvTimeoutError, Sender};

use crate::cache::Cache;
use crate::identity::{hostname, now_ns};
use crate::notices::Notices;
use crate::repository::Repository;
use crate::{EngineError, Result};

/// How often a holder proves it is alive.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The command of a lock whose holder finished but could not delete it.
pub const RELEASED: &str = "released";
/// A lock seen unchanged for this long (six missed refreshes) belongs to a dead holder.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// Reads and writes lock files; cheap to clone into the refresher thread.
#[derive(Clone)]
pub struct LockStore {
    backend: Arc<dyn Backend>,
    keys: RepoKeys,
    notices: Arc<Notices>,
    /// What this client has seen of each lock (kept in the local cache, so
    /// that observations span runs).
    watch: Arc<Mutex<Watch>>,
}

/// Locks as this client has seen them.
struct Watch {
    cache: Option<Arc<Cache>>,
    seen: HashMap<LockId, Seen>,
}

/// A lock present now, and whether its holder is known to be dead.
pub struct Judged {
    /// The lock's id.
    pub id: LockId,
    /// Its content, or `None` if it cannot be read (held by someone unknown).
    pub lock: Option<Lock>,
    /// Its holder is dead.
    pub stale: bool,
}

impl LockStore {
    /// The lock files of a repository.
    pub fn new<S>(repo: &Repository<S>) -> Self {
        let cache = repo.cache().cloned();
        let seen = cache
            .as_ref()
            .map(|c| c.lock_watch(repo.keys()))
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        LockStore {
            backend: repo.backend().clone(),
            keys: repo.keys().clone(),
            notices: repo.shared_notices(),
            watch: Arc::new(Mutex::new(Watch { cache, seen })),
        }
    }

    fn write(&self, id: &LockId, lock: &Lock) -> Result<()> {
        let name = id.to_hex();
        let stored = seal_object(
            &self.keys,
            ObjectKind::Lock,
            name.as_bytes(),
            &lock.encode(),
            0,
        );
        Ok(self.backend.write(FileKind::Lock, &id.to_hex(), &stored)?)
    }

    /// Reads one lock; `None` if it is gone.
    pub fn read(&self, id: &LockId) -> Result<Option<Lock>> {
        Ok(self.read_stored(id)?.map(|(lock, _)| lock))
    }

    /// Reads one lock with the digest of its stored bytes; `None` if it is gone.
    fn read_stored(&self, id: &LockId) -> Result<Option<(Lock, [u8; 32])>> {
        let max = crate::repository::max_file_len(FileKind::Lock);
        let stored = match self.backend.read_at_most(FileKind::Lock, &id.to_hex(), max) {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let label = format!("locks/{id}");
        let plain = open_object(
            &self.keys,
            ObjectKind::Lock,
            id.to_hex().as_bytes(),
            &stored,
        )
        .map_err(|e| EngineError::corrupt(&label, e))?;
        let lock = Lock::decode(&plain).map_err(|e| EngineError::corrupt(label, e))?;
        Ok(Some((lock, storage_hash(&stored))))
    }

    /// Every lock present, judged. A lock that cannot be read (not ours, or
    /// damaged) is held by someone unknown, never stale.
    pub fn list(&self) -> Result<Vec<Judged>> {
        let mut present = Vec::new();
        for name in self.backend.list_names(FileKind::Lock)? {
            let Ok(id) = name.parse::<LockId>() else {
                continue;
            };
            match self.read_stored(&id) {
                Ok(Some((lock, digest))) => present.push((id, Some(lock), digest)),
                Ok(None) => {}
                Err(_) => present.push((id, None, [0; 32])),
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut watch = self.watch.lock().expect("lock watch");
        let before = watch.seen.clone();
        watch
            .seen
            .retain(|id, _| present.iter().any(|(p, _, _)| p == id));
        let judged = present
            .into_iter()
            .map(|(id, lock, digest)| {
                let seen = watch.seen.entry(id).or_insert(Seen {
                    id,
                    digest,
                    since: now,
                });
                if seen.digest != digest {
                    *seen = Seen {
                        id,
                        digest,
                        since: now,
                    };
                }
                let unchanged = Duration::from_secs(now.saturating_sub(seen.since));
                let stale = lock.as_ref().is_some_and(|l| {
                    l.command == RELEASED
                        || (l.hostname == hostname() && !process_alive(l.pid))
                        || unchanged >= STALE_AFTER
                });
                Judged { id, lock, stale }
            })
            .collect();
        if watch.seen != before {
            if let Some(cache) = &watch.cache {
                let seen: Vec<Seen> = watch.seen.values().copied().collect();
                cache.store_lock_watch(&self.keys, &seen);
            }
        }
        Ok(judged)
    }

    /// Removes a lock file.
    pub fn remove(&self, id: &LockId) -> Result<()> {
        Ok(self.backend.remove(FileKind::Lock, &id.to_hex())?)
    }

    /// Removes a stale lock; one the storage refuses to delete (no delete
    /// rights) is left: stale, it stops no one.
    fn remove_stale(&self, id: &LockId) -> Result<()> {
        match self.remove(id) {
            Err(EngineError::Backend(e)) if e.kind == ErrorKind::PermissionDenied => Ok(()),
            other => other,
        }
    }

    /// Ids of the session locks whose holders may be alive (an unreadable
    /// lock counts as alive). With `remove_stale`, the locks of dead holders
    /// are removed, which tells such a holder, should it wake up, that it
    /// must not commit.
    pub fn live_sessions(&self, remove_stale: bool) -> Result<Vec<LockId>> {
        let mut live = Vec::new();
        for j in self.list()? {
            match j.lock {
                Some(l) if l.kind == LockKind::Exclusive => {}
                Some(_) if j.stale => {
                    if remove_stale {
                        self.remove_stale(&j.id)?;
                    }
                }
                _ => live.push(j.id),
            }
        }
        Ok(live)
    }
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
        // Existence is what matters (whoever judged us dead removed it): a
        // stat, not a download.
        if self.lost.load(Ordering::SeqCst)
            || !self
                .store
                .backend
                .exists(FileKind::Lock, &self.id.to_hex())?
        {
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
        // Storage that refuses deletes (append-only credentials) keeps the
        // lock: it is rewritten as released (where overwrites are allowed,
        // as on S3), so no one waits for it, not even a later run in this
        // process; a maintenance run clears it.
        if let Err(EngineError::Backend(e)) = self.store.remove(&self.id) {
            if e.kind == ErrorKind::PermissionDenied {
                if let Ok(Some(mut lock)) = self.store.read(&self.id) {
                    lock.command = RELEASED.to_string();
                    let _ = self.store.write(&self.id, &lock);
                }
                self.store.notices.add(
                    "the storage refused to delete this run's lock file (credentials without delete): it is left for a maintenance run with full credentials (`bunker prune`) to clear",
                );
            }
        }
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
    for j in store.list()? {
        let id = j.id;
        if Some(id) == ours {
            continue;
        }
        match j.lock {
            Some(l) if l.kind == LockKind::Session => {}
            Some(_) if j.stale => store.remove_stale(&id)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use bunker_backend::LocalBackend;
    use bunker_format::keyfile::KdfParams;

    /// A repository with a cache, and a lock of another host whose clock
    /// runs two hours behind this one's.
    fn skewed_lock() -> (tempfile::TempDir, Repository, LockId) {
        let tmp = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::open(&tmp.path().join("repo"), true).unwrap());
        let options = crate::InitOptions {
            kdf: KdfParams::MIN,
            ..Default::default()
        };
        let mut repo = Repository::init(backend, b"pw", options).unwrap();
        repo.use_cache(&tmp.path().join("cache"));
        let two_hours_ago = now_ns() - 2 * 3600 * 1_000_000_000;
        let lock = Lock {
            kind: LockKind::Session,
            hostname: "another-host".into(),
            pid: 1,
            created_ns: two_hours_ago,
            refreshed_ns: two_hours_ago,
            command: "backup".into(),
        };
        let id = LockId([7; 32]);
        LockStore::new(&repo).write(&id, &lock).unwrap();
        (tmp, repo, id)
    }

    #[test]
    fn another_hosts_clock_never_makes_a_lock_stale() {
        let (_tmp, repo, id) = skewed_lock();
        // First seen now: alive, whatever its own time says.
        assert_eq!(LockStore::new(&repo).live_sessions(true).unwrap(), vec![id]);
        // Seen unchanged for 31 minutes of this client's time: stale.
        let cache = repo.cache().unwrap();
        let mut seen = cache.lock_watch(repo.keys());
        assert_eq!(seen.len(), 1, "the observation is kept across runs");
        seen[0].since -= 31 * 60;
        cache.store_lock_watch(repo.keys(), &seen);
        assert!(LockStore::new(&repo)
            .live_sessions(true)
            .unwrap()
            .is_empty());
        assert!(
            LockStore::new(&repo).read(&id).unwrap().is_none(),
            "removed"
        );
    }

    #[test]
    fn a_refreshed_lock_is_seen_anew() {
        let (_tmp, repo, id) = skewed_lock();
        let store = LockStore::new(&repo);
        store.live_sessions(false).unwrap();
        let cache = repo.cache().unwrap();
        let mut seen = cache.lock_watch(repo.keys());
        seen[0].since -= 31 * 60;
        cache.store_lock_watch(repo.keys(), &seen);
        // The holder refreshes (new bytes): it is alive again.
        let lock = store.read(&id).unwrap().unwrap();
        store.write(&id, &lock).unwrap();
        assert_eq!(LockStore::new(&repo).live_sessions(true).unwrap(), vec![id]);
    }
}

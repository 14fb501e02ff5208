//! This client's memory of a repository, kept between runs on its own disk
//! (the user's state directory, one file per repository id): the snapshots
//! it has seen and what it knows was withdrawn (docs/FORMAT.md §12). Unlike
//! the cache it is not disposable: deleting it only makes the client forget
//! what it could have noticed.
//!
//! The file is sealed with the repository's key; one that fails to open is
//! told and started afresh. Updates hold an exclusive lock on a companion
//! file, so two commands of the same user do not lose each other's updates.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use bunker_format::client_state::ClientState;
use bunker_format::crypto::RepoKeys;
use bunker_format::object::{open_object, seal_object, ObjectKind};

use crate::notices::Notices;

/// The memory of one repository.
#[derive(Debug)]
pub struct ClientMemory {
    dir: PathBuf,
    repository: [u8; 32],
}

/// The state file inside the repository's directory.
const STATE: &str = "state";
/// The file locked while the state is updated.
const LOCK: &str = "state.lock";

impl ClientMemory {
    /// The memory of the repository with id `repository`, under `root`; its
    /// directory is created (readable only by its owner) if missing.
    pub fn open(root: &Path, repository: &[u8; 32]) -> std::io::Result<Self> {
        Ok(ClientMemory {
            dir: crate::cache::repository_dir(root, repository)?,
            repository: *repository,
        })
    }

    /// Where it lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state as stored; empty if there is none yet, or (told) if it
    /// cannot be opened.
    pub(crate) fn load(&self, keys: &RepoKeys, notices: &Notices) -> ClientState {
        let path = self.dir.join(STATE);
        let stored = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return ClientState::new(self.repository)
            }
            Err(e) => {
                notices.add(format!("cannot read {}: {e}", path.display()));
                return ClientState::new(self.repository);
            }
        };
        open_object(keys, ObjectKind::ClientState, b"", &stored)
            .and_then(|plain| ClientState::decode(&self.repository, &plain))
            .unwrap_or_else(|e| {
                notices.add(format!(
                    "{} cannot be read ({e}); this client starts remembering the repository afresh",
                    path.display()
                ));
                ClientState::new(self.repository)
            })
    }

    /// Loads the state, lets `change` update it, and stores it if it
    /// changed, all under the lock. A state that cannot be stored is told.
    pub(crate) fn update<R>(
        &self,
        keys: &RepoKeys,
        notices: &Notices,
        change: impl FnOnce(&mut ClientState) -> R,
    ) -> R {
        let lock = File::create(self.dir.join(LOCK)).and_then(|f| f.lock().map(|()| f));
        let mut state = self.load(keys, notices);
        let before = state.clone();
        let out = change(&mut state);
        if state != before {
            let stored = seal_object(keys, ObjectKind::ClientState, b"", &state.encode(), 3);
            if let Err(e) = self.replace(&stored) {
                notices.add(format!(
                    "cannot update {}: {e}",
                    self.dir.join(STATE).display()
                ));
            }
        }
        drop(lock);
        out
    }

    /// Writes the state whole and durably, then renames it into place.
    fn replace(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.dir.join(STATE)).map_err(|e| e.error)?;
        Ok(())
    }
}

//! Key files: reading them (damaged ones apart), adding, removing, re-keying.

use bunker_backend::{Backend, ErrorKind, FileKind};
use bunker_format::crypto::MasterKey;
use bunker_format::id::{storage_name, KeyId};
use bunker_format::keyfile::{KdfParams, KeyFile, KeyOrigin};
use bunker_format::FormatError;

use super::{parse_name, Repository};
use crate::identity::{hostname, username};
use crate::{EngineError, Result};

/// A key file as listed: readable, or damaged.
#[derive(Debug)]
pub struct KeyEntry {
    /// Its name (the hash of its bytes).
    pub name: String,
    /// The key file, or why it cannot be read.
    pub key: Result<KeyFile>,
}

/// Reads a key file and checks it against its name (the hash of its bytes),
/// so a damaged key file is reported as damage, not as a wrong password.
pub(super) fn read_key_file(backend: &dyn Backend, name: &str) -> Result<KeyFile> {
    let label = format!("keys/{name}");
    let bytes = backend.read_at_most(FileKind::Key, name, super::max_file_len(FileKind::Key))?;
    if storage_name(&bytes) != name {
        return Err(EngineError::corrupt(
            label,
            FormatError::IdMismatch(name.to_string()),
        ));
    }
    let kf = KeyFile::from_json(&bytes).map_err(|e| EngineError::corrupt(&label, e))?;
    // Parameters outside the bounds: refused before any key derivation.
    kf.kdf
        .params
        .validate()
        .map_err(|e| EngineError::corrupt(label, e))?;
    Ok(kf)
}

pub(super) fn write_key(
    backend: &dyn Backend,
    master: &MasterKey,
    password: &[u8],
    kdf: KdfParams,
    version: u32,
    append_only: bool,
) -> Result<String> {
    let kf = KeyFile::create(
        master,
        password,
        kdf,
        KeyOrigin {
            created: chrono::Utc::now().to_rfc3339(),
            hostname: hostname(),
            username: username(),
        },
        bunker_format::object::layout_version(version as u8) as u32,
        append_only,
    )
    .map_err(|e| EngineError::Invalid(e.to_string()))?;
    let bytes = kf.to_json();
    let name = storage_name(&bytes);
    backend.write(FileKind::Key, &name, &bytes)?;
    Ok(name)
}

impl<S> Repository<S> {
    /// Every key file, readable or damaged.
    pub fn key_files(&self) -> Result<Vec<KeyEntry>> {
        let mut out = Vec::new();
        for name in self.backend.list_names(FileKind::Key)? {
            if parse_name::<KeyId>(&self.notices, FileKind::Key, &name).is_none() {
                continue;
            }
            let key = read_key_file(&*self.backend, &name);
            if let Err(EngineError::Backend(e)) = &key {
                if e.kind != ErrorKind::NotFound {
                    return Err(key.unwrap_err());
                }
                continue;
            }
            out.push(KeyEntry { name, key });
        }
        Ok(out)
    }

    /// Adds a key file wrapping the same master key under a new password;
    /// an `append_only` key lets its holder back up, list and restore only.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams, append_only: bool) -> Result<String> {
        self.require_full_key("add a key")?;
        write_key(
            &*self.backend,
            &self.master,
            password,
            kdf,
            self.config.version,
            append_only,
        )
    }

    /// True when the key in use is append-only.
    pub fn append_only(&self) -> bool {
        self.append_only
    }

    /// Refuses `what` when the key in use is append-only (a client-side
    /// policy, docs/FORMAT.md §2).
    pub fn require_full_key(&self, what: &str) -> Result<()> {
        match self.append_only {
            true => Err(EngineError::AppendOnly(what.to_string())),
            false => Ok(()),
        }
    }

    /// Removes a key file (damaged or not) for good: a tombstone names it
    /// first, so the file opens nothing if storage brings it back. The key
    /// in use cannot be removed.
    pub fn remove_key(&self, name: &str) -> Result<()> {
        self.require_full_key("remove a key")?;
        if name == self.key_name {
            return Err(EngineError::Invalid(
                "refusing to remove the key in use; open with another key first".into(),
            ));
        }
        let names: Vec<String> = self
            .backend
            .list(FileKind::Key)?
            .into_iter()
            .map(|f| f.name)
            .collect();
        if !names.iter().any(|n| n == name) {
            return Err(EngineError::Invalid(format!("no key {name}")));
        }
        self.withdraw_key(name)
    }

    /// Replaces the key in use by one under a new password: the new key file
    /// is written and proved to open the repository before the old one is
    /// removed. Returns the new key's name.
    pub fn change_password(&mut self, password: &[u8], kdf: KdfParams) -> Result<String> {
        let name = self.add_key(password, kdf, false)?;
        let opened = read_key_file(&*self.backend, &name).and_then(|kf| {
            kf.open(password)
                .map_err(|e| EngineError::corrupt(format!("keys/{name}"), e))
        });
        match opened {
            Ok(master) if master.as_bytes() == self.master.as_bytes() => {}
            other => {
                let _ = self.backend.remove(FileKind::Key, &name);
                return Err(match other {
                    Err(e) => e,
                    Ok(_) => EngineError::Internal("the new key file wraps another key".into()),
                });
            }
        }
        let old = std::mem::replace(&mut self.key_name, name.clone());
        self.withdraw_key(&old)?;
        Ok(name)
    }
}

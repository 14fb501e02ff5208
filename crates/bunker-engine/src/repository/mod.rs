//! Opening, creating and reading a repository.
//!
//! A [`Repository<Open>`] knows its keys and config; only a
//! [`Repository<Indexed>`], which has loaded every index file, can be asked
//! for blobs. The states are types so the compiler enforces the order.

mod index_load;
mod keys;
mod packs;
mod readahead;
mod records;
mod runs;
mod snapshots;
mod tombstones;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bunker_backend::{Backend, ErrorKind, FileKind};
use bunker_format::chunker::{Chunker, ChunkerParams};
use bunker_format::config::{ObjectLockPolicy, RepoConfig};
use bunker_format::crypto::{fill_random, ContentKeys, MasterKey, RepoKeys};
use bunker_format::directory::PieceCutter;
use bunker_format::id::{storage_hash, storage_name, KeyId, TombstoneId};
use bunker_format::keyfile::KdfParams;
use bunker_format::object::{open_object, seal_object, sealing_version, ObjectKind};
use bunker_format::tombstone::Tombstone;
use bunker_format::FormatError;

use crate::cache::Cache;
use crate::cancel::Cancel;
use crate::index::MasterIndex;
use crate::memory::ClientMemory;
use crate::notices::Notices;
use crate::{EngineError, Result};
use keys::{read_key_file, write_key};

pub use index_load::IndexLoad;
pub use keys::KeyEntry;
pub use packs::PackRead;
pub use records::RecordList;
pub use runs::RunList;
pub use snapshots::{missing_snapshot, SnapshotEntry, SnapshotList, UnreadableSnapshot};
pub use tombstones::Withdrawn;

/// State: keys and config loaded, index not loaded.
pub struct Open;

/// State: every index file loaded.
pub struct Indexed {
    index: Arc<MasterIndex>,
    /// Stretches of packs read ahead (remote repositories).
    readahead: Arc<readahead::Readahead>,
}

/// An open repository in state `S`.
pub struct Repository<S = Open> {
    backend: Arc<dyn Backend>,
    keys: RepoKeys,
    master: MasterKey,
    config: RepoConfig,
    chunker: Chunker,
    key_name: String,
    /// The key in use refuses deletions and rewrites (docs/FORMAT.md §2).
    append_only: bool,
    notices: Arc<Notices>,
    cache: Option<Arc<Cache>>,
    /// Read index files and packs from storage even where the cache has
    /// them (`check`: damage at rest must show).
    storage_only: bool,
    memory: Option<Arc<ClientMemory>>,
    tombstones: Arc<Mutex<HashMap<TombstoneId, Tombstone>>>,
    /// Stops the operations run on this handle (and on those made from it).
    cancel: Cancel,
    state: S,
}

/// Settings for a new repository; `None` takes the format's default.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Cost of the first key's password derivation.
    pub kdf: KdfParams,
    /// Pack target size in bytes (1 MiB..1 GiB).
    pub pack_size: Option<u32>,
    /// zstd level for new data (-7..22).
    pub compression_level: Option<i32>,
    /// Keep Reed–Solomon parity for every pack.
    pub parity: bool,
    /// Format version (default: the newest).
    pub version: Option<u32>,
    /// Chunk size bounds and content keys of another repository, so that
    /// the new one chunks and names blobs as it does (version 3 on).
    pub content_from: Option<(ChunkerParams, ContentKeys)>,
    /// Keep every file (locks apart) under S3 Object Lock for this long.
    pub object_lock: Option<ObjectLockPolicy>,
}

impl InitOptions {
    /// The config these options give (with a zero id), or why they are invalid.
    pub fn config(&self) -> Result<RepoConfig> {
        let mut config = RepoConfig::new([0u8; 32], chrono::Utc::now().timestamp());
        config.pack_size = self.pack_size.unwrap_or(config.pack_size);
        config.compression_level = self.compression_level.unwrap_or(config.compression_level);
        config.parity = self.parity;
        config.set_version(self.version.unwrap_or(config.version));
        if let Some((params, keys)) = &self.content_from {
            if config.version < 3 {
                return Err(EngineError::Invalid(
                    "content keys can be shared only by a repository of format version 3 or later"
                        .into(),
                ));
            }
            config.chunker = *params;
            config.content_keys = Some(keys.clone());
        }
        config
            .validate()
            .map_err(|e| EngineError::Invalid(format!("cannot create the repository: {e}")))?;
        Ok(config)
    }
}

/// The name of a stored file as an id, or `None` for a stray file (a
/// `.DS_Store`, an editor's backup), which is told once and otherwise ignored.
fn parse_name<T: std::str::FromStr>(notices: &Notices, kind: FileKind, name: &str) -> Option<T> {
    let parsed = name.parse().ok();
    if parsed.is_none() {
        notices.add(format!(
            "ignored {}/{}: not a file bunker writes",
            kind.dir(),
            name.escape_debug()
        ));
    }
    parsed
}

/// Why the config file is missing: an empty place, or a damaged repository.
fn missing_config(backend: &dyn Backend) -> EngineError {
    let holds = |kind| backend.list(kind).map(|l| !l.is_empty()).unwrap_or(false);
    let parts: Vec<&str> = [
        (FileKind::Key, "key files"),
        (FileKind::Snapshot, "snapshots"),
        (FileKind::Index, "index files"),
    ]
    .into_iter()
    .filter(|(kind, _)| holds(*kind))
    .map(|(_, what)| what)
    .collect();
    if parts.is_empty() {
        // Say why nothing is here when the storage itself is the reason (a
        // missing bucket, refused credentials).
        return match backend.probe() {
            Err(e) if e.kind == ErrorKind::NotFound => {
                EngineError::not_found(backend.location(), e.message)
            }
            Err(e) => e.into(),
            Ok(()) => EngineError::not_found(backend.location(), "no bunker repository here"),
        };
    }
    EngineError::RepositoryDamaged {
        location: backend.location(),
        detail: format!(
            "its config file is missing, though it holds {}; restore `config` from a copy of the repository (`bunker init` will not overwrite this)",
            parts.join(" and ")
        ),
    }
}

/// Key files tried when opening, at most.
const MAX_KEY_TRIES: usize = 32;

/// The most bytes a stored file of a kind may have; a longer one is refused
/// unread, so a planted file cannot exhaust memory. Packs and parity files
/// are bounded by their indexed length instead.
pub(crate) fn max_file_len(kind: FileKind) -> u64 {
    match kind {
        FileKind::Config | FileKind::Key | FileKind::Lock => 1 << 20,
        FileKind::Snapshot | FileKind::Condemned | FileKind::Tombstone => 256 << 20,
        FileKind::Run => 1 << 20,
        FileKind::Index => 1 << 30,
        FileKind::Pack | FileKind::Parity => 4 << 30,
    }
}

/// The first characters of a stored name, for messages.
pub fn short_name(name: &str) -> &str {
    name.get(..8).unwrap_or(name)
}

/// The storage's retention mode for a policy.
fn retention_mode(policy: ObjectLockPolicy) -> bunker_backend::RetentionMode {
    match policy.compliance {
        true => bunker_backend::RetentionMode::Compliance,
        false => bunker_backend::RetentionMode::Governance,
    }
}

impl Repository<Open> {
    /// Creates a repository: directories, first key, then config (written
    /// last, so a repository exists only once it is complete).
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], options: InitOptions) -> Result<Self> {
        let mut config = options.config()?;
        if backend.exists(FileKind::Config, "")? {
            return Err(EngineError::RepositoryExists(backend.location()));
        }
        if let EngineError::RepositoryDamaged { location, detail } = missing_config(&*backend) {
            return Err(EngineError::RepositoryDamaged {
                location,
                detail: format!("{detail}; refusing to create a repository over it"),
            });
        }
        if let Some(policy) = options.object_lock {
            if !backend.object_lock_enabled()? {
                return Err(EngineError::Invalid(format!(
                    "--object-lock: {} has no Object Lock; create the bucket with Object Lock enabled (it cannot be turned on later for a bucket without versioning)",
                    backend.location()
                )));
            }
            backend.retain_writes(retention_mode(policy), policy.days)?;
            config.object_lock = Some(policy);
        }
        backend.create()?;
        let master = MasterKey::generate();
        let key_name = write_key(
            &*backend,
            &master,
            password,
            options.kdf,
            config.version,
            false,
        )?;
        fill_random(&mut config.id);
        let keys = master
            .derive()
            .bound(sealing_version(config.version), config.id);
        let stored = seal_object(
            &keys,
            ObjectKind::Config,
            b"",
            &config.encode(),
            config.compression_level,
        );
        // Create-if-absent: of two inits racing into one place, one wins and
        // the other fails here, leaving the winner's repository intact.
        match backend.write_new(FileKind::Config, "", &stored) {
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                let _ = backend.remove(FileKind::Key, &key_name);
                return Err(EngineError::RepositoryExists(backend.location()));
            }
            other => other?,
        }
        Ok(Self::assemble(
            backend,
            master,
            config,
            key_name,
            Arc::default(),
        ))
    }

    /// Opens a repository with a password, trying each key file. A damaged
    /// key file is skipped (and told); a password that opens none of the
    /// readable ones is [`EngineError::WrongPassword`].
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        let config_bytes =
            match backend.read_at_most(FileKind::Config, "", max_file_len(FileKind::Config)) {
                Ok(b) => b,
                Err(e) if e.kind == ErrorKind::NotFound => return Err(missing_config(&*backend)),
                Err(e) => return Err(e.into()),
            };
        let notices = Arc::new(Notices::default());
        let mut damaged = Vec::new();
        let mut candidates = Vec::new();
        for name in backend.list_names(FileKind::Key)? {
            if parse_name::<KeyId>(&notices, FileKind::Key, &name).is_none() {
                continue;
            }
            match read_key_file(&*backend, &name) {
                Ok(kf) => candidates.push((name, kf)),
                Err(e @ EngineError::Corrupt { .. }) => damaged.push((name, e)),
                Err(e) => return Err(e),
            }
        }
        // The cheapest first, and a bounded number: key files planted with
        // costly parameters cannot make opening slow.
        candidates.sort_by_key(|(name, kf)| (kf.kdf.params.cost(), name.clone()));
        if candidates.len() > MAX_KEY_TRIES {
            notices.add(format!(
                "{} key files: only the {MAX_KEY_TRIES} cheapest to try were tried",
                candidates.len()
            ));
            candidates.truncate(MAX_KEY_TRIES);
        }
        let mut wrong_password = false;
        let mut revoked = None;
        for (name, kf) in candidates {
            let master = match kf.open(password) {
                Ok(master) => master,
                Err(FormatError::WrongPassword) => {
                    wrong_password = true;
                    continue;
                }
                Err(e) => {
                    damaged.push((
                        name.clone(),
                        EngineError::corrupt(format!("keys/{name}"), e),
                    ));
                    continue;
                }
            };
            let keys = master.derive();
            let plain = open_object(&keys, ObjectKind::Config, b"", &config_bytes)
                .map_err(|e| EngineError::corrupt("config", e))?;
            let config =
                RepoConfig::decode(&plain).map_err(|e| EngineError::corrupt("config", e))?;
            if let Some(policy) = config.object_lock {
                // A copy of the repository on storage without Object Lock
                // still opens; what it writes is simply not retained.
                if let Err(e) = backend.retain_writes(retention_mode(policy), policy.days) {
                    notices.add(format!(
                        "this repository keeps its files under Object Lock, which {} cannot: {e}",
                        backend.location()
                    ));
                }
            }
            let mut repo = Self::assemble(backend.clone(), master, config, name, notices.clone());
            repo.append_only = kf.append_only;
            // A removed key file that came back opens nothing.
            if repo.is_revoked(&repo.withdrawn()?) {
                revoked.get_or_insert(repo.key_name);
                continue;
            }
            for (name, e) in &damaged {
                notices.add(format!(
                    "{e}; `bunker key remove {}` removes the damaged key file",
                    short_name(name)
                ));
            }
            return Ok(repo);
        }
        if let Some(key) = revoked {
            return Err(EngineError::KeyRevoked {
                location: backend.location(),
                key: short_name(&key).to_string(),
            });
        }
        if wrong_password {
            return Err(EngineError::WrongPassword(backend.location()));
        }
        let detail = match damaged.into_iter().next() {
            Some((_, e)) => format!(
                "no key file can be read ({e}); restore keys/ from a copy of the repository"
            ),
            None => "it has no key files (keys/ is missing or empty), so no password can open it; restore keys/ from a copy of the repository".to_string(),
        };
        Err(EngineError::RepositoryDamaged {
            location: backend.location(),
            detail,
        })
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        master: MasterKey,
        config: RepoConfig,
        key_name: String,
        notices: Arc<Notices>,
    ) -> Self {
        // Every object of the repository is bound to its version and id.
        let mut keys = master.derive();
        if let Some(content) = &config.content_keys {
            keys = keys.with_content(content);
        }
        let keys = keys.bound(sealing_version(config.version), config.id);
        let chunker = Chunker::new(config.chunker, keys.chunker_key());
        Repository {
            backend,
            keys,
            master,
            config,
            chunker,
            key_name,
            append_only: false,
            notices,
            cache: None,
            storage_only: false,
            memory: None,
            tombstones: Arc::default(),
            cancel: Cancel::default(),
            state: Open,
        }
    }
}

impl<S> Repository<S> {
    /// The same repository in another state.
    fn with_state<T>(self, state: T) -> Repository<T> {
        let Repository {
            backend,
            keys,
            master,
            config,
            chunker,
            key_name,
            append_only,
            notices,
            cache,
            storage_only,
            memory,
            tombstones,
            cancel,
            ..
        } = self;
        Repository {
            backend,
            keys,
            master,
            config,
            chunker,
            key_name,
            append_only,
            notices,
            cache,
            storage_only,
            memory,
            tombstones,
            cancel,
            state,
        }
    }

    /// The notices of this handle, for parts that outlive a borrow of it.
    pub(crate) fn shared_notices(&self) -> Arc<Notices> {
        self.notices.clone()
    }

    /// A second handle on the same repository, without its index.
    pub fn reopened(&self) -> Repository<Open> {
        Repository {
            backend: self.backend.clone(),
            keys: self.keys.clone(),
            master: self.master.clone(),
            config: self.config.clone(),
            chunker: self.chunker.clone(),
            key_name: self.key_name.clone(),
            append_only: self.append_only,
            notices: self.notices.clone(),
            cache: self.cache.clone(),
            storage_only: self.storage_only,
            memory: self.memory.clone(),
            tombstones: self.tombstones.clone(),
            cancel: self.cancel.clone(),
            state: Open,
        }
    }

    /// Makes `cancel` stop the operations run on this handle.
    pub fn set_cancel(&mut self, cancel: Cancel) {
        self.cancel = cancel;
    }

    /// The token that stops the operations run on this handle.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Keeps a local cache of what is read (see [`Cache`]) under `root`, in
    /// a directory of this repository's own. A cache that cannot be created
    /// is told and not used.
    pub fn use_cache(&mut self, root: &std::path::Path) {
        match Cache::open(root, &self.config.id) {
            Ok(cache) => self.cache = Some(Arc::new(cache)),
            Err(e) => self.notices.add(format!(
                "cannot use the cache in {}: {e}; going on without it",
                root.display()
            )),
        }
    }

    /// Remembers what this client sees of the repository under `root`, in a
    /// directory of this repository's own, so that snapshots that storage
    /// loses, hides or brings back are noticed (see [`ClientMemory`]). A
    /// memory that cannot be created is told and not used; a key file this
    /// client knows was removed is refused ([`EngineError::KeyRevoked`]).
    pub fn use_memory(&mut self, root: &std::path::Path) -> Result<()> {
        let memory = match ClientMemory::open(root, &self.config.id) {
            Ok(m) => m,
            Err(e) => {
                self.notices.add(format!(
                    "cannot keep this client's memory of the repository in {}: {e}; going on without it",
                    root.display()
                ));
                return Ok(());
            }
        };
        let state = memory.load(&self.keys, &self.notices);
        let key: Option<KeyId> = self.key_name.parse().ok();
        if key.is_some_and(|k| state.revoked.contains(&k)) {
            return Err(EngineError::KeyRevoked {
                location: self.backend.location(),
                key: short_name(&self.key_name).to_string(),
            });
        }
        self.memory = Some(Arc::new(memory));
        // The tombstones read while opening.
        let read: Vec<Tombstone> = self
            .tombstones
            .lock()
            .expect("tombstones")
            .values()
            .cloned()
            .collect();
        self.learn(&read);
        Ok(())
    }

    /// True if the key that opened this handle was removed.
    fn is_revoked(&self, withdrawn: &Withdrawn) -> bool {
        self.key_name
            .parse::<KeyId>()
            .is_ok_and(|k| withdrawn.keys.contains(&k))
    }

    /// The local cache, when one is in use.
    pub(crate) fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    /// The cache of stored files (index files, packs of trees): kept for
    /// remote repositories only, and never used by `check`.
    pub(crate) fn stored_file_cache(&self) -> Option<&Cache> {
        match self.storage_only || !self.backend.capabilities().remote {
            true => None,
            false => self.cache.as_deref(),
        }
    }

    /// Reads index files and packs from storage, never from the cache.
    pub fn read_from_storage_only(&mut self) {
        self.storage_only = true;
    }

    /// Problems met and gone past (damaged snapshot or key files, unreadable
    /// index files, stray files), each told once.
    pub fn notices(&self) -> &Notices {
        &self.notices
    }

    /// The storage.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Working keys.
    pub fn keys(&self) -> &RepoKeys {
        &self.keys
    }

    /// The config.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The keyed chunker.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// How this repository cuts directories into tree blobs: into pieces
    /// from format version 4 on, as one blob before (docs/FORMAT.md §8.1).
    pub fn piece_cutter(&self) -> Option<PieceCutter> {
        self.config
            .cuts_directories()
            .then(|| PieceCutter::new(&self.keys))
    }

    /// Name of the key file that opened the repository.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// Reads and decrypts one whole-file object named by the hash of its bytes.
    fn read_object(&self, kind: FileKind, object: ObjectKind, name: &str) -> Result<Vec<u8>> {
        Ok(self.fetch_object(kind, object, name)?.1)
    }

    /// Reads one whole-file object from storage, checks it against its name
    /// and decrypts it: the stored bytes and the plaintext.
    fn fetch_object(
        &self,
        kind: FileKind,
        object: ObjectKind,
        name: &str,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let stored = self.backend.read_at_most(kind, name, max_file_len(kind))?;
        let label = format!("{}/{}", kind.dir(), name);
        if storage_name(&stored) != name {
            return Err(EngineError::corrupt(
                label,
                FormatError::IdMismatch(name.to_string()),
            ));
        }
        let plain = open_object(&self.keys, object, b"", &stored)
            .map_err(|e| EngineError::corrupt(label, e))?;
        Ok((stored, plain))
    }

    /// [`read_object`](Self::read_object) through a cache of stored files:
    /// bytes `cached` returns (already checked against their name) are
    /// opened as if read from storage; otherwise the file is read and kept.
    /// Cached bytes that fail to open are read again from storage.
    pub(crate) fn read_object_cached(
        &self,
        kind: FileKind,
        object: ObjectKind,
        name: &str,
        cached: impl Fn(&str) -> Option<Vec<u8>>,
        keep: impl Fn(&str, &[u8]),
    ) -> Result<Vec<u8>> {
        if let Some(stored) = cached(name) {
            if let Ok(plain) = open_object(&self.keys, object, b"", &stored) {
                return Ok(plain);
            }
        }
        let (stored, plain) = self.fetch_object(kind, object, name)?;
        keep(name, &stored);
        Ok(plain)
    }

    /// Reads and decrypts an object stored under a random name (a lock or a
    /// condemnation record), which is rewritten in place and so cannot be
    /// named by its hash.
    pub(crate) fn read_named(
        &self,
        kind: FileKind,
        object: ObjectKind,
        name: &str,
    ) -> Result<Vec<u8>> {
        let stored = self.backend.read_at_most(kind, name, max_file_len(kind))?;
        open_object(&self.keys, object, name.as_bytes(), &stored)
            .map_err(|e| EngineError::corrupt(format!("{}/{}", kind.dir(), name), e))
    }

    /// Encrypts and stores (or replaces) an object under a random name.
    pub(crate) fn write_named(
        &self,
        kind: FileKind,
        object: ObjectKind,
        name: &str,
        payload: &[u8],
    ) -> Result<()> {
        let level = self.config.compression_level;
        let stored = seal_object(&self.keys, object, name.as_bytes(), payload, level);
        self.backend.write(kind, name, &stored)?;
        Ok(())
    }

    /// Encrypts and stores an object under the hash of its bytes.
    fn write_object(&self, kind: FileKind, object: ObjectKind, payload: &[u8]) -> Result<[u8; 32]> {
        let stored = seal_object(
            &self.keys,
            object,
            b"",
            payload,
            self.config.compression_level,
        );
        let id = storage_hash(&stored);
        let name = storage_name(&stored);
        self.backend.write(kind, &name, &stored)?;
        // What this client wrote need not be downloaded again.
        if let (FileKind::Index, Some(cache)) = (kind, self.stored_file_cache()) {
            cache.keep_index_file(&name, &stored);
        }
        Ok(id)
    }
}

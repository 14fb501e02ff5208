//! Opening, creating and reading a repository.
//!
//! A [`Repository<Open>`] knows its keys and config; only a
//! [`Repository<Indexed>`], which has loaded every index file, can be asked
//! for blobs. The states are types so the compiler enforces the order.

use std::collections::HashSet;
use std::sync::Arc;

use bunker_backend::{Backend, ErrorKind, FileKind};
use bunker_format::blob::{decode_blob, BlobType};
use bunker_format::chunker::Chunker;
use bunker_format::condemnation::Condemnation;
use bunker_format::config::RepoConfig;
use bunker_format::crypto::{fill_random, MasterKey, RepoKeys};
use bunker_format::id::{
    storage_hash, storage_name, BlobId, IndexId, PackId, RecordId, SnapshotId,
};
use bunker_format::index::IndexFile;
use bunker_format::keyfile::{KdfParams, KeyFile};
use bunker_format::object::{open_object, seal_object, ObjectKind};
use bunker_format::parity::Repair;
use bunker_format::snapshot::Snapshot;
use bunker_format::tree::Tree;
use bunker_format::FormatError;

use crate::identity::{hostname, username};
use crate::index::{BlobLocation, IndexBuilder, MasterIndex};
use crate::{EngineError, Result};

/// State: keys and config loaded, index not loaded.
pub struct Open;

/// State: every index file loaded.
pub struct Indexed {
    index: Arc<MasterIndex>,
}

/// An open repository in state `S`.
pub struct Repository<S = Open> {
    backend: Arc<dyn Backend>,
    keys: RepoKeys,
    master: MasterKey,
    config: RepoConfig,
    chunker: Chunker,
    key_name: String,
    state: S,
}

/// Settings for a new repository; `None` takes the format's default.
#[derive(Clone, Copy, Debug, Default)]
pub struct InitOptions {
    /// Cost of the first key's password derivation.
    pub kdf: KdfParams,
    /// Pack target size in bytes (1 MiB..1 GiB).
    pub pack_size: Option<u32>,
    /// zstd level for new data (-7..22).
    pub compression_level: Option<i32>,
    /// Keep Reed–Solomon parity for every pack.
    pub parity: bool,
}

impl InitOptions {
    /// The config these options give (with a zero id), or why they are invalid.
    pub fn config(&self) -> Result<RepoConfig> {
        let mut config = RepoConfig::new([0u8; 32], chrono::Utc::now().timestamp());
        config.pack_size = self.pack_size.unwrap_or(config.pack_size);
        config.compression_level = self.compression_level.unwrap_or(config.compression_level);
        config.parity = self.parity;
        config
            .validate()
            .map_err(|e| EngineError::Invalid(format!("cannot create the repository: {e}")))?;
        Ok(config)
    }
}

/// A snapshot with its id.
#[derive(Clone, Debug)]
pub struct SnapshotEntry {
    /// Storage id.
    pub id: SnapshotId,
    /// Content.
    pub snapshot: Snapshot,
}

fn not_found(backend: &dyn Backend, detail: &str) -> EngineError {
    EngineError::RepositoryNotFound {
        location: backend.location(),
        detail: detail.to_string(),
    }
}

impl Repository<Open> {
    /// Creates a repository: directories, first key, then config (written
    /// last, so a repository exists only once it is complete).
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], options: InitOptions) -> Result<Self> {
        let mut config = options.config()?;
        if backend.exists(FileKind::Config, "")? || !backend.list(FileKind::Key)?.is_empty() {
            return Err(EngineError::RepositoryExists(backend.location()));
        }
        backend.create()?;
        let master = MasterKey::generate();
        let key_name = write_key(&*backend, &master, password, options.kdf)?;
        fill_random(&mut config.id);
        let keys = master.derive();
        let stored = seal_object(
            &keys,
            ObjectKind::Config,
            &config.encode(),
            config.compression_level,
        );
        backend.write(FileKind::Config, "", &stored)?;
        Ok(Self::assemble(backend, master, config, key_name))
    }

    /// Opens a repository with a password, trying each key file.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        let config_bytes = match backend.read(FileKind::Config, "") {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Err(not_found(&*backend, "no config file"))
            }
            Err(e) => return Err(e.into()),
        };
        let key_files = backend.list(FileKind::Key)?;
        if key_files.is_empty() {
            return Err(not_found(&*backend, "no key files"));
        }
        let mut last_error = None;
        for info in &key_files {
            let parsed = backend
                .read(FileKind::Key, &info.name)
                .map_err(EngineError::from)
                .and_then(|b| {
                    KeyFile::from_json(&b)
                        .map_err(|e| EngineError::corrupt(format!("keys/{}", info.name), e))
                });
            let master = match parsed.map(|kf| kf.open(password)) {
                Ok(Ok(master)) => master,
                Ok(Err(FormatError::WrongPassword)) => continue,
                Ok(Err(e)) => {
                    last_error = Some(EngineError::corrupt(format!("keys/{}", info.name), e));
                    continue;
                }
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            let keys = master.derive();
            let plain = open_object(&keys, ObjectKind::Config, &config_bytes)
                .map_err(|e| EngineError::corrupt("config", e))?;
            let config =
                RepoConfig::decode(&plain).map_err(|e| EngineError::corrupt("config", e))?;
            return Ok(Self::assemble(backend, master, config, info.name.clone()));
        }
        Err(last_error.unwrap_or_else(|| EngineError::WrongPassword(backend.location())))
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        master: MasterKey,
        config: RepoConfig,
        key_name: String,
    ) -> Self {
        let keys = master.derive();
        let chunker = Chunker::new(config.chunker, keys.chunker_key());
        Repository {
            backend,
            keys,
            master,
            config,
            chunker,
            key_name,
            state: Open,
        }
    }

    /// Loads every index file; any unreadable index file is an error.
    pub fn load_index(self) -> Result<Repository<Indexed>> {
        let (repo, mut errors) = self.load_index_lenient()?;
        match errors.is_empty() {
            true => Ok(repo),
            false => Err(errors.swap_remove(0)),
        }
    }

    /// Loads every readable index file and returns the errors of the others.
    pub fn load_index_lenient(self) -> Result<(Repository<Indexed>, Vec<EngineError>)> {
        self.load_index_marking(&HashSet::new())
    }

    /// Loads the index a writer uses: every index file, with the packs a
    /// prune has condemned marked so that their blobs can be read but are
    /// never deduplicated against. A backup that started after a
    /// condemnation never references those packs, which is what lets prune
    /// delete them once the sessions that started earlier end.
    pub fn load_index_for_writing(self) -> Result<Repository<Indexed>> {
        let condemned: HashSet<PackId> = self
            .condemnations()?
            .into_iter()
            .flat_map(|(_, r)| r.packs)
            .collect();
        let (repo, mut errors) = self.load_index_marking(&condemned)?;
        match errors.is_empty() {
            true => Ok(repo),
            false => Err(errors.swap_remove(0)),
        }
    }

    fn load_index_marking(
        self,
        condemned: &HashSet<PackId>,
    ) -> Result<(Repository<Indexed>, Vec<EngineError>)> {
        let mut index = IndexBuilder::new()?;
        let mut errors = Vec::new();
        for file in self.read_index_files()? {
            match file {
                Ok((_, f)) => index.add(&f, condemned)?,
                Err(e) => errors.push(e),
            }
        }
        Ok((
            self.with_state(Indexed {
                index: Arc::new(index.finish()?),
            }),
            errors,
        ))
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
            ..
        } = self;
        Repository {
            backend,
            keys,
            master,
            config,
            chunker,
            key_name,
            state,
        }
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
            state: Open,
        }
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

    /// Name of the key file that opened the repository.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// Reads and decrypts one whole-file object named by the hash of its bytes.
    fn read_object(&self, kind: FileKind, object: ObjectKind, name: &str) -> Result<Vec<u8>> {
        let stored = self.backend.read(kind, name)?;
        let label = format!("{}/{}", kind.dir(), name);
        if storage_name(&stored) != name {
            return Err(EngineError::corrupt(
                label,
                FormatError::IdMismatch(name.to_string()),
            ));
        }
        open_object(&self.keys, object, &stored).map_err(|e| EngineError::corrupt(label, e))
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
        let stored = self.backend.read(kind, name)?;
        open_object(&self.keys, object, &stored)
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
        let stored = seal_object(&self.keys, object, payload, self.config.compression_level);
        self.backend.write(kind, name, &stored)?;
        Ok(())
    }

    /// Encrypts and stores an object under the hash of its bytes.
    fn write_object(&self, kind: FileKind, object: ObjectKind, payload: &[u8]) -> Result<[u8; 32]> {
        let stored = seal_object(&self.keys, object, payload, self.config.compression_level);
        let id = storage_hash(&stored);
        self.backend.write(kind, &storage_name(&stored), &stored)?;
        Ok(id)
    }

    /// Reads every index file; each item is that file's id and content, or the error reading it.
    pub fn read_index_files(
        &self,
    ) -> Result<impl Iterator<Item = Result<(IndexId, IndexFile)>> + '_> {
        let files = self.backend.list(FileKind::Index)?;
        Ok(files.into_iter().map(move |f| {
            let id: IndexId = f
                .name
                .parse()
                .map_err(|e| EngineError::corrupt(format!("index/{}", f.name), e))?;
            let plain = self.read_object(FileKind::Index, ObjectKind::Index, &f.name)?;
            let file = IndexFile::decode(&plain)
                .map_err(|e| EngineError::corrupt(format!("index/{}", f.name), e))?;
            Ok((id, file))
        }))
    }

    /// Writes an index file.
    pub fn write_index(&self, file: &IndexFile) -> Result<IndexId> {
        Ok(IndexId(self.write_object(
            FileKind::Index,
            ObjectKind::Index,
            &file.encode(),
        )?))
    }

    /// Writes a snapshot; call only after the index covering its blobs is written.
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        Ok(SnapshotId(self.write_object(
            FileKind::Snapshot,
            ObjectKind::Snapshot,
            &snapshot.encode(),
        )?))
    }

    /// Reads one snapshot.
    pub fn read_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let plain = self.read_object(FileKind::Snapshot, ObjectKind::Snapshot, &id.to_hex())?;
        Snapshot::decode(&plain).map_err(|e| EngineError::corrupt(format!("snapshots/{id}"), e))
    }

    /// All snapshots, oldest first. Unreadable snapshots are errors.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let mut out = Vec::new();
        for f in self.backend.list(FileKind::Snapshot)? {
            let id: SnapshotId = f
                .name
                .parse()
                .map_err(|e| EngineError::corrupt(format!("snapshots/{}", f.name), e))?;
            let snapshot = match self.read_snapshot(&id) {
                Ok(s) => s,
                // Forgotten since the listing (forget runs concurrently).
                Err(EngineError::Backend(e)) if e.kind == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.push(SnapshotEntry { id, snapshot });
        }
        out.sort_by(|a, b| {
            a.snapshot
                .time_ns
                .cmp(&b.snapshot.time_ns)
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Every condemnation record (prune's pending deletions). An unreadable
    /// record is an error: guessing what it condemned could lose data.
    pub fn condemnations(&self) -> Result<Vec<(RecordId, Condemnation)>> {
        let mut out = Vec::new();
        for f in self.backend.list(FileKind::Condemned)? {
            let label = format!("condemned/{}", f.name);
            let id: RecordId = f
                .name
                .parse()
                .map_err(|e| EngineError::corrupt(&label, e))?;
            let plain = self.read_named(FileKind::Condemned, ObjectKind::Condemnation, &f.name)?;
            let record =
                Condemnation::decode(&plain).map_err(|e| EngineError::corrupt(label, e))?;
            out.push((id, record));
        }
        out.sort_by_key(|(_, r)| r.generation);
        Ok(out)
    }

    /// Writes (or rewrites) a condemnation record.
    pub fn write_condemnation(&self, id: &RecordId, record: &Condemnation) -> Result<()> {
        self.write_named(
            FileKind::Condemned,
            ObjectKind::Condemnation,
            &id.to_hex(),
            &record.encode(),
        )
    }

    /// Key files with their names.
    pub fn key_files(&self) -> Result<Vec<(String, KeyFile)>> {
        let mut out = Vec::new();
        for f in self.backend.list(FileKind::Key)? {
            let bytes = self.backend.read(FileKind::Key, &f.name)?;
            let kf = KeyFile::from_json(&bytes)
                .map_err(|e| EngineError::corrupt(format!("keys/{}", f.name), e))?;
            out.push((f.name, kf));
        }
        Ok(out)
    }

    /// Adds a key file wrapping the same master key under a new password.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        write_key(&*self.backend, &self.master, password, kdf)
    }

    /// Removes a key file. The key in use and the last key cannot be removed.
    pub fn remove_key(&self, name: &str) -> Result<()> {
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
        self.backend.remove(FileKind::Key, name)?;
        Ok(())
    }
}

/// A whole pack as read by [`Repository::read_pack`].
pub enum PackRead {
    /// It matches its name.
    Intact(Vec<u8>),
    /// It did not match its name and was rebuilt from its parity file.
    Healed {
        /// The pack as written.
        bytes: Vec<u8>,
        /// Shards rebuilt.
        shards: usize,
    },
    /// It does not match its name and could not be rebuilt: the bytes read
    /// (empty if the pack is missing) and why parity did not help.
    Damaged(Vec<u8>, String),
}

impl<S> Repository<S> {
    /// Reads a whole pack and checks it against its name; a damaged (or
    /// missing) pack is rebuilt from its parity file when the repository
    /// keeps parity.
    pub fn read_pack(&self, id: &PackId) -> Result<PackRead> {
        let name = id.to_hex();
        let stored = match self.backend.read(FileKind::Pack, &name) {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        if storage_hash(&stored) == id.0 {
            return Ok(PackRead::Intact(stored));
        }
        if !self.config.parity {
            let why = match stored.is_empty() {
                true => "missing",
                false => "content does not match its name",
            };
            return Ok(PackRead::Damaged(stored, why.into()));
        }
        let parity = match self.backend.read(FileKind::Parity, &name) {
            Ok(p) => p,
            Err(e) => return Ok(PackRead::Damaged(stored, format!("no parity: {e}"))),
        };
        Ok(
            match bunker_format::parity::repair(&stored, &parity, &id.0) {
                Ok(Repair::Repaired { bytes, shards }) => PackRead::Healed { bytes, shards },
                Ok(Repair::Intact) => PackRead::Intact(stored),
                Err(e) => PackRead::Damaged(stored, format!("parity cannot repair it: {e}")),
            },
        )
    }
}

impl Repository<Indexed> {
    /// The same repository with every index file read again (after this
    /// process or another changed them).
    pub fn reload_index(&self) -> Result<Repository<Indexed>> {
        self.reopened().load_index()
    }

    /// The loaded index.
    pub fn index(&self) -> &Arc<MasterIndex> {
        &self.state.index
    }

    /// Where a blob is stored; an error if no index has it.
    pub fn locate(&self, kind: BlobType, id: &BlobId) -> Result<BlobLocation> {
        self.index()
            .get(id)?
            .ok_or_else(|| EngineError::BlobMissing {
                kind: kind.name(),
                id: id.to_hex(),
            })
    }

    /// Reads, decrypts and verifies one blob. When the repository keeps
    /// parity, a blob that fails to read is read again from its pack rebuilt
    /// from parity (the damaged pack itself is left for `check --repair`).
    pub fn read_blob(&self, kind: BlobType, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.locate(kind, id)?;
        let (pack, _) = self.index().pack(loc.pack);
        let decode = |stored: &[u8]| {
            decode_blob(&self.keys, kind, id, loc.raw_length, stored).map_err(|e| {
                EngineError::corrupt(
                    format!(
                        "{} blob {} in pack {}",
                        kind.name(),
                        id.short(),
                        pack.short()
                    ),
                    e,
                )
            })
        };
        let first = self
            .backend
            .read_range(
                FileKind::Pack,
                &pack.to_hex(),
                loc.offset as u64,
                loc.length as u64,
            )
            .map_err(EngineError::from)
            .and_then(|stored| decode(&stored));
        match first {
            Err(e) if self.config.parity => match self.read_pack(&pack)? {
                PackRead::Healed { bytes, .. } => {
                    let range = loc.offset as usize..(loc.offset + loc.length) as usize;
                    decode(bytes.get(range).ok_or(e)?)
                }
                _ => Err(e),
            },
            other => other,
        }
    }

    /// Reads and decodes a tree.
    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        let bytes = self.read_blob(BlobType::Tree, id)?;
        Tree::decode(&bytes).map_err(|e| EngineError::corrupt(format!("tree {}", id.short()), e))
    }
}

fn write_key(
    backend: &dyn Backend,
    master: &MasterKey,
    password: &[u8],
    kdf: KdfParams,
) -> Result<String> {
    let kf = KeyFile::create(
        master,
        password,
        kdf,
        chrono::Utc::now().to_rfc3339(),
        hostname(),
        username(),
    )
    .map_err(|e| EngineError::Invalid(e.to_string()))?;
    let bytes = kf.to_json();
    let name = storage_name(&bytes);
    backend.write(FileKind::Key, &name, &bytes)?;
    Ok(name)
}

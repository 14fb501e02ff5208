//! Opening, creating and reading a repository.
//!
//! A [`Repository<Open>`] knows its keys and config; only a
//! [`Repository<Indexed>`], which has loaded every index file, can be asked
//! for blobs. The states are types so the compiler enforces the order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bunker_backend::{Backend, ErrorKind, FileKind};
use bunker_format::blob::{decode_blob, BlobType};
use bunker_format::chunker::Chunker;
use bunker_format::condemnation::Condemnation;
use bunker_format::config::RepoConfig;
use bunker_format::crypto::{fill_random, MasterKey, RepoKeys};
use bunker_format::id::{
    storage_hash, storage_name, BlobId, IndexId, KeyId, PackId, RecordId, SnapshotId,
};
use bunker_format::index::IndexFile;
use bunker_format::keyfile::{KdfParams, KeyFile};
use bunker_format::object::{open_object, seal_object, ObjectKind};
use bunker_format::pack::{parse_header, parse_trailer, PackEntry, TRAILER_LEN};
use bunker_format::parity::Repair;
use bunker_format::snapshot::Snapshot;
use bunker_format::tree::Tree;
use bunker_format::FormatError;

use crate::cache::Cache;
use crate::identity::{hostname, username};
use crate::index::{BlobLocation, IndexBuilder, MasterIndex};
use crate::notices::Notices;
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
    notices: Arc<Notices>,
    cache: Option<Arc<Cache>>,
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

/// Every snapshot file, read: the readable ones, and those that are not.
#[derive(Debug, Default)]
pub struct SnapshotList {
    /// Readable snapshots, oldest first.
    pub entries: Vec<SnapshotEntry>,
    /// Snapshot files that could not be decoded (damaged, or written with another key).
    pub unreadable: Vec<UnreadableSnapshot>,
}

/// A snapshot file that could not be read.
#[derive(Debug)]
pub struct UnreadableSnapshot {
    /// Its name.
    pub id: SnapshotId,
    /// Why.
    pub error: EngineError,
}

/// Every condemnation record: the readable ones, and those that are not.
#[derive(Debug, Default)]
pub struct RecordList {
    /// Readable records, by generation.
    pub records: Vec<(RecordId, Condemnation)>,
    /// Records that cannot be read, and why.
    pub unreadable: Vec<(RecordId, EngineError)>,
}

/// A key file as listed: readable, or damaged.
#[derive(Debug)]
pub struct KeyEntry {
    /// Its name (the hash of its bytes).
    pub name: String,
    /// The key file, or why it cannot be read.
    pub key: Result<KeyFile>,
}

/// Everything read while loading the index, for callers that report
/// problems themselves (`check`).
pub struct IndexLoad {
    /// The repository with what could be read.
    pub repo: Repository<Indexed>,
    /// Index files that could not be read.
    pub errors: Vec<EngineError>,
    /// Every pack on storage with its size, listed after the index files
    /// were read (so every pack they name was written before the listing).
    pub stored: HashMap<PackId, u64>,
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
        return EngineError::not_found(backend.location(), "no bunker repository here");
    }
    EngineError::RepositoryDamaged {
        location: backend.location(),
        detail: format!(
            "its config file is missing, though it holds {}; restore `config` from a copy of the repository (`bunker init` will not overwrite this)",
            parts.join(" and ")
        ),
    }
}

/// Reads a key file and checks it against its name (the hash of its bytes),
/// so a damaged key file is reported as damage, not as a wrong password.
fn read_key_file(backend: &dyn Backend, name: &str) -> Result<KeyFile> {
    let label = format!("keys/{name}");
    let bytes = backend.read(FileKind::Key, name)?;
    if storage_name(&bytes) != name {
        return Err(EngineError::corrupt(
            label,
            FormatError::IdMismatch(name.to_string()),
        ));
    }
    KeyFile::from_json(&bytes).map_err(|e| EngineError::corrupt(label, e))
}

/// The first characters of a stored name, for messages.
pub fn short_name(name: &str) -> &str {
    name.get(..8).unwrap_or(name)
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
        let config_bytes = match backend.read(FileKind::Config, "") {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => return Err(missing_config(&*backend)),
            Err(e) => return Err(e.into()),
        };
        let notices = Arc::new(Notices::default());
        let key_files = backend.list_names(FileKind::Key)?;
        let mut wrong_password = false;
        let mut damaged = Vec::new();
        for name in &key_files {
            if parse_name::<KeyId>(&notices, FileKind::Key, name).is_none() {
                continue;
            }
            let opened = read_key_file(&*backend, name).and_then(|kf| {
                kf.open(password).map_err(|e| match e {
                    FormatError::WrongPassword => EngineError::WrongPassword(String::new()),
                    e => EngineError::corrupt(format!("keys/{name}"), e),
                })
            });
            let master = match opened {
                Ok(master) => master,
                Err(EngineError::WrongPassword(_)) => {
                    wrong_password = true;
                    continue;
                }
                Err(e @ EngineError::Corrupt { .. }) => {
                    damaged.push((name.clone(), e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (name, e) in &damaged {
                notices.add(format!(
                    "{e}; `bunker key remove {}` removes the damaged key file",
                    short_name(name)
                ));
            }
            let keys = master.derive();
            let plain = open_object(&keys, ObjectKind::Config, &config_bytes)
                .map_err(|e| EngineError::corrupt("config", e))?;
            let config =
                RepoConfig::decode(&plain).map_err(|e| EngineError::corrupt("config", e))?;
            return Ok(Self::assemble(
                backend,
                master,
                config,
                name.clone(),
                notices,
            ));
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
        let keys = master.derive();
        let chunker = Chunker::new(config.chunker, keys.chunker_key());
        Repository {
            backend,
            keys,
            master,
            config,
            chunker,
            key_name,
            notices,
            cache: None,
            state: Open,
        }
    }

    /// Loads every readable index file. An unreadable one is told (with the
    /// advice to run `repair index`) and left out, as are packs missing from
    /// storage: a blob stored again elsewhere is read from there.
    pub fn load_index(self) -> Result<Repository<Indexed>> {
        self.load_index_told(&HashSet::new())
    }

    /// Loads the index a writer uses: as [`load_index`](Self::load_index),
    /// with the packs a prune has condemned marked so that their blobs can
    /// be read but are never deduplicated against. A backup that started
    /// after a condemnation never references those packs, which is what lets
    /// prune delete them once the sessions that started earlier end. Blobs
    /// found only in packs missing from storage count as absent too, so a
    /// backup stores them again rather than reference lost data.
    pub fn load_index_for_writing(self) -> Result<Repository<Indexed>> {
        let condemned: HashSet<PackId> = self
            .readable_condemnations()?
            .into_iter()
            .flat_map(|(_, r)| r.packs)
            .collect();
        self.load_index_told(&condemned)
    }

    fn load_index_told(self, condemned: &HashSet<PackId>) -> Result<Repository<Indexed>> {
        let load = self.load_index_report(condemned)?;
        let notices = &load.repo.notices;
        for e in &load.errors {
            notices.add(format!(
                "{e}: left out of the index; `bunker repair index` rebuilds it from the packs"
            ));
        }
        let absent: Vec<(PackId, u64)> = load.repo.index().absent_packs().collect();
        if let Some((first, _)) = absent.first() {
            notices.add(format!(
                "{} pack(s) named by the index are missing from storage or damaged (pack {} and others): data found only there is stored again by the next backup that has it; `bunker check` names what older snapshots lost",
                absent.len(),
                first.short()
            ));
        }
        Ok(load.repo)
    }

    /// Loads every readable index file, with `condemned` packs marked, and
    /// returns what could not be read. Index files that vanish while being
    /// read (a prune replaced them) make it list and read again.
    pub fn load_index_report(self, condemned: &HashSet<PackId>) -> Result<IndexLoad> {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let mut index = IndexBuilder::new()?;
            let mut errors = Vec::new();
            let mut vanished = false;
            for file in self.read_index_files()? {
                match file {
                    Ok((_, f)) => index.add(&f, condemned)?,
                    Err(EngineError::Backend(e))
                        if e.kind == ErrorKind::NotFound && attempt < ATTEMPTS =>
                    {
                        vanished = true;
                        break;
                    }
                    Err(e) => errors.push(e),
                }
            }
            if vanished {
                continue;
            }
            // Listed after the index files were read: every pack they name
            // was written before them.
            let stored: HashMap<PackId, u64> = self
                .backend
                .list(FileKind::Pack)?
                .into_iter()
                .filter_map(|f| Some((f.name.parse().ok()?, f.size)))
                .collect();
            let absent: HashSet<PackId> = index
                .packs()
                .iter()
                .filter(|(id, length)| stored.get(id) != Some(length))
                .map(|(id, _)| *id)
                .collect();
            let index = Arc::new(index.finish(&absent)?);
            return Ok(IndexLoad {
                repo: self.with_state(Indexed { index }),
                errors,
                stored,
            });
        }
        unreachable!("the last attempt returns")
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
            notices,
            cache,
            ..
        } = self;
        Repository {
            backend,
            keys,
            master,
            config,
            chunker,
            key_name,
            notices,
            cache,
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
            notices: self.notices.clone(),
            cache: self.cache.clone(),
            state: Open,
        }
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
        let files = self.backend.list_names(FileKind::Index)?;
        Ok(files.into_iter().filter_map(move |name| {
            let id: IndexId = parse_name(&self.notices, FileKind::Index, &name)?;
            Some(self.read_index_file(id))
        }))
    }

    /// Reads one index file.
    fn read_index_file(&self, id: IndexId) -> Result<(IndexId, IndexFile)> {
        {
            let name = id.to_hex();
            let plain = self.read_object(FileKind::Index, ObjectKind::Index, &name)?;
            let file = IndexFile::decode(&plain)
                .map_err(|e| EngineError::corrupt(format!("index/{name}"), e))?;
            Ok((id, file))
        }
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

    /// Every snapshot file, read. Damaged ones are returned apart; a storage
    /// failure is an error; a snapshot forgotten since the listing is skipped.
    /// Snapshots found in the cache (verified when they were cached) are
    /// not read again; the cache is brought up to date.
    pub fn snapshot_list(&self) -> Result<SnapshotList> {
        self.list_snapshots(self.cache.as_deref())
    }

    /// [`snapshot_list`](Self::snapshot_list) reading every snapshot file
    /// from storage, as `check` must.
    pub fn snapshot_list_from_storage(&self) -> Result<SnapshotList> {
        self.list_snapshots(None)
    }

    fn list_snapshots(&self, cache: Option<&Cache>) -> Result<SnapshotList> {
        let mut list = SnapshotList::default();
        let mut cached = match cache {
            Some(c) => c.snapshots(&self.keys),
            None => HashMap::new(),
        };
        let mut from_cache = 0;
        for name in self.backend.list_names(FileKind::Snapshot)? {
            let Some(id) = parse_name::<SnapshotId>(&self.notices, FileKind::Snapshot, &name)
            else {
                continue;
            };
            if let Some(snapshot) = cached.remove(&id) {
                from_cache += 1;
                list.entries.push(SnapshotEntry { id, snapshot });
                continue;
            }
            match self.read_snapshot(&id) {
                Ok(snapshot) => list.entries.push(SnapshotEntry { id, snapshot }),
                // Forgotten since the listing (forget runs concurrently).
                Err(EngineError::Backend(e)) if e.kind == ErrorKind::NotFound => {}
                Err(e @ EngineError::Corrupt { .. }) => {
                    list.unreadable.push(UnreadableSnapshot { id, error: e })
                }
                Err(e) => return Err(e),
            }
        }
        list.entries.sort_by(|a, b| {
            a.snapshot
                .time_ns
                .cmp(&b.snapshot.time_ns)
                .then(a.id.cmp(&b.id))
        });
        // Rewritten when it gained or lost a snapshot.
        if let Some(cache) = cache {
            if from_cache != list.entries.len() || !cached.is_empty() {
                cache.store_snapshots(&self.keys, self.config.compression_level, &list.entries);
            }
        }
        Ok(list)
    }

    /// The readable snapshots, oldest first. Each damaged snapshot file is
    /// told once (with how to remove it) and left out.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let list = self.snapshot_list()?;
        for u in &list.unreadable {
            self.notices.add(format!(
                "skipped snapshot {}: {}; `bunker forget {}` removes it",
                u.id.short(),
                u.error,
                u.id.short()
            ));
        }
        Ok(list.entries)
    }

    /// Every condemnation record (prune's pending deletions), and the names
    /// of those that cannot be read.
    pub fn condemnation_list(&self) -> Result<RecordList> {
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for f in self.backend.list(FileKind::Condemned)? {
            let Some(id) = parse_name::<RecordId>(&self.notices, FileKind::Condemned, &f.name)
            else {
                continue;
            };
            let label = format!("condemned/{}", f.name);
            let record = self
                .read_named(FileKind::Condemned, ObjectKind::Condemnation, &f.name)
                .and_then(|plain| {
                    Condemnation::decode(&plain).map_err(|e| EngineError::corrupt(label, e))
                });
            match record {
                Ok(r) => out.push((id, r)),
                Err(EngineError::Backend(e)) if e.kind == ErrorKind::NotFound => {}
                Err(e @ EngineError::Corrupt { .. }) => unreadable.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|(_, r)| r.generation);
        Ok(RecordList {
            records: out,
            unreadable,
        })
    }

    /// Every condemnation record. An unreadable record is an error: guessing
    /// what it condemned could lose data (prune removes it, under its lock).
    pub fn condemnations(&self) -> Result<Vec<(RecordId, Condemnation)>> {
        let list = self.condemnation_list()?;
        match list.unreadable.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(list.records),
        }
    }

    /// The readable condemnation records; unreadable ones are told. For
    /// writers: a prune refuses to delete anything while a record is
    /// unreadable, so ignoring its marks risks nothing.
    fn readable_condemnations(&self) -> Result<Vec<(RecordId, Condemnation)>> {
        let list = self.condemnation_list()?;
        for (_, e) in list.unreadable {
            self.notices
                .add(format!("{e}; the next `bunker prune` removes it"));
        }
        Ok(list.records)
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

    /// Adds a key file wrapping the same master key under a new password.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        write_key(&*self.backend, &self.master, password, kdf)
    }

    /// Removes a key file (damaged or not). The key in use cannot be removed.
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

    /// Replaces the key in use by one under a new password: the new key file
    /// is written and proved to open the repository before the old one is
    /// removed. Returns the new key's name.
    pub fn change_password(&mut self, password: &[u8], kdf: KdfParams) -> Result<String> {
        let name = self.add_key(password, kdf)?;
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
        self.backend.remove(FileKind::Key, &old)?;
        Ok(name)
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
    /// Reads a pack's header (from its end: trailer, then sealed header)
    /// without reading its blobs; `size` is its length on storage.
    pub fn read_pack_header(&self, id: &PackId, size: u64) -> Result<Vec<PackEntry>> {
        let name = id.to_hex();
        let corrupt = |e| EngineError::corrupt(format!("pack {name}"), e);
        if size < TRAILER_LEN as u64 {
            return Err(corrupt(FormatError::Malformed(
                "shorter than a pack trailer",
            )));
        }
        let trailer = self.backend.read_range(
            FileKind::Pack,
            &name,
            size - TRAILER_LEN as u64,
            TRAILER_LEN as u64,
        )?;
        let header_len = parse_trailer(&trailer).map_err(corrupt)? as u64;
        let start = size
            .checked_sub(TRAILER_LEN as u64 + header_len)
            .ok_or_else(|| corrupt(FormatError::Malformed("header longer than the pack")))?;
        let sealed = self
            .backend
            .read_range(FileKind::Pack, &name, start, header_len)?;
        parse_header(&self.keys, &sealed, size).map_err(corrupt)
    }

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

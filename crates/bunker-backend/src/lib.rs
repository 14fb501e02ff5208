//! Storage backends for Bunker repositories.
//!
//! The engine sees storage only through [`Backend`]: a flat set of immutable
//! files grouped by [`FileKind`]. A local directory is reached with direct
//! system calls ([`LocalBackend`]); S3, Azure Blob, GCS and SFTP through
//! Apache OpenDAL ([`RemoteBackend`]). [`open`] picks one for a [`Location`].

mod error;
mod local;
mod location;
mod remote;
mod runtime;
mod settings;
mod sftp_folder;
mod staged;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

pub use error::{BackendError, ErrorKind};
pub use local::LocalBackend;
pub use location::Location;
pub use remote::{PastBackend, RemoteBackend, RetentionMode};
pub use settings::{Settings, OPTIONS};
pub use sftp_folder::{RemoteAttrs, RemoteEntry, RemoteKind, RemoteOp, SftpFolder};
pub use staged::{StagedFile, StagedInfo, StagingOwner};

/// Opens the storage at `location`. A local directory that does not exist
/// is [`ErrorKind::NotFound`] unless `create` is set; remote storage is not
/// contacted until the first operation.
pub fn open(
    location: &Location,
    settings: &Settings,
    create: bool,
) -> Result<Arc<dyn Backend>, BackendError> {
    Ok(match (location, settings.as_of) {
        (Location::S3 { .. }, Some(at)) => {
            Arc::new(PastBackend::new(RemoteBackend::open(location, settings)?, at))
        }
        (_, Some(_)) => {
            return Err(BackendError::new(
                ErrorKind::Permanent,
                format!("open {location} as of a past time"),
                "--as-of reads the object versions of an S3 bucket with versioning on; this storage keeps no versions Bunker can read",
            ))
        }
        (Location::Local(path), None) => Arc::new(LocalBackend::open(path, create)?),
        (_, None) => Arc::new(RemoteBackend::open(location, settings)?),
    })
}

/// What a backend's service can do; the engine adapts to what it lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// [`Backend::write_new`] is atomic: of racing creators exactly one
    /// succeeds. Without it, `write_new` checks, then writes.
    pub atomic_create: bool,
    /// A staged file is uploaded piece by piece (multipart, or streamed to a
    /// temporary name), never held whole in memory.
    pub streamed_upload: bool,
    /// Many files are deleted per request.
    pub batch_delete: bool,
    /// Transient failures are retried inside the backend.
    pub retries: bool,
    /// The storage is reached over a network: what was read is worth
    /// keeping in the local cache.
    pub remote: bool,
}

/// The error for a create-if-absent that found the file present.
pub fn already_exists(path: &str) -> BackendError {
    BackendError::new(
        ErrorKind::AlreadyExists,
        format!("create {path}"),
        "already exists",
    )
}

/// The error for Object Lock asked of storage without it.
pub fn no_object_lock(location: &str) -> BackendError {
    BackendError::new(
        ErrorKind::Permanent,
        format!("Object Lock on {location}"),
        "this storage has no Object Lock: it needs an S3 bucket created with Object Lock enabled",
    )
}

/// Seconds since 1970, now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The kinds of files in a repository, each in its own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// The single file `config`.
    Config,
    /// `keys/<id>`: password-wrapped master keys.
    Key,
    /// `data/<xx>/<id>`: pack files.
    Pack,
    /// `index/<id>`: index files.
    Index,
    /// `snapshots/<id>`: snapshot files.
    Snapshot,
    /// `locks/<id>`: lock files.
    Lock,
    /// `condemned/<id>`: prune's condemnation records.
    Condemned,
    /// `parity/<xx>/<pack id>`: Reed–Solomon parity of a pack.
    Parity,
    /// `tombstones/<id>`: snapshots forgotten and keys removed.
    Tombstone,
    /// `runs/<id>`: what each run of a plan did.
    Run,
}

impl FileKind {
    /// The directory holding files of this kind (empty for `config`).
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Key => "keys",
            FileKind::Pack => "data",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshots",
            FileKind::Lock => "locks",
            FileKind::Condemned => "condemned",
            FileKind::Parity => "parity",
            FileKind::Tombstone => "tombstones",
            FileKind::Run => "runs",
        }
    }

    /// The path of file `name` relative to the repository root.
    pub fn path(self, name: &str) -> String {
        match self {
            FileKind::Config => "config".to_string(),
            FileKind::Pack | FileKind::Parity => match name.get(..2) {
                Some(fanout) => format!("{}/{fanout}/{name}", self.dir()),
                None => format!("{}/{name}", self.dir()),
            },
            _ => format!("{}/{}", self.dir(), name),
        }
    }
}

/// The error for a file longer than it may be.
pub fn too_long(kind: FileKind, name: &str, size: u64, max: u64) -> BackendError {
    BackendError::new(
        ErrorKind::TooLarge,
        format!("read {}", kind.path(name)),
        format!("{size} bytes, more than the {max} such a file may have (planted or damaged)"),
    )
}

/// A stored file, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// File name (an id in hex).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// Storage for one repository.
///
/// Contracts every implementation keeps:
/// - **Atomic writes.** After `write` returns `Ok`, the file exists with exactly
///   the given bytes and is durable (on local disks: file and directory fsynced).
///   A reader never sees a partial file under its final name, whatever happens
///   during the write: a crash leaves either the whole file or no file.
/// - **Immutability.** Files are named by the hash of their content (except
///   `config`, locks and condemnation records), so rewriting a name writes the same bytes again.
/// - **Listing** returns every file whose `write` returned before the listing
///   started. Object stores that list eventually are wrapped to meet this.
/// - **Errors** say whether retrying can help: on remote storage,
///   [`ErrorKind::Transient`] errors were already retried with backoff by
///   the time they reach the caller; local storage never retries (a full
///   disk fails at once).
pub trait Backend: Send + Sync {
    /// Where the repository lives, for messages (never includes secrets).
    fn location(&self) -> String;
    /// What the service can do.
    fn capabilities(&self) -> Capabilities;
    /// Checks that the storage answers (the bucket exists, the credentials
    /// are accepted), for a clear message before any real work.
    fn probe(&self) -> Result<(), BackendError> {
        Ok(())
    }
    /// Creates the directory structure of a new repository.
    fn create(&self) -> Result<(), BackendError>;
    /// Reads a whole file.
    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError>;
    /// Reads a whole file that must not be longer than `max` bytes: a longer
    /// one is refused before it is read (a planted file cannot exhaust memory).
    fn read_at_most(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, BackendError> {
        let size = self.size(kind, name)?;
        if size > max {
            return Err(too_long(kind, name, size, max));
        }
        self.read(kind, name)
    }
    /// Reads `length` bytes at `offset`; fails if the file is shorter.
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError>;
    /// Writes a whole file atomically and durably.
    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError>;
    /// Writes a whole file that must not exist yet: [`ErrorKind::AlreadyExists`]
    /// if it does. Atomic where [`Capabilities::atomic_create`] says so.
    fn write_new(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        if self.exists(kind, name)? {
            return Err(already_exists(&kind.path(name)));
        }
        self.write(kind, name, data)
    }
    /// Starts a file to be written in pieces and named by
    /// [`commit`](Self::commit). By default it is staged in memory.
    fn stage(&self, _kind: FileKind) -> Result<StagedFile, BackendError> {
        Ok(StagedFile::in_memory())
    }
    /// Stores a staged file under `name`, atomically and durably.
    fn commit(&self, kind: FileKind, name: &str, staged: StagedFile) -> Result<(), BackendError> {
        let bytes = staged
            .into_bytes()
            .map_err(|e| BackendError::from(("read staged file", e)))?;
        self.write(kind, name, &bytes)
    }
    /// Lists the files of a kind with their sizes.
    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError>;
    /// Lists the names of the files of a kind, for callers that need no
    /// sizes (a local listing then reads no inode).
    fn list_names(&self, kind: FileKind) -> Result<Vec<String>, BackendError> {
        Ok(self.list(kind)?.into_iter().map(|f| f.name).collect())
    }
    /// The size of one file.
    fn size(&self, kind: FileKind, name: &str) -> Result<u64, BackendError>;
    /// Removes a file; removing a missing file succeeds.
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError>;
    /// Removes many files (in batches where the service allows).
    fn remove_many(&self, kind: FileKind, names: &[String]) -> Result<(), BackendError> {
        names.iter().try_for_each(|n| self.remove(kind, n))
    }
    /// Staged files of every writer, including those left behind by writers
    /// that died (local storage only; object stores stage nothing visible).
    fn list_staged(&self) -> Result<Vec<StagedInfo>, BackendError> {
        Ok(Vec::new())
    }
    /// Removes a staged file left behind by a dead writer.
    fn remove_staged(&self, _name: &str) -> Result<(), BackendError> {
        Ok(())
    }
    /// True when the storage can keep files unchangeable until a date
    /// (an S3 bucket made with Object Lock enabled).
    fn object_lock_enabled(&self) -> Result<bool, BackendError> {
        Ok(false)
    }
    /// From now on, every file written (locks apart) is retained `days`
    /// days in `mode`; refused where the storage has no Object Lock.
    fn retain_writes(&self, _mode: RetentionMode, _days: u32) -> Result<(), BackendError> {
        Err(no_object_lock(&self.location()))
    }
    /// Extends the retention of a file to the policy's days from now.
    fn extend_retention(&self, _kind: FileKind, _name: &str) -> Result<(), BackendError> {
        Err(no_object_lock(&self.location()))
    }
    /// A file's retention date (Unix seconds), if it has one.
    fn retention_until(&self, _kind: FileKind, _name: &str) -> Result<Option<i64>, BackendError> {
        Err(no_object_lock(&self.location()))
    }
    /// True if the file exists.
    fn exists(&self, kind: FileKind, name: &str) -> Result<bool, BackendError> {
        match self.size(kind, name) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

//! Storage backends for Bunker repositories.
//!
//! The engine sees storage only through [`Backend`]: a flat set of immutable
//! files grouped by [`FileKind`]. Implementations go through Apache OpenDAL,
//! so S3, Azure Blob, GCS and SFTP plug in beside the local file system
//! without the engine knowing.

mod error;
mod location;
mod opendal_backend;
mod staged;

pub use error::{BackendError, ErrorKind};
pub use location::Location;
pub use opendal_backend::OpenDalBackend;
pub use staged::{StagedFile, StagedInfo, StagingOwner};

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
/// - **Errors** say whether retrying can help: [`ErrorKind::Transient`] errors
///   were already retried with backoff by the time they reach the caller.
pub trait Backend: Send + Sync {
    /// Where the repository lives, for messages (never includes secrets).
    fn location(&self) -> String;
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
    /// Staged files of every writer, including those left behind by writers
    /// that died (local storage only; object stores stage nothing visible).
    fn list_staged(&self) -> Result<Vec<StagedInfo>, BackendError> {
        Ok(Vec::new())
    }
    /// Removes a staged file left behind by a dead writer.
    fn remove_staged(&self, _name: &str) -> Result<(), BackendError> {
        Ok(())
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

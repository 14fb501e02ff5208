//! Engine errors: what went wrong, on what, and what the user can do.

use bunker_backend::BackendError;
use bunker_format::FormatError;

/// Everything an engine operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No repository at the location.
    #[error("no repository at {location}: {detail}; {hint}")]
    RepositoryNotFound {
        /// Where we looked.
        location: String,
        /// What was missing.
        detail: String,
        /// What to do.
        hint: String,
    },
    /// The key in use is append-only and the operation deletes or rewrites.
    #[error("refusing to {0}: the key in use is append-only (it may back up, list and restore); open the repository with a full key")]
    AppendOnly(String),
    /// The repository exists but lost a part it cannot be opened without.
    #[error("the repository at {location} is damaged: {detail}")]
    RepositoryDamaged {
        /// Where it is.
        location: String,
        /// What is missing or unreadable, and what to do.
        detail: String,
    },
    /// `init` over an existing repository.
    #[error("a repository already exists at {0}; refusing to overwrite it")]
    RepositoryExists(String),
    /// No key file accepts the password.
    #[error("wrong password: no key of the repository at {0} opens with it")]
    WrongPassword(String),
    /// The password opens only key files that were removed (and came back).
    #[error("key {key} was removed from the repository at {location}, and a removed key opens nothing; its file is back in storage, which `bunker key remove {key}` deletes again")]
    KeyRevoked {
        /// Where the repository is.
        location: String,
        /// The key file's short name.
        key: String,
    },
    /// Storage failed.
    #[error("storage: {0}")]
    Backend(BackendError),
    /// A stored object failed to decode or verify.
    #[error("{object}: {source}")]
    Corrupt {
        /// Which object (e.g. `index/ab12…`).
        object: String,
        /// Why it is unreadable.
        source: FormatError,
    },
    /// A blob referenced by a tree is in no index.
    #[error("{kind} blob {id} is missing from the index (run `bunker check`)")]
    BlobMissing {
        /// Data or tree.
        kind: &'static str,
        /// The blob id.
        id: String,
    },
    /// No snapshot matches.
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    /// An id prefix matches several snapshots.
    #[error("snapshot prefix {0:?} is ambiguous; give more digits")]
    AmbiguousSnapshot(String),
    /// A path is not in the snapshot.
    #[error("path {0:?} is not in the snapshot")]
    PathNotFound(String),
    /// A caller-side mistake (bad option value).
    #[error("{0}")]
    Invalid(String),

    /// A database server or client program failed.
    #[error(transparent)]
    Database(#[from] bunker_source::database::DatabaseError),

    /// A stream its source refused (a dump that died or was cut short):
    /// nothing names what was stored, so it counts for nothing.
    #[error("{0}; not a recovery point: no snapshot was saved")]
    NotARecoveryPoint(String),
    /// Local file system failure (outside the repository).
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The index's entry file (in the temporary directory) failed.
    #[error("the index's temporary file: {0} (point TMPDIR at a writable directory with space)")]
    IndexTable(#[source] std::io::Error),
    /// A pipeline stage stopped because another failed; the first failure is reported instead.
    #[error("aborted after an earlier failure")]
    Aborted,
    /// Another process holds the lock this operation needs.
    #[error("the repository is busy: locked by {0}; try again when it finishes")]
    Locked(String),
    /// A prune judged this process dead and stopped waiting for it.
    #[error("this process's lock {0} was removed by another bunker that judged it dead; nothing was committed, and what was stored will be reused: run the command again")]
    LockLost(String),
    /// The user interrupted the operation; says what was kept.
    #[error("interrupted; {0}")]
    Interrupted(&'static str),
    /// A worker thread failed (a bug); nothing was committed.
    #[error("internal error: {0}; nothing was committed (please report this bug)")]
    Internal(String),
}

impl From<BackendError> for EngineError {
    /// A file larger than its kind allows is damage (or planted), like any
    /// other object that fails to verify; every other failure is the storage's.
    fn from(e: BackendError) -> Self {
        match e.kind {
            bunker_backend::ErrorKind::TooLarge => EngineError::Corrupt {
                object: e.operation.trim_start_matches("read ").to_string(),
                source: FormatError::Oversized(e.message),
            },
            _ => EngineError::Backend(e),
        }
    }
}

impl EngineError {
    /// No repository at `location`, with the usual advice.
    pub fn not_found(location: impl Into<String>, detail: impl Into<String>) -> Self {
        EngineError::RepositoryNotFound {
            location: location.into(),
            detail: detail.into(),
            hint: "create one with `bunker init`".into(),
        }
    }

    /// Wraps a format error with the object it came from.
    pub fn corrupt(object: impl Into<String>, source: FormatError) -> Self {
        EngineError::Corrupt {
            object: object.into(),
            source,
        }
    }

    /// Wraps an I/O error with its path.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// Engine result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

//! Backend errors, classified by what a caller can do about them.

use std::fmt;

/// What kind of failure, deciding whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file does not exist.
    NotFound,
    /// Credentials or permissions refuse the operation.
    PermissionDenied,
    /// The storage is full.
    NoSpace,
    /// A failure that may pass (network, throttling); already retried.
    Transient,
    /// The file is larger than a file of its kind may be (planted or damaged).
    TooLarge,
    /// A failure that retrying will not fix.
    Permanent,
}

/// A storage operation that failed.
///
/// `message` is written for a person: what went wrong, without the storage
/// library's internals. The original error stays available as the
/// [`source`](std::error::Error::source) for callers that inspect it.
#[derive(Debug, thiserror::Error)]
pub struct BackendError {
    /// Classification.
    pub kind: ErrorKind,
    /// What was being done, e.g. `write data/ab/ab12…`.
    pub operation: String,
    /// Why it failed, in words.
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// Builds an error without an underlying cause.
    pub fn new(kind: ErrorKind, operation: impl Into<String>, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            operation: operation.into(),
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::NotFound => write!(f, "{}: not found", self.operation),
            ErrorKind::NoSpace => write!(f, "{}: no space left on the storage", self.operation),
            _ => write!(f, "{}: {}", self.operation, self.message),
        }
    }
}

/// The kind of a local I/O error, read from the error itself (never from its text).
pub fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            ErrorKind::PermissionDenied
        }
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => ErrorKind::NoSpace,
        _ => ErrorKind::Permanent,
    }
}

impl From<(&str, std::io::Error)> for BackendError {
    fn from((operation, e): (&str, std::io::Error)) -> Self {
        BackendError::new(io_kind(&e), operation, e.to_string()).with_source(e)
    }
}

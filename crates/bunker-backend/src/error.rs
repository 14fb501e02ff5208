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
    /// A failure that retrying will not fix.
    Permanent,
}

/// A storage operation that failed.
#[derive(Debug, thiserror::Error)]
pub struct BackendError {
    /// Classification.
    pub kind: ErrorKind,
    /// What was being done, e.g. `write data/ab/ab12…`.
    pub operation: String,
    /// The underlying error's message.
    pub message: String,
}

impl BackendError {
    /// Builds an error.
    pub fn new(kind: ErrorKind, operation: impl Into<String>, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            operation: operation.into(),
            message: message.into(),
        }
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

impl From<(&str, std::io::Error)> for BackendError {
    fn from((operation, e): (&str, std::io::Error)) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::StorageFull => ErrorKind::NoSpace,
            _ => ErrorKind::Permanent,
        };
        BackendError::new(kind, operation, e.to_string())
    }
}

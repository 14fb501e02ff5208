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
    /// A create-if-absent found the file already there.
    AlreadyExists,
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
            ErrorKind::NoSpace => write!(f, "{}: no space left on the storage", self.operation),
            ErrorKind::AlreadyExists => write!(f, "{}: already exists", self.operation),
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
        let kind = io_kind(&e);
        let message = match kind {
            ErrorKind::NotFound => "not found".to_string(),
            _ => e.to_string(),
        };
        BackendError::new(kind, operation, message).with_source(e)
    }
}

/// Translates an OpenDAL error: its kind decides what a caller may do, its
/// message (with the innermost cause, which says more than OpenDAL's
/// wrapper) is scrubbed of every secret in `secrets` before anyone sees it.
pub(crate) fn from_opendal(
    operation: String,
    e: opendal::Error,
    secrets: &[String],
) -> BackendError {
    let mut io = None;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    let mut innermost = None;
    while let Some(c) = cause {
        if let Some(i) = c.downcast_ref::<std::io::Error>() {
            io = Some(i);
        }
        innermost = Some(c);
        cause = c.source();
    }
    let kind = match (e.kind(), io.map(io_kind)) {
        (opendal::ErrorKind::NotFound, _) => ErrorKind::NotFound,
        // A missing bucket or container, which some services report as an
        // unexpected answer rather than "not found".
        _ if ["NoSuchBucket", "ContainerNotFound"]
            .iter()
            .any(|code| e.message().contains(code) || e.to_string().contains(code)) =>
        {
            ErrorKind::NotFound
        }
        (opendal::ErrorKind::PermissionDenied, _) => ErrorKind::PermissionDenied,
        (opendal::ErrorKind::ConditionNotMatch | opendal::ErrorKind::AlreadyExists, _) => {
            ErrorKind::AlreadyExists
        }
        (_, Some(ErrorKind::NoSpace)) => ErrorKind::NoSpace,
        // Persistent: temporary, and still failing after every retry.
        _ if e.is_temporary() || e.is_persistent() => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    };
    let mut message = e.message().to_string();
    if let Some(inner) = innermost.map(|c| c.to_string()) {
        if !message.contains(&inner) {
            message = match message.is_empty() {
                true => inner,
                false => format!("{message}: {inner}"),
            };
        }
    }
    if message.is_empty() {
        message = e.kind().to_string();
    }
    // One line: a child's stderr (ssh) may run over several.
    let message = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let message = match kind {
        ErrorKind::NotFound if !message.contains("Bucket") && !message.contains("Container") => {
            "not found".to_string()
        }
        ErrorKind::NotFound => "the bucket or container does not exist".to_string(),
        _ => redact(&message, secrets),
    };
    // The source chain is not kept: its text may carry a secret (a signed
    // URL, a token) that the message above had scrubbed.
    BackendError::new(kind, operation, message)
}

/// `text` with every secret, and every signed-URL query parameter, replaced.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "***");
    }
    // Signed URLs (Azure SAS, presigned S3) carry their signature in the query.
    for param in [
        "sig=",
        "X-Amz-Signature=",
        "X-Amz-Credential=",
        "X-Amz-Security-Token=",
    ] {
        let mut from = 0;
        while let Some(at) = out[from..].find(param).map(|i| i + from + param.len()) {
            let end = out[at..]
                .find(|c: char| c == '&' || c == ')' || c.is_whitespace())
                .map_or(out.len(), |i| i + at);
            out.replace_range(at..end, "***");
            from = at + 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_signatures_are_scrubbed() {
        let text = "error sending request for url (http://h/c/b?sv=1&sig=abc%2Fdef&se=2): key s3cr3tkey rejected";
        let clean = redact(text, &["s3cr3tkey".to_string()]);
        assert_eq!(
            clean,
            "error sending request for url (http://h/c/b?sv=1&sig=***&se=2): key *** rejected"
        );
    }
}

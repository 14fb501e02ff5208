//! Exit codes, decided in one place (see the brief's command-line contract).

use bunker_engine::backend::BackendError;
use bunker_engine::EngineError;
use bunker_ops::OpsError;

/// Success.
pub const OK: i32 = 0;
/// Any failure not listed below.
pub const FAILURE: i32 = 1;
/// Bad usage: an unknown flag, an invalid value.
pub const USAGE: i32 = 2;
/// A snapshot was saved but some sources could not be read.
pub const PARTIAL: i32 = 3;
/// The repository does not exist.
pub const NO_REPOSITORY: i32 = 10;
/// The repository is locked or busy.
pub const LOCKED: i32 = 11;
/// Wrong password.
pub const WRONG_PASSWORD: i32 = 12;
/// Interrupted by the user.
pub const INTERRUPTED: i32 = 130;

/// A mistake in how the command was called (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Returns early with a usage error.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err($crate::exit::Usage(format!($($arg)*)).into())
    };
}

/// Prints the error as one line on stderr and returns its exit code.
pub fn report(error: &anyhow::Error) -> i32 {
    let broken_pipe = error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        // The reader of our output went away (`bunker dump … | head`): the
        // command did not deliver everything, and says so.
        crate::errln!("bunker: error: standard output was closed before everything was written");
        return FAILURE;
    }
    let usage = error.downcast_ref::<Usage>().is_some()
        || matches!(
            error.downcast_ref::<OpsError>(),
            Some(OpsError::Config(_) | OpsError::UnknownPlan { .. })
        );
    if usage {
        crate::errln!("bunker: usage error: {error}");
        return USAGE;
    }
    crate::errln!("bunker: error: {}", one_line(error));
    let engine = error
        .downcast_ref::<EngineError>()
        .or_else(|| error.downcast_ref::<OpsError>().and_then(OpsError::engine));
    match engine {
        Some(EngineError::RepositoryNotFound { .. }) => NO_REPOSITORY,
        Some(EngineError::WrongPassword(_) | EngineError::KeyRevoked { .. }) => WRONG_PASSWORD,
        Some(EngineError::Interrupted(_)) => INTERRUPTED,
        Some(EngineError::Locked(_)) => LOCKED,
        _ => FAILURE,
    }
}

/// The error and its causes on one line, without repeating a cause already
/// in the message. A storage error's own causes are the storage library's
/// internals: its message already says what went wrong.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        if cause.downcast_ref::<BackendError>().is_some() {
            break;
        }
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunker_engine::backend::ErrorKind;

    #[test]
    fn a_storage_error_is_one_line_without_the_librarys_internals() {
        let inner = std::io::Error::other("context: { service: fs } internals");
        let e = BackendError::new(ErrorKind::Permanent, "write data/ab", "disk unhappy")
            .with_source(inner);
        let line = one_line(&anyhow::Error::from(EngineError::from(e)));
        assert_eq!(line, "storage: write data/ab: disk unhappy");
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = EngineError::io("tiny/r/x", std::io::Error::other("No space left on device"));
        assert_eq!(
            one_line(&anyhow::Error::from(e)),
            "tiny/r/x: No space left on device"
        );
    }
}

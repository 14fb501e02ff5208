//! Exit codes, decided in one place (see the brief's command-line contract).

use bunker_engine::EngineError;

/// Success.
pub const OK: i32 = 0;
/// Any failure not listed below.
pub const FAILURE: i32 = 1;
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

/// Prints the error as one line on stderr and returns its exit code.
pub fn report(error: &anyhow::Error) -> i32 {
    let broken_pipe = error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        // The reader of our output went away (`bunker dump … | head`): not a failure of ours.
        return OK;
    }
    eprintln!("bunker: error: {}", one_line(error));
    match error.downcast_ref::<EngineError>() {
        Some(EngineError::RepositoryNotFound { .. }) => NO_REPOSITORY,
        Some(EngineError::WrongPassword(_)) => WRONG_PASSWORD,
        Some(EngineError::Interrupted) => INTERRUPTED,
        Some(EngineError::Locked(_)) => LOCKED,
        _ => FAILURE,
    }
}

/// The error and its causes on one line, without repeating a cause already in the message.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

//! What can go wrong talking to a database server.

/// A database source's failure, with what the user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// A URL, option or request that cannot work as given.
    #[error("{0}")]
    Invalid(String),
    /// No client program can do the job.
    #[error("{0}")]
    NoClient(String),
    /// A client program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A client program ran and failed; `detail` is its own error line.
    #[error("{program} failed: {detail}")]
    Client {
        /// The program.
        program: String,
        /// Its error message (the first lines of its standard error).
        detail: String,
    },
    /// A dump that must not count as a recovery point, and why.
    #[error("{0}")]
    Incomplete(String),
    /// Local I/O (a temporary option file, a pipe).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl DatabaseError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DatabaseError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The lines of a client's standard error worth showing: errors and fatal
/// messages first, else the first lines, at most three.
pub(crate) fn error_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let errors: Vec<&str> = lines.iter().copied().filter(|l| is_error_line(l)).collect();
    let shown = if errors.is_empty() { &lines } else { &errors };
    let mut text = shown.iter().take(3).copied().collect::<Vec<_>>().join("; ");
    if text.is_empty() {
        text = "it printed no error message".into();
    }
    text
}

/// What a client's standard error says went wrong, with the statement
/// that failed when the client names it (`Command was: …`, `LINE 1: …`);
/// `None` when it reports no error.
pub fn error_lines_of(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    if !lines.iter().any(|l| is_error_line(l)) {
        return None;
    }
    let shown: Vec<&str> = lines
        .into_iter()
        .filter(|l| {
            is_error_line(l)
                || l.starts_with("Command was:")
                || l.starts_with("LINE ")
                || l.starts_with("DETAIL:")
        })
        .take(4)
        .collect();
    Some(shown.join("; "))
}

/// True for a line that reports an error, in the forms the PostgreSQL and
/// MySQL clients print them (`pg_dump: error: …`, `ERROR:  …`,
/// `mysqldump: Got error: …`, `ERROR 1045 (28000): …`), not for warnings.
pub fn is_error_line(line: &str) -> bool {
    let lower = line.trim().to_ascii_lowercase();
    if lower.contains("warning") && !lower.contains("error") {
        return false;
    }
    let head = lower.split_once(": ").map(|(h, _)| h).unwrap_or(&lower);
    lower.starts_with("error")
        || lower.starts_with("fatal")
        || lower.starts_with("panic")
        || head.ends_with("error")
        || lower.contains(": error:")
        || lower.contains(": fatal:")
        || lower.contains("got error")
        || lower.contains("couldn't execute")
        || lower.contains(" error ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_client_errors_not_warnings() {
        for line in [
            "pg_dump: error: query failed: server closed the connection unexpectedly",
            "ERROR:  relation \"x\" does not exist",
            "mysqldump: Got error: 1045: \"Access denied for user 'u'@'localhost'\"",
            "ERROR 1049 (42000): Unknown database 'nope'",
            "mariadb-dump: Couldn't execute 'SHOW TABLES': Lost connection",
            "pg_restore: error: could not execute query",
            "FATAL:  database \"x\" does not exist",
        ] {
            assert!(is_error_line(line), "{line}");
        }
        for line in [
            "pg_dump: warning: there are circular foreign-key constraints",
            "mysqldump: [Warning] Using a password on the command line interface can be insecure.",
            "",
            "-- Dumping data for table `error_log`",
        ] {
            assert!(!is_error_line(line), "{line}");
        }
        assert_eq!(
            error_lines("note\npg_dump: error: boom\n"),
            "pg_dump: error: boom"
        );
        assert_eq!(error_lines("just text\n"), "just text");
    }
}

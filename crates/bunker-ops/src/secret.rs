//! Repository passwords from a file or a command, as the config file and
//! the command line name them. Held in memory that is wiped on drop.

use std::path::Path;

use crate::OpsError;

/// A password held in memory, wiped on drop.
pub type Secret = zeroize::Zeroizing<Vec<u8>>;

/// The first line of `path`, without its line ending.
pub fn password_from_file(path: &Path) -> Result<Secret, OpsError> {
    let text = Secret::new(std::fs::read(path).map_err(|e| OpsError::Password {
        what: format!("password file {}", path.display()),
        detail: e.to_string(),
    })?);
    let line = first_line(&text);
    if line.is_empty() {
        return Err(OpsError::Password {
            what: format!("password file {}", path.display()),
            detail: "it is empty".into(),
        });
    }
    Ok(Secret::new(line.to_vec()))
}

/// Runs `command` through the shell and takes the first line it prints;
/// `name` says where the command was given (for messages, which never
/// include the command's output).
pub fn password_from_command(name: &str, command: &str) -> Result<Secret, OpsError> {
    let failed = |detail: String| OpsError::Password {
        what: name.to_string(),
        detail,
    };
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| failed(format!("cannot run it: {e}")))?;
    if !out.status.success() {
        return Err(failed(format!("it failed ({})", out.status)));
    }
    let stdout = Secret::new(out.stdout);
    let line = first_line(&stdout);
    if line.is_empty() {
        return Err(failed("it printed no password".into()));
    }
    Ok(Secret::new(line.to_vec()))
}

fn first_line(text: &[u8]) -> &[u8] {
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_of_files_and_commands() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "secret\r\nrest\n").unwrap();
        assert_eq!(password_from_file(&file).unwrap().as_slice(), b"secret");
        std::fs::write(&file, "\n").unwrap();
        assert!(password_from_file(&file).is_err());
        assert_eq!(
            password_from_command("c", "printf 'pw\\nmore'")
                .unwrap()
                .as_slice(),
            b"pw"
        );
        let err = password_from_command("password-command", "echo leaked; exit 3").unwrap_err();
        assert!(!err.to_string().contains("leaked"), "{err}");
    }
}

//! Where passwords come from. Never from the command line itself, and
//! never left for child processes: `BUNKER_PASSWORD` is taken out of the
//! environment when bunker starts ([`take_environment`]).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
/// A password held in memory, wiped on drop.
pub type Secret = zeroize::Zeroizing<Vec<u8>>;

/// `BUNKER_PASSWORD` as it was at start (`Some(empty)` if set but empty).
static FROM_ENVIRONMENT: Mutex<Option<Secret>> = Mutex::new(None);

/// Moves `BUNKER_PASSWORD` out of the environment, so that no program
/// bunker runs (a password command, a database dump, a hook) inherits it.
/// Call first thing in `main`, before any thread starts.
pub fn take_environment() {
    use std::os::unix::ffi::OsStringExt;
    if let Some(p) = std::env::var_os("BUNKER_PASSWORD") {
        *FROM_ENVIRONMENT.lock().expect("lock") = Some(Secret::new(p.into_vec()));
        // SAFETY (edition 2021: safe): no other thread exists yet.
        std::env::remove_var("BUNKER_PASSWORD");
    }
}

/// Reads the first line of a password file.
pub fn from_file(path: &Path) -> Result<Secret> {
    let text = Secret::new(
        std::fs::read(path)
            .with_context(|| format!("cannot read password file {}", path.display()))?,
    );
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        bail!("password file {} is empty", path.display());
    }
    Ok(Secret::new(line.to_vec()))
}

/// Runs `BUNKER_PASSWORD_COMMAND` through the shell and takes its first line.
fn from_command(command: &str) -> Result<Secret> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run BUNKER_PASSWORD_COMMAND")?;
    if !out.status.success() {
        bail!("BUNKER_PASSWORD_COMMAND failed ({})", out.status);
    }
    let stdout = Secret::new(out.stdout);
    let line = stdout
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default()
        .to_vec();
    if line.is_empty() {
        bail!("BUNKER_PASSWORD_COMMAND printed no password");
    }
    Ok(Secret::new(line))
}

/// The password from the first source that is set: `--password-file` /
/// `BUNKER_PASSWORD_FILE`, `BUNKER_PASSWORD`, `BUNKER_PASSWORD_COMMAND`, or
/// a prompt when stdin is a terminal. `None` if no source is available.
pub fn configured(file: Option<&Path>) -> Result<Option<Secret>> {
    if let Some(f) = file {
        return from_file(f).map(Some);
    }
    if let Some(p) = FROM_ENVIRONMENT.lock().expect("lock").as_ref() {
        if p.is_empty() {
            bail!("BUNKER_PASSWORD is set but empty; an empty password is not allowed");
        }
        return Ok(Some(p.clone()));
    }
    if let Ok(cmd) = std::env::var("BUNKER_PASSWORD_COMMAND") {
        return from_command(&cmd).map(Some);
    }
    Ok(None)
}

/// Like [`configured`], falling back to a prompt on a terminal.
pub fn obtain(file: Option<&Path>, prompt: &str) -> Result<Secret> {
    if let Some(p) = configured(file)? {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(prompt).context("cannot read the password")?;
        return Ok(Secret::new(p.into_bytes()));
    }
    bail!("no password given: use --password-file, BUNKER_PASSWORD_FILE, BUNKER_PASSWORD or BUNKER_PASSWORD_COMMAND")
}

/// A new password: from `file`, or the usual sources, or asked twice on a
/// terminal. Without any, a usage error naming `flag`, the option that gives one.
pub fn obtain_new(file: Option<&Path>, fallback_file: Option<&Path>, flag: &str) -> Result<Secret> {
    if let Some(f) = file {
        return from_file(f);
    }
    if let Some(p) = configured(fallback_file)? {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("new password: ").context("cannot read the password")?;
        let b = rpassword::prompt_password("repeat new password: ")
            .context("cannot read the password")?;
        if a != b {
            bail!("the passwords do not match");
        }
        if a.is_empty() {
            bail!("an empty password is not allowed");
        }
        return Ok(Secret::new(a.into_bytes()));
    }
    crate::usage!("no password given and no terminal to ask on: use {flag}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_environment_password_is_taken_out_for_children() {
        std::env::set_var("BUNKER_PASSWORD", "from the environment");
        super::take_environment();
        assert!(std::env::var_os("BUNKER_PASSWORD").is_none());
        let p = super::configured(None).unwrap().expect("kept in memory");
        assert_eq!(p.as_slice(), b"from the environment");
    }
}

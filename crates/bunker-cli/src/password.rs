//! Where passwords come from. Never from the command line itself.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context, Result};
/// A password held in memory, wiped on drop.
pub type Secret = zeroize::Zeroizing<Vec<u8>>;

/// Reads the first line of a password file.
pub fn from_file(path: &Path) -> Result<Secret> {
    let text = std::fs::read(path)
        .with_context(|| format!("cannot read password file {}", path.display()))?;
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
    let line = out
        .stdout
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
    if let Some(p) = std::env::var_os("BUNKER_PASSWORD") {
        use std::os::unix::ffi::OsStringExt;
        if p.is_empty() {
            bail!("BUNKER_PASSWORD is set but empty; an empty password is not allowed");
        }
        return Ok(Some(Secret::new(p.into_vec())));
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

//! Where passwords come from. Never from the command line itself, and
//! never left for child processes: `BUNKER_PASSWORD` is taken out of the
//! environment when bunker starts ([`take_environment`]).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
/// A password held in memory, wiped on drop.
pub type Secret = zeroize::Zeroizing<Vec<u8>>;

/// Whose password: each has its own variables, `PREFIX_PASSWORD`,
/// `PREFIX_PASSWORD_FILE` and `PREFIX_PASSWORD_COMMAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whose {
    /// The repository `-r` names (`BUNKER_`).
    Repository,
    /// `copy`'s destination (`BUNKER_TO_`).
    CopyDestination,
    /// The repository `init --copy-chunker-params-from` reads (`BUNKER_FROM_`).
    InitSource,
}

impl Whose {
    const ALL: [Whose; 3] = [Whose::Repository, Whose::CopyDestination, Whose::InitSource];

    fn prefix(self) -> &'static str {
        match self {
            Whose::Repository => "BUNKER_",
            Whose::CopyDestination => "BUNKER_TO_",
            Whose::InitSource => "BUNKER_FROM_",
        }
    }

    /// The name of one of its variables, e.g. `var("PASSWORD_FILE")`.
    pub fn var(self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix())
    }
}

/// Each `*_PASSWORD` as it was at start (`Some(empty)` if set but empty).
static FROM_ENVIRONMENT: Mutex<[Option<Secret>; 3]> = Mutex::new([None, None, None]);

/// Moves `BUNKER_PASSWORD` (and `BUNKER_TO_PASSWORD`, `BUNKER_FROM_PASSWORD`)
/// out of the environment, so that no program bunker runs (a password
/// command, a database dump, a hook) inherits it. Call first thing in
/// `main`, before any thread starts.
pub fn take_environment() {
    use std::os::unix::ffi::OsStringExt;
    let mut taken = FROM_ENVIRONMENT.lock().expect("lock");
    for (i, whose) in Whose::ALL.into_iter().enumerate() {
        let name = whose.var("PASSWORD");
        if let Some(p) = std::env::var_os(&name) {
            taken[i] = Some(Secret::new(p.into_vec()));
            // SAFETY (edition 2021: safe): no other thread exists yet.
            std::env::remove_var(&name);
        }
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

/// Runs a `*_PASSWORD_COMMAND` through the shell and takes its first line.
fn from_command(name: &str, command: &str) -> Result<Secret> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {name}"))?;
    if !out.status.success() {
        bail!("{name} failed ({})", out.status);
    }
    let stdout = Secret::new(out.stdout);
    let line = stdout
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default()
        .to_vec();
    if line.is_empty() {
        bail!("{name} printed no password");
    }
    Ok(Secret::new(line))
}

/// The password from the first source that is set: `--password-file` /
/// `BUNKER_PASSWORD_FILE`, `BUNKER_PASSWORD`, `BUNKER_PASSWORD_COMMAND`.
/// `None` if no source is available.
pub fn configured(file: Option<&Path>) -> Result<Option<Secret>> {
    configured_for(Whose::Repository, file)
}

/// [`configured`] for `whose` password: `file` (its command-line flag),
/// then its `_PASSWORD_FILE`, `_PASSWORD` and `_PASSWORD_COMMAND` variables
/// (for the repository's own, clap reads `BUNKER_PASSWORD_FILE` into `file`).
pub fn configured_for(whose: Whose, file: Option<&Path>) -> Result<Option<Secret>> {
    if let Some(f) = file {
        return from_file(f).map(Some);
    }
    if whose != Whose::Repository {
        if let Some(f) = std::env::var_os(whose.var("PASSWORD_FILE")) {
            return from_file(Path::new(&f)).map(Some);
        }
    }
    let index = Whose::ALL.iter().position(|w| *w == whose).expect("listed");
    if let Some(p) = FROM_ENVIRONMENT.lock().expect("lock")[index].as_ref() {
        if p.is_empty() {
            bail!(
                "{} is set but empty; an empty password is not allowed",
                whose.var("PASSWORD")
            );
        }
        return Ok(Some(p.clone()));
    }
    let command = whose.var("PASSWORD_COMMAND");
    if let Ok(cmd) = std::env::var(&command) {
        return from_command(&command, &cmd).map(Some);
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

/// `whose` password from `file` or its variables, else asked on a terminal;
/// without either, a usage error naming `flag`, the option that gives one.
pub fn obtain_for(whose: Whose, file: Option<&Path>, prompt: &str, flag: &str) -> Result<Secret> {
    if let Some(p) = configured_for(whose, file)? {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(prompt).context("cannot read the password")?;
        return Ok(Secret::new(p.into_bytes()));
    }
    crate::usage!(
        "no password given and no terminal to ask on: use {flag} (or {}, {}, {})",
        whose.var("PASSWORD_FILE"),
        whose.var("PASSWORD"),
        whose.var("PASSWORD_COMMAND")
    )
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

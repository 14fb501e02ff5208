//! A plan's `before` and `after` commands.
//!
//! Each runs through `sh -c`, in order, with the plan's name in
//! `BUNKER_PLAN` and (after) the run's outcome in `BUNKER_RUN_STATUS`.
//! A `before` command that fails stops the run before anything is backed
//! up (the `after` commands still run); an `after` command that fails fails
//! the run, after the backup is saved.

use std::process::{Command, Stdio};

/// Runs `commands` in order, stopping at the first that fails; the error
/// names the command and how it ended, with the end of what it printed.
pub fn run_hooks(commands: &[String], env: &[(&str, &str)]) -> Result<(), String> {
    for command in commands {
        let out = Command::new("sh")
            .arg("-c")
            .arg(command)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("hook {command:?} could not be run: {e}"))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let last = said.lines().rev().find(|l| !l.trim().is_empty());
            return Err(format!(
                "hook {command:?} failed ({}){}",
                out.status,
                last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_first_failure_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("mark");
        let commands = vec![
            "echo oops >&2; exit 4".to_string(),
            format!("touch {}", mark.display()),
        ];
        let err = run_hooks(&commands, &[]).unwrap_err();
        assert!(
            err.contains("exit status: 4") && err.contains("oops"),
            "{err}"
        );
        assert!(!mark.exists(), "the second hook must not run");
        let ok = vec![format!(
            "test \"$BUNKER_PLAN\" = www && touch {}",
            mark.display()
        )];
        run_hooks(&ok, &[("BUNKER_PLAN", "www")]).unwrap();
        assert!(mark.exists());
    }
}

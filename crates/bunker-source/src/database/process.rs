//! A client program whose standard output is read as a stream, checked as
//! it passes, and judged when it ends.

use std::io::{self, Read};
use std::process::{Child, ChildStdout, Stdio};
use std::thread::JoinHandle;

use bunker_format::snapshot::TableRows;

use super::check::DumpCheck;
use super::client::ClientCommand;
use super::{error_lines, is_error_line, DatabaseError};

/// Called once with the tables a dump announces before their data.
pub type OnAnnounced = Box<dyn FnOnce(Vec<(String, String)>) + Send>;

/// A running dump: read it to its end, then [`DumpProcess::finish`].
pub struct DumpProcess {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    check: Box<dyn DumpCheck>,
    program: String,
    on_announced: Option<OnAnnounced>,
    ended: bool,
    judge_stderr: bool,
    _client: ClientCommand,
}

/// What a finished, whole dump tells.
#[derive(Debug, Default)]
pub struct StreamReport {
    /// Rows per table, as the dump holds them.
    pub tables: Vec<TableRows>,
    /// The program's standard error, line by line (warnings and notices).
    pub messages: Vec<String>,
}

impl DumpProcess {
    /// Starts `client` with its standard output piped through `check`.
    pub fn spawn(
        mut client: ClientCommand,
        check: Box<dyn DumpCheck>,
        on_announced: Option<OnAnnounced>,
    ) -> Result<Self, DatabaseError> {
        let program = client.program.clone();
        let (mut child, stderr) = client.spawn(Stdio::null(), Stdio::piped())?;
        let stdout = child.stdout.take().expect("piped");
        widen_pipe(&stdout);
        Ok(DumpProcess {
            child,
            stdout,
            stderr: Some(stderr),
            check,
            program,
            on_announced,
            ended: false,
            judge_stderr: true,
            _client: client,
        })
    }

    /// Keeps the program's standard error as messages without judging it
    /// (for a command whose error messages Bunker does not know).
    pub fn ignore_stderr_errors(mut self) -> Self {
        self.judge_stderr = false;
        self
    }

    /// The program's name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Waits for the program and judges the dump: it must have been read to
    /// its end, the program must have exited 0 without printing an error,
    /// and the check must find the output whole.
    pub fn finish(mut self) -> Result<StreamReport, DatabaseError> {
        if !self.ended {
            let _ = self.child.kill();
        }
        let status = self
            .child
            .wait()
            .map_err(|e| DatabaseError::io(format!("waiting for {}", self.program), e))?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let program = &self.program;
        let messages: Vec<String> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                format!(
                    "{program}: {}",
                    l.strip_prefix(&format!("{program}: ")).unwrap_or(l)
                )
            })
            .collect();
        if !self.ended {
            return Err(DatabaseError::Incomplete(format!(
                "{program} was stopped before its output was read to the end"
            )));
        }
        if !status.success() {
            let how = match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                (None, None) => "failed".to_string(),
            };
            return Err(DatabaseError::Incomplete(format!(
                "{program} {how}: {}",
                error_lines(&stderr)
            )));
        }
        if self.judge_stderr && stderr.lines().any(is_error_line) {
            return Err(DatabaseError::Incomplete(format!(
                "{program} exited 0 but reported an error: {}",
                error_lines(&stderr)
            )));
        }
        let tables = self.check.finish().map_err(|why| {
            DatabaseError::Incomplete(format!("{program}'s output is not whole: {why}"))
        })?;
        Ok(StreamReport { tables, messages })
    }
}

/// A 1 MiB pipe instead of 64 KiB: the dump program and Bunker switch
/// places on the CPU a sixteenth as often. Best effort (Linux only; the
/// system's limit may refuse it).
fn widen_pipe(pipe: &ChildStdout) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETPIPE_SZ on a pipe we own; failure leaves it as it was.
        unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pipe;
}

impl Read for DumpProcess {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 {
            self.ended = true;
            return Ok(0);
        }
        self.check.feed(&buf[..n]);
        if self.on_announced.is_some() {
            if let Some(tables) = self.check.announced() {
                (self.on_announced.take().expect("checked"))(tables);
            }
        }
        Ok(n)
    }
}

impl Drop for DumpProcess {
    fn drop(&mut self) {
        // Never leave a dump running, nor a zombie, when a backup fails.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

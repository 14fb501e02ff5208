//! Loading a file of a snapshot into a database client's standard input.

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bunker_format::id::BlobId;
use bunker_source::database::{error_lines_of, ClientCommand, DatabaseError, MysqlTableFilter};

use crate::repository::{Indexed, Repository};
use crate::{EngineError, Result};

/// How long a load took, and how much of it was the repository's.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadTiming {
    /// Wall time of the whole load.
    pub total: Duration,
    /// Time spent fetching and decrypting the dump, not counting the time
    /// spent waiting for the database to take it.
    pub fetch: Duration,
}

impl LoadTiming {
    /// The database's share: loading, and waiting for it.
    pub fn load(&self) -> Duration {
        self.total.saturating_sub(self.fetch)
    }
}

/// Streams the snapshot file at `path` into `client`'s standard input and
/// waits for it; an error carries the client's own error lines (the failed
/// statement). With `mysql_tables`, only those tables' parts of a MySQL
/// dump are sent.
pub(super) fn load_file(
    repo: &Repository<Indexed>,
    root: &BlobId,
    path: &str,
    mut client: ClientCommand,
    mysql_tables: &[String],
) -> Result<LoadTiming> {
    let started = Instant::now();
    let mut running = Running::start(&mut client, Stdio::piped())?;
    let mut input = TimedWriter {
        inner: running.child.stdin.take().expect("piped"),
        waiting: Duration::ZERO,
    };
    let sent = match mysql_tables.is_empty() {
        true => crate::dump::dump(repo, root, path, &mut input),
        false => {
            let mut filter = MysqlTableFilter::new(&mut input, mysql_tables.to_vec());
            crate::dump::dump(repo, root, path, &mut filter).and_then(|()| {
                filter
                    .finish()
                    .map(|_| ())
                    .map_err(|e| EngineError::io("output", e))
            })
        }
    };
    let fetch = started.elapsed().saturating_sub(input.waiting);
    drop(input);
    // The client's own verdict first: its error says more than our broken pipe.
    running.wait(client.program)?;
    match sent {
        // The client took what it needed and left (pg_restore --table).
        Err(EngineError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(LoadTiming {
        total: started.elapsed(),
        fetch,
    })
}

/// Runs `client` on a file (a parallel restore reads a seekable file) and
/// waits for it.
pub(super) fn run_client(mut client: ClientCommand) -> Result<Duration> {
    let started = Instant::now();
    Running::start(&mut client, Stdio::null())?.wait(client.program)?;
    Ok(started.elapsed())
}

/// A client program running, its standard error collected on the side.
struct Running {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(client: &mut ClientCommand, stdin: Stdio) -> Result<Running> {
        let (child, stderr) = client.spawn(stdin, Stdio::null())?;
        Ok(Running { child, stderr })
    }

    /// Waits; an error when the client failed or reported an error.
    fn wait(mut self, program: String) -> Result<()> {
        let status = self.child.wait().map_err(|e| EngineError::io(&program, e));
        let stderr = self.stderr.join().unwrap_or_default();
        let status = status?;
        if !status.success() || error_lines_of(&stderr).is_some() {
            return Err(DatabaseError::Client {
                program,
                detail: error_lines_of(&stderr).unwrap_or_else(|| format!("exited with {status}")),
            }
            .into());
        }
        Ok(())
    }
}

/// A writer that counts the time its writes wait.
struct TimedWriter<W> {
    inner: W,
    waiting: Duration,
}

impl<W: Write> Write for TimedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let t = Instant::now();
        let n = self.inner.write(buf);
        self.waiting += t.elapsed();
        n
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

//! Streams backed up as files: standard input, a command's output, a
//! database dump. The source decides, once every stream was read, whether
//! they make a snapshot.

use std::io::Read;
use std::process::Command;

use bunker_format::snapshot::Snapshot;
use bunker_source::database::{ClientCommand, DumpProcess, NonEmpty};

use super::stream_filename;
use crate::{EngineError, Result};

/// Streams stored as files at a snapshot's root.
pub trait StreamSource {
    /// The paths the snapshot records (`/NAME` for a stream, the database URL for a dump).
    fn paths(&self) -> Vec<String>;
    /// The next stream's file name and data; `None` when every stream was given.
    fn next_stream(&mut self) -> Result<Option<(String, &mut dyn Read)>>;
    /// After the last stream was stored: refuses the snapshot
    /// ([`EngineError::NotARecoveryPoint`]) or completes it (database
    /// metadata, warnings).
    fn seal(&mut self, snapshot: &mut Snapshot) -> Result<()>;
}

/// Standard input (or any reader) as one file.
pub struct StdinSource {
    /// Name of the file in the snapshot.
    pub filename: String,
    /// The data.
    pub reader: Box<dyn Read + Send>,
    given: bool,
}

impl StdinSource {
    /// A stream stored as `/filename`; an error for a name that is not one plain file name.
    pub fn new(filename: String, reader: Box<dyn Read + Send>) -> Result<Self> {
        stream_filename(&filename)?;
        Ok(StdinSource {
            filename,
            reader,
            given: false,
        })
    }
}

impl StreamSource for StdinSource {
    fn paths(&self) -> Vec<String> {
        vec![format!("/{}", self.filename)]
    }

    fn next_stream(&mut self) -> Result<Option<(String, &mut dyn Read)>> {
        if std::mem::replace(&mut self.given, true) {
            return Ok(None);
        }
        Ok(Some((self.filename.clone(), &mut self.reader)))
    }

    fn seal(&mut self, _snapshot: &mut Snapshot) -> Result<()> {
        Ok(())
    }
}

/// A command's standard output as one file (`backup --stdin-from-command`):
/// a recovery point only if the command exits 0 and, unless empty output is
/// allowed, prints something.
pub struct CommandSource {
    filename: String,
    command: Option<Command>,
    process: Option<DumpProcess>,
    allow_empty: bool,
}

impl CommandSource {
    /// Runs `argv` (program and arguments, no shell) when the backup reads it.
    pub fn new(filename: String, argv: &[String], allow_empty: bool) -> Result<Self> {
        stream_filename(&filename)?;
        let (program, args) = argv.split_first().ok_or_else(|| {
            EngineError::Invalid("--stdin-from-command needs a command after `--`".into())
        })?;
        let mut command = Command::new(program);
        command.args(args);
        Ok(CommandSource {
            filename,
            command: Some(command),
            process: None,
            allow_empty,
        })
    }
}

impl StreamSource for CommandSource {
    fn paths(&self) -> Vec<String> {
        vec![format!("/{}", self.filename)]
    }

    fn next_stream(&mut self) -> Result<Option<(String, &mut dyn Read)>> {
        let Some(command) = self.command.take() else {
            return Ok(None);
        };
        let process = DumpProcess::spawn(
            ClientCommand::plain(command),
            Box::new(NonEmpty::new(self.allow_empty)),
            None,
        )
        .map_err(|e| EngineError::Invalid(e.to_string()))?
        .ignore_stderr_errors();
        let process = self.process.insert(process);
        Ok(Some((self.filename.clone(), process)))
    }

    fn seal(&mut self, snapshot: &mut Snapshot) -> Result<()> {
        let process = self.process.take().expect("sealed after its stream");
        let report = process
            .finish()
            .map_err(|e| EngineError::NotARecoveryPoint(e.to_string()))?;
        snapshot.warnings.extend(report.messages);
        Ok(())
    }
}

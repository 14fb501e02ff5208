//! `bunker db`: database backups, restores and verification.

mod backup;
mod restore;
mod verify;

use std::path::PathBuf;

use anyhow::{Context, Result};
use bunker_engine::source::database::{Connection, DatabaseUrl};
use zeroize::Zeroizing;

use crate::context::GlobalArgs;
use crate::exit::Usage;

/// Back up, restore and verify PostgreSQL and MySQL/MariaDB databases.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Dump databases into the repository, each as its own snapshot
    Backup(backup::Args),
    /// Load a dump into a database
    Restore(restore::Args),
    /// Restore a dump into a scratch database and check it (a drill)
    Verify(verify::Args),
}

/// Runs a `db` subcommand.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    match args.command {
        Command::Backup(a) => backup::run(a, global),
        Command::Restore(a) => restore::run(a, global),
        Command::Verify(a) => verify::run(a, global),
    }
}

/// How to log in: the password comes from the client's own places
/// (PGPASSWORD, ~/.pgpass, PGSERVICE; MYSQL_PWD, ~/.my.cnf) or this file.
#[derive(clap::Args, Debug)]
struct LoginArgs {
    /// Read the database password from the first line of FILE
    #[arg(long, value_name = "FILE")]
    db_password_file: Option<PathBuf>,
}

impl LoginArgs {
    /// A connection to `url` with these login settings.
    fn connect(&self, url: &str, dump_command: Option<PathBuf>) -> Result<Connection> {
        let url = DatabaseUrl::parse(url).map_err(|e| Usage(e.to_string()))?;
        let password = match &self.db_password_file {
            None => None,
            Some(path) => {
                let secret = crate::password::from_file(path)
                    .with_context(|| "--db-password-file".to_string())?;
                let text = String::from_utf8(secret.to_vec()).map_err(|_| {
                    Usage(format!(
                        "{}: the password is not valid UTF-8",
                        path.display()
                    ))
                })?;
                Some(Zeroizing::new(text))
            }
        };
        Ok(Connection::new(url, password, dump_command))
    }
}

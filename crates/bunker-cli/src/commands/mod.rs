//! One module per command, each with its arguments and `run`.

pub(crate) mod backup;
mod check;
mod completions;
mod config;
mod copy;
mod daemon;
mod db;
mod diff;
mod drill;
mod dump;
mod forget;
mod init;
mod key;
mod ls;
mod man;
mod mirror;
mod prune;
mod repair;
mod report;
mod restore;
mod run;
mod snapshots;
mod stats;
mod upgrade;
pub(crate) mod version;

use anyhow::Result;
use bunker_engine::find::SnapshotFilter;

use crate::context::GlobalArgs;

/// The commands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a repository
    Init(init::Args),
    /// Back up files and directories (or standard input)
    Backup(backup::Args),
    /// List snapshots
    Snapshots(snapshots::Args),
    /// List the contents of a snapshot
    Ls(ls::Args),
    /// Restore a snapshot into a directory
    Restore(restore::Args),
    /// Write a file to stdout, or a directory as a tar stream
    Dump(dump::Args),
    /// Show what changed between two snapshots
    Diff(diff::Args),
    /// Make a folder an exact replica of another (rsync -aHAX --delete, faster)
    Mirror(mirror::Args),
    /// Remove snapshots by a retention policy or by id
    Forget(forget::Args),
    /// Delete data no snapshot references (safe while backups run)
    Prune(prune::Args),
    /// Rebuild the index from the packs, or rewrite damaged snapshots
    Repair(repair::Args),
    /// Verify the repository's structure and, optionally, every stored byte
    Check(check::Args),
    /// Copy snapshots to another repository (only what it lacks)
    Copy(copy::Args),
    /// Back up, restore and verify PostgreSQL and MySQL/MariaDB databases
    Db(db::Args),
    /// Check the config file (bunker.toml) and show its plans
    Config(config::Args),
    /// Run a plan of the config file once, now: hooks, backup, retention, copies
    Run(run::Args),
    /// Restore a plan's newest snapshots into scratch space, verify them, and measure the recovery time
    Drill(drill::Args),
    /// Report each plan's recovery point and time against its targets, and its success rates
    Report(report::Args),
    /// Run every plan on schedule and serve the JSON API, /metrics and /healthz
    Daemon(daemon::Args),
    /// Manage the keys (passwords) that open the repository
    Key(key::Args),
    /// Show sizes, deduplication and compression ratios
    Stats(stats::Args),
    /// Move the repository to the newest format version in place, saying what changes
    Upgrade(upgrade::Args),
    /// Show the version, commit, build date, repository formats and storage backends
    Version(version::Args),
    /// Print shell completions (bash, zsh, fish)
    Completions(completions::Args),
    /// Write a man page for bunker and each of its commands into a folder
    Man(man::Args),
}

/// Runs a command; returns the exit code.
pub fn run(command: Command, global: &GlobalArgs) -> Result<i32> {
    match command {
        Command::Init(a) => init::run(a, global),
        Command::Backup(a) => backup::run(a, global),
        Command::Snapshots(a) => snapshots::run(a, global),
        Command::Ls(a) => ls::run(a, global),
        Command::Restore(a) => restore::run(a, global),
        Command::Dump(a) => dump::run(a, global),
        Command::Mirror(a) => mirror::run(a, global),
        Command::Check(a) => check::run(a, global),
        Command::Copy(a) => copy::run(a, global),
        Command::Forget(a) => forget::run(a, global),
        Command::Prune(a) => prune::run(a, global),
        Command::Repair(a) => repair::run(a, global),
        Command::Diff(a) => diff::run(a, global),
        Command::Db(a) => db::run(a, global),
        Command::Config(a) => config::run(a, global),
        Command::Run(a) => run::run(a, global),
        Command::Drill(a) => drill::run(a, global),
        Command::Report(a) => report::run(a, global),
        Command::Daemon(a) => daemon::run(a, global),
        Command::Key(a) => key::run(a, global),
        Command::Stats(a) => stats::run(a, global),
        Command::Upgrade(a) => upgrade::run(a, global),
        Command::Version(a) => version::run(a, global),
        Command::Completions(a) => completions::run(a, global),
        Command::Man(a) => man::run(a, global),
    }
}

/// `--host/--tag/--path/--kind`, narrowing which snapshots a command sees.
#[derive(clap::Args, Debug, Default)]
pub struct FilterArgs {
    /// Only snapshots from this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Only snapshots of this kind (repeatable)
    #[arg(long = "kind", value_name = "KIND", value_parser = ["files", "postgres", "mysql"])]
    pub kinds: Vec<String>,
}

impl FilterArgs {
    /// The engine's filter.
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
            kinds: self.kinds.clone(),
        }
    }
}

/// `--exclude` and `--exclude-file`, as `backup` and `mirror` take them.
#[derive(clap::Args, Debug)]
pub struct ExcludeArgs {
    /// Leave out paths matching this pattern (repeatable)
    #[arg(long = "exclude", short = 'e', value_name = "GLOB")]
    excludes: Vec<String>,
    /// Read exclude patterns from this file, one per line (repeatable)
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<std::path::PathBuf>,
}

impl ExcludeArgs {
    /// The patterns given on the command line and in the files.
    pub fn patterns(&self) -> Result<bunker_engine::source::PatternSet> {
        use anyhow::Context;
        let mut all = self.excludes.clone();
        for f in &self.exclude_files {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read exclude file {}", f.display()))?;
            all.extend(text.lines().map(str::to_string));
        }
        bunker_engine::source::PatternSet::new(all)
            .map_err(|e| crate::exit::Usage(e.to_string()).into())
    }
}

/// Prints a value as one line of JSON on stdout, so that a summary after
/// JSON-lines progress is itself the last line.
pub fn print_json(value: &serde_json::Value) {
    crate::outln!("{value}");
}

//! `bunker backup`

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bunker_engine::backup::{
    backup_to_many, source_paths, stream_filename, BackupOptions, BackupOutcome, BackupSource,
    CommandSource, CopyOutcome, StdinSource,
};
use bunker_engine::find::{find_snapshot, SnapshotFilter};
use bunker_engine::format::snapshot::BackupMode;
use bunker_engine::source::WalkOptions;
use serde_json::json;

use crate::context::{GlobalArgs, Target};
use crate::password::{self, Whose};
use crate::{exit, format, progress};

/// Back up files and directories (or standard input).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and directories to back up (with --stdin-from-command: the command and its arguments, after `--`)
    #[arg(value_name = "PATH", required_unless_present = "stdin")]
    paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Record this host name instead of the machine's
    #[arg(long)]
    host: Option<String>,
    #[command(flatten)]
    exclude: super::ExcludeArgs,
    /// Do not cross into other file systems
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Keep only NAME in directories that contain a file NAME (NAME:HEADER: only if it starts with HEADER)
    #[arg(long, value_name = "NAME[:HEADER]")]
    exclude_if_present: Vec<String>,
    /// Keep only the tag file in cache directories marked by a valid CACHEDIR.TAG
    #[arg(long)]
    exclude_caches: bool,
    /// Leave out files larger than SIZE (e.g. 500M, 2G)
    #[arg(long, value_name = "SIZE", value_parser = crate::format::parse_size)]
    exclude_larger_than: Option<u64>,
    /// Do everything except write to the repository
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Back up standard input as one file
    #[arg(long, conflicts_with = "paths")]
    stdin: bool,
    /// Run the command given after `--` and back up its output as one file;
    /// it must exit 0 and print something
    #[arg(long, conflicts_with = "stdin")]
    stdin_from_command: bool,
    /// With --stdin-from-command: accept a command that prints nothing
    #[arg(long, requires = "stdin_from_command")]
    allow_empty: bool,
    /// Name of the file that holds standard input in the snapshot
    #[arg(long, default_value = "stdin", value_name = "NAME", value_parser = parse_stdin_filename)]
    stdin_filename: String,
    /// full: read everything; incremental: compare with the newest snapshot of the
    /// same host and paths; differential: compare with the newest full one
    #[arg(long, value_enum, default_value_t = Mode::Incremental)]
    mode: Mode,
    /// Compare with this snapshot (id, prefix or "latest") instead of the chosen parent
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "stdin")]
    parent: Option<String>,
    /// Snapshot time instead of now (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    time: Option<i64>,
    /// Also store the snapshot in this repository (repeatable), from the
    /// same read of the source
    #[arg(long = "copy-to", value_name = "URL")]
    copy_to: Vec<String>,
    /// The --copy-to repository's password file (repeatable, in the order of
    /// --copy-to; one serves all; or BUNKER_TO_PASSWORD_FILE, BUNKER_TO_PASSWORD,
    /// BUNKER_TO_PASSWORD_COMMAND)
    #[arg(long, value_name = "FILE", requires = "copy_to")]
    to_password_file: Vec<PathBuf>,
}

fn parse_stdin_filename(text: &str) -> Result<String, String> {
    stream_filename(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

/// The backup strategies.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Mode {
    Full,
    Incremental,
    Differential,
}

impl From<Mode> for BackupMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Full => BackupMode::Full,
            Mode::Incremental => BackupMode::Incremental,
            Mode::Differential => BackupMode::Differential,
        }
    }
}

/// Backs up, creating the default repository on first use.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let excludes = args.exclude.patterns()?;
    let source = match (args.stdin, args.stdin_from_command) {
        (true, _) => BackupSource::Streams(Box::new(StdinSource::new(
            args.stdin_filename,
            Box::new(std::io::stdin()) as Box<dyn Read + Send>,
        )?)),
        (_, true) => {
            let argv: Vec<String> = args
                .paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            BackupSource::Streams(Box::new(CommandSource::new(
                args.stdin_filename,
                &argv,
                args.allow_empty,
            )?))
        }
        (false, false) => {
            let paths = args
                .paths
                .iter()
                .map(|p| {
                    std::path::absolute(p)
                        .with_context(|| format!("cannot resolve {}", p.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            // Before anything is created: a backup of nothing saves nothing.
            BackupSource::Paths(source_paths(&paths)?)
        }
    };

    let target = Target::select(global)?;
    let copy_targets = copy_targets(&args.copy_to, &args.to_password_file, global)?;
    // Every repository opened at once: each password's key derivation is
    // a quarter second of one core.
    let (repo, opened) = std::thread::scope(|scope| {
        let opening: Vec<_> = copy_targets
            .iter()
            .map(|(_, copy, password)| scope.spawn(move || copy.open_with(global, password)))
            .collect();
        let repo = target.open_or_create_default(global);
        let opened: Vec<_> = opening
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("opening it failed unexpectedly")))
            })
            .collect();
        (repo, opened)
    });
    let repo = repo?;
    // A copy that cannot be opened fails alone; the backup goes on.
    let mut unopened = Vec::new();
    let mut copies = Vec::new();
    for ((url, ..), opened) in copy_targets.iter().zip(opened) {
        match opened {
            Ok(copy) => copies.push(copy),
            Err(e) => unopened.push((url.clone(), e)),
        }
    }
    let parent = match &args.parent {
        Some(name) => Some(find_snapshot(
            &repo.snapshots()?,
            name,
            &SnapshotFilter::default(),
        )?),
        None => None,
    };
    let reporter = progress::for_operation(global, "backup");
    let options = BackupOptions {
        mode: args.mode.into(),
        parent,
        selection: WalkOptions {
            excludes,
            one_file_system: args.one_file_system,
            exclude_if_present: args.exclude_if_present,
            exclude_caches: args.exclude_caches,
            exclude_larger_than: args.exclude_larger_than,
            // Never the repository itself, however it is named or reached.
            protected: target.protected_from_backup(global),
        },
        tags: args.tags,
        host: args.host,
        time_ns: args.time,
        dry_run: args.dry_run,
        scan_totals: !global.quiet && !global.json,
    };
    let started = Instant::now();
    let outcome = backup_to_many(repo, copies, source, options, reporter.clone());
    reporter.finish();
    let outcome = outcome?;
    let seconds = started.elapsed().as_secs_f64();
    let failed = outcome.failed() || !unopened.is_empty();
    let primary = match outcome.primary {
        Ok(primary) => primary,
        Err(e) if outcome.copies.is_empty() && unopened.is_empty() => return Err(e.into()),
        Err(e) => {
            crate::errln!(
                "bunker: {}: the snapshot could not be saved: {e}",
                target.location
            );
            print_copies(&outcome.copies, &unopened, global, None);
            return Ok(exit::FAILURE);
        }
    };
    print_summary(
        &primary,
        seconds,
        global,
        args.dry_run,
        &outcome.copies,
        &unopened,
    );
    Ok(match (failed, primary.snapshot.is_incomplete()) {
        (true, _) => exit::FAILURE,
        (false, true) => exit::PARTIAL,
        (false, false) => exit::OK,
    })
}

/// Each `--copy-to` repository with its password. A missing password is a
/// usage error, told before anything is read.
fn copy_targets(
    urls: &[String],
    files: &[PathBuf],
    global: &GlobalArgs,
) -> Result<Vec<(String, Target, password::Secret)>> {
    if files.len() > 1 && files.len() != urls.len() {
        crate::usage!(
            "{} --to-password-file for {} --copy-to: give one for all, or one per --copy-to in the same order",
            files.len(),
            urls.len()
        );
    }
    let mut out = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let target = Target::named(url, global)?;
        let file = files.get(i).or(files.first());
        let password = password::obtain_for(
            Whose::CopyDestination,
            file.map(PathBuf::as_path),
            &format!("password of {url}: "),
            "--to-password-file FILE",
        )?;
        out.push((url.clone(), target, password));
    }
    Ok(out)
}

/// One line per `--copy-to` repository (or its JSON), and one per failure on stderr.
fn print_copies(
    copies: &[CopyOutcome],
    unopened: &[(String, anyhow::Error)],
    global: &GlobalArgs,
    json: Option<&mut Vec<serde_json::Value>>,
) {
    let mut lines = Vec::new();
    for c in copies {
        match &c.result {
            Ok(s) => {
                lines.push(json!({
                    "repository": c.location,
                    "snapshot_id": s.id.map(|i| i.to_hex()),
                    "with_backup": s.with_backup,
                    "blobs_added": s.blobs_added,
                    "bytes_added": s.bytes_added,
                    "bytes_stored": s.bytes_stored,
                    "caught_up": s.caught_up.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                }));
                if global.json || global.quiet {
                    continue;
                }
                let how = match s.with_backup {
                    true => "saved with the backup",
                    false => "copied from the primary (it names blobs differently)",
                };
                let id = s.id.map_or("dry run: nothing was written".into(), |i| {
                    format!("snapshot {} {how}", i.short())
                });
                let missed = match s.caught_up.len() {
                    0 => String::new(),
                    n => format!("; {n} earlier snapshot(s) it had missed copied too"),
                };
                crate::outln!(
                    "copy to {}: {id}; added {} ({} stored){missed}",
                    c.location,
                    format::bytes(s.bytes_added),
                    format::bytes(s.bytes_stored)
                );
            }
            Err(e) => {
                lines.push(json!({"repository": c.location, "error": e.to_string()}));
                crate::errln!("bunker: copy to {} failed: {e}", c.location);
            }
        }
    }
    for (url, e) in unopened {
        lines.push(json!({"repository": url, "error": format!("{e:#}")}));
        crate::errln!("bunker: copy to {url} failed: {e:#}");
    }
    match json {
        Some(out) => *out = lines,
        None if global.json => {
            super::print_json(&json!({"message_type": "copies", "copies": lines}))
        }
        None => {}
    }
}

fn print_summary(
    outcome: &BackupOutcome,
    seconds: f64,
    global: &GlobalArgs,
    dry_run: bool,
    copies: &[CopyOutcome],
    unopened: &[(String, anyhow::Error)],
) {
    let s = &outcome.snapshot;
    let m = &s.summary;
    if global.json {
        let mut lines = Vec::new();
        print_copies(copies, unopened, global, Some(&mut lines));
        crate::outln!(
            "{}",
            json!({
                "message_type": "summary",
                "dry_run": dry_run,
                "snapshot_id": outcome.id.map(|i| i.to_hex()),
                "mode": s.mode.name(),
                "parent": s.parent.map(|p| p.to_hex()),
                "files_new": m.files_new,
                "files_changed": m.files_changed,
                "files_unmodified": m.files_unmodified,
                "dirs": m.dirs,
                "bytes_read": m.bytes_read,
                "total_bytes": m.total_bytes,
                "blobs_added": m.blobs_added,
                "bytes_added": m.bytes_added,
                "bytes_stored": m.bytes_stored,
                "seconds": seconds,
                "skipped": s.skipped,
                "warnings": s.warnings,
                "copies": lines,
            })
        );
        return;
    }
    if let Some(note) = &outcome.note {
        crate::errln!("bunker: {note}");
    }
    if global.quiet {
        return print_copies(copies, unopened, global, None);
    }
    let against = match (s.parent, s.mode) {
        (Some(p), _) => format!(" against parent {}", p.short()),
        (None, BackupMode::Full) => String::new(),
        (None, _) => ": no earlier snapshot of these paths, every file was read".to_string(),
    };
    crate::outln!("{} backup{against}", s.mode.name());
    crate::outln!(
        "files: {} new, {} changed, {} unmodified; {} directories",
        m.files_new,
        m.files_changed,
        m.files_unmodified,
        m.dirs
    );
    crate::outln!(
        "read {} in {} ({}/s); added {} to the repository ({} stored)",
        format::bytes(m.bytes_read),
        format::duration(seconds),
        format::bytes((m.bytes_read as f64 / seconds.max(1e-3)) as u64),
        format::bytes(m.bytes_added),
        format::bytes(m.bytes_stored)
    );
    match outcome.id {
        Some(id) if s.is_incomplete() => {
            crate::outln!(
                "snapshot {} saved, incomplete: {} source(s) could not be read (named above)",
                id.short(),
                s.skipped.len()
            )
        }
        Some(id) => crate::outln!("snapshot {} saved", id.short()),
        None => crate::outln!("dry run: nothing was written"),
    }
    print_copies(copies, unopened, global, None);
}

pub fn parse_time(text: &str) -> Result<i64, String> {
    let out_of_range = || format!("{text:?} is out of range");
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return t.timestamp_nanos_opt().ok_or_else(out_of_range);
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"] {
        let parsed = chrono::NaiveDateTime::parse_from_str(text, fmt).or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, fmt)
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        });
        if let Ok(naive) = parsed {
            if let Some(local) = naive.and_local_timezone(chrono::Local).earliest() {
                return local.timestamp_nanos_opt().ok_or_else(out_of_range);
            }
        }
    }
    Err(format!(
        "{text:?} is not a time: expected RFC 3339 or YYYY-MM-DD[ HH:MM[:SS]]"
    ))
}

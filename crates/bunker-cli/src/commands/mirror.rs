//! `bunker mirror`

use std::path::PathBuf;

use anyhow::Result;
use bunker_backend::SftpFolder;
use bunker_engine::mirror::{mirror, mirror_to_sftp, MirrorOptions};
use bunker_engine::source::WalkOptions;
use bunker_ops::MirrorDest;

use crate::context::GlobalArgs;
use crate::exit;

/// Make DEST an exact replica of the folder SRC, like `rsync -aHAX --delete
/// SRC/ DEST/` with holes kept: changed files are written beside their
/// name and renamed over it, so each is wholly old or wholly new
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The folder to copy (its contents become DEST's contents)
    src: PathBuf,
    /// The replica (created when missing): a folder, or sftp://[user@]host[:port]/path
    dest: String,
    /// Keep what DEST has and SRC lacks (by default it is deleted)
    #[arg(long)]
    no_delete: bool,
    /// Refuse, changing nothing, when more than N entries would be deleted
    #[arg(long, value_name = "N")]
    max_delete: Option<u64>,
    /// Compare the content of files whose size and time are equal
    #[arg(long, short = 'c')]
    checksum: bool,
    #[command(flatten)]
    exclude: super::ExcludeArgs,
    /// Do not cross into other file systems
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Say what would change; change nothing
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// One line per change in rsync's YXcstpoguax form
    #[arg(long, short = 'i')]
    itemize_changes: bool,
    /// Re-read DEST afterwards and compare it with SRC (exit 1 if it differs)
    #[arg(long)]
    verify: bool,
}

/// Mirrors; exit 3 when some entries of SRC could not be read or written,
/// 1 when `--verify` finds DEST differing from SRC.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let options = MirrorOptions {
        delete: !args.no_delete,
        dry_run: args.dry_run,
        checksum: args.checksum,
        max_delete: args.max_delete,
        selection: WalkOptions {
            excludes: args.exclude.patterns()?,
            one_file_system: args.one_file_system,
            ..Default::default()
        },
        itemize: args.itemize_changes,
        verify: args.verify,
    };
    let dest = match MirrorDest::parse(&args.dest) {
        Ok(dest) => dest,
        Err(e) => crate::usage!("{e}"),
    };
    let summary = match &dest {
        MirrorDest::Sftp(location) => {
            let folder = SftpFolder::connect(location, &global.storage_settings()?)?;
            mirror_to_sftp(&args.src, &folder, &options, crate::interrupt())?
        }
        MirrorDest::Local(path) => mirror(&args.src, path, &options, crate::interrupt())?,
    };
    for change in &summary.changes {
        crate::outln!("{change}");
    }
    for e in &summary.errors {
        crate::errln!("bunker: {e}");
    }
    for w in &summary.warnings {
        crate::errln!("bunker: warning: {w}");
    }
    if global.json {
        super::print_json(&serde_json::to_value(&summary)?);
    } else if !global.quiet {
        crate::errln!(
            "{} entries checked ({}), {} files copied ({}), {} created, {} hard links, {} attributes updated, {} deleted{} in {:.2} s",
            summary.entries_checked,
            crate::format::bytes(summary.bytes_checked),
            summary.files_copied,
            crate::format::bytes(summary.bytes_copied),
            summary.created,
            summary.hard_links,
            summary.attributes_updated,
            summary.deleted,
            if args.dry_run { " (dry run: nothing changed)" } else { "" },
            summary.seconds
        );
    }
    if summary.deletions_held_back > 0 {
        crate::errln!(
            "bunker: deletions held back in {} folder(s) because something below could not be read",
            summary.deletions_held_back
        );
    }
    for p in &summary.verify_problems {
        crate::errln!("bunker: verify: {p}");
    }
    if args.verify && !args.dry_run && !global.quiet {
        crate::errln!(
            "verified {} entries: {}",
            summary.verified,
            if summary.verify_problems.is_empty() {
                "the mirror equals the source".to_string()
            } else {
                format!("{} difference(s)", summary.verify_problems.len())
            }
        );
    }
    Ok(if !summary.verify_problems.is_empty() {
        exit::FAILURE
    } else if summary.errors.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}

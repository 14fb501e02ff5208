//! `bunker init`

use std::path::PathBuf;

use anyhow::Result;
use bunker_engine::backend::RetentionMode;
use bunker_engine::format::config::{ObjectLockPolicy, MAX_RETENTION_DAYS};
use bunker_engine::InitOptions;
use serde_json::json;

use crate::context::{GlobalArgs, Target};
use crate::exit;
use crate::password::{self, Whose};

/// Create a repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Target size of pack files, 1M to 1G (default 16M; larger suits high-latency storage)
    #[arg(long, value_name = "SIZE", value_parser = parse_pack_size)]
    pack_size: Option<u32>,
    /// zstd compression level for new data, -7 (fastest) to 22 (smallest); default 3
    #[arg(long, value_name = "LEVEL", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-7..=22))]
    compression: Option<i32>,
    /// Keep Reed–Solomon parity per pack (about 6 % more space): damage to up
    /// to 4 of a pack's 64 shards is repaired on read and by `check --repair`
    #[arg(long)]
    parity: bool,
    /// Keep every file under S3 Object Lock for DAYS after it is written,
    /// renewed by each prune (the bucket must have Object Lock enabled;
    /// -o s3.object-lock-mode=compliance for compliance mode)
    #[arg(long, value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(1..=MAX_RETENTION_DAYS as i64))]
    object_lock: Option<u32>,
    /// Write this format version (1 to 4; default the newest), for
    /// comparisons and compatibility tests
    #[arg(long, value_name = "N", hide = true,
          value_parser = clap::value_parser!(u32).range(1..=4))]
    format_version: Option<u32>,
    /// Chunk and name data as the repository at URL does, so that data
    /// backed up directly into either deduplicates with data `copy` moves
    /// between them (and copies move only what is missing)
    #[arg(long, value_name = "URL")]
    copy_chunker_params_from: Option<String>,
    /// Password of that repository, from the first line of this file (or
    /// BUNKER_FROM_PASSWORD_FILE, BUNKER_FROM_PASSWORD, BUNKER_FROM_PASSWORD_COMMAND;
    /// default: as for the new repository)
    #[arg(long, value_name = "FILE", requires = "copy_chunker_params_from")]
    from_password_file: Option<PathBuf>,
}

fn parse_pack_size(text: &str) -> Result<u32, String> {
    let n = crate::format::parse_size(text)?;
    match u32::try_from(n) {
        Ok(n) if (1 << 20..=1 << 30).contains(&n) => Ok(n),
        _ => Err(format!("{text:?} is outside 1M..1G")),
    }
}

/// Creates the repository named by `-r`, or the default one.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let target = Target::select(global)?;
    let content_from = match &args.copy_chunker_params_from {
        None => None,
        Some(url) => {
            let source = Target::named(url, global)?;
            let password = match password::configured_for(
                Whose::InitSource,
                args.from_password_file.as_deref(),
            )? {
                Some(p) => p,
                None => password::obtain_for(
                    Whose::Repository,
                    global.password_file.as_deref(),
                    "password of the repository to chunk like: ",
                    "--from-password-file FILE",
                )?,
            };
            let source = source.open_with(global, &password)?;
            Some((source.config().chunker, source.keys().content_keys()))
        }
    };
    let mode = target.settings.option("s3.object-lock-mode");
    let object_lock = match (args.object_lock, mode) {
        (None, Some(_)) => crate::usage!("-o s3.object-lock-mode needs --object-lock DAYS"),
        (None, None) => None,
        (Some(days), mode) => Some(ObjectLockPolicy {
            days,
            compliance: match mode.map(RetentionMode::parse) {
                None | Some(Some(RetentionMode::Governance)) => false,
                Some(Some(RetentionMode::Compliance)) => true,
                Some(None) => crate::usage!(
                    "-o s3.object-lock-mode={}: expected governance or compliance",
                    mode.unwrap_or_default()
                ),
            },
        }),
    };
    let options = InitOptions {
        pack_size: args.pack_size,
        compression_level: args.compression,
        parity: args.parity,
        version: args.format_version,
        content_from,
        object_lock,
        ..Default::default()
    };
    let (repo, key_file) = target.init(global, options)?;
    if global.json {
        super::print_json(
            &json!({ "message_type": "initialized", "id": repo.config().id_hex(), "repository": target.location.to_string() }),
        );
    } else if !global.quiet {
        crate::outln!(
            "created bunker repository {} at {}",
            &repo.config().id_hex()[..10],
            target.location
        );
        match key_file {
            Some(f) => crate::outln!(
                "its key is in {}; keep a copy of it somewhere else too: without it the backups cannot be restored",
                f.display()
            ),
            None => crate::outln!("keep the password safe: without it the backups cannot be restored"),
        }
    }
    Ok(exit::OK)
}

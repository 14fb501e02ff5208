//! `upgrade`: moving a repository to the newest format version in place.
//!
//! Only what can be done by rewriting the config is done in place: from
//! version 3 to 4 nothing stored changes (version 4 seals everything as 3
//! does, docs/FORMAT.md §14), only how new directories are cut. Versions 1
//! and 2 name blobs with keys derived otherwise; they move by `copy` into a
//! new repository.

use bunker_backend::FileKind;
use bunker_format::object::{seal_object, ObjectKind, FORMAT_VERSION};

use crate::lock;
use crate::repository::{Open, Repository};
use crate::{EngineError, Result};

/// What an upgrade changed (or, dry, would change).
#[derive(Debug)]
pub struct UpgradeReport {
    /// The version the repository was in.
    pub from: u32,
    /// The version it is in now (or would be).
    pub to: u32,
    /// What the upgrade changes, one sentence each; empty when the
    /// repository is already of the newest version.
    pub changes: Vec<&'static str>,
}

/// What moving from version 3 to 4 changes, as the user is told.
const THREE_TO_FOUR: [&str; 4] = [
    "directories are stored as content-defined pieces, so a backup stores only the pieces of a directory that changed, not the whole listing",
    "nothing stored is rewritten: existing snapshots stay as they are and readable; each large directory is stored once more, as pieces, by its next backup",
    "only the config file is rewritten (with the exclusive lock held)",
    "Bunker builds that read format versions up to 3 can no longer open this repository",
];

/// Upgrades `repo` to the newest format version, or with `dry_run` only
/// says what that would change.
pub fn upgrade(repo: &Repository<Open>, dry_run: bool) -> Result<UpgradeReport> {
    let from = repo.config().version;
    let to = FORMAT_VERSION as u32;
    let changes = match from {
        v if v >= to => Vec::new(),
        3 => THREE_TO_FOUR.to_vec(),
        _ => {
            return Err(EngineError::Invalid(format!(
                "a format version {from} repository cannot be upgraded in place (its blobs are named with keys that version 3 changed); create a new repository with `bunker init` and `bunker copy --to` it"
            )))
        }
    };
    let report = UpgradeReport { from, to, changes };
    if report.changes.is_empty() || dry_run {
        return Ok(report);
    }
    repo.require_full_key("upgrade the repository")?;
    // No writer of the old version may be halfway through a session.
    let _lock = lock::exclusive(repo, "upgrade")?;
    let mut config = repo.config().clone();
    config.version = to;
    let stored = seal_object(
        repo.keys(),
        ObjectKind::Config,
        b"",
        &config.encode(),
        config.compression_level,
    );
    repo.backend().write(FileKind::Config, "", &stored)?;
    Ok(report)
}

//! Databases: dumps backed up as guarded streams, loaded back into a
//! server, and verified by a restore into a scratch database.

mod backup;
mod load;
mod restore;
mod verify;

pub use backup::DatabaseSource;
pub use restore::{restore_database, DatabaseRestoreOptions, RestoreOutcome};
pub use verify::{verify_database, AssertionResult, TableCheck, VerifyOptions, VerifyReport};

use bunker_format::snapshot::{DatabaseDump, Snapshot};

use crate::repository::SnapshotEntry;
use crate::{EngineError, Result};

/// The database fields of a snapshot, or an error naming what it is instead.
pub fn dump_info(entry: &SnapshotEntry) -> Result<&DatabaseDump> {
    entry.snapshot.database.as_ref().ok_or_else(|| {
        EngineError::Invalid(format!(
            "snapshot {} is a backup of files ({}), not a database dump",
            entry.id.short(),
            entry.snapshot.paths.join(", ")
        ))
    })
}

/// The server and database a dump came from, as its snapshot records them.
pub fn origin(snapshot: &Snapshot) -> Option<bunker_source::database::DatabaseUrl> {
    snapshot
        .paths
        .first()
        .and_then(|p| bunker_source::database::DatabaseUrl::parse(p).ok())
}

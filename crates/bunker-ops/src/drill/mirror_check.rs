//! The drill of a plan's mirrors: each is compared with the snapshot taken
//! in the run that last refreshed it, read from the mirror alone. A mirror
//! that holds what its snapshot holds is a recovery point a switch away.

use std::time::Instant;

use bunker_engine::backend::{Settings, SftpFolder};
use bunker_engine::format::id::SnapshotId;
use bunker_engine::format::run_record::{Phase, RunKind, RunRecord, RunStatus};
use bunker_engine::mirror::{compare_listing_with_snapshot, compare_with_snapshot};
use bunker_engine::{Indexed, Repository};

use crate::{MirrorDest, Operations, PlanConfig};

/// What the drill found in one mirror.
#[derive(Debug)]
pub struct MirrorCheck {
    /// The mirror.
    pub mirror: String,
    /// Its files were read back and their chunks checked (a local mirror);
    /// over SFTP only the listing is compared.
    pub content_read: bool,
    /// The snapshot it was compared with.
    pub snapshot: Option<SnapshotId>,
    /// Entries of the snapshot found equal in the mirror.
    pub equal: u64,
    /// Bytes read back from the mirror and found equal.
    pub bytes_equal: u64,
    /// Files changed in the source after the snapshot (newer in the mirror).
    pub newer: u64,
    /// Where the mirror does not hold what the snapshot holds.
    pub problems: Vec<String>,
    /// How long the comparison took.
    pub seconds: f64,
}

impl MirrorCheck {
    /// The mirror holds everything its snapshot holds.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.snapshot.is_some()
    }
}

/// Compares `mirror` with the snapshot its last refresh recorded and
/// writes the drill's record (kind drill, `peer` the mirror).
pub(super) fn check_mirror(
    ops: &Operations,
    base: &Repository<bunker_engine::Open>,
    repo: &Repository<Indexed>,
    plan: (&str, &PlanConfig),
    mirror: &MirrorDest,
    started_ns: i64,
) -> MirrorCheck {
    let (name, config) = plan;
    let clock = Instant::now();
    let shown = mirror.to_string();
    let mut check = MirrorCheck {
        mirror: shown.clone(),
        content_read: matches!(mirror, MirrorDest::Local(_)),
        snapshot: None,
        equal: 0,
        bytes_equal: 0,
        newer: 0,
        problems: Vec::new(),
        seconds: 0.0,
    };
    match refreshed_with(repo, name, &shown, started_ns) {
        Err(e) => check.problems.push(e),
        Ok(None) => check.problems.push(format!(
            "{shown}: no refresh of this mirror with a snapshot is recorded yet"
        )),
        Ok(Some(id)) => {
            check.snapshot = Some(id);
            compare(repo, config, mirror, id, ops, &mut check);
        }
    }
    check.seconds = clock.elapsed().as_secs_f64();
    let mut record = ops.record(RunKind::Drill, name, config, started_ns);
    record.peer = Some(shown);
    record.finished_ns = started_ns + clock.elapsed().as_nanos() as i64;
    record.snapshots.extend(check.snapshot);
    record.files = check.equal;
    record.bytes = check.bytes_equal;
    record.phases.push(Phase {
        name: "compare".into(),
        micros: (check.seconds * 1e6) as u64,
    });
    record.messages = check.problems.clone();
    record.status = match check.passed() {
        true => {
            record.verified = record.snapshots.clone();
            RunStatus::Success
        }
        false => RunStatus::Failure,
    };
    if let Err(e) = ops.write_record(base, &record) {
        check.problems.push(format!(
            "{mirror}: the drill's record could not be written: {e}"
        ));
    }
    check
}

fn compare(
    repo: &Repository<Indexed>,
    config: &PlanConfig,
    mirror: &MirrorDest,
    id: SnapshotId,
    ops: &Operations,
    check: &mut MirrorCheck,
) {
    let entry = match repo.read_snapshot(&id) {
        Ok(e) => e,
        Err(e) => {
            check.problems.push(format!("snapshot {}: {e}", id.short()));
            return;
        }
    };
    for pair in config.mirror_pairs(mirror) {
        let subpath = pair.source.to_string_lossy();
        let cancel = &ops.open.cancel;
        let compared = match &pair.replica {
            MirrorDest::Local(dir) => {
                compare_with_snapshot(repo, &entry.tree, &subpath, dir, cancel)
            }
            MirrorDest::Sftp(location) => SftpFolder::connect(location, &Settings::from_process())
                .and_then(|folder| folder.list())
                .map_err(Into::into)
                .and_then(|listed| {
                    compare_listing_with_snapshot(repo, &entry.tree, &subpath, &listed, cancel)
                }),
        };
        match compared {
            Ok(c) => {
                check.equal += c.equal;
                check.bytes_equal += c.bytes_equal;
                check.newer += c.newer;
                check.problems.extend(c.problems);
            }
            Err(e) => check.problems.push(format!("{}: {e}", pair.replica)),
        }
    }
}

/// The snapshot recorded by the newest refresh of `mirror` by plan `name`
/// that ended at or before `until_ns` and copied everything.
fn refreshed_with(
    repo: &Repository<Indexed>,
    name: &str,
    mirror: &str,
    until_ns: i64,
) -> Result<Option<SnapshotId>, String> {
    let records = repo.run_records().map_err(|e| e.to_string())?.records;
    Ok(records
        .iter()
        .map(|(_, r)| r)
        .filter(|r| {
            r.plan == name
                && r.kind == RunKind::Mirror
                && r.peer.as_deref() == Some(mirror)
                && r.status == RunStatus::Success
                && r.messages.is_empty()
                && r.started_ns <= until_ns
        })
        .max_by_key(|r| r.started_ns)
        .and_then(|r: &RunRecord| r.snapshots.first().copied()))
}

//! Run records: what each run of a plan did (a backup, a restore drill, a
//! prune, a copy, a check), kept in the repository it concerns so that the
//! history, the recovery point and the success rates survive the loss of
//! the machine that ran them. Named by the hash of their bytes, like
//! snapshots; prune keeps them within a bounded age. See `docs/FORMAT.md` §4.6.

use crate::id::SnapshotId;
use crate::FormatError;

/// The version of the record's fields that this build writes. A reader
/// takes a newer one as far as it understands it (unknown keys are skipped).
pub const RUN_RECORD_VERSION: u32 = 1;

/// What kind of run.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, minicbor::Encode, minicbor::Decode,
)]
#[cbor(index_only)]
pub enum RunKind {
    /// A backup of the plan's paths and databases.
    #[n(0)]
    Backup,
    /// A restore drill.
    #[n(1)]
    Drill,
    /// Retention: forget and prune.
    #[n(2)]
    Prune,
    /// A copy to another repository.
    #[n(3)]
    Copy,
    /// A repository check.
    #[n(4)]
    Check,
    /// A refresh of a mirror (a plain replica of the plan's paths).
    #[n(5)]
    Mirror,
}

impl RunKind {
    /// Every kind, in order.
    pub const ALL: [RunKind; 6] = [
        RunKind::Backup,
        RunKind::Drill,
        RunKind::Prune,
        RunKind::Copy,
        RunKind::Check,
        RunKind::Mirror,
    ];

    /// Lowercase name, as in metrics and JSON.
    pub fn name(self) -> &'static str {
        match self {
            RunKind::Backup => "backup",
            RunKind::Drill => "drill",
            RunKind::Prune => "prune",
            RunKind::Copy => "copy",
            RunKind::Check => "check",
            RunKind::Mirror => "mirror",
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, minicbor::Encode, minicbor::Decode)]
#[cbor(index_only)]
pub enum RunStatus {
    /// Everything it had to do was done (a drill: passed within its target).
    #[n(0)]
    Success,
    /// Something failed; `message` says what.
    #[n(1)]
    Failure,
    /// Not run (the previous run of the plan was still going).
    #[n(2)]
    Skipped,
}

impl RunStatus {
    /// Lowercase name, as in metrics and JSON.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Failure => "failure",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// The time one phase of a run took.
#[derive(Clone, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct Phase {
    /// What the phase did (`open`, `fetch`, `write`, `database load`, ...).
    #[n(0)]
    pub name: String,
    /// Its duration in microseconds.
    #[n(1)]
    pub micros: u64,
}

/// A file under `runs/`, stored sealed (kind `R`).
#[derive(Clone, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct RunRecord {
    /// The version of these fields ([`RUN_RECORD_VERSION`]).
    #[n(0)]
    pub version: u32,
    /// What ran.
    #[n(1)]
    pub kind: RunKind,
    /// The plan's name.
    #[n(2)]
    pub plan: String,
    /// The host it ran on.
    #[n(3)]
    pub host: String,
    /// Start, Unix nanoseconds.
    #[n(4)]
    pub started_ns: i64,
    /// End, Unix nanoseconds.
    #[n(5)]
    pub finished_ns: i64,
    /// How it ended.
    #[n(6)]
    pub status: RunStatus,
    /// Why it failed or was skipped, one line per problem (never a secret).
    #[cbor(n(7), default)]
    pub messages: Vec<String>,
    /// Snapshots it made (backup, copy) or restored (drill).
    #[cbor(n(8), default)]
    pub snapshots: Vec<SnapshotId>,
    /// Snapshots whose stored data it read back and found whole: a drill's
    /// restored and verified snapshots.
    #[cbor(n(9), default)]
    pub verified: Vec<SnapshotId>,
    /// Bytes of the sources (backup), restored (drill) or copied (copy).
    #[cbor(n(10), default)]
    pub bytes: u64,
    /// Files (backup: in the sources; drill: restored).
    #[cbor(n(11), default)]
    pub files: u64,
    /// Bytes it added to the repository, after deduplication and compression.
    #[cbor(n(12), default)]
    pub bytes_added: u64,
    /// Time per phase, in the order they ran.
    #[cbor(n(13), default)]
    pub phases: Vec<Phase>,
    /// A drill's measured (or, from a sample, extrapolated) recovery time, µs.
    #[cbor(n(14), default)]
    pub rto_micros: Option<u64>,
    /// A drill's share of files restored, in millionths (1,000,000 = all).
    #[cbor(n(15), default)]
    pub sample_ppm: Option<u32>,
    /// The plan's recovery point objective when it ran, seconds.
    #[cbor(n(16), default)]
    pub rpo_target_secs: Option<u64>,
    /// The plan's recovery time objective when it ran, seconds.
    #[cbor(n(17), default)]
    pub rto_target_secs: Option<u64>,
    /// The other repository (a copy's destination), as the config names it.
    #[cbor(n(18), default)]
    pub peer: Option<String>,
}

impl RunRecord {
    /// A record of `kind` for `plan`, started at `started_ns`, not yet ended.
    pub fn new(kind: RunKind, plan: &str, host: &str, started_ns: i64) -> Self {
        RunRecord {
            version: RUN_RECORD_VERSION,
            kind,
            plan: plan.to_string(),
            host: host.to_string(),
            started_ns,
            finished_ns: started_ns,
            status: RunStatus::Success,
            messages: Vec::new(),
            snapshots: Vec::new(),
            verified: Vec::new(),
            bytes: 0,
            files: 0,
            bytes_added: 0,
            phases: Vec::new(),
            rto_micros: None,
            sample_ppm: None,
            rpo_target_secs: None,
            rto_target_secs: None,
            peer: None,
        }
    }

    /// Encodes as CBOR.
    pub fn encode(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    /// Decodes from CBOR.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        Ok(minicbor::decode(bytes)?)
    }

    /// How long it ran, seconds.
    pub fn seconds(&self) -> f64 {
        (self.finished_ns - self.started_ns).max(0) as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut r = RunRecord::new(RunKind::Drill, "www", "h", 5);
        r.finished_ns = 9;
        r.status = RunStatus::Failure;
        r.messages = vec!["pack 1234 is damaged".into()];
        r.snapshots = vec![SnapshotId([1; 32])];
        r.phases = vec![Phase {
            name: "fetch".into(),
            micros: 3,
        }];
        r.rto_micros = Some(4);
        r.sample_ppm = Some(100_000);
        r.rto_target_secs = Some(3600);
        r.peer = Some("offsite".into());
        assert_eq!(RunRecord::decode(&r.encode()).unwrap(), r);
        assert!(RunRecord::decode(&r.encode()[..10]).is_err());
    }

    /// The byte layout FORMAT.md §4.6 documents, pinned.
    #[test]
    fn encoding_is_pinned() {
        let mut r = RunRecord::new(RunKind::Backup, "p", "h", 1);
        r.finished_ns = 2;
        assert_eq!(
            hex::encode(r.encode()),
            // map(14): 0:1, 1:0, 2:"p", 3:"h", 4:1, 5:2, 6:0, 7:[], 8:[], 9:[],
            // 10:0, 11:0, 12:0, 13:[]; absent options (14..18) are left out
            "ae000101000261700361680401050206000780088009800a000b000c000d80"
        );
        // A mirror refresh is kind 5, the rest as above.
        r.kind = RunKind::Mirror;
        assert_eq!(
            hex::encode(r.encode()),
            "ae000101050261700361680401050206000780088009800a000b000c000d80"
        );
    }
}

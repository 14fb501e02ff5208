//! Run records: what each run of a plan did, kept in the repository
//! (docs/FORMAT.md §4.6). The operations layer writes them; reports read
//! them back on any machine that holds the repository's key.

use std::collections::HashSet;

use bunker_backend::{ErrorKind, FileKind};
use bunker_format::id::RunId;
use bunker_format::object::ObjectKind;
use bunker_format::run_record::RunRecord;

use super::{parse_name, Repository};
use crate::{EngineError, Result};

/// Every run record: the readable ones, oldest first, and those that are not.
#[derive(Debug, Default)]
pub struct RunList {
    /// Readable records, by start time.
    pub records: Vec<(RunId, RunRecord)>,
    /// Records that cannot be read, and why.
    pub unreadable: Vec<(RunId, EngineError)>,
}

impl<S> Repository<S> {
    /// Writes a run record. Records are immutable: a run writes one when it ends.
    pub fn write_run_record(&self, record: &RunRecord) -> Result<RunId> {
        Ok(RunId(self.write_object(
            FileKind::Run,
            ObjectKind::RunRecord,
            &record.encode(),
        )?))
    }

    /// Reads every run record. A record that cannot be read is listed
    /// apart, never guessed at; remote repositories' records are kept in
    /// the local cache (their names are the hashes of their bytes).
    pub fn run_records(&self) -> Result<RunList> {
        let names = self.backend.list_names(FileKind::Run)?;
        let cache = self.stored_file_cache();
        if let Some(cache) = cache {
            cache.retain_run_files(&names.iter().cloned().collect::<HashSet<_>>());
        }
        let mut out = RunList::default();
        for name in names {
            let Some(id) = parse_name::<RunId>(&self.notices, FileKind::Run, &name) else {
                continue;
            };
            let plain = match cache {
                Some(cache) => self.read_object_cached(
                    FileKind::Run,
                    ObjectKind::RunRecord,
                    &name,
                    |n| cache.run_file(n),
                    |n, b| cache.keep_run_file(n, b),
                ),
                None => self.read_object(FileKind::Run, ObjectKind::RunRecord, &name),
            };
            let record = plain.and_then(|p| {
                RunRecord::decode(&p).map_err(|e| EngineError::corrupt(format!("runs/{name}"), e))
            });
            match record {
                Ok(r) => out.records.push((id, r)),
                // Removed since listed (a prune's record retention).
                Err(EngineError::Backend(e)) if e.kind == ErrorKind::NotFound => {}
                Err(e @ EngineError::Corrupt { .. }) => out.unreadable.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        out.records
            .sort_by_key(|(_, r)| (r.started_ns, r.finished_ns));
        Ok(out)
    }

    /// Deletes run records (record retention).
    pub fn delete_run_records(&self, ids: &[RunId]) -> Result<()> {
        let names: Vec<String> = ids.iter().map(RunId::to_hex).collect();
        Ok(self.backend.remove_many(FileKind::Run, &names)?)
    }
}

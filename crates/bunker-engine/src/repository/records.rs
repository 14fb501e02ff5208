//! Prune's condemnation records.

use bunker_backend::{ErrorKind, FileKind};
use bunker_format::condemnation::Condemnation;
use bunker_format::id::RecordId;
use bunker_format::object::ObjectKind;

use super::{parse_name, Repository};
use crate::{EngineError, Result};

/// Every condemnation record: the readable ones, and those that are not.
#[derive(Debug, Default)]
pub struct RecordList {
    /// Readable records, by generation.
    pub records: Vec<(RecordId, Condemnation)>,
    /// Records that cannot be read, and why.
    pub unreadable: Vec<(RecordId, EngineError)>,
}

impl<S> Repository<S> {
    /// Every condemnation record (prune's pending deletions), and the names
    /// of those that cannot be read.
    pub fn condemnation_list(&self) -> Result<RecordList> {
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for f in self.backend.list(FileKind::Condemned)? {
            let Some(id) = parse_name::<RecordId>(&self.notices, FileKind::Condemned, &f.name)
            else {
                continue;
            };
            let label = format!("condemned/{}", f.name);
            let record = self
                .read_named(FileKind::Condemned, ObjectKind::Condemnation, &f.name)
                .and_then(|plain| {
                    Condemnation::decode(&plain).map_err(|e| EngineError::corrupt(label, e))
                });
            match record {
                Ok(r) => out.push((id, r)),
                Err(EngineError::Backend(e)) if e.kind == ErrorKind::NotFound => {}
                Err(e @ EngineError::Corrupt { .. }) => unreadable.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|(_, r)| r.generation);
        Ok(RecordList {
            records: out,
            unreadable,
        })
    }

    /// Every condemnation record. An unreadable record is an error: guessing
    /// what it condemned could lose data (prune removes it, under its lock).
    pub fn condemnations(&self) -> Result<Vec<(RecordId, Condemnation)>> {
        let list = self.condemnation_list()?;
        match list.unreadable.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(list.records),
        }
    }

    /// The readable condemnation records; unreadable ones are told. For
    /// writers: a prune refuses to delete anything while a record is
    /// unreadable, so ignoring its marks risks nothing.
    pub(super) fn readable_condemnations(&self) -> Result<Vec<(RecordId, Condemnation)>> {
        let list = self.condemnation_list()?;
        for (_, e) in list.unreadable {
            self.notices
                .add(format!("{e}; the next `bunker prune` removes it"));
        }
        Ok(list.records)
    }

    /// Writes (or rewrites) a condemnation record.
    pub fn write_condemnation(&self, id: &RecordId, record: &Condemnation) -> Result<()> {
        self.write_named(
            FileKind::Condemned,
            ObjectKind::Condemnation,
            &id.to_hex(),
            &record.encode(),
        )
    }
}

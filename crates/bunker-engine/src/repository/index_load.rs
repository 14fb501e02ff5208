//! Loading the index: every readable index file, with the packs that
//! storage no longer holds (or that a prune condemned) marked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bunker_backend::{ErrorKind, FileKind};
use bunker_format::blob::BlobType;
use bunker_format::id::{BlobId, IndexId, PackId};
use bunker_format::index::{IndexFile, IndexedPack};
use bunker_format::object::ObjectKind;

use super::{parse_name, Indexed, Open, Repository};
use crate::index::{BlobLocation, IndexBuilder, MasterIndex};
use crate::{EngineError, Result};

/// Everything read while loading the index, for callers that report
/// problems themselves (`check`).
pub struct IndexLoad {
    /// The repository with what could be read.
    pub repo: Repository<Indexed>,
    /// Index files that could not be read.
    pub errors: Vec<EngineError>,
    /// Every pack on storage with its size, listed after the index files
    /// were read (so every pack they name was written before the listing).
    pub stored: HashMap<PackId, u64>,
}

impl Repository<Open> {
    /// Loads every readable index file. An unreadable one is told (with the
    /// advice to run `repair index`) and left out, as are packs missing from
    /// storage: a blob stored again elsewhere is read from there.
    pub fn load_index(self) -> Result<Repository<Indexed>> {
        self.load_index_told(&HashSet::new())
    }

    /// Loads the index a writer uses: as [`load_index`](Self::load_index),
    /// with the packs a prune has condemned marked so that their blobs can
    /// be read but are never deduplicated against. A backup that started
    /// after a condemnation never references those packs, which is what lets
    /// prune delete them once the sessions that started earlier end. Blobs
    /// found only in packs missing from storage count as absent too, so a
    /// backup stores them again rather than reference lost data.
    ///
    /// Packs on storage that no index file names and no prune condemned
    /// (left by a backup that died or lost its connection before writing
    /// the index naming them, or being written by one running now) are
    /// adopted: read by their own authenticated headers and indexed, so
    /// what was uploaded is not uploaded again. A prune that condemns them
    /// later waits for this session and rescues what its snapshot uses
    /// (docs/FORMAT.md §11).
    pub fn load_index_for_writing(self) -> Result<Repository<Indexed>> {
        let condemned: HashSet<PackId> = self
            .readable_condemnations()?
            .into_iter()
            .flat_map(|(_, r)| r.packs)
            .collect();
        let load = self.load_index_report(&condemned)?;
        let indexed: HashSet<PackId> = load
            .repo
            .index()
            .packs()
            .iter()
            .map(|(id, _)| *id)
            .collect();
        let mut adopted = IndexFile::default();
        for (id, size) in &load.stored {
            if indexed.contains(id) || condemned.contains(id) {
                continue;
            }
            // A pack that does not open with this repository's keys is
            // someone else's, or damaged: prune deals with it.
            if let Ok(blobs) = load.repo.read_pack_header(id, *size) {
                adopted.packs.push(IndexedPack {
                    id: *id,
                    length: *size,
                    blobs,
                });
            }
        }
        if adopted.packs.is_empty() {
            return Ok(told(load));
        }
        load.repo.write_index(&adopted)?;
        load.repo.notices.add(format!(
            "adopted {} pack(s) that an interrupted backup uploaded without indexing: their data is not uploaded again",
            adopted.packs.len()
        ));
        load.repo.reopened().load_index_told(&condemned)
    }

    fn load_index_told(self, condemned: &HashSet<PackId>) -> Result<Repository<Indexed>> {
        Ok(told(self.load_index_report(condemned)?))
    }

    /// Loads every readable index file, with `condemned` packs marked, and
    /// returns what could not be read. Index files that vanish while being
    /// read (a prune replaced them) make it list and read again.
    pub fn load_index_report(self, condemned: &HashSet<PackId>) -> Result<IndexLoad> {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let mut index = IndexBuilder::new()?;
            let mut errors = Vec::new();
            let mut vanished = false;
            for file in self.read_index_files()? {
                match file {
                    Ok((id, f)) => index.add(id, &f, condemned)?,
                    Err(EngineError::Backend(e))
                        if e.kind == ErrorKind::NotFound && attempt < ATTEMPTS =>
                    {
                        vanished = true;
                        break;
                    }
                    Err(e) => errors.push(e),
                }
            }
            if vanished {
                continue;
            }
            // Listed after the index files were read: every pack they name
            // was written before them.
            let stored = self.stored_packs()?;
            let absent: HashSet<PackId> = index
                .packs()
                .iter()
                .filter(|(id, length)| stored.get(id) != Some(length))
                .map(|(id, _)| *id)
                .collect();
            if let Some(cache) = self.stored_file_cache() {
                let named: HashSet<String> = stored.keys().map(|id| id.to_hex()).collect();
                cache.retain_packs(|n| named.contains(n));
            }
            let index = Arc::new(index.finish(&absent)?);
            return Ok(IndexLoad {
                repo: self.with_state(Indexed {
                    index,
                    readahead: Default::default(),
                }),
                errors,
                stored,
            });
        }
        unreachable!("the last attempt returns")
    }
}

/// The loaded repository, with what could not be read told as notices.
fn told(load: IndexLoad) -> Repository<Indexed> {
    let notices = &load.repo.notices;

    for e in &load.errors {
        notices.add(format!(
            "{e}: left out of the index; `bunker repair index` rebuilds it from the packs"
        ));
    }
    let absent: Vec<(PackId, u64)> = load.repo.index().absent_packs().collect();
    if let Some((first, _)) = absent.iter().min() {
        let others = match absent.len() {
            1 => "",
            _ => " and others",
        };
        notices.add(format!(
            "{} pack(s) named by the index are missing from storage or damaged (pack {}{others}): data found only there is stored again by the next backup that has it; `bunker check` names what older snapshots lost",
            absent.len(),
            first.short()
        ));
    }
    load.repo
}

impl<S> Repository<S> {
    /// Reads every index file; each item is that file's id and content, or the error reading it.
    pub fn read_index_files(
        &self,
    ) -> Result<impl Iterator<Item = Result<(IndexId, IndexFile)>> + '_> {
        let files = self.backend.list_names(FileKind::Index)?;
        if let Some(cache) = self.stored_file_cache() {
            cache.retain_index_files(&files.iter().cloned().collect());
        }
        Ok(files.into_iter().filter_map(move |name| {
            let id: IndexId = parse_name(&self.notices, FileKind::Index, &name)?;
            Some(self.read_index_file(id))
        }))
    }

    /// Reads one index file.
    fn read_index_file(&self, id: IndexId) -> Result<(IndexId, IndexFile)> {
        {
            let name = id.to_hex();
            let plain = match self.stored_file_cache() {
                Some(cache) => self.read_object_cached(
                    FileKind::Index,
                    ObjectKind::Index,
                    &name,
                    |n| cache.index_file(n),
                    |n, b| cache.keep_index_file(n, b),
                )?,
                None => self.read_object(FileKind::Index, ObjectKind::Index, &name)?,
            };
            let file = IndexFile::decode(&plain)
                .map_err(|e| EngineError::corrupt(format!("index/{name}"), e))?;
            Ok((id, file))
        }
    }

    /// Writes an index file.
    pub fn write_index(&self, file: &IndexFile) -> Result<IndexId> {
        Ok(IndexId(self.write_object(
            FileKind::Index,
            ObjectKind::Index,
            &file.encode(),
        )?))
    }
}

impl Repository<Indexed> {
    /// The same repository with every index file read again (after this
    /// process or another changed them).
    pub fn reload_index(&self) -> Result<Repository<Indexed>> {
        self.reopened().load_index()
    }

    /// The loaded index.
    pub fn index(&self) -> &Arc<MasterIndex> {
        &self.state.index
    }

    /// Where a blob is stored; an error if no index has it.
    pub fn locate(&self, kind: BlobType, id: &BlobId) -> Result<BlobLocation> {
        self.index()
            .get(id)?
            .ok_or_else(|| EngineError::BlobMissing {
                kind: kind.name(),
                id: id.to_hex(),
            })
    }
}

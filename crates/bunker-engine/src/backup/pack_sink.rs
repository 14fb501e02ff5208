//! The end of the backup pipeline: sealed blobs are appended to open packs as
//! they come, a full pack is stored by the thread that filled it, and index
//! files follow the packs they describe, written every [`INDEX_FLUSH_PACKS`]
//! packs so an interrupted backup leaves indexed packs the next backup reuses.
//!
//! Packs are staged by the backend (a temporary file on local storage), so
//! no pack is ever whole in memory: the backup's memory does not grow with
//! the pack size.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bunker_backend::{FileKind, StagedFile};
use bunker_format::blob::{BlobType, EncodedBlob};
use bunker_format::id::{BlobId, PackId};
use bunker_format::index::{IndexFile, IndexedPack};
use bunker_format::pack::PackLayout;

use crate::index::MasterIndex;
use crate::progress::Progress;
use crate::repository::{Indexed, Repository};
use crate::{EngineError, Result};

/// Write an index file after this many packs.
const INDEX_FLUSH_PACKS: usize = 32;
/// Bytes gathered before they go to a pack's staged file: blobs of small
/// files and directory pieces are a few hundred bytes, and one write each
/// cost a system call (and ext4 the zeroing of a fresh page) per blob.
const WRITE_BUFFER: usize = 256 << 10;

/// Totals of what the sink wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct SinkStats {
    /// Blobs added.
    pub blobs: u64,
    /// Plaintext bytes of the blobs added.
    pub raw_bytes: u64,
    /// Bytes written to storage: packs and index files.
    pub stored_bytes: u64,
}

/// A pack being written: its staged bytes (none in a dry run), those not
/// yet written to it, their hash so far, which names the pack, and its layout.
struct OpenPack {
    kind: BlobType,
    staged: Option<StagedFile>,
    unwritten: Vec<u8>,
    hash: blake3::Hasher,
    layout: PackLayout,
}

impl OpenPack {
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.hash.update(bytes);
        if self.unwritten.len() + bytes.len() > WRITE_BUFFER {
            self.write_out()?;
        }
        // A large blob goes straight to the file, not copied first.
        match bytes.len() >= WRITE_BUFFER {
            true => write_staged(&mut self.staged, bytes),
            false => {
                if self.staged.is_some() {
                    self.unwritten.extend_from_slice(bytes);
                }
                Ok(())
            }
        }
    }

    /// Writes the bytes gathered so far to the staged file.
    fn write_out(&mut self) -> Result<()> {
        write_staged(&mut self.staged, &self.unwritten)?;
        self.unwritten.clear();
        Ok(())
    }
}

/// Appends `bytes` to a pack's staged file (none in a dry run).
fn write_staged(staged: &mut Option<StagedFile>, bytes: &[u8]) -> Result<()> {
    match staged {
        Some(staged) if !bytes.is_empty() => staged
            .append(bytes)
            .map_err(|e| EngineError::io("a pack being written", e)),
        _ => Ok(()),
    }
}

/// Accepts sealed blobs from many threads; see the module docs.
pub struct PackSink {
    repo: Arc<Repository<Indexed>>,
    dry_run: bool,
    known: Arc<MasterIndex>,
    claimed: Mutex<HashSet<BlobId>>,
    /// One open pack per blob type.
    open: [Mutex<Option<OpenPack>>; 2],
    pack_size: usize,
    pending: Mutex<IndexFile>,
    failure: Mutex<Option<EngineError>>,
    blobs: AtomicU64,
    raw_bytes: AtomicU64,
    stored_bytes: AtomicU64,
    /// Which repository this is among several, and where to say what it stored.
    reporter: Option<(usize, Arc<dyn Progress>)>,
}

impl PackSink {
    /// A sink writing into `repo` (nothing, in a dry run).
    pub fn new(repo: Arc<Repository<Indexed>>, dry_run: bool) -> Self {
        PackSink {
            pack_size: repo.config().pack_size as usize,
            known: repo.index().clone(),
            repo,
            dry_run,
            claimed: Mutex::new(HashSet::new()),
            open: [Mutex::new(None), Mutex::new(None)],
            pending: Mutex::new(IndexFile::default()),
            failure: Mutex::new(None),
            blobs: AtomicU64::new(0),
            raw_bytes: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
            reporter: None,
        }
    }

    /// Reports each pack stored as progress of repository `target`.
    pub fn report_as(mut self, target: usize, progress: Arc<dyn Progress>) -> Self {
        self.reporter = Some((target, progress));
        self
    }

    /// True exactly once per new blob id: the caller then must [`add`](Self::add) it.
    /// False if the repository or this backup already has it. An index that
    /// cannot be read fails the sink, so [`finish`](Self::finish) reports it.
    pub fn claim(&self, id: &BlobId) -> Result<bool> {
        match self.known.contains(id) {
            Ok(true) => Ok(false),
            Ok(false) => Ok(self.claimed.lock().expect("lock").insert(*id)),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// True if the repository or this backup holds `id` already (an index
    /// that cannot be read counts as not holding it).
    pub fn holds(&self, id: &BlobId) -> bool {
        self.claimed.lock().expect("lock").contains(id) || self.known.contains(id).unwrap_or(false)
    }

    /// True once a storage failure stopped this sink.
    pub fn failed(&self) -> bool {
        self.failure.lock().expect("lock").is_some()
    }

    /// Appends a sealed blob; stores the pack when full.
    pub fn add(&self, blob: EncodedBlob) -> Result<()> {
        self.check_failure()?;
        self.blobs.fetch_add(1, Ordering::Relaxed);
        self.raw_bytes
            .fetch_add(blob.raw_length as u64, Ordering::Relaxed);
        let full = {
            let mut slot = self.open[slot_of(blob.kind)].lock().expect("lock");
            let pack = match &mut *slot {
                Some(pack) => pack,
                None => slot.insert(self.start_pack(blob.kind).map_err(|e| self.fail(e))?),
            };
            pack.append(&blob.bytes).map_err(|e| self.fail(e))?;
            pack.layout.push(&blob);
            if pack.layout.len() >= self.pack_size {
                slot.take()
            } else {
                None
            }
        };
        match full {
            Some(pack) => self.store(pack).map_err(|e| self.fail(e)),
            None => Ok(()),
        }
    }

    fn start_pack(&self, kind: BlobType) -> Result<OpenPack> {
        let staged = match self.dry_run {
            true => None,
            false => Some(self.repo.backend().stage(FileKind::Pack)?),
        };
        Ok(OpenPack {
            kind,
            staged,
            unwritten: Vec::new(),
            hash: bunker_format::id::storage_hasher(),
            layout: PackLayout::default(),
        })
    }

    /// Ends a pack with its header, stores it, and queues its index entry.
    fn store(&self, mut pack: OpenPack) -> Result<()> {
        let blob_bytes = pack.layout.len() as u64;
        let (tail, entries) = std::mem::take(&mut pack.layout).finish(self.repo.keys());
        pack.append(&tail)?;
        pack.write_out()?;
        let id = PackId(*pack.hash.finalize().as_bytes());
        let length = blob_bytes + tail.len() as u64;
        if let Some(mut staged) = pack.staged {
            let name = id.to_hex();
            // Trees are read again by every later backup, restore and
            // listing: a remote repository's cache keeps the packs of trees
            // this client wrote, so they are never downloaded.
            let cache = match pack.kind {
                BlobType::Tree => self.repo.stored_file_cache(),
                BlobType::Data => None,
            };
            // The pack's bytes, read back once for whoever needs them.
            let bytes = match self.repo.config().parity || cache.is_some() {
                true => Some(
                    staged
                        .read_all()
                        .map_err(|e| EngineError::io("a pack being written", e))?,
                ),
                false => None,
            };
            // Parity first: a pack is never visible without it.
            if let (true, Some(bytes)) = (self.repo.config().parity, &bytes) {
                let parity = bunker_format::parity::encode(bytes);
                self.repo
                    .backend()
                    .write(FileKind::Parity, &name, &parity)?;
            }
            self.repo.backend().commit(FileKind::Pack, &name, staged)?;
            if let (Some(cache), Some(bytes)) = (cache, &bytes) {
                cache.keep_pack(&name, bytes);
            }
        }
        self.stored_bytes.fetch_add(length, Ordering::Relaxed);
        if let Some((target, progress)) = &self.reporter {
            progress.stored(*target, length);
        }
        self.pending.lock().expect("lock").packs.push(IndexedPack {
            id,
            length,
            blobs: entries,
        });
        self.flush_index(false)
    }

    fn flush_index(&self, force: bool) -> Result<()> {
        let file = {
            let mut pending = self.pending.lock().expect("lock");
            if pending.packs.is_empty() || (!force && pending.packs.len() < INDEX_FLUSH_PACKS) {
                return Ok(());
            }
            std::mem::take(&mut *pending)
        };
        if !self.dry_run {
            crate::failpoint::pause("backup-before-index");
            self.repo.write_index(&file)?;
            crate::failpoint::pause("backup-after-index");
        }
        Ok(())
    }

    /// Records the first failure; every later [`add`](Self::add) then stops,
    /// and [`finish`](Self::finish) reports it.
    fn fail(&self, e: EngineError) -> EngineError {
        self.failure.lock().expect("lock").get_or_insert(e);
        EngineError::Aborted
    }

    fn check_failure(&self) -> Result<()> {
        if self.failure.lock().expect("lock").is_some() {
            return Err(EngineError::Aborted);
        }
        Ok(())
    }

    /// After a storage failure: index the packs already written so the next
    /// backup reuses them, or, when even that fails (a full disk), remove
    /// them so they do not keep holding the space.
    fn salvage(&self) {
        let file = std::mem::take(&mut *self.pending.lock().expect("lock"));
        if self.dry_run || file.packs.is_empty() || self.repo.write_index(&file).is_ok() {
            return;
        }
        for pack in &file.packs {
            let backend = self.repo.backend();
            let _ = backend.remove(FileKind::Pack, &pack.id.to_hex());
            let _ = backend.remove(FileKind::Parity, &pack.id.to_hex());
        }
    }

    /// Stores the open packs and writes the last index.
    pub fn finish(&self) -> Result<SinkStats> {
        if self.failure.lock().expect("lock").is_none() {
            for slot in &self.open {
                let open = slot.lock().expect("lock").take();
                if let Some(pack) = open {
                    if let Err(e) = self.store(pack) {
                        self.fail(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = self.failure.lock().expect("lock").take() {
            self.salvage();
            return Err(e);
        }
        self.flush_index(true)?;
        Ok(SinkStats {
            blobs: self.blobs.load(Ordering::Relaxed),
            raw_bytes: self.raw_bytes.load(Ordering::Relaxed),
            stored_bytes: self.stored_bytes.load(Ordering::Relaxed),
        })
    }
}

fn slot_of(kind: BlobType) -> usize {
    match kind {
        BlobType::Data => 0,
        BlobType::Tree => 1,
    }
}

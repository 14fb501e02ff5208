//! The end of the backup pipeline: sealed blobs go into packs, packs go to
//! storage on uploader threads, and index files follow the packs they
//! describe, written every [`INDEX_FLUSH_PACKS`] packs so an interrupted
//! backup leaves indexed packs the next backup reuses.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bunker_backend::FileKind;
use bunker_format::blob::{BlobType, EncodedBlob};
use bunker_format::id::{storage_name, BlobId, PackId};
use bunker_format::index::{IndexFile, IndexedPack};
use bunker_format::pack::{PackBuilder, PackEntry};
use crossbeam_channel::{bounded, Sender};

use crate::index::MasterIndex;
use crate::repository::{Indexed, Repository};
use crate::{EngineError, Result};

/// Write an index file after this many packs.
const INDEX_FLUSH_PACKS: usize = 32;
/// Uploads that may run at once.
const UPLOADERS: usize = 2;

/// A finished pack on its way to storage: its bytes and what it holds.
type SealedPack = (Vec<u8>, Vec<PackEntry>);

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

struct Shared {
    repo: Arc<Repository<Indexed>>,
    dry_run: bool,
    pending: Mutex<IndexFile>,
    stored_bytes: AtomicU64,
    failure: Mutex<Option<EngineError>>,
}

impl Shared {
    fn fail(&self, e: EngineError) {
        self.failure.lock().expect("lock").get_or_insert(e);
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

    fn upload(&self, bytes: Vec<u8>, entries: Vec<PackEntry>) -> Result<()> {
        let name = storage_name(&bytes);
        let length = bytes.len() as u64;
        if !self.dry_run {
            // Parity first: a pack is never visible without it.
            if self.repo.config().parity {
                let parity = bunker_format::parity::encode(&bytes);
                self.repo.backend().write(FileKind::Parity, &name, parity)?;
            }
            self.repo.backend().write(FileKind::Pack, &name, bytes)?;
        }
        self.stored_bytes.fetch_add(length, Ordering::Relaxed);
        let id: PackId = name.parse().expect("storage names are hex ids");
        self.pending.lock().expect("lock").packs.push(IndexedPack {
            id,
            length,
            blobs: entries,
        });
        self.flush_index(false)
    }
}

/// Accepts sealed blobs from many threads; see the module docs.
pub struct PackSink {
    shared: Arc<Shared>,
    known: Arc<MasterIndex>,
    claimed: Mutex<HashSet<BlobId>>,
    open: [Mutex<PackBuilder>; 2],
    pack_size: usize,
    /// Bytes reserved per open pack: allocated once, so a filling pack never
    /// doubles its buffer (untouched reserved pages cost no memory).
    capacity: usize,
    upload_tx: Mutex<Option<Sender<SealedPack>>>,
    uploaders: Mutex<Vec<JoinHandle<()>>>,
    blobs: AtomicU64,
    raw_bytes: AtomicU64,
}

impl PackSink {
    /// Starts the uploader threads.
    pub fn new(repo: Arc<Repository<Indexed>>, dry_run: bool) -> Self {
        let pack_size = repo.config().pack_size as usize;
        let capacity = pack_size + repo.config().chunker.max_size as usize + (1 << 16);
        let known = repo.index().clone();
        let shared = Arc::new(Shared {
            repo,
            dry_run,
            pending: Mutex::new(IndexFile::default()),
            stored_bytes: AtomicU64::new(0),
            failure: Mutex::new(None),
        });
        let (tx, rx) = bounded::<SealedPack>(1);
        let uploaders = (0..UPLOADERS)
            .map(|i| {
                let rx = rx.clone();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("bunker-upload-{i}"))
                    .spawn(move || {
                        for (bytes, entries) in rx {
                            if let Err(e) = shared.upload(bytes, entries) {
                                shared.fail(e);
                                return;
                            }
                        }
                    })
                    .expect("spawn uploader thread")
            })
            .collect();
        PackSink {
            shared,
            known,
            claimed: Mutex::new(HashSet::new()),
            open: [
                Mutex::new(PackBuilder::with_capacity(capacity)),
                Mutex::new(PackBuilder::with_capacity(capacity)),
            ],
            pack_size,
            capacity,
            upload_tx: Mutex::new(Some(tx)),
            uploaders: Mutex::new(uploaders),
            blobs: AtomicU64::new(0),
            raw_bytes: AtomicU64::new(0),
        }
    }

    /// True exactly once per new blob id: the caller then must [`add`](Self::add) it.
    /// False if the repository or this backup already has it.
    pub fn claim(&self, id: &BlobId) -> bool {
        !self.known.contains(id) && self.claimed.lock().expect("lock").insert(*id)
    }

    /// Appends a sealed blob; sends the pack to storage when full.
    pub fn add(&self, blob: EncodedBlob) -> Result<()> {
        self.check_failure()?;
        self.blobs.fetch_add(1, Ordering::Relaxed);
        self.raw_bytes
            .fetch_add(blob.raw_length as u64, Ordering::Relaxed);
        let slot = &self.open[slot_of(blob.kind)];
        let full = {
            let mut builder = slot.lock().expect("lock");
            builder.push(blob);
            if builder.len() >= self.pack_size {
                Some(std::mem::replace(
                    &mut *builder,
                    PackBuilder::with_capacity(self.capacity),
                ))
            } else {
                None
            }
        };
        if let Some(builder) = full {
            self.send(builder)?;
        }
        Ok(())
    }

    fn send(&self, builder: PackBuilder) -> Result<()> {
        let (bytes, entries) = builder.finish(self.shared.repo.keys());
        let tx = self.upload_tx.lock().expect("lock").clone();
        match tx {
            Some(tx) if tx.send((bytes, entries)).is_ok() => Ok(()),
            _ => Err(EngineError::Aborted),
        }
    }

    fn check_failure(&self) -> Result<()> {
        if self.shared.failure.lock().expect("lock").is_some() {
            return Err(EngineError::Aborted);
        }
        Ok(())
    }

    /// Flushes the open packs, waits for every upload, writes the last index.
    pub fn finish(&self) -> Result<SinkStats> {
        let mut sent = Ok(());
        for slot in &self.open {
            let builder = std::mem::take(&mut *slot.lock().expect("lock"));
            if !builder.is_empty() && sent.is_ok() {
                // Fails only when the uploaders stopped on an error, which
                // is reported below instead of this `Aborted`.
                sent = self.send(builder);
            }
        }
        self.upload_tx.lock().expect("lock").take();
        for handle in self.uploaders.lock().expect("lock").drain(..) {
            let _ = handle.join();
        }
        if let Some(e) = self.shared.failure.lock().expect("lock").take() {
            self.shared.salvage();
            return Err(e);
        }
        sent?;
        self.shared.flush_index(true)?;
        Ok(SinkStats {
            blobs: self.blobs.load(Ordering::Relaxed),
            raw_bytes: self.raw_bytes.load(Ordering::Relaxed),
            stored_bytes: self.shared.stored_bytes.load(Ordering::Relaxed),
        })
    }
}

fn slot_of(kind: BlobType) -> usize {
    match kind {
        BlobType::Data => 0,
        BlobType::Tree => 1,
    }
}

//! A synthetic repository of many tiny chunks, to measure memory and time at
//! a scale no test tree reaches: `scripts/bench --scale` (100 million chunks)
//! and the memory-formula test in CI (docs/FORMAT.md §12). Built with the
//! `synthetic` feature only.
//!
//! Chunk `i` is 32 bytes (`i` as 8 little-endian bytes, then 24 bytes of the
//! run's seed), stored as a real data blob: keyed id, compressed, sealed, in
//! real packs of `blobs_per_pack` blobs with real index files. Every command
//! reads it as it reads what a backup wrote; only the chunks are small, so
//! that a count of chunks that would be 50 TB at the default chunk size fits
//! on one disk.
//!
//! Half the chunks are shared by every snapshot (`/shared`); the other half
//! is cut into one part per snapshot (`/own`), as if each day's backup had
//! brought new data. Forgetting a snapshot therefore frees its own part.

use bunker_backend::FileKind;
use bunker_format::blob::{encode_blob, BlobType, EncodedBlob};
use bunker_format::directory::DirectoryWriter;
use bunker_format::id::{storage_hasher, BlobId, PackId, SnapshotId};
use bunker_format::index::{IndexFile, IndexedPack};
use bunker_format::pack::PackLayout;
use bunker_format::snapshot::{BackupMode, Snapshot, SnapshotSummary};
use bunker_format::tree::{Node, NodeKind};
use rayon::prelude::*;

use crate::repository::{Open, Repository};
use crate::{EngineError, Result};

/// What to generate.
#[derive(Clone, Debug)]
pub struct SyntheticSpec {
    /// Data chunks in all.
    pub chunks: u64,
    /// Snapshots, one day apart.
    pub snapshots: u32,
    /// Chunks per file (the last file of a part may hold fewer).
    pub chunks_per_file: u32,
    /// Files per directory.
    pub files_per_dir: u32,
    /// Data blobs per pack (at the default 16 MiB packs of 512 KiB chunks: 32).
    pub blobs_per_pack: u32,
    /// Makes the chunks of two runs differ.
    pub seed: [u8; 24],
}

/// What was generated.
#[derive(Clone, Debug, Default)]
pub struct SyntheticReport {
    /// Data chunks stored.
    pub chunks: u64,
    /// Packs stored (data and trees).
    pub packs: u64,
    /// Index files written.
    pub index_files: u64,
    /// Distinct file entries.
    pub files: u64,
    /// Tree blobs stored.
    pub trees: u64,
    /// Bytes stored in packs.
    pub stored_bytes: u64,
    /// The snapshots, oldest first.
    pub snapshots: Vec<SnapshotId>,
}

/// Packs written in parallel at a time.
const BATCH_PACKS: usize = 32;
/// Entries per index file: a backup writes 32 packs per file, about 1,000
/// entries at the default pack and chunk sizes; tiny blobs would make one
/// file of millions, which no backup writes.
const INDEX_ENTRIES: usize = 16_384;
/// Tree packs are cut at this many bytes.
const TREE_PACK_BYTES: usize = 4 << 20;
/// Plaintext bytes per chunk.
const CHUNK_LEN: u64 = 32;

/// Writes the synthetic content into an empty repository; `progress` is
/// told the chunks stored so far.
pub fn write_synthetic(
    repo: &Repository<Open>,
    spec: &SyntheticSpec,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SyntheticReport> {
    if spec.chunks == 0
        || spec.snapshots == 0
        || spec.chunks_per_file == 0
        || spec.files_per_dir == 0
        || spec.blobs_per_pack == 0
    {
        return Err(EngineError::Invalid(
            "every count of a synthetic repository must be at least 1".into(),
        ));
    }
    if repo.config().parity {
        return Err(EngineError::Invalid(
            "a synthetic repository is written without parity".into(),
        ));
    }
    let mut writer = Writer {
        repo,
        spec,
        pending: IndexFile::default(),
        trees: Vec::new(),
        tree_bytes: 0,
        report: SyntheticReport::default(),
    };
    writer.write_chunks(progress)?;
    // The parts: shared by all, then one per snapshot.
    let shared = spec.chunks / 2;
    let own = (spec.chunks - shared) / spec.snapshots as u64;
    let shared_tree = writer.write_part(0..shared)?;
    let mut trees = Vec::new();
    for s in 0..spec.snapshots as u64 {
        let start = shared + s * own;
        let end = match s + 1 == spec.snapshots as u64 {
            true => spec.chunks,
            false => start + own,
        };
        let own_tree = writer.write_part(start..end)?;
        let root = vec![dir_node(b"own", own_tree), dir_node(b"shared", shared_tree)];
        trees.push((writer.write_dir(&root)?, end - start + shared));
    }
    writer.flush_trees()?;
    writer.flush_index(true)?;
    const DAY_NS: i64 = 86_400 * 1_000_000_000;
    let first_ns =
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) - DAY_NS * trees.len() as i64;
    for (day, (tree, chunks)) in trees.into_iter().enumerate() {
        let snapshot = Snapshot {
            time_ns: first_ns + DAY_NS * day as i64,
            hostname: "synthetic".into(),
            username: "bunker".into(),
            paths: vec!["/synthetic".into()],
            mode: BackupMode::default(),
            tree,
            summary: SnapshotSummary {
                total_bytes: chunks * CHUNK_LEN,
                ..Default::default()
            },
            program_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        writer
            .report
            .snapshots
            .push(repo.write_snapshot(&snapshot)?);
    }
    Ok(writer.report)
}

struct Writer<'a> {
    repo: &'a Repository<Open>,
    spec: &'a SyntheticSpec,
    /// Packs stored but not yet indexed.
    pending: IndexFile,
    /// Tree blobs not yet in a pack, and their bytes.
    trees: Vec<EncodedBlob>,
    tree_bytes: usize,
    report: SyntheticReport,
}

impl Writer<'_> {
    /// Chunk `i`'s plaintext.
    fn plaintext(&self, i: u64) -> [u8; CHUNK_LEN as usize] {
        let mut p = [0u8; CHUNK_LEN as usize];
        p[..8].copy_from_slice(&i.to_le_bytes());
        p[8..].copy_from_slice(&self.spec.seed);
        p
    }

    fn chunk_id(&self, i: u64) -> BlobId {
        self.repo.keys().blob_id(&self.plaintext(i))
    }

    /// Every data chunk, a batch of packs at a time on every core.
    fn write_chunks(&mut self, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let per_pack = self.spec.blobs_per_pack as u64;
        let packs = self.spec.chunks.div_ceil(per_pack);
        let level = self.repo.config().compression_level;
        for batch in (0..packs).collect::<Vec<_>>().chunks(BATCH_PACKS) {
            let this = &*self;
            let stored: Vec<IndexedPack> = batch
                .par_iter()
                .map(|&p| {
                    let chunks = p * per_pack..((p + 1) * per_pack).min(this.spec.chunks);
                    let blobs = chunks
                        .map(|i| {
                            let plain = this.plaintext(i);
                            let id = this.repo.keys().blob_id(&plain);
                            encode_blob(this.repo.keys(), BlobType::Data, id, &plain, level)
                        })
                        .collect();
                    store_pack(this.repo, blobs)
                })
                .collect::<Result<_>>()?;
            for pack in stored {
                self.pending.packs.push(pack);
                self.flush_index(false)?;
            }
            progress(((batch[batch.len() - 1] + 1) * per_pack).min(self.spec.chunks));
        }
        Ok(())
    }

    /// The tree of one part: directories of files of its chunks.
    fn write_part(&mut self, chunks: std::ops::Range<u64>) -> Result<BlobId> {
        let per_file = self.spec.chunks_per_file as u64;
        let per_dir = self.spec.files_per_dir as u64;
        let files = (chunks.end - chunks.start).div_ceil(per_file);
        let mut dirs = Vec::new();
        for d in 0..files.div_ceil(per_dir) {
            let mut nodes = Vec::new();
            for f in d * per_dir..((d + 1) * per_dir).min(files) {
                let first = chunks.start + f * per_file;
                let content: Vec<BlobId> = (first..(first + per_file).min(chunks.end))
                    .map(|i| self.chunk_id(i))
                    .collect();
                let mut node = file_node(format!("f{f:07}").as_bytes());
                node.size = content.len() as u64 * CHUNK_LEN;
                node.content = content;
                nodes.push(node);
            }
            self.report.files += nodes.len() as u64;
            let tree = self.write_dir(&nodes)?;
            dirs.push(dir_node(format!("d{d:05}").as_bytes(), tree));
        }
        self.write_dir(&dirs)
    }

    /// Stores a directory of entries in name order as the repository's
    /// version cuts it.
    fn write_dir(&mut self, nodes: &[Node]) -> Result<BlobId> {
        let cutter = self.repo.piece_cutter();
        let mut blobs = Vec::new();
        let level = self.repo.config().compression_level;
        let keys = self.repo.keys();
        let root = DirectoryWriter::write_all(cutter.as_ref(), nodes, &mut |bytes: Vec<u8>| {
            let id = keys.blob_id(&bytes);
            blobs.push(encode_blob(keys, BlobType::Tree, id, &bytes, level));
            Ok::<_, EngineError>(id)
        })?;
        self.report.trees += blobs.len() as u64;
        self.tree_bytes += blobs.iter().map(|b| b.bytes.len()).sum::<usize>();
        self.trees.extend(blobs);
        if self.tree_bytes >= TREE_PACK_BYTES {
            self.flush_trees()?;
        }
        Ok(root)
    }

    /// Stores the tree blobs written so far as one pack.
    fn flush_trees(&mut self) -> Result<()> {
        if self.trees.is_empty() {
            return Ok(());
        }
        let pack = store_pack(self.repo, std::mem::take(&mut self.trees))?;
        self.tree_bytes = 0;
        self.pending.packs.push(pack);
        self.flush_index(false)
    }

    /// Indexes the stored packs once there are enough of them (or all, when
    /// `all`).
    fn flush_index(&mut self, all: bool) -> Result<()> {
        let entries: usize = self.pending.packs.iter().map(|p| p.blobs.len()).sum();
        if self.pending.packs.is_empty() || (!all && entries < INDEX_ENTRIES) {
            return Ok(());
        }
        let file = std::mem::take(&mut self.pending);
        self.report.packs += file.packs.len() as u64;
        self.report.chunks += file
            .packs
            .iter()
            .flat_map(|p| &p.blobs)
            .filter(|b| b.kind == BlobType::Data)
            .count() as u64;
        self.report.stored_bytes += file.packs.iter().map(|p| p.length).sum::<u64>();
        self.report.index_files += 1;
        self.repo.write_index(&file)?;
        Ok(())
    }
}

/// Stores sealed blobs as one pack, as the backup's pack sink lays them out.
fn store_pack(repo: &Repository<Open>, blobs: Vec<EncodedBlob>) -> Result<IndexedPack> {
    let mut layout = PackLayout::default();
    let mut bytes = Vec::with_capacity(blobs.iter().map(|b| b.bytes.len()).sum());
    for blob in &blobs {
        bytes.extend_from_slice(&blob.bytes);
        layout.push(blob);
    }
    let (tail, entries) = layout.finish(repo.keys());
    bytes.extend_from_slice(&tail);
    let mut hash = storage_hasher();
    hash.update(&bytes);
    let id = PackId(*hash.finalize().as_bytes());
    let mut staged = repo.backend().stage(FileKind::Pack)?;
    staged
        .append(&bytes)
        .map_err(|e| EngineError::io("a synthetic pack", e))?;
    repo.backend()
        .commit(FileKind::Pack, &id.to_hex(), staged)?;
    Ok(IndexedPack {
        id,
        length: bytes.len() as u64,
        blobs: entries,
    })
}

fn file_node(name: &[u8]) -> Node {
    Node {
        name: name.to_vec(),
        kind: NodeKind::File,
        mode: 0o644,
        mtime_sec: 1_700_000_000,
        links: 1,
        ..Default::default()
    }
}

fn dir_node(name: &[u8], tree: BlobId) -> Node {
    Node {
        name: name.to_vec(),
        kind: NodeKind::Dir,
        mode: 0o755,
        mtime_sec: 1_700_000_000,
        subtree: Some(tree),
        ..Default::default()
    }
}

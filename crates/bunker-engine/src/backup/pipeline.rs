//! The threads of a backup and the queues between them.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bunker_format::blob::BlobType;
use bunker_format::chunker::Chunker;
use bunker_format::crypto::RepoKeys;
use bunker_format::directory::PieceCutter;
use bunker_format::id::BlobId;
use bunker_format::tree::{Node, NodeKind};
use bunker_source::{walk, ReachablePath, Visitor, WalkOptions};
use crossbeam_channel::{bounded, Sender};

use super::pack_sink::SinkStats;
use super::parent_trees::{ParentDir, ParentTrees};
use super::targets::{Mask, Targets};
use super::tree_builder::{build_trees, store_tree, FileReply, TreeEvent};
use super::{stream_filename, StreamSource};
use crate::cancel::Cancel;
use crate::identity::now_ns;
use crate::progress::Progress;
use crate::repository::{Indexed, Repository};
use crate::{EngineError, Result};

/// Files that may wait for a reader.
const FILE_QUEUE: usize = 64;
/// Walk events sent to the tree builder at once: one hand-over per event
/// woke the builder (and made it spin) once per file.
const EVENT_BATCH: usize = 256;
/// Batches of walk events that may wait for the tree builder.
const EVENT_QUEUE: usize = 16;

/// A file's content as stored.
pub(super) struct FileContent {
    pub ids: Vec<BlobId>,
    pub size: u64,
    /// Size or mtime differed before and after reading.
    pub changed: bool,
}

/// Why a file's content could not be stored.
pub(super) enum ReadError {
    /// The source could not be read: skip the file, go on.
    Source(std::io::Error),
    /// The pipeline stopped because another stage failed.
    Aborted,
}

/// What every stage shares.
pub(super) struct Stage {
    pub keys: RepoKeys,
    pub chunker: Chunker,
    /// How directories are cut into tree blobs (format version 4 on).
    pub piece_cutter: Option<PieceCutter>,
    pub targets: Arc<Targets>,
    pub progress: Arc<dyn Progress>,
    seal_tx: Sender<(BlobType, BlobId, Vec<u8>, Mask)>,
    bytes_read: AtomicU64,
    /// This backup's cancellation.
    pub cancel: Cancel,
}

impl Stage {
    /// Queues a blob for sealing for every repository that lacks it.
    pub fn submit(&self, kind: BlobType, id: BlobId, data: Vec<u8>) -> Result<(), ReadError> {
        let mask = self.targets.claim(&id).map_err(|_| ReadError::Aborted)?;
        if mask != 0 {
            self.seal_tx
                .send((kind, id, data, mask))
                .map_err(|_| ReadError::Aborted)?;
        }
        Ok(())
    }

    /// Brings an unchanged file's content to the copies that lack it, read
    /// from the primary, where it is stored: the source is not read again
    /// unless the primary cannot give a blob back.
    fn fill_copies(
        &self,
        path: &Path,
        ids: Vec<BlobId>,
        size: u64,
    ) -> Result<FileContent, ReadError> {
        for id in &ids {
            if !self.targets.copies_lack_any(std::slice::from_ref(id)) {
                continue;
            }
            match self.targets.primary().read_blob(BlobType::Data, id) {
                Ok(data) => self.submit(BlobType::Data, *id, data)?,
                Err(_) => return self.store_file(path),
            }
        }
        Ok(FileContent {
            ids,
            size,
            changed: false,
        })
    }

    /// Chunks a stream and submits its chunks; returns the blob list and length.
    fn store_stream(&self, reader: impl Read) -> Result<(Vec<BlobId>, u64), ReadError> {
        thread_local! {
            /// Each reader thread's chunking buffer, reused from file to file.
            static BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut stream = self.chunker.stream_with_buffer(reader, BUFFER.take());
        let result = self.store_chunks(&mut stream);
        BUFFER.set(stream.into_buffer());
        result
    }

    fn store_chunks(
        &self,
        chunks: &mut impl Iterator<Item = std::io::Result<Vec<u8>>>,
    ) -> Result<(Vec<BlobId>, u64), ReadError> {
        let mut ids = Vec::new();
        let mut size = 0u64;
        for chunk in chunks {
            if self.cancel.is_cancelled() {
                return Err(ReadError::Aborted);
            }
            let chunk = chunk.map_err(ReadError::Source)?;
            let id = self.keys.blob_id(&chunk);
            let len = chunk.len() as u64;
            self.submit(BlobType::Data, id, chunk)?;
            size += len;
            self.bytes_read.fetch_add(len, Ordering::Relaxed);
            self.progress.advance(0, len);
            ids.push(id);
        }
        Ok((ids, size))
    }

    fn store_file(&self, path: &Path) -> Result<FileContent, ReadError> {
        let file = open_for_backup(path).map_err(ReadError::Source)?;
        let before = file.metadata().map_err(ReadError::Source)?;
        let (ids, size) = self.store_stream(&file)?;
        crate::failpoint::pause("backup-file-read");
        let after = file.metadata().map_err(ReadError::Source)?;
        let changed = before.size() != after.size()
            || before.mtime() != after.mtime()
            || before.mtime_nsec() != after.mtime_nsec()
            || size != after.size();
        self.progress.advance(1, 0);
        Ok(FileContent { ids, size, changed })
    }
}

/// Opens without updating the access time when the OS allows it.
fn open_for_backup(path: &Path) -> std::io::Result<File> {
    let reach = ReachablePath::new(path)?;
    let path = reach.path();
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        other => other,
    }
}

/// Counters of the walk.
#[derive(Default, Clone, Copy)]
pub(super) struct Counts {
    pub files: u64,
    /// Files not in the parent.
    pub new: u64,
    /// Files in the parent whose metadata changed: read again.
    pub changed: u64,
    /// Files whose content was taken from the parent without reading.
    pub unmodified: u64,
    pub dirs: u64,
    pub specials: u64,
    pub bytes_read: u64,
    pub total_bytes: u64,
}

/// What one pipeline run produced.
pub(super) struct RunResult {
    pub root: BlobId,
    pub counts: Counts,
    pub stored: Stored,
    pub skipped: Vec<String>,
    pub warnings: Vec<String>,
}

struct Sealers {
    handles: Vec<JoinHandle<()>>,
}

/// Starts the sealers for `repos` (the primary first, whose keys name blobs
/// and whose chunker cuts them).
fn start(
    repos: &[Arc<Repository<Indexed>>],
    progress: Arc<dyn Progress>,
    dry_run: bool,
) -> (Arc<Stage>, Sealers) {
    let repo = &repos[0];
    let targets = Arc::new(Targets::new(repos, dry_run, &progress));
    // A sealer per core, and two more per extra repository: a sealer that
    // filled a pack waits for its storage (an fsync, an upload) while the
    // others go on sealing.
    let threads =
        std::thread::available_parallelism().map_or(2, |n| n.get()) + 2 * (repos.len() - 1);
    let (seal_tx, seal_rx) = bounded::<(BlobType, BlobId, Vec<u8>, Mask)>(2 * threads);
    let handles = (0..threads)
        .map(|i| {
            let rx = seal_rx.clone();
            let targets = targets.clone();
            std::thread::Builder::new()
                .name(format!("bunker-seal-{i}"))
                .spawn(move || {
                    for (kind, id, data, mask) in rx {
                        crate::failpoint::panic_at("backup-seal");
                        if !targets.store(kind, id, &data, mask) {
                            return;
                        }
                    }
                })
                .expect("spawn sealer thread")
        })
        .collect();
    let stage = Arc::new(Stage {
        keys: repo.keys().clone(),
        chunker: repo.chunker().clone(),
        piece_cutter: repo.piece_cutter(),
        targets,
        progress,
        seal_tx,
        bytes_read: AtomicU64::new(0),
        cancel: repo.cancel().clone(),
    });
    (stage, Sealers { handles })
}

/// Waits for the sealers and the sinks; `outcome` is what the producing side
/// returned. A storage failure wins over the `Aborted` it caused upstream;
/// while one repository still stands, each one's result is returned.
fn complete<T>(
    stage: Arc<Stage>,
    sealers: Sealers,
    outcome: Result<T>,
) -> Result<(T, Stored, u64)> {
    let stage = Arc::try_unwrap(stage)
        .unwrap_or_else(|_| panic!("pipeline stage still shared after its threads ended"));
    let Stage {
        targets,
        seal_tx,
        bytes_read,
        cancel,
        ..
    } = stage;
    let cancelled = cancel.is_cancelled();
    drop(seal_tx);
    let panicked = join_all(sealers.handles);
    // The sinks are finished in every case: packs already sealed are written
    // and indexed, so an interrupted or failed backup leaves them for the next one.
    let mut stored = targets.finish();
    // A sealer that died may have dropped a blob the trees reference.
    if let Some(p) = panicked {
        return Err(EngineError::Internal(format!(
            "a backup thread failed: {p}"
        )));
    }
    if outcome.is_err() || stored.iter().all(Result::is_err) {
        if let Some(i) = stored.iter().position(Result::is_err) {
            return Err(stored.swap_remove(i).expect_err("an error"));
        }
    }
    // An interrupted walk ends early without an error of its own: never let
    // its partial tree become a snapshot.
    if cancelled {
        return Err(EngineError::Interrupted(
            "what was already stored is kept, and the next backup reuses it",
        ));
    }
    outcome.map(|v| (v, stored, bytes_read.into_inner()))
}

/// What each repository stored (the primary first), or why it failed.
pub(super) type Stored = Vec<Result<SinkStats>>;

/// Joins threads; the message of the first that panicked, if any did.
fn join_all(handles: Vec<JoinHandle<()>>) -> Option<String> {
    let mut first = None;
    for h in handles {
        if let Err(p) = h.join() {
            first.get_or_insert_with(|| panic_message(&p));
        }
    }
    first
}

/// A panic's message, as `panic!` was given it.
pub(crate) fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

struct FileJob {
    path: PathBuf,
    /// Content the primary holds, unchanged, that a copy lacks: read from
    /// the primary instead of the source.
    fill: Option<(Vec<BlobId>, u64)>,
    reply: Sender<Result<FileContent, ReadError>>,
}

/// Walks the paths and stores everything in `repos` (the primary first).
pub(super) fn run_walk(
    repos: &[Arc<Repository<Indexed>>],
    paths: &[PathBuf],
    options: &WalkOptions,
    progress: Arc<dyn Progress>,
    dry_run: bool,
    parent: Option<BlobId>,
) -> Result<RunResult> {
    let repo = repos[0].clone();
    let (stage, sealers) = start(repos, progress, dry_run);
    let (job_tx, job_rx) = bounded::<FileJob>(FILE_QUEUE);
    let readers: Vec<JoinHandle<()>> = (0..2)
        .map(|i| {
            let rx = job_rx.clone();
            let stage = stage.clone();
            std::thread::Builder::new()
                .name(format!("bunker-read-{i}"))
                .spawn(move || {
                    for job in rx {
                        let content = match job.fill {
                            Some((ids, size)) => stage.fill_copies(&job.path, ids, size),
                            None => stage.store_file(&job.path),
                        };
                        let _ = job.reply.send(content);
                    }
                })
                .expect("spawn reader thread")
        })
        .collect();
    let (event_tx, event_rx) = bounded::<Vec<TreeEvent>>(EVENT_QUEUE);
    let builder = {
        let stage = stage.clone();
        std::thread::Builder::new()
            .name("bunker-trees".into())
            .spawn(move || build_trees(&stage, event_rx))
            .expect("spawn tree builder thread")
    };

    let mut feeder = Feeder {
        jobs: job_tx,
        events: event_tx,
        batch: Vec::with_capacity(EVENT_BATCH),
        counts: Counts::default(),
        skipped: Vec::new(),
        stopped: false,
        progress: stage.progress.clone(),
        parents: Vec::new(),
        parent_trees: ParentTrees::new(repo.clone(), stage.progress.clone()),
        repo: repo.clone(),
        targets: stage.targets.clone(),
    };
    let root = feeder.parent_trees.root(parent, Path::new("/"));
    feeder.parents.push(root);
    walk(paths, options, &mut feeder);
    feeder.flush();
    let Feeder {
        jobs,
        events,
        mut counts,
        mut skipped,
        ..
    } = feeder;
    drop(jobs);
    drop(events);
    let built = builder.join().unwrap_or_else(|p| {
        Err(EngineError::Internal(format!(
            "the tree builder failed: {}",
            panic_message(&p)
        )))
    });
    let built = match join_all(readers) {
        Some(p) => Err(EngineError::Internal(format!(
            "a reader thread failed: {p}"
        ))),
        None => built,
    };
    let (built, stored, bytes_read) = complete(stage, sealers, built)?;
    counts.bytes_read = bytes_read;
    skipped.extend(built.skipped);
    Ok(RunResult {
        root: built.root,
        counts,
        stored,
        skipped,
        warnings: built.warnings,
    })
}

/// Stores one stream as a file at the root of the snapshot.
pub(super) fn run_stream(
    repos: &[Arc<Repository<Indexed>>],
    source: &mut dyn StreamSource,
    progress: Arc<dyn Progress>,
    dry_run: bool,
) -> Result<RunResult> {
    let (stage, sealers) = start(repos, progress, dry_run);
    let outcome = (|| {
        let mut nodes: Vec<Node> = Vec::new();
        let mut total = 0;
        while let Some((name, reader)) = source.next_stream()? {
            stream_filename(&name)?;
            let (ids, size) = stage.store_stream(reader).map_err(|e| match e {
                ReadError::Source(e) => EngineError::io(&name, e),
                ReadError::Aborted => EngineError::Aborted,
            })?;
            let now = now_ns();
            nodes.push(Node {
                name: name.into_bytes(),
                kind: NodeKind::File,
                mode: 0o644,
                // SAFETY: getuid/getgid cannot fail.
                uid: unsafe { libc::getuid() },
                gid: unsafe { libc::getgid() },
                mtime_sec: now.div_euclid(1_000_000_000),
                mtime_nsec: now.rem_euclid(1_000_000_000) as u32,
                size,
                content: ids,
                ..Default::default()
            });
            total += size;
        }
        // A tree's entries are sorted by name, and unique.
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        if nodes.windows(2).any(|w| w[0].name == w[1].name) {
            return Err(EngineError::Internal("two streams with one name".into()));
        }
        let files = nodes.len() as u64;
        store_tree(&stage, &nodes).map(|root| (root, total, files))
    })();
    let ((root, size, files), stored, bytes_read) = complete(stage, sealers, outcome)?;
    let counts = Counts {
        files,
        new: files,
        bytes_read,
        total_bytes: size,
        ..Default::default()
    };
    Ok(RunResult {
        root,
        counts,
        stored,
        skipped: Vec::new(),
        warnings: Vec::new(),
    })
}

/// The walk's visitor: feeds readers and the tree builder.
struct Feeder {
    jobs: Sender<FileJob>,
    events: Sender<Vec<TreeEvent>>,
    /// Events not yet handed to the tree builder.
    batch: Vec<TreeEvent>,
    counts: Counts,
    skipped: Vec<String>,
    /// Set once a downstream stage has gone away: the walk's findings are dropped.
    stopped: bool,
    progress: Arc<dyn Progress>,
    /// The parent snapshot's listing of each directory on the current path.
    parents: Vec<ParentDir>,
    /// Reads those listings, one directory ahead of the walk.
    parent_trees: ParentTrees,
    repo: Arc<Repository<Indexed>>,
    targets: Arc<Targets>,
}

/// True if a file's metadata says its content cannot have changed since `old`.
fn unchanged(old: &Node, new: &Node) -> bool {
    old.kind == NodeKind::File
        && old.size == new.size
        && (old.mtime_sec, old.mtime_nsec) == (new.mtime_sec, new.mtime_nsec)
        && (old.ctime_sec, old.ctime_nsec) == (new.ctime_sec, new.ctime_nsec)
        && old.inode == new.inode
}

impl Feeder {
    /// The parent snapshot's entry with this name in the current directory.
    fn parent_entry(&self, name: &[u8]) -> Option<&Node> {
        self.parents.last()?.tree.as_ref()?.find(name)
    }

    /// The parent's content for a file whose metadata is unchanged, if every blob is still stored.
    fn reusable_content(&self, node: &Node) -> Option<Vec<BlobId>> {
        let old = self.parent_entry(&node.name)?;
        // An index that cannot be read makes the file read again, whose
        // blobs then meet the same error where it stops the backup.
        let stored = |id| self.repo.index().contains(id).unwrap_or(false);
        (unchanged(old, node) && old.content.iter().all(stored)).then(|| old.content.clone())
    }

    fn event(&mut self, e: TreeEvent) {
        self.batch.push(e);
        if self.batch.len() == EVENT_BATCH {
            self.flush();
        }
    }

    /// Hands a file to the readers (`fill`: content to copy from the
    /// primary); `None` once they have gone away.
    fn read(&mut self, path: &Path, fill: Option<(Vec<BlobId>, u64)>) -> Option<FileReply> {
        let (reply, content) = bounded(1);
        let job = FileJob {
            path: path.to_path_buf(),
            fill,
            reply,
        };
        if self.jobs.send(job).is_err() {
            self.stopped = true;
            return None;
        }
        Some(FileReply::Reading(content))
    }

    /// Hands the events gathered so far to the tree builder.
    fn flush(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(EVENT_BATCH));
        if !self.stopped && !batch.is_empty() && self.events.send(batch).is_err() {
            self.stopped = true;
        }
    }
}

impl Visitor for Feeder {
    fn enter_dir(&mut self, path: &Path, node: Node) {
        self.counts.dirs += 1;
        let parent = match self.parents.last_mut() {
            Some(current) => self.parent_trees.enter(current, &node.name, path),
            None => self.parent_trees.root(None, path),
        };
        self.parents.push(parent);
        self.event(TreeEvent::EnterDir(node));
    }

    fn leave_dir(&mut self, _path: &Path) {
        self.parents.pop();
        self.event(TreeEvent::LeaveDir);
    }

    fn file(&mut self, path: &Path, node: Node) {
        if self.stopped {
            return;
        }
        self.counts.files += 1;
        self.counts.total_bytes += node.size;
        if let Some(ids) = self.reusable_content(&node) {
            self.counts.unmodified += 1;
            self.progress.advance(1, node.size);
            let content = match self.targets.copies_lack_any(&ids) {
                true => match self.read(path, Some((ids, node.size))) {
                    Some(reading) => reading,
                    None => return,
                },
                false => FileReply::Ready(FileContent {
                    ids,
                    size: node.size,
                    changed: false,
                }),
            };
            return self.event(TreeEvent::File {
                node,
                path: path.to_path_buf(),
                content,
            });
        }
        if self.parent_entry(&node.name).is_some() {
            self.counts.changed += 1;
        } else {
            self.counts.new += 1;
        }
        if let Some(content) = self.read(path, None) {
            self.event(TreeEvent::File {
                node,
                path: path.to_path_buf(),
                content,
            });
        }
    }

    fn special(&mut self, _path: &Path, node: Node) {
        self.counts.specials += 1;
        self.event(TreeEvent::Leaf(node));
    }

    fn error(&mut self, path: &Path, error: std::io::Error) {
        let message = format!("{}: {error}", path.display());
        self.progress.warning(&message);
        self.skipped.push(message);
    }

    fn stop(&self) -> bool {
        self.stopped || self.repo.cancel().is_cancelled()
    }
}

/// Counts the sources in the background so progress can show totals and an ETA.
pub(super) fn spawn_scanner(
    paths: Vec<PathBuf>,
    options: WalkOptions,
    progress: Arc<dyn Progress>,
) {
    struct Scan {
        files: u64,
        bytes: u64,
        progress: Arc<dyn Progress>,
    }
    impl Visitor for Scan {
        fn enter_dir(&mut self, _: &Path, _: Node) {}
        fn leave_dir(&mut self, _: &Path) {}
        fn file(&mut self, _: &Path, node: Node) {
            self.files += 1;
            self.bytes += node.size;
            if self.files.is_multiple_of(1000) {
                self.progress.set_total(self.files, self.bytes);
            }
        }
        fn special(&mut self, _: &Path, _: Node) {}
        fn error(&mut self, _: &Path, _: std::io::Error) {}
    }
    let _ = std::thread::Builder::new()
        .name("bunker-scan".into())
        .spawn(move || {
            let mut scan = Scan {
                files: 0,
                bytes: 0,
                progress,
            };
            walk(&paths, &options, &mut scan);
            scan.progress.set_total(scan.files, scan.bytes);
        });
}

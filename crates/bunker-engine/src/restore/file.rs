//! Writing one file's content: fresh, or rebuilt from what is already there.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use bunker_format::blob::BlobType;
use bunker_format::id::BlobId;
use bunker_format::tree::Node;
use bunker_source::ReachablePath;

use super::{Overwrite, PhaseClock, RestoreOptions};
use crate::progress::Progress;
use crate::repository::{Indexed, Repository};
use crate::{EngineError, Result};

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FileOutcome {
    /// Did not exist: written.
    Created,
    /// Existed with other content: rebuilt; `reused` bytes came from the old file.
    Rewritten { reused: u64 },
    /// Existed with the same content: left as it was.
    Unchanged,
    /// Existed and `--overwrite` said to keep it.
    Kept,
    /// Existed and is protected (a key file): left alone.
    Protected,
}

/// Where each chunk of an existing file is, found by chunking it as a backup would.
struct LocalChunks {
    file: File,
    ids: Vec<BlobId>,
    at: HashMap<BlobId, (u64, usize)>,
}

fn local_chunks(repo: &Repository<Indexed>, path: &Path) -> std::io::Result<LocalChunks> {
    let file = File::open(path)?;
    let (mut ids, mut at, mut offset) = (Vec::new(), HashMap::new(), 0u64);
    for chunk in repo.chunker().stream(&file) {
        let chunk = chunk?;
        let id = repo.keys().blob_id(&chunk);
        at.entry(id).or_insert((offset, chunk.len()));
        ids.push(id);
        offset += chunk.len() as u64;
    }
    Ok(LocalChunks { file, ids, at })
}

/// Restores `node`'s content at `target`, deciding by what is there and
/// `overwrite`; `dry_run` decides without writing.
pub(super) fn restore_content(
    repo: &Repository<Indexed>,
    target: &Path,
    node: &Node,
    options: &RestoreOptions,
    progress: &dyn Progress,
    clock: &PhaseClock,
) -> Result<FileOutcome> {
    let (overwrite, dry_run) = (options.overwrite, options.dry_run);
    let io = |e| EngineError::io(target, e);
    let reach = ReachablePath::new(target).map_err(io)?;
    let existing = match std::fs::symlink_metadata(reach.path()) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    if existing
        .as_ref()
        .is_some_and(|m| options.protected.is(m).is_some())
    {
        return Ok(FileOutcome::Protected);
    }
    let Some(meta) = existing else {
        if !dry_run {
            write_fresh(repo, target, node, None, progress, clock)?;
        }
        return Ok(FileOutcome::Created);
    };
    if !meta.is_file() {
        if meta.is_dir() {
            return Err(EngineError::Invalid(format!(
                "{}: a directory is in the way of a file",
                target.display()
            )));
        }
        if !dry_run {
            std::fs::remove_file(reach.path()).map_err(io)?;
            write_fresh(repo, target, node, None, progress, clock)?;
        }
        return Ok(FileOutcome::Created);
    }
    let newer_here = (meta.mtime(), meta.mtime_nsec() as u32) >= (node.mtime_sec, node.mtime_nsec);
    if overwrite == Overwrite::Never || (overwrite == Overwrite::IfNewer && newer_here) {
        return Ok(FileOutcome::Kept);
    }
    let local = local_chunks(repo, reach.path()).map_err(io)?;
    if local.ids == node.content && overwrite != Overwrite::Always {
        progress.advance(0, node.size);
        return Ok(FileOutcome::Unchanged);
    }
    let reused = node
        .content
        .iter()
        .filter_map(|id| local.at.get(id))
        .map(|(_, n)| *n as u64)
        .sum();
    if !dry_run {
        write_fresh(repo, target, node, Some(&local), progress, clock)?;
    }
    Ok(FileOutcome::Rewritten { reused })
}

/// Writes the content into a temporary file beside `target`, taking chunks
/// from `local` where it has them, then renames it over `target`: a reader
/// sees the old file or the new one, never a mix.
fn write_fresh(
    repo: &Repository<Indexed>,
    target: &Path,
    node: &Node,
    local: Option<&LocalChunks>,
    progress: &dyn Progress,
    clock: &PhaseClock,
) -> Result<()> {
    let io = |e| EngineError::io(target, e);
    let reach = ReachablePath::new(target).map_err(io)?;
    let temp = ReachablePath::new(&temp_path(target)).map_err(io)?;
    let result = write_into(repo, temp.path(), target, node, local, progress, clock)
        .and_then(|()| std::fs::rename(temp.path(), reach.path()).map_err(io));
    if result.is_err() {
        let _ = std::fs::remove_file(temp.path());
    }
    result
}

/// A short name beside `target` (not derived from its name, which may
/// already be as long as names can be), unique within this process.
fn temp_path(target: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    target.with_file_name(format!(".bunker-restore-{}-{n}", std::process::id()))
}

/// Writes the content to `path` (reachable); errors name `shown`.
fn write_into(
    repo: &Repository<Indexed>,
    path: &Path,
    shown: &Path,
    node: &Node,
    local: Option<&LocalChunks>,
    progress: &dyn Progress,
    clock: &PhaseClock,
) -> Result<()> {
    let io = |e| EngineError::io(shown, e);
    let file = File::create(path).map_err(io)?;
    // All-zero chunks are skipped, not written: holes in the source stay
    // holes (and runs of zeros become holes), as restic and rsync -S do.
    let mut offset = 0u64;
    let mut buf = Vec::new();
    for id in &node.content {
        let data = match local.and_then(|l| l.at.get(id).map(|at| (l, at))) {
            Some((l, &(at, len))) => {
                buf.resize(len, 0);
                l.file.read_exact_at(&mut buf, at).map_err(io)?;
                // The old file may have changed since it was chunked: trust only verified bytes.
                if repo.keys().blob_id(&buf) == *id {
                    std::mem::take(&mut buf)
                } else {
                    clock.read(|| repo.read_blob(BlobType::Data, id))?
                }
            }
            None => clock.read(|| repo.read_blob(BlobType::Data, id))?,
        };
        if !is_zero(&data) {
            clock
                .write(|| file.write_all_at(&data, offset))
                .map_err(io)?;
        }
        offset += data.len() as u64;
        progress.advance(0, data.len() as u64);
        buf = data;
    }
    file.set_len(offset).map_err(io)?;
    Ok(())
}

/// True if every byte is zero (compared 16 bytes at a time).
fn is_zero(data: &[u8]) -> bool {
    let words = data.chunks_exact(16);
    let tail = words.remainder();
    words
        .map(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")))
        .all(|w| w == 0)
        && tail.iter().all(|b| *b == 0)
}

/// Re-reads a restored file and checks each chunk against its blob id.
pub fn verify_file(repo: &Repository<Indexed>, path: &Path, content: &[BlobId]) -> Result<()> {
    let mut file = ReachablePath::new(path)
        .and_then(|r| File::open(r.path()))
        .map_err(|e| EngineError::io(path, e))?;
    let mut buf = Vec::new();
    for id in content {
        let loc = repo.locate(BlobType::Data, id)?;
        buf.resize(loc.raw_length as usize, 0);
        file.read_exact(&mut buf)
            .map_err(|e| EngineError::io(path, e))?;
        if repo.keys().blob_id(&buf) != *id {
            return Err(EngineError::Invalid(format!(
                "{}: restored content differs from the snapshot",
                path.display()
            )));
        }
    }
    if file
        .read(&mut [0u8; 1])
        .map_err(|e| EngineError::io(path, e))?
        != 0
    {
        return Err(EngineError::Invalid(format!(
            "{}: restored file is longer than in the snapshot",
            path.display()
        )));
    }
    Ok(())
}

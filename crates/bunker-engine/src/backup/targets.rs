//! The repositories one backup writes at once: the primary and every
//! `--copy-to` repository that names blobs as the primary does (made with
//! `init --copy-chunker-params-from`, docs/FORMAT.md §4.2). The source is
//! read, chunked and hashed once; each blob is claimed in every repository,
//! compressed once, and sealed with the keys of each repository that lacks
//! it. A repository whose storage fails drops out alone: the others go on,
//! and the backup stops only when none is left.

use std::sync::Arc;

use bunker_format::blob::{BlobType, CompressedBlob};
use bunker_format::id::BlobId;

use super::pack_sink::{PackSink, SinkStats};
use crate::progress::Progress;
use crate::repository::{Indexed, Repository};
use crate::{EngineError, Result};

/// The most repositories one backup writes (a claim is a bit mask).
pub const MAX_TARGETS: usize = 64;

/// Which targets need a blob: bit `i` for target `i`.
pub(super) type Mask = u64;

/// One repository being written.
struct Target {
    repo: Arc<Repository<Indexed>>,
    sink: PackSink,
}

/// Every repository a backup writes; target 0 is the primary.
pub(super) struct Targets {
    list: Vec<Target>,
}

impl Targets {
    /// Sinks for `repos` (the primary first), writing nothing in a dry run;
    /// with several, each one's stored bytes are reported to `progress`.
    pub fn new(
        repos: &[Arc<Repository<Indexed>>],
        dry_run: bool,
        progress: &Arc<dyn Progress>,
    ) -> Self {
        assert!(
            !repos.is_empty() && repos.len() <= MAX_TARGETS,
            "between 1 and {MAX_TARGETS} repositories"
        );
        Targets {
            list: repos
                .iter()
                .enumerate()
                .map(|(i, repo)| {
                    let sink = PackSink::new(repo.clone(), dry_run);
                    Target {
                        repo: repo.clone(),
                        sink: match repos.len() {
                            1 => sink,
                            _ => sink.report_as(i, progress.clone()),
                        },
                    }
                })
                .collect(),
        }
    }

    /// The targets that lack `id` and must now store it; each claims it
    /// exactly once. `Aborted` when every target has failed.
    pub fn claim(&self, id: &BlobId) -> Result<Mask> {
        let mut mask = 0;
        let mut alive = false;
        for (i, t) in self.list.iter().enumerate() {
            if t.sink.failed() {
                continue;
            }
            // An index that cannot be read fails that sink alone.
            if let Ok(claimed) = t.sink.claim(id) {
                alive = true;
                mask |= u64::from(claimed) << i;
            }
        }
        match alive {
            true => Ok(mask),
            false => Err(EngineError::Aborted),
        }
    }

    /// True when a target other than the primary lacks one of `ids` (holds
    /// it neither stored nor claimed): an unchanged file whose content the
    /// primary already has must still reach that target.
    pub fn copies_lack_any(&self, ids: &[BlobId]) -> bool {
        self.list[1..]
            .iter()
            .filter(|t| !t.sink.failed())
            .any(|t| ids.iter().any(|id| !t.sink.holds(id)))
    }

    /// Compresses the blob once per compression level and stores it in
    /// every target of `mask`. False when every target has failed.
    pub fn store(&self, kind: BlobType, id: BlobId, plaintext: &[u8], mask: Mask) -> bool {
        let wanted: Vec<&Target> = self
            .list
            .iter()
            .enumerate()
            .filter(|(i, t)| mask & (1 << i) != 0 && !t.sink.failed())
            .map(|(_, t)| t)
            .collect();
        let mut compressed: Option<(i32, CompressedBlob)> = None;
        for (n, t) in wanted.iter().enumerate() {
            let level = t.repo.config().compression_level;
            let blob = match compressed.take() {
                Some((l, blob)) if l == level => blob,
                _ => CompressedBlob::new(kind, id, plaintext, level),
            };
            let sealed = match n + 1 == wanted.len() {
                true => blob.seal_owned(t.repo.keys()),
                false => {
                    let sealed = blob.seal(t.repo.keys());
                    compressed = Some((level, blob));
                    sealed
                }
            };
            // A failure is recorded by the sink; the others go on.
            let _ = t.sink.add(sealed);
        }
        self.list.iter().any(|t| !t.sink.failed())
    }

    /// The primary, from which content missing in a copy is read.
    pub fn primary(&self) -> &Arc<Repository<Indexed>> {
        &self.list[0].repo
    }

    /// Stores the open packs and the last index of every target: what each
    /// stored, or why it failed.
    pub fn finish(&self) -> Vec<Result<SinkStats>> {
        self.list.iter().map(|t| t.sink.finish()).collect()
    }
}

//! Copying the live blobs of packs that go into new packs.

use std::collections::HashSet;

use bunker_format::blob::{decode_blob, EncodedBlob};
use bunker_format::id::{BlobId, PackId};

use super::plan::PackUse;
use crate::backup::PackSink;
use crate::repository::{Indexed, PackRead, Repository};
use crate::{EngineError, Result};

/// Copies the live blobs of `packs` into new packs, verifying each one first,
/// and indexes the new packs.
pub(super) fn repack(repo: Repository<Indexed>, packs: &[PackUse]) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    let repo = std::sync::Arc::new(repo);
    let sink = PackSink::new(repo.clone(), false);
    // A blob held by two packs that both go is copied once.
    let mut copied: HashSet<BlobId> = HashSet::new();
    for p in packs {
        let bytes = match repo.read_pack(&p.pack.id, p.pack.length)? {
            PackRead::Intact(b) | PackRead::Healed { bytes: b, .. } => b,
            PackRead::Damaged(_, why) => {
                return Err(EngineError::Invalid(format!(
                    "refusing to prune: pack {} is damaged ({why}; run `bunker check --read-data`)",
                    p.pack.id.short()
                )))
            }
        };
        for e in p.live.iter().filter(|e| copied.insert(e.id)) {
            let stored = bytes
                .get(e.offset as usize..(e.offset as usize + e.length as usize))
                .ok_or_else(|| truncated(&p.pack.id))?;
            decode_blob(repo.keys(), e.kind, &e.id, e.raw_length, stored).map_err(|err| {
                EngineError::corrupt(
                    format!("blob {} in pack {}", e.id.short(), p.pack.id.short()),
                    err,
                )
            })?;
            sink.add(EncodedBlob {
                id: e.id,
                kind: e.kind,
                raw_length: e.raw_length,
                bytes: stored.to_vec(),
            })?;
        }
    }
    sink.finish()?;
    Ok(())
}

fn truncated(pack: &PackId) -> EngineError {
    EngineError::Invalid(format!(
        "refusing to prune: pack {} is shorter than its index says (run `bunker check`)",
        pack.short()
    ))
}

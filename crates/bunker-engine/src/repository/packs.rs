//! Reading packs and blobs, healing from parity where the repository keeps it.

use std::collections::HashMap;

use bunker_backend::{ErrorKind, FileKind};
use bunker_format::blob::{decode_blob, BlobType};
use bunker_format::directory;
use bunker_format::id::{storage_hash, storage_name, BlobId, PackId};
use bunker_format::pack::{parse_header, parse_trailer, read_window, PackEntry, TRAILER_LEN};
use bunker_format::parity::Repair;
use bunker_format::tree::{Node, Tree};

use crate::index::BlobLocation;
use bunker_format::FormatError;

use super::{Indexed, Repository};
use crate::{EngineError, Result};

/// A whole pack as read by [`Repository::read_pack`].
pub enum PackRead {
    /// It matches its name.
    Intact(Vec<u8>),
    /// It did not match its name and was rebuilt from its parity file.
    Healed {
        /// The pack as written.
        bytes: Vec<u8>,
        /// Shards rebuilt.
        shards: usize,
    },
    /// It does not match its name and could not be rebuilt: the bytes read
    /// (empty if the pack is missing) and why parity did not help.
    Damaged(Vec<u8>, String),
}

impl<S> Repository<S> {
    /// Every pack on storage with its size (stray files left out).
    pub fn stored_packs(&self) -> Result<HashMap<PackId, u64>> {
        Ok(self
            .backend
            .list(FileKind::Pack)?
            .into_iter()
            .filter_map(|f| Some((f.name.parse().ok()?, f.size)))
            .collect())
    }

    /// Reads a pack's header (from its end: trailer, then sealed header)
    /// without reading its blobs; `size` is its length on storage.
    pub fn read_pack_header(&self, id: &PackId, size: u64) -> Result<Vec<PackEntry>> {
        let name = id.to_hex();
        let corrupt = |e| EngineError::corrupt(format!("pack {name}"), e);
        if size < TRAILER_LEN as u64 {
            return Err(corrupt(FormatError::Malformed(
                "shorter than a pack trailer",
            )));
        }
        let trailer = self.backend.read_range(
            FileKind::Pack,
            &name,
            size - TRAILER_LEN as u64,
            TRAILER_LEN as u64,
        )?;
        let trailer = parse_trailer(&trailer).map_err(corrupt)?;
        let header_len = trailer.header_length as u64;
        let start = size
            .checked_sub(TRAILER_LEN as u64 + header_len)
            .ok_or_else(|| corrupt(FormatError::Malformed("header longer than the pack")))?;
        let sealed = self
            .backend
            .read_range(FileKind::Pack, &name, start, header_len)?;
        parse_header(&self.keys, trailer, &sealed, size).map_err(corrupt)
    }

    /// Reads a whole pack of `length` bytes (as indexed) and checks it against its name; a damaged (or
    /// missing) pack is rebuilt from its parity file when the repository
    /// keeps parity.
    pub fn read_pack(&self, id: &PackId, length: u64) -> Result<PackRead> {
        let name = id.to_hex();
        let stored = match self.backend.read_at_most(FileKind::Pack, &name, length) {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
            // Longer than the index says: whatever it holds is not the pack.
            Err(e) if e.kind == ErrorKind::TooLarge => {
                return Ok(PackRead::Damaged(Vec::new(), e.message));
            }
            Err(e) => return Err(e.into()),
        };
        if storage_hash(&stored) == id.0 {
            return Ok(PackRead::Intact(stored));
        }
        if !self.config.parity {
            let why = match stored.is_empty() {
                true => "missing",
                false => "content does not match its name",
            };
            return Ok(PackRead::Damaged(stored, why.into()));
        }
        let max = bunker_format::parity::file_length(length);
        let parity = match self.backend.read_at_most(FileKind::Parity, &name, max) {
            Ok(p) => p,
            Err(e) => return Ok(PackRead::Damaged(stored, format!("no parity: {e}"))),
        };
        Ok(
            match bunker_format::parity::repair(&stored, &parity, &id.0, length) {
                Ok(Repair::Repaired { bytes, shards }) => PackRead::Healed { bytes, shards },
                Ok(Repair::Intact) => PackRead::Intact(stored),
                Err(e) => PackRead::Damaged(stored, format!("parity cannot repair it: {e}")),
            },
        )
    }
}

impl Repository<Indexed> {
    /// Reads, decrypts and verifies one blob. When the repository keeps
    /// parity, a blob that fails to read is read again from its pack rebuilt
    /// from parity (the damaged pack itself is left for `check --repair`).
    pub fn read_blob(&self, kind: BlobType, id: &BlobId) -> Result<Vec<u8>> {
        let locations = self.index().locations(id)?;
        let mut first_error = None;
        // A copy that fails (damaged, or an index that placed it wrongly)
        // leaves the others to try, best first.
        for loc in locations {
            match self.read_blob_at(kind, id, &loc) {
                Ok(plain) => return Ok(plain),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| EngineError::BlobMissing {
            kind: kind.name(),
            id: id.to_hex(),
        }))
    }

    /// Reads one copy of a blob, healing its pack from parity if it must.
    fn read_blob_at(&self, kind: BlobType, id: &BlobId, loc: &BlobLocation) -> Result<Vec<u8>> {
        let (pack, pack_length) = self.index().pack(loc.pack);
        let entry = PackEntry {
            kind,
            id: *id,
            offset: loc.offset,
            length: loc.length,
            raw_length: loc.raw_length,
        };
        match self.read_blob_in(&pack, pack_length, &entry) {
            Err(e) if self.config.parity => match self.read_pack(&pack, pack_length)? {
                PackRead::Healed { bytes, .. } => {
                    let range = loc.offset as usize..(loc.offset + loc.length) as usize;
                    self.decode_entry(&pack, &entry, bytes.get(range).ok_or(e)?)
                }
                _ => Err(e),
            },
            other => other,
        }
    }

    /// Reads and decodes the blob `entry` places in `pack` (of `pack_length`
    /// bytes). The read is widened to whole size classes, so the storage
    /// does not learn the blob's exact length (docs/FORMAT.md §7.2).
    pub(crate) fn read_blob_in(
        &self,
        pack: &PackId,
        pack_length: u64,
        entry: &PackEntry,
    ) -> Result<Vec<u8>> {
        let (offset, length) = (entry.offset as u64, entry.length as u64);
        if entry.kind == BlobType::Tree {
            if let Some(plain) = self.read_cached_tree(pack, pack_length, entry) {
                return Ok(plain);
            }
        }
        if let Some(stored) = self.state.readahead.get(pack, offset, length) {
            return self.decode_entry(pack, entry, &stored);
        }
        let (mut start, mut end) = read_window(offset, length, pack_length);
        let remote = self.backend.capabilities().remote;
        if remote {
            // One request for this blob and its neighbours: the whole pack
            // when it is of ordinary size (a backup interleaves the chunks
            // of the files it reads at once, so a restore wants the rest of
            // the pack soon), else a segment from the widened start
            // (docs/FORMAT.md §7.2).
            if pack_length <= super::readahead::WHOLE_PACK {
                start = 0;
                end = pack_length;
            } else {
                end = end.max((start + super::readahead::SEGMENT).min(pack_length));
            }
        }
        // A directory's pieces (format 4) lie side by side in a pack of
        // trees: on local storage too, one read brings its neighbours.
        let keep = remote || entry.kind == BlobType::Tree;
        if !remote && keep {
            end = end.max((start + super::readahead::LOCAL_TREE_WINDOW).min(pack_length));
        }
        let _fetch = match remote {
            true => match self.state.readahead.fetch(*pack, start) {
                Some(fetch) => Some(fetch),
                // Another thread just read it.
                None => match self.state.readahead.get(pack, offset, length) {
                    Some(stored) => return self.decode_entry(pack, entry, &stored),
                    None => None,
                },
            },
            false => None,
        };
        let window = self
            .backend
            .read_range(FileKind::Pack, &pack.to_hex(), start, end - start)?;
        if keep {
            let at = (offset - start) as usize;
            let stored = window.get(at..at + length as usize).map(<[u8]>::to_vec);
            self.state.readahead.keep(*pack, start, window);
            let stored = stored.ok_or_else(|| {
                EngineError::corrupt(
                    format!("pack {}", pack.short()),
                    FormatError::Malformed("blob outside the pack"),
                )
            })?;
            return self.decode_entry(pack, entry, &stored);
        }
        let at = (offset - start) as usize;
        let stored = window.get(at..at + length as usize).ok_or_else(|| {
            EngineError::corrupt(
                format!("pack {}", pack.short()),
                FormatError::Malformed("blob outside the pack"),
            )
        })?;
        self.decode_entry(pack, entry, stored)
    }

    /// A tree blob from the cached copy of its pack, which is downloaded
    /// whole on first use (remote repositories only: trees are read again
    /// by every backup, restore and listing). `None` sends the caller to
    /// storage: no cache, a pack that cannot be fetched whole, or a cached
    /// copy that fails to decode (then dropped).
    fn read_cached_tree(
        &self,
        pack: &PackId,
        pack_length: u64,
        entry: &PackEntry,
    ) -> Option<Vec<u8>> {
        let cache = self.stored_file_cache()?;
        let name = pack.to_hex();
        let (offset, length) = (entry.offset as u64, entry.length as u64);
        let stored = match cache.pack_range(&name, offset, length) {
            Some(stored) => stored,
            None => {
                let whole = self
                    .backend
                    .read_at_most(FileKind::Pack, &name, pack_length)
                    .ok()?;
                if storage_name(&whole) != name {
                    return None;
                }
                cache.keep_pack(&name, &whole);
                whole
                    .get(offset as usize..(offset + length) as usize)?
                    .to_vec()
            }
        };
        match self.decode_entry(pack, entry, &stored) {
            Ok(plain) => Some(plain),
            Err(_) => {
                cache.drop_pack(&name);
                None
            }
        }
    }

    fn decode_entry(&self, pack: &PackId, entry: &PackEntry, stored: &[u8]) -> Result<Vec<u8>> {
        decode_blob(&self.keys, entry.kind, &entry.id, entry.raw_length, stored).map_err(|e| {
            EngineError::corrupt(
                format!(
                    "{} blob {} in pack {}",
                    entry.kind.name(),
                    entry.id.short(),
                    pack.short()
                ),
                e,
            )
        })
    }

    /// Reads a whole directory from its root tree blob: the blob itself, or
    /// in format version 4 every piece below it (docs/FORMAT.md §8.1).
    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        self.load_tree_noting(id, &mut |_| {})
    }

    /// [`Self::load_tree`], calling `noting` with every tree blob it reads
    /// (the root and its pieces), for those that count or keep them.
    pub fn load_tree_noting(&self, id: &BlobId, noting: &mut dyn FnMut(&BlobId)) -> Result<Tree> {
        self.load_tree_reading(id, &mut |piece| {
            noting(piece);
            self.read_blob(BlobType::Tree, piece)
        })
    }

    /// [`Self::load_tree`] with `read` giving each tree blob's plaintext
    /// (check reads some from packs no index names).
    pub(crate) fn load_tree_reading(
        &self,
        id: &BlobId,
        read: &mut dyn FnMut(&BlobId) -> Result<Vec<u8>>,
    ) -> Result<Tree> {
        directory::read_directory(id, read, malformed_tree)
    }

    /// One entry of the directory whose root tree blob is `dir`, reading
    /// only the pieces on the way to it.
    pub fn find_entry(&self, dir: &BlobId, name: &[u8]) -> Result<Option<Node>> {
        directory::find_entry(
            dir,
            name,
            |piece| self.read_blob(BlobType::Tree, piece),
            malformed_tree,
        )
    }
}

fn malformed_tree(id: &BlobId, e: FormatError) -> EngineError {
    EngineError::corrupt(format!("tree {}", id.short()), e)
}

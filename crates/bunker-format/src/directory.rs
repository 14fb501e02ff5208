//! Directories as tree blobs: one blob, or (format version 4) pieces.
//!
//! A directory's entries, in name order, are cut into **pieces** after
//! entries whose keyed name hash says so (docs/FORMAT.md §8.1). Each piece
//! is a tree blob of entries, `{0: [node, …]}`, encoded exactly as a whole
//! directory is in versions 1 to 3. A directory of more than one piece gets
//! **piece lists** above them, `{1: level, 2: [[first name, id], …]}`, cut by
//! the same rule one level up, until one blob is left: the directory's root,
//! which its parent's node names. Cuts depend only on names, so a change to
//! some entries rewrites only their pieces and the lists above them; the rest
//! is shared with the previous snapshot. No piece is larger than about
//! [`MAX_PIECE_BYTES`] (unless one entry is), so neither writing nor looking
//! up one name ever needs a whole large directory as one object.

use minicbor::Encoder;

use crate::crypto::RepoKeys;
use crate::id::BlobId;
use crate::tree::{check_name, Node, Tree};
use crate::FormatError;

/// A cut may follow an entry only when its piece holds at least this many.
pub const MIN_ENTRIES: usize = 4;
/// One name in this many ends a piece (after [`MIN_ENTRIES`]).
pub const CUT_ONE_IN: u64 = 8;
/// A piece is cut once its encoded entries reach this many bytes.
pub const MAX_PIECE_BYTES: usize = 64 * 1024;
/// The highest piece-list level a reader accepts (each level holds at least
/// [`MIN_ENTRIES`] times fewer blobs, so 16 levels is far beyond any tree).
pub const MAX_LEVEL: u8 = 16;

/// Decides where a directory's pieces end: a keyed hash of each name, so the
/// cuts reveal nothing, and repositories sharing blob ids cut alike.
pub struct PieceCutter {
    key: [u8; 32],
}

impl PieceCutter {
    /// The cutter of a repository with these keys.
    pub fn new(keys: &RepoKeys) -> Self {
        PieceCutter {
            key: keys.piece_cut_key(),
        }
    }

    fn cuts_after(&self, level: u8, name: &[u8]) -> bool {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(&[level]);
        hasher.update(name);
        let hash = hasher.finalize();
        let low = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
        low % CUT_ONE_IN == 0
    }
}

/// One piece in a piece list: the first name it holds, and its blob.
#[derive(Clone, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(array)]
pub struct PieceRef {
    /// The first entry name below this piece.
    #[cbor(n(0), with = "minicbor::bytes")]
    pub first: Vec<u8>,
    /// The piece's tree blob.
    #[n(1)]
    pub id: BlobId,
}

/// A decoded tree blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeBlob {
    /// Entries: a whole directory, or one piece of one.
    Entries(Tree),
    /// A piece list of level 1 (its pieces hold entries) or higher (its
    /// pieces are piece lists one level lower).
    Pieces {
        /// 1 above entries, 2 above level-1 lists, …
        level: u8,
        /// The pieces in name order.
        pieces: Vec<PieceRef>,
    },
}

#[derive(minicbor::Decode)]
#[cbor(map)]
struct RawTreeBlob {
    #[n(0)]
    nodes: Option<Vec<Node>>,
    #[n(1)]
    level: Option<u8>,
    #[n(2)]
    pieces: Option<Vec<PieceRef>>,
}

impl TreeBlob {
    /// Decodes a tree blob and checks it: entries as [`Tree::decode`] does;
    /// a piece list non-empty, with safe first names in strict order and a
    /// level from 1 to [`MAX_LEVEL`].
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let raw: RawTreeBlob = minicbor::decode(bytes)?;
        match raw {
            RawTreeBlob {
                nodes: Some(nodes),
                level: None,
                pieces: None,
            } => {
                let tree = Tree { nodes };
                tree.validate()?;
                Ok(TreeBlob::Entries(tree))
            }
            RawTreeBlob {
                nodes: None,
                level: Some(level),
                pieces: Some(pieces),
            } => {
                if !(1..=MAX_LEVEL).contains(&level) {
                    return Err(FormatError::Malformed("piece list level out of range"));
                }
                if pieces.is_empty() {
                    return Err(FormatError::Malformed("empty piece list"));
                }
                for piece in &pieces {
                    check_name(&piece.first)?;
                }
                if pieces.windows(2).any(|p| p[0].first >= p[1].first) {
                    return Err(FormatError::Malformed("piece list not in name order"));
                }
                Ok(TreeBlob::Pieces { level, pieces })
            }
            _ => Err(FormatError::Malformed(
                "tree blob is neither entries nor a piece list",
            )),
        }
    }

    /// Checks that this blob is what a piece list of `parent_level` says
    /// its piece starting at `first` is.
    fn check_piece_of(&self, parent_level: u8, first: &[u8]) -> Result<(), FormatError> {
        let (level, starts) = match self {
            TreeBlob::Entries(tree) => (0, tree.nodes.first().map(|n| n.name.as_slice())),
            TreeBlob::Pieces { level, pieces } => (*level, Some(pieces[0].first.as_slice())),
        };
        if level + 1 != parent_level {
            return Err(FormatError::Malformed("piece at the wrong level"));
        }
        if starts != Some(first) {
            return Err(FormatError::Malformed(
                "piece does not start with the name its list gives",
            ));
        }
        Ok(())
    }
}

/// Reads a whole directory from its root blob: the root's entries, or the
/// entries of every piece below it in order, checked to be in strict name
/// order across pieces. `load` gives a tree blob's plaintext; `malformed`
/// turns a blob that breaks the format into the caller's error. The walk
/// keeps its own stack.
pub fn read_directory<E>(
    root: &BlobId,
    mut load: impl FnMut(&BlobId) -> Result<Vec<u8>, E>,
    malformed: impl Fn(&BlobId, FormatError) -> E,
) -> Result<Tree, E> {
    let mut decode = |id: &BlobId| -> Result<TreeBlob, E> {
        TreeBlob::decode(&load(id)?).map_err(|e| malformed(id, e))
    };
    let (level, pieces) = match decode(root)? {
        TreeBlob::Entries(tree) => return Ok(tree),
        TreeBlob::Pieces { level, pieces } => (level, pieces),
    };
    let mut nodes: Vec<Node> = Vec::new();
    let mut stack = vec![(level, pieces.into_iter())];
    loop {
        let (level, piece) = match stack.last_mut() {
            None => return Ok(Tree { nodes }),
            Some((level, pieces)) => (*level, pieces.next()),
        };
        let Some(piece) = piece else {
            stack.pop();
            continue;
        };
        let blob = decode(&piece.id)?;
        blob.check_piece_of(level, &piece.first)
            .map_err(|e| malformed(&piece.id, e))?;
        match blob {
            TreeBlob::Entries(tree) => {
                if nodes.last().map(|n| &n.name) >= tree.nodes.first().map(|n| &n.name) {
                    return Err(malformed(
                        &piece.id,
                        FormatError::Malformed("pieces not in name order"),
                    ));
                }
                nodes.extend(tree.nodes);
            }
            TreeBlob::Pieces { level, pieces } => stack.push((level, pieces.into_iter())),
        }
    }
}

/// Finds one entry of the directory whose root blob is `root`, reading only
/// the pieces on the way to it (one per level).
pub fn find_entry<E>(
    root: &BlobId,
    name: &[u8],
    mut load: impl FnMut(&BlobId) -> Result<Vec<u8>, E>,
    malformed: impl Fn(&BlobId, FormatError) -> E,
) -> Result<Option<Node>, E> {
    let mut id = *root;
    let mut parent: Option<(u8, Vec<u8>)> = None;
    loop {
        let blob = TreeBlob::decode(&load(&id)?).map_err(|e| malformed(&id, e))?;
        if let Some((level, first)) = &parent {
            blob.check_piece_of(*level, first)
                .map_err(|e| malformed(&id, e))?;
        }
        match blob {
            TreeBlob::Entries(tree) => return Ok(tree.find(name).cloned()),
            TreeBlob::Pieces { level, mut pieces } => {
                let at = pieces.partition_point(|p| p.first.as_slice() <= name);
                if at == 0 {
                    return Ok(None);
                }
                let piece = pieces.swap_remove(at - 1);
                id = piece.id;
                parent = Some((level, piece.first));
            }
        }
    }
}

/// Writes one directory as tree blobs, from its entries in name order:
/// streaming, so only the unfinished piece of each level is held. Without
/// a cutter (format versions 1 to 3) the directory is one blob.
pub struct DirectoryWriter<'c> {
    cutter: Option<&'c PieceCutter>,
    levels: Vec<Level>,
}

/// The unfinished piece of one level: its items encoded back to back.
#[derive(Default)]
struct Level {
    items: Vec<u8>,
    count: usize,
    first: Vec<u8>,
    /// The id of the last piece added (levels above entries).
    last: Option<BlobId>,
    /// Whether a piece of this level was already stored.
    cut: bool,
}

impl Level {
    /// The blob of this level's items; empties it.
    fn take_blob(&mut self, level: usize) -> Vec<u8> {
        let mut blob = Vec::with_capacity(self.items.len() + 16);
        let mut e = Encoder::new(&mut blob);
        let written = match level {
            0 => e.map(1).and_then(|e| e.u8(0)),
            _ => e
                .map(2)
                .and_then(|e| e.u8(1))
                .and_then(|e| e.u8(level as u8))
                .and_then(|e| e.u8(2)),
        }
        .and_then(|e| e.array(self.count as u64));
        written.expect("encoding into a Vec cannot fail");
        blob.append(&mut self.items);
        self.count = 0;
        blob
    }
}

impl<'c> DirectoryWriter<'c> {
    /// A writer that cuts pieces with `cutter`, or writes one blob without.
    pub fn new(cutter: Option<&'c PieceCutter>) -> Self {
        DirectoryWriter {
            cutter,
            levels: vec![Level::default()],
        }
    }

    /// Writes a whole directory of entries in name order; returns its root.
    pub fn write_all<E>(
        cutter: Option<&PieceCutter>,
        nodes: &[Node],
        store: &mut impl FnMut(Vec<u8>) -> Result<BlobId, E>,
    ) -> Result<BlobId, E> {
        let mut writer = DirectoryWriter::new(cutter);
        for node in nodes {
            writer.push(node, store)?;
        }
        writer.finish(store)
    }

    /// Adds the next entry (names must come in strictly increasing order).
    /// `store` stores a finished blob and returns its id.
    pub fn push<E>(
        &mut self,
        node: &Node,
        store: &mut impl FnMut(Vec<u8>) -> Result<BlobId, E>,
    ) -> Result<(), E> {
        minicbor::encode(node, &mut self.levels[0].items).expect("encoding into a Vec cannot fail");
        self.added(0, &node.name, store)
    }

    /// Accounts for the item just appended to `level`, and cuts if due.
    fn added<E>(
        &mut self,
        level: usize,
        name: &[u8],
        store: &mut impl FnMut(Vec<u8>) -> Result<BlobId, E>,
    ) -> Result<(), E> {
        let this = &mut self.levels[level];
        if this.count == 0 {
            this.first = name.to_vec();
        }
        this.count += 1;
        let Some(cutter) = self.cutter else {
            return Ok(());
        };
        // Lists are cut only with enough items, so each level up holds
        // fewer blobs than the one below; an entry may be alone.
        let full = this.items.len() >= MAX_PIECE_BYTES && (level == 0 || this.count >= MIN_ENTRIES);
        if full || (this.count >= MIN_ENTRIES && cutter.cuts_after(level as u8, name)) {
            self.cut(level, store)?;
        }
        Ok(())
    }

    /// Stores `level`'s piece and adds it to the list one level up.
    fn cut<E>(
        &mut self,
        level: usize,
        store: &mut impl FnMut(Vec<u8>) -> Result<BlobId, E>,
    ) -> Result<(), E> {
        let this = &mut self.levels[level];
        let blob = this.take_blob(level);
        let first = std::mem::take(&mut this.first);
        this.cut = true;
        let id = store(blob)?;
        if self.levels.len() == level + 1 {
            self.levels.push(Level::default());
        }
        let up = &mut self.levels[level + 1];
        let piece = PieceRef { first, id };
        minicbor::encode(&piece, &mut up.items).expect("encoding into a Vec cannot fail");
        up.last = Some(id);
        self.added(level + 1, &piece.first, store)
    }

    /// Stores what is left and returns the directory's root blob id.
    pub fn finish<E>(
        mut self,
        store: &mut impl FnMut(Vec<u8>) -> Result<BlobId, E>,
    ) -> Result<BlobId, E> {
        let mut level = 0;
        loop {
            let this = &mut self.levels[level];
            if !this.cut {
                // Never cut here: this level's items are the whole directory.
                return match (level, this.count, this.last) {
                    (1.., 1, Some(only)) => Ok(only),
                    _ => store(this.take_blob(level)),
                };
            }
            if this.count > 0 {
                self.cut(level, store)?;
            }
            level += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::tree::NodeKind;
    use std::collections::HashMap;

    fn file(name: String, size: u64) -> Node {
        Node {
            name: name.into_bytes(),
            kind: NodeKind::File,
            mode: 0o644,
            size,
            mtime_sec: 1_700_000_000,
            content: vec![BlobId([size as u8; 32])],
            ..Default::default()
        }
    }

    fn entries(n: usize) -> Vec<Node> {
        (0..n)
            .map(|i| file(format!("file-{i:07}"), i as u64))
            .collect()
    }

    /// Writes a directory into an in-memory store; returns its root.
    fn write(
        nodes: &[Node],
        cutter: Option<&PieceCutter>,
        store: &mut HashMap<BlobId, Vec<u8>>,
    ) -> BlobId {
        let keys = MasterKey::from_bytes([7; 32]).derive();
        let mut put = |blob: Vec<u8>| -> Result<BlobId, ()> {
            let id = keys.blob_id(&blob);
            store.insert(id, blob);
            Ok(id)
        };
        let mut writer = DirectoryWriter::new(cutter);
        for node in nodes {
            writer.push(node, &mut put).unwrap();
        }
        writer.finish(&mut put).unwrap()
    }

    fn read(root: &BlobId, store: &HashMap<BlobId, Vec<u8>>) -> Result<Tree, FormatError> {
        read_directory(
            root,
            |id| {
                store
                    .get(id)
                    .cloned()
                    .ok_or(FormatError::Malformed("missing"))
            },
            |_, e| e,
        )
    }

    fn cutter() -> PieceCutter {
        PieceCutter::new(&MasterKey::from_bytes([7; 32]).derive())
    }

    #[test]
    fn without_a_cutter_a_directory_is_one_blob_encoded_as_before() {
        for n in [0, 1, 23, 24, 300] {
            let nodes = entries(n);
            let mut store = HashMap::new();
            let root = write(&nodes, None, &mut store);
            assert_eq!(store.len(), 1);
            assert_eq!(store[&root], Tree { nodes }.encode(), "{n} entries");
        }
    }

    #[test]
    fn a_small_directory_is_one_piece_and_a_large_one_reads_back_whole() {
        let cutter = cutter();
        let mut store = HashMap::new();
        let root = write(&entries(3), Some(&cutter), &mut store);
        assert_eq!(store[&root], Tree { nodes: entries(3) }.encode());

        for n in [0, 1, 5, 100, 5000] {
            let nodes = entries(n);
            let mut store = HashMap::new();
            let root = write(&nodes, Some(&cutter), &mut store);
            assert_eq!(read(&root, &store).unwrap().nodes, nodes, "{n} entries");
            if n >= 100 {
                assert!(store.len() > n / 64, "{n} entries in {} blobs", store.len());
            }
            for probe in [0, n / 2, n.saturating_sub(1)] {
                let name = format!("file-{probe:07}");
                let found = find_entry(
                    &root,
                    name.as_bytes(),
                    |id| Ok::<_, FormatError>(store[id].clone()),
                    |_, e| e,
                )
                .unwrap();
                assert_eq!(found.as_ref(), nodes.get(probe), "{name} in {n}");
            }
            let absent = find_entry(
                &root,
                b"a",
                |id| Ok::<_, FormatError>(store[id].clone()),
                |_, e| e,
            )
            .unwrap();
            assert!(absent.is_none());
        }
    }

    #[test]
    fn a_large_directory_has_several_levels_and_bounded_pieces() {
        let nodes = entries(50_000);
        let mut store = HashMap::new();
        let root = write(&nodes, Some(&cutter()), &mut store);
        let TreeBlob::Pieces { level, .. } = TreeBlob::decode(&store[&root]).unwrap() else {
            panic!("50,000 entries in one blob");
        };
        assert!(level >= 2, "level {level}");
        assert!(store.values().all(|b| b.len() < MAX_PIECE_BYTES + 1024));
        assert_eq!(read(&root, &store).unwrap().nodes, nodes);
    }

    #[test]
    fn changing_a_few_entries_rewrites_a_few_pieces() {
        let cutter = cutter();
        let mut nodes = entries(1000);
        let mut store = HashMap::new();
        write(&nodes, Some(&cutter), &mut store);
        let before = store.len();
        for i in [10, 400, 401, 990] {
            nodes[i].size += 1;
        }
        // An inserted and a removed entry shift nothing beyond their pieces.
        nodes.insert(500, file("file-0000499x".into(), 3));
        nodes.remove(700);
        let root = write(&nodes, Some(&cutter), &mut store);
        let added = store.len() - before;
        assert!(added <= 12, "{added} new blobs of {before}");
        assert_eq!(read(&root, &store).unwrap().nodes, nodes);
    }

    /// What FORMAT.md §8.1 states: with 1 % of the entries of 1,000-entry
    /// directories changed, the new pieces and lists (compressed, plus 90
    /// bytes of sealing and index per blob) cost a small part of a whole
    /// listing. Prints the figures (`--nocapture`).
    #[test]
    fn one_percent_churn_stores_under_a_third_of_a_listing() {
        let keys = MasterKey::from_bytes([9; 32]).derive();
        let cutter = PieceCutter::new(&keys);
        let mut seed = 12345u64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let cost = |blob: &[u8]| crate::compression::compress(blob, 3).len() + 90;
        let (dirs, rounds) = (40, 3);
        let (mut pieces, mut whole) = (0, 0);
        for dir in 0..dirs {
            let mut nodes: Vec<Node> = (0..1000)
                .map(|i| Node {
                    name: format!("file-{dir}-{i:06}.dat").into_bytes(),
                    kind: NodeKind::File,
                    mode: 0o644,
                    mtime_sec: 1_790_000_000 + (random() % 1000) as i64,
                    mtime_nsec: (random() % 1_000_000_000) as u32,
                    ctime_sec: 1_790_000_000 + (random() % 1000) as i64,
                    ctime_nsec: (random() % 1_000_000_000) as u32,
                    inode: 1_000_000 + random() % 10_000_000,
                    device: 2049,
                    links: 1,
                    size: 100 + random() % 800,
                    content: vec![BlobId(std::array::from_fn(|_| random() as u8))],
                    ..Default::default()
                })
                .collect();
            let mut store: HashMap<BlobId, Vec<u8>> = HashMap::new();
            write(&nodes, Some(&cutter), &mut store);
            for round in 1..=rounds {
                let from = (random() % 100) as usize;
                for node in nodes.iter_mut().skip(from).step_by(100) {
                    node.size = 100 + random() % 800;
                    node.mtime_sec += 86_400 * round;
                    node.ctime_sec = node.mtime_sec;
                    node.content = vec![BlobId(std::array::from_fn(|_| random() as u8))];
                }
                let before: std::collections::HashSet<BlobId> = store.keys().copied().collect();
                write(&nodes, Some(&cutter), &mut store);
                pieces += store
                    .iter()
                    .filter(|(id, _)| !before.contains(id))
                    .map(|(_, blob)| cost(blob))
                    .sum::<usize>();
                whole += cost(
                    &Tree {
                        nodes: nodes.clone(),
                    }
                    .encode(),
                );
            }
        }
        let (pieces, whole) = (
            pieces / (dirs * rounds as usize),
            whole / (dirs * rounds as usize),
        );
        println!(
            "1% of 1,000 entries changed: pieces {pieces} B, whole listing {whole} B per directory"
        );
        assert!(pieces * 3 < whole, "pieces {pieces} B, whole {whole} B");
    }

    #[test]
    fn a_single_huge_entry_is_a_piece_of_its_own() {
        let mut nodes = entries(10);
        nodes[5].content = vec![BlobId([1; 32]); 5000];
        let mut store = HashMap::new();
        let root = write(&nodes, Some(&cutter()), &mut store);
        assert_eq!(read(&root, &store).unwrap().nodes, nodes);
    }

    #[test]
    fn crafted_piece_lists_are_refused() {
        let cutter = cutter();
        let nodes = entries(2000);
        let mut store = HashMap::new();
        let root = write(&nodes, Some(&cutter), &mut store);
        let TreeBlob::Pieces { level, pieces } = TreeBlob::decode(&store[&root]).unwrap() else {
            panic!("one blob");
        };
        let keys = MasterKey::from_bytes([7; 32]).derive();
        let list = |level: u8, pieces: &[PieceRef]| {
            let mut blob = Vec::new();
            let mut e = Encoder::new(&mut blob);
            e.map(2)
                .unwrap()
                .u8(1)
                .unwrap()
                .u8(level)
                .unwrap()
                .u8(2)
                .unwrap();
            e.encode(pieces).unwrap();
            blob
        };
        // Pieces swapped: each list is in order, but names overlap.
        let mut swapped = pieces.clone();
        swapped.swap(0, 1);
        let cases = [
            list(
                level,
                &[
                    pieces[1].clone(),
                    PieceRef {
                        first: b"zzz".to_vec(),
                        id: pieces[0].id,
                    },
                ],
            ),
            list(level + 1, &pieces),
            list(
                level,
                &[PieceRef {
                    first: b"../x".to_vec(),
                    id: pieces[0].id,
                }],
            ),
            list(level, &[]),
            list(0, &pieces),
            list(MAX_LEVEL + 1, &pieces),
        ];
        assert!(TreeBlob::decode(&list(level, &swapped)).is_err());
        for (i, blob) in cases.into_iter().enumerate() {
            let id = keys.blob_id(&blob);
            store.insert(id, blob);
            assert!(read(&id, &store).is_err(), "case {i} read");
        }
    }
}

//! Tree blobs: one directory's entries, sorted by name.
//!
//! A tree is CBOR: a map whose key 0 holds the array of nodes; each node is a
//! map with integer keys (see `docs/FORMAT.md`). Zero and empty fields are
//! left out. A directory's node points to its own tree blob, so an unchanged
//! subtree encodes to the same bytes and is stored once.

use crate::id::BlobId;
use crate::FormatError;

/// The type of a directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, minicbor::Encode, minicbor::Decode)]
#[cbor(index_only)]
pub enum NodeKind {
    /// A regular file.
    #[n(0)]
    #[default]
    File,
    /// A directory.
    #[n(1)]
    Dir,
    /// A symbolic link.
    #[n(2)]
    Symlink,
    /// A named pipe.
    #[n(3)]
    Fifo,
    /// A character device.
    #[n(4)]
    CharDevice,
    /// A block device.
    #[n(5)]
    BlockDevice,
    /// A Unix socket (recorded, not restored).
    #[n(6)]
    Socket,
}

impl NodeKind {
    /// Short lowercase name for listings.
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::File => "file",
            NodeKind::Dir => "dir",
            NodeKind::Symlink => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::CharDevice => "chardev",
            NodeKind::BlockDevice => "blockdev",
            NodeKind::Socket => "socket",
        }
    }
}

/// An extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
pub struct Xattr {
    /// Attribute name, e.g. `user.comment`.
    #[cbor(n(0), with = "minicbor::bytes")]
    pub name: Vec<u8>,
    /// Attribute value.
    #[cbor(n(1), with = "minicbor::bytes")]
    pub value: Vec<u8>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_empty<T>(v: &[T]) -> bool {
    v.is_empty()
}

/// One directory entry with its metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct Node {
    /// File name: raw bytes, never re-encoded.
    #[cbor(n(0), with = "minicbor::bytes")]
    pub name: Vec<u8>,
    /// Entry type.
    #[n(1)]
    pub kind: NodeKind,
    /// Permission bits, including setuid, setgid and sticky (`st_mode & 0o7777`).
    #[n(2)]
    pub mode: u32,
    /// Numeric owner.
    #[cbor(n(3), default, skip_if = "is_zero_u32")]
    pub uid: u32,
    /// Numeric group.
    #[cbor(n(4), default, skip_if = "is_zero_u32")]
    pub gid: u32,
    /// Modification time: seconds since the epoch (may be negative).
    #[cbor(n(5), default, skip_if = "is_zero_i64")]
    pub mtime_sec: i64,
    /// Modification time: nanoseconds.
    #[cbor(n(6), default, skip_if = "is_zero_u32")]
    pub mtime_nsec: u32,
    /// Status change time (seconds), for change detection.
    #[cbor(n(7), default, skip_if = "is_zero_i64")]
    pub ctime_sec: i64,
    /// Status change time (nanoseconds).
    #[cbor(n(8), default, skip_if = "is_zero_u32")]
    pub ctime_nsec: u32,
    /// Inode number, for change detection and hard links.
    #[cbor(n(9), default, skip_if = "is_zero_u64")]
    pub inode: u64,
    /// Device holding the inode.
    #[cbor(n(10), default, skip_if = "is_zero_u64")]
    pub device: u64,
    /// Hard link count.
    #[cbor(n(11), default, skip_if = "is_zero_u64")]
    pub links: u64,
    /// File size in bytes.
    #[cbor(n(12), default, skip_if = "is_zero_u64")]
    pub size: u64,
    /// File content: data blob ids in order.
    #[cbor(n(13), default, skip_if = "is_empty")]
    pub content: Vec<BlobId>,
    /// Directory content: its tree blob.
    #[n(14)]
    pub subtree: Option<BlobId>,
    /// Symlink target: raw bytes.
    #[cbor(n(15), default, with = "minicbor::bytes", skip_if = "is_empty")]
    pub link_target: Vec<u8>,
    /// Device number of a device node.
    #[cbor(n(16), default, skip_if = "is_zero_u64")]
    pub rdev: u64,
    /// Extended attributes.
    #[cbor(n(17), default, skip_if = "is_empty")]
    pub xattrs: Vec<Xattr>,
}

impl Node {
    /// The name as text, with invalid UTF-8 replaced, for display.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// One directory's entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
pub struct Tree {
    /// Entries sorted by name bytes, names unique.
    #[n(0)]
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Encodes as CBOR.
    pub fn encode(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    /// Decodes and checks that names are sorted, unique and safe to restore.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let tree: Tree = minicbor::decode(bytes)?;
        tree.validate()?;
        Ok(tree)
    }

    /// Checks that names are sorted, unique and safe to restore, and that
    /// every directory names its subtree.
    pub(crate) fn validate(&self) -> Result<(), FormatError> {
        let tree = self;
        for pair in tree.nodes.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(FormatError::Malformed(
                    "tree entries not sorted or not unique",
                ));
            }
        }
        for node in &tree.nodes {
            check_name(&node.name)?;
            if node.kind == NodeKind::Dir && node.subtree.is_none() {
                return Err(FormatError::Malformed("directory entry without a subtree"));
            }
        }
        Ok(())
    }

    /// Finds an entry by name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

/// Refuses a name that is not one path component: a crafted tree could
/// otherwise make restore write outside its target.
pub(crate) fn check_name(name: &[u8]) -> Result<(), FormatError> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(FormatError::Malformed(
            "tree entry name is not a single path component",
        ));
    }
    Ok(())
}

/// Visits every node below the directory whose entries are `root`,
/// depth-first in name order, with its path: `prefix` joined with the names
/// on the way by `/`, as raw bytes (names need not be UTF-8). `load` gives
/// the tree of a directory's subtree. The walk keeps its own stack, so a
/// tree of any depth is safe; it stops at the first error.
pub fn walk<E>(
    prefix: &[u8],
    root: Tree,
    mut load: impl FnMut(&BlobId) -> Result<Tree, E>,
    mut visit: impl FnMut(&[u8], &Node) -> Result<(), E>,
) -> Result<(), E> {
    let mut stack = vec![(prefix.to_vec(), root.nodes.into_iter())];
    loop {
        let (path, node) = {
            let Some((dir, nodes)) = stack.last_mut() else {
                return Ok(());
            };
            let Some(node) = nodes.next() else {
                stack.pop();
                continue;
            };
            let mut path = dir.clone();
            if !path.ends_with(b"/") {
                path.push(b'/');
            }
            path.extend_from_slice(&node.name);
            (path, node)
        };
        visit(&path, &node)?;
        if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
            let tree = load(&sub)?;
            stack.push((path, tree.nodes.into_iter()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(any::<u8>().prop_filter("no slash", |b| *b != b'/'), 1..20),
            0u8..7,
            any::<u32>(),
            (any::<u32>(), any::<u32>(), any::<i64>(), any::<u32>()),
            (any::<u64>(), any::<u64>()),
            proptest::collection::vec(any::<[u8; 32]>(), 0..3),
            proptest::collection::vec(any::<u8>(), 0..10),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 1..8),
                    proptest::collection::vec(any::<u8>(), 0..8),
                ),
                0..2,
            ),
        )
            .prop_map(
                |(name, k, mode, (uid, gid, ms, mn), (size, inode), content, link, xattrs)| {
                    let kind = match k {
                        0 => NodeKind::File,
                        1 => NodeKind::Dir,
                        2 => NodeKind::Symlink,
                        3 => NodeKind::Fifo,
                        4 => NodeKind::CharDevice,
                        5 => NodeKind::BlockDevice,
                        _ => NodeKind::Socket,
                    };
                    Node {
                        name,
                        kind,
                        mode,
                        uid,
                        gid,
                        mtime_sec: ms,
                        mtime_nsec: mn,
                        size,
                        inode,
                        content: content.into_iter().map(BlobId).collect(),
                        subtree: (kind == NodeKind::Dir).then_some(BlobId([4; 32])),
                        link_target: link,
                        xattrs: xattrs
                            .into_iter()
                            .map(|(name, value)| Xattr { name, value })
                            .collect(),
                        ..Default::default()
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(nodes in proptest::collection::vec(arb_node(), 0..8)) {
            let mut nodes = nodes;
            nodes.retain(|n| n.name != b"." && n.name != b"..");
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            nodes.dedup_by(|a, b| a.name == b.name);
            let tree = Tree { nodes };
            prop_assert_eq!(Tree::decode(&tree.encode()).unwrap(), tree);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Tree::decode(&bytes);
        }
    }

    #[test]
    fn rejects_unsafe_names() {
        for name in [&b".."[..], b"a/b", b"", b"."] {
            let tree = Tree {
                nodes: vec![Node {
                    name: name.to_vec(),
                    ..Default::default()
                }],
            };
            assert!(Tree::decode(&tree.encode()).is_err(), "{name:?} accepted");
        }
        let unsorted = Tree {
            nodes: vec![
                Node {
                    name: b"b".to_vec(),
                    ..Default::default()
                },
                Node {
                    name: b"a".to_vec(),
                    ..Default::default()
                },
            ],
        };
        assert!(Tree::decode(&unsorted.encode()).is_err());
    }
}

//! Dump: a file's content, or a directory as a tar stream, to a writer.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bunker_format::blob::BlobType;
use bunker_format::id::BlobId;
use bunker_format::tree::{Node, NodeKind};

use crate::repository::{Indexed, Repository};
use crate::walk_tree::{find_node, visit_tree};
use crate::{EngineError, Result};

/// Writes the file at `path` in the snapshot, or the directory there as a tar stream.
pub fn dump(
    repo: &Repository<Indexed>,
    root: &BlobId,
    path: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let node = find_node(repo, root, path)?;
    match node.kind {
        NodeKind::File => {
            let mut reader = BlobReader::new(repo, &node.content);
            std::io::copy(&mut reader, out).map_err(|e| {
                reader
                    .take_error()
                    .unwrap_or_else(|| EngineError::io("output", e))
            })?;
            Ok(())
        }
        NodeKind::Dir => dump_tar(repo, &node, out),
        _ => Err(EngineError::Invalid(format!(
            "{path} is a {}, not a file or directory",
            node.kind.name()
        ))),
    }
}

fn dump_tar(repo: &Repository<Indexed>, dir: &Node, out: &mut dyn Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let subtree = dir.subtree.expect("decoded directories have a subtree");
    let out_err = |e: std::io::Error| EngineError::io("tar output", e);
    // First member of each hard-link group, by (device, inode) at backup time.
    let mut link_groups: HashMap<(u64, u64), PathBuf> = HashMap::new();
    visit_tree(repo, &subtree, b".", &mut |path, node| {
        let mut header = tar::Header::new_gnu();
        header.set_mode(node.mode);
        header.set_uid(node.uid as u64);
        header.set_gid(node.gid as u64);
        header.set_mtime(node.mtime_sec.max(0) as u64);
        // Names and link targets go out byte for byte (long ones as GNU
        // long-name records), whatever their encoding.
        let name = Path::new(OsStr::from_bytes(path.strip_prefix(b"./").unwrap_or(path)));
        // PAX records carry what the classic header cannot: times to the
        // nanosecond (and before 1970), and extended attributes, which GNU
        // tar restores with `--xattrs`.
        let mut pax: Vec<(String, Vec<u8>)> = vec![(
            "mtime".into(),
            pax_time(node.mtime_sec, node.mtime_nsec).into_bytes(),
        )];
        for x in &node.xattrs {
            pax.push((
                format!("SCHILY.xattr.{}", String::from_utf8_lossy(&x.name)),
                x.value.clone(),
            ));
        }
        if !matches!(
            node.kind,
            NodeKind::File | NodeKind::Dir | NodeKind::Symlink | NodeKind::Fifo
        ) {
            return Ok(());
        }
        tar.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(out_err)?;
        let first_link = match node.kind {
            NodeKind::File if node.links > 1 => {
                match link_groups.entry((node.device, node.inode)) {
                    Entry::Occupied(first) => Some(first.get().clone()),
                    Entry::Vacant(slot) => {
                        slot.insert(name.to_path_buf());
                        None
                    }
                }
            }
            _ => None,
        };
        match node.kind {
            NodeKind::File if first_link.is_some() => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                tar.append_link(&mut header, name, first_link.expect("checked"))
                    .map_err(out_err)
            }
            NodeKind::File => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(node.size);
                let mut reader = BlobReader::new(repo, &node.content);
                let r = tar.append_data(&mut header, name, &mut reader);
                if let Some(e) = reader.take_error() {
                    return Err(e);
                }
                r.map_err(out_err)
            }
            NodeKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                let mut dir = name.as_os_str().to_owned();
                dir.push("/");
                tar.append_data(&mut header, dir, std::io::empty())
                    .map_err(out_err)
            }
            NodeKind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let target = Path::new(OsStr::from_bytes(&node.link_target));
                tar.append_link(&mut header, name, target).map_err(out_err)
            }
            NodeKind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                header.set_size(0);
                tar.append_data(&mut header, name, std::io::empty())
                    .map_err(out_err)
            }
            _ => Ok(()),
        }
    })?;
    tar.finish().map_err(out_err)
}

/// A PAX time: seconds and a fraction, negative before 1970 (-1.25 is a
/// quarter second before -1 s).
fn pax_time(sec: i64, nsec: u32) -> String {
    if sec >= 0 || nsec == 0 {
        return format!("{sec}.{nsec:09}");
    }
    // sec + nsec/1e9 with sec < 0: write it as -(|sec + 1|).(1e9 - nsec).
    format!("-{}.{:09}", -(sec + 1), 1_000_000_000 - nsec)
}

/// Reads a file's content blob by blob, holding one blob in memory.
struct BlobReader<'a> {
    repo: &'a Repository<Indexed>,
    ids: &'a [BlobId],
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    error: Option<EngineError>,
}

impl<'a> BlobReader<'a> {
    fn new(repo: &'a Repository<Indexed>, ids: &'a [BlobId]) -> Self {
        BlobReader {
            repo,
            ids,
            next: 0,
            buf: Vec::new(),
            pos: 0,
            error: None,
        }
    }

    /// The repository error behind a failed read, if that is what failed.
    fn take_error(&mut self) -> Option<EngineError> {
        self.error.take()
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.ids.get(self.next) else {
                return Ok(0);
            };
            match self.repo.read_blob(BlobType::Data, id) {
                Ok(data) => {
                    self.buf = data;
                    self.pos = 0;
                    self.next += 1;
                }
                Err(e) => {
                    let message = e.to_string();
                    self.error = Some(e);
                    return Err(std::io::Error::other(message));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

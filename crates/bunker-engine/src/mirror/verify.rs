//! `--verify`: DEST re-read and compared with what SRC held.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bunker_format::tree::NodeKind;

use super::compare::{attrs_of, kind_of, same_content};
use super::deletions::plan_deletions;
use super::{Entry, MirrorOptions, MirrorSummary};
use crate::Result;

/// Re-reads DEST and compares it with what SRC held: every entry's type,
/// attributes, link target and bytes, and (when deleting) nothing extra.
/// Returns the entries checked and what differs.
pub(super) fn verify(
    src: &Path,
    dest: &Path,
    entries: &[Entry],
    errors: &[(PathBuf, String)],
    options: &MirrorOptions,
) -> Result<(u64, Vec<String>)> {
    use rayon::prelude::*;
    let mut problems: Vec<String> = entries
        .par_iter()
        .filter(|e| e.node.kind != NodeKind::Socket)
        .filter_map(|e| {
            let path = dest.join(&e.rel);
            let m = match path.symlink_metadata() {
                Ok(m) => m,
                Err(err) => return Some(format!("{}: {err}", path.display())),
            };
            if kind_of(&m) != e.node.kind {
                return Some(format!("{}: not a {}", path.display(), e.node.kind.name()));
            }
            let differs = attrs_of(&path, &e.node, Some(&m));
            if !differs.none() {
                return Some(format!(
                    "{}: attributes differ ({differs:?})",
                    path.display()
                ));
            }
            let same = match e.node.kind {
                NodeKind::File => same_content(&src.join(&e.rel), &path).unwrap_or(false),
                NodeKind::Symlink => std::fs::read_link(&path)
                    .is_ok_and(|t| t.as_os_str().as_bytes() == e.node.link_target),
                _ => true,
            };
            (!same).then(|| {
                format!(
                    "{}: content differs from {}",
                    path.display(),
                    src.join(&e.rel).display()
                )
            })
        })
        .collect();
    if options.delete {
        let mut scratch = MirrorSummary::default();
        for (extra, _) in plan_deletions(src, dest, entries, errors, options, &mut scratch)? {
            problems.push(format!("{}: not in the source", extra.display()));
        }
    }
    problems.sort();
    Ok((entries.len() as u64, problems))
}

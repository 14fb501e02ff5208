//! Places bunker must never back up into a snapshot, write into, or delete:
//! the repository being used, its cache, bunker's own key and config files.
//!
//! They are recognised by device and inode, not by spelling, so `a/../a`,
//! symlinks and bind mounts all lead to the same answer.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file or directory's identity on this machine.
type FileId = (u64, u64);

fn file_id(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// A set of protected paths; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct ProtectedPaths {
    /// Each protected path as given, with its identity.
    entries: Vec<(PathBuf, FileId)>,
    /// Directories that hold a protected path (its ancestors).
    holders: HashSet<FileId>,
}

impl ProtectedPaths {
    /// Protects the paths that exist among `paths` (the others need no protection).
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut set = ProtectedPaths::default();
        for path in paths {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let id = file_id(&meta);
            if set.entries.iter().any(|(_, e)| *e == id) {
                continue;
            }
            if let Ok(real) = std::fs::canonicalize(&path) {
                for ancestor in real.ancestors().skip(1) {
                    if let Ok(m) = std::fs::metadata(ancestor) {
                        set.holders.insert(file_id(&m));
                    }
                }
            }
            set.entries.push((path, id));
        }
        set
    }

    /// True if nothing is protected.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The protected path that `meta` (of an existing file or directory) is.
    pub fn is(&self, meta: &std::fs::Metadata) -> Option<&Path> {
        let id = file_id(meta);
        self.entries
            .iter()
            .find(|(_, e)| *e == id)
            .map(|(p, _)| p.as_path())
    }

    /// True if the directory of `meta` holds a protected path somewhere below it.
    pub fn holds(&self, meta: &std::fs::Metadata) -> bool {
        self.holders.contains(&file_id(meta))
    }

    /// The protected path that `path` is or lies inside, if any. `path`
    /// need not exist: its nearest existing ancestor decides.
    pub fn containing(&self, path: &Path) -> Option<&Path> {
        let absolute = std::path::absolute(path).ok()?;
        absolute
            .ancestors()
            .filter_map(|a| std::fs::metadata(a).ok())
            .find_map(|m| self.is(&m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_recognised_however_they_are_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("a/repo");
        std::fs::create_dir_all(repo.join("data")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("link")).unwrap();
        let p = ProtectedPaths::new([dir.path().join("a/../a/repo"), dir.path().join("missing")]);
        assert!(!p.is_empty());
        let meta = |x: &str| std::fs::metadata(dir.path().join(x)).unwrap();
        assert!(p.is(&meta("link/repo")).is_some());
        assert!(p.is(&meta("a")).is_none());
        assert!(p.holds(&meta("a")) && p.holds(&meta("link")));
        assert!(!p.holds(&meta("a/repo/data")));
        assert!(p
            .containing(&dir.path().join("link/repo/data/new"))
            .is_some());
        assert!(p.containing(&dir.path().join("a/other")).is_none());
    }
}

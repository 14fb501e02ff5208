//! Depth-first walk of the selected paths.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use bunker_format::tree::{Node, NodeKind};

use crate::{node_from_metadata, PatternSet, ProtectedPaths, ReachablePath};

/// What to select.
#[derive(Clone, Debug, Default)]
pub struct WalkOptions {
    /// Paths to leave out.
    pub excludes: PatternSet,
    /// Stay on the file system of each selected path.
    pub one_file_system: bool,
    /// `NAME` or `NAME:HEADER`: a directory holding a file `NAME` (whose content
    /// starts with `HEADER`, if given) keeps only that file.
    pub exclude_if_present: Vec<String>,
    /// Treat a directory with a valid `CACHEDIR.TAG` as above.
    pub exclude_caches: bool,
    /// Leave out files larger than this many bytes.
    pub exclude_larger_than: Option<u64>,
    /// Never back these up (the repository itself, its cache, bunker's keys),
    /// however they are reached.
    pub protected: ProtectedPaths,
}

/// The header that makes a `CACHEDIR.TAG` valid (<https://bford.info/cachedir/>).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// True if `path` is a file whose content starts with `header` (any content if empty).
fn tag_file_matches(path: &Path, header: &[u8]) -> bool {
    use std::io::Read;
    let Ok(mut f) = ReachablePath::new(path).and_then(|r| std::fs::File::open(r.path())) else {
        return false;
    };
    let mut buf = vec![0u8; header.len()];
    header.is_empty() || (f.read_exact(&mut buf).is_ok() && buf == header)
}

/// Receives the walk's findings in order. Every `enter_dir` is matched by a
/// `leave_dir`; entries between them are that directory's children.
pub trait Visitor {
    /// A directory; its children follow.
    fn enter_dir(&mut self, path: &Path, node: Node);
    /// The end of the directory last entered.
    fn leave_dir(&mut self, path: &Path);
    /// A regular file, whose content the visitor reads.
    fn file(&mut self, path: &Path, node: Node);
    /// Any other entry (symlink, fifo, device, socket), complete as given.
    fn special(&mut self, path: &Path, node: Node);
    /// Something that could not be read; the walk goes on without it.
    fn error(&mut self, path: &Path, error: std::io::Error);
    /// True when the walk should end early (the consumer has given up).
    fn stop(&self) -> bool {
        false
    }
}

/// The selected paths as a tree of names, so that their ancestors become
/// directories of the snapshot (as in restic: `/home/u/docs` is stored
/// under `home/u/docs`).
#[derive(Default)]
struct Selection {
    selected: bool,
    children: BTreeMap<Vec<u8>, Selection>,
}

impl Selection {
    fn insert(&mut self, names: &[Vec<u8>]) {
        match names.split_first() {
            None => {
                self.selected = true;
                self.children.clear();
            }
            Some((first, rest)) => {
                if !self.selected {
                    self.children.entry(first.clone()).or_default().insert(rest);
                }
            }
        }
    }
}

/// Walks `roots` (absolute, normalized paths), reporting to `visitor`.
/// The implicit root directory `/` itself is not reported. The walk keeps
/// its own stack of open directories, so a tree of any depth is safe.
pub fn walk(roots: &[PathBuf], options: &WalkOptions, visitor: &mut dyn Visitor) {
    let mut selection = Selection::default();
    for root in roots {
        let names: Vec<Vec<u8>> = root
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.as_bytes().to_vec()),
                _ => None,
            })
            .collect();
        selection.insert(&names);
    }
    let mut walker = Walker {
        options,
        visitor,
        stack: Vec::new(),
    };
    let root = PathBuf::from("/");
    if selection.selected {
        walker.open_dir(root, None, false);
    } else {
        walker.stack.push(Frame::Selection {
            dir: root,
            children: selection.children.iter(),
            entered: false,
        });
    }
    walker.run();
}

/// A directory being walked: what is left of it.
enum Frame<'s> {
    /// An ancestor of selected paths: only its selected children.
    Selection {
        dir: PathBuf,
        children: std::collections::btree_map::Iter<'s, Vec<u8>, Selection>,
        entered: bool,
    },
    /// A selected directory: all its entries (or only its tag files).
    Dir {
        dir: PathBuf,
        names: std::vec::IntoIter<OsString>,
        dev: Option<u64>,
        entered: bool,
    },
}

struct Walker<'a, 's> {
    options: &'a WalkOptions,
    visitor: &'a mut dyn Visitor,
    stack: Vec<Frame<'s>>,
}

impl<'s> Walker<'_, 's> {
    /// Takes the next entry of the innermost open directory until none is left.
    fn run(&mut self) {
        while let Some(top) = self.stack.last_mut() {
            let next = match top {
                Frame::Selection { dir, children, .. } => children
                    .next()
                    .map(|(name, child)| (dir.join(OsStr::from_bytes(name)), Some(child), None)),
                Frame::Dir {
                    dir, names, dev, ..
                } => names.next().map(|name| (dir.join(name), None, *dev)),
            };
            match next {
                Some((path, Some(child), _)) if !child.selected => self.ancestor(path, child),
                Some((path, Some(_), _)) => self.entry(path, None),
                Some((path, None, dev)) => self.entry(path, dev),
                None => {
                    let (dir, entered) = match self.stack.pop().expect("top exists") {
                        Frame::Selection { dir, entered, .. } | Frame::Dir { dir, entered, .. } => {
                            (dir, entered)
                        }
                    };
                    if entered {
                        self.visitor.leave_dir(&dir);
                    }
                }
            }
        }
    }

    /// A directory on the way to a selected path: only the selected part of it is walked.
    fn ancestor(&mut self, path: PathBuf, selection: &'s Selection) {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => return self.visitor.error(&path, e),
        };
        if let Some(p) = self.options.protected.is(&meta) {
            return self.visitor.error(&path, protected_error(p));
        }
        let node = match node_from_metadata(&path, &meta) {
            Ok(n) => n,
            Err(e) => return self.visitor.error(&path, e),
        };
        if node.kind != NodeKind::Dir {
            return self
                .visitor
                .error(&path, std::io::Error::other("not a directory"));
        }
        self.visitor.enter_dir(&path, node);
        self.stack.push(Frame::Selection {
            dir: path,
            children: selection.children.iter(),
            entered: true,
        });
    }

    fn entry(&mut self, path: PathBuf, root_dev: Option<u64>) {
        if self.visitor.stop() || self.options.excludes.matches(&path) {
            return;
        }
        let reach = match ReachablePath::new(&path) {
            Ok(r) => r,
            Err(e) => return self.visitor.error(&path, e),
        };
        let meta = match std::fs::symlink_metadata(reach.path()) {
            Ok(m) => m,
            Err(e) => return self.visitor.error(&path, e),
        };
        if let Some(p) = self.options.protected.is(&meta) {
            // Inside a selected directory: left out, as restic leaves out its repository.
            if root_dev.is_none() {
                self.visitor.error(&path, protected_error(p));
            }
            return;
        }
        let node = match node_from_metadata(reach.path(), &meta) {
            Ok(n) => n,
            Err(e) => return self.visitor.error(&path, e),
        };
        match node.kind {
            NodeKind::Dir => {
                let dev = root_dev.unwrap_or(meta.dev());
                self.visitor.enter_dir(&path, node);
                let tags = self.tag_files(&path);
                if !tags.is_empty() {
                    let names = tags.into_iter().map(OsString::from).collect::<Vec<_>>();
                    self.stack.push(Frame::Dir {
                        dir: path,
                        names: names.into_iter(),
                        dev: Some(dev),
                        entered: true,
                    });
                } else if !self.options.one_file_system || meta.dev() == dev {
                    self.open_dir(path, Some(dev), true);
                } else {
                    self.visitor.leave_dir(&path);
                }
            }
            NodeKind::File
                if self
                    .options
                    .exclude_larger_than
                    .is_some_and(|max| node.size > max) => {}
            NodeKind::File => self.visitor.file(&path, node),
            _ => self.visitor.special(&path, node),
        }
    }

    /// The tag files that mark `dir` as excluded (its contents but for them).
    fn tag_files(&self, dir: &Path) -> Vec<String> {
        let mut tags: Vec<String> = Vec::new();
        for spec in &self.options.exclude_if_present {
            let (name, header) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
            if tag_file_matches(&dir.join(name), header.as_bytes()) {
                tags.push(name.to_string());
            }
        }
        if self.options.exclude_caches
            && tag_file_matches(&dir.join("CACHEDIR.TAG"), CACHEDIR_SIGNATURE)
        {
            tags.push("CACHEDIR.TAG".to_string());
        }
        tags.sort();
        tags.dedup();
        tags
    }

    /// Reads a directory's entries (sorted by name bytes) and makes it the
    /// innermost open directory.
    fn open_dir(&mut self, dir: PathBuf, dev: Option<u64>, entered: bool) {
        let mut names: Vec<OsString> = Vec::new();
        match ReachablePath::new(&dir).and_then(|r| std::fs::read_dir(r.path())) {
            Ok(read) => {
                for entry in read {
                    match entry {
                        Ok(e) => names.push(e.file_name()),
                        Err(e) => self.visitor.error(&dir, e),
                    }
                }
            }
            Err(e) => self.visitor.error(&dir, e),
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        self.stack.push(Frame::Dir {
            dir,
            names: names.into_iter(),
            dev,
            entered,
        });
    }
}

fn protected_error(protected: &Path) -> std::io::Error {
    std::io::Error::other(format!(
        "is (or is inside) {}, which bunker never backs up",
        protected.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record(Vec<String>);

    impl Visitor for Record {
        fn enter_dir(&mut self, path: &Path, _: Node) {
            self.0.push(format!("enter {}", path.display()));
        }
        fn leave_dir(&mut self, path: &Path) {
            self.0.push(format!("leave {}", path.display()));
        }
        fn file(&mut self, path: &Path, node: Node) {
            self.0
                .push(format!("file {} {}", path.display(), node.size));
        }
        fn special(&mut self, path: &Path, node: Node) {
            self.0
                .push(format!("{} {}", node.kind.name(), path.display()));
        }
        fn error(&mut self, path: &Path, _: std::io::Error) {
            self.0.push(format!("error {}", path.display()));
        }
    }

    #[test]
    fn walks_in_order_with_ancestors_and_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::write(root.join("b/c/f"), b"12345").unwrap();
        std::fs::write(root.join("a"), b"1").unwrap();
        std::fs::write(root.join("skip.tmp"), b"1").unwrap();
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();
        let opts = WalkOptions {
            excludes: PatternSet::new(["*.tmp".to_string()]).unwrap(),
            ..Default::default()
        };
        let mut rec = Record::default();
        walk(&[root.clone(), root.join("b")], &opts, &mut rec);
        let r = root.display().to_string();
        let ancestors = root
            .ancestors()
            .skip(1)
            .filter(|p| *p != Path::new("/"))
            .count();
        let body: Vec<String> = rec.0[ancestors..rec.0.len() - ancestors].to_vec();
        assert_eq!(
            body,
            vec![
                format!("enter {r}"),
                format!("file {r}/a 1"),
                format!("enter {r}/b"),
                format!("enter {r}/b/c"),
                format!("file {r}/b/c/f 5"),
                format!("leave {r}/b/c"),
                format!("leave {r}/b"),
                format!("symlink {r}/link"),
                format!("leave {r}"),
            ]
        );
        let mut rec = Record::default();
        walk(&[root.join("missing")], &opts, &mut rec);
        assert!(rec.0.iter().any(|l| l.starts_with("error")));

        // Tagged directories keep only their tag; large files are left out.
        std::fs::create_dir_all(root.join("cache/sub")).unwrap();
        std::fs::write(
            root.join("cache/CACHEDIR.TAG"),
            b"Signature: 8a477f597d28d172789f06886806bc55\n",
        )
        .unwrap();
        std::fs::write(root.join("cache/data"), b"x").unwrap();
        std::fs::create_dir_all(root.join("fake-cache")).unwrap();
        std::fs::write(root.join("fake-cache/CACHEDIR.TAG"), b"not a signature").unwrap();
        std::fs::create_dir_all(root.join("marked")).unwrap();
        std::fs::write(root.join("marked/.nobackup"), b"").unwrap();
        std::fs::write(root.join("marked/data"), b"x").unwrap();
        std::fs::write(root.join("huge"), vec![0u8; 2000]).unwrap();
        let opts = WalkOptions {
            exclude_caches: true,
            exclude_if_present: vec![".nobackup".into()],
            exclude_larger_than: Some(1000),
            ..Default::default()
        };
        let mut rec = Record::default();
        walk(std::slice::from_ref(&root), &opts, &mut rec);
        let seen = |p: &str| {
            rec.0
                .iter()
                .any(|l| l.ends_with(&format!("{r}/{p}")) || l.contains(&format!("{r}/{p} ")))
        };
        assert!(seen("cache/CACHEDIR.TAG") && !seen("cache/data") && !seen("cache/sub"));
        assert!(seen("fake-cache/CACHEDIR.TAG"));
        assert!(seen("marked/.nobackup") && !seen("marked/data"));
        assert!(!seen("huge") && seen("a"));
    }
}

//! Reaching paths longer than the kernel's PATH_MAX (4096 bytes).
//!
//! A system call refuses a path string that long, but a tree may be deeper.
//! [`ReachablePath`] opens the parent directory one component at a time
//! (`openat` with `O_PATH`) and names the entry as `/proc/self/fd/N/name`,
//! which the kernel resolves through the open directory: every path-based
//! call (stat, open, mkdir, rename, xattrs, …) then works unchanged.
//!
//! Walks go depth-first, so each thread remembers the last directory it
//! opened this way and starts the next walk down from there: reaching every
//! entry of a tree 10,000 levels deep costs one `openat` per level, not one
//! per level per entry. (This assumes the directories on the way are not
//! replaced while a walk is under them, which holds for bunker's own walks.)

use std::cell::RefCell;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Paths shorter than this are used as they are.
const DIRECT_LIMIT: usize = 3800;

/// A path usable in system calls, however long the original. Keeps the
/// directory it goes through open while it lives.
pub struct ReachablePath {
    path: PathBuf,
    _dir: Option<Arc<OwnedFd>>,
}

thread_local! {
    /// The last directory this thread opened beyond the direct limit, by path.
    static LAST: RefCell<Option<(PathBuf, Arc<OwnedFd>)>> = const { RefCell::new(None) };
}

fn open_dir(at: Option<&OwnedFd>, name: &OsStr) -> std::io::Result<OwnedFd> {
    let c = CString::new(name.as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))?;
    let dirfd = at.map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd());
    // SAFETY: c is a valid NUL-terminated string; the returned descriptor is owned below.
    let fd = unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a directory given by its absolute path, however long: the longest
/// prefix short enough directly, then one component at a time.
fn open_from_root(dir: &Path) -> std::io::Result<OwnedFd> {
    let parts: Vec<&OsStr> = normal_parts(dir);
    let used = direct_parts(&parts);
    let prefix: PathBuf = std::iter::once(OsStr::new("/"))
        .chain(parts[..used].iter().copied())
        .collect();
    let start = open_dir(None, prefix.as_os_str())?;
    parts[used..]
        .iter()
        .try_fold(start, |at, part| open_dir(Some(&at), part))
}

/// Opens `wanted` from the directory `at` (opened as `opened`): up to
/// their common ancestor, then down. `None` when starting from the root
/// costs fewer steps. Paths are compared as bytes (both absolute and
/// normalized, as the walks make them), so a step costs no parsing of the
/// whole path.
fn from_last(opened: &Path, at: &OwnedFd, wanted: &Path) -> Option<std::io::Result<OwnedFd>> {
    let (have, want) = (opened.as_os_str().as_bytes(), wanted.as_os_str().as_bytes());
    let same = have.iter().zip(want).take_while(|(a, b)| a == b).count();
    // The common ancestor ends at a separator (or where one path ends).
    let boundary = |p: &[u8], i: usize| i == p.len() || p[i] == b'/';
    let common = if boundary(have, same) && boundary(want, same) {
        same
    } else {
        have[..same].iter().rposition(|b| *b == b'/')?
    };
    let ups = have[common..].iter().filter(|b| **b == b'/').count();
    let downs: Vec<&OsStr> = want[common..]
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty())
        .map(OsStr::from_bytes)
        .collect();
    let steps = ups + downs.len();
    // Short moves (the usual, walking a tree) skip counting the other way.
    if steps > 64 {
        let parts = normal_parts(wanted);
        if steps > parts.len() - direct_parts(&parts) {
            return None;
        }
    }
    let mut steps = std::iter::repeat_n(OsStr::new(".."), ups).chain(downs);
    let Some(first) = steps.next() else {
        return Some(open_dir(Some(at), OsStr::new(".")));
    };
    Some(
        open_dir(Some(at), first)
            .and_then(|start| steps.try_fold(start, |dir, part| open_dir(Some(&dir), part))),
    )
}

/// How many leading components one direct call reaches.
fn direct_parts(parts: &[&OsStr]) -> usize {
    let mut len = 1;
    parts
        .iter()
        .take_while(|p| {
            len += p.len() + 1;
            len < DIRECT_LIMIT
        })
        .count()
}

fn normal_parts(path: &Path) -> Vec<&OsStr> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

impl ReachablePath {
    /// Makes `path` (absolute) reachable.
    pub fn new(path: &Path) -> std::io::Result<Self> {
        if path.as_os_str().len() < DIRECT_LIMIT {
            return Ok(ReachablePath {
                path: path.to_path_buf(),
                _dir: None,
            });
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(std::io::Error::other("path has no parent"));
        };
        let dir = LAST.with(|last| -> std::io::Result<Arc<OwnedFd>> {
            let mut last = last.borrow_mut();
            let dir = match last.as_ref() {
                Some((opened, fd)) if parent.as_os_str() == opened.as_os_str() => fd.clone(),
                Some((opened, fd)) => match from_last(opened, fd, parent) {
                    Some(dir) => Arc::new(dir?),
                    None => Arc::new(open_from_root(parent)?),
                },
                None => Arc::new(open_from_root(parent)?),
            };
            *last = Some((parent.to_path_buf(), dir.clone()));
            Ok(dir)
        })?;
        let short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
        Ok(ReachablePath {
            path: short,
            _dir: Some(dir),
        })
    }

    /// The path to hand to system calls.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_a_file_below_path_max() {
        let tmp = tempfile::tempdir().unwrap();
        // Build a chain of directories deeper than PATH_MAX one level at a time.
        let name = "d".repeat(200);
        let mut real = tmp.path().to_path_buf();
        for _ in 0..25 {
            real.push(&name);
            let parent = ReachablePath::new(real.parent().unwrap()).unwrap();
            let here = ReachablePath::new(&real).unwrap();
            assert!(parent.path().exists());
            std::fs::create_dir(here.path()).unwrap();
        }
        assert!(real.as_os_str().len() > 5000);
        let file = real.join("leaf.txt");
        assert!(
            std::fs::write(&file, b"x").is_err(),
            "the kernel should refuse this path directly"
        );
        let reach = ReachablePath::new(&file).unwrap();
        std::fs::write(reach.path(), b"deep").unwrap();
        assert_eq!(
            std::fs::read(ReachablePath::new(&file).unwrap().path()).unwrap(),
            b"deep"
        );
        // Short paths pass through untouched.
        assert_eq!(
            ReachablePath::new(Path::new("/tmp/x")).unwrap().path(),
            Path::new("/tmp/x")
        );
    }
}

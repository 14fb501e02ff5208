//! Reaching paths longer than the kernel's PATH_MAX (4096 bytes).
//!
//! A system call refuses a path string that long, but a tree may be deeper.
//! [`ReachablePath`] opens the parent directory one component at a time
//! (`openat` with `O_PATH`) and names the entry as `/proc/self/fd/N/name`,
//! which the kernel resolves through the open directory: every path-based
//! call (stat, open, mkdir, rename, xattrs, …) then works unchanged.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Paths shorter than this are used as they are.
const DIRECT_LIMIT: usize = 3800;

/// A path usable in system calls, however long the original. Keeps the
/// directory it goes through open while it lives.
pub struct ReachablePath {
    path: PathBuf,
    _dir: Option<OwnedFd>,
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
        let parts: Vec<&OsStr> = parent
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        // Open the longest prefix that is short enough directly, then walk down.
        let mut prefix = PathBuf::from("/");
        let mut used = 0;
        while used < parts.len() && prefix.as_os_str().len() + parts[used].len() + 1 < DIRECT_LIMIT
        {
            prefix.push(parts[used]);
            used += 1;
        }
        let mut dir = open_dir(None, prefix.as_os_str())?;
        for part in &parts[used..] {
            dir = open_dir(Some(&dir), part)?;
        }
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

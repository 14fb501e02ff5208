//! Giving restored entries their metadata, and creating special files.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bunker_format::tree::{Node, NodeKind};

pub(crate) fn cstring(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))
}

pub(crate) fn is_root() -> bool {
    // The effective user does not change under us: asked once, not per file.
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: geteuid cannot fail.
    *ROOT.get_or_init(|| unsafe { libc::geteuid() == 0 })
}

/// Creates a symlink, FIFO or device node at `dest`, replacing a non-directory there.
pub(crate) fn create_special(dest: &Path, node: &Node) -> std::io::Result<()> {
    if std::fs::symlink_metadata(dest).is_ok_and(|m| !m.is_dir()) {
        std::fs::remove_file(dest)?;
    }
    match node.kind {
        NodeKind::Symlink => std::os::unix::fs::symlink(OsStr::from_bytes(&node.link_target), dest),
        NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
            let kind = match node.kind {
                NodeKind::Fifo => libc::S_IFIFO,
                NodeKind::CharDevice => libc::S_IFCHR,
                _ => libc::S_IFBLK,
            };
            let c = cstring(dest)?;
            // SAFETY: c is a valid NUL-terminated path.
            let rc = unsafe {
                libc::mknod(
                    c.as_ptr(),
                    kind | (node.mode & 0o777),
                    node.rdev as libc::dev_t,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        }
        _ => Ok(()),
    }
}

/// True if `path` already has the node's owner (when root), mode and mtime.
pub(super) fn matches(path: &Path, node: &Node) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        (!is_root() || (m.uid(), m.gid()) == (node.uid, node.gid))
            && (node.kind == NodeKind::Symlink || m.mode() & 0o7777 == node.mode)
            && (m.mtime(), m.mtime_nsec() as u32) == (node.mtime_sec, node.mtime_nsec)
    })
}

/// Sets the node's extended attributes on `path`. `security.*` and
/// `trusted.*` need root and are restored only as root; Linux allows no
/// `user.*` attributes on symlinks.
fn apply_xattrs(path: &Path, node: &Node) -> std::io::Result<()> {
    let root = is_root();
    for x in &node.xattrs {
        let privileged = x.name.starts_with(b"security.") || x.name.starts_with(b"trusted.");
        if (privileged && !root) || (node.kind == NodeKind::Symlink && x.name.starts_with(b"user."))
        {
            continue;
        }
        xattr::set(path, OsStr::from_bytes(&x.name), &x.value).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "extended attribute {}: {e}",
                    String::from_utf8_lossy(&x.name)
                ),
            )
        })?;
    }
    Ok(())
}

/// Applies owner (when root), extended attributes, permissions and
/// modification time, in that order: chown clears setuid bits, and every
/// other change would move the times.
pub(crate) fn apply(path: &Path, node: &Node) -> std::io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: c is a valid NUL-terminated path for each call below.
    unsafe {
        if is_root() && libc::lchown(c.as_ptr(), node.uid, node.gid) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        apply_xattrs(path, node)?;
        if node.kind != NodeKind::Symlink && libc::chmod(c.as_ptr(), node.mode as libc::mode_t) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let mtime = libc::timespec {
            tv_sec: node.mtime_sec as _,
            tv_nsec: node.mtime_nsec as libc::c_long,
        };
        let times = [mtime, mtime];
        if libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Removes the extended attributes `path` has and `node` does not (a
/// mirror keeps none that its source lacks), with the same privilege rules
/// as setting them.
pub(crate) fn remove_extra_xattrs(path: &Path, node: &Node) -> std::io::Result<()> {
    let Ok(names) = xattr::list(path) else {
        return Ok(());
    };
    let root = is_root();
    for name in names {
        let bytes = name.as_bytes();
        let privileged = bytes.starts_with(b"security.") || bytes.starts_with(b"trusted.");
        if (privileged && !root) || node.xattrs.iter().any(|x| x.name == bytes) {
            continue;
        }
        xattr::remove(path, &name)?;
    }
    Ok(())
}

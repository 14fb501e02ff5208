//! Copying a file's content, holes kept: only the data extents the kernel
//! reports (`SEEK_DATA`/`SEEK_HOLE`) are copied, with `copy_file_range`
//! where the kernel offers it (in-kernel, and reflinks on file systems that
//! share blocks), else through a buffer.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;

/// Copies `src` into the empty `dst`, leaving holes where `src` has them;
/// returns the bytes of data copied.
pub(crate) fn copy_sparse(src: &File, dst: &File, len: u64) -> std::io::Result<u64> {
    let mut copied = 0;
    let mut at = 0u64;
    let mut written_to = 0u64;
    let mut in_kernel = true;
    while at < len {
        let Some(start) = seek(src, at, libc::SEEK_DATA)? else {
            break;
        };
        let end = seek(src, start, libc::SEEK_HOLE)?.unwrap_or(len).min(len);
        let mut pos = start;
        while pos < end {
            let want = (end - pos).min(1 << 30) as usize;
            let n = if in_kernel {
                match copy_range(src, dst, pos, want) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP)
                        ) =>
                    {
                        in_kernel = false;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            } else {
                copy_buffered(src, dst, pos, want)?
            };
            if n == 0 {
                // The file shrank while being copied: stop at what is there.
                return finish(dst, len, pos, copied);
            }
            pos += n as u64;
            copied += n as u64;
        }
        written_to = end;
        at = end;
    }
    finish(dst, len, written_to, copied)
}

/// Gives `dst` the source's length when the data written ends before it
/// (a trailing hole, or a source that shrank), so trailing holes stay holes.
fn finish(dst: &File, len: u64, written_to: u64, copied: u64) -> std::io::Result<u64> {
    if written_to != len {
        dst.set_len(len)?;
    }
    Ok(copied)
}

/// `lseek(whence)` from `offset`: `None` when there is no more data.
fn seek(file: &File, offset: u64, whence: libc::c_int) -> std::io::Result<Option<u64>> {
    // SAFETY: a valid descriptor and plain integers.
    let r = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        // No hole support: the whole file is data.
        Some(libc::EINVAL) if whence == libc::SEEK_DATA => Ok(Some(offset)),
        Some(libc::EINVAL) => Ok(None),
        _ => Err(e),
    }
}

fn copy_range(src: &File, dst: &File, pos: u64, len: usize) -> std::io::Result<usize> {
    let mut from = pos as libc::off64_t;
    let mut to = pos as libc::off64_t;
    // SAFETY: valid descriptors and offsets owned by this frame.
    let n = unsafe {
        libc::copy_file_range(src.as_raw_fd(), &mut from, dst.as_raw_fd(), &mut to, len, 0)
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn copy_buffered(mut src: &File, mut dst: &File, pos: u64, len: usize) -> std::io::Result<usize> {
    let mut buf = vec![0u8; len.min(1 << 20)];
    src.seek(SeekFrom::Start(pos))?;
    let n = src.read(&mut buf)?;
    dst.seek(SeekFrom::Start(pos))?;
    dst.write_all(&buf[..n])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn holes_stay_holes_and_bytes_are_equal() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let f = File::create(&a).unwrap();
        f.set_len(64 << 20).unwrap();
        let mut w = &f;
        w.seek(SeekFrom::Start(32 << 20)).unwrap();
        w.write_all(b"in the middle").unwrap();
        drop(f);
        let src = File::open(&a).unwrap();
        let dst = File::create(&b).unwrap();
        let copied = copy_sparse(&src, &dst, 64 << 20).unwrap();
        assert!(copied < 1 << 20, "copied {copied}");
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(
            std::fs::metadata(&b).unwrap().blocks() < 4096,
            "the copy is sparse"
        );
    }
}

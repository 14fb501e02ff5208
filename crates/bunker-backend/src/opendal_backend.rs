//! [`Backend`] over an Apache OpenDAL operator.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use opendal::Operator;

use crate::staged::Staging;
use crate::{
    Backend, BackendError, ErrorKind, FileInfo, FileKind, Location, StagedFile, StagedInfo,
    StagingOwner,
};

/// Directory, under a local repository, for files being written.
const TMP_DIR: &str = "tmp";

/// A repository's storage through OpenDAL. The engine is synchronous and
/// multi-threaded; OpenDAL is async, so each call runs on a small shared
/// tokio runtime and the calling thread waits for it.
pub struct OpenDalBackend {
    op: Operator,
    runtime: Arc<tokio::runtime::Runtime>,
    /// Set for local repositories: directories to fsync after a write.
    local_root: Option<PathBuf>,
    location: String,
    /// Names this process's staged files.
    owner: StagingOwner,
}

impl OpenDalBackend {
    /// Opens storage at `location`. Unless `create` is set, a local
    /// repository directory that does not exist is [`ErrorKind::NotFound`] and
    /// nothing is created.
    pub fn open(location: &Location, create: bool) -> Result<Self, BackendError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bunker-io")
            .enable_all()
            .build()
            .map_err(|e| BackendError::from(("start storage runtime", e)))?;
        match location {
            Location::Local(path) => {
                let root = absolute(path)?;
                // Whether it holds a repository is the engine's question (a
                // directory without `config` may be a damaged repository).
                if !create && !root.is_dir() {
                    return Err(BackendError::new(
                        ErrorKind::NotFound,
                        format!("open {}", root.display()),
                        "no such directory",
                    ));
                }
                let builder = opendal::services::Fs::default()
                    .root(&root.to_string_lossy())
                    .atomic_write_dir(&root.join(TMP_DIR).to_string_lossy());
                let op = {
                    let _guard = runtime.enter();
                    Operator::new(builder)
                        .map_err(|e| map_err("open", &root.display().to_string(), e))?
                };
                Ok(OpenDalBackend {
                    // No retry layer: a local disk's errors (a full disk, a
                    // failing drive) do not go away by waiting, and OpenDAL
                    // marks every unclassified I/O error as temporary.
                    op,
                    runtime: Arc::new(runtime),
                    location: root.display().to_string(),
                    local_root: Some(root),
                    owner: StagingOwner::this_process(),
                })
            }
        }
    }

    /// Gives a complete unnamed file its name: linked into `tmp/` and
    /// renamed over `dest` (atomic, and replacing a file rewritten in place);
    /// where linking is impossible (a file system without `O_TMPFILE`), its
    /// bytes are copied whole into a named temporary first.
    fn publish_unnamed(
        &self,
        file: std::fs::File,
        root: &Path,
        dest: &Path,
    ) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        file.sync_all()?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{}-{}-", self.owner.host, self.owner.pid))
            .rand_bytes(12)
            .make_in(root.join(TMP_DIR), |_| Ok(()))?
            .into_temp_path()
            .keep()
            .map_err(|e| e.error)?;
        let from =
            std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).expect("no NUL");
        let to = std::ffi::CString::new(tmp.as_os_str().as_encoded_bytes())
            .map_err(std::io::Error::other)?;
        // SAFETY: both paths are valid NUL-terminated strings.
        let linked = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        } == 0;
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if !linked {
            let mut copy = tempfile::Builder::new()
                .prefix(&format!("{}-{}-", self.owner.host, self.owner.pid))
                .rand_bytes(12)
                .tempfile_in(root.join(TMP_DIR))?;
            let mut source = file;
            std::io::Seek::seek(&mut source, std::io::SeekFrom::Start(0))?;
            std::io::copy(&mut source, copy.as_file_mut())?;
            return persist_local(copy, dest);
        }
        std::fs::rename(&tmp, dest)
    }

    fn block_on<F: std::future::IntoFuture>(&self, f: F) -> F::Output {
        self.runtime.handle().block_on(f.into_future())
    }

    /// Makes a completed rename durable: fsync the directory holding `path`.
    fn sync_parent(&self, path: &str) -> Result<(), BackendError> {
        if let Some(root) = &self.local_root {
            let dir = root.join(path);
            let dir = dir.parent().unwrap_or(root);
            sync_dir(dir)
                .map_err(|e| BackendError::from((format!("sync {}", dir.display()).as_str(), e)))?;
        }
        Ok(())
    }
}

fn absolute(path: &Path) -> Result<PathBuf, BackendError> {
    std::path::absolute(path).map_err(|e| BackendError::from(("resolve repository path", e)))
}

/// Local reads bypass OpenDAL's async file system path, which costs several
/// thread hand-offs per call (open, stat, read, close on tokio's blocking
/// pool): a positioned read is one system call, and restores read one blob at
/// a time. Writes, listings and deletions still go through OpenDAL.
fn read_local_range(path: &Path, offset: u64, length: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; length as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => std::io::Error::other(format!(
                "file is truncated: wanted {length} bytes at offset {offset}"
            )),
            _ => e,
        })?;
    Ok(buf)
}

/// Local writes bypass OpenDAL too: packs are staged in a temporary file
/// beside the repository's files (see [`StagedFile`]), so making one visible
/// is a sync and a rename, with no copy of its bytes in memory.
fn persist_local(tmp: tempfile::NamedTempFile, dest: &Path) -> std::io::Result<()> {
    tmp.as_file().sync_all()?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// Lists a local directory of stored files (with one level of fan-out
/// directories for packs and parity): one `readdir` per directory and one
/// `stat` per file, without OpenDAL's per-entry round trips.
fn list_local(dir: &Path, fanout: bool) -> std::io::Result<Vec<FileInfo>> {
    let mut out = Vec::new();
    for entry in dir_entries(dir)? {
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Removed since the directory was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() && fanout {
            out.extend(list_local(&entry.path(), false)?);
        } else if meta.is_file() {
            out.push(FileInfo {
                name: entry.file_name().to_string_lossy().into_owned(),
                size: meta.len(),
            });
        }
    }
    Ok(out)
}

/// The entries of a local directory; none if it does not exist.
fn dir_entries(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn map_err(op: &str, path: &str, e: opendal::Error) -> BackendError {
    let operation = format!("{op} {path}");
    // The I/O error underneath, if any, says more than OpenDAL's wrapper.
    let mut io = None;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    let mut innermost = None;
    while let Some(c) = cause {
        if let Some(i) = c.downcast_ref::<std::io::Error>() {
            io = Some(i);
        }
        innermost = Some(c);
        cause = c.source();
    }
    let kind = match (e.kind(), io.map(crate::error::io_kind)) {
        (opendal::ErrorKind::NotFound, _) => ErrorKind::NotFound,
        (opendal::ErrorKind::PermissionDenied, _) => ErrorKind::PermissionDenied,
        (_, Some(ErrorKind::NoSpace)) => ErrorKind::NoSpace,
        _ if e.is_temporary() => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    };
    let mut message = e.message().to_string();
    if let Some(inner) = innermost.map(|c| c.to_string()) {
        if !message.contains(&inner) {
            message = match message.is_empty() {
                true => inner,
                false => format!("{message}: {inner}"),
            };
        }
    }
    if message.is_empty() {
        message = e.kind().to_string();
    }
    BackendError::new(kind, operation, message).with_source(e)
}

impl Backend for OpenDalBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn create(&self) -> Result<(), BackendError> {
        let mut dirs: Vec<String> = [
            "keys",
            "index",
            "snapshots",
            "locks",
            "condemned",
            "tombstones",
            "data",
            TMP_DIR,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        dirs.extend((0..=255u8).map(|b| format!("data/{b:02x}")));
        for d in &dirs {
            self.block_on(self.op.create_dir(&format!("{d}/")))
                .map_err(|e| map_err("create", d, e))?;
        }
        if let Some(root) = &self.local_root {
            for d in dirs.iter().rev() {
                sync_dir(&root.join(d))
                    .map_err(|e| BackendError::from(("sync new repository", e)))?;
            }
            sync_dir(root).map_err(|e| BackendError::from(("sync new repository", e)))?;
            if let Some(parent) = root.parent() {
                let _ = sync_dir(parent);
            }
        }
        Ok(())
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError> {
        let path = kind.path(name);
        if let Some(root) = &self.local_root {
            return std::fs::read(root.join(&path))
                .map_err(|e| BackendError::from((format!("read {path}").as_str(), e)));
        }
        let buf = self
            .block_on(self.op.read(&path))
            .map_err(|e| map_err("read", &path, e))?;
        Ok(buf.to_vec())
    }

    fn read_at_most(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, BackendError> {
        let Some(root) = &self.local_root else {
            let size = self.size(kind, name)?;
            if size > max {
                return Err(crate::too_long(kind, name, size, max));
            }
            return self.read(kind, name);
        };
        use std::io::Read;
        let path = kind.path(name);
        let failed = |e| BackendError::from((format!("read {path}").as_str(), e));
        let file = std::fs::File::open(root.join(&path)).map_err(failed)?;
        let size = file.metadata().map_err(failed)?.len();
        if size > max {
            return Err(crate::too_long(kind, name, size, max));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(max + 1).read_to_end(&mut bytes).map_err(failed)?;
        if bytes.len() as u64 > max {
            return Err(crate::too_long(kind, name, bytes.len() as u64, max));
        }
        Ok(bytes)
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let path = kind.path(name);
        if let Some(root) = &self.local_root {
            return read_local_range(&root.join(&path), offset, length)
                .map_err(|e| BackendError::from((format!("read {path}").as_str(), e)));
        }
        let buf = self
            .block_on(self.op.read_with(&path).range(offset..offset + length))
            .map_err(|e| map_err("read", &path, e))?;
        if buf.len() as u64 != length {
            return Err(BackendError::new(
                ErrorKind::Permanent,
                format!("read {path}"),
                format!(
                    "file is truncated: wanted {length} bytes at offset {offset}, got {}",
                    buf.len()
                ),
            ));
        }
        Ok(buf.to_vec())
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        let mut staged = self.stage(kind)?;
        staged
            .append(data)
            .map_err(|e| BackendError::from((format!("write {}", kind.path(name)).as_str(), e)))?;
        self.commit(kind, name, staged)
    }

    fn stage(&self, _kind: FileKind) -> Result<StagedFile, BackendError> {
        match &self.local_root {
            Some(root) => StagedFile::unnamed_in(&root.join(TMP_DIR))
                .map_err(|e| BackendError::from(("create a file in the repository", e))),
            None => Ok(StagedFile::in_memory()),
        }
    }

    fn commit(&self, kind: FileKind, name: &str, staged: StagedFile) -> Result<(), BackendError> {
        let path = kind.path(name);
        match (staged.staging, &self.local_root) {
            (Staging::Unnamed(file), Some(root)) => {
                let dest = root.join(&path);
                self.publish_unnamed(file, root, &dest)
                    .map_err(|e| BackendError::from((format!("write {path}").as_str(), e)))?
            }
            (Staging::File(tmp), Some(root)) => persist_local(tmp, &root.join(&path))
                .map_err(|e| BackendError::from((format!("write {path}").as_str(), e)))?,
            (staging, _) => {
                let bytes = StagedFile { staging }
                    .into_bytes()
                    .map_err(|e| BackendError::from(("read staged file", e)))?;
                self.block_on(self.op.write(&path, bytes))
                    .map_err(|e| map_err("write", &path, e))?;
            }
        }
        self.sync_parent(&path)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError> {
        if let Some(root) = &self.local_root {
            let fanout = matches!(kind, FileKind::Pack | FileKind::Parity);
            let mut out = list_local(&root.join(kind.dir()), fanout)
                .map_err(|e| BackendError::from((format!("list {}", kind.dir()).as_str(), e)))?;
            out.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(out);
        }
        let dir = format!("{}/", kind.dir());
        let entries = match self.block_on(self.op.list_with(&dir).recursive(true)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(map_err("list", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            if !entry.metadata().is_file() {
                continue;
            }
            let name = entry.name().to_string();
            let mut size = entry.metadata().content_length();
            if size == 0 {
                size = self.size(kind, &name)?;
            }
            out.push(FileInfo { name, size });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn list_names(&self, kind: FileKind) -> Result<Vec<String>, BackendError> {
        let Some(root) = &self.local_root else {
            return Ok(self.list(kind)?.into_iter().map(|f| f.name).collect());
        };
        if matches!(kind, FileKind::Pack | FileKind::Parity) {
            return Ok(self.list(kind)?.into_iter().map(|f| f.name).collect());
        }
        let entries = dir_entries(&root.join(kind.dir()))
            .map_err(|e| BackendError::from((format!("list {}", kind.dir()).as_str(), e)))?;
        let mut names = Vec::new();
        for entry in entries {
            // The directory entry's type, without reading the inode.
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64, BackendError> {
        let path = kind.path(name);
        let meta = self
            .block_on(self.op.stat(&path))
            .map_err(|e| map_err("stat", &path, e))?;
        Ok(meta.content_length())
    }

    fn list_staged(&self) -> Result<Vec<StagedInfo>, BackendError> {
        let Some(root) = &self.local_root else {
            return Ok(Vec::new());
        };
        let entries =
            dir_entries(&root.join(TMP_DIR)).map_err(|e| BackendError::from(("list tmp", e)))?;
        let mut out = Vec::new();
        for entry in entries {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push(StagedInfo {
                owner: StagingOwner::parse(&name),
                name,
                size: meta.len(),
                modified: meta.modified().ok(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn remove_staged(&self, name: &str) -> Result<(), BackendError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        if name.contains('/') || name == ".." {
            return Err(BackendError::new(
                ErrorKind::Permanent,
                format!("remove tmp/{name}"),
                "not a staged file name",
            ));
        }
        match std::fs::remove_file(root.join(TMP_DIR).join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackendError::from((
                format!("remove tmp/{name}").as_str(),
                e,
            ))),
            _ => Ok(()),
        }
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        let path = kind.path(name);
        self.block_on(self.op.delete(&path))
            .map_err(|e| map_err("delete", &path, e))?;
        match self.sync_parent(&path) {
            // No directory: the file never existed, nothing to make durable.
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_contract() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::Local(dir.path().join("repo"));
        assert_eq!(
            OpenDalBackend::open(&loc, false).err().unwrap().kind,
            ErrorKind::NotFound
        );
        assert!(
            !dir.path().join("repo").exists(),
            "opening a missing repository must not create it"
        );

        let b = OpenDalBackend::open(&loc, true).unwrap();
        b.create().unwrap();
        b.write(FileKind::Config, "", b"cfg").unwrap();
        b.write(FileKind::Pack, "abcdef", b"0123456789").unwrap();
        assert!(dir.path().join("repo/data/ab/abcdef").is_file());
        assert_eq!(b.read(FileKind::Config, "").unwrap(), b"cfg");
        assert_eq!(
            b.read_range(FileKind::Pack, "abcdef", 2, 3).unwrap(),
            b"234"
        );
        assert!(b.read_range(FileKind::Pack, "abcdef", 8, 5).is_err());
        assert_eq!(
            b.list(FileKind::Pack).unwrap(),
            vec![FileInfo {
                name: "abcdef".into(),
                size: 10
            }]
        );
        assert!(b.list(FileKind::Snapshot).unwrap().is_empty());
        assert_eq!(
            b.read(FileKind::Index, "missing").unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert!(b.exists(FileKind::Pack, "abcdef").unwrap());
        b.remove(FileKind::Pack, "abcdef").unwrap();
        assert!(!b.exists(FileKind::Pack, "abcdef").unwrap());
        b.remove(FileKind::Pack, "abcdef").unwrap();
        // Removing what never existed, even without its directory, succeeds.
        b.remove(FileKind::Parity, "abcdef").unwrap();
        // Reopen without create: the directory exists now.
        let b = OpenDalBackend::open(&loc, false).unwrap();
        // Stray files and fan-out directories of any name are listed as found.
        std::fs::create_dir_all(dir.path().join("repo/data/zz")).unwrap();
        std::fs::write(dir.path().join("repo/data/zz/.DS_Store"), b"x").unwrap();
        assert_eq!(b.list(FileKind::Pack).unwrap()[0].name, ".DS_Store");
        b.write(FileKind::Snapshot, "s2", b"2").unwrap();
        b.write(FileKind::Snapshot, "s1", b"1").unwrap();
        assert_eq!(b.list_names(FileKind::Snapshot).unwrap(), ["s1", "s2"]);
    }

    #[test]
    fn a_staged_pack_is_invisible_until_committed_and_leftovers_can_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::Local(dir.path().join("repo"));
        let b = OpenDalBackend::open(&loc, true).unwrap();
        b.create().unwrap();
        let mut staged = b.stage(FileKind::Pack).unwrap();
        staged.append(b"partial").unwrap();
        // Growing, it shows in no directory of the repository.
        assert!(b.list_staged().unwrap().is_empty());
        staged.append(b" and whole").unwrap();
        b.commit(FileKind::Pack, "ab12", staged).unwrap();
        assert_eq!(
            b.read(FileKind::Pack, "ab12").unwrap(),
            b"partial and whole"
        );
        assert!(b.list_staged().unwrap().is_empty(), "nothing left in tmp/");
        // A named leftover (an older bunker's, or a writer that died between
        // linking and renaming) names its writer and can be removed.
        let owner = StagingOwner::this_process();
        let leftover = StagedFile::in_dir(&dir.path().join("repo/tmp"), &owner).unwrap();
        let Staging::File(f) = leftover.staging else {
            unreachable!()
        };
        f.keep().unwrap();
        let listed = b.list_staged().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].owner, Some(owner));
        b.remove_staged(&listed[0].name).unwrap();
        assert!(b.list_staged().unwrap().is_empty());
        assert!(b.remove_staged("../config").is_err());
    }
}

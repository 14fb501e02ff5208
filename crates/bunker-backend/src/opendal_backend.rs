//! [`Backend`] over an Apache OpenDAL operator.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use opendal::Operator;

use crate::staged::Staging;
use crate::{Backend, BackendError, ErrorKind, FileInfo, FileKind, Location, StagedFile};

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
                if !create && !root.join("config").is_file() {
                    let what = if root.is_dir() {
                        "no bunker repository in this directory"
                    } else {
                        "no such directory"
                    };
                    return Err(BackendError::new(
                        ErrorKind::NotFound,
                        format!("open {}", root.display()),
                        what,
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
                })
            }
        }
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

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn map_err(op: &str, path: &str, e: opendal::Error) -> BackendError {
    let operation = format!("{op} {path}");
    let text = format!("{e:?}");
    let kind = match e.kind() {
        opendal::ErrorKind::NotFound => ErrorKind::NotFound,
        opendal::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ if text.contains("No space left") || text.contains("StorageFull") => ErrorKind::NoSpace,
        _ if e.is_temporary() => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    };
    BackendError::new(kind, operation, e.to_string())
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
            Some(root) => StagedFile::in_dir(&root.join(TMP_DIR))
                .map_err(|e| BackendError::from(("create a file in the repository", e))),
            None => Ok(StagedFile::in_memory()),
        }
    }

    fn commit(&self, kind: FileKind, name: &str, staged: StagedFile) -> Result<(), BackendError> {
        let path = kind.path(name);
        match (staged.staging, &self.local_root) {
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

    fn size(&self, kind: FileKind, name: &str) -> Result<u64, BackendError> {
        let path = kind.path(name);
        let meta = self
            .block_on(self.op.stat(&path))
            .map_err(|e| map_err("stat", &path, e))?;
        Ok(meta.content_length())
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
        // Reopen without create: now a repository.
        OpenDalBackend::open(&loc, false).unwrap();
    }
}

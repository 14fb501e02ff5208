//! [`Backend`] on a local file system, with direct system calls: a read is
//! one `pread`, a write an unnamed file linked into place.

use std::path::{Path, PathBuf};

use crate::staged::Staging;
use crate::{
    Backend, BackendError, Capabilities, ErrorKind, FileInfo, FileKind, StagedFile, StagedInfo,
    StagingOwner,
};

/// Directory, under a local repository, for files being written.
const TMP_DIR: &str = "tmp";

/// A repository in a local directory. Writes are staged in unnamed files
/// and renamed into place after an fsync; reads and listings are direct
/// system calls. No retries: a local disk's errors (a full disk, a failing
/// drive) do not go away by waiting.
pub struct LocalBackend {
    root: PathBuf,
    /// Names this process's staged files.
    owner: StagingOwner,
}

impl LocalBackend {
    /// Opens the directory `path`. Unless `create` is set, a directory that
    /// does not exist is [`ErrorKind::NotFound`] and nothing is created.
    pub fn open(path: &Path, create: bool) -> Result<Self, BackendError> {
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
        Ok(LocalBackend {
            root,
            owner: StagingOwner::this_process(),
        })
    }

    /// Gives a complete unnamed file a name in `tmp/` (after an fsync):
    /// linked where the file system allows, else its bytes are copied into
    /// a named temporary file (a file system without `O_TMPFILE`).
    fn name_staged(&self, file: std::fs::File) -> std::io::Result<PathBuf> {
        use std::os::fd::AsRawFd;
        file.sync_all()?;
        let prefix = self.owner_prefix();
        let builder = || {
            let mut b = tempfile::Builder::new();
            b.prefix(&prefix).rand_bytes(12);
            b
        };
        let tmp = builder()
            .make_in(self.root.join(TMP_DIR), |_| Ok(()))?
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
        if !linked {
            let mut copy = builder().tempfile_in(self.root.join(TMP_DIR))?;
            let mut source = file;
            std::io::Seek::seek(&mut source, std::io::SeekFrom::Start(0))?;
            std::io::copy(&mut source, copy.as_file_mut())?;
            copy.as_file().sync_all()?;
            copy.persist(&tmp).map_err(|e| e.error)?;
        }
        Ok(tmp)
    }

    /// Gives a complete unnamed file its final name: named in `tmp/`, then
    /// renamed over `dest` (atomic, and replacing a file rewritten in place).
    fn publish_unnamed(&self, file: std::fs::File, dest: &Path) -> std::io::Result<()> {
        let tmp = self.name_staged(file)?;
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&tmp, dest)
    }

    /// Makes `tmp/` if it is missing (a repository copied without its
    /// empty directories).
    fn ensure_tmp(&self) -> Result<(), BackendError> {
        let tmp = self.root.join(TMP_DIR);
        if !tmp.is_dir() {
            std::fs::create_dir_all(&tmp).map_err(Self::io_error("create", TMP_DIR))?;
        }
        Ok(())
    }

    fn owner_prefix(&self) -> String {
        format!("{}-{}-", self.owner.host, self.owner.pid)
    }

    /// Makes a completed rename durable: fsync the directory holding `path`.
    fn sync_parent(&self, path: &str) -> Result<(), BackendError> {
        let dir = self.root.join(path);
        let dir = dir.parent().unwrap_or(&self.root);
        sync_dir(dir)
            .map_err(|e| BackendError::from((format!("sync {}", dir.display()).as_str(), e)))
    }
}

fn absolute(path: &Path) -> Result<PathBuf, BackendError> {
    std::path::absolute(path).map_err(|e| BackendError::from(("resolve repository path", e)))
}

/// A positioned read: one system call (restores read one blob at a time).
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

/// Makes a named temporary file visible under `dest`: a sync and a rename,
/// with no copy of its bytes in memory.
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
/// `stat` per file.
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

impl LocalBackend {
    fn io_error<'a>(
        op: &'a str,
        path: &'a str,
    ) -> impl FnOnce(std::io::Error) -> BackendError + 'a {
        move |e| BackendError::from((format!("{op} {path}").as_str(), e))
    }
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create: true,
            streamed_upload: true,
            batch_delete: false,
            retries: false,
            remote: false,
        }
    }

    fn create(&self) -> Result<(), BackendError> {
        let mut dirs: Vec<String> = [
            "keys",
            "index",
            "snapshots",
            "locks",
            "condemned",
            "tombstones",
            "runs",
            "data",
            TMP_DIR,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        dirs.extend((0..=255u8).map(|b| format!("data/{b:02x}")));
        for d in &dirs {
            std::fs::create_dir_all(self.root.join(d)).map_err(Self::io_error("create", d))?;
        }
        let sync =
            |dir: &Path| sync_dir(dir).map_err(|e| BackendError::from(("sync new repository", e)));
        for d in dirs.iter().rev() {
            sync(&self.root.join(d))?;
        }
        sync(&self.root)?;
        if let Some(parent) = self.root.parent() {
            let _ = sync_dir(parent);
        }
        Ok(())
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError> {
        let path = kind.path(name);
        std::fs::read(self.root.join(&path)).map_err(Self::io_error("read", &path))
    }

    fn read_at_most(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, BackendError> {
        use std::io::Read;
        let path = kind.path(name);
        let file =
            std::fs::File::open(self.root.join(&path)).map_err(Self::io_error("read", &path))?;
        let size = file
            .metadata()
            .map_err(Self::io_error("read", &path))?
            .len();
        if size > max {
            return Err(crate::too_long(kind, name, size, max));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(Self::io_error("read", &path))?;
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
        read_local_range(&self.root.join(&path), offset, length)
            .map_err(Self::io_error("read", &path))
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        let mut staged = self.stage(kind)?;
        staged
            .append(data)
            .map_err(Self::io_error("write", &kind.path(name)))?;
        self.commit(kind, name, staged)
    }

    fn write_new(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        // Linked, not renamed, into place: link(2) fails if the name exists.
        let path = kind.path(name);
        let failed = Self::io_error("write", &path);
        self.ensure_tmp()?;
        let mut file = tempfile::tempfile_in(self.root.join(TMP_DIR))
            .map_err(Self::io_error("write", &path))?;
        std::io::Write::write_all(&mut file, data).map_err(Self::io_error("write", &path))?;
        let tmp = self
            .name_staged(file)
            .map_err(Self::io_error("write", &path))?;
        let dest = self.root.join(&path);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(Self::io_error("write", &path))?;
        }
        let linked = std::fs::hard_link(&tmp, &dest);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(crate::already_exists(&path))
            }
            Err(e) => Err(failed(e)),
            Ok(()) => self.sync_parent(&path),
        }
    }

    fn stage(&self, _kind: FileKind) -> Result<StagedFile, BackendError> {
        self.ensure_tmp()?;
        StagedFile::unnamed_in(&self.root.join(TMP_DIR))
            .map_err(|e| BackendError::from(("create a file in the repository", e)))
    }

    fn commit(&self, kind: FileKind, name: &str, staged: StagedFile) -> Result<(), BackendError> {
        let path = kind.path(name);
        let dest = self.root.join(&path);
        match staged.staging {
            Staging::Unnamed(file) => self.publish_unnamed(file, &dest),
            Staging::File(tmp) => persist_local(tmp, &dest),
            Staging::Memory(bytes) => {
                let mut staged = self.stage(kind)?;
                staged.append(&bytes).and_then(|()| match staged.staging {
                    Staging::Unnamed(file) => self.publish_unnamed(file, &dest),
                    _ => unreachable!("stage() makes unnamed files"),
                })
            }
        }
        .map_err(Self::io_error("write", &path))?;
        self.sync_parent(&path)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError> {
        let fanout = matches!(kind, FileKind::Pack | FileKind::Parity);
        let mut out = list_local(&self.root.join(kind.dir()), fanout)
            .map_err(Self::io_error("list", kind.dir()))?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn list_names(&self, kind: FileKind) -> Result<Vec<String>, BackendError> {
        if matches!(kind, FileKind::Pack | FileKind::Parity) {
            return Ok(self.list(kind)?.into_iter().map(|f| f.name).collect());
        }
        let entries =
            dir_entries(&self.root.join(kind.dir())).map_err(Self::io_error("list", kind.dir()))?;
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
        let meta =
            std::fs::metadata(self.root.join(&path)).map_err(Self::io_error("stat", &path))?;
        Ok(meta.len())
    }

    fn list_staged(&self) -> Result<Vec<StagedInfo>, BackendError> {
        let entries = dir_entries(&self.root.join(TMP_DIR))
            .map_err(|e| BackendError::from(("list tmp", e)))?;
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
        crate::staged::check_staged_name(name)?;
        match std::fs::remove_file(self.root.join(TMP_DIR).join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackendError::from((
                format!("remove tmp/{name}").as_str(),
                e,
            ))),
            _ => Ok(()),
        }
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        let path = kind.path(name);
        match std::fs::remove_file(self.root.join(&path)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Self::io_error("delete", &path)(e)),
            Ok(()) => {}
        }
        self.sync_parent(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_contract() {
        let dir = tempfile::tempdir().unwrap();
        let loc = dir.path().join("repo");
        assert_eq!(
            LocalBackend::open(&loc, false).err().unwrap().kind,
            ErrorKind::NotFound
        );
        assert!(
            !dir.path().join("repo").exists(),
            "opening a missing repository must not create it"
        );

        let b = LocalBackend::open(&loc, true).unwrap();
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
        let b = LocalBackend::open(&loc, false).unwrap();
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
        let loc = dir.path().join("repo");
        let b = LocalBackend::open(&loc, true).unwrap();
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

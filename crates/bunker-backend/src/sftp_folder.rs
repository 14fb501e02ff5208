//! A plain folder on an SSH host, for mirrors: listed with its metadata,
//! and changed by batches of operations run concurrently over one SFTP
//! session (the protocol pipelines requests). Reached through the system's
//! OpenSSH client, as the SFTP repositories are, so `~/.ssh/config`, known
//! hosts and the agent apply.
//!
//! SFTP (version 3, as OpenSSH serves it) keeps content, permissions,
//! modification times in whole seconds, symlinks, hard links (OpenSSH's
//! extension) and, when the login may, owner and group; extended
//! attributes, ACLs, device nodes, FIFOs and holes have no place in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::stream::{self, StreamExt};
use openssh::{KnownHosts, SessionBuilder};
use openssh_sftp_client::metadata::{MetaData, MetaDataBuilder, Permissions};
use openssh_sftp_client::{Sftp, SftpOptions, UnixTimeStamp};
use tokio::io::AsyncReadExt;

use crate::runtime::IoRuntime;
use crate::{BackendError, ErrorKind, Location, Settings};

/// What an entry of the remote folder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (device, FIFO, socket).
    Other,
}

/// One entry of the remote folder, by its path relative to the folder.
#[derive(Clone, Debug)]
pub struct RemoteEntry {
    /// Its path below the folder.
    pub rel: PathBuf,
    /// What it is.
    pub kind: RemoteKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Permission bits.
    pub mode: u32,
    /// Owner and group.
    pub owner: (u32, u32),
    /// A symlink's target.
    pub link_target: Option<PathBuf>,
}

/// The attributes SFTP can set.
#[derive(Clone, Copy, Debug)]
pub struct RemoteAttrs {
    /// Permission bits.
    pub mode: u32,
    /// Modification (and access) time, Unix seconds.
    pub mtime: i64,
    /// Owner and group, when they are to be set.
    pub owner: Option<(u32, u32)>,
}

/// One change to the remote folder.
#[derive(Clone, Debug)]
pub enum RemoteOp {
    /// Creates a directory (its attributes come later, with `SetAttrs`).
    Mkdir(PathBuf),
    /// Writes the local file beside `rel` and renames it over `rel`.
    Upload {
        /// Where.
        rel: PathBuf,
        /// The local file.
        local: PathBuf,
        /// Its attributes.
        attrs: RemoteAttrs,
    },
    /// Creates a symlink at `rel` pointing to `target`.
    Symlink {
        /// Where.
        rel: PathBuf,
        /// What it points to.
        target: PathBuf,
    },
    /// Makes `rel` another name of `existing` (both below the folder).
    HardLink {
        /// The new name.
        rel: PathBuf,
        /// The file it names too.
        existing: PathBuf,
    },
    /// Removes a file, link or (empty) directory.
    Remove {
        /// What.
        rel: PathBuf,
        /// It is a directory.
        dir: bool,
    },
    /// Sets the attributes of `rel` (not through a symlink).
    SetAttrs {
        /// What.
        rel: PathBuf,
        /// To what.
        attrs: RemoteAttrs,
    },
}

impl RemoteOp {
    /// The path the operation changes.
    pub fn rel(&self) -> &Path {
        match self {
            RemoteOp::Mkdir(rel)
            | RemoteOp::Upload { rel, .. }
            | RemoteOp::Symlink { rel, .. }
            | RemoteOp::HardLink { rel, .. }
            | RemoteOp::Remove { rel, .. }
            | RemoteOp::SetAttrs { rel, .. } => rel,
        }
    }
}

/// A folder on an SSH host, open for a mirror.
pub struct SftpFolder {
    sftp: Option<Arc<Sftp>>,
    root: PathBuf,
    shown: String,
    runtime: IoRuntime,
}

impl SftpFolder {
    /// Connects to the `sftp://` location (`sftp.key` and
    /// `sftp.accept-new-host-key` apply as for repositories) and makes the
    /// folder when it is missing.
    pub fn connect(location: &Location, settings: &Settings) -> Result<SftpFolder, BackendError> {
        let Location::Sftp {
            user,
            host,
            port,
            path,
        } = location
        else {
            return Err(BackendError::new(
                ErrorKind::Permanent,
                "open",
                format!("{location} is not an sftp:// location"),
            ));
        };
        let shown = location.to_string();
        let mut builder = SessionBuilder::default();
        if let Some(u) = user {
            builder.user(u.clone());
        }
        if let Some(p) = port {
            builder.port(*p);
        }
        if let Some(key) = settings.option("sftp.key") {
            builder.keyfile(key);
        }
        builder.known_hosts_check(match settings.flag("sftp.accept-new-host-key")? {
            true => KnownHosts::Add,
            false => KnownHosts::Strict,
        });
        // A path from `sftp://host/~/x` is relative: SFTP resolves it from
        // the login's home directory.
        let root = PathBuf::from(path.strip_prefix("~/").unwrap_or(path));
        let runtime = IoRuntime::new()?;
        let host = host.clone();
        let fail =
            |e: String| BackendError::new(ErrorKind::Permanent, format!("connect to {shown}"), e);
        let sftp = runtime
            .run(async move {
                let session = builder.connect(&host).await.map_err(|e| e.to_string())?;
                Sftp::from_session(session, SftpOptions::default())
                    .await
                    .map_err(|e| e.to_string())
            })
            .map_err(fail)?;
        let folder = SftpFolder {
            sftp: Some(Arc::new(sftp)),
            root,
            shown,
            runtime,
        };
        folder.make_root()?;
        Ok(folder)
    }

    /// The folder's URL, for messages.
    pub fn location(&self) -> &str {
        &self.shown
    }

    /// The server keeps hard links (OpenSSH's `hardlink@openssh.com`).
    pub fn supports_hard_links(&self) -> bool {
        self.sftp().support_hardlink()
    }

    fn sftp(&self) -> &Arc<Sftp> {
        self.sftp.as_ref().expect("present until dropped")
    }

    fn make_root(&self) -> Result<(), BackendError> {
        let sftp = Arc::clone(self.sftp());
        let root = self.root.clone();
        self.runtime
            .run(async move {
                let mut fs = sftp.fs();
                let mut at = PathBuf::new();
                for part in root.components() {
                    at.push(part);
                    if fs.metadata(&at).await.is_err() {
                        fs.create_dir(&at)
                            .await
                            .map_err(|e| format!("{}: {e}", at.display()))?;
                    }
                }
                Ok::<_, String>(())
            })
            .map_err(|e| {
                BackendError::new(ErrorKind::Permanent, format!("create {}", self.shown), e)
            })
    }

    /// Every entry below the folder, parents before their children.
    pub fn list(&self) -> Result<Vec<RemoteEntry>, BackendError> {
        let sftp = Arc::clone(self.sftp());
        let root = self.root.clone();
        self.runtime
            .run(async move { list(&sftp, &root).await })
            .map_err(|e| BackendError::new(ErrorKind::Permanent, format!("list {}", self.shown), e))
    }

    /// Runs `ops` with up to `concurrency` at once (the caller orders the
    /// batches: directories before what goes in them). Returns, for each
    /// op in order, the bytes it uploaded or why it failed.
    pub fn run(&self, ops: Vec<RemoteOp>, concurrency: usize) -> Vec<Result<u64, String>> {
        let sftp = Arc::clone(self.sftp());
        let root = self.root.clone();
        self.runtime.run(async move {
            stream::iter(ops)
                .map(|op| {
                    let sftp = Arc::clone(&sftp);
                    let root = root.clone();
                    async move {
                        apply(&sftp, &root, &op)
                            .await
                            .map_err(|e| format!("{}: {e}", op.rel().display()))
                    }
                })
                .buffered(concurrency.max(1))
                .collect()
                .await
        })
    }
}

impl Drop for SftpFolder {
    fn drop(&mut self) {
        if let Some(sftp) = self.sftp.take().and_then(|s| Arc::try_unwrap(s).ok()) {
            let _ = self.runtime.run(async move { sftp.close().await });
        }
    }
}

fn kind_of(m: &MetaData) -> RemoteKind {
    match m.file_type() {
        Some(t) if t.is_dir() => RemoteKind::Dir,
        Some(t) if t.is_file() => RemoteKind::File,
        Some(t) if t.is_symlink() => RemoteKind::Symlink,
        _ => RemoteKind::Other,
    }
}

async fn list(sftp: &Sftp, root: &Path) -> Result<Vec<RemoteEntry>, String> {
    let mut fs = sftp.fs();
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        let at = root.join(&dir);
        let handle = fs
            .open_dir(&at)
            .await
            .map_err(|e| format!("{}: {e}", at.display()))?;
        let mut entries = Box::pin(handle.read_dir());
        while let Some(entry) = entries.next().await {
            let entry = entry.map_err(|e| format!("{}: {e}", at.display()))?;
            let name = entry.filename();
            if name == Path::new(".") || name == Path::new("..") {
                continue;
            }
            let rel = dir.join(name);
            let m = entry.metadata();
            let kind = kind_of(&m);
            let link_target = match kind {
                RemoteKind::Symlink => Some(
                    fs.read_link(root.join(&rel))
                        .await
                        .map_err(|e| format!("{}: {e}", rel.display()))?,
                ),
                _ => None,
            };
            if kind == RemoteKind::Dir {
                pending.push(rel.clone());
            }
            out.push(RemoteEntry {
                kind,
                size: m.len().unwrap_or(0),
                mtime: m.modified().map_or(0, |t| t.as_duration().as_secs() as i64),
                mode: m.permissions().map_or(0, |p| p.as_raw().bits()) & 0o7777,
                owner: (m.uid().unwrap_or(0), m.gid().unwrap_or(0)),
                link_target,
                rel,
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn metadata(attrs: &RemoteAttrs) -> Result<MetaData, String> {
    let mut b = MetaDataBuilder::new();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(attrs.mtime.max(0) as u64);
    let stamp = UnixTimeStamp::new(t).map_err(|e| format!("time {}: {e}", attrs.mtime))?;
    b.permissions(Permissions::from_raw(
        openssh_sftp_client::metadata::RawPermissions::from_bits_truncate(attrs.mode),
    ))
    .time(stamp, stamp);
    if let Some(owner) = attrs.owner {
        b.id(owner);
    }
    Ok(b.create())
}

async fn apply(sftp: &Sftp, root: &Path, op: &RemoteOp) -> Result<u64, String> {
    let mut fs = sftp.fs();
    let err = |e: openssh_sftp_client::Error| e.to_string();
    match op {
        RemoteOp::Mkdir(rel) => fs.create_dir(root.join(rel)).await.map(|_| 0).map_err(err),
        RemoteOp::Upload { rel, local, attrs } => {
            let target = root.join(rel);
            let name = rel.file_name().unwrap_or_default().to_string_lossy();
            let temp =
                target.with_file_name(format!(".{name}.bunker-mirror-{}", std::process::id()));
            let bytes = upload(sftp, local, &temp).await;
            let done = match bytes {
                Ok(n) => match fs.set_metadata(&temp, metadata(attrs)?).await {
                    Ok(()) => fs.rename(&temp, &target).await.map(|_| n).map_err(err),
                    Err(e) => Err(err(e)),
                },
                Err(e) => Err(e),
            };
            if done.is_err() {
                let _ = fs.remove_file(&temp).await;
            }
            done
        }
        // OpenSSH's server takes SYMLINK's two paths the other way round
        // from the protocol's text; the client crate follows the server.
        RemoteOp::Symlink { rel, target } => fs
            .symlink(target, root.join(rel))
            .await
            .map(|_| 0)
            .map_err(err),
        RemoteOp::HardLink { rel, existing } => fs
            .hard_link(root.join(existing), root.join(rel))
            .await
            .map(|_| 0)
            .map_err(err),
        RemoteOp::Remove { rel, dir: true } => {
            fs.remove_dir(root.join(rel)).await.map(|_| 0).map_err(err)
        }
        RemoteOp::Remove { rel, dir: false } => {
            fs.remove_file(root.join(rel)).await.map(|_| 0).map_err(err)
        }
        RemoteOp::SetAttrs { rel, attrs } => fs
            .set_metadata(root.join(rel), metadata(attrs)?)
            .await
            .map(|_| 0)
            .map_err(err),
    }
}

/// Streams the local file to `remote` (created or truncated).
async fn upload(sftp: &Sftp, local: &Path, remote: &Path) -> Result<u64, String> {
    let mut source = tokio::fs::File::open(local)
        .await
        .map_err(|e| format!("{}: {e}", local.display()))?;
    let mut file = sftp
        .options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(remote)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = source
            .read(&mut buf)
            .await
            .map_err(|e| format!("{}: {e}", local.display()))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n]).await.map_err(|e| e.to_string())?;
        total += n as u64;
    }
    file.close().await.map_err(|e| e.to_string())?;
    Ok(total)
}

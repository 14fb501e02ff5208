//! [`Backend`] on remote storage through an Apache OpenDAL operator: S3,
//! Azure Blob, GCS and SFTP. Every request is retried on transient failure
//! (with exponential backoff and jitter), bounded by a timeout, and limited
//! to a number of parallel requests; the service-specific parts (addresses,
//! credentials, what the service can do) live in one file per service.

mod azblob;
mod gcs;
mod object_lock;
mod pacer;
mod past;
mod s3;
mod sftp;

use std::io::Read;
use std::time::Duration;

use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions, WriteOptions};
use opendal::{HttpTransporter, OperationContext, Operator};

use crate::error::from_opendal;
use crate::runtime::IoRuntime;
use crate::staged::{check_staged_name, Staging};
use crate::{
    Backend, BackendError, Capabilities, ErrorKind, FileInfo, FileKind, Location, Settings,
    StagedFile, StagedInfo, StagingOwner,
};
use object_lock::ObjectLockClient;
pub use object_lock::RetentionMode;
use pacer::Pacer;
pub use past::PastBackend;

/// Directory for files being uploaded where the service writes in place.
const TMP_DIR: &str = "tmp";
/// Bytes per upload request (multipart part) and per read of a staged file.
const PIECE: usize = 8 << 20;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// How a service stores a file written piece by piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upload {
    /// Multipart upload under the final name; invisible until complete.
    Multipart,
    /// One request holding the whole file (services without multipart).
    OneRequest,
    /// Written in place under `tmp/`, then renamed (SFTP writes in place).
    ViaTmp,
}

/// A service's operator and what Bunker must know about it.
pub(crate) struct Service {
    /// The bare operator, before retry and limit layers.
    pub op: Operator,
    /// Secrets the configuration holds, scrubbed from every message.
    pub secrets: Vec<String>,
    /// How files written in pieces are stored.
    pub upload: Upload,
    /// Create-if-absent is atomic on this service.
    pub atomic_create: bool,
    /// Many deletions per request.
    pub batch_delete: bool,
    /// The service answers "not found" for a directory with no files
    /// (SFTP), where an object store answers "not found" only for a missing
    /// bucket or container.
    pub missing_dir_is_empty: bool,
    /// Turns a failure the user can fix into words saying how.
    pub explain: Option<Explain>,
    /// Object Lock requests, where the service has them (S3).
    pub object_lock: Option<ObjectLockClient>,
}

/// Rewrites an error message into advice, when it recognises it.
pub(crate) type Explain = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A repository on remote storage.
pub struct RemoteBackend {
    op: Operator,
    /// `--limit-upload`: paces every piece sent.
    upload_pacer: Option<Pacer>,
    /// `--limit-download`: paces every read.
    download_pacer: Option<Pacer>,
    /// Bytes sent per write request: smaller under an upload limit, so the
    /// pacing is smooth.
    piece: usize,
    runtime: IoRuntime,
    location: String,
    secrets: Vec<String>,
    upload: Upload,
    atomic_create: bool,
    batch_delete: bool,
    missing_dir_is_empty: bool,
    explain: Option<Explain>,
    owner: StagingOwner,
    object_lock: Option<std::sync::Arc<ObjectLockClient>>,
    /// Set by [`Backend::retain_writes`]: every file written (locks apart)
    /// is retained this long.
    retention: std::sync::OnceLock<(RetentionMode, u32)>,
}

impl RemoteBackend {
    /// Opens remote storage; nothing is sent until the first operation.
    pub fn open(location: &Location, settings: &Settings) -> Result<Self, BackendError> {
        let runtime = IoRuntime::new()?;
        let service = {
            let _guard = runtime.enter();
            match location {
                Location::S3 { bucket, prefix } => s3::service(bucket, prefix, settings),
                Location::Azblob { container, prefix } => {
                    azblob::service(container, prefix, settings)
                }
                Location::Gcs { bucket, prefix } => gcs::service(bucket, prefix, settings),
                Location::Sftp {
                    user,
                    host,
                    port,
                    path,
                } => sftp::service(user.as_deref(), host, *port, path, settings),
                Location::Local(_) => Err(ServiceError::Config(
                    "a local directory is opened as a LocalBackend".into(),
                )),
            }
        }
        .map_err(|e| match e {
            ServiceError::Config(message) => {
                BackendError::new(ErrorKind::Permanent, format!("open {location}"), message)
            }
            ServiceError::OpenDal(e) => from_opendal(format!("open {location}"), e, &[]),
        })?;
        // A client of this backend's own (no process-wide transport), which
        // gives up connecting after a bounded time.
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout()?.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| {
                BackendError::new(ErrorKind::Permanent, "start the HTTP client", e.to_string())
            })?;
        let context = OperationContext::new().with_http_transport(HttpTransporter::new(
            opendal_http_transport_reqwest::ReqwestTransport::new(client),
        ));
        let timeout = settings.timeout()?;
        let op = service
            .op
            .clone()
            .with_context(context)
            .layer(ConcurrentLimitLayer::new(settings.connections()?))
            .layer(
                TimeoutLayer::new()
                    .with_timeout(timeout)
                    .with_io_timeout(timeout),
            )
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_factor(2.0)
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5))
                    .with_max_times(settings.retries()?),
            );
        Ok(RemoteBackend {
            op,
            upload_pacer: settings.limit_upload.map(Pacer::new),
            download_pacer: settings.limit_download.map(Pacer::new),
            piece: settings
                .limit_upload
                .map_or(PIECE, |rate| (rate as usize).clamp(64 << 10, PIECE)),
            runtime,
            location: location.to_string(),
            secrets: service.secrets,
            upload: service.upload,
            atomic_create: service.atomic_create,
            batch_delete: service.batch_delete,
            missing_dir_is_empty: service.missing_dir_is_empty,
            explain: service.explain,
            owner: StagingOwner::this_process(),
            object_lock: service.object_lock.map(std::sync::Arc::new),
            retention: std::sync::OnceLock::new(),
        })
    }

    fn error(&self, op: &str, path: &str, e: opendal::Error) -> BackendError {
        let mut e = from_opendal(
            format!("{op} {path} on {}", self.location),
            e,
            &self.secrets,
        );
        if let Some(advice) = self.explain.as_ref().and_then(|f| f(&e.message)) {
            e.message = advice;
            e.kind = ErrorKind::Permanent;
        }
        e
    }

    /// Runs one operation on the download operator.
    fn call<F, T>(
        &self,
        what: &str,
        path: &str,
        f: impl FnOnce(Operator, String) -> F,
    ) -> Result<T, BackendError>
    where
        F: std::future::Future<Output = opendal::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime
            .run(f(self.op.clone(), path.to_string()))
            .map_err(|e| self.error(what, path, e))
    }

    /// Deletes `path`; deleting what is not there succeeds.
    fn delete(&self, path: &str) -> Result<(), BackendError> {
        match self.call("delete", path, |op, p| async move { op.delete(&p).await }) {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// After a file is written: its retention, when the repository keeps
    /// its files under Object Lock (locks apart: they are rewritten and
    /// removed all the time, and protect nothing).
    fn retain_new(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        match self.retention.get() {
            Some(_) if kind != FileKind::Lock => self.extend_retention(kind, name),
            _ => Ok(()),
        }
    }

    fn lock_error(&self, op: &str, path: &str, message: String) -> BackendError {
        let message = crate::error::redact(&message, &self.secrets);
        let kind = match message.contains("AccessDenied") {
            true => ErrorKind::PermissionDenied,
            false => ErrorKind::Permanent,
        };
        BackendError::new(kind, format!("{op} {path} on {}", self.location), message)
    }

    /// Reads `path` whole, or `length` bytes at `offset` (then exactly
    /// that many, or a truncation error), of its current version or of
    /// `version`; paced by `--limit-download`.
    fn read_object(
        &self,
        path: &str,
        range: Option<(u64, u64)>,
        version: Option<String>,
    ) -> Result<Vec<u8>, BackendError> {
        let opts = ReadOptions {
            range: range.map_or((..).into(), |(o, l)| (o..o + l).into()),
            version,
            ..ReadOptions::default()
        };
        let buf = self.call("read", path, |op, p| async move {
            op.read_options(&p, opts).await
        })?;
        if let Some(p) = &self.download_pacer {
            p.pace(buf.len());
        }
        if let Some((offset, length)) = range {
            if buf.len() as u64 != length {
                return Err(BackendError::new(
                    ErrorKind::Permanent,
                    format!("read {path} on {}", self.location),
                    format!(
                        "file is truncated: wanted {length} bytes at offset {offset}, got {}",
                        buf.len()
                    ),
                ));
            }
        }
        Ok(buf.to_vec())
    }

    /// A fresh name under `tmp/` for a file written in place.
    fn tmp_path(&self) -> String {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("the system's random source works");
        let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
        format!("{TMP_DIR}/{}-{}-{random}", self.owner.host, self.owner.pid)
    }

    /// Uploads `source` (read piece by piece) to `path`.
    fn upload_from(
        &self,
        path: &str,
        mut source: impl Read,
        if_not_exists: bool,
    ) -> Result<(), BackendError> {
        let failed_read = |e| BackendError::from((format!("read staged {path}").as_str(), e));
        if self.upload == Upload::OneRequest {
            let mut bytes = Vec::new();
            source.read_to_end(&mut bytes).map_err(failed_read)?;
            if let Some(p) = &self.upload_pacer {
                p.pace(bytes.len());
            }
            let op = self.op.clone();
            let opts = WriteOptions {
                if_not_exists,
                ..WriteOptions::default()
            };
            let p = path.to_string();
            return self
                .runtime
                .run(async move { op.write_options(&p, bytes, opts).await.map(|_| ()) })
                .map_err(|e| self.error("write", path, e));
        }
        let (target, rename) = match (self.upload, if_not_exists) {
            // In place with O_EXCL: a create-if-absent cannot go through a rename.
            (Upload::ViaTmp, false) => (self.tmp_path(), true),
            _ => (path.to_string(), false),
        };
        let opts = WriteOptions {
            if_not_exists,
            chunk: (self.upload == Upload::Multipart).then_some(PIECE),
            concurrent: PARTS_IN_FLIGHT,
            ..WriteOptions::default()
        };
        let op = self.op.clone();
        let t = target.clone();
        let mut writer = self
            .runtime
            .run(async move { op.writer_options(&t, opts).await })
            .map_err(|e| self.error("write", path, e))?;
        let mut outcome = Ok(());
        loop {
            let mut piece = Vec::with_capacity(self.piece);
            if let Err(e) = (&mut source)
                .take(self.piece as u64)
                .read_to_end(&mut piece)
            {
                outcome = Err(failed_read(e));
                break;
            }
            if piece.is_empty() {
                break;
            }
            if let Some(p) = &self.upload_pacer {
                p.pace(piece.len());
            }
            let (w, written) = self.runtime.run(async move {
                let r = writer.write(piece).await;
                (writer, r)
            });
            writer = w;
            if let Err(e) = written {
                outcome = Err(self.error("write", path, e));
                break;
            }
        }
        let closed = match outcome {
            Ok(()) => self
                .runtime
                .run(async move { writer.close().await.map(|_| ()) })
                .map_err(|e| self.error("write", path, e)),
            Err(e) => {
                // Drop what was sent (a multipart upload's parts).
                let _ = self.runtime.run(async move { writer.abort().await });
                Err(e)
            }
        };
        if let Err(e) = closed {
            if rename {
                let _ = self.delete(&target);
            }
            return Err(e);
        }
        if rename {
            let to = path.to_string();
            let renamed = self.call("write", &target, |op, from| async move {
                op.rename(&from, &to).await
            });
            if renamed.is_err() {
                let _ = self.delete(&target);
            }
            return renamed.map_err(|e| BackendError {
                operation: format!("write {path} on {}", self.location),
                ..e
            });
        }
        Ok(())
    }

    /// Every file under `dir` (recursively), as `(path relative to dir, size)`.
    fn list_dir(&self, dir: &str) -> Result<Vec<(String, u64)>, BackendError> {
        let opts = ListOptions {
            recursive: true,
            ..ListOptions::default()
        };
        let listed = self.call("list", dir, |op, d| async move {
            op.list_options(&d, opts).await
        });
        let entries = match listed {
            Ok(entries) => entries,
            Err(e) if e.kind == ErrorKind::NotFound && self.missing_dir_is_empty => {
                return Ok(Vec::new())
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Err(BackendError {
                    message: "the bucket or container does not exist".into(),
                    ..e
                })
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            if !entry.metadata().is_file() {
                continue;
            }
            let Some(rel) = entry.path().strip_prefix(dir) else {
                continue;
            };
            out.push((rel.to_string(), entry.metadata().content_length()));
        }
        Ok(out)
    }
}

/// Why a service could not be configured.
pub(crate) enum ServiceError {
    /// Settings missing or contradictory, in words.
    Config(String),
    OpenDal(opendal::Error),
}

impl From<BackendError> for ServiceError {
    fn from(e: BackendError) -> Self {
        ServiceError::Config(e.to_string())
    }
}

impl From<opendal::Error> for ServiceError {
    fn from(e: opendal::Error) -> Self {
        ServiceError::OpenDal(e)
    }
}

impl Backend for RemoteBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create: self.atomic_create,
            streamed_upload: self.upload != Upload::OneRequest,
            batch_delete: self.batch_delete,
            retries: true,
            remote: true,
        }
    }

    fn probe(&self) -> Result<(), BackendError> {
        let opts = ListOptions {
            limit: Some(1),
            ..ListOptions::default()
        };
        match self.call("list", "/", |op, p| async move {
            op.list_options(&p, opts).await
        }) {
            Err(e) if e.kind == ErrorKind::NotFound && !self.missing_dir_is_empty => {
                Err(BackendError {
                    message: "the bucket or container does not exist; create it first".into(),
                    ..e
                })
            }
            other => other.map(|_| ()),
        }
    }

    fn create(&self) -> Result<(), BackendError> {
        // Object stores have no directories, and SFTP makes them as files
        // arrive: creating means only checking the storage answers.
        self.probe()
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError> {
        self.read_object(&kind.path(name), None, None)
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        if length == 0 {
            return Ok(Vec::new());
        }
        self.read_object(&kind.path(name), Some((offset, length)), None)
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.upload_from(&kind.path(name), data, false)?;
        self.retain_new(kind, name)
    }

    fn write_new(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        let path = kind.path(name);
        if !self.atomic_create && self.exists(kind, name)? {
            return Err(crate::already_exists(&path));
        }
        self.upload_from(&path, data, self.atomic_create)?;
        self.retain_new(kind, name)
    }

    fn stage(&self, _kind: FileKind) -> Result<StagedFile, BackendError> {
        // On local disk, not in memory: a pack is read back piece by piece
        // as it is uploaded.
        StagedFile::unnamed_in(&std::env::temp_dir())
            .map_err(|e| BackendError::from(("create a temporary file", e)))
    }

    fn commit(&self, kind: FileKind, name: &str, staged: StagedFile) -> Result<(), BackendError> {
        let path = kind.path(name);
        let rewind = |mut f: std::fs::File| -> Result<std::fs::File, BackendError> {
            std::io::Seek::rewind(&mut f)
                .map_err(|e| BackendError::from((format!("read staged {path}").as_str(), e)))?;
            Ok(f)
        };
        match staged.staging {
            Staging::Unnamed(f) => self.upload_from(&path, rewind(f)?, false),
            Staging::File(f) => self.upload_from(
                &path,
                rewind(
                    f.reopen()
                        .map_err(|e| BackendError::from(("read staged file", e)))?,
                )?,
                false,
            ),
            Staging::Memory(bytes) => self.upload_from(&path, bytes.as_slice(), false),
        }?;
        self.retain_new(kind, name)
    }

    fn object_lock_enabled(&self) -> Result<bool, BackendError> {
        let Some(client) = self.object_lock.clone() else {
            return Ok(false);
        };
        self.runtime
            .run(async move { client.enabled().await })
            .map_err(|e| self.lock_error("read the Object Lock setting of", "the bucket", e))
    }

    fn retain_writes(&self, mode: RetentionMode, days: u32) -> Result<(), BackendError> {
        if self.object_lock.is_none() {
            return Err(crate::no_object_lock(&self.location));
        }
        let _ = self.retention.set((mode, days));
        Ok(())
    }

    fn extend_retention(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        let (Some(client), Some(&(mode, days))) = (self.object_lock.clone(), self.retention.get())
        else {
            return Err(crate::no_object_lock(&self.location));
        };
        let path = kind.path(name);
        let until = crate::unix_now() + i64::from(days) * 86_400;
        let p = path.clone();
        self.runtime
            .run(async move { client.retain(&p, mode, until).await })
            .map_err(|e| self.lock_error("retain", &path, e))
    }

    fn retention_until(&self, kind: FileKind, name: &str) -> Result<Option<i64>, BackendError> {
        let Some(client) = self.object_lock.clone() else {
            return Err(crate::no_object_lock(&self.location));
        };
        let path = kind.path(name);
        let p = path.clone();
        self.runtime
            .run(async move { client.retention(&p).await })
            .map_err(|e| self.lock_error("read the retention of", &path, e))
    }

    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError> {
        let dir = format!("{}/", kind.dir());
        let mut out = Vec::new();
        for (rel, mut size) in self.list_dir(&dir)? {
            // Packs and parity sit one fan-out directory down.
            let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
            if size == 0 {
                // Some listings leave sizes out; an empty file costs one stat.
                size = match self.size(kind, &name) {
                    Ok(s) => s,
                    Err(e) if e.kind == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
            }
            out.push(FileInfo { name, size });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64, BackendError> {
        let path = kind.path(name);
        let meta = self.call("stat", &path, |op, p| async move { op.stat(&p).await })?;
        Ok(meta.content_length())
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        let path = kind.path(name);
        self.delete(&path)
    }

    fn remove_many(&self, kind: FileKind, names: &[String]) -> Result<(), BackendError> {
        if !self.batch_delete {
            return names.iter().try_for_each(|n| self.remove(kind, n));
        }
        let paths: Vec<String> = names.iter().map(|n| kind.path(n)).collect();
        let what = format!("{} files in {}/", names.len(), kind.dir());
        self.call("delete", &what, |op, _| async move {
            op.delete_iter(paths).await
        })
    }

    fn list_staged(&self) -> Result<Vec<StagedInfo>, BackendError> {
        if self.upload != Upload::ViaTmp {
            return Ok(Vec::new());
        }
        let dir = format!("{TMP_DIR}/");
        Ok(self
            .list_dir(&dir)?
            .into_iter()
            .filter(|(rel, _)| !rel.contains('/'))
            .map(|(name, size)| StagedInfo {
                owner: StagingOwner::parse(&name),
                name,
                size,
                modified: None,
            })
            .collect())
    }

    fn remove_staged(&self, name: &str) -> Result<(), BackendError> {
        check_staged_name(name)?;
        let path = format!("{TMP_DIR}/{name}");
        self.delete(&path)
    }
}

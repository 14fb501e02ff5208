//! A repository as it was at a past time, read from a versioned bucket's
//! object versions (`--as-of`): after an attacker with a client's
//! credentials deleted or overwrote the repository's objects, each object's
//! version from before the attack is still there. The view is read-only.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use opendal::options::ListOptions;

use super::RemoteBackend;
use crate::{Backend, BackendError, Capabilities, ErrorKind, FileInfo, FileKind};

/// One object's version current at the chosen time.
#[derive(Clone, Debug)]
struct Version {
    id: String,
    size: u64,
}

/// A remote repository as it was at `at`.
pub struct PastBackend {
    inner: RemoteBackend,
    /// Unix nanoseconds.
    at: i64,
    /// Every object's version at `at` (path → version), listed once.
    versions: OnceLock<Result<HashMap<String, Version>, String>>,
}

impl PastBackend {
    /// The repository `inner` reaches, as it was at `at` (Unix nanoseconds).
    pub fn new(inner: RemoteBackend, at: i64) -> Self {
        PastBackend {
            inner,
            at,
            versions: OnceLock::new(),
        }
    }

    /// When the view is of, for messages.
    fn when(&self) -> String {
        let secs = self.at.div_euclid(1_000_000_000);
        opendal::raw::Timestamp::from_second(secs)
            .map_or_else(|_| format!("{secs} s after 1970"), |t| t.to_string())
    }

    fn read_only(&self, op: &str, path: &str) -> BackendError {
        BackendError::new(
            ErrorKind::PermissionDenied,
            format!("{op} {path}"),
            format!(
                "the repository as it was at {} (--as-of) is read-only",
                self.when()
            ),
        )
    }

    /// Lists every version and delete marker under the repository's root
    /// and keeps, for each path, the newest written at or before `at`
    /// (none when that is a delete marker).
    fn versions(&self) -> Result<&HashMap<String, Version>, BackendError> {
        let listed = self.versions.get_or_init(|| {
            let opts = ListOptions {
                recursive: true,
                versions: true,
                deleted: true,
                ..ListOptions::default()
            };
            let entries = self
                .inner
                .call("list versions", "/", |op, p| async move {
                    op.list_options(&p, opts).await
                })
                .map_err(|e| e.to_string())?;
            let mut newest: HashMap<String, (i64, Option<Version>)> = HashMap::new();
            for entry in entries {
                let meta = entry.metadata();
                if meta.is_dir() {
                    continue;
                }
                let Some(written) = meta.last_modified().map(unix_ns) else {
                    continue;
                };
                if written > self.at {
                    continue;
                }
                let version = match meta.is_deleted() {
                    true => None,
                    false => meta.version().map(|id| Version {
                        id: id.to_string(),
                        size: meta.content_length(),
                    }),
                };
                let path = entry.path().trim_start_matches('/').to_string();
                match newest.get(&path) {
                    Some((t, _)) if *t > written => {}
                    _ => {
                        newest.insert(path, (written, version));
                    }
                }
            }
            Ok(newest
                .into_iter()
                .filter_map(|(path, (_, v))| v.map(|v| (path, v)))
                .collect())
        });
        listed.as_ref().map_err(|message| {
            BackendError::new(
                ErrorKind::Permanent,
                format!("list the object versions of {}", self.inner.location()),
                format!("{message} (--as-of needs a bucket with versioning on)"),
            )
        })
    }

    fn version(&self, kind: FileKind, name: &str) -> Result<(String, Version), BackendError> {
        let path = kind.path(name);
        match self.versions()?.get(&path) {
            Some(v) => Ok((path, v.clone())),
            None => Err(BackendError::new(
                ErrorKind::NotFound,
                format!("read {path}"),
                format!("it did not exist at {}", self.when()),
            )),
        }
    }
}

/// A listing's time, in Unix nanoseconds.
fn unix_ns(t: opendal::raw::Timestamp) -> i64 {
    SystemTime::from(t)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Backend for PastBackend {
    fn location(&self) -> String {
        format!("{} as of {}", self.inner.location(), self.when())
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn probe(&self) -> Result<(), BackendError> {
        self.versions().map(|_| ())
    }

    fn create(&self) -> Result<(), BackendError> {
        Err(self.read_only("create", "the repository"))
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError> {
        let (path, v) = self.version(kind, name)?;
        self.inner.read_object(&path, None, Some(v.id))
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let (path, v) = self.version(kind, name)?;
        if length == 0 {
            return Ok(Vec::new());
        }
        self.inner
            .read_object(&path, Some((offset, length)), Some(v.id))
    }

    fn write(&self, kind: FileKind, name: &str, _data: &[u8]) -> Result<(), BackendError> {
        Err(self.read_only("write", &kind.path(name)))
    }

    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError> {
        let dir = format!("{}/", kind.dir());
        let mut out: Vec<FileInfo> = self
            .versions()?
            .iter()
            .filter(|(path, _)| path.starts_with(&dir))
            .map(|(path, v)| FileInfo {
                name: path.rsplit('/').next().unwrap_or(path).to_string(),
                size: v.size,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64, BackendError> {
        Ok(self.version(kind, name)?.1.size)
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        Err(self.read_only("remove", &kind.path(name)))
    }
}

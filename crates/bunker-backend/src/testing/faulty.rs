//! A backend wrapper that injects faults into the pack writes and reads
//! passing through it, whatever the storage underneath.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::{Backend, BackendError, Capabilities, ErrorKind, FileInfo, FileKind};

/// What the wrapper does to pack writes and reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// The n-th pack write (0-based) and every later one fail.
    FailFrom(usize),
    /// The n-th pack write stores only half its bytes but reports success.
    Truncate(usize),
    /// The n-th pack write leaves half its bytes under the final name, then fails.
    DieMidWrite(usize),
    /// Every pack read returns its bytes with one bit flipped.
    FlipReads,
    /// Every deletion is refused as by credentials without delete (S3
    /// without `s3:DeleteObject`); writes, overwrites included, pass.
    RefuseDeletes,
}

/// Wraps a backend; pack files pass through [`Fault`]s. Staged packs are
/// held in memory and written with [`Backend::write`], so every pack write
/// is seen.
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    fault: Mutex<Fault>,
    pack_writes: AtomicUsize,
}

impl FaultyBackend {
    /// Wraps `inner`, passing everything through until [`set`](Self::set).
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        FaultyBackend {
            inner,
            fault: Mutex::new(Fault::None),
            pack_writes: AtomicUsize::new(0),
        }
    }

    /// Injects `fault` from now on, counting pack writes from zero.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().expect("fault lock") = fault;
        self.pack_writes.store(0, Ordering::SeqCst);
    }

    fn fault(&self) -> Fault {
        *self.fault.lock().expect("fault lock")
    }
}

impl FaultyBackend {
    fn refuse_delete(&self, path: &str) -> Result<(), BackendError> {
        match self.fault() {
            Fault::RefuseDeletes => Err(BackendError::new(
                ErrorKind::PermissionDenied,
                format!("delete {path}"),
                "AccessDenied (injected: credentials without delete)",
            )),
            _ => Ok(()),
        }
    }
}

fn injected(what: &str) -> BackendError {
    BackendError::new(ErrorKind::Permanent, what, "injected fault")
}

impl Backend for FaultyBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }
    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>, BackendError> {
        let mut data = self.inner.read(kind, name)?;
        if kind == FileKind::Pack && self.fault() == Fault::FlipReads && !data.is_empty() {
            let i = data.len() / 3;
            data[i] ^= 0x04;
        }
        Ok(data)
    }
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        let mut data = self.inner.read_range(kind, name, offset, length)?;
        if kind == FileKind::Pack && self.fault() == Fault::FlipReads && !data.is_empty() {
            let i = data.len() / 2;
            data[i] ^= 0x01;
        }
        Ok(data)
    }
    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        if kind != FileKind::Pack {
            return self.inner.write(kind, name, data);
        }
        let n = self.pack_writes.fetch_add(1, Ordering::SeqCst);
        match self.fault() {
            Fault::FailFrom(k) if n >= k => Err(injected("write")),
            Fault::Truncate(k) if n == k => self.inner.write(kind, name, &data[..data.len() / 2]),
            Fault::DieMidWrite(k) if n == k => {
                self.inner.write(kind, name, &data[..data.len() / 2])?;
                Err(injected("write (died midway)"))
            }
            _ => self.inner.write(kind, name, data),
        }
    }
    fn write_new(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<(), BackendError> {
        self.inner.write_new(kind, name, data)
    }
    fn list(&self, kind: FileKind) -> Result<Vec<FileInfo>, BackendError> {
        self.inner.list(kind)
    }
    fn size(&self, kind: FileKind, name: &str) -> Result<u64, BackendError> {
        self.inner.size(kind, name)
    }
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        self.refuse_delete(&kind.path(name))?;
        self.inner.remove(kind, name)
    }
    fn remove_many(&self, kind: FileKind, names: &[String]) -> Result<(), BackendError> {
        names.iter().try_for_each(|n| self.remove(kind, n))
    }
    fn list_staged(&self) -> Result<Vec<crate::StagedInfo>, BackendError> {
        self.inner.list_staged()
    }
    fn remove_staged(&self, name: &str) -> Result<(), BackendError> {
        self.refuse_delete(name)?;
        self.inner.remove_staged(name)
    }
}

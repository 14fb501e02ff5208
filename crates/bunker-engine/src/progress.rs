//! How long-running operations report progress. The engine calls; the binary
//! decides whether that becomes a bar, JSON lines, or nothing.

/// Receives progress of one operation. All methods may be called from several threads.
pub trait Progress: Send + Sync {
    /// The total work, when known (may grow while a scan runs).
    fn set_total(&self, _items: u64, _bytes: u64) {}
    /// Work finished since the last call.
    fn advance(&self, _items: u64, _bytes: u64) {}
    /// Something was skipped or could not be processed; the operation goes on.
    fn warning(&self, _message: &str) {}
    /// A backup into several repositories stored `bytes` more in repository
    /// `target` (0: the primary, then each copy in the order given).
    fn stored(&self, _target: usize, _bytes: u64) {}
}

/// Discards all progress.
pub struct NoProgress;

impl Progress for NoProgress {}

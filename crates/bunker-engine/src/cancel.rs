//! Cancellation of one operation. A long-lived process (the daemon) runs
//! many operations at once and stops each on its own; the command line gives
//! every operation the token its signal handler sets. Operations poll it
//! between units of work, so that what is finished (packs and the index
//! naming them) is kept and nothing is left half-written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shared "stop soon" flag. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the operations holding this token to stop. Async-signal-safe:
    /// one atomic store.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

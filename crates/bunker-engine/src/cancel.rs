//! Cancellation of one operation. A long-lived process (the daemon) runs
//! many operations at once and stops each on its own; the command line gives
//! every operation the token its signal handler sets. Operations poll it
//! between units of work, so that what is finished (packs and the index
//! naming them) is kept and nothing is left half-written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shared "stop soon" flag. Clones share the flag; a [`child`](Self::child)
/// stops with its parent too, and may be stopped alone.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    flag: AtomicBool,
    parent: Option<Cancel>,
}

impl Cancel {
    /// A token nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled when this one is, or on its own.
    pub fn child(&self) -> Cancel {
        Cancel(Arc::new(Inner {
            flag: AtomicBool::new(false),
            parent: Some(self.clone()),
        }))
    }

    /// Asks the operations holding this token (or a child of it) to stop.
    /// Async-signal-safe: one atomic store.
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
    }

    /// True once this token or one of its parents was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::Relaxed)
            || self.0.parent.as_ref().is_some_and(Cancel::is_cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_stop_with_their_parent_and_alone() {
        let root = Cancel::new();
        let (a, b) = (root.child(), root.child());
        a.cancel();
        assert!(a.is_cancelled() && !b.is_cancelled() && !root.is_cancelled());
        root.cancel();
        assert!(b.is_cancelled());
    }
}

//! A process-wide "stop soon" request, set by the binary's signal handler and
//! polled by long operations between units of work, so that what is finished
//! (packs and the index naming them) is kept and nothing is left half-written.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks running operations to stop. Async-signal-safe: one atomic store.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// True once a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

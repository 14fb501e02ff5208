//! A running operation's progress, as the dashboard shows it live.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bunker_engine::Progress;
use serde::Serialize;

/// Counts what a run has done; the engine reports into it.
pub(crate) struct LiveProgress {
    started: Instant,
    items_total: AtomicU64,
    bytes_total: AtomicU64,
    items_done: AtomicU64,
    bytes_done: AtomicU64,
    warnings: AtomicU64,
}

/// What the API says of a run's progress.
#[derive(Clone, Debug, Serialize)]
pub struct ProgressView {
    /// Files (or items) done.
    pub files_done: u64,
    /// Files known so far (grows while a scan runs).
    pub files_total: u64,
    /// Bytes done.
    pub bytes_done: u64,
    /// Bytes known so far.
    pub bytes_total: u64,
    /// Average rate since the start, bytes per second.
    pub bytes_per_second: f64,
    /// Seconds left at that rate, when the total is known.
    pub eta_seconds: Option<f64>,
    /// Seconds since the start.
    pub elapsed_seconds: f64,
    /// Warnings so far (unreadable files and such).
    pub warnings: u64,
}

impl LiveProgress {
    pub(crate) fn new() -> Self {
        LiveProgress {
            started: Instant::now(),
            items_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            items_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            warnings: AtomicU64::new(0),
        }
    }

    /// The figures now.
    pub(crate) fn view(&self) -> ProgressView {
        let elapsed = self.started.elapsed().as_secs_f64();
        let done = self.bytes_done.load(Ordering::Relaxed);
        let total = self.bytes_total.load(Ordering::Relaxed).max(done);
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        ProgressView {
            files_done: self.items_done.load(Ordering::Relaxed),
            files_total: self.items_total.load(Ordering::Relaxed),
            bytes_done: done,
            bytes_total: total,
            bytes_per_second: rate,
            eta_seconds: (rate > 0.0 && total > 0).then(|| (total - done) as f64 / rate),
            elapsed_seconds: elapsed,
            warnings: self.warnings.load(Ordering::Relaxed),
        }
    }
}

impl Progress for LiveProgress {
    fn set_total(&self, items: u64, bytes: u64) {
        self.items_total.store(items, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
    }

    fn advance(&self, items: u64, bytes: u64) {
        self.items_done.fetch_add(items, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    fn warning(&self, _message: &str) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_follows_the_rate_and_totals_never_trail_what_is_done() {
        let p = LiveProgress::new();
        assert_eq!(p.view().eta_seconds, None);
        p.set_total(10, 1000);
        std::thread::sleep(std::time::Duration::from_millis(20));
        p.advance(5, 500);
        let v = p.view();
        assert_eq!((v.files_done, v.files_total), (5, 10));
        let eta = v.eta_seconds.expect("a rate");
        // Half done: the time left is about the time spent.
        assert!((eta - v.elapsed_seconds).abs() < v.elapsed_seconds, "{v:?}");
        p.advance(0, 900);
        assert_eq!(p.view().bytes_total, 1400);
        assert_eq!(p.view().eta_seconds, Some(0.0));
    }
}

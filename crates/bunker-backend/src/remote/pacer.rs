//! `--limit-upload` and `--limit-download`: bytes paced to a rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Paces bytes to at most `rate` per second, shared by every thread of a
/// backend: each transfer waits until the ones before it would have
/// finished at that rate (so the average never exceeds it, and a burst is
/// at most one piece).
#[derive(Debug)]
pub(crate) struct Pacer {
    rate: u64,
    next_free: Mutex<Instant>,
}

impl Pacer {
    /// A pacer for `rate` bytes per second.
    pub(crate) fn new(rate: u32) -> Self {
        Pacer {
            rate: u64::from(rate.max(1)),
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the turn of `bytes` bytes.
    pub(crate) fn pace(&self, bytes: usize) {
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let start = {
            let mut next = self.next_free.lock().expect("pacer lock");
            let start = (*next).max(Instant::now());
            *next = start + cost;
            start
        };
        let now = Instant::now();
        if start > now {
            std::thread::sleep(start - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_average_rate() {
        let pacer = Pacer::new(1_000_000);
        let started = Instant::now();
        for _ in 0..5 {
            pacer.pace(100_000);
        }
        // Four pieces wait for the ones before them: 0.4 s at least.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(390), "{took:?}");
        assert!(took < Duration::from_millis(900), "{took:?}");
    }
}

//! `--limit-upload` and `--limit-download`: bytes paced to a rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Paces bytes to at most `rate` per second, shared by every thread of a
/// backend: each transfer ends no sooner than it would have at that rate
/// after the ones before it, so the average never exceeds the rate.
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

    /// Waits until `bytes` bytes have had their time at the rate.
    pub(crate) fn pace(&self, bytes: usize) {
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let end = {
            let mut next = self.next_free.lock().expect("pacer lock");
            *next = (*next).max(Instant::now()) + cost;
            *next
        };
        let now = Instant::now();
        if end > now {
            std::thread::sleep(end - now);
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
        // Half a megabyte at a megabyte a second.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(490), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
}

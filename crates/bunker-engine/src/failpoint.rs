//! Named pauses and failures for tests that race processes against each
//! other or break a worker on purpose. Compiled only into debug builds (the
//! ones tests run): a release build has no failpoints at all.
//!
//! `BUNKER_TEST_PAUSE=name:milliseconds[,name:milliseconds…]` makes the
//! process sleep when it reaches `name`, widening a window (say, between a
//! backup's last index file and its snapshot) so that a test can run another
//! command inside it deterministically. `BUNKER_TEST_PANIC=name` makes the
//! thread that reaches `name` panic. Unset, a failpoint costs one lookup.

#[cfg(debug_assertions)]
mod enabled {
    use std::sync::OnceLock;
    use std::time::Duration;

    /// The pauses asked for, read from the environment once: some failpoints
    /// sit on per-file paths.
    fn pauses() -> &'static [(String, u64)] {
        static PAUSES: OnceLock<Vec<(String, u64)>> = OnceLock::new();
        PAUSES.get_or_init(|| {
            let spec = std::env::var("BUNKER_TEST_PAUSE").unwrap_or_default();
            spec.split(',')
                .filter_map(|item| {
                    let (point, ms) = item.split_once(':')?;
                    Some((point.to_string(), ms.parse().ok()?))
                })
                .collect()
        })
    }

    pub fn pause(name: &str) {
        for (point, ms) in pauses() {
            if point == name {
                // Announced, so a test can act at exactly this point.
                eprintln!("bunker: test pause at {name}");
                std::thread::sleep(Duration::from_millis(*ms));
            }
        }
    }

    pub fn panic_at(name: &str) {
        static PANIC: OnceLock<String> = OnceLock::new();
        let point = PANIC.get_or_init(|| std::env::var("BUNKER_TEST_PANIC").unwrap_or_default());
        if point == name {
            panic!("test failpoint {name}");
        }
    }
}

/// Sleeps if the environment asks for a pause at `name` (debug builds only).
#[inline]
pub fn pause(_name: &str) {
    #[cfg(debug_assertions)]
    enabled::pause(_name);
}

/// Panics if the environment asks for a failure at `name` (debug builds only).
#[inline]
pub fn panic_at(_name: &str) {
    #[cfg(debug_assertions)]
    enabled::panic_at(_name);
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unset_failpoint_does_nothing() {
        super::pause("no-such-point");
        super::panic_at("no-such-point");
    }
}

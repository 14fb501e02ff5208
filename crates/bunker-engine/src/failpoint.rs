//! Named pauses for tests that race processes against each other.
//!
//! `BUNKER_TEST_PAUSE=name:milliseconds[,name:milliseconds…]` makes the
//! process sleep when it reaches `name`, widening a window (say, between a
//! backup's last index file and its snapshot) so that a test can run another
//! command inside it deterministically. Unset, a failpoint costs one lookup.

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

/// Sleeps if the environment asks for a pause at `name`.
pub fn pause(name: &str) {
    for (point, ms) in pauses() {
        if point == name {
            // Announced, so a test can act at exactly this point.
            eprintln!("bunker: test pause at {name}");
            std::thread::sleep(Duration::from_millis(*ms));
        }
    }
}

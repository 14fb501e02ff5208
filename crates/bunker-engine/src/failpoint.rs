//! Named pauses for tests that race processes against each other.
//!
//! `BUNKER_TEST_PAUSE=name:milliseconds[,name:milliseconds…]` makes the
//! process sleep when it reaches `name`, widening a window (say, between a
//! backup's last index file and its snapshot) so that a test can run another
//! command inside it deterministically. Unset, a failpoint costs one lookup.

use std::time::Duration;

/// Sleeps if the environment asks for a pause at `name`.
pub fn pause(name: &str) {
    let Ok(spec) = std::env::var("BUNKER_TEST_PAUSE") else {
        return;
    };
    for item in spec.split(',') {
        if let Some((point, ms)) = item.split_once(':') {
            if point == name {
                if let Ok(ms) = ms.parse::<u64>() {
                    // Announced, so a test can act at exactly this point.
                    eprintln!("bunker: test pause at {name}");
                    std::thread::sleep(Duration::from_millis(ms));
                }
            }
        }
    }
}

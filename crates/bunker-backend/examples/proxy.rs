//! The test proxy as a program, for `scripts/bench --remote`: forwards
//! 127.0.0.1:PORT to UPSTREAM with LATENCY_MS added to every request, and
//! rewrites STATS_FILE with its request counts (JSON) every 100 ms.
//!
//! Usage: proxy UPSTREAM LATENCY_MS STATS_FILE (prints its URL, runs until killed)

use std::time::Duration;

use bunker_backend::testing::{Faults, Proxy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, upstream, latency, stats] = args.as_slice() else {
        return Err("usage: proxy UPSTREAM LATENCY_MS STATS_FILE".into());
    };
    let proxy = Proxy::start(upstream.parse()?)?;
    proxy.set_faults(Faults {
        latency: Duration::from_millis(latency.parse()?),
        ..Faults::default()
    });
    println!("{}", proxy.url());
    loop {
        let c = proxy.counts();
        let json = format!(
            "{{\"lists\":{},\"gets\":{},\"heads\":{},\"puts\":{},\"deletes\":{},\"bytes_down\":{}}}",
            c.lists, c.gets, c.heads, c.puts, c.deletes, c.bytes_down
        );
        let tmp = format!("{stats}.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, stats)?;
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! The test proxy as a program, for `scripts/bench --remote` and
//! `scripts/trials/remote-faults`: forwards 127.0.0.1:PORT to UPSTREAM with
//! LATENCY_MS added to every request, fails one request in FAIL_ONE_IN
//! (reset, stall of STALL_MS, 503, in turn), and rewrites STATS_FILE with
//! its request counts (JSON) every 100 ms.
//!
//! Usage: proxy UPSTREAM LATENCY_MS STATS_FILE [FAIL_ONE_IN [STALL_MS]]
//! (prints its URL, runs until killed)

use std::time::Duration;

use bunker_backend::testing::{Faults, Proxy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (upstream, latency, stats) = match args.get(1..4) {
        Some([u, l, s]) => (u, l, s),
        _ => {
            return Err(
                "usage: proxy UPSTREAM LATENCY_MS STATS_FILE [FAIL_ONE_IN [STALL_MS]]".into(),
            )
        }
    };
    let number = |i: usize| args.get(i).map_or(Ok(0), |v| v.parse::<u64>());
    let proxy = Proxy::start(upstream.parse()?)?;
    proxy.set_faults(Faults {
        latency: Duration::from_millis(latency.parse()?),
        fail_one_in: number(4)?,
        stall: Duration::from_millis(number(5)?),
    });
    println!("{}", proxy.url());
    loop {
        let c = proxy.counts();
        let json = format!(
            "{{\"lists\":{},\"gets\":{},\"heads\":{},\"puts\":{},\"deletes\":{},\"faults\":{},\"bytes_down\":{}}}",
            c.lists, c.gets, c.heads, c.puts, c.deletes, c.faults, c.bytes_down
        );
        let tmp = format!("{stats}.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, stats)?;
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! Adds copies of a repository's newest snapshot, one every `--hours` back
//! in time, so that commands can be measured on a repository with many
//! snapshots (used by `scripts/bench --many-snapshots N`).
//!
//! Usage: `many_snapshots REPOSITORY COUNT` with the password in
//! `BUNKER_PASSWORD`. Each copy differs in time only, so it adds one small
//! snapshot file and no data.

use bunker_engine::backend::{Location, Settings};
use bunker_engine::Repository;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(repo), Some(count)) = (args.next(), args.next()) else {
        return Err("usage: many_snapshots REPOSITORY COUNT (password in BUNKER_PASSWORD)".into());
    };
    let count: i64 = count.parse()?;
    let password = std::env::var("BUNKER_PASSWORD")?;
    let backend =
        bunker_engine::backend::open(&Location::parse(&repo)?, &Settings::from_process(), false)?;
    let repo = Repository::open(backend, password.as_bytes())?;
    let newest = repo
        .snapshots()?
        .pop()
        .ok_or("the repository has no snapshot to copy")?;
    const HOUR_NS: i64 = 3_600_000_000_000;
    for i in 1..=count {
        let mut snapshot = newest.snapshot.clone();
        snapshot.time_ns -= i * 6 * HOUR_NS;
        snapshot.parent = None;
        repo.write_snapshot(&snapshot)?;
    }
    println!("added {count} snapshots");
    Ok(())
}

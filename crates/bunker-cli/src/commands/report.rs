//! `bunker report`

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bunker_engine::identity::now_ns;
use bunker_ops::report::{prometheus, report, PlanReport, Rates, Report};
use bunker_ops::Interval;

use crate::context::{operations, GlobalArgs};
use crate::{exit, format};

/// Report each plan's recovery point and time against its targets, its
/// success rates, durations, data and storage costs
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Plans to report (default: all)
    #[arg(value_name = "PLAN")]
    plans: Vec<String>,
    /// The period for durations, data added and growth (e.g. 90d, 4w)
    #[arg(long, default_value = "90d", value_name = "INTERVAL")]
    since: Interval,
    /// Also write the report as one self-contained HTML file
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Also write Prometheus metrics to FILE, atomically (for
    /// node-exporter's textfile collector); "-" prints them instead of the report
    #[arg(long, value_name = "FILE")]
    prometheus: Option<PathBuf>,
}

/// Prints the report; exit 1 when a plan misses a target or a repository
/// cannot be read.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let config = super::config::load(global)?;
    let ops = operations(
        global,
        &config,
        std::sync::Arc::new(bunker_engine::NoProgress),
    );
    let since = args.since.0.as_nanos().min(i64::MAX as u128) as i64;
    let r = report(&ops, &args.plans, now_ns(), since)?;
    if let Some(path) = &args.html {
        write_atomically(path, bunker_ops::report::html(&r).as_bytes())?;
    }
    match args.prometheus.as_deref() {
        Some(p) if p == Path::new("-") => crate::outln!("{}", prometheus(&r).trim_end()),
        Some(path) => write_atomically(path, prometheus(&r).as_bytes())?,
        None => {}
    }
    if args.prometheus.as_deref() != Some(Path::new("-")) {
        if global.json {
            crate::outln!("{}", serde_json::to_value(&r)?);
        } else if !global.quiet {
            print_text(&r);
        }
    }
    let missed =
        r.plans.iter().any(|p| {
            p.rpo_met == Some(false) || p.rto_met == Some(false) || !p.problems.is_empty()
        }) || r.repositories.iter().any(|x| x.error.is_some());
    Ok(if missed { exit::FAILURE } else { exit::OK })
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over
/// `path`: a reader (node-exporter) sees the old file or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().context("the output needs a file name")?;
    let temp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let mut f =
        std::fs::File::create(&temp).with_context(|| format!("cannot write {}", temp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn print_text(r: &Report) {
    for p in &r.plans {
        print_plan(p);
    }
    for x in &r.repositories {
        match &x.error {
            Some(e) => crate::outln!("repository {} ({}): cannot be read: {e}", x.name, x.url),
            None => {
                let growth = match (x.growth_bytes_per_day, x.doubling_days) {
                    (Some(g), Some(d)) => format!(
                        "grows {}/day, doubles in {d:.0} days",
                        format::bytes(g as u64)
                    ),
                    (Some(_), None) => "not growing".into(),
                    (None, _) => "no runs recorded in it".into(),
                };
                crate::outln!(
                    "repository {} ({}): {} stored; deduplication {:.2}x, compression {:.2}x; ${:.2}/month at ${}/GiB; {growth}",
                    x.name,
                    x.url,
                    format::bytes(x.size_bytes),
                    x.deduplication_ratio,
                    x.compression_ratio,
                    x.monthly_cost,
                    x.price_per_gib_month
                );
            }
        }
    }
}

fn print_plan(p: &PlanReport) {
    let verdict = |met: Option<bool>| match met {
        Some(true) => " MET",
        Some(false) => " MISSED",
        None => "",
    };
    let target = |t: Option<u64>| {
        t.map(|t| format!(", target {}", format::duration(t as f64)))
            .unwrap_or_default()
    };
    let age = |s: Option<f64>| s.map_or("none".to_string(), format::duration);
    crate::outln!("plan {} (repository {})", p.name, p.repository);
    crate::outln!(
        "  RPO  {} (age of the newest verified snapshot){}{}",
        age(p.rpo_seconds),
        target(p.rpo_target_seconds),
        verdict(p.rpo_met)
    );
    crate::outln!(
        "       newest snapshot of any kind: {} old",
        age(p.newest_snapshot_age_seconds)
    );
    let drill = p
        .last_drill
        .as_ref()
        .map(|d| {
            format!(
                " (last drill {}, {})",
                d.time,
                if d.passed { "passed" } else { "FAILED" }
            )
        })
        .unwrap_or_default();
    crate::outln!(
        "  RTO  {}{drill}{}{}",
        age(p.rto_seconds),
        target(p.rto_target_seconds),
        verdict(p.rto_met)
    );
    for m in &p.mirrors {
        let drill = match (&m.last_drill, m.verified) {
            (None, _) => "not drilled yet".to_string(),
            (Some(t), true) => format!("verified by the drill of {t}: RTO a switch away"),
            (Some(t), false) => format!("the drill of {t} FAILED"),
        };
        crate::outln!(
            "  mirror  {}: refreshed {}{}; {drill}{}",
            m.mirror,
            m.last_refresh.as_deref().unwrap_or("never"),
            m.age_seconds
                .map(|a| format!(" ({} ago)", format::duration(a)))
                .unwrap_or_default(),
            if m.last_refresh_failed {
                "; the last refresh FAILED"
            } else {
                ""
            }
        );
    }
    if let Some(m) = &p.recovery_via_mirror {
        crate::outln!("       RPO and RTO count the verified mirror {m}");
    }
    crate::outln!(
        "  success  backups {}; restores {}",
        rates(&p.backup_success_rate),
        rates(&p.restore_success_rate)
    );
    if let (Some(m), Some(p95)) = (p.backup_seconds_median, p.backup_seconds_p95) {
        crate::outln!(
            "  backup time  median {}, 95th percentile {}",
            format::duration(m),
            format::duration(p95)
        );
    }
    crate::outln!(
        "  data  {} protected, {} added; {} snapshots",
        format::bytes(p.protected_bytes),
        format::bytes(p.added_bytes),
        p.snapshots
    );
    for problem in &p.problems {
        crate::outln!("  problem: {problem}");
    }
}

fn rates(r: &Rates) -> String {
    let one = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
    format!("7d {}, 30d {}, 90d {}", one(r.d7), one(r.d30), one(r.d90))
}

//! The report as Prometheus metrics (text exposition format 0.0.4), for
//! `/metrics` and node-exporter's textfile collector.

use std::fmt::Write;

use bunker_engine::format::run_record::{RunKind, RunStatus};

use super::Report;

/// Renders `report` as Prometheus metrics.
pub fn prometheus(report: &Report) -> String {
    let mut out = String::new();
    let plans = &report.plans;
    let mut gauge = |name: &str, help: &str, values: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in values {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let per_plan = |f: &dyn Fn(&super::PlanReport) -> Option<f64>| -> Vec<(String, f64)> {
        plans
            .iter()
            .filter_map(|p| f(p).map(|v| (plan_labels(p), v)))
            .collect()
    };
    gauge(
        "bunker_plan_last_success_timestamp_seconds",
        "End of the plan's last successful backup run.",
        per_plan(&|p| p.last_success_timestamp),
    );
    gauge(
        "bunker_plan_last_verified_timestamp_seconds",
        "Time of the plan's newest snapshot that a drill verified.",
        per_plan(&|p| p.last_verified_timestamp),
    );
    gauge(
        "bunker_plan_rpo_seconds",
        "Age of the plan's newest verified snapshot.",
        per_plan(&|p| p.rpo_seconds),
    );
    gauge(
        "bunker_plan_rpo_target_seconds",
        "The plan's recovery point objective.",
        per_plan(&|p| p.rpo_target_seconds.map(|s| s as f64)),
    );
    gauge(
        "bunker_plan_rto_seconds",
        "The plan's last measured recovery time.",
        per_plan(&|p| p.rto_seconds),
    );
    gauge(
        "bunker_plan_rto_target_seconds",
        "The plan's recovery time objective.",
        per_plan(&|p| p.rto_target_seconds.map(|s| s as f64)),
    );
    let mut durations = Vec::new();
    for p in plans {
        for (kind, seconds) in &p.last_run_seconds {
            durations.push((format!("{},kind=\"{kind}\"", plan_labels(p)), *seconds));
        }
    }
    gauge(
        "bunker_plan_last_run_duration_seconds",
        "How long the plan's last run of each kind took.",
        durations,
    );
    let repositories = report
        .repositories
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| {
            (
                format!("repository=\"{}\"", escape(&r.name)),
                r.size_bytes as f64,
            )
        })
        .collect();
    gauge(
        "bunker_repository_size_bytes",
        "Bytes the repository holds in storage.",
        repositories,
    );
    let _ = writeln!(
        out,
        "# HELP bunker_plan_runs_total Runs of the plan recorded in its repository, by kind and status.\n# TYPE bunker_plan_runs_total counter"
    );
    for p in plans {
        for kind in RunKind::ALL {
            for status in [RunStatus::Success, RunStatus::Failure, RunStatus::Skipped] {
                let n = p
                    .runs
                    .get(kind.name())
                    .and_then(|m| m.get(status.name()))
                    .copied()
                    .unwrap_or(0);
                let _ = writeln!(
                    out,
                    "bunker_plan_runs_total{{{},kind=\"{}\",status=\"{}\"}} {n}",
                    plan_labels(p),
                    kind.name(),
                    status.name()
                );
            }
        }
    }
    out
}

fn plan_labels(p: &super::PlanReport) -> String {
    format!(
        "plan=\"{}\",repository=\"{}\"",
        escape(&p.name),
        escape(&p.repository)
    )
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

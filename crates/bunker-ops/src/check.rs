//! A plan's repository check, recorded in the repository (for the report
//! and the success figures) and told to the webhooks when it finds damage.

use std::sync::Arc;
use std::time::Instant;

use bunker_engine::check::{check, CheckOptions, CheckReport, Subset};
use bunker_engine::format::run_record::{Phase, RunKind, RunRecord, RunStatus};
use bunker_engine::identity::now_ns;

use crate::notify::Event;
use crate::{Operations, OpsError};

/// Damage lines kept in the record (the rest are counted).
const MAX_MESSAGES: usize = 20;

/// What a check found, and its record.
pub struct CheckOutcome {
    /// The engine's findings.
    pub report: CheckReport,
    /// The record written (or that could not be: see `record_error`).
    pub record: RunRecord,
    /// Why the record could not be written, if it could not.
    pub record_error: Option<String>,
}

/// The options a plan's `[plans.NAME.check]` section gives.
pub fn plan_check_options(ops: &Operations, name: &str) -> Result<CheckOptions, OpsError> {
    let plan = ops.plan(name)?;
    Ok(CheckOptions {
        read_data_subset: plan
            .check
            .as_ref()
            .and_then(|c| c.read_data)
            .map(|share| Subset::Percent(share * 100.0)),
        ..Default::default()
    })
}

/// Checks the repository of plan `name` with `options` and records it.
pub fn check_plan(
    ops: &Operations,
    name: &str,
    options: CheckOptions,
) -> Result<CheckOutcome, OpsError> {
    let plan = ops.plan(name)?;
    let repository = plan.repository.get_ref();
    let repo = ops.open_repository(repository)?;
    let keep = repo.reopened();
    let started_ns = now_ns();
    let clock = Instant::now();
    let report =
        check(repo, options, Arc::clone(&ops.progress)).map_err(|source| OpsError::Repository {
            repository: repository.clone(),
            source,
        })?;
    let mut record = ops.record(RunKind::Check, name, plan, started_ns);
    record.finished_ns = started_ns + clock.elapsed().as_nanos() as i64;
    record.phases = vec![Phase {
        name: "check".into(),
        micros: clock.elapsed().as_micros() as u64,
    }];
    record.files = report.packs_read as u64;
    record.status = match report.errors.is_empty() {
        true => RunStatus::Success,
        false => RunStatus::Failure,
    };
    record.messages = report.errors.iter().take(MAX_MESSAGES).cloned().collect();
    if report.errors.len() > MAX_MESSAGES {
        record
            .messages
            .push(format!("and {} more", report.errors.len() - MAX_MESSAGES));
    }
    let record_error = ops
        .write_record(&keep, &record)
        .err()
        .map(|e| e.to_string());
    if !report.errors.is_empty() {
        let details = serde_json::json!({ "repository": repository, "damage": record.messages });
        ops.notify(
            Event::CheckDamage,
            name,
            &format!(
                "the check of repository {repository:?} found {} problem(s)",
                report.errors.len()
            ),
            details,
        );
    }
    Ok(CheckOutcome {
        report,
        record,
        record_error,
    })
}

//! Plans: their schedule and state (`GET /api/plans`), their run history
//! (`GET /api/plans/{name}/runs`), and runs asked for now
//! (`POST /api/plans/{name}/run`, `…/drill`, `…/check`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bunker_engine::format::run_record::RunKind;
use bunker_engine::Cancel;
use serde::Serialize;
use serde_json::{json, Value};

use super::{blocking, Failure};
use crate::daemon::live::ProgressView;
use crate::daemon::{Job, LastRun, Shared};
use crate::records::record_json;
use crate::OpsError;

/// A run going on now.
#[derive(Clone, Debug, Serialize)]
pub struct RunningView {
    /// `backup`, `drill`, `check`.
    pub kind: &'static str,
    /// When it started (RFC 3339).
    pub started: String,
    /// What it has done so far.
    pub progress: ProgressView,
}

/// A plan as the API shows it: what it protects, its schedule and targets,
/// what runs now and how its last runs on this daemon ended. No secret is
/// in it (database URLs cannot hold passwords).
#[derive(Clone, Debug, Serialize)]
pub struct PlanView {
    /// The plan's name.
    pub name: String,
    /// Its repository's name.
    pub repository: String,
    /// Repositories it copies to.
    pub copy_to: Vec<String>,
    /// Folders it backs up.
    pub paths: Vec<String>,
    /// Databases it backs up.
    pub databases: Vec<String>,
    /// The backup schedule.
    pub schedule: Option<String>,
    /// The drill schedule.
    pub drill_schedule: Option<String>,
    /// The check schedule.
    pub check_schedule: Option<String>,
    /// Whether it has a drill section (drills can be asked for).
    pub has_drill: bool,
    /// The RPO target, seconds.
    pub rpo_target_seconds: Option<u64>,
    /// The RTO target, seconds.
    pub rto_target_seconds: Option<u64>,
    /// When the next backup is due (RFC 3339).
    pub next_backup: Option<String>,
    /// When the next drill is due.
    pub next_drill: Option<String>,
    /// When the next check is due.
    pub next_check: Option<String>,
    /// What runs now.
    pub running: Option<RunningView>,
    /// Runs asked for and waiting.
    pub queued: Vec<&'static str>,
    /// How the last run of each kind ended, on this daemon.
    pub last: BTreeMap<&'static str, LastRun>,
}

/// Every plan of the config, with the daemon's state of it.
pub(crate) fn plan_views(shared: &Shared) -> Vec<PlanView> {
    let config = shared.config();
    let states = shared.plans.lock().expect("plans");
    let due = |job: Option<&Job>| job.map(|j| j.retry_at.unwrap_or(j.due).min(j.due).to_rfc3339());
    config
        .plans
        .iter()
        .map(|(name, plan)| {
            let state = states.get(name);
            PlanView {
                name: name.clone(),
                repository: plan.repository.get_ref().clone(),
                copy_to: plan.copy_to.iter().map(|c| c.get_ref().clone()).collect(),
                paths: plan.paths.iter().map(|p| p.display().to_string()).collect(),
                databases: plan.databases.clone(),
                schedule: plan.schedule.as_ref().map(|s| s.to_string()),
                drill_schedule: plan
                    .drill
                    .as_ref()
                    .and_then(|d| d.schedule.as_ref())
                    .map(|s| s.to_string()),
                check_schedule: plan
                    .check
                    .as_ref()
                    .and_then(|c| c.schedule.as_ref())
                    .map(|s| s.to_string()),
                has_drill: plan.drill.is_some(),
                rpo_target_seconds: plan.rpo.map(|i| i.0.as_secs()),
                rto_target_seconds: plan.rto.map(|i| i.0.as_secs()),
                next_backup: state.and_then(|s| due(s.backup.as_ref())),
                next_drill: state.and_then(|s| due(s.drill.as_ref())),
                next_check: state.and_then(|s| due(s.check.as_ref())),
                running: state.and_then(|s| s.running.as_ref()).map(|r| RunningView {
                    kind: r.kind.name(),
                    started: r.started.to_rfc3339(),
                    progress: r.progress.view(),
                }),
                queued: state
                    .map(|s| s.requested.iter().map(|k| k.name()).collect())
                    .unwrap_or_default(),
                last: state.map(|s| s.last.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

pub(super) async fn list(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({ "plans": plan_views(&shared) }))
}

/// The plan's run records, oldest first, as JSON.
pub(crate) async fn plan_runs(shared: Arc<Shared>, name: String) -> Result<Vec<Value>, Failure> {
    blocking(move || {
        let config = shared.config();
        let ops = shared.operations(&config, Cancel::new());
        let plan = ops.plan(&name)?;
        let repo = ops.open_repository(plan.repository.get_ref())?;
        let list = repo.run_records().map_err(|source| OpsError::Repository {
            repository: plan.repository.get_ref().clone(),
            source,
        })?;
        let mut runs: Vec<_> = list
            .records
            .iter()
            .filter(|(_, r)| r.plan == name)
            .map(|(_, r)| r)
            .collect();
        runs.sort_by_key(|r| r.started_ns);
        Ok(runs.into_iter().map(record_json).collect())
    })
    .await
}

pub(super) async fn runs(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match plan_runs(shared, name).await {
        Ok(list) => Json(json!({ "runs": list })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Queues a run of `kind` of plan `name`; the scheduler starts it within
/// half a second.
pub(crate) fn queue(shared: &Shared, name: &str, kind: RunKind) -> Result<(), Failure> {
    let config = shared.config();
    let Some(plan) = config.plans.get(name) else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no plan named {name:?}"),
        ));
    };
    if kind == RunKind::Drill && plan.drill.is_none() {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            format!("plan {name:?} has no drill section"),
        ));
    }
    let mut states = shared.plans.lock().expect("plans");
    let state = states.entry(name.to_string()).or_default();
    if let Some(r) = state.running.as_ref().filter(|r| r.kind == kind) {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            format!(
                "plan {name:?} is running a {} already (since {})",
                r.kind.name(),
                r.started.format("%H:%M:%S")
            ),
        ));
    }
    if !state.requested.contains(&kind) {
        state.requested.push(kind);
    }
    shared.changed();
    Ok(())
}

pub(super) async fn request(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    kind: RunKind,
) -> Response {
    match queue(&shared, &name, kind) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "plan": name, "queued": kind.name() })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

//! The daemon's HTTP side: `/healthz`, `/metrics` (Prometheus) and a JSON
//! API: `GET /api/plans`, `GET /api/plans/{name}/runs`, `GET /api/report`,
//! `POST /api/plans/{name}/run`, `…/drill` and `…/check`.
//! Anything that reads a repository runs on the blocking pool, never on
//! the async threads.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bunker_engine::format::run_record::RunKind;
use bunker_engine::Cancel;
use serde_json::{json, Value};

use super::Shared;
use crate::records::record_json;
use crate::report::prometheus;
use crate::OpsError;

/// How long a report serves `/metrics` and `/api/report` before it is made again.
const REPORT_MAX_AGE: Duration = Duration::from_secs(30);

/// The HTTP server, running on its own runtime.
pub(crate) struct Server {
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops accepting, finishes the requests in flight, and returns.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), self.done).await });
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

/// Serves the API on `listener`.
pub(crate) fn serve(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
) -> Result<Server, OpsError> {
    let fail = |e: std::io::Error| OpsError::Daemon(format!("cannot serve: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bunker-http")
        .enable_all()
        .build()
        .map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    let listener = {
        let _inside = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(fail)?
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/plans", get(plans))
        .route("/api/plans/{name}/runs", get(runs))
        .route(
            "/api/plans/{name}/run",
            post(|s, p| request(s, p, RunKind::Backup)),
        )
        .route(
            "/api/plans/{name}/drill",
            post(|s, p| request(s, p, RunKind::Drill)),
        )
        .route("/api/report", get(report_json))
        .with_state(shared);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = runtime.spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Server {
        runtime,
        stop,
        done,
    })
}

/// An error as a JSON response.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Runs blocking work (repository reads) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, OpsError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match blocking(move || shared.report(REPORT_MAX_AGE)).await {
        Ok(r) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            prometheus(&r),
        )
            .into_response(),
        Err(e) => e,
    }
}

async fn report_json(State(shared): State<Arc<Shared>>) -> Response {
    match blocking(move || shared.report(REPORT_MAX_AGE)).await {
        Ok(r) => Json(serde_json::to_value(&*r).unwrap_or(Value::Null)).into_response(),
        Err(e) => e,
    }
}

async fn plans(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let config = shared.config();
    let states = shared.plans.lock().expect("plans");
    let list: Vec<Value> = config
        .plans
        .iter()
        .map(|(name, plan)| {
            let state = states.get(name);
            let job_due = |job: Option<&super::Job>| job.map(|j| j.retry_at.unwrap_or(j.due).min(j.due).to_rfc3339());
            json!({
                "name": name,
                "repository": plan.repository.get_ref(),
                "copy_to": plan.copy_to.iter().map(|c| c.get_ref()).collect::<Vec<_>>(),
                "paths": plan.paths,
                "databases": plan.databases,
                "schedule": plan.schedule.as_ref().map(|s| s.to_string()),
                "drill_schedule": plan.drill.as_ref().and_then(|d| d.schedule.as_ref()).map(|s| s.to_string()),
                "rpo_target_seconds": plan.rpo.map(|i| i.0.as_secs()),
                "rto_target_seconds": plan.rto.map(|i| i.0.as_secs()),
                "next_backup": state.and_then(|s| job_due(s.backup.as_ref())),
                "next_drill": state.and_then(|s| job_due(s.drill.as_ref())),
                "next_check": state.and_then(|s| job_due(s.check.as_ref())),
                "check_schedule": plan.check.as_ref().and_then(|c| c.schedule.as_ref()).map(|s| s.to_string()),
                "running": state.and_then(|s| s.running.as_ref()).map(|r| json!({
                    "kind": r.kind.name(),
                    "started": r.started.to_rfc3339(),
                })),
                "last": state.map(|s| json!(s.last)),
            })
        })
        .collect();
    Json(json!({ "plans": list }))
}

async fn runs(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let result = blocking(move || {
        let config = shared.config();
        let ops = shared.operations(&config, Cancel::new());
        let plan = ops.plan(&name)?;
        let repo = ops.open_repository(plan.repository.get_ref())?;
        let list = repo.run_records().map_err(|source| OpsError::Repository {
            repository: plan.repository.get_ref().clone(),
            source,
        })?;
        Ok(list
            .records
            .iter()
            .filter(|(_, r)| r.plan == name)
            .map(|(_, r)| record_json(r))
            .collect::<Vec<_>>())
    })
    .await;
    match result {
        Ok(list) => Json(json!({ "runs": list })).into_response(),
        Err(e) => e,
    }
}

async fn request(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    kind: RunKind,
) -> Response {
    let config = shared.config();
    let Some(plan) = config.plans.get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no plan named {name:?}"));
    };
    if kind == RunKind::Drill && plan.drill.is_none() {
        return error(
            StatusCode::CONFLICT,
            format!("plan {name:?} has no drill section"),
        );
    }
    let mut states = shared.plans.lock().expect("plans");
    let state = states.entry(name.clone()).or_default();
    if let Some(r) = &state.running {
        return error(
            StatusCode::CONFLICT,
            format!("plan {name:?} is running a {} already", r.kind.name()),
        );
    }
    if !state.requested.contains(&kind) {
        state.requested.push(kind);
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "plan": name, "queued": kind.name() })),
    )
        .into_response()
}

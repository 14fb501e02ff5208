//! The daemon's HTTP side: `/healthz`, `/metrics` (Prometheus), the JSON
//! API under `/api/` and the dashboard's pages, which are made from what
//! the API serves.
//!
//! Anything that reads a repository runs on the blocking pool, never on
//! the async threads.

mod events;
mod plans;
mod snapshots;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bunker_engine::format::run_record::RunKind;
use serde_json::{json, Value};

use super::{auth, web, Shared};
use crate::report::{prometheus, Report};
use crate::OpsError;

pub(crate) use plans::{plan_runs, plan_views, queue};
pub use plans::{PlanView, RunningView};
pub(crate) use snapshots::{diff, list_snapshots, restore, tree};
pub use snapshots::{DiffQuery, RestoreRequest, SnapshotQuery};

/// How long a report serves `/metrics` and `/api/report` before it is made again.
pub(crate) const REPORT_MAX_AGE: Duration = Duration::from_secs(30);

/// The HTTP server, running on its own runtime.
pub(crate) struct Server {
    runtime: tokio::runtime::Runtime,
    handle: axum_server::Handle,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops accepting, finishes the requests in flight (live event
    /// streams are cut), and returns.
    pub(crate) fn stop(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), self.done).await });
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

/// Serves the API and the dashboard on `listener`, over TLS when `tls`
/// gives a certificate chain and a key (PEM files).
pub(crate) fn serve(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    tls: Option<(PathBuf, PathBuf)>,
) -> Result<Server, OpsError> {
    let fail = |e: std::io::Error| OpsError::Daemon(format!("cannot serve: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bunker-http")
        .enable_all()
        .build()
        .map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    let app = router(shared).into_make_service();
    let handle = axum_server::Handle::new();
    let done = match tls {
        Some((cert, key)) => {
            let config = runtime
                .block_on(axum_server::tls_rustls::RustlsConfig::from_pem_file(
                    &cert, &key,
                ))
                .map_err(|e| {
                    OpsError::Daemon(format!(
                        "[daemon] tls-cert {} / tls-key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
            let server = axum_server::from_tcp_rustls(listener, config).handle(handle.clone());
            runtime.spawn(async move {
                let _ = server.serve(app).await;
            })
        }
        None => {
            let server = axum_server::from_tcp(listener).handle(handle.clone());
            runtime.spawn(async move {
                let _ = server.serve(app).await;
            })
        }
    };
    Ok(Server {
        runtime,
        handle,
        done,
    })
}

fn router(shared: Arc<Shared>) -> Router {
    let action = |kind: RunKind| post(move |s, p| plans::request(s, p, kind));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/plans", get(plans::list))
        .route("/api/plans/{name}/runs", get(plans::runs))
        .route("/api/plans/{name}/run", action(RunKind::Backup))
        .route("/api/plans/{name}/drill", action(RunKind::Drill))
        .route("/api/plans/{name}/check", action(RunKind::Check))
        .route("/api/report", get(report_json))
        .route("/api/events", get(events::stream))
        .route(
            "/api/repositories/{repo}/snapshots",
            get(snapshots::list_json),
        )
        .route(
            "/api/repositories/{repo}/snapshots/{id}/tree",
            get(snapshots::tree_json),
        )
        .route(
            "/api/repositories/{repo}/snapshots/{id}/file",
            get(snapshots::file),
        )
        .route(
            "/api/repositories/{repo}/snapshots/{id}/restore",
            post(snapshots::restore_json),
        )
        .route("/api/repositories/{repo}/diff", get(snapshots::diff_json))
        .merge(web::routes())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            auth::guard,
        ))
        .with_state(shared)
}

/// An error as a JSON response.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// An API failure: what status it gets, and why.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<OpsError> for Failure {
    fn from(e: OpsError) -> Self {
        let status = match &e {
            OpsError::UnknownPlan { .. } | OpsError::UnknownRepository(_) => StatusCode::NOT_FOUND,
            OpsError::Repository { source, .. } if not_found(source) => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        Failure::new(status, e.to_string())
    }
}

fn not_found(e: &bunker_engine::EngineError) -> bool {
    use bunker_engine::EngineError as E;
    matches!(
        e,
        E::PathNotFound(_) | E::SnapshotNotFound(_) | E::AmbiguousSnapshot(_)
    )
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error(self.status, self.message)
    }
}

/// Runs blocking work (repository reads) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}

/// The report, made again when older than [`REPORT_MAX_AGE`].
pub(crate) async fn report(shared: Arc<Shared>) -> Result<Arc<Report>, Failure> {
    blocking(move || Ok(shared.report(REPORT_MAX_AGE)?)).await
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match report(shared).await {
        Ok(r) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            prometheus(&r),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn report_json(State(shared): State<Arc<Shared>>) -> Response {
    match report(shared).await {
        Ok(r) => Json(serde_json::to_value(&*r).unwrap_or(Value::Null)).into_response(),
        Err(e) => e.into_response(),
    }
}

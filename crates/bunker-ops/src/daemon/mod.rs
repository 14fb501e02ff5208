//! `bunker daemon`: runs every plan's backups and drills on schedule, one
//! run of a plan at a time, and serves the web dashboard, a JSON API,
//! Prometheus metrics and a health check on `[daemon] listen`.
//!
//! The scheduler is one thread that looks at the clock twice a second
//! (so a suspended machine catches up as soon as it wakes); each run gets
//! a thread of its own and a cancellation token of its own, so the
//! engine's blocking work never runs on the HTTP server's async threads.
//! Shutdown (`shutdown` cancelled, by SIGTERM) cancels the running
//! operations, which stop cleanly at their next unit of work, and waits for
//! them. A reload (`reload` set, by SIGHUP) reads the config again; a bad
//! one is told and the old one kept.

mod api;
mod auth;
mod live;
mod restore_target;
mod timetable;
mod web;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bunker_engine::format::run_record::{RunKind, RunStatus};
use bunker_engine::identity::now_ns;
use bunker_engine::{Cancel, NoProgress};
use chrono::{DateTime, Local};
use serde::Serialize;

use crate::check::{check_plan, plan_check_options};
use crate::drill::{drill_plan, DrillOptions};
use crate::report::{report, Report};
use crate::run::{run_plan, RunOptions};
use crate::{Config, OpenContext, Operations, OpsError};
pub use api::{DiffQuery, PlanView, RestoreRequest, RunningView, SnapshotQuery};
pub use auth::hash_password;
pub use live::ProgressView;
pub use timetable::{Job, MAX_RETRIES};

/// How the daemon is set up by its caller.
pub struct DaemonSettings {
    /// The config file (read again on reload).
    pub config_path: PathBuf,
    /// Cache, state and warnings for the repositories it opens.
    pub open: OpenContext,
    /// The host name runs are recorded under.
    pub host: String,
    /// Where the daemon says what it does, one line each.
    pub log: Arc<dyn Fn(&str) + Send + Sync>,
    /// Cancelled to stop the daemon.
    pub shutdown: Cancel,
    /// Set to read the config again.
    pub reload: Arc<AtomicBool>,
}

/// A run going on.
struct Running {
    kind: RunKind,
    started: DateTime<Local>,
    cancel: Cancel,
    progress: Arc<live::LiveProgress>,
    handle: JoinHandle<(bool, String)>,
}

/// How a plan's last run of a kind ended.
#[derive(Clone, Debug, Serialize)]
pub struct LastRun {
    /// When it ended (RFC 3339).
    pub finished: String,
    /// `success`, `failure`, `skipped`.
    pub status: &'static str,
    /// What it said, one line.
    pub message: String,
}

/// What the daemon knows of one plan.
#[derive(Default)]
struct PlanState {
    backup: Option<Job>,
    drill: Option<Job>,
    check: Option<Job>,
    running: Option<Running>,
    last: BTreeMap<&'static str, LastRun>,
    /// Runs asked for through the API.
    requested: Vec<RunKind>,
}

/// What the scheduler and the API share.
pub(crate) struct Shared {
    config: Mutex<Arc<Config>>,
    plans: Mutex<BTreeMap<String, PlanState>>,
    report: Mutex<Option<(Instant, Arc<Report>)>>,
    open: OpenContext,
    host: String,
    log: Arc<dyn Fn(&str) + Send + Sync>,
    /// Plans whose RPO was last seen missed (told once per breach).
    breached: Mutex<std::collections::BTreeSet<String>>,
    /// Set while the targets are being checked.
    checking: AtomicBool,
    /// The daemon's own stop: every run's token is a child of it.
    shutdown: Cancel,
    /// Who may call, and their sessions.
    auth: auth::Auth,
    /// Served over TLS.
    tls: bool,
    /// Changes when a run starts, ends or is asked for (for live views).
    generation: AtomicU64,
}

impl Shared {
    fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.lock().expect("config"))
    }

    /// Operations on `config` whose repositories stop when `cancel` does.
    fn operations<'a>(&self, config: &'a Config, cancel: Cancel) -> Operations<'a> {
        self.operations_told(config, cancel, Arc::new(NoProgress))
    }

    /// The same, telling `progress` what they do.
    fn operations_told<'a>(
        &self,
        config: &'a Config,
        cancel: Cancel,
        progress: Arc<dyn bunker_engine::Progress>,
    ) -> Operations<'a> {
        let mut open = self.open.clone();
        open.cancel = cancel;
        Operations {
            config,
            open,
            host: self.host.clone(),
            progress,
        }
    }

    /// Tells live views that runs started, ended or were asked for.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The report, made again when older than `max_age` or after a run.
    pub(crate) fn report(&self, max_age: Duration) -> Result<Arc<Report>, OpsError> {
        if let Some((made, r)) = &*self.report.lock().expect("report") {
            if made.elapsed() < max_age {
                return Ok(Arc::clone(r));
            }
        }
        let config = self.config();
        let ops = self.operations(&config, Cancel::new());
        let r = Arc::new(report(&ops, &[], now_ns(), 90 * 86_400 * 1_000_000_000)?);
        *self.report.lock().expect("report") = Some((Instant::now(), Arc::clone(&r)));
        Ok(r)
    }
}

/// Runs the daemon until `settings.shutdown` is cancelled.
pub fn run_daemon(settings: DaemonSettings) -> Result<(), OpsError> {
    let config = Arc::new(Config::load(&settings.config_path)?);
    let listen = config.daemon.listen;
    let auth = auth::Auth::from_config(&config.daemon)?;
    if !listen.ip().is_loopback() && !auth.enabled() {
        return Err(OpsError::Daemon(format!(
            "[daemon] listen = \"{listen}\" is not a loopback address, and no password-file or token-file is set: the dashboard and API would be open to anyone who can reach it; set one (see `bunker daemon hash-password`) or listen on 127.0.0.1"
        )));
    }
    let tls = match (&config.daemon.tls_cert, &config.daemon.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        _ => None,
    };
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| OpsError::Daemon(format!("cannot listen on {listen}: {e}")))?;
    let shared = Arc::new(Shared {
        config: Mutex::new(Arc::clone(&config)),
        plans: Mutex::new(BTreeMap::new()),
        report: Mutex::new(None),
        open: settings.open.clone(),
        host: settings.host.clone(),
        log: Arc::clone(&settings.log),
        breached: Mutex::default(),
        checking: AtomicBool::new(false),
        shutdown: settings.shutdown.clone(),
        auth,
        tls: tls.is_some(),
        generation: AtomicU64::new(0),
    });
    schedule_plans(&shared, &config);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = api::serve(Arc::clone(&shared), listener, tls)?;
    (settings.log)(&format!(
        "listening on {scheme}://{listen} with {} plan(s){}",
        config.plans.len(),
        if shared.auth.enabled() {
            "; sign-in required"
        } else {
            ""
        }
    ));

    let mut checked: Option<Instant> = None;
    while !settings.shutdown.is_cancelled() {
        if settings.reload.swap(false, Ordering::SeqCst) {
            reload(&shared, &settings);
        }
        tick(&shared, Local::now());
        // The targets are checked every minute, and after each run.
        let stale = shared.report.lock().expect("report").is_none();
        if checked.is_none_or(|t| t.elapsed() > TARGET_CHECK) || stale {
            check_targets(&shared);
            checked = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    (settings.log)("stopping: cancelling what runs");
    let running: Vec<(String, Running)> = {
        let mut plans = shared.plans.lock().expect("plans");
        plans
            .iter_mut()
            .filter_map(|(n, p)| p.running.take().map(|r| (n.clone(), r)))
            .collect()
    };
    for (_, r) in &running {
        r.cancel.cancel();
    }
    for (_, r) in running {
        let _ = r.handle.join();
    }
    server.stop();
    (settings.log)("stopped");
    Ok(())
}

/// How often the daemon checks each plan's RPO.
const TARGET_CHECK: Duration = Duration::from_secs(60);

/// Makes the report in the background and tells each plan whose RPO has
/// just been missed (once, until it is met again).
fn check_targets(shared: &Arc<Shared>) {
    if shared.checking.swap(true, Ordering::SeqCst) {
        return;
    }
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        if let Ok(report) = shared.report(Duration::ZERO) {
            let config = shared.config();
            let ops = shared.operations(&config, Cancel::new());
            let mut breached = shared.breached.lock().expect("breached");
            for p in &report.plans {
                match p.rpo_met {
                    Some(false) if breached.insert(p.name.clone()) => {
                        let message = format!(
                            "the newest verified snapshot is {} old, over the RPO of {} s",
                            p.rpo_seconds.map_or("none".into(), |s| format!("{s:.0} s")),
                            p.rpo_target_seconds.unwrap_or_default()
                        );
                        (shared.log)(&format!("plan {}: {message}", p.name));
                        let details = serde_json::json!({
                            "rpo_seconds": p.rpo_seconds,
                            "rpo_target_seconds": p.rpo_target_seconds,
                            "last_verified": p.last_verified,
                        });
                        ops.notify(
                            crate::notify::Event::RpoBreached,
                            &p.name,
                            &message,
                            details,
                        );
                    }
                    Some(true) => {
                        breached.remove(&p.name);
                    }
                    _ => {}
                }
            }
        }
        shared.checking.store(false, Ordering::SeqCst);
    });
}

/// Sets up each plan's jobs from the config, keeping what is known of
/// plans that stay; the last runs are read from the repositories.
fn schedule_plans(shared: &Shared, config: &Config) {
    let now = Local::now();
    let last = last_runs(shared, config);
    let mut plans = shared.plans.lock().expect("plans");
    plans.retain(|name, state| config.plans.contains_key(name) || state.running.is_some());
    for (name, plan) in &config.plans {
        let state = plans.entry(name.clone()).or_default();
        let previous = |kind: RunKind| last.get(&(name.clone(), kind)).copied();
        state.backup = plan
            .schedule
            .clone()
            .map(|s| Job::new(s, previous(RunKind::Backup), now));
        state.drill = plan
            .drill
            .as_ref()
            .and_then(|d| d.schedule.clone())
            .map(|s| Job::new(s, previous(RunKind::Drill), now));
        state.check = plan
            .check
            .as_ref()
            .and_then(|c| c.schedule.clone())
            .map(|s| Job::new(s, previous(RunKind::Check), now));
    }
}

/// When each plan's backups and drills last started on this host, from
/// the run records in the plans' repositories.
fn last_runs(shared: &Shared, config: &Config) -> BTreeMap<(String, RunKind), DateTime<Local>> {
    let mut out = BTreeMap::new();
    let ops = shared.operations(config, Cancel::new());
    let mut repositories: Vec<&str> = config
        .plans
        .values()
        .map(|p| p.repository.get_ref().as_str())
        .collect();
    repositories.sort();
    repositories.dedup();
    for name in repositories {
        let records = ops.open_repository(name).and_then(|r| {
            r.run_records().map_err(|source| OpsError::Repository {
                repository: name.into(),
                source,
            })
        });
        match records {
            Ok(list) => {
                for (_, r) in list.records.iter().filter(|(_, r)| r.host == shared.host) {
                    let t = DateTime::from_timestamp_nanos(r.started_ns).with_timezone(&Local);
                    let slot = out.entry((r.plan.clone(), r.kind)).or_insert(t);
                    *slot = (*slot).max(t);
                }
            }
            Err(e) => (shared.log)(&format!(
                "cannot read the history of repository {name:?}: {e}"
            )),
        }
    }
    out
}

fn reload(shared: &Shared, settings: &DaemonSettings) {
    match Config::load(&settings.config_path) {
        Ok(config) => {
            let config = Arc::new(config);
            *shared.config.lock().expect("config") = Arc::clone(&config);
            *shared.report.lock().expect("report") = None;
            schedule_plans(shared, &config);
            (settings.log)(&format!("config reloaded: {} plan(s)", config.plans.len()));
        }
        Err(e) => (settings.log)(&format!("config not reloaded, the old one stays: {e}")),
    }
}

/// One look at the clock: collect finished runs, start due ones.
fn tick(shared: &Arc<Shared>, now: DateTime<Local>) {
    let config = shared.config();
    let mut plans = shared.plans.lock().expect("plans");
    for (name, state) in plans.iter_mut() {
        if state
            .running
            .as_ref()
            .is_some_and(|r| r.handle.is_finished())
        {
            let r = state.running.take().expect("checked");
            let (succeeded, message) = r
                .handle
                .join()
                .unwrap_or_else(|_| (false, "the run's thread panicked".into()));
            if let Some(job) = job(state, r.kind) {
                job.finished(succeeded, now);
                if let Some(at) = job.retry_at {
                    (shared.log)(&format!(
                        "plan {name}: {} failed; retry at {}",
                        r.kind.name(),
                        at.format("%H:%M:%S")
                    ));
                }
            }
            state.last.insert(
                r.kind.name(),
                LastRun {
                    finished: now.to_rfc3339(),
                    status: if succeeded { "success" } else { "failure" },
                    message,
                },
            );
            *shared.report.lock().expect("report") = None;
            shared.changed();
        }
        if !config.plans.contains_key(name) {
            continue;
        }
        // Runs asked for through the API go first, then due ones. A job due
        // while a run of its own kind still goes is skipped and recorded;
        // one due while the plan runs something else waits for it.
        let requested = std::mem::take(&mut state.requested);
        let scheduled: Vec<RunKind> = [RunKind::Backup, RunKind::Drill, RunKind::Check]
            .into_iter()
            .filter(|k| job(state, *k).is_some_and(|j| j.is_due(now)))
            .collect();
        let asked = requested.len();
        for (i, kind) in requested.into_iter().chain(scheduled).enumerate() {
            match &state.running {
                Some(r) if r.kind == kind => {
                    (shared.log)(&format!(
                        "plan {name}: {} due, but the one that started {} still runs: skipped",
                        kind.name(),
                        r.started.format("%H:%M:%S")
                    ));
                    record_skip(shared, &config, name, kind);
                    state.last.insert(
                        kind.name(),
                        LastRun {
                            finished: now.to_rfc3339(),
                            status: "skipped",
                            message: "the previous run was still going".into(),
                        },
                    );
                }
                Some(_) => {
                    // Waits; a scheduled job stays due by itself.
                    if i < asked {
                        state.requested.push(kind);
                    }
                    continue;
                }
                None => {
                    state.running = Some(start(shared, Arc::clone(&config), name, kind, now));
                    shared.changed();
                }
            }
            if let Some(j) = job(state, kind) {
                j.started(now);
            }
        }
    }
}

/// The plan's job of `kind`, if it is scheduled.
fn job(state: &mut PlanState, kind: RunKind) -> Option<&mut Job> {
    match kind {
        RunKind::Drill => state.drill.as_mut(),
        RunKind::Check => state.check.as_mut(),
        _ => state.backup.as_mut(),
    }
}

/// Starts a run of `kind` of plan `name` on a thread of its own.
fn start(
    shared: &Arc<Shared>,
    config: Arc<Config>,
    name: &str,
    kind: RunKind,
    now: DateTime<Local>,
) -> Running {
    // Stops with the daemon at once (SIGTERM), or alone.
    let cancel = shared.shutdown.child();
    let shared2 = Arc::clone(shared);
    let name = name.to_string();
    let token = cancel.clone();
    let progress = Arc::new(live::LiveProgress::new());
    let told = Arc::clone(&progress);
    (shared.log)(&format!("plan {name}: {} started", kind.name()));
    let handle = std::thread::Builder::new()
        .name(format!("bunker-{}-{name}", kind.name()))
        .spawn(move || {
            let ops = shared2.operations_told(&config, token, told);
            let (ok, said) = match kind {
                RunKind::Check => {
                    match plan_check_options(&ops, &name).and_then(|o| check_plan(&ops, &name, o)) {
                        Ok(c) if c.report.errors.is_empty() => (
                            true,
                            format!("found no damage ({} packs read)", c.report.packs_read),
                        ),
                        Ok(c) => (
                            false,
                            format!("FOUND DAMAGE: {}", c.report.errors.join("; ")),
                        ),
                        Err(e) => (false, format!("FAILED: {e}")),
                    }
                }
                RunKind::Drill => match drill_plan(&ops, &name, &DrillOptions::default()) {
                    Ok(d) if d.passed() => (
                        true,
                        format!("passed, recovery time {:.1} s", d.rto_seconds),
                    ),
                    Ok(d) => (false, format!("FAILED: {}", d.problems.join("; "))),
                    Err(e) => (false, format!("FAILED: {e}")),
                },
                _ => match run_plan(
                    &ops,
                    &name,
                    &RunOptions {
                        scan_totals: true,
                        ..Default::default()
                    },
                ) {
                    Ok(r) if !r.failed() => (true, "succeeded".to_string()),
                    Ok(r) => (
                        false,
                        format!(
                            "FAILED: {}",
                            r.steps
                                .iter()
                                .filter(|s| s.status == crate::run::StepStatus::Failed)
                                .map(|s| format!("{}: {}", s.what, s.message))
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    ),
                    Err(e) => (false, format!("FAILED: {e}")),
                },
            };
            (shared2.log)(&format!("plan {name}: {} {said}", kind.name()));
            (ok, said)
        })
        .expect("spawn a run thread");
    Running {
        kind,
        started: now,
        cancel,
        progress,
        handle,
    }
}

/// Records, in the plan's repository, that a due run was skipped.
fn record_skip(shared: &Arc<Shared>, config: &Arc<Config>, name: &str, kind: RunKind) {
    let shared = Arc::clone(shared);
    let config = Arc::clone(config);
    let name = name.to_string();
    std::thread::spawn(move || {
        let ops = shared.operations(&config, Cancel::new());
        let Ok(plan) = ops.plan(&name) else { return };
        let mut record = ops.record(kind, &name, plan, now_ns());
        record.status = RunStatus::Skipped;
        record.messages = vec![format!("the previous {} was still running", kind.name())];
        let written = ops
            .open_repository(plan.repository.get_ref())
            .and_then(|repo| ops.write_record(&repo, &record));
        if let Err(e) = written {
            (shared.log)(&format!(
                "plan {name}: the skipped run could not be recorded: {e}"
            ));
        }
    });
}

//! Bunker's operations layer, between the command line and the engine:
//! the config file (`bunker.toml`) with its repositories and plans, the
//! schedules that say when a plan runs, runs of plans, restore drills and
//! the reports of what they measured.

pub mod check;
pub mod config;
pub mod daemon;
pub mod drill;
mod error;
mod hooks;
pub mod notify;
mod open;
pub mod records;
pub mod report;
pub mod run;
pub mod schedule;
pub mod secret;

use std::path::PathBuf;
use std::sync::Arc;

use bunker_engine::format::run_record::{RunKind, RunRecord};
use bunker_engine::{Open, Progress, Repository};

pub use config::{
    Config, ConfigError, DrillConfig, MirrorDest, PlanConfig, RepositoryConfig, Retention,
};
pub use error::OpsError;
pub use open::OpenContext;
pub use schedule::{Interval, Schedule};

/// What every operation on a config's plans needs: the config, how to open
/// its repositories, the host name runs are recorded under, and where
/// progress goes. A daemon holds one per config it loaded.
pub struct Operations<'a> {
    /// The config file.
    pub config: &'a Config,
    /// How repositories are opened (cache, state, cancellation).
    pub open: OpenContext,
    /// The host name recorded in snapshots and run records.
    pub host: String,
    /// Where the engine's progress goes.
    pub progress: Arc<dyn Progress>,
}

impl Operations<'_> {
    /// The plan named `name`.
    pub fn plan(&self, name: &str) -> Result<&PlanConfig, OpsError> {
        self.config
            .plans
            .get(name)
            .ok_or_else(|| OpsError::UnknownPlan {
                name: name.to_string(),
                known: match self.config.plans.is_empty() {
                    true => "none".into(),
                    false => self
                        .config
                        .plans
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                },
            })
    }

    /// Opens the repository the config names `name`.
    pub fn open_repository(&self, name: &str) -> Result<Repository<Open>, OpsError> {
        let config = self
            .config
            .repositories
            .get(name)
            .ok_or_else(|| OpsError::UnknownRepository(name.to_string()))?;
        self.open.open(name, config)
    }

    /// A new record of `kind` for `plan`, with the plan's targets.
    pub fn record(
        &self,
        kind: RunKind,
        name: &str,
        plan: &PlanConfig,
        started_ns: i64,
    ) -> RunRecord {
        let mut record = RunRecord::new(kind, name, &self.host, started_ns);
        record.rpo_target_secs = plan.rpo.map(|i| i.0.as_secs());
        record.rto_target_secs = plan.rto.map(|i| i.0.as_secs());
        record
    }

    /// Writes a record into `repo`.
    pub fn write_record(
        &self,
        repo: &Repository<Open>,
        record: &RunRecord,
    ) -> Result<(), OpsError> {
        repo.write_run_record(record)
            .map(|_| ())
            .map_err(|source| OpsError::Repository {
                repository: repo.backend().location(),
                source,
            })
    }

    /// Sends `event` about `plan` to the config's webhooks and healthchecks;
    /// what cannot be delivered is told as a warning.
    pub fn notify(
        &self,
        event: notify::Event,
        plan: &str,
        message: &str,
        details: serde_json::Value,
    ) {
        let body = notify::body(
            event,
            plan,
            &self.host,
            bunker_engine::identity::now_ns(),
            message,
            details,
        );
        let log = |m: &str| match &self.open.notices {
            Some(sink) => sink(m),
            None => eprintln!("bunker: warning: {m}"),
        };
        notify::send(&self.config.notify, event, plan, &body, &log);
    }

    /// What a backup of a plan never stores: the repository named
    /// `repository` when it is local, and Bunker's own cache and state.
    pub fn own_paths(&self, repository: &str) -> Vec<PathBuf> {
        let local = self
            .config
            .repositories
            .get(repository)
            .and_then(|r| bunker_engine::backend::Location::parse(&r.url).ok())
            .and_then(|l| l.local_path().map(|p| p.to_path_buf()));
        local
            .into_iter()
            .chain(self.open.cache_dir.clone())
            .chain(self.open.state_dir.clone())
            .collect()
    }
}

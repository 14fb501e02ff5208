//! `bunker.toml`: repositories, plans, notifications and the daemon, in one
//! file. Unknown keys and bad values are refused with the file, line and
//! column; references between sections (a plan's repository, its
//! `copy-to`) are checked after parsing, with the place of the reference.

mod error;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bunker_engine::backend::Location;
use bunker_engine::forget::{KeepDuration, KeepPolicy};
use bunker_engine::source::database::DatabaseUrl;
use serde::Deserialize;
use toml::Spanned;

pub use error::ConfigError;

use crate::schedule::{Interval, Schedule};

/// Where the config file is looked for, in order, after `--config FILE` and
/// `BUNKER_CONFIG`.
pub fn default_locations(config_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut places = Vec::new();
    if let Some(dir) = config_dir {
        places.push(dir.join("bunker").join("bunker.toml"));
    }
    places.push(PathBuf::from("/etc/bunker/bunker.toml"));
    places
}

/// The config file to use: `explicit` (`--config`), else `env`
/// (`BUNKER_CONFIG`), else the first of `defaults` that exists. An explicit
/// file that does not exist is an error; no file at all is `None`.
pub fn locate(
    explicit: Option<&Path>,
    env: Option<&Path>,
    defaults: &[PathBuf],
) -> Result<Option<PathBuf>, ConfigError> {
    for (given, how) in [(explicit, "--config"), (env, "BUNKER_CONFIG")] {
        if let Some(path) = given {
            if !path.is_file() {
                return Err(ConfigError::Missing {
                    path: path.to_path_buf(),
                    how,
                });
            }
            return Ok(Some(path.to_path_buf()));
        }
    }
    Ok(defaults.iter().find(|p| p.is_file()).cloned())
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Repositories by name.
    #[serde(default)]
    pub repositories: BTreeMap<String, RepositoryConfig>,
    /// Plans by name.
    #[serde(default)]
    pub plans: BTreeMap<String, PlanConfig>,
    /// Where events are sent.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// `bunker daemon`'s settings.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Storage prices for the report's projected cost.
    #[serde(default)]
    pub prices: Prices,
    /// The file it was read from (not a key).
    #[serde(skip)]
    pub path: PathBuf,
}

/// A repository and how to open it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RepositoryConfig {
    /// Any location `-r` takes.
    pub url: String,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// A command that prints the password.
    pub password_command: Option<String>,
    /// Storage settings, as `-o key=value`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// How snapshots are kept (restic's rules).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Retention {
    /// The newest N.
    pub keep_last: Option<u32>,
    /// The newest per hour, for N hours.
    pub keep_hourly: Option<u32>,
    /// The newest per day, for N days.
    pub keep_daily: Option<u32>,
    /// The newest per week, for N weeks.
    pub keep_weekly: Option<u32>,
    /// The newest per month, for N months.
    pub keep_monthly: Option<u32>,
    /// The newest per year, for N years.
    pub keep_yearly: Option<u32>,
    /// Everything newer than this.
    #[serde(default, deserialize_with = "opt_interval")]
    pub keep_within: Option<Interval>,
}

impl Retention {
    /// The engine's policy for these rules (`keep-within` to the hour).
    pub fn policy(&self) -> KeepPolicy {
        let count = |n: Option<u32>| n.map(i64::from);
        KeepPolicy {
            last: count(self.keep_last),
            hourly: count(self.keep_hourly),
            daily: count(self.keep_daily),
            weekly: count(self.keep_weekly),
            monthly: count(self.keep_monthly),
            yearly: count(self.keep_yearly),
            within: self.keep_within.map(|i| {
                let hours = i.0.as_secs().div_ceil(3600);
                KeepDuration {
                    days: (hours / 24) as u32,
                    hours: (hours % 24) as u32,
                    ..Default::default()
                }
            }),
            tags: Vec::new(),
        }
    }
}

/// The strategy between full backups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Between {
    /// Compare with the newest snapshot.
    #[default]
    Incremental,
    /// Compare with the newest full snapshot.
    Differential,
}

/// What to back up, where, when, and the targets it must meet.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlanConfig {
    /// The repository's name (a key of `[repositories]`).
    pub repository: Spanned<String>,
    /// Repositories each successful backup is copied to.
    #[serde(default)]
    pub copy_to: Vec<Spanned<String>>,
    /// Files and directories.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Exclude patterns.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Folders kept as exact replicas of the paths, refreshed after each
    /// backup (one path: the folder is its replica; several: one folder
    /// inside it per path, named as the path's last component).
    #[serde(default, deserialize_with = "mirror_list")]
    pub mirrors: Vec<MirrorDest>,
    /// Refuse a mirror refresh that would delete more entries than this.
    #[serde(default)]
    pub mirror_max_delete: Option<u64>,
    /// Database URLs (`postgres://…`, `mysql://…`).
    #[serde(default)]
    pub databases: Vec<String>,
    /// Tags for the plan's snapshots (the plan's name is always one).
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it runs; none: only by `bunker run`.
    #[serde(default, deserialize_with = "opt_schedule")]
    pub schedule: Option<Schedule>,
    /// A full backup at least this often.
    #[serde(default, deserialize_with = "opt_interval")]
    pub full_every: Option<Interval>,
    /// What the backups between full ones compare with.
    #[serde(default)]
    pub between_full: Between,
    /// Which snapshots to keep.
    #[serde(default)]
    pub retention: Retention,
    /// Recovery point objective: the newest verified point must be younger.
    #[serde(default, deserialize_with = "opt_interval")]
    pub rpo: Option<Interval>,
    /// Recovery time objective: a measured restore must take less.
    #[serde(default, deserialize_with = "opt_interval")]
    pub rto: Option<Interval>,
    /// Commands run before the backup.
    #[serde(default)]
    pub before: Vec<String>,
    /// Commands run after it, whatever happened.
    #[serde(default)]
    pub after: Vec<String>,
    /// Restore drills.
    pub drill: Option<DrillConfig>,
    /// Repository checks.
    pub check: Option<CheckConfig>,
    /// Prune at most this often (forget runs after every backup).
    #[serde(default = "default_prune_every", deserialize_with = "interval")]
    pub prune_every: Interval,
    /// How long run records are kept (at most 20,000 per plan).
    #[serde(default = "default_keep_records", deserialize_with = "interval")]
    pub keep_records: Interval,
}

/// Where a plan keeps a mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MirrorDest {
    /// A folder here (a local or mounted disk): full fidelity.
    Local(PathBuf),
    /// A folder on an SSH host (`sftp://`): what SFTP can keep.
    Sftp(Location),
}

impl MirrorDest {
    /// A path or an `sftp://` URL (the config file wants the path absolute).
    pub fn parse(text: &str) -> Result<MirrorDest, String> {
        if text.starts_with("sftp://") {
            return Location::parse(text)
                .map(MirrorDest::Sftp)
                .map_err(|e| e.to_string());
        }
        if text.contains("://") {
            return Err(format!("{text}: a mirror is a folder or an sftp:// URL"));
        }
        Ok(MirrorDest::Local(PathBuf::from(text)))
    }

    /// The folder `name` inside this one.
    pub fn join(&self, name: &std::ffi::OsStr) -> MirrorDest {
        match self {
            MirrorDest::Local(p) => MirrorDest::Local(p.join(name)),
            MirrorDest::Sftp(Location::Sftp {
                user,
                host,
                port,
                path,
            }) => MirrorDest::Sftp(Location::Sftp {
                user: user.clone(),
                host: host.clone(),
                port: *port,
                path: format!("{}/{}", path.trim_end_matches('/'), name.to_string_lossy()),
            }),
            MirrorDest::Sftp(other) => MirrorDest::Sftp(other.clone()),
        }
    }
}

impl std::fmt::Display for MirrorDest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MirrorDest::Local(p) => write!(f, "{}", p.display()),
            MirrorDest::Sftp(l) => write!(f, "{l}"),
        }
    }
}

fn mirror_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<MirrorDest>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|t| MirrorDest::parse(t).map_err(serde::de::Error::custom))
        .collect()
}

/// One mirror refresh: a source path and the folder that replicates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorPair {
    /// The plan's path.
    pub source: PathBuf,
    /// Its replica.
    pub replica: MirrorDest,
}

impl PlanConfig {
    /// What `mirror` (one of `mirrors`) replicates: with one path, the
    /// folder is its replica; with several, each gets a folder inside it
    /// named as its last component.
    pub fn mirror_pairs(&self, mirror: &MirrorDest) -> Vec<MirrorPair> {
        match self.paths.as_slice() {
            [one] => vec![MirrorPair {
                source: one.clone(),
                replica: mirror.clone(),
            }],
            many => many
                .iter()
                .map(|p| MirrorPair {
                    source: p.clone(),
                    replica: mirror.join(p.file_name().unwrap_or(p.as_os_str())),
                })
                .collect(),
        }
    }

    fn check_mirrors(&self) -> Result<(), String> {
        if self.mirrors.is_empty() {
            return Ok(());
        }
        if self.paths.is_empty() {
            return Err("a mirror replicates the plan's paths, and it has none".into());
        }
        let mut names = std::collections::BTreeSet::new();
        if self.paths.len() > 1 {
            for p in &self.paths {
                let name = p.file_name().ok_or_else(|| {
                    format!("{} has no name to give its folder in a mirror", p.display())
                })?;
                if !names.insert(name) {
                    return Err(format!(
                        "two paths end in {name:?}: their replicas would share a folder"
                    ));
                }
            }
        }
        for m in &self.mirrors {
            let MirrorDest::Local(m) = m else { continue };
            if !m.is_absolute() {
                return Err(format!("{} must be absolute", m.display()));
            }
            if let Some(p) = self
                .paths
                .iter()
                .find(|p| m.starts_with(p) || p.starts_with(m))
            {
                return Err(format!(
                    "{} and the path {} contain one another",
                    m.display(),
                    p.display()
                ));
            }
        }
        Ok(())
    }
}

/// A plan's restore drills.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DrillConfig {
    /// When drills run.
    #[serde(default, deserialize_with = "opt_schedule")]
    pub schedule: Option<Schedule>,
    /// Where files are restored (emptied and removed after each drill).
    pub scratch: PathBuf,
    /// Where database dumps are test-loaded (default: their own server).
    pub database_server: Option<String>,
    /// The share of files restored, as "100%" or "10%".
    #[serde(default = "full_sample", deserialize_with = "percent")]
    pub sample: f64,
}

/// Storage prices in USD per GiB and month, by kind of storage; each
/// unset one takes the report's documented default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// S3 and S3-compatible storage.
    pub s3: Option<f64>,
    /// Azure Blob storage.
    pub azblob: Option<f64>,
    /// Google Cloud Storage.
    pub gcs: Option<f64>,
    /// SFTP hosts.
    pub sftp: Option<f64>,
    /// Local and mounted disks.
    pub local: Option<f64>,
}

/// A plan's repository checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckConfig {
    /// When checks run.
    #[serde(default, deserialize_with = "opt_schedule")]
    pub schedule: Option<Schedule>,
    /// The share of packs read and verified each time, as "5%" (none: structure only).
    #[serde(default, deserialize_with = "opt_percent")]
    pub read_data: Option<f64>,
}

/// Where events go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NotifyConfig {
    /// URLs that get a JSON POST per event.
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// healthchecks.io-style ping URLs by plan.
    #[serde(default)]
    pub healthchecks: BTreeMap<String, String>,
}

/// The daemon.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DaemonConfig {
    /// Address of the API, metrics and dashboard.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A file holding the Argon2 hash (PHC string) of the dashboard's
    /// password, as `bunker daemon hash-password` prints it.
    pub password_file: Option<PathBuf>,
    /// A file holding a bearer token for API clients.
    pub token_file: Option<PathBuf>,
    /// Serve `/metrics` without authentication.
    #[serde(default)]
    pub metrics_public: bool,
    /// Folders the dashboard may restore into (nothing without them).
    #[serde(default)]
    pub restore_roots: Vec<PathBuf>,
    /// TLS certificate chain (PEM); with `tls-key`, the daemon speaks HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
}

impl DaemonConfig {
    /// True when the dashboard and API ask who is calling.
    pub fn has_auth(&self) -> bool {
        self.password_file.is_some() || self.token_file.is_some()
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: default_listen(),
            password_file: None,
            token_file: None,
            metrics_public: false,
            restore_roots: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8377))
}

fn default_prune_every() -> Interval {
    Interval(std::time::Duration::from_secs(86_400))
}

fn opt_percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    percent(d).map(Some)
}

fn default_keep_records() -> Interval {
    Interval(std::time::Duration::from_secs(400 * 86_400))
}

fn interval<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Interval, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn full_sample() -> f64 {
    1.0
}

fn opt_interval<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Interval>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

fn opt_schedule<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Schedule>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

fn percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let text = String::deserialize(d)?;
    let value = text
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|p| *p > 0.0 && *p <= 100.0)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a share: expected a percentage from 0% to 100%, as \"10%\""
            ))
        })?;
    Ok(value / 100.0)
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks `text`, read from `path` (for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::at(path, text, e.span(), e.message()))?;
        config.path = path.to_path_buf();
        config.check(text)?;
        Ok(config)
    }

    /// What parsing cannot see: names that refer to other sections, and
    /// plans with nothing to do.
    fn check(&self, text: &str) -> Result<(), ConfigError> {
        let d = &self.daemon;
        if d.tls_cert.is_some() != d.tls_key.is_some() {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                place: None,
                message: "[daemon]: give both tls-cert and tls-key, or neither".into(),
            });
        }
        if let Some(p) = d.restore_roots.iter().find(|p| !p.is_absolute()) {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                place: None,
                message: format!("[daemon] restore-roots: {} must be absolute", p.display()),
            });
        }
        for (name, repo) in &self.repositories {
            if repo.password_file.is_some() && repo.password_command.is_some() {
                return Err(ConfigError::Invalid {
                    path: self.path.clone(),
                    place: None,
                    message: format!(
                        "repository {name:?}: give password-file or password-command, not both"
                    ),
                });
            }
        }
        for (name, plan) in &self.plans {
            for reference in std::iter::once(&plan.repository).chain(&plan.copy_to) {
                if !self.repositories.contains_key(reference.get_ref()) {
                    let known: Vec<&str> = self.repositories.keys().map(String::as_str).collect();
                    return Err(ConfigError::at(
                        &self.path,
                        text,
                        Some(reference.span()),
                        &format!(
                            "plan {name:?}: no repository named {:?} (defined: {})",
                            reference.get_ref(),
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
            }
            if plan
                .copy_to
                .iter()
                .any(|c| c.get_ref() == plan.repository.get_ref())
            {
                return Err(ConfigError::at(
                    &self.path,
                    text,
                    Some(plan.repository.span()),
                    &format!("plan {name:?}: copy-to names its own repository"),
                ));
            }
            if let Err(e) = plan.retention.policy().validate() {
                let e = e
                    .replace("--keep-", "keep-")
                    .replace("--keep-within", "keep-within");
                return Err(ConfigError::Invalid {
                    path: self.path.clone(),
                    place: None,
                    message: format!("plan {name:?}: retention: {e}"),
                });
            }
            if let Some(bad) = plan
                .databases
                .iter()
                .find_map(|u| DatabaseUrl::parse(u).err().map(|e| (u, e)))
            {
                return Err(ConfigError::Invalid {
                    path: self.path.clone(),
                    place: None,
                    message: format!("plan {name:?}: database {:?}: {}", bad.0, bad.1),
                });
            }
            if plan.paths.is_empty() && plan.databases.is_empty() {
                return Err(ConfigError::Invalid {
                    path: self.path.clone(),
                    place: None,
                    message: format!(
                        "plan {name:?} has nothing to back up: give paths or databases"
                    ),
                });
            }
            if let Some(p) = plan.paths.iter().find(|p| !p.is_absolute()) {
                return Err(ConfigError::Invalid {
                    path: self.path.clone(),
                    place: None,
                    message: format!("plan {name:?}: path {} must be absolute", p.display()),
                });
            }
            if let Err(message) = plan.check_mirrors() {
                return Err(ConfigError::Invalid {
                    path: self.path.clone(),
                    place: None,
                    message: format!("plan {name:?}: mirrors: {message}"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

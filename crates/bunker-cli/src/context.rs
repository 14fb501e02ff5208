//! Choosing and opening the repository: an explicit `-r`/`BUNKER_REPOSITORY`,
//! or the zero-configuration default under the user's data directory with its
//! random key under the user's config directory.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context as _, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bunker_backend::{Backend, ErrorKind, Location, Settings};
use bunker_engine::format::keyfile::KdfParams;
use bunker_engine::source::ProtectedPaths;
use bunker_engine::{EngineError, Indexed, InitOptions, Open, Repository};

use crate::password::{self, Secret};

/// Options every command accepts.
#[derive(clap::Args, Debug)]
pub struct GlobalArgs {
    /// Repository: a path, file:///path, s3://bucket/prefix,
    /// azblob://container/prefix, gcs://bucket/prefix or
    /// sftp://[user@]host[:port]/path (default: the local default repository)
    #[arg(
        short = 'r',
        long = "repo",
        env = "BUNKER_REPOSITORY",
        global = true,
        value_name = "URL"
    )]
    pub repo: Option<String>,

    /// Set a storage option (repeatable), e.g. -o s3.region=eu-west-1. Keys:
    /// s3.endpoint, s3.region, s3.profile, s3.storage-class,
    /// s3.instance-metadata, azblob.endpoint, azblob.account, gcs.endpoint,
    /// gcs.credentials, sftp.key, sftp.accept-new-host-key, connections,
    /// timeout (seconds), retries
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE")]
    pub options: Vec<String>,

    /// Cap uploads to the repository at this many KiB/s
    #[arg(long, global = true, value_name = "KIB/S", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit_upload: Option<u32>,

    /// Cap downloads from the repository at this many KiB/s
    #[arg(long, global = true, value_name = "KIB/S", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit_download: Option<u32>,

    /// Read the repository (-r) as it was at TIME, from the object versions
    /// of a versioned S3 bucket (RFC 3339 or "YYYY-MM-DD HH:MM:SS" local);
    /// read-only: snapshots, ls, restore, dump, check
    #[arg(long, global = true, value_name = "TIME", value_parser = crate::commands::backup::parse_time)]
    pub as_of: Option<i64>,

    /// Read the repository password from the first line of this file
    #[arg(long, env = "BUNKER_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// The config file (default: $BUNKER_CONFIG, ~/.config/bunker/bunker.toml, /etc/bunker/bunker.toml)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print JSON: one document, or JSON lines for progress
    #[arg(long, global = true)]
    pub json: bool,

    /// Print only errors and warnings
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Keep the local cache under DIR (default: the user's cache directory)
    #[arg(long, env = "BUNKER_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Use no local cache: read everything from the repository
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// Keep this client's memory of repositories (snapshots seen, what was
    /// withdrawn) under DIR (default: the user's state directory)
    #[arg(long, env = "BUNKER_STATE_DIR", global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl GlobalArgs {
    /// Storage settings: this process's environment with `-o` and the limits applied.
    pub fn storage_settings(&self) -> Result<Settings> {
        let mut settings = Settings::from_process();
        for spec in &self.options {
            if let Err(e) = settings.set(spec) {
                crate::usage!("{e}");
            }
        }
        let kib = |v: u32| v.saturating_mul(1024);
        settings.limit_upload = self.limit_upload.map(kib);
        settings.limit_download = self.limit_download.map(kib);
        Ok(settings)
    }

    /// Where the local cache lives, unless `--no-cache`.
    pub fn cache_root(&self) -> Option<PathBuf> {
        match (self.no_cache, &self.cache_dir) {
            (true, _) => None,
            (false, Some(dir)) => Some(dir.clone()),
            (false, None) => DefaultPaths::resolve().ok().map(|d| d.cache_dir),
        }
    }

    /// Where this client's memory of repositories lives.
    pub fn state_root(&self) -> Option<PathBuf> {
        match &self.state_dir {
            Some(dir) => Some(dir.clone()),
            None => DefaultPaths::resolve().ok().map(|d| d.state_dir),
        }
    }

    /// Local directories Bunker keeps for itself (cache, state).
    fn own_dirs(&self) -> impl Iterator<Item = PathBuf> {
        self.cache_root().into_iter().chain(self.state_root())
    }
}

/// Where the zero-configuration default lives.
pub struct DefaultPaths {
    /// The repository directory.
    pub repository: PathBuf,
    /// The file holding its random key.
    pub key_file: PathBuf,
    /// Bunker's config directory (holds the key file).
    pub config_dir: PathBuf,
    /// Bunker's cache directory.
    pub cache_dir: PathBuf,
    /// Bunker's state directory (what this client remembers of repositories).
    pub state_dir: PathBuf,
}

impl DefaultPaths {
    /// `$XDG_DATA_HOME/bunker/repository` and `$XDG_CONFIG_HOME/bunker/repository.key`.
    pub fn resolve() -> Result<Self> {
        let dirs = directories::BaseDirs::new().ok_or_else(|| {
            anyhow!("cannot find the home directory for the default repository; name one with -r")
        })?;
        Ok(DefaultPaths {
            repository: dirs.data_dir().join("bunker").join("repository"),
            key_file: dirs.config_dir().join("bunker").join("repository.key"),
            config_dir: dirs.config_dir().join("bunker"),
            cache_dir: dirs.cache_dir().join("bunker"),
            state_dir: dirs
                .state_dir()
                .unwrap_or_else(|| dirs.data_local_dir())
                .join("bunker"),
        })
    }
}

/// Key derivation cost for new keys. `BUNKER_KDF_PARAMS=m=KiB,t=N,p=N`
/// lowers it for tests and very small machines; the default is in the format crate.
pub fn kdf_params() -> Result<KdfParams> {
    let Ok(spec) = std::env::var("BUNKER_KDF_PARAMS") else {
        return Ok(KdfParams::default());
    };
    let mut p = KdfParams::default();
    for part in spec.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("BUNKER_KDF_PARAMS: expected m=..,t=..,p=.., got {part:?}"))?;
        let v: u32 = v
            .trim()
            .parse()
            .with_context(|| format!("BUNKER_KDF_PARAMS: {k} is not a number"))?;
        match k.trim() {
            "m" => p.memory_kib = v,
            "t" => p.iterations = v,
            "p" => p.parallelism = v,
            other => return Err(anyhow!("BUNKER_KDF_PARAMS: unknown parameter {other:?}")),
        }
    }
    p.validate()
        .map_err(|e| anyhow!("BUNKER_KDF_PARAMS: {e}"))?;
    Ok(p)
}

/// The selected repository, not yet opened.
pub struct Target {
    /// Storage location.
    pub location: Location,
    /// How its storage is reached.
    pub settings: Settings,
    /// Set when this is the zero-configuration default.
    pub default: Option<DefaultPaths>,
}

impl Target {
    /// Resolves `-r`/`BUNKER_REPOSITORY`, else the default.
    pub fn select(global: &GlobalArgs) -> Result<Self> {
        match &global.repo {
            Some(url) => {
                let mut settings = global.storage_settings()?;
                settings.as_of = global.as_of;
                Ok(Target {
                    location: Location::parse(url)?,
                    settings,
                    default: None,
                })
            }
            None => {
                if global.as_of.is_some() {
                    crate::usage!("--as-of reads an S3 bucket's object versions: name the repository with -r s3://BUCKET/PREFIX");
                }
                let d = DefaultPaths::resolve()?;
                Ok(Target {
                    location: Location::Local(d.repository.clone()),
                    settings: global.storage_settings()?,
                    default: Some(d),
                })
            }
        }
    }

    fn backend(&self, create: bool) -> Result<Arc<dyn Backend>> {
        match bunker_backend::open(&self.location, &self.settings, create) {
            Ok(b) => Ok(b),
            Err(e) if e.kind == ErrorKind::NotFound => Err(self.not_found(&e.message).into()),
            Err(e) => Err(EngineError::from(e).into()),
        }
    }

    fn not_found(&self, detail: &str) -> EngineError {
        let mut e = EngineError::not_found(self.location.to_string(), detail);
        if let (Some(_), EngineError::RepositoryNotFound { hint, .. }) = (&self.default, &mut e) {
            *hint =
                "run `bunker backup PATH` to create the default repository, or name one with -r"
                    .into();
        }
        e
    }

    /// The password: from the configured sources, else (default repository) its key file.
    fn password(&self, global: &GlobalArgs) -> Result<Secret> {
        if let Some(d) = &self.default {
            if let Some(p) = password::configured(global.password_file.as_deref())? {
                return Ok(p);
            }
            if !d.key_file.exists() {
                anyhow::bail!(
                    "the default repository's key file {} is missing: put back your copy of it, or give the password with --password-file",
                    d.key_file.display()
                );
            }
            return password::from_file(&d.key_file);
        }
        password::obtain(global.password_file.as_deref(), "repository password: ")
    }

    /// A repository named by URL (`copy --to`, `init --copy-chunker-params-from`),
    /// reached with the same storage settings as `-r`.
    pub fn named(url: &str, global: &GlobalArgs) -> Result<Self> {
        Ok(Target {
            location: Location::parse(url)?,
            settings: global.storage_settings()?,
            default: None,
        })
    }

    /// Opens an existing repository. Problems it goes past (a damaged
    /// snapshot, a stray file) are printed as warnings as they are met.
    pub fn open(&self, global: &GlobalArgs) -> Result<Repository<Open>> {
        // A missing local repository is told before any password is asked for.
        let backend = self.backend(false)?;
        let password = self.password(global)?;
        self.open_on(backend, global, &password)
    }

    /// [`open`](Self::open) with a password obtained by the caller.
    pub fn open_with(&self, global: &GlobalArgs, password: &[u8]) -> Result<Repository<Open>> {
        self.open_on(self.backend(false)?, global, password)
    }

    fn open_on(
        &self,
        backend: Arc<dyn Backend>,
        global: &GlobalArgs,
        password: &[u8],
    ) -> Result<Repository<Open>> {
        let mut repo = Repository::open(backend, password).map_err(|e| match e {
            EngineError::RepositoryNotFound { detail, .. } => self.not_found(&detail),
            other => other,
        })?;
        warn_notices(&repo);
        attach_local_dirs(&mut repo, global)?;
        Ok(repo)
    }

    /// Opens an existing repository and loads its index.
    pub fn open_indexed(&self, global: &GlobalArgs) -> Result<Arc<Repository<Indexed>>> {
        Ok(Arc::new(self.open(global)?.load_index()?))
    }

    /// Creates a repository. For the default one, the key is random and
    /// written (0600) to the key file first, unless a password is configured.
    /// Returns the repository and, when its password is the random key of
    /// the default repository, the file holding that key.
    pub fn init(
        &self,
        global: &GlobalArgs,
        mut options: InitOptions,
    ) -> Result<(Repository<Open>, Option<PathBuf>)> {
        // Refuse bad settings before anything (key file, directory) is created.
        options.kdf = kdf_params()?;
        options.config()?;
        let (password, key_file) = match &self.default {
            Some(d) => match password::configured(global.password_file.as_deref())? {
                Some(p) => (p, None),
                None => (ensure_key_file(&d.key_file)?, Some(d.key_file.clone())),
            },
            None => (
                password::obtain_new(
                    None,
                    global.password_file.as_deref(),
                    "--password-file FILE (or BUNKER_PASSWORD_FILE, BUNKER_PASSWORD, BUNKER_PASSWORD_COMMAND)",
                )?,
                None,
            ),
        };
        let backend = self.backend(true)?;
        let mut repo = Repository::init(backend, &password, options)?;
        repo.set_cancel(crate::interrupt().clone());
        Ok((repo, key_file))
    }

    /// Opens the repository; for the default one, creates it first if missing
    /// and says where it and its key are.
    pub fn open_or_create_default(&self, global: &GlobalArgs) -> Result<Repository<Open>> {
        if let Some(d) = &self.default {
            if !d.repository.join("config").exists() {
                let (mut repo, key_file) = self.init(global, InitOptions::default())?;
                warn_notices(&repo);
                attach_local_dirs(&mut repo, global)?;
                crate::errln!(
                    "bunker: created the default repository at {}",
                    d.repository.display()
                );
                if let Some(key_file) = key_file {
                    crate::errln!(
                        "bunker: its key is in {} (readable only by you).",
                        key_file.display()
                    );
                    crate::errln!("bunker: keep a copy of that key somewhere else too: without it these backups cannot be restored.");
                }
                return Ok(repo);
            }
        }
        self.open(global)
    }

    /// The repository's directory, when it is local.
    fn local_path(&self) -> Option<PathBuf> {
        self.location.local_path().map(Path::to_path_buf)
    }

    /// What a backup never stores: the repository itself (when local) and
    /// bunker's cache and state, however they are reached.
    pub fn protected_from_backup(&self, global: &GlobalArgs) -> ProtectedPaths {
        ProtectedPaths::new(self.local_path().into_iter().chain(global.own_dirs()))
    }

    /// What a restore never writes into, over, or deletes: the repository
    /// (when local), bunker's cache, state and config directory (the default
    /// key), and the password file.
    pub fn protected_from_restore(&self, global: &GlobalArgs) -> ProtectedPaths {
        let mut paths: Vec<PathBuf> = self.local_path().into_iter().collect();
        paths.extend(DefaultPaths::resolve().ok().map(|d| d.config_dir));
        paths.extend(global.own_dirs());
        paths.extend(global.password_file.clone());
        ProtectedPaths::new(paths)
    }
}

/// What the operations layer needs to run `config`'s plans from this
/// process: its cache, state, interrupt, warnings on stderr, and progress.
pub fn operations<'a>(
    global: &GlobalArgs,
    config: &'a bunker_ops::Config,
    progress: Arc<dyn bunker_engine::Progress>,
) -> bunker_ops::Operations<'a> {
    bunker_ops::Operations {
        config,
        open: bunker_ops::OpenContext {
            cache_dir: global.cache_root(),
            state_dir: global.state_root(),
            notices: Some(Arc::new(|m: &str| crate::errln!("bunker: warning: {m}"))),
            cancel: crate::interrupt().clone(),
        },
        host: bunker_engine::identity::hostname(),
        progress,
    }
}

/// Gives an opened repository the local cache, this client's memory and
/// the process's interrupt.
fn attach_local_dirs(repo: &mut Repository<Open>, global: &GlobalArgs) -> Result<()> {
    repo.set_cancel(crate::interrupt().clone());
    if let Some(root) = global.cache_root() {
        repo.use_cache(&root);
    }
    if let Some(root) = global.state_root() {
        repo.use_memory(&root)?;
    }
    Ok(())
}

/// Prints the repository's notices as warnings on stderr, as they come.
pub fn warn_notices<S>(repo: &Repository<S>) {
    repo.notices().set_sink(std::sync::Arc::new(|m: &str| {
        crate::errln!("bunker: warning: {m}")
    }));
}

/// Reads the default key file, or creates it with a random key (0600, in a 0700 directory).
fn ensure_key_file(path: &Path) -> Result<Secret> {
    if path.exists() {
        return password::from_file(path);
    }
    let dir = path.parent().expect("key file path has a parent");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mut raw = [0u8; 32];
    bunker_engine::format::crypto::fill_random(&mut raw);
    let key = URL_SAFE_NO_PAD.encode(raw);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    f.write_all(format!("{key}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write key file {}", path.display()))?;
    Ok(Secret::new(key.into_bytes()))
}

//! Opening the repositories the config file names.

use std::path::PathBuf;
use std::sync::Arc;

use bunker_engine::backend::{Location, Settings};
use bunker_engine::{Cancel, EngineError, NoticeSink, Open, Repository};

use crate::secret::{password_from_command, password_from_file, Secret};
use crate::{OpsError, RepositoryConfig};

/// What every repository opened by an operation gets: the local cache and
/// this client's memory, where problems met on the way are told, and the
/// operation's cancellation.
#[derive(Clone, Default)]
pub struct OpenContext {
    /// The local cache's root (none: read everything from storage).
    pub cache_dir: Option<PathBuf>,
    /// The client memory's root.
    pub state_dir: Option<PathBuf>,
    /// Where the repository's notices (warnings) go.
    pub notices: Option<NoticeSink>,
    /// Stops the operations run on the repositories opened.
    pub cancel: Cancel,
}

impl OpenContext {
    /// Opens the repository `name` of the config.
    pub fn open(
        &self,
        name: &str,
        config: &RepositoryConfig,
    ) -> Result<Repository<Open>, OpsError> {
        let fail = |source: EngineError| OpsError::Repository {
            repository: name.to_string(),
            source,
        };
        let password = password(name, config)?;
        let location = Location::parse(&config.url).map_err(|e| fail(e.into()))?;
        let settings = settings(config).map_err(|e| fail(e.into()))?;
        let backend = bunker_engine::backend::open(&location, &settings, false).map_err(|e| {
            fail(match e.kind {
                bunker_engine::backend::ErrorKind::NotFound => {
                    EngineError::not_found(location.to_string(), &e.message)
                }
                _ => e.into(),
            })
        })?;
        let mut repo = Repository::open(backend, &password).map_err(fail)?;
        if let Some(sink) = &self.notices {
            repo.notices().set_sink(Arc::clone(sink));
        }
        if let Some(root) = &self.cache_dir {
            repo.use_cache(root);
        }
        if let Some(root) = &self.state_dir {
            repo.use_memory(root).map_err(fail)?;
        }
        repo.set_cancel(self.cancel.clone());
        Ok(repo)
    }
}

/// The repository's password, from its file or command.
fn password(name: &str, config: &RepositoryConfig) -> Result<Secret, OpsError> {
    match (&config.password_file, &config.password_command) {
        (Some(file), _) => password_from_file(file),
        (None, Some(command)) => {
            password_from_command(&format!("repository {name:?}: password-command"), command)
        }
        (None, None) => Err(OpsError::Password {
            what: format!("repository {name:?}"),
            detail: "no password-file or password-command given".into(),
        }),
    }
}

/// This process's storage settings with the repository's `options` applied.
fn settings(config: &RepositoryConfig) -> Result<Settings, bunker_engine::backend::BackendError> {
    let mut settings = Settings::from_process();
    for (key, value) in &config.options {
        settings.set(&format!("{key}={value}"))?;
    }
    Ok(settings)
}

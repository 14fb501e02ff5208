//! What can go wrong in the operations layer.

use bunker_engine::EngineError;

use crate::ConfigError;

/// An operation that could not be done, with what it concerned.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The config file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config has no such plan.
    #[error("no plan named {name:?} (defined: {known})")]
    UnknownPlan {
        /// The name asked for.
        name: String,
        /// The plans the config defines.
        known: String,
    },
    /// The config has no such repository.
    #[error("no repository named {0:?} in the config")]
    UnknownRepository(String),
    /// A plan cannot be run as configured (no drill section, ...).
    #[error("plan {plan:?}: {detail}")]
    Plan {
        /// The plan.
        plan: String,
        /// What is wrong.
        detail: String,
    },
    /// A password could not be obtained.
    #[error("{what}: {detail}")]
    Password {
        /// Where it was to come from.
        what: String,
        /// Why it could not.
        detail: String,
    },
    /// The engine failed on a repository.
    #[error("repository {repository:?}: {source}")]
    Repository {
        /// The repository's name in the config.
        repository: String,
        /// The engine's error.
        source: EngineError,
    },
    /// The daemon cannot start or serve.
    #[error("daemon: {0}")]
    Daemon(String),
    /// Writing a report file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl OpsError {
    /// The engine error underneath, if any (for exit codes).
    pub fn engine(&self) -> Option<&EngineError> {
        match self {
            OpsError::Repository { source, .. } => Some(source),
            _ => None,
        }
    }
}

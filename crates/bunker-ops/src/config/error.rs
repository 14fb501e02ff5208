//! Config errors, each naming the file and, where it can, the line and
//! column.

use std::path::{Path, PathBuf};

/// What is wrong with the config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named by `--config` or `BUNKER_CONFIG` is not there.
    #[error("{}: no such config file (named by {how})", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// Who named it.
        how: &'static str,
    },
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A bad key, value or reference.
    #[error("{}{}: {message}", path.display(), place.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Line and column, from 1.
        place: Option<(usize, usize)>,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// An error at a byte range of `text`.
    pub(crate) fn at(
        path: &Path,
        text: &str,
        span: Option<std::ops::Range<usize>>,
        message: &str,
    ) -> Self {
        let place = span.map(|s| {
            let before = &text[..s.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, column)
        });
        ConfigError::Invalid {
            path: path.to_path_buf(),
            place,
            message: message.trim().to_string(),
        }
    }
}

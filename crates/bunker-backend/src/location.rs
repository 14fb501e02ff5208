//! Repository URLs.

use std::path::PathBuf;

use crate::{BackendError, ErrorKind};

/// Where a repository lives, parsed from `-r/--repo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local directory: a plain path or `file:///path`.
    Local(PathBuf),
}

impl Location {
    /// The directory of a local repository; `None` for remote storage.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        match self {
            Location::Local(p) => Some(p),
        }
    }

    /// Parses a repository URL.
    pub fn parse(url: &str) -> Result<Self, BackendError> {
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(BackendError::new(
                ErrorKind::Permanent,
                format!("open repository {url}"),
                format!("the {scheme}:// backend is not supported by this build (supported: a local path, file://)"),
            ));
        }
        if url.is_empty() {
            return Err(BackendError::new(
                ErrorKind::Permanent,
                "open repository",
                "empty repository location",
            ));
        }
        Ok(Location::Local(PathBuf::from(url)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_forms() {
        assert_eq!(
            Location::parse("/tmp/r").unwrap(),
            Location::Local("/tmp/r".into())
        );
        assert_eq!(
            Location::parse("file:///tmp/r").unwrap(),
            Location::Local("/tmp/r".into())
        );
        assert_eq!(
            Location::parse("rel/dir").unwrap(),
            Location::Local("rel/dir".into())
        );
        assert!(Location::parse("gopher://x").is_err());
        assert!(Location::parse("").is_err());
    }
}

//! How storage is reached: the user's environment, read the way each
//! service's own tools read it, and `-o key=value` overrides.
//!
//! The environment is captured into the settings, never read behind the
//! caller's back, so a long-running process can open repositories with
//! different settings side by side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{BackendError, ErrorKind};

/// The `-o` keys Bunker understands, with what each one sets.
pub const OPTIONS: &[(&str, &str)] = &[
    ("s3.endpoint", "S3 endpoint URL (path-style addressing)"),
    ("s3.region", "S3 region"),
    (
        "s3.profile",
        "profile in ~/.aws/credentials and ~/.aws/config",
    ),
    (
        "s3.storage-class",
        "storage class of new objects, e.g. STANDARD_IA",
    ),
    (
        "s3.instance-metadata",
        "true: ask the EC2 instance-metadata service for credentials",
    ),
    (
        "s3.object-lock-mode",
        "with init --object-lock: governance (default) or compliance",
    ),
    ("azblob.endpoint", "Azure Blob endpoint URL"),
    ("azblob.account", "storage account name"),
    ("gcs.endpoint", "GCS endpoint URL"),
    ("gcs.credentials", "service-account JSON file"),
    ("sftp.key", "SSH identity file"),
    (
        "sftp.accept-new-host-key",
        "true: trust a host key never seen before (as ssh's accept-new)",
    ),
    (
        "connections",
        "parallel requests to the storage (default 8)",
    ),
    (
        "timeout",
        "seconds before a request is abandoned and retried (default 60)",
    ),
    (
        "retries",
        "retries of a failed request, with backoff (default 5)",
    ),
];

/// Settings for opening storage.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    options: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    home: Option<PathBuf>,
    /// Upload cap, in bytes per second.
    pub limit_upload: Option<u32>,
    /// Download cap, in bytes per second.
    pub limit_download: Option<u32>,
    /// Read the repository as it was at this time (Unix nanoseconds), from
    /// the object versions of a versioned bucket; read-only.
    pub as_of: Option<i64>,
}

impl Settings {
    /// Settings from this process's environment and home directory.
    pub fn from_process() -> Self {
        Self::from_env(
            std::env::vars(),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    /// Settings from the given environment variables and home directory.
    pub fn from_env(
        env: impl IntoIterator<Item = (String, String)>,
        home: Option<PathBuf>,
    ) -> Self {
        Settings {
            env: env.into_iter().collect(),
            home,
            ..Settings::default()
        }
    }

    /// Applies one `-o key=value`; an unknown key or an empty value is refused.
    pub fn set(&mut self, spec: &str) -> Result<(), BackendError> {
        let invalid =
            |why: String| BackendError::new(ErrorKind::Permanent, format!("-o {spec}"), why);
        let (key, value) = spec
            .split_once('=')
            .ok_or_else(|| invalid("expected key=value".into()))?;
        let (key, value) = (key.trim(), value.trim());
        if !OPTIONS.iter().any(|(k, _)| *k == key) {
            let known: Vec<&str> = OPTIONS.iter().map(|(k, _)| *k).collect();
            return Err(invalid(format!(
                "unknown option {key:?} (known: {})",
                known.join(", ")
            )));
        }
        if value.is_empty() {
            return Err(invalid(format!("{key} needs a value")));
        }
        self.options.insert(key.to_string(), value.to_string());
        // Parse numbers and flags now, so a typo fails before any work.
        let parsed = self
            .connections()
            .and(self.timeout())
            .and(self.retries())
            .and(self.flag("s3.instance-metadata"))
            .and(self.flag("sftp.accept-new-host-key"));
        if let Err(e) = parsed {
            self.options.remove(key);
            return Err(e);
        }
        Ok(())
    }

    /// The value of a `-o` option.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// A non-empty environment variable.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The user's home directory.
    pub fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }

    /// A true/false option (absent: false).
    pub fn flag(&self, key: &str) -> Result<bool, BackendError> {
        match self.option(key) {
            None | Some("false") | Some("no") | Some("0") => Ok(false),
            Some("true") | Some("yes") | Some("1") => Ok(true),
            Some(v) => Err(BackendError::new(
                ErrorKind::Permanent,
                format!("-o {key}={v}"),
                "expected true or false",
            )),
        }
    }

    fn number(
        &self,
        key: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, BackendError> {
        let Some(v) = self.option(key) else {
            return Ok(default);
        };
        v.parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                BackendError::new(
                    ErrorKind::Permanent,
                    format!("-o {key}={v}"),
                    format!(
                        "expected a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }

    /// Parallel requests to the storage.
    pub fn connections(&self) -> Result<usize, BackendError> {
        Ok(self.number("connections", 8, 1..=256)? as usize)
    }

    /// How long one request may take before it is abandoned (and retried).
    pub fn timeout(&self) -> Result<Duration, BackendError> {
        Ok(Duration::from_secs(self.number("timeout", 60, 1..=3600)?))
    }

    /// Retries of a request that failed transiently.
    pub fn retries(&self) -> Result<usize, BackendError> {
        Ok(self.number("retries", 5, 0..=100)? as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_when_given() {
        let mut s = Settings::default();
        s.set("s3.region=eu-west-1").unwrap();
        assert_eq!(s.option("s3.region"), Some("eu-west-1"));
        s.set("connections = 16").unwrap();
        assert_eq!(s.connections().unwrap(), 16);
        assert!(s.set("connections=0").is_err());
        assert!(s.set("timeout=soon").is_err());
        assert!(s
            .set("s3.regoin=x")
            .unwrap_err()
            .message
            .contains("s3.region"));
        assert!(s.set("s3.region").is_err());
        assert!(s.set("s3.region=").is_err());
        assert!(s.set("sftp.accept-new-host-key=maybe").is_err());
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let s = Settings::from_env([("A".to_string(), String::new())], None);
        assert_eq!(s.env("A"), None);
    }
}

//! Repository URLs.

use std::path::PathBuf;

use crate::{BackendError, ErrorKind};

/// Where a repository lives, parsed from `-r/--repo`. Its display form is
/// the canonical URL, which never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local directory: a plain path or `file:///path`.
    Local(PathBuf),
    /// `s3://bucket/prefix` (AWS S3 or an S3-compatible server).
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
    /// `azblob://container/prefix` (Azure Blob Storage).
    Azblob {
        /// The container.
        container: String,
        /// Blob name prefix, without leading or trailing `/`.
        prefix: String,
    },
    /// `gcs://bucket/prefix` (Google Cloud Storage).
    Gcs {
        /// The bucket.
        bucket: String,
        /// Object name prefix, without leading or trailing `/`.
        prefix: String,
    },
    /// `sftp://[user@]host[:port]/path`: a directory on an SSH host.
    Sftp {
        /// Login name; by default the one `~/.ssh/config` or the local user gives.
        user: Option<String>,
        /// Host name or `~/.ssh/config` alias.
        host: String,
        /// Port; by default the one `~/.ssh/config` gives, else 22.
        port: Option<u16>,
        /// The directory: absolute (`/srv/backup`), or relative to the
        /// login's home directory (from `sftp://host/~/backup`).
        path: String,
    },
}

impl Location {
    /// The directory of a local repository; `None` for remote storage.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        match self {
            Location::Local(p) => Some(p),
            _ => None,
        }
    }

    /// The storage service's name, for messages (`s3`, `sftp`, …).
    pub fn scheme(&self) -> &'static str {
        match self {
            Location::Local(_) => "file",
            Location::S3 { .. } => "s3",
            Location::Azblob { .. } => "azblob",
            Location::Gcs { .. } => "gcs",
            Location::Sftp { .. } => "sftp",
        }
    }

    /// Parses a repository URL.
    pub fn parse(url: &str) -> Result<Self, BackendError> {
        let invalid = |why: &str| {
            BackendError::new(
                ErrorKind::Permanent,
                format!("open repository {url}"),
                why.to_string(),
            )
        };
        if url.is_empty() {
            return Err(invalid("empty repository location"));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Ok(Location::Local(PathBuf::from(url)));
        };
        match scheme {
            "file" => {
                if rest.is_empty() {
                    return Err(invalid("file:// needs a path, as in file:///srv/backup"));
                }
                Ok(Location::Local(PathBuf::from(rest)))
            }
            "s3" | "azblob" | "gcs" => {
                let (store, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if store.is_empty() {
                    let what = if scheme == "azblob" { "container" } else { "bucket" };
                    return Err(invalid(&format!(
                        "{scheme}:// needs a {what}, as in {scheme}://{what}/prefix"
                    )));
                }
                let store = store.to_string();
                let prefix = prefix.trim_matches('/').to_string();
                if prefix.split('/').any(|p| p == "." || p == "..") {
                    return Err(invalid("the prefix may not contain . or .. segments"));
                }
                Ok(match scheme {
                    "s3" => Location::S3 {
                        bucket: store,
                        prefix,
                    },
                    "azblob" => Location::Azblob {
                        container: store,
                        prefix,
                    },
                    _ => Location::Gcs {
                        bucket: store,
                        prefix,
                    },
                })
            }
            "sftp" => parse_sftp(rest).map_err(|why| invalid(&why)),
            other => Err(invalid(&format!(
                "unknown storage {other}:// (supported: a path, file://, s3://, azblob://, gcs://, sftp://)"
            ))),
        }
    }
}

/// `[user@]host[:port]/path`, the part of an `sftp://` URL after the scheme.
fn parse_sftp(rest: &str) -> Result<Location, String> {
    const FORM: &str = "as in sftp://user@host:22/srv/backup or sftp://host/~/backup";
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => return Err(format!("sftp:// needs a path, {FORM}")),
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        // It would show in logs, reports and the dashboard; not echoed.
        Some((u, _)) if u.contains(':') => {
            return Err("a password in an sftp:// URL is refused: use an SSH key or agent".into())
        }
        Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
        Some(_) => return Err(format!("empty user name, {FORM}")),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in the host, {FORM}"))?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("sftp:// needs a host, {FORM}"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{p:?} is not a port number"))?,
        ),
        None => None,
    };
    // `/~/rel` and `/~` name a directory under the login's home; anything
    // else is absolute.
    let path = match path.strip_prefix("/~") {
        Some(rel) if rel.is_empty() || rel.starts_with('/') => rel.trim_matches('/').to_string(),
        _ => {
            let abs = path.trim_end_matches('/');
            if abs.is_empty() {
                "/".to_string()
            } else {
                abs.to_string()
            }
        }
    };
    if path.split('/').any(|p| p == "..") {
        return Err("the path may not contain .. segments".to_string());
    }
    Ok(Location::Sftp {
        user,
        host: host.to_string(),
        port,
        path,
    })
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let with_prefix = |f: &mut std::fmt::Formatter<'_>, scheme, store, prefix: &str| {
            write!(f, "{scheme}://{store}")?;
            if !prefix.is_empty() {
                write!(f, "/{prefix}")?;
            }
            Ok(())
        };
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, prefix } => with_prefix(f, "s3", bucket, prefix),
            Location::Azblob { container, prefix } => with_prefix(f, "azblob", container, prefix),
            Location::Gcs { bucket, prefix } => with_prefix(f, "gcs", bucket, prefix),
            Location::Sftp {
                user,
                host,
                port,
                path,
            } => {
                write!(f, "sftp://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                match host.contains(':') {
                    true => write!(f, "[{host}]")?,
                    false => write!(f, "{host}")?,
                }
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                match path.starts_with('/') {
                    true => write!(f, "{path}"),
                    false if path.is_empty() => write!(f, "/~"),
                    false => write!(f, "/~/{path}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Location {
        Location::parse(url).unwrap()
    }

    #[test]
    fn parses_local_forms() {
        assert_eq!(parse("/tmp/r"), Location::Local("/tmp/r".into()));
        assert_eq!(parse("file:///tmp/r"), Location::Local("/tmp/r".into()));
        assert_eq!(parse("rel/dir"), Location::Local("rel/dir".into()));
        assert!(Location::parse("gopher://x").is_err());
        assert!(Location::parse("").is_err());
        assert!(Location::parse("file://").is_err());
    }

    #[test]
    fn parses_object_stores_and_prints_them_back() {
        for (url, canonical) in [
            ("s3://bkt/some/prefix/", "s3://bkt/some/prefix"),
            ("s3://bkt", "s3://bkt"),
            ("azblob://cont/p", "azblob://cont/p"),
            ("gcs://bkt//p//", "gcs://bkt/p"),
        ] {
            assert_eq!(parse(url).to_string(), canonical);
        }
        assert_eq!(
            parse("s3://b/x/y"),
            Location::S3 {
                bucket: "b".into(),
                prefix: "x/y".into()
            }
        );
        assert!(Location::parse("s3:///prefix").is_err());
        assert!(Location::parse("gcs://b/../x").is_err());
    }

    #[test]
    fn parses_sftp_forms() {
        assert_eq!(
            parse("sftp://backup@host.example:2222/srv/repo/"),
            Location::Sftp {
                user: Some("backup".into()),
                host: "host.example".into(),
                port: Some(2222),
                path: "/srv/repo".into()
            }
        );
        let home = parse("sftp://alias/~/repo");
        assert_eq!(
            home,
            Location::Sftp {
                user: None,
                host: "alias".into(),
                port: None,
                path: "repo".into()
            }
        );
        assert_eq!(home.to_string(), "sftp://alias/~/repo");
        assert_eq!(parse("sftp://[::1]:22/r").to_string(), "sftp://[::1]:22/r");
        for bad in [
            "sftp://host",
            "sftp://:22/x",
            "sftp://h:0/x",
            "sftp://h:x/x",
            "sftp://@h/x",
            "sftp://h/a/../b",
            "sftp://user:secret@h/x",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad} accepted");
        }
    }
}

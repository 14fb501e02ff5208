//! The storage servers `scripts/test-services start` runs on 127.0.0.1,
//! found through the environment file it writes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{Location, Settings};

/// A remote storage service under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// moto.
    S3,
    /// Azurite.
    Azblob,
    /// fake-gcs-server.
    Gcs,
    /// A private OpenSSH sshd.
    Sftp,
}

/// The running test servers.
pub struct TestServices {
    vars: BTreeMap<String, String>,
}

impl TestServices {
    /// The servers, or `None` when they are not running. Then a test using
    /// them says so and passes, unless `BUNKER_REQUIRE_TEST_SERVICES` is set
    /// (as `scripts/test` does), where their absence is a failure.
    pub fn get(test: &str) -> Option<Self> {
        let path = std::env::var_os("BUNKER_TEST_SERVICES_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-services/env")
            });
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(TestServices {
                vars: text
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            Err(_) if std::env::var_os("BUNKER_REQUIRE_TEST_SERVICES").is_some() => panic!(
                "{test}: the test servers are not running ({} is missing): run scripts/test-services start",
                path.display()
            ),
            Err(_) => {
                eprintln!("{test}: SKIPPED, the test servers are not running (scripts/test-services start)");
                None
            }
        }
    }

    fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the test services' env file"))
    }

    /// A repository URL on `service` under a prefix unique to this call.
    pub fn url(&self, service: Service, name: &str) -> String {
        let unique = format!("{name}-{}-{}", std::process::id(), unique_suffix());
        match service {
            Service::S3 => format!("s3://{}/{unique}", self.var("BUNKER_TEST_S3_BUCKET")),
            Service::Azblob => format!(
                "azblob://{}/{unique}",
                self.var("BUNKER_TEST_AZBLOB_CONTAINER")
            ),
            Service::Gcs => format!("gcs://{}/{unique}", self.var("BUNKER_TEST_GCS_BUCKET")),
            Service::Sftp => format!(
                "sftp://{}{}/{unique}",
                self.var("BUNKER_TEST_SFTP_HOST"),
                self.var("BUNKER_TEST_SFTP_ROOT")
            ),
        }
    }

    /// The parsed location of [`url`](Self::url).
    pub fn location(&self, service: Service, name: &str) -> Location {
        Location::parse(&self.url(service, name)).expect("test URLs parse")
    }

    /// The environment variables a user of `service` would have set, as
    /// the service's own tools read them (and, for SFTP, a `PATH` whose
    /// `ssh` reads the test client configuration).
    pub fn env(&self, service: Service) -> Vec<(String, String)> {
        let pairs: Vec<(&str, String)> = match service {
            Service::S3 => vec![
                ("AWS_ACCESS_KEY_ID", "test".into()),
                ("AWS_SECRET_ACCESS_KEY", "test-secret-key".into()),
                ("AWS_REGION", "us-east-1".into()),
                (
                    "AWS_ENDPOINT_URL",
                    self.var("BUNKER_TEST_S3_ENDPOINT").into(),
                ),
            ],
            Service::Azblob => vec![(
                "AZURE_STORAGE_CONNECTION_STRING",
                self.var("BUNKER_TEST_AZBLOB_CONNECTION_STRING").into(),
            )],
            Service::Gcs => vec![(
                "STORAGE_EMULATOR_HOST",
                self.var("BUNKER_TEST_GCS_ENDPOINT").into(),
            )],
            Service::Sftp => vec![("PATH", self.sftp_path())],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// `PATH` with the directory of the test `ssh` wrapper first.
    pub fn sftp_path(&self) -> String {
        format!(
            "{}:{}",
            self.var("BUNKER_TEST_SFTP_PATH"),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// Settings to open `service` with, from [`env`](Self::env) alone.
    pub fn settings(&self, service: Service) -> Settings {
        Settings::from_env(self.env(service), None)
    }
}

fn unique_suffix() -> String {
    let mut raw = [0u8; 6];
    getrandom::fill(&mut raw).expect("random source");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

impl TestServices {
    /// The address of `service`'s HTTP server (not SFTP), for a [`Proxy`](super::Proxy).
    pub fn http_addr(&self, service: Service) -> std::net::SocketAddr {
        let endpoint = match service {
            Service::S3 => self.var("BUNKER_TEST_S3_ENDPOINT"),
            Service::Gcs => self.var("BUNKER_TEST_GCS_ENDPOINT"),
            Service::Azblob => "http://127.0.0.1:10000",
            Service::Sftp => panic!("SFTP is not HTTP"),
        };
        endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("a loopback address")
    }

    /// [`env`](Self::env) for `service` reached through the proxy at `proxy_url`.
    pub fn env_via(&self, service: Service, proxy_url: &str) -> Vec<(String, String)> {
        let mut env = self.env(service);
        for (k, v) in &mut env {
            match (service, k.as_str()) {
                (Service::S3, "AWS_ENDPOINT_URL") => *v = proxy_url.to_string(),
                (Service::Gcs, "STORAGE_EMULATOR_HOST") => *v = proxy_url.to_string(),
                (Service::Azblob, "AZURE_STORAGE_CONNECTION_STRING") => {
                    *v = v.replace("http://127.0.0.1:10000", proxy_url)
                }
                _ => {}
            }
        }
        env
    }
}

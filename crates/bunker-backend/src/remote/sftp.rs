//! SFTP through the system's OpenSSH client, so the user's `~/.ssh/config`
//! (host aliases, `IdentityFile`, `Port`, `User`), `~/.ssh/known_hosts`
//! and ssh agent apply as they do for `ssh` itself.

use opendal::services::Sftp;
use opendal::Operator;

use super::{Service, ServiceError, Upload};
use crate::Settings;

pub(super) fn service(
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
    path: &str,
    s: &Settings,
) -> Result<Service, ServiceError> {
    if !path.starts_with('/') {
        // OpenDAL's SFTP service resolves every path from `/`.
        return Err(ServiceError::Config(format!(
            "a path under the login's home directory is not supported yet: give the absolute path, as in sftp://{host}/home/USER/{path}"
        )));
    }
    let mut endpoint = "ssh://".to_string();
    if let Some(u) = user {
        endpoint.push_str(&format!("{u}@"));
    }
    match host.contains(':') {
        true => endpoint.push_str(&format!("[{host}]")),
        false => endpoint.push_str(host),
    }
    if let Some(p) = port {
        endpoint.push_str(&format!(":{p}"));
    }
    // An unknown host key is refused unless the user asked to trust new
    // ones; a changed key is always refused (ssh's accept-new).
    let strategy = match s.flag("sftp.accept-new-host-key")? {
        true => "add",
        false => "strict",
    };
    let mut b = Sftp::default()
        .endpoint(&endpoint)
        .root(path)
        .known_hosts_strategy(strategy);
    if let Some(key) = s.option("sftp.key") {
        b = b.key(key);
    }
    Ok(Service {
        object_lock: None,
        op: Operator::new(b)?,
        secrets: Vec::new(),
        upload: Upload::ViaTmp,
        atomic_create: true,
        batch_delete: false,
        missing_dir_is_empty: true,
        explain: Some(explain_host_key(host.to_string(), port)),
    })
}

/// Says what to do when ssh refused the host's key.
fn explain_host_key(host: String, port: Option<u16>) -> super::Explain {
    Box::new(move |message: &str| {
        let scan = match port {
            Some(p) => format!("ssh-keyscan -p {p} {host} >> ~/.ssh/known_hosts"),
            None => format!("ssh-keyscan {host} >> ~/.ssh/known_hosts"),
        };
        if message.contains("IDENTIFICATION HAS CHANGED") {
            return Some(format!(
                "the host key of {host} has changed since it was recorded in known_hosts: if the change is expected, remove the old entry (ssh-keygen -R {host}) and add the new one ({scan})"
            ));
        }
        if message.contains("Host key verification failed") {
            return Some(format!(
                "the host key of {host} is not known: check it, then add it with `{scan}`, or trust it on first use with -o sftp.accept-new-host-key=true"
            ));
        }
        None
    })
}

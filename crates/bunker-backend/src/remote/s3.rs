//! S3 and S3-compatible servers, configured as the AWS tools are: the
//! `AWS_*` variables, then `~/.aws/credentials` and `~/.aws/config`.

use opendal::services::S3;
use opendal::Operator;

use super::object_lock::ObjectLockClient;
use super::{Service, ServiceError, Upload};
use crate::Settings;

pub(super) fn service(bucket: &str, prefix: &str, s: &Settings) -> Result<Service, ServiceError> {
    let profile = s
        .option("s3.profile")
        .or(s.env("AWS_PROFILE"))
        .unwrap_or("default")
        .to_string();
    let region = s
        .option("s3.region")
        .or(s.env("AWS_REGION"))
        .or(s.env("AWS_DEFAULT_REGION"))
        .map(str::to_string)
        .or_else(|| profile_value(s, &profile, "region"))
        .unwrap_or_else(|| "us-east-1".to_string());
    let endpoint = s
        .option("s3.endpoint")
        .or(s.env("AWS_ENDPOINT_URL_S3"))
        .or(s.env("AWS_ENDPOINT_URL"));
    let mut b = S3::default()
        .bucket(bucket)
        .root(&format!("/{prefix}"))
        .region(&region)
        // Everything the service may use is read here, from the settings
        // given; OpenDAL reads no variables or files of its own.
        .disable_config_load();
    if !s.flag("s3.instance-metadata")? {
        b = b.disable_ec2_metadata();
    }
    match endpoint {
        // An S3-compatible server: path-style addressing (OpenDAL's default).
        Some(e) => b = b.endpoint(e),
        None => b = b.enable_virtual_host_style(),
    }
    if let Some(class) = s.option("s3.storage-class") {
        b = b.default_storage_class(class);
    }
    let mut secrets = Vec::new();
    let lock_endpoint = endpoint.map(str::to_string);
    let keys = match (s.env("AWS_ACCESS_KEY_ID"), s.env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Some((
            id.to_string(),
            secret.to_string(),
            s.env("AWS_SESSION_TOKEN").map(str::to_string),
        )),
        _ => credentials_file(s, &profile),
    };
    if let Some((id, secret, token)) = &keys {
        b = b.access_key_id(id).secret_access_key(secret);
        secrets.push(secret.clone());
        if let Some(token) = token {
            b = b.session_token(token);
            secrets.push(token.clone());
        }
    } else if !s.flag("s3.instance-metadata")? {
        return Err(ServiceError::Config(format!(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile {profile:?} in ~/.aws/credentials (or -o s3.instance-metadata=true on EC2)"
        )));
    }
    let object_lock = ObjectLockClient::new(
        lock_endpoint.as_deref(),
        bucket,
        prefix,
        &region,
        keys,
        s.timeout()?,
    )
    .map_err(ServiceError::Config)?;
    Ok(Service {
        op: Operator::new(b)?,
        secrets,
        upload: Upload::Multipart,
        atomic_create: true,
        batch_delete: true,
        missing_dir_is_empty: false,
        explain: None,
        object_lock: Some(object_lock),
    })
}

/// Static keys of `profile` in the shared credentials file.
fn credentials_file(s: &Settings, profile: &str) -> Option<(String, String, Option<String>)> {
    let path = s
        .env("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| s.home().map(|h| h.join(".aws/credentials")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let section = ini_section(&text, profile);
    let get = |k: &str| {
        section
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    Some((
        get("aws_access_key_id")?,
        get("aws_secret_access_key")?,
        get("aws_session_token"),
    ))
}

/// A setting of `profile` in the shared config file (`[profile NAME]`, or
/// `[default]`).
fn profile_value(s: &Settings, profile: &str, key: &str) -> Option<String> {
    let path = s
        .env("AWS_CONFIG_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| s.home().map(|h| h.join(".aws/config")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let name = match profile {
        "default" => "default".to_string(),
        p => format!("profile {p}"),
    };
    ini_section(&text, &name)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The `key = value` lines of section `[name]` of an INI file.
fn ini_section(text: &str, name: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_profiles_as_the_aws_tools_do() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = sdef\n\n[work]\n# comment\naws_access_key_id=AKWORK\naws_secret_access_key=swork\naws_session_token=tok\n",
        )
        .unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[default]\nregion = eu-west-1\n[profile work]\nregion = ap-south-1\n",
        )
        .unwrap();
        let s = Settings::from_env([], Some(home.path().to_path_buf()));
        assert_eq!(
            credentials_file(&s, "work"),
            Some(("AKWORK".into(), "swork".into(), Some("tok".into())))
        );
        assert_eq!(credentials_file(&s, "default").unwrap().0, "AKDEF");
        assert_eq!(credentials_file(&s, "none"), None);
        assert_eq!(
            profile_value(&s, "work", "region").as_deref(),
            Some("ap-south-1")
        );
        assert_eq!(
            profile_value(&s, "default", "region").as_deref(),
            Some("eu-west-1")
        );
    }
}

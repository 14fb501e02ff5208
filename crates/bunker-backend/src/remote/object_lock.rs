//! S3 Object Lock (write once, read many): whether a bucket has it, and an
//! object's retention date. OpenDAL sends no retention requests, so these
//! few are made here, signed with AWS Signature Version 4 from the same
//! credentials and endpoint as the rest of the service.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::{Digest, Md5};
use reqsign_aws_v4::{Credential, RequestSigner};
use reqsign_core::SignRequest;

/// How a retention date binds: `governance` can be lifted by a user with
/// `s3:BypassGovernanceRetention`; `compliance` by no one, not even the
/// account's root, until the date passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionMode {
    /// Lifted only with a special permission.
    Governance,
    /// Never lifted before its date.
    Compliance,
}

impl RetentionMode {
    /// Parses `governance` or `compliance`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "governance" => Some(RetentionMode::Governance),
            "compliance" => Some(RetentionMode::Compliance),
            _ => None,
        }
    }

    /// The word S3 uses.
    fn s3_name(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }
}

/// Signed Object Lock requests on one bucket.
pub(crate) struct ObjectLockClient {
    http: reqwest::Client,
    signer: RequestSigner,
    credential: Option<Credential>,
    /// `scheme://host[:port]/bucket` (path style) or `https://bucket.s3.region.amazonaws.com`.
    bucket_url: String,
    /// The repository's prefix in the bucket, without slashes around it.
    prefix: String,
}

impl ObjectLockClient {
    pub fn new(
        endpoint: Option<&str>,
        bucket: &str,
        prefix: &str,
        region: &str,
        credential: Option<(String, String, Option<String>)>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let bucket_url = match endpoint {
            Some(e) => format!("{}/{bucket}", e.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ObjectLockClient {
            http,
            signer: RequestSigner::new("s3", region),
            credential: credential.map(|(id, secret, token)| Credential {
                access_key_id: id,
                secret_access_key: secret,
                session_token: token,
                expires_in: None,
            }),
            bucket_url,
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    /// Sends one signed request; the status, headers and body of the answer.
    async fn send(
        &self,
        method: http::Method,
        url: String,
        body: Vec<u8>,
    ) -> Result<(u16, http::HeaderMap, String), String> {
        let mut builder = http::Request::builder().method(method).uri(&url).header(
            "x-amz-content-sha256",
            hex::encode(sha2::Sha256::digest(&body)),
        );
        if !body.is_empty() {
            builder = builder
                .header("content-md5", B64.encode(Md5::digest(&body)))
                .header("content-type", "application/xml");
        }
        let (mut parts, ()) = builder.body(()).map_err(|e| e.to_string())?.into_parts();
        self.signer
            .sign_request(
                &reqsign_core::Context::new(),
                &mut parts,
                self.credential.as_ref(),
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        let answer = self
            .http
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        let headers = answer.headers().clone();
        let text = answer.text().await.map_err(|e| e.to_string())?;
        Ok((status, headers, text))
    }

    fn object_url(&self, path: &str, query: &str) -> String {
        let query = match query {
            "" => String::new(),
            q => format!("?{q}"),
        };
        match self.prefix.is_empty() {
            true => format!("{}/{path}{query}", self.bucket_url),
            false => format!("{}/{}/{path}{query}", self.bucket_url, self.prefix),
        }
    }

    /// True when the bucket was created with Object Lock enabled.
    pub async fn enabled(&self) -> Result<bool, String> {
        let url = format!("{}?object-lock", self.bucket_url);
        let (status, _, text) = self.send(http::Method::GET, url, Vec::new()).await?;
        match status {
            200 => Ok(text.contains("<ObjectLockEnabled>Enabled</ObjectLockEnabled>")),
            404 if text.contains("ObjectLockConfigurationNotFound") => Ok(false),
            _ => Err(answer_error(status, &text)),
        }
    }

    /// Sets the retention of the current version of `path` to `until`
    /// (Unix seconds).
    pub async fn retain(&self, path: &str, mode: RetentionMode, until: i64) -> Result<(), String> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode.s3_name(),
            rfc3339(until)
        );
        let url = self.object_url(path, "retention");
        let (status, _, text) = self.send(http::Method::PUT, url, body.into_bytes()).await?;
        match status {
            200..=299 => Ok(()),
            _ => Err(answer_error(status, &text)),
        }
    }

    /// The retention date of the current version of `path` (Unix seconds),
    /// if it has one: from the object's headers, as S3 answers a HEAD.
    pub async fn retention(&self, path: &str) -> Result<Option<i64>, String> {
        let url = self.object_url(path, "");
        let (status, headers, text) = self.send(http::Method::HEAD, url, Vec::new()).await?;
        match status {
            200 => Ok(headers
                .get("x-amz-object-lock-retain-until-date")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.parse::<opendal::raw::Timestamp>().ok())
                .map(|t| t.into_inner().as_second())),
            404 => Ok(None),
            _ => Err(answer_error(status, &text)),
        }
    }
}

/// The text between two markers.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

/// An S3 error answer in one line: its code and message.
fn answer_error(status: u16, text: &str) -> String {
    let code = between(text, "<Code>", "</Code>").unwrap_or("no error code");
    let message = between(text, "<Message>", "</Message>").unwrap_or("");
    format!("HTTP {status}, {code}: {message}")
}

/// `2026-11-26T20:00:00Z`.
fn rfc3339(unix: i64) -> String {
    opendal::raw::Timestamp::from_second(unix)
        .map(|t| t.into_inner().strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

//! Who may use the dashboard and the API, and protection against requests
//! a browser is tricked into sending.
//!
//! Without `[daemon] password-file` or `token-file` the daemon listens on
//! loopback only and answers only requests addressed to a loopback name
//! (against DNS rebinding). With them, every page and API call needs a
//! session (from the login form: a random id in an `HttpOnly`,
//! `SameSite=Strict` cookie) or the bearer token; `/healthz` stays open,
//! `/metrics` too with `metrics-public`.
//!
//! Every request that changes something (POST) must come from the daemon's
//! own origin when a browser says where it comes from (`Origin`,
//! `Sec-Fetch-Site`), and a browser's must carry the session's CSRF token
//! (form field `csrf` or header `X-CSRF-Token`). Bearer-token calls carry
//! no ambient credential, so they need neither.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use zeroize::Zeroizing;

use super::Shared;
use crate::config::DaemonConfig;
use crate::OpsError;

/// The session cookie's name.
const COOKIE: &str = "bunker_session";
/// How long a login lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The largest form a POST may carry (restore forms are small).
const MAX_FORM: usize = 64 * 1024;

/// Who made a request, as the handlers see it.
#[derive(Clone, Debug)]
pub(crate) enum Caller {
    /// No authentication configured (loopback only).
    Open { csrf: String },
    /// Signed in through the login form.
    Session { csrf: String },
    /// An API client with the bearer token.
    Token,
}

impl Caller {
    /// The token a page's forms must send back.
    pub(crate) fn csrf(&self) -> &str {
        match self {
            Caller::Open { csrf } | Caller::Session { csrf } => csrf,
            Caller::Token => "",
        }
    }

    /// True when signed in with a session (the page offers to sign out).
    pub(crate) fn has_session(&self) -> bool {
        matches!(self, Caller::Session { .. })
    }
}

struct Session {
    csrf: String,
    expires: Instant,
}

/// The daemon's authentication settings and sessions.
pub(crate) struct Auth {
    password_hash: Option<String>,
    token_hash: Option<blake3::Hash>,
    metrics_public: bool,
    secure_cookie: bool,
    /// The CSRF token of pages served without authentication.
    open_csrf: String,
    /// Sessions by the hash of their id (the id itself is kept nowhere).
    sessions: Mutex<HashMap<blake3::Hash, Session>>,
}

/// `n` random bytes as hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the system's random source");
    hex::encode(bytes)
}

/// An Argon2id hash of `password` in PHC form, for `[daemon] password-file`.
pub fn hash_password(password: &str) -> Result<String, OpsError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the system's random source");
    let salt = SaltString::encode_b64(&salt).map_err(|e| OpsError::Daemon(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| OpsError::Daemon(format!("cannot hash the password: {e}")))
}

impl Auth {
    /// Reads the password hash and token files `config` names.
    pub(crate) fn from_config(config: &DaemonConfig) -> Result<Auth, OpsError> {
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read_to_string(path)
                .map(|s| Zeroizing::new(s.trim().to_string()))
                .map_err(|e| OpsError::Daemon(format!("[daemon] {what} {}: {e}", path.display())))
        };
        let password_hash = match &config.password_file {
            Some(path) => {
                let text = read(path, "password-file")?;
                PasswordHash::new(&text).map_err(|_| {
                    OpsError::Daemon(format!(
                        "[daemon] password-file {} does not hold an Argon2 hash: make one with `bunker daemon hash-password`",
                        path.display()
                    ))
                })?;
                Some(text.to_string())
            }
            None => None,
        };
        let token_hash = match &config.token_file {
            Some(path) => {
                let token = read(path, "token-file")?;
                if token.len() < 16 {
                    return Err(OpsError::Daemon(format!(
                        "[daemon] token-file {}: the token is shorter than 16 characters",
                        path.display()
                    )));
                }
                Some(blake3::hash(token.as_bytes()))
            }
            None => None,
        };
        Ok(Auth {
            password_hash,
            token_hash,
            metrics_public: config.metrics_public,
            secure_cookie: config.tls_cert.is_some(),
            open_csrf: random_hex(16),
            sessions: Mutex::default(),
        })
    }

    /// True when callers must say who they are.
    pub(crate) fn enabled(&self) -> bool {
        self.password_hash.is_some() || self.token_hash.is_some()
    }

    /// True when the login form can sign anyone in.
    pub(crate) fn has_password(&self) -> bool {
        self.password_hash.is_some()
    }

    /// Checks `password` against the hash (slow by design: run it off the
    /// async threads).
    pub(crate) fn verify_password(&self, password: &str) -> bool {
        let Some(stored) = &self.password_hash else {
            return false;
        };
        PasswordHash::new(stored)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    }

    /// Starts a session; returns the `Set-Cookie` value.
    pub(crate) fn new_session(&self) -> String {
        let id = random_hex(32);
        let mut sessions = self.sessions.lock().expect("sessions");
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            blake3::hash(id.as_bytes()),
            Session {
                csrf: random_hex(16),
                expires: now + SESSION_LIFETIME,
            },
        );
        self.cookie(&id, SESSION_LIFETIME.as_secs())
    }

    /// Ends the request's session; returns the `Set-Cookie` value that
    /// clears it.
    pub(crate) fn end_session(&self, headers: &HeaderMap) -> String {
        if let Some(id) = cookie(headers, COOKIE) {
            self.sessions
                .lock()
                .expect("sessions")
                .remove(&blake3::hash(id.as_bytes()));
        }
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
            if self.secure_cookie { "; Secure" } else { "" }
        )
    }

    /// Who sent a request with these headers, if anyone known.
    fn identify(&self, headers: &HeaderMap) -> Option<Caller> {
        if !self.enabled() {
            return Some(Caller::Open {
                csrf: self.open_csrf.clone(),
            });
        }
        if let (Some(expected), Some(given)) = (self.token_hash, bearer(headers)) {
            // blake3::Hash compares in constant time.
            if blake3::hash(given.as_bytes()) == expected {
                return Some(Caller::Token);
            }
        }
        let id = cookie(headers, COOKIE)?;
        let sessions = self.sessions.lock().expect("sessions");
        let s = sessions.get(&blake3::hash(id.as_bytes()))?;
        (s.expires > Instant::now()).then(|| Caller::Session {
            csrf: s.csrf.clone(),
        })
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// True for `localhost` and loopback addresses, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why a state-changing request is refused for where it comes from.
fn foreign_origin(headers: &HeaderMap, host: &str, tls: bool) -> Option<String> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Some(format!("a {site} request may not change anything"));
        }
    }
    let origin = get("origin")?;
    let own = format!("{}://{host}", if tls { "https" } else { "http" });
    (!origin.eq_ignore_ascii_case(&own))
        .then(|| format!("a request from {origin} may not change anything here"))
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Paths anyone may fetch.
fn public(path: &str) -> bool {
    path == "/healthz" || path == "/login" || path.starts_with("/assets/")
}

/// The middleware in front of every route.
pub(crate) async fn guard(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let auth = &shared.auth;
    let path = request.uri().path().to_string();
    let headers = request.headers();
    // HTTP/2 carries the host in the URI's authority, HTTP/1.1 in `Host`.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default()
        .to_string();
    if !auth.enabled() && !loopback_host(&host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this daemon answers only requests to localhost, not to {host:?}"),
        );
    }
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes {
        if let Some(why) = foreign_origin(headers, &host, shared.tls) {
            return refuse(StatusCode::FORBIDDEN, why);
        }
    }
    if path == "/healthz" || (path == "/metrics" && auth.metrics_public) {
        return next.run(request).await;
    }
    let caller = auth.identify(headers);
    let Some(caller) = caller else {
        if public(&path) {
            return next.run(request).await;
        }
        if path.starts_with("/api/") || path == "/metrics" {
            let mut r = refuse(
                StatusCode::UNAUTHORIZED,
                "sign in or give the bearer token".into(),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        let next_page = percent_encoding::utf8_percent_encode(
            request.uri().path_and_query().map_or("/", |p| p.as_str()),
            percent_encoding::NON_ALPHANUMERIC,
        );
        return Redirect::to(&format!("/login?next={next_page}")).into_response();
    };
    let mut request = request;
    if changes && path != "/login" {
        let browser = ["origin", "sec-fetch-site", "cookie"]
            .iter()
            .any(|h| request.headers().contains_key(*h));
        let needs_token = match &caller {
            Caller::Token => false,
            Caller::Session { .. } => true,
            Caller::Open { .. } => browser,
        };
        if needs_token {
            let (given, rebuilt) = csrf_token(request).await;
            request = match rebuilt {
                Ok(r) => r,
                Err(r) => return r,
            };
            let ok = given.is_some_and(|g| {
                blake3::hash(g.as_bytes()) == blake3::hash(caller.csrf().as_bytes())
            });
            if !ok {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token: reload the page and try again".into(),
                );
            }
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The CSRF token a request carries (header, or field of a form body), and
/// the request again with its body restored.
async fn csrf_token(request: Request) -> (Option<String>, Result<Request, Response>) {
    if let Some(t) = request
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        return (Some(t.to_string()), Ok(request));
    }
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return (None, Ok(request));
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_FORM).await {
        Ok(b) => b,
        Err(_) => {
            return (
                None,
                Err(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "form too large".into(),
                )),
            )
        }
    };
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    (token, Ok(Request::from_parts(parts, Body::from(bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_are_told_from_others() {
        for ok in [
            "localhost",
            "localhost:8377",
            "127.0.0.1:1",
            "[::1]:80",
            "::1",
            "127.5.5.5",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:8377",
            "192.168.1.4",
            "",
            "localhost.evil.example",
            "[::2]:80",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn foreign_origins_are_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let host = "127.0.0.1:8377";
        assert!(foreign_origin(&headers(&[]), host, false).is_none());
        assert!(foreign_origin(
            &headers(&[("origin", "http://127.0.0.1:8377")]),
            host,
            false
        )
        .is_none());
        assert!(
            foreign_origin(&headers(&[("origin", "https://evil.example")]), host, false).is_some()
        );
        assert!(
            foreign_origin(&headers(&[("origin", "http://127.0.0.1:8377")]), host, true).is_some()
        );
        assert!(
            foreign_origin(&headers(&[("sec-fetch-site", "cross-site")]), host, false).is_some()
        );
        assert!(
            foreign_origin(&headers(&[("sec-fetch-site", "same-site")]), host, false).is_some()
        );
        assert!(
            foreign_origin(&headers(&[("sec-fetch-site", "same-origin")]), host, false).is_none()
        );
    }

    #[test]
    fn passwords_hash_and_verify_and_tokens_and_sessions_identify() {
        let dir = tempfile::tempdir().unwrap();
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        std::fs::write(dir.path().join("pw"), format!("{hash}\n")).unwrap();
        std::fs::write(dir.path().join("token"), "0123456789abcdef0123\n").unwrap();
        let config = DaemonConfig {
            password_file: Some(dir.path().join("pw")),
            token_file: Some(dir.path().join("token")),
            ..DaemonConfig::default()
        };
        let auth = Auth::from_config(&config).unwrap();
        assert!(auth.enabled());
        assert!(auth.verify_password("correct horse"));
        assert!(!auth.verify_password("correct horse "));

        let mut h = HeaderMap::new();
        assert!(auth.identify(&h).is_none());
        h.insert(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdef0123".parse().unwrap(),
        );
        assert!(matches!(auth.identify(&h), Some(Caller::Token)));
        h.insert(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdef0124".parse().unwrap(),
        );
        assert!(auth.identify(&h).is_none());

        let set = auth.new_session();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let id = set.split(';').next().unwrap().to_string();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("other=1; {id}").parse().unwrap());
        let Some(Caller::Session { csrf }) = auth.identify(&h) else {
            panic!("the session is known")
        };
        assert_eq!(csrf.len(), 32);
        let cleared = auth.end_session(&h);
        assert!(cleared.contains("Max-Age=0"));
        assert!(auth.identify(&h).is_none(), "signed out");

        std::fs::write(dir.path().join("pw"), "hunter2\n").unwrap();
        let e = Auth::from_config(&config).err().unwrap().to_string();
        assert!(e.contains("hash-password") && !e.contains("hunter2"), "{e}");
    }
}

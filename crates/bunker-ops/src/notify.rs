//! Notifications: a JSON POST per event to each webhook of `[notify]`, and
//! healthchecks.io-style pings per plan (`URL/start` when a run starts,
//! `URL` when it succeeds, `URL/fail` when it fails). Each is tried three
//! times; one that cannot be delivered is logged and never fails the run.
//!
//! The webhook body (documented in the README):
//! `{"event": "run_succeeded", "plan": "www", "host": "db1",
//!   "time": "2026-11-26T10:00:00Z", "message": "...", "details": {...}}`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::NotifyConfig;
use crate::report::rfc3339;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A run of a plan started.
    RunStarted,
    /// It succeeded.
    RunSucceeded,
    /// It failed.
    RunFailed,
    /// A drill passed.
    DrillPassed,
    /// A drill failed (or missed the RTO).
    DrillFailed,
    /// The plan's newest verified snapshot is older than its RPO.
    RpoBreached,
    /// The last measured recovery time exceeds the plan's RTO.
    RtoBreached,
    /// A check of the plan's repository found damage.
    CheckDamage,
}

impl Event {
    /// The name in the webhook body.
    pub fn name(self) -> &'static str {
        match self {
            Event::RunStarted => "run_started",
            Event::RunSucceeded => "run_succeeded",
            Event::RunFailed => "run_failed",
            Event::DrillPassed => "drill_passed",
            Event::DrillFailed => "drill_failed",
            Event::RpoBreached => "rpo_breached",
            Event::RtoBreached => "rto_breached",
            Event::CheckDamage => "check_damage",
        }
    }

    /// The healthchecks ping suffix for this event, if it is pinged.
    fn ping(self) -> Option<&'static str> {
        match self {
            Event::RunStarted => Some("/start"),
            Event::RunSucceeded => Some(""),
            Event::RunFailed => Some("/fail"),
            _ => None,
        }
    }
}

/// The webhook body for an event.
pub fn body(
    event: Event,
    plan: &str,
    host: &str,
    now_ns: i64,
    message: &str,
    details: Value,
) -> Value {
    json!({
        "event": event.name(),
        "plan": plan,
        "host": host,
        "time": rfc3339(now_ns),
        "message": message,
        "details": details,
    })
}

/// Sends an event to every webhook and, for runs, pings the plan's
/// healthcheck. Problems go to `log`; nothing is returned.
pub fn send(config: &NotifyConfig, event: Event, plan: &str, body: &Value, log: &dyn Fn(&str)) {
    if config.webhooks.is_empty() && !config.healthchecks.contains_key(plan) {
        return;
    }
    let client = match reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return log(&format!("notifications are off: {e}")),
    };
    let text = body.to_string();
    for url in &config.webhooks {
        deliver(log, url, || {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(text.clone())
                .send()
        });
    }
    if let (Some(base), Some(suffix)) = (config.healthchecks.get(plan), event.ping()) {
        let url = format!("{}{suffix}", base.trim_end_matches('/'));
        deliver(log, &url, || client.post(&url).body(text.clone()).send());
    }
}

/// Tries a request three times (after 0, 1 and 3 seconds).
fn deliver(
    log: &dyn Fn(&str),
    url: &str,
    send: impl Fn() -> reqwest::Result<reqwest::blocking::Response>,
) {
    let mut last = String::new();
    for wait in [0, 1, 2] {
        std::thread::sleep(Duration::from_secs(wait));
        match send() {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => last = format!("answered {}", r.status()),
            Err(e) => last = describe(&e),
        }
    }
    log(&format!(
        "notification to {} not delivered: {last}",
        redact(url)
    ));
}

/// What went wrong, without the URL reqwest's messages carry (a webhook
/// URL is a secret).
fn describe(e: &reqwest::Error) -> String {
    match e.status() {
        Some(s) => format!("answered {s}"),
        None if e.is_timeout() => "timed out".into(),
        None if e.is_connect() => "cannot connect".into(),
        None => "request failed".into(),
    }
}

/// `scheme://host/…`: a URL's path and query often hold its token.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or_default();
            format!("{scheme}://{host}/…")
        }
        None => "a webhook".into(),
    }
}

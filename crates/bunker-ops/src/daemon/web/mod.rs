//! The dashboard: HTML pages made on the server from what the JSON API
//! serves (the same functions answer both), so every page works without
//! JavaScript; a small embedded script adds live progress (server-sent
//! events) and refreshes a page when runs start or end. Nothing is
//! fetched from anywhere else: the style sheet and script are compiled
//! into the binary.

mod login;
mod overview;
mod plan;
mod snapshots;

use std::fmt::Write;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::auth::Caller;
use super::Shared;
use crate::report::html::escape;

/// The dashboard's routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(overview::show))
        .route("/plans/{name}", get(plan::show))
        .route("/plans/{name}/confirm/{action}", get(plan::confirm))
        .route("/plans/{name}/{action}", post(plan::act))
        .route("/snapshots", get(snapshots::list))
        .route("/snapshots/{repo}/{id}", get(snapshots::browse))
        .route(
            "/snapshots/{repo}/{id}/restore",
            get(snapshots::restore_form).post(snapshots::restore),
        )
        .route("/diff/{repo}", get(snapshots::diff))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
}

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("app.js");

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// What a page says about itself to the layout.
pub(crate) struct PageMeta<'a> {
    /// The `<title>` and first heading.
    pub title: &'a str,
    /// The caller (for the CSRF token and the sign-out button).
    pub caller: Option<&'a Caller>,
    /// Refreshed when runs start or end (the live script looks).
    pub live: bool,
    /// The daemon's run generation when the page was made.
    pub generation: u64,
}

/// A whole page: header, navigation, `body` as the main content.
pub(crate) fn page(meta: PageMeta, body: &str) -> Html<String> {
    let mut out = String::with_capacity(body.len() + 2048);
    let csrf = meta.caller.map_or("", |c| c.csrf());
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"csrf-token\" content=\"{}\"><title>{} · Bunker</title>\
<link rel=\"stylesheet\" href=\"/assets/style.css\"><script src=\"/assets/app.js\" defer></script></head>\
<body data-live=\"{}\" data-generation=\"{}\"><a class=\"skip\" href=\"#main\">Skip to content</a>\
<header><nav aria-label=\"Main\"><a class=\"brand\" href=\"/\">Bunker</a><a href=\"/\">Overview</a><a href=\"/snapshots\">Snapshots</a>",
        escape(csrf),
        escape(meta.title),
        meta.live,
        meta.generation,
    );
    if meta.caller.is_some_and(Caller::has_session) {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/logout\" class=\"signout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">Sign out</button></form>",
            escape(csrf)
        );
    }
    let _ = write!(
        out,
        "</nav></header><main id=\"main\" tabindex=\"-1\">{body}</main></body></html>"
    );
    Html(out)
}

/// A page that says something went wrong, with the status it deserves.
pub(crate) fn failure_page(
    caller: Option<&Caller>,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    let body = format!(
        "<h1>{}</h1><p class=\"problem\" role=\"alert\">{}</p><p><a href=\"javascript:history.back()\">Back</a> · <a href=\"/\">Overview</a></p>",
        escape(title),
        escape(message)
    );
    let meta = PageMeta {
        title,
        caller,
        live: false,
        generation: 0,
    };
    (status, page(meta, &body)).into_response()
}

/// Percent-encodes `s` for a URL's path segment or query value.
pub(crate) fn url(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_field(caller: Option<&Caller>) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(caller.map_or("", |c| c.csrf()))
    )
}

/// A status said in a word and a symbol as well as a colour.
pub(crate) fn status_badge(status: &str) -> String {
    let (class, symbol, word) = match status {
        "success" => ("ok", "✔", "succeeded"),
        "failure" => ("bad", "✘", "failed"),
        "skipped" => ("muted", "–", "skipped"),
        other => ("muted", "•", other),
    };
    format!(
        "<span class=\"badge {class}\"><span aria-hidden=\"true\">{symbol}</span> {word}</span>"
    )
}

/// A time (RFC 3339) as the page shows it: `2026-11-26 14:03:07 UTC`;
/// the machine-readable value goes in a `<time>` element.
pub(crate) fn time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => format!(
            "<time datetime=\"{}\">{}</time>",
            escape(rfc3339),
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
        ),
        Err(_) => escape(rfc3339),
    }
}

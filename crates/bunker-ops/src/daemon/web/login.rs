//! Signing in and out (only when `[daemon] password-file` is set).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{page, PageMeta};
use crate::daemon::auth::Caller;
use crate::daemon::Shared;
use crate::report::html::escape;

#[derive(Deserialize, Default)]
pub(super) struct Next {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub(super) struct Login {
    password: String,
    #[serde(default)]
    next: String,
}

/// Where to go after signing in: a path of this site only.
fn local(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/"
    }
}

fn login_page(shared: &Shared, next: &str, problem: Option<&str>) -> axum::response::Html<String> {
    let body = if shared.auth.has_password() {
        format!(
            "<h1>Sign in</h1>{}<form method=\"post\" action=\"/login\" class=\"stack narrow\">\
<input type=\"hidden\" name=\"next\" value=\"{}\">\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
<button type=\"submit\">Sign in</button></form>",
            problem.map_or(String::new(), |p| format!(
                "<p class=\"problem\" role=\"alert\">{}</p>",
                escape(p)
            )),
            escape(local(next))
        )
    } else {
        "<h1>Sign in</h1><p>This daemon has no password-file: API clients use the bearer token, and the dashboard is not offered.</p>".to_string()
    };
    page(
        PageMeta {
            title: "Sign in",
            caller: None,
            live: false,
            generation: 0,
        },
        &body,
    )
}

pub(super) async fn form(
    State(shared): State<Arc<Shared>>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<Next>,
) -> Response {
    if !shared.auth.enabled() || caller.is_some_and(|c| c.has_session()) {
        return Redirect::to(local(&q.next)).into_response();
    }
    login_page(&shared, &q.next, None).into_response()
}

pub(super) async fn submit(
    State(shared): State<Arc<Shared>>,
    Form(login): Form<Login>,
) -> Response {
    let checking = Arc::clone(&shared);
    let password = Zeroizing::new(login.password);
    let ok = tokio::task::spawn_blocking(move || checking.auth.verify_password(&password))
        .await
        .unwrap_or(false);
    if !ok {
        // Slows guessing; the hash itself is slow too.
        tokio::time::sleep(Duration::from_secs(1)).await;
        return (
            StatusCode::UNAUTHORIZED,
            login_page(&shared, &login.next, Some("Wrong password.")),
        )
            .into_response();
    }
    let cookie = shared.auth.new_session();
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(local(&login.next)),
    )
        .into_response()
}

pub(super) async fn logout(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let cleared = shared.auth.end_session(&headers);
    ([(header::SET_COOKIE, cleared)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(super::local("/plans/www"), "/plans/www");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "",
        ] {
            assert_eq!(super::local(bad), "/", "{bad}");
        }
    }
}

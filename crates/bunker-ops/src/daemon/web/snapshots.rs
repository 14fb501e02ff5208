//! `/snapshots`: the snapshots of a repository (filtered by plan, host, tag
//! and kind), a snapshot's tree one folder at a time with downloads, a
//! restore into an allowed folder (reviewed, then confirmed), and the
//! differences between two snapshots.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::Value;

use super::{csrf_field, failure_page, page, time, url, PageMeta};
use crate::daemon::api::{self, list_snapshots, DiffQuery, RestoreRequest, SnapshotQuery};
use crate::daemon::auth::Caller;
use crate::daemon::Shared;
use crate::report::html::{bytes, escape};

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    repository: Option<String>,
    #[serde(flatten)]
    filter: SnapshotQuery,
}

#[derive(Deserialize, Default)]
pub(super) struct PathQuery {
    #[serde(default)]
    path: String,
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn meta<'a>(title: &'a str, caller: Option<&'a Caller>) -> PageMeta<'a> {
    PageMeta {
        title,
        caller,
        live: false,
        generation: 0,
    }
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<ListQuery>,
) -> Response {
    let caller = caller.map(|c| c.0);
    let config = shared.config();
    let repositories: Vec<String> = config.repositories.keys().cloned().collect();
    let Some(repo) = q
        .repository
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(|| repositories.first().cloned())
    else {
        return failure_page(
            caller.as_ref(),
            StatusCode::NOT_FOUND,
            "Snapshots",
            "The config names no repository.",
        );
    };
    let f = &q.filter;
    let option = |value: &str, chosen: Option<&String>| {
        format!(
            "<option value=\"{0}\"{1}>{0}</option>",
            escape(value),
            if chosen.is_some_and(|c| c == value) {
                " selected"
            } else {
                ""
            }
        )
    };
    let mut body = String::from(
        "<h1>Snapshots</h1><form method=\"get\" action=\"/snapshots\" class=\"filters\">",
    );
    let _ = write!(
        body,
        "<label>Repository <select name=\"repository\">{}</select></label>",
        repositories
            .iter()
            .map(|r| option(r, Some(&repo)))
            .collect::<String>()
    );
    let _ = write!(
        body,
        "<label>Plan <select name=\"plan\"><option value=\"\">any</option>{}</select></label>",
        config
            .plans
            .keys()
            .map(|p| option(p, f.plan.as_ref()))
            .collect::<String>()
    );
    for (name, label, value) in [("host", "Host", &f.host), ("tag", "Tag", &f.tag)] {
        let _ = write!(
            body,
            "<label>{label} <input name=\"{name}\" value=\"{}\" size=\"12\"></label>",
            escape(value.as_deref().unwrap_or_default())
        );
    }
    let _ = write!(
        body,
        "<label>Kind <select name=\"kind\"><option value=\"\">any</option>{}</select></label><button type=\"submit\">Filter</button></form>",
        ["files", "postgres", "mysql"].iter().map(|k| option(k, f.kind.as_ref())).collect::<String>()
    );
    match list_snapshots(Arc::clone(&shared), repo.clone(), q.filter.clone()).await {
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"problem\" role=\"alert\">{}</p>",
                escape(&e.message)
            );
        }
        Ok(list) => {
            let _ = write!(
                body,
                "<form method=\"get\" action=\"/diff/{}\"><div class=\"scroll\"><table class=\"snapshots\"><caption>{} snapshot(s) in {}, newest first. Pick two and compare them.</caption><thead><tr><th scope=\"col\">Older</th><th scope=\"col\">Newer</th><th scope=\"col\">Time</th><th scope=\"col\">Id</th><th scope=\"col\">Host</th><th scope=\"col\">Kind</th><th scope=\"col\">Paths</th><th scope=\"col\">Tags</th><th scope=\"col\">Size</th></tr></thead><tbody>",
                url(&repo),
                list.len(),
                escape(&repo)
            );
            for s in &list {
                let id = text(s, "id");
                let short = text(s, "short_id");
                let _ = write!(
                    body,
                    "<tr data-snapshot=\"{id}\"><td><input type=\"radio\" name=\"a\" value=\"{id}\" aria-label=\"compare from {short}\"></td><td><input type=\"radio\" name=\"b\" value=\"{id}\" aria-label=\"compare to {short}\"></td><td>{}</td><td><a href=\"/snapshots/{}/{id}\"><code>{short}</code></a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    time(&text(s, "time")),
                    url(&repo),
                    escape(&text(s, "hostname")),
                    escape(&text(s, "kind")),
                    escape(&strings(&s["paths"]).join(", ")),
                    escape(&strings(&s["tags"]).join(", ")),
                    bytes(s["summary"]["total_bytes"].as_f64().unwrap_or_default()),
                );
            }
            body.push_str("</tbody></table></div><button type=\"submit\">Compare</button></form>");
        }
    }
    page(meta("Snapshots", caller.as_ref()), &body).into_response()
}

/// Links to each folder above `path`.
fn breadcrumbs(repo: &str, id: &str, path: &str) -> String {
    let mut out = format!(
        "<nav aria-label=\"Folder\" class=\"crumbs\"><a href=\"/snapshots/{}/{id}\">/</a>",
        url(repo)
    );
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        let _ = write!(
            out,
            " <a href=\"/snapshots/{}/{id}?path={}\">{}</a> /",
            url(repo),
            url(&at),
            escape(part)
        );
    }
    out.push_str("</nav>");
    out
}

pub(super) async fn browse(
    State(shared): State<Arc<Shared>>,
    caller: Option<Extension<Caller>>,
    Path((repo, id)): Path<(String, String)>,
    Query(q): Query<PathQuery>,
) -> Response {
    let caller = caller.map(|c| c.0);
    let tree = match api::tree(
        Arc::clone(&shared),
        repo.clone(),
        id.clone(),
        q.path.clone(),
    )
    .await
    {
        Ok(t) => t,
        Err(e) => return failure_page(caller.as_ref(), e.status, "Snapshot", &e.message),
    };
    let snap = &tree["snapshot"];
    let full = text(snap, "id");
    let path = text(&tree, "path");
    let mut body = format!(
        "<h1>Snapshot <code>{}</code></h1><p>{} · {} · {} · {}</p>{}",
        escape(&text(snap, "short_id")),
        time(&text(snap, "time")),
        escape(&text(snap, "hostname")),
        escape(&strings(&snap["paths"]).join(", ")),
        escape(&strings(&snap["tags"]).join(", ")),
        breadcrumbs(&repo, &full, &path)
    );
    if path == "/" {
        let links: Vec<String> = strings(&snap["paths"])
            .iter()
            .map(|p| {
                format!(
                    "<a class=\"backed-up\" href=\"/snapshots/{}/{full}?path={}\">{}</a>",
                    url(&repo),
                    url(p),
                    escape(p)
                )
            })
            .collect();
        let _ = write!(body, "<p>Backed up: {}</p>", links.join(", "));
    }
    let file_link = |p: &str| {
        format!(
            "/api/repositories/{}/snapshots/{full}/file?path={}",
            url(&repo),
            url(p)
        )
    };
    let restore_link =
        |p: &str| format!("/snapshots/{}/{full}/restore?path={}", url(&repo), url(p));
    let what = if path == "/" {
        "everything"
    } else {
        "this folder"
    };
    let _ = write!(
        body,
        "<p class=\"actions\"><a class=\"button\" href=\"{}\">Restore {}</a> <a href=\"{}\" download>Download {} as tar</a></p>",
        restore_link(&path),
        what,
        file_link(&path),
        what,
    );
    body.push_str("<div class=\"scroll\"><table class=\"tree\"><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Type</th><th scope=\"col\">Size</th><th scope=\"col\">Modified</th><th scope=\"col\">Actions</th></tr></thead><tbody>");
    for e in tree["entries"].as_array().into_iter().flatten() {
        let kind = text(e, "type");
        let p = text(e, "path");
        let name = escape(&text(e, "name"));
        let shown = match kind.as_str() {
            "dir" => format!(
                "<a href=\"/snapshots/{}/{full}?path={}\">{name}/</a>",
                url(&repo),
                url(&p)
            ),
            "symlink" => format!("{name} → {}", escape(&text(e, "link_target"))),
            _ => name.clone(),
        };
        let actions = match kind.as_str() {
            "file" => format!(
                "<a href=\"{}\" download data-download=\"{}\">Download</a> · <a href=\"{}\">Restore</a>",
                file_link(&p),
                escape(&p),
                restore_link(&p)
            ),
            "dir" => format!("<a href=\"{}\">Restore</a>", restore_link(&p)),
            _ => String::new(),
        };
        let _ = write!(
            body,
            "<tr><td>{shown}</td><td>{}</td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
            escape(&kind),
            if kind == "file" {
                bytes(e["size"].as_f64().unwrap_or_default())
            } else {
                String::new()
            },
            time(&text(e, "mtime")),
        );
    }
    body.push_str("</tbody></table></div>");
    page(meta("Snapshot", caller.as_ref()), &body).into_response()
}

pub(super) async fn restore_form(
    State(shared): State<Arc<Shared>>,
    caller: Option<Extension<Caller>>,
    Path((repo, id)): Path<(String, String)>,
    Query(q): Query<PathQuery>,
) -> Response {
    let caller = caller.map(|c| c.0);
    let roots = shared.config().daemon.restore_roots.clone();
    let path = if q.path.is_empty() {
        "/".to_string()
    } else {
        q.path.clone()
    };
    let body = if roots.is_empty() {
        "<h1>Restore</h1><p class=\"problem\">Restoring from the dashboard is off: list the folders it may write in <code>[daemon] restore-roots</code> in the config.</p>".to_string()
    } else {
        format!(
            "<h1>Restore <code>{}</code></h1><p>From snapshot <code>{}</code> of repository {}, onto this daemon's host. Allowed folders: {}.</p>\
<form method=\"post\" action=\"/snapshots/{}/{}/restore\" class=\"stack\">{}<input type=\"hidden\" name=\"path\" value=\"{}\"><input type=\"hidden\" name=\"dry_run\" value=\"true\">\
<label for=\"target\">Restore into folder</label><input id=\"target\" name=\"target\" value=\"{}\" required size=\"50\">\
<button type=\"submit\">Review</button></form>",
            escape(&path),
            escape(&id),
            escape(&repo),
            escape(&roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")),
            url(&repo),
            url(&id),
            csrf_field(caller.as_ref()),
            escape(&path),
            escape(&roots[0].display().to_string()),
        )
    };
    page(meta("Restore", caller.as_ref()), &body).into_response()
}

pub(super) async fn restore(
    State(shared): State<Arc<Shared>>,
    caller: Option<Extension<Caller>>,
    Path((repo, id)): Path<(String, String)>,
    Form(request): Form<RestoreRequest>,
) -> Response {
    let caller = caller.map(|c| c.0);
    let reviewing = request.dry_run;
    let result = api::restore(
        Arc::clone(&shared),
        repo.clone(),
        id.clone(),
        request.clone(),
    )
    .await;
    let v = match result {
        Ok(v) => v,
        Err(e) => return failure_page(caller.as_ref(), e.status, "Restore refused", &e.message),
    };
    let target = escape(&text(&v, "target"));
    let body = if reviewing {
        let overwrites = v["overwrites"].as_u64().unwrap_or_default();
        let listed: String = strings(&v["overwritten"])
            .iter()
            .map(|p| format!("<li><code>{}</code></li>", escape(p)))
            .collect();
        format!(
            "<h1>Restore into {target}?</h1><p>Restoring <code>{}</code> from snapshot <code>{}</code> into <code>{target}</code> creates {} new entries{}.</p>{}\
<form method=\"post\" action=\"/snapshots/{}/{}/restore\">{}<input type=\"hidden\" name=\"path\" value=\"{}\"><input type=\"hidden\" name=\"target\" value=\"{}\">{}\
<button type=\"submit\">{}</button> <a href=\"/snapshots/{}/{}\">Cancel</a></form>",
            escape(&request.path),
            escape(&id),
            v["creates"].as_u64().unwrap_or_default(),
            if overwrites > 0 {
                format!(" and <strong>overwrites {overwrites} existing file(s)</strong>")
            } else {
                ", overwriting nothing".to_string()
            },
            if listed.is_empty() { String::new() } else { format!("<ul>{listed}</ul>") },
            url(&repo),
            url(&id),
            csrf_field(caller.as_ref()),
            escape(&request.path),
            escape(&request.target.display().to_string()),
            if overwrites > 0 { "<input type=\"hidden\" name=\"overwrite\" value=\"true\">" } else { "" },
            if overwrites > 0 { "Restore and overwrite" } else { "Restore" },
            url(&repo),
            url(&id),
        )
    } else {
        let errors = strings(&v["errors"]);
        format!(
            "<h1>Restored</h1><p role=\"status\">{} file(s) ({}) written into <code>{target}</code>, {} already identical, {} verified against the snapshot.</p>{}<p><a href=\"/snapshots/{}/{}\">Back to the snapshot</a></p>",
            v["files"].as_u64().unwrap_or_default(),
            bytes(v["bytes"].as_f64().unwrap_or_default()),
            v["unchanged"].as_u64().unwrap_or_default(),
            v["verified"].as_u64().unwrap_or_default(),
            if errors.is_empty() {
                String::new()
            } else {
                format!("<p class=\"problem\" role=\"alert\">{} problem(s): {}</p>", errors.len(), escape(&errors.join("; ")))
            },
            url(&repo),
            url(&id),
        )
    };
    page(meta("Restore", caller.as_ref()), &body).into_response()
}

pub(super) async fn diff(
    State(shared): State<Arc<Shared>>,
    caller: Option<Extension<Caller>>,
    Path(repo): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let caller = caller.map(|c| c.0);
    let v = match api::diff(Arc::clone(&shared), repo.clone(), q).await {
        Ok(v) => v,
        Err(e) => return failure_page(caller.as_ref(), e.status, "Compare", &e.message),
    };
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    let mut body = format!(
        "<h1>Compare</h1><p>From <code>{}</code> ({}) to <code>{}</code> ({}): {} change(s).</p>",
        escape(&text(&v["a"], "short_id")),
        time(&text(&v["a"], "time")),
        escape(&text(&v["b"], "short_id")),
        time(&text(&v["b"], "time")),
        changes.len()
    );
    body.push_str("<div class=\"scroll\"><table class=\"diff\"><thead><tr><th scope=\"col\">Change</th><th scope=\"col\">Path</th><th scope=\"col\">Type</th></tr></thead><tbody>");
    for c in changes.iter().take(5000) {
        let _ = write!(
            body,
            "<tr class=\"{}\"><td><span aria-hidden=\"true\">{}</span> {}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&text(c, "change")),
            escape(&text(c, "mark")),
            escape(&text(c, "change")),
            escape(&text(c, "path")),
            escape(&text(c, "type")),
        );
    }
    body.push_str("</tbody></table></div>");
    page(meta("Compare", caller.as_ref()), &body).into_response()
}

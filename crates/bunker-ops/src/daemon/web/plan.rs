//! `/plans/{name}`: a plan's state, charts and run history; and the
//! actions (run, drill, check now), each confirmed on a page of its own.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use bunker_engine::format::run_record::RunKind;
use serde::Deserialize;
use serde_json::Value;

use super::overview::{light, live_block, reasons, target_figures};
use super::{csrf_field, failure_page, page, status_badge, time, url, PageMeta};
use crate::daemon::api::{plan_runs, plan_views, queue, report, PlanView};
use crate::daemon::auth::Caller;
use crate::daemon::Shared;
use crate::report::html::{bytes, chart, duration, escape};
use crate::report::RunPoint;

#[derive(Deserialize, Default)]
pub(super) struct Asked {
    asked: Option<String>,
}

/// The actions, by the name in their URL.
fn action(name: &str) -> Option<(RunKind, &'static str, &'static str)> {
    match name {
        "run" => Some((RunKind::Backup, "Run a backup", "Run now")),
        "drill" => Some((RunKind::Drill, "Run a restore drill", "Drill now")),
        "check" => Some((RunKind::Check, "Check the repository", "Check now")),
        _ => None,
    }
}

fn find(shared: &Shared, name: &str) -> Option<PlanView> {
    plan_views(shared).into_iter().find(|p| p.name == name)
}

pub(super) async fn show(
    State(shared): State<Arc<Shared>>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    Query(asked): Query<Asked>,
) -> Response {
    let caller = caller.map(|c| c.0);
    let generation = shared.generation();
    let Some(view) = find(&shared, &name) else {
        return failure_page(
            caller.as_ref(),
            StatusCode::NOT_FOUND,
            "No such plan",
            &format!("The config has no plan named {name:?}."),
        );
    };
    let report = report(Arc::clone(&shared)).await;
    let figures = report
        .as_ref()
        .ok()
        .and_then(|r| r.plans.iter().find(|p| p.name == name).cloned());
    let runs = plan_runs(Arc::clone(&shared), name.clone()).await;

    let mut body = format!(
        "<h1>Plan {} {}</h1>",
        escape(&name),
        figures
            .as_ref()
            .map_or(String::new(), |f| light(f.health.level))
    );
    if let Some(kind) = asked.asked.as_deref().and_then(action) {
        let _ = write!(
            body,
            "<p class=\"notice\" role=\"status\">{} asked for: it starts within a second and shows below; its result appears under “Last results”.</p>",
            kind.1
        );
    }
    if let Some(f) = &figures {
        body.push_str(&reasons(f));
    }
    body.push_str(&live_block(&view));
    body.push_str("<p class=\"actions\">");
    for a in ["run", "drill", "check"] {
        let (_, _, label) = action(a).expect("known");
        if a == "drill" && !view.has_drill {
            continue;
        }
        let _ = write!(
            body,
            "<a class=\"button\" href=\"/plans/{}/confirm/{a}\">{label}</a> ",
            url(&name)
        );
    }
    let _ = write!(
        body,
        "<a href=\"/snapshots?repository={}&amp;plan={}\">Snapshots of this plan</a></p>",
        url(&view.repository),
        url(&name)
    );

    body.push_str("<dl class=\"figures\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(body, "<dt>{k}</dt><dd>{v}</dd>");
    };
    row(
        "Protects",
        escape(
            &view
                .paths
                .iter()
                .chain(&view.databases)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        ),
    );
    row("Repository", escape(&view.repository));
    if !view.copy_to.is_empty() {
        row("Copied to", escape(&view.copy_to.join(", ")));
    }
    row(
        "Schedule",
        view.schedule
            .as_deref()
            .map_or("none (runs only when asked)".into(), escape),
    );
    if let Some(f) = &figures {
        for (k, v) in target_figures(f) {
            row(k, v);
        }
        row("Protected", bytes(f.protected_bytes as f64));
        row("Snapshots", f.snapshots.to_string());
    }
    for (what, due) in [
        ("Next backup", &view.next_backup),
        ("Next drill", &view.next_drill),
        ("Next check", &view.next_check),
    ] {
        if let Some(d) = due {
            row(what, time(d));
        }
    }
    body.push_str("</dl>");
    if let Some(f) = &figures {
        if !f.mirrors.is_empty() {
            body.push_str("<h2>Mirrors</h2>");
            crate::report::html::mirrors(&mut body, f);
        }
    }

    if !view.last.is_empty() {
        body.push_str("<h2>Last results on this daemon</h2><ul class=\"results\">");
        for (kind, last) in &view.last {
            let _ = write!(
                body,
                "<li data-result=\"{kind}\">{kind}: {} at {} — {}</li>",
                status_badge(last.status),
                time(&last.finished),
                escape(&last.message)
            );
        }
        body.push_str("</ul>");
    }

    if let Some(f) = &figures {
        body.push_str("<h2>Over time</h2><div class=\"charts\">");
        let backups: Vec<&RunPoint> = f.history.iter().filter(|r| r.kind == "backup").collect();
        chart(
            &mut body,
            "Backup run time (seconds); ✘ marks a failed run",
            &backups,
            |r| Some(r.seconds),
            None,
        );
        chart(
            &mut body,
            "Data added per backup (MiB)",
            &backups,
            |r| Some(r.bytes_added as f64 / 1048576.0),
            None,
        );
        let mut stored = 0.0;
        let growth: Vec<RunPoint> = backups
            .iter()
            .map(|r| {
                stored += r.bytes_added as f64 / 1048576.0;
                RunPoint {
                    seconds: stored,
                    ..(*r).clone()
                }
            })
            .collect();
        chart(
            &mut body,
            "Data stored by the plan's backups, cumulative (MiB)",
            &growth.iter().collect::<Vec<_>>(),
            |r| Some(r.seconds),
            None,
        );
        let drills: Vec<&RunPoint> = f.history.iter().filter(|r| r.kind == "drill").collect();
        chart(
            &mut body,
            "Measured recovery time (seconds) against the RTO target (dashed)",
            &drills,
            |r| r.rto_seconds,
            f.rto_target_seconds.map(|t| t as f64),
        );
        body.push_str("</div>");
    }

    match &runs {
        Ok(runs) => {
            history(&mut body, runs);
            drills(&mut body, runs);
        }
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"problem\" role=\"alert\">The history cannot be read: {}</p>",
                escape(&e.message)
            );
        }
    }
    let meta = PageMeta {
        title: &format!("Plan {name}"),
        caller: caller.as_ref(),
        live: true,
        generation,
    };
    page(meta, &body).into_response()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn history(out: &mut String, runs: &[Value]) {
    out.push_str("<h2>Run history</h2><div class=\"scroll\"><table class=\"runs\"><thead><tr><th scope=\"col\">Started</th><th scope=\"col\">Kind</th><th scope=\"col\">Status</th><th scope=\"col\">Took</th><th scope=\"col\">Data</th><th scope=\"col\">Added</th><th scope=\"col\">Messages</th></tr></thead><tbody>");
    if runs.is_empty() {
        out.push_str("<tr><td colspan=\"7\">No runs recorded yet.</td></tr>");
    }
    for r in runs.iter().rev().take(200) {
        let messages: Vec<String> = r["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|x| x.as_str()).map(escape).collect())
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr data-kind=\"{}\" data-status=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&text(r, "kind")),
            escape(&text(r, "status")),
            time(&text(r, "started")),
            escape(&text(r, "kind")),
            status_badge(&text(r, "status")),
            duration(r["seconds"].as_f64().unwrap_or_default()),
            bytes(r["bytes"].as_f64().unwrap_or_default()),
            bytes(r["bytes_added"].as_f64().unwrap_or_default()),
            messages.join("<br>")
        );
    }
    out.push_str("</tbody></table></div>");
}

fn drills(out: &mut String, runs: &[Value]) {
    let drills: Vec<&Value> = runs.iter().filter(|r| r["kind"] == "drill").collect();
    if drills.is_empty() {
        return;
    }
    out.push_str("<h2>Drills</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">Started</th><th scope=\"col\">Status</th><th scope=\"col\">Recovery time</th><th scope=\"col\">Phases</th></tr></thead><tbody>");
    for r in drills.iter().rev().take(50) {
        let phases: Vec<String> = r["phases"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|p| {
                        format!(
                            "{} {}",
                            escape(p["name"].as_str().unwrap_or_default()),
                            duration(p["seconds"].as_f64().unwrap_or_default())
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(&text(r, "started")),
            status_badge(&text(r, "status")),
            r["rto_seconds"].as_f64().map_or("–".into(), duration),
            phases.join(" · ")
        );
    }
    out.push_str("</tbody></table></div>");
}

pub(super) async fn confirm(
    State(shared): State<Arc<Shared>>,
    caller: Option<Extension<Caller>>,
    Path((name, what)): Path<(String, String)>,
) -> Response {
    let caller = caller.map(|c| c.0);
    let (Some(view), Some((_, title, label))) = (find(&shared, &name), action(&what)) else {
        return failure_page(
            caller.as_ref(),
            StatusCode::NOT_FOUND,
            "Not found",
            "No such plan or action.",
        );
    };
    let what_it_does = match what.as_str() {
        "run" => format!(
            "It backs up {} into repository {}{}, then applies the plan's retention.",
            escape(&view.paths.iter().chain(&view.databases).cloned().collect::<Vec<_>>().join(", ")),
            escape(&view.repository),
            if view.copy_to.is_empty() { String::new() } else { format!(" and copies to {}", escape(&view.copy_to.join(", "))) }
        ),
        "drill" => "It restores the newest snapshot into a scratch place, verifies it and measures the recovery time; nothing of the plan's data is touched.".into(),
        _ => format!("It reads repository {} and reports any damage; nothing is changed.", escape(&view.repository)),
    };
    let body = format!(
        "<h1>{title} of plan {}?</h1><p>{what_it_does}</p>\
<form method=\"post\" action=\"/plans/{}/{what}\">{}<button type=\"submit\">{label}</button> <a href=\"/plans/{}\">Cancel</a></form>",
        escape(&name),
        url(&name),
        csrf_field(caller.as_ref()),
        url(&name),
    );
    let meta = PageMeta {
        title,
        caller: caller.as_ref(),
        live: false,
        generation: shared.generation(),
    };
    page(meta, &body).into_response()
}

pub(super) async fn act(
    State(shared): State<Arc<Shared>>,
    caller: Option<Extension<Caller>>,
    Path((name, what)): Path<(String, String)>,
) -> Response {
    let caller = caller.map(|c| c.0);
    let Some((kind, title, _)) = action(&what) else {
        return failure_page(
            caller.as_ref(),
            StatusCode::NOT_FOUND,
            "Not found",
            "No such action.",
        );
    };
    match queue(&shared, &name, kind) {
        Ok(()) => Redirect::to(&format!("/plans/{}?asked={what}", url(&name))).into_response(),
        Err(e) => failure_page(caller.as_ref(), e.status, title, &e.message),
    }
}

//! `/`: one card per plan answering "can we recover, and how fast?", and
//! the repositories with their size and cost.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::{page, time, url, PageMeta};
use crate::daemon::api::{plan_views, report, PlanView};
use crate::daemon::auth::Caller;
use crate::daemon::Shared;
use crate::report::html::{bytes, duration, escape};
use crate::report::{HealthLevel, PlanReport, Rates, Report};

pub(super) async fn show(
    State(shared): State<Arc<Shared>>,
    caller: Option<Extension<Caller>>,
) -> Response {
    let caller = caller.map(|c| c.0);
    let generation = shared.generation();
    let views = plan_views(&shared);
    let report = report(Arc::clone(&shared)).await;
    let mut body = String::from("<h1>Can we recover?</h1>");
    match &report {
        Ok(r) => {
            let _ = write!(
                body,
                "<p class=\"muted\">Figures from the repositories, made {}.</p>",
                time(&r.generated_at)
            );
        }
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"problem\" role=\"alert\">The report cannot be made: {}</p>",
                escape(&e.message)
            );
        }
    }
    if views.is_empty() {
        body.push_str("<p>No plans in the config yet.</p>");
    }
    body.push_str("<div class=\"cards\">");
    for view in &views {
        let figures = report
            .as_ref()
            .ok()
            .and_then(|r| r.plans.iter().find(|p| p.name == view.name));
        card(&mut body, view, figures, report.as_ref().ok().map(|r| &**r));
    }
    body.push_str("</div>");
    if let Ok(r) = &report {
        repositories(&mut body, r);
    }
    let meta = PageMeta {
        title: "Overview",
        caller: caller.as_ref(),
        live: true,
        generation,
    };
    page(meta, &body).into_response()
}

/// The light: a colour, a symbol and a word, never the colour alone.
pub(crate) fn light(level: HealthLevel) -> String {
    let (class, symbol) = match level {
        HealthLevel::Green => ("green", "✔"),
        HealthLevel::Amber => ("amber", "▲"),
        HealthLevel::Red => ("red", "✘"),
        HealthLevel::Unknown => ("unknown", "?"),
    };
    format!(
        "<span class=\"light {class}\" data-health=\"{class}\"><span aria-hidden=\"true\">{symbol}</span> {}</span>",
        level.word()
    )
}

fn rates(r: &Rates) -> String {
    let one = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.0}%", v * 100.0));
    format!("{} · {} · {}", one(r.d7), one(r.d30), one(r.d90))
}

/// Against a target: the value, the target, and met or missed in words.
fn against(value: Option<f64>, target: Option<u64>, met: Option<bool>) -> String {
    let value = value.map_or("none".to_string(), duration);
    let verdict = match met {
        Some(true) => "<span class=\"ok\">✔ met</span>",
        Some(false) => "<span class=\"bad\">✘ missed</span>",
        None => "",
    };
    match target {
        Some(t) => format!(
            "{value} <small>target {}</small> {verdict}",
            duration(t as f64)
        ),
        None => format!("{value} <small>no target</small>"),
    }
}

/// Why the light is not green, one item each.
pub(crate) fn reasons(f: &PlanReport) -> String {
    if f.health.reasons.is_empty() {
        return String::new();
    }
    let items: String = f
        .health
        .reasons
        .iter()
        .map(|r| format!("<li>{}</li>", escape(r)))
        .collect();
    format!("<ul class=\"reasons\">{items}</ul>")
}

/// The figures judged against the targets, as label and value.
pub(crate) fn target_figures(f: &PlanReport) -> [(&'static str, String); 4] {
    [
        (
            "RPO now",
            against(f.rpo_seconds, f.rpo_target_seconds, f.rpo_met),
        ),
        (
            "RTO (last drill)",
            against(f.rto_seconds, f.rto_target_seconds, f.rto_met),
        ),
        ("Backups OK, 7/30/90 d", rates(&f.backup_success_rate)),
        ("Drills passed, 7/30/90 d", rates(&f.restore_success_rate)),
    ]
}

/// A running operation, updated in place by the live script.
pub(crate) fn live_block(view: &PlanView) -> String {
    let inner = match &view.running {
        Some(r) => {
            let p = &r.progress;
            let pct =
                (p.bytes_total > 0).then(|| p.bytes_done as f64 / p.bytes_total as f64 * 100.0);
            format!(
                "<strong>{} running</strong> since {}: {} of {} files, {} of {}{}",
                escape(r.kind),
                time(&r.started),
                p.files_done,
                p.files_total,
                bytes(p.bytes_done as f64),
                bytes(p.bytes_total as f64),
                pct.map_or(String::new(), |v| format!(" ({v:.0}%)"))
            )
        }
        None if !view.queued.is_empty() => {
            format!("<strong>queued:</strong> {}", view.queued.join(", "))
        }
        None => String::new(),
    };
    format!(
        "<p class=\"live\" data-live-plan=\"{}\" aria-live=\"polite\">{inner}</p>",
        escape(&view.name)
    )
}

fn card(out: &mut String, view: &PlanView, figures: Option<&PlanReport>, report: Option<&Report>) {
    let name = escape(&view.name);
    let _ = write!(
        out,
        "<article class=\"card\" data-plan=\"{name}\"><h2><a href=\"/plans/{}\">{name}</a> {}</h2>",
        url(&view.name),
        figures.map_or_else(|| light(HealthLevel::Unknown), |f| light(f.health.level))
    );
    if let Some(f) = figures {
        out.push_str(&reasons(f));
    }
    out.push_str(&live_block(view));
    out.push_str("<dl class=\"figures\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(out, "<dt>{k}</dt><dd>{v}</dd>");
    };
    if let Some(f) = figures {
        for (k, v) in target_figures(f) {
            row(k, v);
        }
        row(
            "Last backup",
            f.last_backup.as_deref().map_or("never".into(), time),
        );
    }
    row(
        "Next backup",
        view.next_backup
            .as_deref()
            .map_or("not scheduled".into(), time),
    );
    if let Some(f) = figures {
        let stored = report
            .and_then(|r| r.repositories.iter().find(|x| x.name == f.repository))
            .map_or("–".to_string(), |x| bytes(x.size_bytes as f64));
        row(
            "Protected / stored",
            format!(
                "{} protected · {} in {}",
                bytes(f.protected_bytes as f64),
                stored,
                escape(&f.repository)
            ),
        );
    }
    out.push_str("</dl></article>");
}

fn repositories(out: &mut String, r: &Report) {
    out.push_str("<h2>Repositories</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Stored</th><th scope=\"col\">Deduplication</th><th scope=\"col\">Compression</th><th scope=\"col\">Monthly cost</th></tr></thead><tbody>");
    for x in &r.repositories {
        match &x.error {
            Some(e) => {
                let _ = write!(
                    out,
                    "<tr><th scope=\"row\">{}</th><td colspan=\"4\" class=\"bad\">✘ cannot be read: {}</td></tr>",
                    escape(&x.name),
                    escape(e)
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<tr><th scope=\"row\"><a href=\"/snapshots?repository={}\">{}</a></th><td>{}</td><td>{:.2}×</td><td>{:.2}×</td><td>${:.2}</td></tr>",
                    url(&x.name),
                    escape(&x.name),
                    bytes(x.size_bytes as f64),
                    x.deduplication_ratio,
                    x.compression_ratio,
                    x.monthly_cost
                );
            }
        }
    }
    out.push_str("</tbody></table></div>");
}

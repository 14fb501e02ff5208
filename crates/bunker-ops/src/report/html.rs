//! The report as one self-contained HTML file: no script, no style sheet
//! or font fetched from anywhere, charts as inline SVG. Status is said in
//! words as well as colours.

use std::fmt::Write;

use super::{PlanReport, Report, RunPoint};

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1d2430;background:#fff}\
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccd}\
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .8rem .2rem 0;text-align:left;vertical-align:top}\
.met{color:#17663a}.missed{color:#a4161a;font-weight:600}.none{color:#666}\
svg{display:block;max-width:100%;height:auto;margin:.5rem 0}\
@media (prefers-color-scheme:dark){body{background:#111418;color:#e4e8ee}.met{color:#5fd38d}.missed{color:#ff7b7b}.none{color:#999}}";

/// Renders `report` as an HTML document.
pub fn html(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Bunker report</title><style>{STYLE}</style></head><body><h1>Bunker recoverability report</h1><p>Made {} over the last {}.</p>",
        escape(&report.generated_at),
        duration(report.since_seconds as f64)
    );
    for p in &report.plans {
        plan(&mut out, p);
    }
    out.push_str("<h2>Repositories</h2><table><tr><th>Name</th><th>Stored</th><th>Deduplication</th><th>Compression</th><th>Monthly cost</th><th>Growth</th></tr>");
    for r in &report.repositories {
        match &r.error {
            Some(e) => {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td colspan=\"5\" class=\"missed\">cannot be read: {}</td></tr>",
                    escape(&r.name),
                    escape(e)
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<tr><td>{}<br><small>{}</small></td><td>{}</td><td>{:.2}×</td><td>{:.2}×</td><td>${:.2}</td><td>{}</td></tr>",
                    escape(&r.name),
                    escape(&r.url),
                    bytes(r.size_bytes as f64),
                    r.deduplication_ratio,
                    r.compression_ratio,
                    r.monthly_cost,
                    match (r.growth_bytes_per_day, r.doubling_days) {
                        (Some(g), Some(d)) => format!("{}/day; doubles in {d:.0} days", bytes(g)),
                        (Some(_), None) => "not growing".into(),
                        (None, _) => "no runs recorded".into(),
                    }
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "</table><p><small>Default prices: {}.</small></p></body></html>",
        escape(report.prices_as_of)
    );
    out
}

/// The plan's mirrors, as a table (nothing without mirrors).
pub(crate) fn mirrors(out: &mut String, p: &PlanReport) {
    if p.mirrors.is_empty() {
        return;
    }
    out.push_str("<table class=\"mirrors\"><tr><th>Mirror</th><th>Refreshed</th><th>Age (RPO)</th><th>Last drill</th><th>RTO</th></tr>");
    for m in &p.mirrors {
        let drill = match (&m.last_drill, m.verified) {
            (None, _) => "not drilled yet".to_string(),
            (Some(t), true) => format!("<span class=\"met\">✔ verified</span> {}", escape(t)),
            (Some(t), false) => format!("<span class=\"missed\">✘ failed</span> {}", escape(t)),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{drill}</td><td>{}</td></tr>",
            escape(&m.mirror),
            escape(m.last_refresh.as_deref().unwrap_or("never")),
            if m.last_refresh_failed {
                " <span class=\"missed\">(last refresh failed)</span>"
            } else {
                ""
            },
            m.age_seconds.map_or("–".to_string(), duration),
            m.rto_seconds
                .map_or("–".to_string(), |_| "a switch".to_string()),
        );
    }
    out.push_str("</table>");
}

fn plan(out: &mut String, p: &PlanReport) {
    let verdict = |met: Option<bool>| match met {
        Some(true) => "<span class=\"met\">✔ met</span>",
        Some(false) => "<span class=\"missed\">✘ missed</span>",
        None => "<span class=\"none\">no target</span>",
    };
    let value = |s: Option<f64>| s.map_or("none".to_string(), duration);
    let target = |t: Option<u64>| t.map_or("none".to_string(), |t| duration(t as f64));
    let rate = |r: Option<f64>| r.map_or("–".to_string(), |r| format!("{:.0}%", r * 100.0));
    let _ = write!(
        out,
        "<h2>Plan {}</h2><table>\
<tr><th>Recovery point (newest verified)</th><td>{}</td><td>target {}</td><td>{}</td></tr>\
<tr><th>Newest snapshot</th><td>{} old</td><td></td><td></td></tr>\
<tr><th>Recovery time (last drill)</th><td>{}</td><td>target {}</td><td>{}</td></tr>\
<tr><th>Backups succeeded</th><td>7 days {}</td><td>30 days {}</td><td>90 days {}</td></tr>\
<tr><th>Restore drills passed</th><td>7 days {}</td><td>30 days {}</td><td>90 days {}</td></tr>\
<tr><th>Data</th><td>{} protected</td><td>{} added</td><td>{} snapshots</td></tr></table>",
        escape(&p.name),
        value(p.rpo_seconds),
        target(p.rpo_target_seconds),
        verdict(p.rpo_met),
        value(p.newest_snapshot_age_seconds),
        value(p.rto_seconds),
        target(p.rto_target_seconds),
        verdict(p.rto_met),
        rate(p.backup_success_rate.d7),
        rate(p.backup_success_rate.d30),
        rate(p.backup_success_rate.d90),
        rate(p.restore_success_rate.d7),
        rate(p.restore_success_rate.d30),
        rate(p.restore_success_rate.d90),
        bytes(p.protected_bytes as f64),
        bytes(p.added_bytes as f64),
        p.snapshots,
    );
    mirrors(out, p);
    for problem in &p.problems {
        let _ = write!(out, "<p class=\"missed\">{}</p>", escape(problem));
    }
    let backups: Vec<&RunPoint> = p.history.iter().filter(|r| r.kind == "backup").collect();
    chart(
        out,
        "Backup run time (seconds); ✘ marks a failed run",
        &backups,
        |r| Some(r.seconds),
        None,
    );
    let drills: Vec<&RunPoint> = p.history.iter().filter(|r| r.kind == "drill").collect();
    chart(
        out,
        "Measured recovery time (seconds) against the RTO target (dashed)",
        &drills,
        |r| r.rto_seconds,
        p.rto_target_seconds.map(|t| t as f64),
    );
}

/// A scatter chart of `points` over time, with an optional target line.
pub(crate) fn chart(
    out: &mut String,
    title: &str,
    points: &[&RunPoint],
    y: impl Fn(&RunPoint) -> Option<f64>,
    target: Option<f64>,
) {
    let values: Vec<(f64, Option<f64>, bool)> = points
        .iter()
        .map(|r| (r.timestamp, y(r), r.status == "success"))
        .collect();
    if values.is_empty() {
        return;
    }
    let (w, h, pad) = (600.0, 160.0, 30.0);
    let t0 = values.iter().map(|v| v.0).fold(f64::INFINITY, f64::min);
    let t1 = values.iter().map(|v| v.0).fold(f64::NEG_INFINITY, f64::max);
    let top = values
        .iter()
        .filter_map(|v| v.1)
        .chain(target)
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let x = |t: f64| pad + (t - t0) / (t1 - t0).max(1.0) * (w - 2.0 * pad);
    let yy = |v: f64| h - pad - v / top * (h - 2.0 * pad);
    let _ = write!(
        out,
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\"><line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"currentColor\" stroke-width=\"1\"/><text x=\"2\" y=\"{}\" font-size=\"10\" fill=\"currentColor\">{}</text>",
        escape(title),
        escape(title),
        h - pad,
        w - pad,
        h - pad,
        pad - 10.0,
        short(top)
    );
    if let Some(t) = target {
        let _ = write!(
            out,
            "<line x1=\"{pad}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"currentColor\" stroke-dasharray=\"4 3\"/>",
            yy(t),
            w - pad
        );
    }
    for (t, v, ok) in values {
        let (cx, cy) = (x(t), yy(v.unwrap_or(0.0)));
        match ok {
            true => {
                let _ = write!(
                    out,
                    "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"3\" fill=\"#2a7de1\"/>"
                );
            }
            false => {
                let _ = write!(
                    out,
                    "<text x=\"{cx:.1}\" y=\"{cy:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#d22\">✘</text>"
                );
            }
        }
    }
    out.push_str("</svg></figure>");
}

fn short(v: f64) -> String {
    match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v => format!("{v:.2}"),
    }
}

pub(crate) fn duration(secs: f64) -> String {
    let whole = secs as u64;
    match whole {
        _ if secs < 60.0 => format!("{secs:.1} s"),
        0..3_600 => format!("{} min", whole / 60),
        3_600..86_400 => format!("{:.1} h", secs / 3_600.0),
        _ => format!("{:.1} days", secs / 86_400.0),
    }
}

pub(crate) fn bytes(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

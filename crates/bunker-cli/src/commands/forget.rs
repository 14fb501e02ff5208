//! `bunker forget`

use anyhow::Result;
use bunker_engine::find::{find_snapshot, SnapshotFilter};
use bunker_engine::forget::{self, Decision, ForgetGroup, GroupBy, KeepDuration, KeepPolicy};
use bunker_engine::format::id::SnapshotId;
use serde_json::{json, Value};

use super::prune::PruneArgs;
use super::FilterArgs;
use crate::context::{GlobalArgs, Target};
use crate::exit::Usage;
use crate::{exit, format};

/// Remove snapshots by a retention policy (or by id); `--prune` frees their data.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshots to forget, by id or unique id prefix (instead of a policy)
    #[arg(value_name = "SNAPSHOT")]
    ids: Vec<String>,
    /// Keep the N newest snapshots (-1: all)
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the N newest hours that have one
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    keep_hourly: Option<i64>,
    /// Keep the newest snapshot of each of the N newest days that have one
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    keep_daily: Option<i64>,
    /// Keep the newest snapshot of each of the N newest ISO weeks that have one
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    keep_weekly: Option<i64>,
    /// Keep the newest snapshot of each of the N newest months that have one
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    keep_monthly: Option<i64>,
    /// Keep the newest snapshot of each of the N newest years that have one
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_count)]
    keep_yearly: Option<i64>,
    /// Keep every snapshot less than DURATION (e.g. 1y6m, 14d, 36h) older than the newest
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    keep_within: Option<KeepDuration>,
    /// Keep every snapshot with this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    keep_tag: Vec<String>,
    /// Apply the policy separately per group: host, paths, tags, or "" for one group
    #[arg(long, value_name = "FIELDS", default_value = "host,paths", value_parser = parse_group_by)]
    group_by: GroupBy,
    #[command(flatten)]
    filter: FilterArgs,
    /// Show what would be kept and removed, and why; change nothing
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Prune afterwards, freeing the space of the forgotten snapshots
    #[arg(long)]
    prune: bool,
    /// Let the policy remove every snapshot of a group (refused otherwise)
    #[arg(long)]
    allow_empty_groups: bool,
    #[command(flatten)]
    prune_options: PruneArgs,
}

fn parse_count(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(n) if n >= -1 => Ok(n),
        _ => Err(format!("{text:?} is not a count (a number, or -1 for all)")),
    }
}

fn parse_duration(text: &str) -> Result<KeepDuration, String> {
    text.parse()
}

fn parse_group_by(text: &str) -> Result<GroupBy, String> {
    text.parse()
}

/// Forgets, prints the verdicts, and prunes if asked.
pub fn run(args: Args, global: &GlobalArgs) -> Result<i32> {
    let policy = KeepPolicy {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
        within: args.keep_within,
        tags: args.keep_tag.clone(),
    };
    if policy.is_empty() && args.ids.is_empty() {
        crate::usage!("nothing to forget: give snapshot ids or at least one --keep-* rule (nothing was removed)");
    }
    if !policy.is_empty() && !args.ids.is_empty() {
        crate::usage!("give either snapshot ids or --keep-* rules, not both");
    }
    policy.validate().map_err(Usage)?;
    let prune_options = args.prune_options.options(args.dry_run);
    let repo = Target::select(global)?.open(global)?;
    let list = repo.snapshot_list()?;
    repo.tell_skipped(&list);
    let snapshots = args.filter.filter().apply(list.entries.clone());
    let mut unreadable: Vec<SnapshotId> = Vec::new();
    let groups: Vec<ForgetGroup> = if args.ids.is_empty() {
        forget::plan(&snapshots, args.group_by, &policy)
    } else {
        let mut decisions = Vec::new();
        for id in &args.ids {
            // A damaged snapshot file can be forgotten by its name alone, and
            // a snapshot gone from storage by the name this client saw.
            let damaged: Vec<SnapshotId> = list
                .unreadable
                .iter()
                .map(|u| u.id)
                .chain(list.missing.iter().map(|m| m.id))
                .filter(|u| id.len() >= 4 && u.to_hex().starts_with(&id.to_ascii_lowercase()))
                .collect();
            if let [one] = damaged.as_slice() {
                unreadable.push(*one);
                continue;
            }
            let entry = find_snapshot(&snapshots, id, &SnapshotFilter::default())?;
            decisions.push(Decision {
                entry,
                keep: false,
                reasons: vec!["named on the command line".into()],
            });
        }
        vec![ForgetGroup {
            key: Default::default(),
            decisions,
        }]
    };
    let emptied: Vec<&ForgetGroup> = match args.ids.is_empty() {
        true => groups.iter().filter(|g| g.removes_all()).collect(),
        false => Vec::new(),
    };
    let mut removed: Vec<SnapshotId> = groups
        .iter()
        .flat_map(|g| &g.decisions)
        .filter(|d| !d.keep)
        .map(|d| d.entry.id)
        .collect();
    removed.extend(&unreadable);
    print(&groups, global, args.dry_run);
    for id in &unreadable {
        if !global.quiet && !global.json {
            let what = match list.missing.iter().any(|m| m.id == *id) {
                true => "gone from storage: recorded as forgotten",
                false => "damaged snapshot file",
            };
            crate::outln!("  remove  {}  ({what})", id.short());
        }
    }
    if let Some(g) = emptied.first() {
        let message = format!(
            "the policy keeps none of the {} snapshot(s) of {}; add --allow-empty-groups to remove them all",
            g.decisions.len(),
            describe(g)
        );
        if args.dry_run {
            crate::errln!("bunker: warning: {message}");
        } else if !args.allow_empty_groups {
            crate::usage!("{message} (nothing was removed)");
        }
    }
    if !args.dry_run {
        forget::remove(&repo, &removed)?;
        if !global.quiet && !global.json {
            crate::outln!("removed {} snapshot(s)", removed.len());
        }
    }
    if args.prune {
        return super::prune::run_on(repo, &prune_options, global);
    }
    Ok(exit::OK)
}

/// A group's key in words, e.g. `host web1, paths /srv`.
fn describe(g: &ForgetGroup) -> String {
    let mut title = Vec::new();
    if let Some(h) = &g.key.host {
        title.push(format!("host {h}"));
    }
    if let Some(p) = &g.key.paths {
        title.push(format!("paths {}", p.join(" ")));
    }
    if let Some(t) = &g.key.tags {
        title.push(format!("tags {}", t.join(",")));
    }
    match title.is_empty() {
        true => "the repository".to_string(),
        false => title.join(", "),
    }
}

fn print(groups: &[ForgetGroup], global: &GlobalArgs, dry_run: bool) {
    if global.json {
        let value: Vec<Value> = groups
            .iter()
            .map(|g| {
                let list = |keep: bool| -> Vec<Value> {
                    g.decisions
                        .iter()
                        .filter(|d| d.keep == keep)
                        .map(|d| {
                            json!({
                                "id": d.entry.id.to_hex(),
                                "short_id": d.entry.id.short(),
                                "time": format::time_rfc3339(d.entry.snapshot.time_ns),
                                "reasons": d.reasons,
                            })
                        })
                        .collect()
                };
                json!({
                    "group": {"host": g.key.host, "paths": g.key.paths, "tags": g.key.tags},
                    "keep": list(true),
                    "remove": list(false),
                    "dry_run": dry_run,
                })
            })
            .collect();
        super::print_json(&Value::Array(value));
        return;
    }
    if global.quiet {
        return;
    }
    for g in groups {
        if g.key != Default::default() {
            crate::outln!("{}:", describe(g));
        }
        for d in &g.decisions {
            let verb = if d.keep { "keep" } else { "remove" };
            crate::outln!(
                "  {verb:<6}  {}  {}  {}",
                d.entry.id.short(),
                format::time(d.entry.snapshot.time_ns),
                d.reasons.join("; ")
            );
        }
    }
    if dry_run {
        crate::outln!("dry run: nothing was removed");
    }
}

//! Forget: decide which snapshots a retention policy keeps, with restic's
//! documented semantics, and remove the others.
//!
//! Within each group (by default: same host and paths), snapshots are taken
//! newest first. `--keep-last n` keeps the n newest; `--keep-hourly n` keeps
//! the newest snapshot of each of the n most recent hours that have one (and
//! so on for days, ISO weeks, months and years, in local time); `-1` means
//! no limit. `--keep-within D` keeps everything less than D older than the
//! group's newest snapshot; `--keep-tag T` keeps every snapshot tagged T. A
//! snapshot is kept if any rule keeps it, and every rule that does is named.

use std::collections::BTreeMap;

use bunker_format::id::SnapshotId;
use chrono::{DateTime, Datelike, Local, Months, TimeDelta, Timelike};

use crate::repository::{Open, Repository, SnapshotEntry};
use crate::Result;

/// A calendar duration as restic writes it: `1y6m`, `7d`, `36h`, `2y3m4d5h`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeepDuration {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl std::str::FromStr for KeepDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut d = KeepDuration::default();
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: u32 = digits
                .parse()
                .map_err(|_| format!("invalid duration {s:?}: expected e.g. 1y6m, 7d or 36h"))?;
            digits.clear();
            match c {
                'y' => d.years += n,
                'm' => d.months += n,
                'd' => d.days += n,
                'h' => d.hours += n,
                _ => {
                    return Err(format!(
                        "invalid duration {s:?}: unit {c:?} is not y, m, d or h"
                    ))
                }
            }
        }
        if !digits.is_empty() || s.is_empty() {
            return Err(format!(
                "invalid duration {s:?}: every number needs a unit (y, m, d, h)"
            ));
        }
        Ok(d)
    }
}

impl std::fmt::Display for KeepDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// What to keep. Counts: `None` = rule not given, `-1` = unlimited.
#[derive(Clone, Debug, Default)]
pub struct KeepPolicy {
    /// `--keep-last`.
    pub last: Option<i64>,
    /// `--keep-hourly`.
    pub hourly: Option<i64>,
    /// `--keep-daily`.
    pub daily: Option<i64>,
    /// `--keep-weekly`.
    pub weekly: Option<i64>,
    /// `--keep-monthly`.
    pub monthly: Option<i64>,
    /// `--keep-yearly`.
    pub yearly: Option<i64>,
    /// `--keep-within`.
    pub within: Option<KeepDuration>,
    /// `--keep-tag`.
    pub tags: Vec<String>,
}

impl KeepPolicy {
    /// Refuses rules that keep nothing: `--keep-last 0` (or any zero count)
    /// and `--keep-within 0d` would remove every snapshot they are meant to
    /// protect, which is never what is meant.
    pub fn validate(&self) -> Result<(), String> {
        for (count, flag) in [
            (self.last, "--keep-last"),
            (self.hourly, "--keep-hourly"),
            (self.daily, "--keep-daily"),
            (self.weekly, "--keep-weekly"),
            (self.monthly, "--keep-monthly"),
            (self.yearly, "--keep-yearly"),
        ] {
            if count == Some(0) {
                return Err(format!(
                    "{flag} 0 would keep nothing; give a count of at least 1 (or -1 for all), or forget snapshots by id"
                ));
            }
        }
        if self.within == Some(KeepDuration::default()) {
            return Err(
                "--keep-within of zero would keep nothing; give a duration such as 7d".into(),
            );
        }
        Ok(())
    }

    /// True when no rule was given.
    pub fn is_empty(&self) -> bool {
        [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .all(Option::is_none)
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// Which snapshot fields form a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    /// Group by host name.
    pub host: bool,
    /// Group by the set of paths.
    pub paths: bool,
    /// Group by the set of tags.
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = String;

    /// `host,paths` (the default), any subset of `host`, `paths`, `tags`, or
    /// the empty string for one group.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                _ => {
                    return Err(format!(
                        "cannot group by {part:?}: use host, paths and/or tags"
                    ))
                }
            }
        }
        Ok(g)
    }
}

/// The values a group shares (`None` for fields not grouped by).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// Host name.
    pub host: Option<String>,
    /// Sorted paths.
    pub paths: Option<Vec<String>>,
    /// Sorted tags.
    pub tags: Option<Vec<String>>,
}

/// The verdict on one snapshot.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The snapshot.
    pub entry: SnapshotEntry,
    /// Kept by at least one rule.
    pub keep: bool,
    /// Each rule that keeps it.
    pub reasons: Vec<String>,
}

/// One group's verdicts, newest snapshot first.
#[derive(Clone, Debug)]
pub struct ForgetGroup {
    /// What the group's snapshots share.
    pub key: GroupKey,
    /// Verdicts, newest first.
    pub decisions: Vec<Decision>,
}

impl ForgetGroup {
    /// True if the verdicts remove every snapshot of the group.
    pub fn removes_all(&self) -> bool {
        !self.decisions.is_empty() && self.decisions.iter().all(|d| !d.keep)
    }
}

/// Groups snapshots and applies the policy to each group.
pub fn plan(
    snapshots: &[SnapshotEntry],
    group_by: GroupBy,
    policy: &KeepPolicy,
) -> Vec<ForgetGroup> {
    let mut groups: BTreeMap<GroupKey, Vec<SnapshotEntry>> = BTreeMap::new();
    for entry in snapshots {
        let s = &entry.snapshot;
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        let key = GroupKey {
            host: group_by.host.then(|| s.hostname.clone()),
            paths: group_by.paths.then(|| sorted(&s.paths)),
            tags: group_by.tags.then(|| sorted(&s.tags)),
        };
        groups.entry(key).or_default().push(entry.clone());
    }
    groups
        .into_iter()
        .map(|(key, entries)| ForgetGroup {
            key,
            decisions: apply(entries, policy),
        })
        .collect()
}

/// The bucket a snapshot falls in (its hour, day, week…), from its local
/// time and its position in the group.
type BucketFn = fn(&DateTime<Local>, usize) -> i64;

/// A retention rule that keeps one snapshot per distinct bucket value.
struct Bucket {
    reason: &'static str,
    remaining: i64,
    last: Option<i64>,
    value: BucketFn,
}

/// Applies the policy to one group.
pub fn apply(mut entries: Vec<SnapshotEntry>, policy: &KeepPolicy) -> Vec<Decision> {
    entries.sort_by(|a, b| {
        b.snapshot
            .time_ns
            .cmp(&a.snapshot.time_ns)
            .then(b.id.cmp(&a.id))
    });
    let rules: [(Option<i64>, &'static str, BucketFn); 6] = [
        (policy.last, "last snapshot", |_, nr| nr as i64),
        (policy.hourly, "hourly snapshot", |t, _| {
            day_value(t) * 100 + t.hour() as i64
        }),
        (policy.daily, "daily snapshot", |t, _| day_value(t)),
        (policy.weekly, "weekly snapshot", |t, _| {
            let w = t.iso_week();
            w.year() as i64 * 100 + w.week() as i64
        }),
        (policy.monthly, "monthly snapshot", |t, _| {
            t.year() as i64 * 100 + t.month() as i64
        }),
        (policy.yearly, "yearly snapshot", |t, _| t.year() as i64),
    ];
    let mut buckets: Vec<Bucket> = rules
        .into_iter()
        .filter_map(|(count, reason, value)| {
            count.map(|remaining| Bucket {
                reason,
                remaining,
                last: None,
                value,
            })
        })
        .collect();
    let newest = entries.first().map(|e| local(e.snapshot.time_ns));
    let within_since = match (policy.within, newest) {
        (Some(d), Some(newest)) => Some(subtract(newest, d)),
        _ => None,
    };
    let empty = policy.is_empty();
    entries
        .into_iter()
        .enumerate()
        .map(|(nr, entry)| {
            let time = local(entry.snapshot.time_ns);
            let mut reasons = Vec::new();
            if empty {
                reasons.push("no policy given".to_string());
            }
            let matching: Vec<&String> = policy
                .tags
                .iter()
                .filter(|t| entry.snapshot.tags.contains(t))
                .collect();
            if !matching.is_empty() {
                reasons.push(format!(
                    "has tag {}",
                    matching
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let (Some(since), Some(d)) = (within_since, policy.within) {
                if time > since {
                    reasons.push(format!("within {d} of the newest"));
                }
            }
            for b in &mut buckets {
                if b.remaining == 0 {
                    continue;
                }
                let v = (b.value)(&time, nr);
                if b.last != Some(v) {
                    b.last = Some(v);
                    if b.remaining > 0 {
                        b.remaining -= 1;
                    }
                    reasons.push(b.reason.to_string());
                }
            }
            Decision {
                entry,
                keep: !reasons.is_empty(),
                reasons,
            }
        })
        .collect()
}

fn day_value(t: &DateTime<Local>) -> i64 {
    t.year() as i64 * 10_000 + t.month() as i64 * 100 + t.day() as i64
}

fn local(ns: i64) -> DateTime<Local> {
    DateTime::from_timestamp_nanos(ns).with_timezone(&Local)
}

fn subtract(t: DateTime<Local>, d: KeepDuration) -> DateTime<Local> {
    let months = d.years.saturating_mul(12).saturating_add(d.months);
    let t = t.checked_sub_months(Months::new(months)).unwrap_or(t);
    t - TimeDelta::days(d.days as i64) - TimeDelta::hours(d.hours as i64)
}

/// Removes snapshots (readable, damaged, or already gone) for good: see
/// [`Repository::withdraw_snapshots`]. Their data stays until `prune`.
pub fn remove(repo: &Repository<Open>, ids: &[SnapshotId]) -> Result<()> {
    repo.require_full_key("forget snapshots")?;
    repo.withdraw_snapshots(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d: KeepDuration = "1y2m3d4h".parse().unwrap();
        assert_eq!(
            d,
            KeepDuration {
                years: 1,
                months: 2,
                days: 3,
                hours: 4
            }
        );
        assert_eq!(d.to_string(), "1y2m3d4h");
        for bad in ["", "5", "3w", "d", "1d2"] {
            assert!(bad.parse::<KeepDuration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rule_that_keeps_nothing_is_refused() {
        for policy in [
            KeepPolicy {
                last: Some(0),
                ..Default::default()
            },
            KeepPolicy {
                daily: Some(0),
                weekly: Some(3),
                ..Default::default()
            },
            KeepPolicy {
                within: Some("0d".parse().unwrap()),
                ..Default::default()
            },
        ] {
            assert!(policy.validate().is_err(), "{policy:?}");
        }
        let ok = KeepPolicy {
            last: Some(-1),
            within: Some("1d".parse().unwrap()),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn group_by() {
        assert!(!"".parse::<GroupBy>().unwrap().host);
        let g: GroupBy = "host,tags".parse().unwrap();
        assert!(g.host && g.tags && !g.paths);
        assert!("hosts".parse::<GroupBy>().is_err());
    }
}

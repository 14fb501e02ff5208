//! When a plan runs: a 5-field cron expression in local time
//! (`0 2 * * *`) or a fixed interval (`every 30m`), and durations as the
//! config writes them (`7d`, `24h`, `90s`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone};

/// A length of time written `N` + unit: `s`, `m`, `h`, `d` or `w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval(pub Duration);

impl FromStr for Interval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?} is not a duration: expected a number and a unit, as 90s, 30m, 24h, 7d or 2w"))?;
        let scale = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => {
                return Err(format!(
                    "{text:?} has no known unit: use s, m, h, d or w (90s, 30m, 24h, 7d, 2w)"
                ))
            }
        };
        if n == 0 {
            return Err(format!("{text:?} is zero"));
        }
        let secs = n
            .checked_mul(scale)
            .ok_or_else(|| format!("{text:?} is too long"))?;
        Ok(Interval(Duration::from_secs(secs)))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
            if s.is_multiple_of(size) {
                return write!(f, "{}{unit}", s / size);
            }
        }
        write!(f, "{s}s")
    }
}

/// When something runs.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// A 5-field cron expression, in local time.
    Cron(Box<croner::Cron>, String),
    /// A fixed interval from the previous run.
    Every(Interval),
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("every ") {
            return Ok(Schedule::Every(rest.parse()?));
        }
        if text.split_whitespace().count() != 5 {
            return Err(format!(
                "{text:?} is not a schedule: expected 5 cron fields (minute hour day month weekday, e.g. \"0 2 * * *\") or \"every 30m\""
            ));
        }
        let cron = croner::Cron::from_str(text)
            .map_err(|e| format!("{text:?} is not a valid cron expression: {e}"))?;
        Ok(Schedule::Cron(Box::new(cron), text.to_string()))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron(_, text) => write!(f, "{text}"),
            Schedule::Every(i) => write!(f, "every {i}"),
        }
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Schedule {
    /// The first run strictly after `after`, given the previous run (for
    /// an interval: the previous run plus the interval, or `after` when it
    /// never ran). Times are in the zone of `after`.
    pub fn next_after<Tz: TimeZone>(
        &self,
        after: &DateTime<Tz>,
        previous: Option<&DateTime<Tz>>,
    ) -> Option<DateTime<Tz>> {
        match self {
            Schedule::Cron(cron, _) => cron.find_next_occurrence(after, false).ok(),
            Schedule::Every(Interval(d)) => {
                let step = chrono::Duration::from_std(*d).ok()?;
                match previous {
                    Some(p) => Some((p.clone() + step).max(after.clone())),
                    None => Some(after.clone()),
                }
            }
        }
    }

    /// The next run after now, in local time.
    pub fn next_local(&self) -> Option<DateTime<Local>> {
        self.next_after(&Local::now(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    #[test]
    fn durations_parse_and_print_back() {
        for (text, secs, shown) in [
            ("90s", 90, "90s"),
            ("30m", 1800, "30m"),
            ("24h", 86_400, "1d"),
            ("7d", 604_800, "1w"),
            ("2w", 1_209_600, "2w"),
        ] {
            let i: Interval = text.parse().unwrap();
            assert_eq!(i.0.as_secs(), secs, "{text}");
            assert_eq!(i.to_string(), shown);
        }
        for bad in ["", "7", "d", "7y", "0s", "-1h", "1.5h"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_and_interval_schedules() {
        let s: Schedule = "0 2 * * *".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 1, 59, 0).unwrap();
        assert_eq!(
            s.next_after(&t, None).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap()
        );
        let t2 = Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap();
        assert_eq!(
            s.next_after(&t2, None).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap()
        );

        let e: Schedule = "every 20s".parse().unwrap();
        let prev = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 5).unwrap();
        assert_eq!(
            e.next_after(&now, Some(&prev)).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 20).unwrap()
        );
        // A run missed while the machine was off is due at once (catch-up).
        let late = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        assert_eq!(e.next_after(&late, Some(&prev)).unwrap(), late);
        assert_eq!(e.to_string(), "every 20s");
        for bad in ["0 2 * *", "61 * * * *", "every", "every 5", "daily"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_follows_the_wall_clock_across_a_dst_change() {
        // 02:30 every day, in a zone one hour ahead of UTC before and two
        // after the change: the UTC instant moves, the local time does not.
        let s: Schedule = "30 2 * * *".parse().unwrap();
        let winter = FixedOffset::east_opt(3600).unwrap();
        let summer = FixedOffset::east_opt(7200).unwrap();
        let before = winter.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let after = summer.with_ymd_and_hms(2026, 3, 30, 12, 0, 0).unwrap();
        let a = s.next_after(&before, None).unwrap();
        let b = s.next_after(&after, None).unwrap();
        assert_eq!(a.format("%H:%M").to_string(), "02:30");
        assert_eq!(b.format("%H:%M").to_string(), "02:30");
        assert_eq!(a.naive_utc().format("%H:%M").to_string(), "01:30");
        assert_eq!(b.naive_utc().format("%H:%M").to_string(), "00:30");
    }
}

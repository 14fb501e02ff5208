//! When each plan's backups and drills are due: the pure part of the
//! scheduler, with the clock passed in so that tests can move it.
//!
//! A job never run is due at once for an interval (`every 30m`) and at
//! the next matching time for a cron schedule. After a run that started at
//! `t`, the next is due an interval after `t`, or at the next cron time
//! after `t` — so a time missed while the machine was off or asleep is
//! caught up once, as soon as the daemon sees it, and not once per missed
//! slot. A failed run is retried with backoff (1, 2, 4 minutes, …, at
//! most an hour, three times), unless the next regular run comes first.

use chrono::{DateTime, Local};

use crate::Schedule;

/// Retries of a failed run before waiting for the next regular one.
pub const MAX_RETRIES: u32 = 3;

/// One scheduled job (a plan's backups, or its drills).
#[derive(Clone, Debug)]
pub struct Job {
    /// When it runs.
    pub schedule: Schedule,
    /// When it is next due.
    pub due: DateTime<Local>,
    /// Failed runs in a row.
    pub failures: u32,
    /// When a failed run is retried, if it is.
    pub retry_at: Option<DateTime<Local>>,
}

impl Job {
    /// A job whose last run started at `last` (if known), as of `now`.
    pub fn new(schedule: Schedule, last: Option<DateTime<Local>>, now: DateTime<Local>) -> Job {
        let due = next_due(&schedule, last, now);
        Job {
            schedule,
            due,
            failures: 0,
            retry_at: None,
        }
    }

    /// True when a regular or retried run is due at `now`.
    pub fn is_due(&self, now: DateTime<Local>) -> bool {
        self.due <= now || self.retry_at.is_some_and(|r| r <= now)
    }

    /// A run starts (or, when one is still going, is skipped) at `now`.
    pub fn started(&mut self, now: DateTime<Local>) {
        self.due = next_due(&self.schedule, Some(now), now);
        self.retry_at = None;
    }

    /// The run that started at `started` ended at `now`.
    pub fn finished(&mut self, succeeded: bool, now: DateTime<Local>) {
        if succeeded {
            self.failures = 0;
            self.retry_at = None;
            return;
        }
        self.failures += 1;
        self.retry_at = None;
        if self.failures <= MAX_RETRIES {
            let minutes = (1i64 << (self.failures - 1)).min(60);
            let retry = now + chrono::Duration::minutes(minutes);
            if retry < self.due {
                self.retry_at = Some(retry);
            }
        }
    }
}

/// When a job is due after a run started at `last` (none: never ran).
fn next_due(
    schedule: &Schedule,
    last: Option<DateTime<Local>>,
    now: DateTime<Local>,
) -> DateTime<Local> {
    let after = last.unwrap_or(now);
    let next = match (schedule, last) {
        // Never run: an interval job runs at once.
        (Schedule::Every(_), None) => Some(now),
        _ => schedule.next_after(&after, last.as_ref()),
    };
    // A schedule with no next time (a cron that cannot match) never runs.
    next.unwrap_or(now + chrono::Duration::days(365 * 100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Local> {
        Local.with_ymd_and_hms(2026, 3, 10, h, m, 0).unwrap()
    }

    #[test]
    fn intervals_run_at_once_then_every_interval() {
        let every: Schedule = "every 30m".parse().unwrap();
        let mut job = Job::new(every, None, at(9, 0));
        assert!(job.is_due(at(9, 0)));
        job.started(at(9, 0));
        assert!(!job.is_due(at(9, 29)));
        assert!(job.is_due(at(9, 30)));
    }

    #[test]
    fn a_missed_cron_time_is_caught_up_once() {
        let nightly: Schedule = "0 2 * * *".parse().unwrap();
        // Last ran two days ago at 02:00; the machine was off since.
        let two_days_ago = at(2, 0) - chrono::Duration::days(2);
        let mut job = Job::new(nightly.clone(), Some(two_days_ago), at(9, 0));
        assert!(job.is_due(at(9, 0)), "caught up at start");
        job.started(at(9, 0));
        assert!(!job.is_due(at(23, 59)), "once, not once per missed night");
        assert_eq!(job.due, at(2, 0) + chrono::Duration::days(1));
        // Never run: the next 02:00, not now.
        let fresh = Job::new(nightly, None, at(9, 0));
        assert!(!fresh.is_due(at(9, 0)));
    }

    #[test]
    fn failures_are_retried_with_backoff_before_the_next_run() {
        let hourly: Schedule = "every 1h".parse().unwrap();
        let mut job = Job::new(hourly, None, at(9, 0));
        job.started(at(9, 0));
        job.finished(false, at(9, 1));
        assert_eq!(job.retry_at, Some(at(9, 2)));
        job.started(at(9, 2));
        assert_eq!(job.due, at(10, 2), "a retry moves the next regular run");
        job.finished(false, at(9, 3));
        assert_eq!(job.retry_at, Some(at(9, 5)));
        job.started(at(9, 5));
        job.finished(false, at(9, 6));
        assert_eq!(job.retry_at, Some(at(9, 10)));
        job.started(at(9, 10));
        job.finished(false, at(9, 11));
        assert_eq!(job.retry_at, None, "three retries, then the schedule");
        job.finished(true, at(10, 20));
        assert_eq!(job.failures, 0);
    }
}

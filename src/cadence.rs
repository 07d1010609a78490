//! `schedule.cron = "auto"`: how often to sync so that the mirror spends at most its share
//! of the hourly request quota. [`choose`] is the pure rule; [`plan`] feeds it from the
//! database (the last full run's requests, the quota seen); the daemon's schedule asks it
//! before each interval.
//! Also, for any schedule, how long without a success makes the mirror stale ([`stale_after`]).

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{next_run, Config};
use crate::store::Store;

/// The `schedule.cron` value that picks the interval from the quota (a value of the config,
/// so defined there).
pub use crate::config::AUTO_CRON as AUTO;
/// Never more often than this.
pub const MIN_INTERVAL_S: u64 = 5 * 60;
/// Never less often than this.
pub const MAX_INTERVAL_S: u64 = 24 * 3600;
/// The interval while the cost of a sync or the quota is not known yet.
pub const FALLBACK_INTERVAL_S: u64 = 30 * 60;

/// The interval chosen, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cadence {
    pub interval_seconds: u64,
    /// Requests per hour the interval plans for (the last sync's cost × syncs per hour).
    pub planned_requests_per_hour: f64,
    pub reason: String,
}

/// The interval for syncs of `requests_per_sync` requests under an hourly quota of
/// `hourly_quota` (with where it was learnt), leaving `quota_share` of it to other tools:
/// `3600 s × requests ÷ (quota × (1 − share))`, rounded up to a whole minute, at least
/// [`MIN_INTERVAL_S`] and at most [`MAX_INTERVAL_S`].
pub fn choose(
    requests_per_sync: Option<u64>,
    hourly_quota: Option<(u64, &str)>,
    quota_share: f64,
) -> Cadence {
    let (Some(requests), Some((quota, source))) = (requests_per_sync, hourly_quota) else {
        let missing = match (requests_per_sync, hourly_quota) {
            (None, None) => "no successful sync and no quota seen yet",
            (None, _) => "no successful sync yet (its request count is the cost of a sync)",
            _ => {
                "no quota seen yet (set api.hourly_quota, or wait for the X-Toggl-Quota-* headers)"
            }
        };
        return Cadence {
            interval_seconds: FALLBACK_INTERVAL_S,
            planned_requests_per_hour: requests_per_sync
                .map_or(0.0, |r| r as f64 * 3600.0 / FALLBACK_INTERVAL_S as f64),
            reason: format!(
                "{missing}: every {} min until then",
                FALLBACK_INTERVAL_S / 60
            ),
        };
    };
    let requests = requests.max(1);
    let share = quota_share.clamp(0.0, 0.99);
    let budget = (quota as f64 * (1.0 - share)).max(1.0);
    let exact = 3600.0 * requests as f64 / budget;
    // Less a hair, so that float noise (240 × 0.1 = 23.999…) does not add a minute.
    let minutes = (exact / 60.0 - 1e-9).ceil() as u64;
    let interval = (minutes * 60).clamp(MIN_INTERVAL_S, MAX_INTERVAL_S);
    let planned = requests as f64 * 3600.0 / interval as f64;
    let bound = if interval == MIN_INTERVAL_S && exact < MIN_INTERVAL_S as f64 {
        " (never more often than every 5 min)"
    } else if interval == MAX_INTERVAL_S && exact > MAX_INTERVAL_S as f64 {
        " (at least once a day)"
    } else {
        ""
    };
    Cadence {
        interval_seconds: interval,
        planned_requests_per_hour: (planned * 10.0).round() / 10.0,
        reason: format!(
            "a sync costs {requests} requests; the quota is {quota}/h ({source}), {:.0}% of it left to other tools: {budget:.0} requests/h for orgmirror{bound}",
            share * 100.0
        ),
    }
}

/// The cadence the database and `config` imply now.
pub fn plan(config: &Config, store: Option<&Store>) -> Cadence {
    let requests = store
        .and_then(|s| s.last_full_run_requests().ok().flatten())
        .and_then(|r| u64::try_from(r).ok());
    let quota = match config.api.hourly_quota {
        Some(q) => Some((u64::from(q), "api.hourly_quota")),
        None => store
            .and_then(|s| s.hourly_quota_seen().ok().flatten())
            .and_then(|q| u64::try_from(q).ok())
            .map(|q| (q, "seen in the X-Toggl-Quota-* headers")),
    };
    choose(requests, quota, config.schedule.quota_share)
}

/// The cadence of the database at `path` (read-only; a missing database has no history).
pub fn plan_at(config: &Config, path: &Path) -> Cadence {
    let store = Store::open_read_only(path).ok();
    plan(config, store.as_ref())
}

/// How many schedule intervals without a success make the mirror stale.
pub const STALE_INTERVALS: u32 = 3;

/// How long without a successful run before the mirror counts as stale: three schedule
/// intervals. For a cron, the interval is the longest gap between two of its firings over
/// the next week (a weekday schedule is not stale on Monday morning); with `"auto"`, the
/// interval the cadence chooses now (from the database, when there is one).
pub fn stale_after(config: &Config, store: Option<&Store>) -> Duration {
    let interval = if config.schedule.cron == AUTO {
        Duration::from_secs(plan(config, store).interval_seconds)
    } else {
        longest_gap(&config.schedule.cron, Utc::now())
    };
    interval.saturating_mul(STALE_INTERVALS)
}

/// The longest gap between two consecutive firings of `cron` after `from`: over a week
/// (at most 1000 firings), and at least one gap however far apart they are.
pub fn longest_gap(cron: &str, from: DateTime<Utc>) -> Duration {
    let horizon = from + chrono::Duration::days(7);
    let mut longest = None;
    let Ok(mut previous) = next_run(cron, from) else {
        return Duration::from_secs(FALLBACK_INTERVAL_S);
    };
    for _ in 0..1000 {
        let Ok(next) = next_run(cron, previous) else {
            break;
        };
        let gap = (next - previous).to_std().unwrap_or_default();
        longest = Some(longest.map_or(gap, |l: Duration| l.max(gap)));
        if next > horizon {
            break;
        }
        previous = next;
    }
    longest.unwrap_or(Duration::from_secs(FALLBACK_INTERVAL_S))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stale_threshold_is_three_of_the_schedules_longest_gaps() {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        let monday = at("2026-11-30T10:00:00Z");
        // (cron, the longest gap between two firings from Monday 10:00 over a week)
        let table = [
            ("0 */30 * * * *", 1800),
            ("*/2 * * * * *", 2),
            ("0 0 9 * * MON-FRI", 3 * 86_400),
            ("0 0 0 1 * *", 31 * 86_400),
            ("0 0 8,20 * * *", 12 * 3600),
        ];
        for (cron, gap) in table {
            assert_eq!(
                longest_gap(cron, monday),
                Duration::from_secs(gap),
                "{cron}"
            );
        }
        let config = |cron: &str| {
            Config::parse(&format!(
                "[api]\norganization_id = 1\nworkspace_id = 2\n[schedule]\ncron = \"{cron}\"\n"
            ))
            .unwrap()
        };
        assert_eq!(
            stale_after(&config("0 */30 * * * *"), None),
            Duration::from_secs(3 * 1800)
        );
        // "auto" before any sync: three of its fallback interval.
        assert_eq!(
            stale_after(&config("auto"), None),
            Duration::from_secs(3 * FALLBACK_INTERVAL_S)
        );
    }

    #[test]
    fn the_interval_leaves_the_share_of_the_quota_and_never_drops_below_five_minutes() {
        // (requests per sync, quota/h) -> (interval s, planned requests/h), share 0.5.
        let table = [
            (10, 30, 2400, 15.0),  // 15 requests/h for orgmirror: 1.5 syncs/h
            (10, 240, 300, 120.0), // exactly every 5 minutes
            (10, 600, 300, 120.0), // 300/h would allow every 2 min: held at 5
            (3, 30, 720, 15.0),    // a small organization: roles, teams, users
            (3, 240, 300, 36.0),
            (3, 600, 300, 36.0),
            (7, 30, 1680, 15.0),   // 28 min
            (40, 30, 9600, 15.0),  // a sync costs more than the hour's share: every 2 h 40 min
            (13, 240, 420, 111.4), // 6.5 min rounded up to 7
        ];
        for (requests, quota, interval, planned) in table {
            let c = choose(Some(requests), Some((quota, "api.hourly_quota")), 0.5);
            assert_eq!(
                (c.interval_seconds, c.planned_requests_per_hour),
                (interval, planned),
                "{requests} requests, quota {quota}: {}",
                c.reason
            );
            assert!(c.planned_requests_per_hour <= quota as f64 * 0.5 + 1e-9);
        }
        let held = choose(Some(10), Some((600, "x")), 0.5);
        assert!(held.reason.contains("every 5 min"), "{}", held.reason);
    }

    #[test]
    fn the_share_and_the_unknowns() {
        assert_eq!(
            choose(Some(10), Some((240, "x")), 0.0).interval_seconds,
            300
        );
        assert_eq!(
            choose(Some(10), Some((240, "x")), 0.9).interval_seconds,
            1500
        );
        let unknown = choose(None, Some((240, "x")), 0.5);
        assert_eq!(unknown.interval_seconds, FALLBACK_INTERVAL_S);
        assert!(
            unknown.reason.contains("no successful sync"),
            "{}",
            unknown.reason
        );
        let unknown = choose(Some(3), None, 0.5);
        assert!(
            unknown.reason.contains("api.hourly_quota"),
            "{}",
            unknown.reason
        );
        assert_eq!(
            choose(Some(100_000), Some((30, "x")), 0.5).interval_seconds,
            MAX_INTERVAL_S
        );
    }

    /// What the interval is when something is unknown, at a bound or out of range, and
    /// the reason that says so.
    #[test]
    fn the_reason_names_what_is_missing_and_the_bound_that_held() {
        // (case, requests per sync, quota/h, share) -> (interval s, planned requests/h, reason)
        let of = "(api.hourly_quota)";
        let fallback = FALLBACK_INTERVAL_S;
        #[rustfmt::skip]
        let table = [
            ("nothing known", None, None, 0.5, (fallback, 0.0,
                "no successful sync and no quota seen yet: every 30 min until then".to_string())),
            ("no quota yet", Some(3), None, 0.5, (fallback, 6.0,
                "no quota seen yet (set api.hourly_quota, or wait for the X-Toggl-Quota-* headers): every 30 min until then".to_string())),
            ("no sync yet", None, Some(240), 0.5, (fallback, 0.0,
                "no successful sync yet (its request count is the cost of a sync): every 30 min until then".to_string())),
            ("a sync of no requests costs one", Some(0), Some(240), 0.5, (300, 12.0,
                format!("a sync costs 1 requests; the quota is 240/h {of}, 50% of it left to other tools: 120 requests/h for orgmirror (never more often than every 5 min)"))),
            ("exactly five minutes is no bound", Some(10), Some(240), 0.5, (300, 120.0,
                format!("a sync costs 10 requests; the quota is 240/h {of}, 50% of it left to other tools: 120 requests/h for orgmirror"))),
            ("exactly a day is no bound", Some(360), Some(30), 0.5, (MAX_INTERVAL_S, 15.0,
                format!("a sync costs 360 requests; the quota is 30/h {of}, 50% of it left to other tools: 15 requests/h for orgmirror"))),
            ("over a day", Some(361), Some(30), 0.5, (MAX_INTERVAL_S, 15.0,
                format!("a sync costs 361 requests; the quota is 30/h {of}, 50% of it left to other tools: 15 requests/h for orgmirror (at least once a day)"))),
            ("a share over all is 99%", Some(10), Some(240), 1.5, (15000, 2.4,
                format!("a sync costs 10 requests; the quota is 240/h {of}, 99% of it left to other tools: 2 requests/h for orgmirror"))),
            ("a negative share is none", Some(10), Some(240), -1.0, (300, 120.0,
                format!("a sync costs 10 requests; the quota is 240/h {of}, 0% of it left to other tools: 240 requests/h for orgmirror (never more often than every 5 min)"))),
        ];
        for (case, requests, quota, share, expected) in table {
            let c = choose(requests, quota.map(|q| (q, "api.hourly_quota")), share);
            assert_eq!(
                (c.interval_seconds, c.planned_requests_per_hour, c.reason),
                expected,
                "{case}"
            );
        }
    }
}

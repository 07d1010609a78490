//! The mirror's own health, read from `sync_runs` (the view `mirror_freshness`, migration
//! 25), and the health alerts it calls for queued in the outbox.
//!
//! Nothing here is state of its own: whether the mirror is failing or stale is what its
//! full runs say, and whether a rule has been told is whether the outbox holds that rule's
//! alert of that kind for the outage (the last successful run before it). So the check
//! can run at any time, in any process, as often as wanted: after a run, on the daemon's
//! timer, after a restart. It writes only `alert_outbox` rows, in a transaction of its own;
//! the run it follows has already recorded everything it writes.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::{sqlite_error, Store, StoreError};

/// Whether the data is current, as `mirror_freshness` shows it, and what `status`, the
/// journal and the health alerts need beside.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Freshness {
    /// When the newest successful full run finished.
    pub last_success_at: Option<String>,
    /// When the newest full run began (by the wall clock).
    pub last_attempt_at: Option<String>,
    /// `running`, `succeeded` or `failed`; `None` before any full run.
    pub last_status: Option<String>,
    /// The newest failed run's error since the last success.
    pub last_error: Option<String>,
    /// Failed full runs since the last success.
    pub consecutive_failures: i64,
    /// Seconds since the last success, when read.
    pub age_seconds: Option<i64>,
    /// The last success (before any, the first attempt) is older than `stale_after_seconds`.
    pub stale: Option<bool>,
    /// The threshold the newest run recorded (three schedule intervals).
    pub stale_after_seconds: Option<i64>,
    /// When the first failed run since the last success began.
    pub failing_since: Option<String>,
    /// What to do about `last_error`.
    pub hint: Option<String>,
    /// `last_error` in short: the server's reason and the HTTP status.
    pub reason: Option<String>,
    /// The exit status `last_error` maps to (2: a person must fix it; 1: it may pass; 3:
    /// the deletion guard).
    pub exit_status: Option<i64>,
    /// The newest successful full run (0: none yet): the outage the failures belong to.
    pub last_success_run: i64,
    /// When the first full run began: what `stale` counts from before any success.
    pub first_attempt_at: Option<String>,
}

/// How a full run stands among the runs before it (for the journal's lines).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStreak {
    /// Full runs that failed in a row just before this one.
    pub failed_before: i64,
    /// When the first of them began.
    pub first_failed_at: Option<String>,
    /// The error of the one just before.
    pub previous_error: Option<String>,
}

/// A health alert already in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedHealth {
    pub rule: String,
    /// `failing`, `stale` or `recovered`.
    pub kind: String,
    /// The outage it belongs to: the last successful full run before it (0: none).
    pub after_run: i64,
}

/// An outage a successful run ended: what a `recovered` alert says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outage {
    /// The last successful full run before it (0: none).
    pub after_run: i64,
    /// When that run finished.
    pub since: Option<String>,
    /// The full runs that failed during it.
    pub failed_runs: i64,
    pub failing_since: Option<String>,
    pub last_error: Option<String>,
    pub reason: Option<String>,
    pub exit_status: Option<i64>,
    /// The successful run that ended it, and when it finished.
    pub ended_by_run: i64,
    pub ended_at: Option<String>,
}

/// What the health rules decide from (`OutboxRules::health_due`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthState {
    /// When the check runs (RFC 3339, UTC).
    pub now: String,
    pub freshness: Freshness,
    /// Every health alert queued so far.
    pub queued: Vec<QueuedHealth>,
    /// Outages a rule was told of (`failing` or `stale` queued) that a success has ended
    /// since, without its `recovered` queued yet, by rule.
    pub ended: Vec<(String, Outage)>,
}

/// A health alert to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthAlert {
    pub rule: String,
    pub kind: &'static str,
    pub after_run: i64,
    /// The body, fixed when queued.
    pub payload: String,
}

/// The view, with the newest failure's reason and exit status (since run `?1`, the last
/// success) and when the first full run began.
const FRESHNESS: &str = "SELECT f.last_success_at, f.last_attempt_at, f.last_status, f.last_error,
        f.consecutive_failures, f.age_seconds, f.stale, f.stale_after_seconds, f.failing_since,
        f.hint, failed.reason, failed.exit_status,
        (SELECT min(coalesce(wall_clock_at, started_at)) FROM sync_runs WHERE kind = 'full')
    FROM mirror_freshness f
    LEFT JOIN (SELECT reason, exit_status FROM sync_runs
               WHERE kind = 'full' AND status = 'failed' AND sync_run_id > ?1
               ORDER BY sync_run_id DESC LIMIT 1) failed ON 1";

const LAST_SUCCESS: &str = "SELECT coalesce(max(sync_run_id), 0) FROM sync_runs
    WHERE kind = 'full' AND status = 'succeeded'";

fn read_freshness(conn: &rusqlite::Connection) -> rusqlite::Result<Freshness> {
    let last_success_run: i64 = conn.query_row(LAST_SUCCESS, [], |r| r.get(0))?;
    conn.query_row(FRESHNESS, [last_success_run], |r| {
        Ok(Freshness {
            last_success_at: r.get(0)?,
            last_attempt_at: r.get(1)?,
            last_status: r.get(2)?,
            last_error: r.get(3)?,
            consecutive_failures: r.get(4)?,
            age_seconds: r.get(5)?,
            stale: r.get::<_, Option<i64>>(6)?.map(|s| s != 0),
            stale_after_seconds: r.get(7)?,
            failing_since: r.get(8)?,
            hint: r.get(9)?,
            reason: r.get(10)?,
            exit_status: r.get(11)?,
            last_success_run,
            first_attempt_at: r.get(12)?,
        })
    })
}

/// The outage after successful run `after_run` that a later success ended, if one did.
fn ended_outage(conn: &rusqlite::Connection, after_run: i64) -> rusqlite::Result<Option<Outage>> {
    let ended: Option<(i64, Option<String>)> = conn
        .query_row(
            "SELECT sync_run_id, finished_at FROM sync_runs
             WHERE kind = 'full' AND status = 'succeeded' AND sync_run_id > ?1
             ORDER BY sync_run_id LIMIT 1",
            [after_run],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((ended_by_run, ended_at)) = ended else {
        return Ok(None);
    };
    let since: Option<String> = conn
        .query_row(
            "SELECT finished_at FROM sync_runs WHERE sync_run_id = ?1",
            [after_run],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let (failed_runs, failing_since): (i64, Option<String>) = conn.query_row(
        "SELECT count(*), min(coalesce(wall_clock_at, started_at)) FROM sync_runs
         WHERE kind = 'full' AND status = 'failed' AND sync_run_id > ?1 AND sync_run_id < ?2",
        [after_run, ended_by_run],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let last: Option<(Option<String>, Option<String>, Option<i64>)> = conn
        .query_row(
            "SELECT error, reason, exit_status FROM sync_runs
             WHERE kind = 'full' AND status = 'failed' AND sync_run_id > ?1 AND sync_run_id < ?2
             ORDER BY sync_run_id DESC LIMIT 1",
            [after_run, ended_by_run],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (last_error, reason, exit_status) = last.unwrap_or_default();
    Ok(Some(Outage {
        after_run,
        since,
        failed_runs,
        failing_since,
        last_error,
        reason,
        exit_status,
        ended_by_run,
        ended_at,
    }))
}

fn queued_health(tx: &Transaction<'_>) -> rusqlite::Result<Vec<QueuedHealth>> {
    let mut stmt = tx.prepare(
        "SELECT rule, health_kind, health_after_run FROM alert_outbox
         WHERE health_kind IS NOT NULL ORDER BY outbox_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(QueuedHealth {
            rule: r.get(0)?,
            kind: r.get(1)?,
            after_run: r.get(2)?,
        })
    })?;
    rows.collect()
}

impl Store {
    /// Whether the data is current (`mirror_freshness`); `None` for a mirror an older
    /// orgmirror wrote and no run has upgraded yet.
    pub fn freshness(&self) -> Result<Option<Freshness>, StoreError> {
        if !self.has_view("mirror_freshness")? {
            return Ok(None);
        }
        self.sql(read_freshness(&self.conn)).map(Some)
    }

    fn has_view(&self, name: &str) -> Result<bool, StoreError> {
        self.sql(self.conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        ))
    }

    /// How full run `run_id` stands among the full runs before it.
    pub fn run_streak(&self, run_id: i64) -> Result<RunStreak, StoreError> {
        let previous_success: i64 = self.sql(self.conn.query_row(
            "SELECT coalesce(max(sync_run_id), 0) FROM sync_runs
             WHERE kind = 'full' AND status = 'succeeded' AND sync_run_id < ?1",
            [run_id],
            |r| r.get(0),
        ))?;
        let (failed_before, first_failed_at): (i64, Option<String>) =
            self.sql(self.conn.query_row(
                "SELECT count(*), min(coalesce(wall_clock_at, started_at)) FROM sync_runs
                 WHERE kind = 'full' AND status = 'failed' AND sync_run_id > ?1 AND sync_run_id < ?2",
                [previous_success, run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            ))?;
        let previous_error: Option<Option<String>> = self.sql(
            self.conn
                .query_row(
                    "SELECT error FROM sync_runs
                     WHERE kind = 'full' AND status = 'failed' AND sync_run_id > ?1 AND sync_run_id < ?2
                     ORDER BY sync_run_id DESC LIMIT 1",
                    [previous_success, run_id],
                    |r| r.get(0),
                )
                .optional(),
        )?;
        Ok(RunStreak {
            failed_before,
            first_failed_at,
            previous_error: previous_error.flatten(),
        })
    }

    /// Queues the health alerts the mirror's state calls for under the store's alert rules
    /// (none without health rules), in one transaction of its own; returns how many. Each
    /// is queued at most once per rule, kind and outage, however often this runs.
    pub fn queue_health_alerts(&mut self, now: &str) -> Result<usize, StoreError> {
        let Some(rules) = self.outbox_rules.clone().filter(|r| r.watches_health()) else {
            return Ok(0);
        };
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite_error(&path))?;
        let queued = (|| -> rusqlite::Result<usize> {
            let freshness = read_freshness(&tx)?;
            let queued = queued_health(&tx)?;
            let mut ended = Vec::new();
            for q in &queued {
                let told = q.kind != "recovered" && q.after_run < freshness.last_success_run;
                let recovered = queued.iter().any(|o| {
                    o.rule == q.rule && o.kind == "recovered" && o.after_run == q.after_run
                });
                let listed = ended.iter().any(|(rule, o): &(String, Outage)| {
                    *rule == q.rule && o.after_run == q.after_run
                });
                if told && !recovered && !listed {
                    if let Some(outage) = ended_outage(&tx, q.after_run)? {
                        ended.push((q.rule.clone(), outage));
                    }
                }
            }
            let state = HealthState {
                now: now.to_string(),
                freshness,
                queued,
                ended,
            };
            let mut n = 0;
            for alert in rules.health_due(&state) {
                n += tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO alert_outbox
                             (rule, health_kind, health_after_run, queued_at, payload_json)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        alert.rule,
                        alert.kind,
                        alert.after_run,
                        now,
                        alert.payload
                    ])?;
            }
            Ok(n)
        })();
        queued
            .and_then(|n| tx.commit().map(|()| n))
            .map_err(sqlite_error(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    /// A mirror with these full runs: (status, started_at, finished_at, error).
    fn mirror(runs: &[(&str, &str, Option<&str>)]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.sqlite"), &StoreOptions::default()).unwrap();
        add(&store, runs);
        (dir, store)
    }

    fn add(store: &Store, runs: &[(&str, &str, Option<&str>)]) {
        for (status, started, finished) in runs {
            let failed = *status == "failed";
            store
                .connection()
                .execute(
                    "INSERT INTO sync_runs (kind, started_at, finished_at, status, error, reason,
                         hint, exit_status, stale_after_seconds)
                     VALUES ('full', ?1, ?2, ?3, ?4, ?5, ?6, ?7, 5400)",
                    params![
                        started,
                        finished,
                        status,
                        failed.then_some(format!("HTTP 401 at {started}")),
                        failed.then_some("API key expired (401)"),
                        failed.then_some("make a new key"),
                        failed.then_some(2)
                    ],
                )
                .unwrap();
        }
    }

    fn health_rules(store: &mut Store, on: &str) {
        let config = crate::config::Config::parse(&format!(
            "[api]\norganization_id = 1\nworkspace_id = 2\n[[alert]]\nname = \"down\"\non = {on}\n\
             failing_after = 2\ncommand = [\"/bin/true\"]\n"
        ))
        .unwrap();
        store.set_outbox_rules(crate::alerts::outbox_rules(&config));
    }

    fn queued(store: &Store) -> Vec<(String, i64)> {
        let mut stmt = store
            .connection()
            .prepare("SELECT health_kind, health_after_run FROM alert_outbox ORDER BY outbox_id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn the_view_counts_the_failures_since_the_last_success_of_full_runs_only() {
        let (_dir, store) = mirror(&[
            (
                "failed",
                "2026-11-28T07:00:00Z",
                Some("2026-11-28T07:00:01Z"),
            ),
            (
                "succeeded",
                "2026-11-28T08:00:00Z",
                Some("2026-11-28T08:00:09Z"),
            ),
            (
                "failed",
                "2026-11-28T08:30:00Z",
                Some("2026-11-28T08:30:01Z"),
            ),
            (
                "failed",
                "2026-11-28T09:00:00Z",
                Some("2026-11-28T09:00:01Z"),
            ),
        ]);
        // A group command's targeted refresh is not a full run.
        store
            .connection()
            .execute_batch(
                "INSERT INTO sync_runs (kind, started_at, finished_at, status)
                 VALUES ('targeted', '2026-11-28T09:10:00Z', '2026-11-28T09:10:01Z', 'succeeded')",
            )
            .unwrap();
        let f = store.freshness().unwrap().unwrap();
        assert_eq!(
            (
                f.last_success_at.as_deref(),
                f.last_attempt_at.as_deref(),
                f.last_status.as_deref(),
                f.consecutive_failures,
                f.failing_since.as_deref(),
                f.last_error.as_deref(),
                f.reason.as_deref(),
                f.exit_status,
                f.last_success_run,
                f.first_attempt_at.as_deref(),
            ),
            (
                Some("2026-11-28T08:00:09Z"),
                Some("2026-11-28T09:00:00Z"),
                Some("failed"),
                2,
                Some("2026-11-28T08:30:00Z"),
                Some("HTTP 401 at 2026-11-28T09:00:00Z"),
                Some("API key expired (401)"),
                Some(2),
                2,
                Some("2026-11-28T07:00:00Z"),
            )
        );
        // Long ago against a threshold of 1.5 h: stale, and the age computed when read.
        assert_eq!(f.stale, Some(true));
        assert!(f.age_seconds.unwrap() > 86_400, "{f:?}");
        assert_eq!(f.hint.as_deref(), Some("make a new key"));
    }

    #[test]
    fn a_mirror_without_runs_has_one_row_of_nothing() {
        let (_dir, store) = mirror(&[]);
        let f = store.freshness().unwrap().unwrap();
        assert_eq!(
            f,
            Freshness {
                consecutive_failures: 0,
                ..Freshness::default()
            }
        );
    }

    #[test]
    fn each_health_alert_is_queued_once_per_outage_however_often_the_check_runs() {
        let (_dir, mut store) = mirror(&[
            (
                "succeeded",
                "2026-11-28T08:00:00Z",
                Some("2026-11-28T08:00:09Z"),
            ),
            (
                "failed",
                "2026-11-28T08:30:00Z",
                Some("2026-11-28T08:30:01Z"),
            ),
        ]);
        health_rules(&mut store, "[\"failing\", \"recovered\"]");
        let now = "2026-11-28T09:00:05Z";
        assert_eq!(
            store.queue_health_alerts(now).unwrap(),
            0,
            "one failure of two"
        );
        add(
            &store,
            &[(
                "failed",
                "2026-11-28T09:00:00Z",
                Some("2026-11-28T09:00:01Z"),
            )],
        );
        for expected in [1, 0, 0] {
            assert_eq!(store.queue_health_alerts(now).unwrap(), expected);
        }
        add(
            &store,
            &[(
                "failed",
                "2026-11-28T09:30:00Z",
                Some("2026-11-28T09:30:01Z"),
            )],
        );
        assert_eq!(
            store.queue_health_alerts(now).unwrap(),
            0,
            "still the same outage"
        );
        add(
            &store,
            &[(
                "succeeded",
                "2026-11-28T10:00:00Z",
                Some("2026-11-28T10:00:05Z"),
            )],
        );
        for expected in [1, 0] {
            assert_eq!(store.queue_health_alerts(now).unwrap(), expected);
        }
        add(
            &store,
            &[
                (
                    "failed",
                    "2026-11-28T10:30:00Z",
                    Some("2026-11-28T10:30:01Z"),
                ),
                (
                    "failed",
                    "2026-11-28T11:00:00Z",
                    Some("2026-11-28T11:00:01Z"),
                ),
            ],
        );
        assert_eq!(store.queue_health_alerts(now).unwrap(), 1, "a new outage");
        assert_eq!(
            queued(&store),
            [
                ("failing".to_string(), 1),
                ("recovered".to_string(), 1),
                ("failing".to_string(), 5)
            ]
        );
        let recovered: String = store
            .connection()
            .query_row(
                "SELECT payload_json FROM alert_outbox WHERE health_kind = 'recovered'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&recovered).unwrap();
        assert_eq!(body["failed_runs"], 3, "{body}");
        assert_eq!(body["recovered_at"], "2026-11-28T10:00:05Z");
        assert_eq!(body["outage_seconds"], 7196);
        // Delivered as any alert, under its own key.
        let pending = store.pending_alerts(10).unwrap();
        assert_eq!(
            pending.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            [
                "health-failing-after-run-1",
                "health-recovered-after-run-1",
                "health-failing-after-run-5"
            ]
        );
        assert!(pending.iter().all(|p| p.event_id.is_none()));
    }

    #[test]
    fn without_health_rules_nothing_is_queued_and_the_outbox_is_not_touched() {
        let (_dir, mut store) = mirror(&[("failed", "2026-11-28T08:30:00Z", None)]);
        assert_eq!(
            store.queue_health_alerts("2026-11-28T09:00:00Z").unwrap(),
            0
        );
        let config = crate::config::Config::parse(
            "[api]\norganization_id = 1\nworkspace_id = 2\n[[alert]]\nname = \"a\"\nentity = \"user\"\ncommand = [\"/bin/true\"]\n",
        )
        .unwrap();
        store.set_outbox_rules(crate::alerts::outbox_rules(&config));
        assert_eq!(
            store.queue_health_alerts("2026-11-28T09:00:00Z").unwrap(),
            0
        );
        assert!(queued(&store).is_empty());
    }
}

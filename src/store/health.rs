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

const FRESHNESS: &str = "SELECT last_success_at, last_attempt_at, last_status, last_error,
        consecutive_failures, age_seconds, stale, stale_after_seconds, failing_since, hint,
        (SELECT reason FROM sync_runs WHERE kind = 'full' AND status = 'failed'
           AND sync_run_id > ?1 ORDER BY sync_run_id DESC LIMIT 1),
        (SELECT exit_status FROM sync_runs WHERE kind = 'full' AND status = 'failed'
           AND sync_run_id > ?1 ORDER BY sync_run_id DESC LIMIT 1),
        (SELECT min(coalesce(wall_clock_at, started_at)) FROM sync_runs WHERE kind = 'full')
    FROM mirror_freshness";

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

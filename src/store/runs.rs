//! A run's rows: its `sync_runs` row begun, failed or abandoned, the stored state it diffs
//! against, its commit (`write.rs`) and checkpoint, and what earlier runs recorded for the
//! next (page sizes, id filter forms, pending absences, the last quota).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rusqlite::{params, OptionalExtension};

use super::{clock, sqlite_error, write, RunTotals, Store, StoreError, INTERRUPTED};
use crate::diff::Diff;
use crate::model::{Entity, EntityKey, StoredHashes, StoredState};

/// Why a run did not commit, as its `sync_runs` row keeps it ([`Store::fail_run`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFailure {
    /// The whole error (`sync_runs.error`).
    pub error: String,
    /// A short form: the server's reason and the HTTP status, e.g. `API key expired (401)`.
    pub reason: String,
    /// What to do about it.
    pub hint: String,
    /// The exit status `orgmirror sync` ends with for it (`exit::status`); `None` when the
    /// caller did not say.
    pub exit_status: Option<i64>,
}

/// A run's time and the clock behind it ([`Store::run_times`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTimes {
    /// `started_at`: what its history rows and events carry.
    pub at: String,
    /// What the wall clock said when it began.
    pub wall_clock: String,
    /// The wall clock was behind the one the last committed run saw.
    pub clock_went_back: bool,
}

/// One row of `sync_runs`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyncRunRow {
    pub sync_run_id: i64,
    pub kind: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub requests: i64,
    pub events_written: i64,
    pub quota_remaining: Option<i64>,
    pub quota_resets_at: Option<String>,
    /// Events by entity and op.
    pub events: BTreeMap<String, BTreeMap<String, i64>>,
    /// The process that ran it.
    pub pid: Option<i64>,
    /// The wall clock the run saw when it began, where it differs from `started_at` (the
    /// run's time: a clock behind the last committed run's is clamped past it).
    pub wall_clock_at: Option<String>,
    /// Records the run could not read, each kept at its last good version.
    pub quarantined: Vec<crate::model::Quarantined>,
    /// Time the run waited for its request pacing (`api.max_requests_per_second`).
    pub pacing_wait_ms: i64,
}

impl Store {
    /// Records the start of a run, after marking runs of dead processes as interrupted,
    /// with the age after which the mirror counts as stale (`mirror_freshness`).
    /// Does not wait when another connection (a BI tool writing, `sqlite3`) holds SQLite's
    /// write lock: it fails at once with an error for which [`StoreError::is_busy`] holds,
    /// so that an async caller can wait asleep ([`retry_while_busy`]).
    pub fn begin_run(
        &mut self,
        kind: &str,
        started_at: &str,
        stale_after_seconds: Option<i64>,
    ) -> Result<i64, StoreError> {
        self.lock_writer()?;
        let begun = self.with_busy_timeout(Duration::ZERO, |s| {
            s.insert_run(kind, started_at, stale_after_seconds)
        });
        if begun.is_err() {
            // No run to finish: let other writers in (a busy database, say), or an idle
            // daemon would keep every manual sync out until its next run.
            self.release_writer();
        }
        begun
    }

    fn insert_run(
        &mut self,
        kind: &str,
        wall_clock: &str,
        stale_after_seconds: Option<i64>,
    ) -> Result<i64, StoreError> {
        let pid = i64::from(std::process::id());
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(sqlite_error(&path))?;
        let id = tx
            .execute(
                "UPDATE sync_runs SET status = 'failed', error = ?1, finished_at = ?2 WHERE status = 'running'",
                params![INTERRUPTED, wall_clock],
            )
            // Read under the writer lock, in the transaction that records the run: no
            // other run can commit in between.
            .and_then(|_| clock::run_time(&tx, wall_clock))
            .and_then(|started_at| {
                tx.execute(
                    "INSERT INTO sync_runs (kind, started_at, wall_clock_at, status, pid, stale_after_seconds)
                     VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
                    params![kind, started_at, wall_clock, pid, stale_after_seconds],
                )
            })
            .map(|_| tx.last_insert_rowid())
            .and_then(|id| tx.commit().map(|_| id))
            .map_err(sqlite_error(&path))?;
        Ok(id)
    }

    /// A run's time (`started_at`, which its history rows and events carry), the wall
    /// clock it saw when it began (they differ when the clock was not past the last
    /// committed run's time, see `clock::run_time`), and whether that clock was behind the
    /// one the last committed run saw: stepped back, not merely a second run in one second.
    pub fn run_times(&self, run_id: i64) -> Result<RunTimes, StoreError> {
        let (at, wall_clock, last_wall_clock): (String, String, Option<String>) =
            self.sql(self.conn.query_row(
                "SELECT started_at, coalesce(wall_clock_at, started_at),
                        (SELECT coalesce(wall_clock_at, started_at) FROM sync_runs
                         WHERE status = 'succeeded' AND sync_run_id < ?1
                         ORDER BY sync_run_id DESC LIMIT 1)
                 FROM sync_runs WHERE sync_run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            ))?;
        let clock_went_back = clock::went_back(&wall_clock, last_wall_clock.as_deref());
        Ok(RunTimes {
            at,
            wall_clock,
            clock_went_back,
        })
    }

    /// Marks a run failed, with why and what to do; nothing else changes.
    pub fn fail_run(
        &mut self,
        run_id: i64,
        failure: &RunFailure,
        finished_at: &str,
        totals: &RunTotals,
    ) -> Result<(), StoreError> {
        let r = self.conn.execute(
            "UPDATE sync_runs SET status = 'failed', error = ?2, finished_at = ?3, requests = ?4,
                 quota_remaining = ?5, quota_resets_at = ?6, events_written = 0, pacing_wait_ms = ?7,
                 reason = ?8, hint = ?9, exit_status = ?10
             WHERE sync_run_id = ?1",
            params![
                run_id,
                failure.error,
                finished_at,
                totals.requests,
                totals.quota_remaining,
                totals.quota_resets_at,
                totals.pacing_wait_ms,
                failure.reason,
                failure.hint,
                failure.exit_status
            ],
        );
        self.sql(r).map(|_| ())
    }

    /// Marks every `running` row failed with `reason` (a run abandoned at shutdown; its
    /// commit is one transaction, so nothing of it was half-written). Returns the rows marked.
    pub fn abandon_running(
        &mut self,
        reason: &str,
        finished_at: &str,
    ) -> Result<usize, StoreError> {
        // Best effort on the way out (the next run marks it interrupted anyway): a database
        // another writer holds is not waited for long.
        let wait = self.busy_timeout().min(Duration::from_secs(1));
        self.with_busy_timeout(wait, |s| {
            let r = s.conn.execute(
                "UPDATE sync_runs SET status = 'failed', error = ?1, finished_at = ?2 WHERE status = 'running'",
                params![reason, finished_at],
            );
            s.sql(r)
        })
    }

    /// Every current entity's hashes: what a run diffs against.
    pub fn stored_state(&self) -> Result<StoredState, StoreError> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT entity, id, sub_id, data_hash, unknown_hash FROM entity_history WHERE valid_to IS NULL",
        ))?;
        let rows = self.sql(stmt.query_map([], |r| {
            let entity = Entity::parse(r.get_ref(0)?.as_str()?);
            let key = entity.map(|entity| EntityKey {
                entity,
                id: 0,
                sub_id: 0,
            });
            Ok((
                key,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        }))?;
        let mut pairs = Vec::new();
        for row in rows {
            // Rows of an entity kind this version does not know are left alone.
            if let (Some(key), id, sub_id, data, unknown) = self.sql(row)? {
                pairs.push((
                    EntityKey { id, sub_id, ..key },
                    StoredHashes { data, unknown },
                ));
            }
        }
        drop(stmt);
        // The index pages just read are not needed again this run: give the cache back.
        self.sql(self.conn.execute_batch("PRAGMA shrink_memory"))?;
        Ok(pairs.into_iter().collect())
    }

    /// Commits a run whole: current tables, history, events and the `sync_runs` row.
    pub fn commit_run(
        &mut self,
        run_id: i64,
        diff: &Diff<'_>,
        workspace_names: &BTreeMap<i64, String>,
        observed_at: &str,
        totals: &RunTotals,
    ) -> Result<BTreeMap<(Entity, &'static str), usize>, StoreError> {
        let path = self.path.clone();
        // SQLite does not check the declared foreign keys while a run commits (it costs a
        // third of each event's insert); the tests check them after every sync
        // (`PRAGMA foreign_key_check`). The pragma only takes outside a transaction.
        self.sql(self.conn.execute_batch("PRAGMA foreign_keys=OFF"))?;
        let cutoff = self.retention.and_then(|period| {
            let at = chrono::DateTime::parse_from_rfc3339(observed_at).ok()?;
            Some(crate::clock::format_utc(period.cutoff(at.to_utc())))
        });
        let committed = write::commit(
            &mut self.conn,
            run_id,
            diff,
            workspace_names,
            observed_at,
            totals,
            &write::AfterChanges {
                outbox: self.outbox_rules.as_deref(),
                retention_cutoff: cutoff.as_deref(),
            },
        )
        .map_err(sqlite_error(&path));
        if let Err(error) = self.conn.execute_batch("PRAGMA foreign_keys=ON") {
            tracing::warn!(%error, "could not turn foreign key checks back on after a commit");
        }
        committed
    }

    /// After a run: fold the WAL back into the database so it does not grow while
    /// readers come and go. Returns whether the checkpoint completed (a reader holding
    /// an old snapshot makes it partial; the next run tries again).
    pub fn checkpoint(&self) -> Result<bool, StoreError> {
        let busy: i64 = self.sql(self.conn.query_row(
            "PRAGMA wal_checkpoint(TRUNCATE)",
            [],
            |r| r.get(0),
        ))?;
        Ok(busy == 0)
    }

    /// The newest runs, newest first.
    pub fn recent_runs(&self, limit: usize) -> Result<Vec<SyncRunRow>, StoreError> {
        self.runs_where("1", limit)
    }

    /// The newest failed (or refused) run.
    pub fn last_failed_run(&self) -> Result<Option<SyncRunRow>, StoreError> {
        Ok(self.runs_where("status = 'failed'", 1)?.into_iter().next())
    }

    fn runs_where(
        &self,
        condition: &'static str,
        limit: usize,
    ) -> Result<Vec<SyncRunRow>, StoreError> {
        // A mirror not migrated yet (read by `status` before a run) has no such columns.
        let issue_15 = if self.has_column("sync_runs", "quarantined_json")? {
            "wall_clock_at, quarantined_json"
        } else {
            "NULL, NULL"
        };
        let issue_13 = if self.has_column("sync_runs", "pacing_wait_ms")? {
            "pacing_wait_ms"
        } else {
            "0"
        };
        let mut stmt = self.sql(self.conn.prepare(&format!(
            "SELECT sync_run_id, kind, started_at, finished_at, status, error, requests, events_written,
                    quota_remaining, quota_resets_at, summary_json, pid, {issue_15}, {issue_13}
             FROM sync_runs WHERE {condition} ORDER BY sync_run_id DESC LIMIT ?1"
        )))?;
        let rows = self.sql(stmt.query_map([limit as i64], |r| {
            let summary: Option<String> = r.get(10)?;
            let started_at: String = r.get(2)?;
            let wall_clock_at: Option<String> = r.get(12)?;
            let quarantined: Option<String> = r.get(13)?;
            Ok(SyncRunRow {
                sync_run_id: r.get(0)?,
                kind: r.get(1)?,
                finished_at: r.get(3)?,
                status: r.get(4)?,
                error: r.get(5)?,
                requests: r.get(6)?,
                events_written: r.get(7)?,
                quota_remaining: r.get(8)?,
                quota_resets_at: r.get(9)?,
                events: summary
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or_default(),
                pid: r.get(11)?,
                pacing_wait_ms: r.get(14)?,
                wall_clock_at: wall_clock_at.filter(|w| *w != started_at),
                started_at,
                quarantined: quarantined
                    .and_then(|q| serde_json::from_str(&q).ok())
                    .unwrap_or_default(),
            })
        }))?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// The newest succeeded run: what the mirror's current state is.
    pub fn last_succeeded_run(&self) -> Result<Option<SyncRunRow>, StoreError> {
        Ok(self
            .runs_where("status = 'succeeded' AND kind <> 'erasure'", 1)?
            .into_iter()
            .next())
    }

    /// The page sizes the API accepted after refusing larger ones, per list (`users`,
    /// `teams`): where the next run starts.
    pub fn page_sizes(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let mut stmt = self.sql(
            self.conn
                .prepare("SELECT list, per_page FROM api_page_sizes ORDER BY list"),
        )?;
        let rows = self.sql(stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))))?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// Remembers the page size the API accepted for `list` (`users` or `teams`) after
    /// refusing a larger one. Outside any run's transaction: it is what the API taught,
    /// kept whether the run that learned it succeeded or not.
    pub fn remember_page_size(
        &self,
        list: &str,
        per_page: u32,
        at: &str,
    ) -> Result<(), StoreError> {
        self.sql(self.conn.execute(
            "INSERT INTO api_page_sizes (list, per_page, learned_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (list) DO UPDATE SET per_page = excluded.per_page, learned_at = excluded.learned_at
             WHERE excluded.per_page <> api_page_sizes.per_page",
            params![list, per_page, at],
        ))?;
        Ok(())
    }

    /// The id filter form each list (`users`, `teams`) was found to honour, with when:
    /// (list, form, learned_at).
    pub fn filter_forms(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut stmt = self.sql(
            self.conn
                .prepare("SELECT list, form, learned_at FROM api_filter_forms ORDER BY list"),
        )?;
        let rows = self.sql(stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// Remembers the id filter form `list` honours (`comma`, `brackets` or `none`), as a
    /// request showed it at `at`. Outside any run's transaction, like the page sizes.
    pub fn remember_filter_form(&self, list: &str, form: &str, at: &str) -> Result<(), StoreError> {
        self.sql(self.conn.execute(
            "INSERT INTO api_filter_forms (list, form, learned_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (list) DO UPDATE SET form = excluded.form, learned_at = excluded.learned_at",
            params![list, form, at],
        ))?;
        Ok(())
    }

    /// The users and groups the last complete pulls missed without an id filter to ask
    /// them by: gone if the next complete pull misses them too.
    pub fn pending_absences(&self) -> Result<BTreeSet<EntityKey>, StoreError> {
        let mut stmt = self.sql(
            self.conn
                .prepare("SELECT entity, entity_id FROM pending_absences ORDER BY 1, 2"),
        )?;
        let rows =
            self.sql(stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))))?;
        let mut keys = std::collections::BTreeSet::new();
        for row in rows {
            let (entity, id) = self.sql(row)?;
            let entity = match entity.as_str() {
                "user" => Entity::User,
                _ => Entity::Group,
            };
            keys.insert(EntityKey::new(entity, id));
        }
        Ok(keys)
    }

    /// The quota the newest run that saw one recorded: (remaining, resets_at).
    pub fn last_quota(&self) -> Result<Option<(i64, Option<String>)>, StoreError> {
        self.sql(
            self.conn
                .query_row(
                    "SELECT quota_remaining, quota_resets_at FROM sync_runs
                     WHERE quota_remaining IS NOT NULL ORDER BY sync_run_id DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional(),
        )
    }

    /// Requests the newest successful full run needed: what the next one will likely need.
    pub fn last_full_run_requests(&self) -> Result<Option<i64>, StoreError> {
        // The audit backlog spends only what the cadence leaves: it is no part of the cost.
        let backlog = if self.has_column("sync_runs", "audit_backlog_requests")? {
            "audit_backlog_requests"
        } else {
            "0"
        };
        self.sql(
            self.conn
                .query_row(
                    &format!(
                        "SELECT requests - {backlog} FROM sync_runs
                         WHERE kind = 'full' AND status = 'succeeded'
                         ORDER BY sync_run_id DESC LIMIT 1"
                    ),
                    [],
                    |r| r.get(0),
                )
                .optional(),
        )
    }
}

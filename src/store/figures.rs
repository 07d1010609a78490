//! The figures `/metrics`, `/healthz` and the auto schedule read from the database.

use rusqlite::OptionalExtension;

use super::{sqlite_error, RuleBacklog, Store, StoreError};

impl Store {
    /// What `/metrics` and `/healthz` report, read in one snapshot.
    pub fn scrape_figures(&mut self) -> Result<ScrapeFigures, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(sqlite_error(&path))?;
        let figures = (|| -> rusqlite::Result<ScrapeFigures> {
            let mut f = ScrapeFigures::default();
            let mut stmt = tx.prepare(
                "SELECT status, count(*), sum(requests) FROM sync_runs GROUP BY status ORDER BY status",
            )?;
            for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
                let (status, n, requests): (String, i64, Option<i64>) = row?;
                f.requests += requests.unwrap_or(0);
                f.runs.push((status, n));
            }
            f.last_success = tx
                .query_row(
                    "SELECT finished_at FROM sync_runs WHERE status = 'succeeded' AND kind <> 'erasure'
                     ORDER BY sync_run_id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            f.last_run = tx
                .query_row(
                    "SELECT status, started_at, finished_at, error FROM sync_runs
                     WHERE status != 'running' AND kind <> 'erasure' ORDER BY sync_run_id DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let mut stmt =
                tx.prepare("SELECT entity, op, count(*) FROM change_log GROUP BY 1, 2 ORDER BY 1, 2")?;
            for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
                f.events.push(row?);
            }
            Ok(f)
        })()
        .map_err(sqlite_error(&path))?;
        drop(tx);
        let mut figures = figures;
        // A mirror not migrated yet has no quarantine column.
        if self.has_column("sync_runs", "quarantined_json")? {
            figures.quarantined = self
                .sql(
                    self.conn
                        .query_row(
                            "SELECT coalesce(json_array_length(quarantined_json), 0) FROM sync_runs
                 WHERE status = 'succeeded' AND kind <> 'erasure' ORDER BY sync_run_id DESC LIMIT 1",
                            [],
                            |r| r.get(0),
                        )
                        .optional(),
                )?
                .unwrap_or(0);
        }
        figures.quota = self.last_quota()?;
        figures.alerts = self.alert_backlog()?;
        figures.freshness = self.freshness()?;
        Ok(figures)
    }

    /// The hourly quota the `X-Toggl-Quota-*` headers imply: the most requests a recent
    /// run spent plus what was left after it (a lower bound; exact for a run that began
    /// a fresh window).
    pub fn hourly_quota_seen(&self) -> Result<Option<i64>, StoreError> {
        self.sql(self.conn.query_row(
            "SELECT max(quota_remaining + requests) FROM (
                 SELECT quota_remaining, requests FROM sync_runs
                 WHERE quota_remaining IS NOT NULL ORDER BY sync_run_id DESC LIMIT 50)",
            [],
            |r| r.get(0),
        ))
    }
}

/// The database's figures for `/metrics` and `/healthz`.
#[derive(Debug, Clone, Default)]
pub struct ScrapeFigures {
    /// Runs by status.
    pub runs: Vec<(String, i64)>,
    /// Requests of every run.
    pub requests: i64,
    /// `finished_at` of the newest successful run.
    pub last_success: Option<String>,
    /// The newest finished run: status, started_at, finished_at, error.
    pub last_run: Option<(String, String, Option<String>, Option<String>)>,
    /// Events by entity and op.
    pub events: Vec<(String, String, i64)>,
    /// Records the newest successful run quarantined (kept at their last good version).
    pub quarantined: i64,
    /// Remaining, resets_at.
    pub quota: Option<(i64, Option<String>)>,
    pub alerts: Vec<RuleBacklog>,
    /// Whether the data is current (`mirror_freshness`).
    pub freshness: Option<super::Freshness>,
}

//! Spreads a mirror's runs over time, as if each had run `step` after the one before, so
//! that a history built in minutes reads like one built over a year (the query scenario's;
//! a mirror's history is otherwise never rewritten).

use std::path::Path;

use rusqlite::Connection;

/// Gives run `k` (the k-th by id, from 0) the time `first + k * step` everywhere a run's
/// time is written (`sync_runs`, `change_log`, `entity_history`), keeping one time per run,
/// in one transaction. Returns the runs retimed.
pub fn respace_runs(
    db: &Path,
    first: chrono::DateTime<chrono::Utc>,
    step: chrono::Duration,
) -> rusqlite::Result<usize> {
    let mut conn = Connection::open(db)?;
    let tx = conn.transaction()?;
    let ids: Vec<i64> = tx
        .prepare("SELECT sync_run_id FROM sync_runs ORDER BY sync_run_id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    tx.execute_batch(
        "CREATE TEMP TABLE run_times (sync_run_id INTEGER PRIMARY KEY, at TEXT NOT NULL)",
    )?;
    let mut at = first;
    for id in &ids {
        tx.execute(
            "INSERT INTO run_times VALUES (?1, ?2)",
            rusqlite::params![id, orgmirror::format_utc(at)],
        )?;
        at += step;
    }
    tx.execute_batch(
        "UPDATE sync_runs SET started_at = t.at, finished_at = t.at
         FROM run_times t WHERE t.sync_run_id = sync_runs.sync_run_id;
         UPDATE change_log SET observed_at = t.at
         FROM run_times t WHERE t.sync_run_id = change_log.sync_run_id;
         UPDATE entity_history SET
             valid_from = (SELECT at FROM run_times WHERE sync_run_id = opened_by),
             valid_to = (SELECT at FROM run_times WHERE sync_run_id = closed_by);
         DROP TABLE run_times;",
    )?;
    tx.commit()?;
    Ok(ids.len())
}

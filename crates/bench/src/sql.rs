//! For `orgmirror bench` only: the store floor (SQLite alone copying a mirror's rows into
//! a new one), the counts a measurement reports, and the canned queries timed. Nothing
//! here is used by a command people run.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, ToSql};

use super::{canned_query, Store};

/// A bench query that failed, with what it was reading when that says more.
#[derive(Debug, thiserror::Error)]
pub enum BenchQueryError {
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// `what`: a table, or the SQL that failed.
    #[error("{what}: {source}")]
    Of {
        what: String,
        source: rusqlite::Error,
    },
}

fn of(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> BenchQueryError {
    move |source| BenchQueryError::Of {
        what: what.into(),
        source,
    }
}

/// The values the canned queries are asked with: a group, a day, a person.
pub struct CannedArguments {
    pub group: String,
    pub day: String,
    pub person: String,
}

/// A canned query timed: its plan, the rows it returned and each run's wall time.
pub struct CannedTiming {
    /// `EXPLAIN QUERY PLAN`, one detail a line.
    pub plan: Vec<String>,
    pub rows: usize,
    pub times: Vec<Duration>,
}

impl Store {
    /// The store floor: fills this new mirror with every row of the one at `from`, by
    /// SQLite alone, in one transaction, then checkpoints like a sync.
    pub fn fill_from_for_bench(&self, from: &Path) -> Result<(), BenchQueryError> {
        let conn = &self.conn;
        // As the sync's writer connection has it.
        conn.execute_batch("PRAGMA foreign_keys=OFF")?;
        conn.execute("ATTACH DATABASE ?1 AS src", [from.display().to_string()])?;
        let tables = table_names(conn, "src")?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for t in &tables {
            conn.execute(
                &format!("INSERT INTO main.\"{t}\" SELECT * FROM src.\"{t}\" WHERE true"),
                [],
            )
            .map_err(of(t))?;
        }
        conn.execute_batch("COMMIT; DETACH DATABASE src; PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    /// Rows in every table but `sync_runs`.
    pub fn rows_outside_sync_runs(&self) -> Result<i64, BenchQueryError> {
        let tables = table_names(&self.conn, "main")?;
        let mut total = 0i64;
        for t in tables.into_iter().filter(|t| t != "sync_runs") {
            let n: i64 = self
                .conn
                .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                .map_err(of(t))?;
            total += n;
        }
        Ok(total)
    }

    /// `(sync_run_id, status)` of the newest run.
    pub fn last_run_for_bench(&self) -> Result<(i64, String), BenchQueryError> {
        Ok(self.conn.query_row(
            "SELECT sync_run_id, status FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// `(change_events rows, entity_history rows opened or closed)` of run `run`.
    pub fn rows_written_by(&self, run: i64) -> Result<(i64, i64), BenchQueryError> {
        let events: i64 = self.conn.query_row(
            "SELECT count(*) FROM change_events WHERE sync_run_id = ?1",
            [run],
            |r| r.get(0),
        )?;
        let history: i64 = self.conn.query_row(
            include_str!("queries/run_history_rows.sql").trim_end(),
            [run],
            |r| r.get(0),
        )?;
        Ok((events, history))
    }

    /// Rows in `entity_history`.
    pub fn history_row_count(&self) -> Result<i64, BenchQueryError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM entity_history", [], |r| r.get(0))?)
    }

    /// The busiest group now, a day half-way through `churn_runs` weekly runs (today
    /// without one), the person whose rate changed most.
    pub fn canned_arguments(&self, churn_runs: usize) -> Result<CannedArguments, BenchQueryError> {
        let pick = |sql: &str| -> Result<String, BenchQueryError> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, Value>(0))
                .map(|v| match v {
                    Value::Integer(i) => i.to_string(),
                    Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
                .map_err(of(sql))
        };
        let group = pick(
            "SELECT group_id FROM group_members GROUP BY group_id ORDER BY count(*) DESC LIMIT 1",
        )?;
        let day = pick(&format!(
            "SELECT date(valid_from) FROM entity_history WHERE opened_by = {} LIMIT 1",
            1 + churn_runs / 2
        ))
        .or_else(|_| pick("SELECT date('now')"))?;
        let person = pick(include_str!("queries/bench_person.sql").trim_end())?;
        Ok(CannedArguments { group, day, person })
    }

    /// Canned query `name`'s plan, then the query run `repeats` times (each timed, its
    /// rows stepped through), with the arguments it names.
    pub fn time_canned_query(
        &self,
        name: &str,
        arguments: &CannedArguments,
        repeats: usize,
    ) -> Result<CannedTiming, BenchQueryError> {
        let sql = canned_query(name).unwrap_or_default();
        let params: Vec<(&str, &dyn ToSql)> = [
            (":group", &arguments.group as &dyn ToSql),
            (":day", &arguments.day),
            (":person", &arguments.person),
        ]
        .into_iter()
        .filter(|(p, _)| sql.contains(p))
        .collect();
        let plan = explain(&self.conn, sql, &params)?;
        let mut times = Vec::with_capacity(repeats);
        let mut rows = 0;
        for _ in 0..repeats {
            let started = Instant::now();
            rows = count_rows(&self.conn, sql, &params)?;
            times.push(started.elapsed());
        }
        Ok(CannedTiming { plan, rows, times })
    }
}

/// Rows of `users_current` in the database file at `path` (an `asof` copy).
pub fn users_current_in(path: &Path) -> Result<i64, BenchQueryError> {
    let copy = Connection::open(path)?;
    Ok(
        copy.query_row("SELECT count(*) FROM users_current", [], |r| {
            r.get::<_, i64>(0)
        })?,
    )
}

/// The tables of database `schema` (`main`, or an attached one), SQLite's own left out.
fn table_names(conn: &Connection, schema: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare(&format!(
        "SELECT name FROM \"{schema}\".sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ))?
    .query_map([], |r| r.get(0))?
    .collect()
}

type Params<'a> = [(&'a str, &'a dyn ToSql)];

fn explain(conn: &Connection, sql: &str, params: &Params) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let rows = stmt.query_map(params, |r| r.get::<_, String>(3))?;
    rows.collect()
}

fn count_rows(conn: &Connection, sql: &str, params: &Params) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(params)?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok(n)
}

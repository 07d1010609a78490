//! The benchmark's own SQL on the mirrors it builds (dev tooling: the product's SQL is the
//! store's): the store floor, the rows a run wrote, and the canned queries timed.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, ToSql};

/// A query of the benchmark that failed, with what it was reading.
#[derive(Debug)]
pub struct SqlError {
    /// A database, a table, or the SQL that failed.
    what: String,
    source: rusqlite::Error,
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

fn of(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> SqlError {
    move |source| SqlError {
        what: what.into(),
        source,
    }
}

/// Opens a mirror read-only (what a reader does: no checkpoint when it closes).
pub fn read(db: &Path) -> Result<Connection, SqlError> {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(of(db.display().to_string()))
}

/// The store floor: a new database `into` with the schema of the mirror `from` and a sync's
/// settings (WAL, `synchronous=FULL`, its 16 MiB cache, foreign keys off as a run's commit
/// has them), filled with every row of `from` by SQLite alone in one transaction, row by row
/// (`WHERE true` defeats the transfer optimisation), then checkpointed like a sync.
pub fn store_floor(from: &Path, into: &Path) -> Result<(), SqlError> {
    let conn = Connection::open(into).map_err(of(into.display().to_string()))?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
        .and_then(|_| {
            conn.execute_batch(
                "PRAGMA synchronous=FULL; PRAGMA cache_size=-16384; PRAGMA foreign_keys=OFF;",
            )
        })
        .map_err(of("pragmas"))?;
    conn.execute("ATTACH DATABASE ?1 AS src", [from.display().to_string()])
        .map_err(of(from.display().to_string()))?;
    let schema: Vec<String> = conn
        .prepare(
            "SELECT sql FROM src.sqlite_schema WHERE sql IS NOT NULL \
             AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        )
        .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
        .map_err(of("the schema"))?;
    for sql in &schema {
        conn.execute_batch(sql).map_err(of(sql.as_str()))?;
    }
    let tables = table_names(&conn, "src")?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(of("BEGIN"))?;
    for t in &tables {
        conn.execute(
            &format!("INSERT INTO main.\"{t}\" SELECT * FROM src.\"{t}\" WHERE true"),
            [],
        )
        .map_err(of(t))?;
    }
    conn.execute_batch("COMMIT; DETACH DATABASE src; PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(of("COMMIT"))?;
    Ok(())
}

/// Rows in every table but `sync_runs`.
pub fn rows_outside_sync_runs(conn: &Connection) -> Result<i64, SqlError> {
    let mut total = 0i64;
    for t in table_names(conn, "main")?
        .into_iter()
        .filter(|t| t != "sync_runs")
    {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
            .map_err(of(&t))?;
        total += n;
    }
    Ok(total)
}

/// `(sync_run_id, status)` of the newest run.
pub fn last_run(conn: &Connection) -> Result<(i64, String), SqlError> {
    conn.query_row(
        "SELECT sync_run_id, status FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(of("sync_runs"))
}

/// `(change_events rows, entity_history rows opened or closed)` of run `run`.
pub fn rows_written_by(conn: &Connection, run: i64) -> Result<(i64, i64), SqlError> {
    let events: i64 = conn
        .query_row(
            "SELECT count(*) FROM change_events WHERE sync_run_id = ?1",
            [run],
            |r| r.get(0),
        )
        .map_err(of("change_events"))?;
    let history: i64 = conn
        .query_row(
            include_str!("sql/run_history_rows.sql").trim_end(),
            [run],
            |r| r.get(0),
        )
        .map_err(of("entity_history"))?;
    Ok((events, history))
}

/// Rows of `table`.
pub fn count(conn: &Connection, table: &str) -> Result<i64, SqlError> {
    conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
        r.get(0)
    })
    .map_err(of(table))
}

/// The values the canned queries are asked with: a group, a day, a person.
pub struct CannedArguments {
    pub group: String,
    pub day: String,
    pub person: String,
}

/// The busiest group now, a day half-way through `churn_runs` weekly runs (today without
/// one), the person whose rate changed most.
pub fn canned_arguments(conn: &Connection, churn_runs: usize) -> Result<CannedArguments, SqlError> {
    let pick = |sql: &str| -> Result<String, SqlError> {
        conn.query_row(sql, [], |r| r.get::<_, Value>(0))
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
    let person = pick(include_str!("sql/bench_person.sql").trim_end())?;
    Ok(CannedArguments { group, day, person })
}

/// A canned query timed: its plan, the rows it returned and each run's wall time.
pub struct CannedTiming {
    /// `EXPLAIN QUERY PLAN`, one detail a line.
    pub plan: Vec<String>,
    pub rows: usize,
    pub times: Vec<Duration>,
}

/// The plan of canned query `sql`, then the query run `repeats` times (each timed, its rows
/// stepped through), with the arguments it names.
pub fn time_canned_query(
    conn: &Connection,
    sql: &str,
    arguments: &CannedArguments,
    repeats: usize,
) -> Result<CannedTiming, SqlError> {
    let params: Vec<(&str, &dyn ToSql)> = [
        (":group", &arguments.group as &dyn ToSql),
        (":day", &arguments.day),
        (":person", &arguments.person),
    ]
    .into_iter()
    .filter(|(p, _)| sql.contains(p))
    .collect();
    let plan = explain(conn, sql, &params).map_err(of(sql))?;
    let mut times = Vec::with_capacity(repeats);
    let mut rows = 0;
    for _ in 0..repeats {
        let started = Instant::now();
        rows = count_rows(conn, sql, &params).map_err(of(sql))?;
        times.push(started.elapsed());
    }
    Ok(CannedTiming { plan, rows, times })
}

/// The tables of database `schema` (`main`, or an attached one), SQLite's own left out.
fn table_names(conn: &Connection, schema: &str) -> Result<Vec<String>, SqlError> {
    conn.prepare(&format!(
        "SELECT name FROM \"{schema}\".sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ))
    .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
    .map_err(of(format!("the tables of {schema}")))
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

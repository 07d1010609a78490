//! The query scenario of `orgmirror-bench`: a mirror after a year of weekly churn (a first
//! sync, then `--churn-runs` syncs each after 1% of the users changed, the runs spread a
//! week apart afterwards), and what people ask of it: the canned queries of
//! `datasette/metadata.yml` (as-of members of one group, one person's rate history, the
//! 12-month headcount, …) timed in this process, and `asof` of the whole organization and
//! `changes --since 7d` as the commands people run (child processes, like the syncs).
//! Each query's plan (`EXPLAIN QUERY PLAN`) is kept beside its time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::canned::CANNED_QUERIES;

use crate::child::run_child;
use crate::scenarios::{apply_churn, file_size, BenchOrg};
use crate::{failed, respace, sql, BenchError, Binaries};

/// Times each in-process query runs; the median is reported.
const REPEATS: usize = 7;

/// One timed question.
pub struct QueryMeasurement {
    pub size: usize,
    pub query: String,
    /// Median and fastest wall time.
    pub median: Duration,
    pub fastest: Duration,
    pub rows: usize,
    /// `EXPLAIN QUERY PLAN`, one detail a line (None for commands).
    pub plan: Option<Vec<String>>,
    /// Peak RSS of a command's process.
    pub peak_rss_kib: Option<i64>,
}

impl QueryMeasurement {
    pub fn to_json(&self) -> Value {
        json!({
            "size": self.size,
            "query": self.query,
            "median_ms": self.median.as_secs_f64() * 1e3,
            "fastest_ms": self.fastest.as_secs_f64() * 1e3,
            "rows": self.rows,
            "plan": self.plan,
            "peak_rss_kib": self.peak_rss_kib,
        })
    }
}

/// Builds the year at `size` users and times the questions. Returns the measurements and
/// what building cost (for the JSON).
pub fn measure(
    binaries: &Binaries,
    size: usize,
    churn_runs: usize,
    per_page_cap: usize,
    keep: Option<&Path>,
) -> Result<(Vec<QueryMeasurement>, Value), BenchError> {
    let failed = |what: String| failed(format!("queries ({size} users): {what}"));
    let BenchOrg {
        dir,
        server,
        fake,
        db,
        config,
        ..
    } = BenchOrg::start(size, per_page_cap).map_err(failed)?;
    let sync = || {
        let mut cmd = Command::new(&binaries.orgmirror);
        cmd.arg("--config")
            .arg(&config)
            .arg("sync")
            .env("TOGGL_API_TOKEN", "demo-token");
        run_child(&binaries.bench, cmd, dir.path(), "year-sync").map(|c| c.wall)
    };

    let building = Instant::now();
    let initial = sync().map_err(failed)?;
    let mut churn_walls = Vec::with_capacity(churn_runs);
    for run in 0..churn_runs {
        apply_churn(&fake, size);
        churn_walls.push(sync().map_err(failed)?);
        if (run + 1) % 13 == 0 {
            orgmirror::errln!(
                "  {size:>7} year      {} of {churn_runs} churn runs",
                run + 1
            );
        }
    }
    // The server stays up: the retention passes below are runs against it.
    // The runs happened seconds apart; spread them a week apart, the newest an hour ago,
    // so the year reads as one (and `--since 7d` holds the newest run alone).
    let week = chrono::Duration::weeks(1);
    let first = chrono::Utc::now()
        - chrono::Duration::hours(1)
        - week * i32::try_from(churn_runs).unwrap_or(i32::MAX);
    respace::respace_runs(&db, first, week)
        .map_err(|e| failed(format!("cannot spread the runs: {e}")))?;
    let built = building.elapsed();
    if let Some(keep) = keep {
        let copy = keep.join(format!("year-{size}.sqlite"));
        std::fs::create_dir_all(keep)
            .and_then(|()| std::fs::copy(&db, &copy))
            .map_err(|e| failed(format!("cannot keep {}: {e}", copy.display())))?;
    }
    let churn_total: Duration = churn_walls.iter().sum();
    let build = json!({
        "size": size,
        "churn_runs": churn_runs,
        "build_s": built.as_secs_f64(),
        "initial_sync_s": initial.as_secs_f64(),
        "churn_sync_mean_s": churn_total.as_secs_f64() / churn_runs.max(1) as f64,
        "db_bytes": file_size(&db),
        "history_rows": sql::read(&db)
            .and_then(|conn| sql::count(&conn, "entity_history"))
            .map_err(|e| failed(e.to_string()))?,
    });
    orgmirror::errln!("  {size:>7} year      built in {:.0}s", built.as_secs_f64());

    let mut out = Vec::new();
    let conn = sql::read(&db).map_err(|e| failed(e.to_string()))?;
    // The busiest group now, a day half a year back, the person whose rate changed most.
    let arguments = sql::canned_arguments(&conn, churn_runs).map_err(|e| failed(e.to_string()))?;
    for (name, query) in CANNED_QUERIES {
        let timing = sql::time_canned_query(&conn, query, &arguments, REPEATS)
            .map_err(|e| failed(format!("{name}: {e}")))?;
        let (plan, rows, mut times) = (timing.plan, timing.rows, timing.times);
        times.sort();
        out.push(QueryMeasurement {
            size,
            query: name.to_string(),
            median: times[REPEATS / 2],
            fastest: times[0],
            rows,
            plan: Some(plan),
            peak_rss_kib: None,
        });
    }
    drop(conn);

    // The commands, as people run them.
    let now = orgmirror::now_utc();
    let asof_out = dir.path().join("asof.sqlite");
    for (name, args) in [
        (
            "asof (whole organization)",
            vec![
                "asof".to_string(),
                now,
                "--out".into(),
                asof_out.display().to_string(),
                "--force".into(),
            ],
        ),
        (
            "changes --since 7d",
            vec!["changes".into(), "--since".into(), "7d".into()],
        ),
    ] {
        let mut cmd = Command::new(&binaries.orgmirror);
        cmd.arg("--config").arg(&config).args(&args);
        let cost = run_child(&binaries.bench, cmd, dir.path(), "query-command").map_err(failed)?;
        let stdout =
            std::fs::read_to_string(dir.path().join("query-command.stdout")).unwrap_or_default();
        let rows = if name.starts_with("asof") {
            sql::read(&asof_out)
                .and_then(|conn| sql::count(&conn, "users_current"))
                .map_err(|e| failed(format!("asof: {e}")))? as usize
        } else {
            stdout.lines().count()
        };
        out.push(QueryMeasurement {
            size,
            query: name.to_string(),
            median: cost.wall,
            fastest: cost.wall,
            rows,
            plan: None,
            peak_rss_kib: Some(cost.peak_rss_kib),
        });
    }
    out.extend(crate::erasure::measure(binaries, size, dir.path(), &db, &config).map_err(failed)?);
    drop(server);
    orgmirror::errln!("  {size:>7} queries   done");
    Ok((out, build))
}

/// The table of query times.
pub fn print_table(results: &[QueryMeasurement]) {
    orgmirror::outln!(
        "\n{:>7} {:<28} {:>10} {:>10} {:>8}  plan",
        "users",
        "query",
        "median ms",
        "fastest ms",
        "rows"
    );
    for m in results {
        let plan = m.plan.as_ref().map_or("(a command)".to_string(), |p| {
            p.iter()
                .filter(|l| l.starts_with("SCAN") || l.starts_with("SEARCH"))
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        });
        orgmirror::outln!(
            "{:>7} {:<28} {:>10.2} {:>10.2} {:>8}  {plan}",
            m.size,
            m.query,
            m.median.as_secs_f64() * 1e3,
            m.fastest.as_secs_f64() * 1e3,
            m.rows,
        );
    }
}

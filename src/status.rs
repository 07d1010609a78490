//! `orgmirror status [--json]`: the last runs and what they changed, the last failure, the
//! quota last seen, the database and `-wal` sizes, and the next scheduled run. Reads the
//! database read-only, so it is safe while the daemon writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::commands::{load_config, CommandError, Exit};
use crate::config::{next_run, Config};
use crate::snapshot::format_utc;
use crate::store::{Store, SyncRunRow};

/// How many runs `status` lists.
pub const RUNS_SHOWN: usize = 10;

/// Everything `status` reports; `--json` prints it as is.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub database: DatabaseStatus,
    pub schedule: ScheduleStatus,
    /// Newest first, at most [`RUNS_SHOWN`].
    pub runs: Vec<RunStatus>,
    /// The newest failed run, however old.
    pub last_failure: Option<RunStatus>,
    /// The request quota the newest run that saw one recorded.
    pub quota: Option<QuotaStatus>,
    /// Set when there is nothing to report yet ("no runs yet").
    pub note: Option<String>,
}

/// The database files.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseStatus {
    pub path: PathBuf,
    pub exists: bool,
    pub size_bytes: u64,
    pub wal_bytes: u64,
    pub wal_warn_bytes: u64,
    /// Set when the `-wal` file is over `database.wal_warn_bytes`.
    pub wal_warning: Option<String>,
}

/// The schedule and when it fires next.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleStatus {
    pub cron: String,
    /// RFC 3339 UTC.
    pub next_run: Option<String>,
}

/// One run.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    pub sync_run_id: i64,
    pub kind: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Whole seconds (the timestamps have second resolution).
    pub duration_seconds: Option<i64>,
    pub requests: i64,
    pub events_written: i64,
    /// Events by entity and op.
    pub events: BTreeMap<String, BTreeMap<String, i64>>,
    pub error: Option<String>,
    /// Seconds the run waited for its request pacing (`api.max_requests_per_second`).
    pub pacing_wait_seconds: f64,
    /// A `running` run whose process is gone (killed): the next run marks it failed.
    pub interrupted: bool,
}

/// The request quota last seen.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaStatus {
    pub remaining: i64,
    pub resets_at: Option<String>,
}

/// `orgmirror status`.
pub fn run(config_path: Option<&Path>, json: bool) -> Result<Exit, CommandError> {
    let (_, config) = load_config(config_path)?;
    let report = collect(&config, Utc::now())?;
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CommandError::failed(format!("cannot encode the status as JSON: {e}")))?;
        crate::outln!("{text}");
    } else {
        crate::out!("{}", render(&report));
    }
    Ok(Exit::Ok)
}

/// Gathers the report from the database named in `config`, opened read-only.
pub fn collect(config: &Config, now: DateTime<Utc>) -> Result<StatusReport, CommandError> {
    let path = &config.database.path;
    let wal_warn_bytes = config.database.wal_warn_bytes;
    let size_bytes = file_size(path);
    let wal_bytes = file_size(&suffixed(path, "-wal"));
    let wal_warning = (wal_bytes > wal_warn_bytes).then(|| {
        format!(
            "the -wal file is {} (over database.wal_warn_bytes = {}): a reader is probably holding a \
             read transaction open for a long time, so checkpoints cannot shrink it; close long-lived \
             BI connections or queries",
            human_bytes(wal_bytes),
            human_bytes(wal_warn_bytes)
        )
    });
    let database = DatabaseStatus {
        path: path.clone(),
        exists: path.exists(),
        size_bytes,
        wal_bytes,
        wal_warn_bytes,
        wal_warning,
    };
    let schedule = ScheduleStatus {
        cron: config.schedule.cron.clone(),
        next_run: next_run(&config.schedule.cron, now).ok().map(format_utc),
    };
    let mut report = StatusReport {
        database,
        schedule,
        runs: Vec::new(),
        last_failure: None,
        quota: None,
        note: None,
    };
    if !report.database.exists {
        report.note = Some(format!(
            "no runs yet: the database {} does not exist (it is created by the first `orgmirror sync` or `orgmirror run`)",
            path.display()
        ));
        return Ok(report);
    }
    let store = Store::open_read_only(path)?;
    report.runs = store
        .recent_runs(RUNS_SHOWN)?
        .into_iter()
        .map(run_status)
        .collect();
    report.last_failure = store.last_failed_run()?.map(run_status);
    report.quota = store
        .last_quota()?
        .map(|(remaining, resets_at)| QuotaStatus {
            remaining,
            resets_at,
        });
    if report.runs.is_empty() {
        report.note = Some("no runs yet".to_string());
    }
    Ok(report)
}

fn run_status(row: SyncRunRow) -> RunStatus {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok();
    let duration_seconds = row
        .finished_at
        .as_deref()
        .and_then(parse)
        .zip(parse(&row.started_at))
        .map(|(end, start)| (end - start).num_seconds());
    // Only a process of this host can be asked; status runs where the database is.
    let interrupted = row.status == "running" && row.pid.is_some_and(|pid| !process_exists(pid));
    RunStatus {
        interrupted,
        sync_run_id: row.sync_run_id,
        kind: row.kind,
        started_at: row.started_at,
        finished_at: row.finished_at,
        status: row.status,
        duration_seconds,
        requests: row.requests,
        events_written: row.events_written,
        events: row.events,
        error: row.error,
        pacing_wait_seconds: row.pacing_wait_ms as f64 / 1000.0,
    }
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
fn process_exists(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    // EPERM: it exists, as another user's.
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The human-readable form.
pub fn render(report: &StatusReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let db = &report.database;
    let _ = writeln!(
        out,
        "database  {} ({}, -wal {})",
        db.path.display(),
        human_bytes(db.size_bytes),
        human_bytes(db.wal_bytes)
    );
    if let Some(w) = &db.wal_warning {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(
        out,
        "schedule  \"{}\" (UTC); next run at {}",
        report.schedule.cron,
        report.schedule.next_run.as_deref().unwrap_or("never")
    );
    match &report.quota {
        Some(q) => {
            let resets = q
                .resets_at
                .as_deref()
                .map(|t| format!(", resets at {t}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "quota     {} requests left{resets} (as last seen)",
                q.remaining
            );
        }
        None => {
            let _ = writeln!(out, "quota     not seen yet");
        }
    }
    if let Some(note) = &report.note {
        let _ = writeln!(out, "{note}");
        return out;
    }
    let _ = writeln!(out, "\nlast runs (newest first):");
    for run in &report.runs {
        let duration = run
            .duration_seconds
            .map(|s| format!("{s}s"))
            .unwrap_or_else(|| "-".to_string());
        let what = match (&run.error, run.status.as_str()) {
            (Some(e), _) => format!("error: {e}"),
            (None, "running") if run.interrupted => {
                "interrupted: its process is gone (the next run marks it failed)".to_string()
            }
            (None, "running") => "in progress".to_string(),
            (None, _) => events_line(&run.events),
        };
        let what = if run.pacing_wait_seconds > 0.0 {
            format!("{what} (waited {:.1}s for pacing)", run.pacing_wait_seconds)
        } else {
            what
        };
        let _ = writeln!(
            out,
            "  #{:<5} {:<8} {}  {:<9} {:>5}  {:>5} requests  {}",
            run.sync_run_id, run.kind, run.started_at, run.status, duration, run.requests, what
        );
    }
    if let Some(f) = &report.last_failure {
        let _ = writeln!(
            out,
            "\nlast failure: run {} at {}: {}",
            f.sync_run_id,
            f.finished_at.as_deref().unwrap_or(&f.started_at),
            f.error.as_deref().unwrap_or("unknown error")
        );
    }
    out
}

fn events_line(events: &BTreeMap<String, BTreeMap<String, i64>>) -> String {
    if events.values().all(|ops| ops.values().all(|n| *n == 0)) {
        return "no changes".to_string();
    }
    events
        .iter()
        .map(|(entity, ops)| {
            let ops: Vec<String> = ops.iter().map(|(op, n)| format!("{n} {op}")).collect();
            format!("{entity}: {}", ops.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_follows_the_six_field_cron_in_utc() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T12:10:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            format_utc(next_run("0 */30 * * * *", at).unwrap()),
            "2026-11-28T12:30:00Z"
        );
        assert_eq!(
            format_utc(next_run("*/2 * * * * *", at).unwrap()),
            "2026-11-28T12:10:06Z"
        );
        assert!(next_run("*/5 * * * *", at).is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}

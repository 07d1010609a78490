//! `orgmirror status [--json|--check]`: first the verdict (is the data current?), then the
//! last runs and what they changed, the last failure, the quota last seen, the database and
//! `-wal` sizes, and the next scheduled run. `--check` prints only the verdict and exits
//! 0 fresh, 1 failing or stale, 2 when the mirror cannot be read (a monitoring probe).
//! Reads the database read-only, so it is safe while the daemon writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cadence::{self, Cadence};
use crate::clock::{format_utc, span};
use crate::commands::{load_config, CommandError, Exit};
use crate::config::{next_run, Config};
use crate::store::{Freshness, RuleBacklog, Store, StoreError, SyncRunRow};

/// How many runs `status` lists.
pub const RUNS_SHOWN: usize = 10;

/// Everything `status` reports; `--json` prints it as is.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Is the data current: `status`'s first line, and `status --check`'s only one.
    pub verdict: Verdict,
    /// What the verdict is read from (`mirror_freshness`, with the newest failure's reason
    /// and exit status); `None` when the mirror has none yet.
    pub freshness: Option<Freshness>,
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
    /// Alert deliveries by rule: backlog, failures, the last error.
    pub alerts: Vec<RuleBacklog>,
    /// Records the newest successful run could not read: each keeps its last good version
    /// in the mirror until the upstream sends one that can be read.
    pub quarantined: Vec<crate::model::Quarantined>,
    /// The PostgreSQL replica's progress, when `[replica.postgres]` is configured.
    pub replica: Option<crate::replica::ReplicaStatus>,
    /// Set when the API honours no id filter: absences then take one more run to confirm.
    pub absences: Option<AbsenceStatus>,
    /// Erasure receipts: how many, and the newest few (never what was erased).
    pub erasures: ErasureStatus,
    /// How far the mirrored audit log reaches, or why it is not read.
    pub audit: Option<AuditStatus>,
}

/// The mirrored audit log: how far back it reaches, what is left to fetch, a refusal.
#[derive(Debug, Clone, Serialize)]
pub struct AuditStatus {
    /// Events held.
    pub events: i64,
    /// The oldest instant held without a gap down from `reached_to`.
    pub reaches_back_to: Option<String>,
    pub reached_to: Option<String>,
    /// The backlog still to fetch, newest first: `[from, to]`.
    pub backlog: Option<(String, String)>,
    /// Why the API refuses the log (asked again a day after `refused_at`).
    pub refusal: Option<String>,
    pub refused_at: Option<String>,
    /// The last failure of the audit request, when newer than the last success.
    pub failure: Option<String>,
}

/// `erasures` and `[retention]`, as `status` shows them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErasureStatus {
    pub count: i64,
    /// Newest first, at most [`ERASURES_SHOWN`].
    pub newest: Vec<crate::store::ErasureReceipt>,
    /// `[retention] history`, when set.
    pub retention: Option<String>,
    /// The history before this was dropped by the newest retention pass.
    pub kept_from: Option<String>,
}

/// Receipts `status` shows.
pub const ERASURES_SHOWN: usize = 3;

/// How a user or group missing from a pull is confirmed gone when it cannot be asked for by
/// id: by the next complete pull missing it too.
#[derive(Debug, Clone, Serialize)]
pub struct AbsenceStatus {
    /// The lists whose id filter the API honours in neither form (`users`, `teams`).
    pub unfiltered: Vec<String>,
    /// Users and groups the last complete pull missed: gone if the next misses them too.
    pub pending: usize,
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
    /// With `cron = "auto"`: the interval chosen, the requests per hour it plans, and why.
    pub cadence: Option<Cadence>,
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
    /// The wall clock the run saw, when it was not past the last committed run's time
    /// (`started_at` is then one second after that run's).
    pub wall_clock_at: Option<String>,
    /// Records this run could not read and kept at their last good version.
    pub quarantined: Vec<crate::model::Quarantined>,
}

/// The request quota last seen.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaStatus {
    pub remaining: i64,
    pub resets_at: Option<String>,
}

/// Why `status` could not report.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The config, the mirror, the JSON.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// `status --check` could not read the mirror (missing, unreadable, not upgraded yet):
    /// what a probe reports as unknown, and a person must look at.
    #[error("cannot read the mirror: {0}")]
    Unreadable(#[from] Unreadable),
}

crate::commands::from_layers!(StatusError: crate::config::ConfigError, StoreError);

/// Why `status --check` cannot read the mirror.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{} was written by an older orgmirror; its next run upgrades it", .path.display())]
    NotUpgraded { path: PathBuf },
}

/// `orgmirror status`; with `check`, only the verdict, and its exit status.
pub fn run(config_path: Option<&Path>, json: bool, check: bool) -> Result<Exit, StatusError> {
    let (_, config) = load_config(config_path)?;
    if check {
        return probe(&config, Utc::now());
    }
    let mut report = collect(&config, Utc::now())?;
    // Asked only here (collect reads nothing but the database): bounded by the replica's
    // connect timeout.
    report.replica = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(crate::replica::status(&config))
    });
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|source| CommandError::Json {
            what: "the status",
            source,
        })?;
        crate::outln!("{text}");
    } else {
        crate::out!("{}", render(&report));
    }
    Ok(Exit::Ok)
}

/// `status --check`: the verdict line alone; 0 fresh, 1 failing or stale (an outcome), and
/// a mirror that cannot be read an error (`StatusError::Unreadable`, exit 2), its line
/// printed first so that a probe's output says it too.
fn probe(config: &Config, now: DateTime<Utc>) -> Result<Exit, StatusError> {
    let unreadable = |reason: Unreadable| {
        crate::outln!("UNKNOWN: cannot read the mirror: {reason}");
        StatusError::Unreadable(reason)
    };
    let path = &config.database.path;
    let store = Store::open_read_only(path).map_err(|e| unreadable(e.into()))?;
    let freshness = store
        .freshness()
        .map_err(|e| unreadable(e.into()))?
        .ok_or_else(|| unreadable(Unreadable::NotUpgraded { path: path.clone() }))?;
    let verdict = verdict(Some(&freshness), now);
    crate::outln!("{}", verdict.line);
    Ok(if verdict.state == State::Ok {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// Whether the data is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Failing,
    Stale,
}

/// The verdict: its state and the line that says it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub state: State,
    pub line: String,
}

/// `09:00 UTC` today (by `now`), else `2026-11-27 09:00 UTC`.
fn clock_time(t: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc)) {
        Ok(t) if t.date_naive() == now.date_naive() => t.format("%H:%M UTC").to_string(),
        Ok(t) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => t.to_string(),
    }
}

fn seconds_since(t: Option<&str>, now: DateTime<Utc>) -> Option<i64> {
    let t = DateTime::parse_from_rfc3339(t?).ok()?;
    Some((now - t.with_timezone(&Utc)).num_seconds())
}

/// The verdict of `f` (`None`: a mirror with no runs yet) at `now`: FAILING while the
/// newest finished full runs failed, else STALE past the threshold, else ok.
pub fn verdict(f: Option<&Freshness>, now: DateTime<Utc>) -> Verdict {
    let Some(f) = f.filter(|f| f.last_status.is_some()) else {
        return Verdict {
            state: State::Stale,
            line: "STALE: no sync has run yet".to_string(),
        };
    };
    let age = seconds_since(f.last_success_at.as_deref(), now);
    let last_success = match age {
        Some(age) => format!("last success {} ago", span(age)),
        None => "no successful run yet".to_string(),
    };
    if f.consecutive_failures > 0 {
        let n = f.consecutive_failures;
        let since = f
            .failing_since
            .as_deref()
            .map(|t| format!(" since {}", clock_time(t, now)))
            .unwrap_or_default();
        let reason = f
            .reason
            .as_deref()
            .or(f.last_error.as_deref())
            .unwrap_or("unknown error");
        let hint = f
            .hint
            .as_deref()
            .map(|h| format!(" — {h}"))
            .unwrap_or_default();
        let stale = if f.stale == Some(true) {
            format!(" ({last_success})")
        } else {
            String::new()
        };
        return Verdict {
            state: State::Failing,
            line: format!(
                "FAILING: {n} run{}{since}, {reason}{hint}{stale}",
                if n == 1 { "" } else { "s" }
            ),
        };
    }
    let running = f
        .last_attempt_at
        .as_deref()
        .filter(|_| f.last_status.as_deref() == Some("running"))
        .map(|t| format!("; a run has been going since {}", clock_time(t, now)))
        .unwrap_or_default();
    if f.stale == Some(true) {
        let first = match (age, seconds_since(f.first_attempt_at.as_deref(), now)) {
            (None, Some(first)) => format!("; the first run began {} ago", span(first)),
            _ => String::new(),
        };
        return Verdict {
            state: State::Stale,
            line: format!("STALE: {last_success}{first}{running}"),
        };
    }
    Verdict {
        state: State::Ok,
        line: format!("ok: {last_success}{running}"),
    }
}

/// Gathers the report from the database named in `config`, opened read-only.
pub fn collect(config: &Config, now: DateTime<Utc>) -> Result<StatusReport, StoreError> {
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
        cadence: None,
    };
    let mut report = StatusReport {
        verdict: verdict(None, now),
        freshness: None,
        database,
        schedule,
        runs: Vec::new(),
        last_failure: None,
        quota: None,
        note: None,
        alerts: Vec::new(),
        quarantined: Vec::new(),
        replica: None,
        absences: None,
        erasures: ErasureStatus {
            retention: config.retention.history.map(|p| p.to_string()),
            ..ErasureStatus::default()
        },
        audit: None,
    };
    if !report.database.exists {
        report.note = Some(format!(
            "no runs yet: the database {} does not exist (it is created by the first `orgmirror sync` or `orgmirror run`)",
            path.display()
        ));
        return Ok(report);
    }
    let store = Store::open_read_only(path)?;
    report.freshness = store.freshness()?;
    report.verdict = verdict(report.freshness.as_ref(), now);
    report.runs = store
        .recent_runs(RUNS_SHOWN)?
        .into_iter()
        .map(run_status)
        .collect();
    report.last_failure = store.last_failed_run()?.map(run_status);
    report.quarantined = store
        .last_succeeded_run()?
        .map(|r| r.quarantined)
        .unwrap_or_default();
    report.quota = store
        .last_quota()?
        .map(|(remaining, resets_at)| QuotaStatus {
            remaining,
            resets_at,
        });
    if report.runs.is_empty() {
        report.note = Some("no runs yet".to_string());
    }
    // A mirror no newer orgmirror has written yet knows no filter forms.
    let unfiltered: Vec<String> = store
        .filter_forms()
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, form, _)| form == "none")
        .map(|(list, _, _)| list)
        .collect();
    let pending = store.pending_absences().map(|p| p.len()).unwrap_or(0);
    if !unfiltered.is_empty() || pending > 0 {
        report.absences = Some(AbsenceStatus {
            unfiltered,
            pending,
        });
    }
    // A mirror no newer orgmirror has written yet has no receipts.
    report.erasures.count = store.erasure_count()?;
    if report.erasures.count > 0 {
        report.erasures.newest = store.erasures(ERASURES_SHOWN)?;
    }
    report.erasures.kept_from = store.history_kept_from().unwrap_or_default();
    report.audit = audit_status(config, &store)?;
    // A mirror no newer orgmirror has written yet has no outbox.
    report.alerts = store.alert_backlog().unwrap_or_default();
    // Configured rules that never matched are shown too, with nothing pending.
    for rule in &config.alert {
        if !report.alerts.iter().any(|a| a.rule == rule.name) {
            report.alerts.push(RuleBacklog {
                rule: rule.name.clone(),
                pending: 0,
                delivered: 0,
                failures: 0,
                last_error: None,
                last_error_at: None,
                oldest_pending_at: None,
            });
        }
    }
    if config.schedule.cron == cadence::AUTO {
        let c = cadence::plan(config, Some(&store));
        let last_start = report
            .runs
            .first()
            .and_then(|r| DateTime::parse_from_rfc3339(&r.started_at).ok())
            .map(|t| t.with_timezone(&Utc));
        let next = last_start
            .map(|t| t + chrono::Duration::seconds(c.interval_seconds as i64))
            .map_or(now, |t| t.max(now));
        report.schedule.next_run = Some(format_utc(next));
        report.schedule.cadence = Some(c);
    }
    Ok(report)
}

/// The audit log's reach, when it is mirrored (or refused).
fn audit_status(config: &Config, store: &Store) -> Result<Option<AuditStatus>, StoreError> {
    if !config.sync.audit_log {
        return Ok(None);
    }
    let state = store.audit_state()?;
    let failure = match (state.failed_at, state.reached_to) {
        (Some(f), Some(r)) if f <= r => None,
        (Some(_), _) => state.failure.clone(),
        _ => None,
    };
    Ok(Some(AuditStatus {
        events: store.audit_event_count()?,
        reaches_back_to: state.reaches_back_to().map(format_utc),
        reached_to: state.reached_to.map(format_utc),
        backlog: state.backlog.map(|(f, t)| (format_utc(f), format_utc(t))),
        refusal: state.refusal.clone(),
        refused_at: state.refused_at.map(format_utc),
        failure,
    }))
}

/// `reaches back to …, 1200 events (backlog back to … still to fetch)`, or the refusal.
fn audit_line(a: &AuditStatus) -> String {
    if let (Some(refusal), Some(at)) = (&a.refusal, &a.refused_at) {
        return format!("refused since {at}: {refusal}; asked again a day later");
    }
    let mut line = match (&a.reaches_back_to, &a.reached_to) {
        (Some(from), Some(to)) => format!("{} events from {from} to {to}", a.events),
        _ => "not pulled yet".to_string(),
    };
    if let Some((from, _)) = &a.backlog {
        line.push_str(&format!(
            "; the backlog back to {from} is fetched over the next runs"
        ));
    }
    if let Some(f) = &a.failure {
        line.push_str(&format!(
            "; the last request failed (the next run asks again): {f}"
        ));
    }
    line
}

/// `the API honours no id filter for users: …; 2 pending`.
fn absence_line(a: &AbsenceStatus) -> String {
    let how = if a.unfiltered.is_empty() {
        "a user or group missing from a complete pull".to_string()
    } else {
        format!(
            "the API honours no id filter ({}): a user or group missing from a complete pull",
            a.unfiltered.join(", ")
        )
    };
    format!(
        "{how} is confirmed gone by the next one (one more run); {} pending",
        a.pending
    )
}

fn run_status(row: SyncRunRow) -> RunStatus {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok();
    // `finished_at` is the wall clock's: measured from the clock the run began with.
    let began = row.wall_clock_at.as_deref().unwrap_or(&row.started_at);
    let duration_seconds = row
        .finished_at
        .as_deref()
        .and_then(parse)
        .zip(parse(began))
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
        wall_clock_at: row.wall_clock_at,
        quarantined: row.quarantined,
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
    let _ = writeln!(out, "{}", report.verdict.line);
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
    if let Some(c) = &report.schedule.cadence {
        let _ = writeln!(
            out,
            "cadence   every {} s, planning {} requests/h: {}",
            c.interval_seconds, c.planned_requests_per_hour, c.reason
        );
    }
    for a in &report.alerts {
        let error = match (&a.last_error, &a.last_error_at) {
            (Some(e), Some(at)) => format!("; last error at {at}: {e}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "alert     {:?}: {} pending, {} delivered, {} failed attempts{error}",
            a.rule, a.pending, a.delivered, a.failures
        );
    }
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
    if let Some(a) = &report.absences {
        let _ = writeln!(out, "absences  {}", absence_line(a));
    }
    if let Some(a) = &report.audit {
        let _ = writeln!(out, "audit log {}", audit_line(a));
    }
    if let Some(r) = &report.replica {
        let _ = writeln!(out, "replica   {}", replica_line(r));
    }
    if let Some(line) = erasures_line(&report.erasures) {
        let _ = writeln!(out, "erasures  {line}");
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
            (None, _) if run.kind == "erasure" => "erased a person (see `erasures`)".to_string(),
            (None, _) => events_line(&run.events),
        };
        let what = if run.pacing_wait_seconds > 0.0 {
            format!("{what} (waited {:.1}s for pacing)", run.pacing_wait_seconds)
        } else {
            what
        };
        let clock = run
            .wall_clock_at
            .as_deref()
            .map(|w| format!(" (the clock said {w}: behind the last run)"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  #{:<5} {:<8} {}  {:<9} {:>5}  {:>5} requests  {what}{clock}",
            run.sync_run_id, run.kind, run.started_at, run.status, duration, run.requests
        );
    }
    if !report.quarantined.is_empty() {
        let _ = writeln!(
            out,
            "\nquarantined by the last successful run (each keeps its last good version):"
        );
        for q in &report.quarantined {
            let _ = writeln!(out, "  {} {}: {}", q.list, q.id, q.reason);
        }
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

/// `2 receipts; newest: user 1234 at … by alice ("ticket 42"); history kept 3y (from …)`.
fn erasures_line(e: &ErasureStatus) -> Option<String> {
    if e.count == 0 && e.retention.is_none() && e.kept_from.is_none() {
        return None;
    }
    let mut line = format!("{} receipt{}", e.count, if e.count == 1 { "" } else { "s" });
    if let Some(r) = e.newest.first() {
        let only = if r.history_only { ", history only" } else { "" };
        line.push_str(&format!(
            "; newest: user {} at {} by {} ({:?}{only})",
            r.organization_user_id, r.erased_at, r.erased_by, r.reason
        ));
    }
    match (&e.retention, &e.kept_from) {
        (Some(p), Some(from)) => line.push_str(&format!("; history kept {p} (from {from})")),
        (Some(p), None) => line.push_str(&format!("; history kept {p}")),
        (None, Some(from)) => line.push_str(&format!("; history kept from {from}")),
        (None, None) => line.push_str("; history kept forever"),
    }
    Some(line)
}

/// `postgres://… (schema orgmirror): at run 41, 1 run behind, replicated at …`.
fn replica_line(r: &crate::replica::ReplicaStatus) -> String {
    let place = format!("{} (schema {})", r.url, r.schema);
    if let Some(e) = &r.error {
        return format!("{place}: unreachable: {e}");
    }
    let behind = match r.runs_behind {
        Some(0) => "up to date".to_string(),
        Some(1) => "1 committed run behind".to_string(),
        Some(n) => format!("{n} committed runs behind"),
        None => "the mirror could not be read".to_string(),
    };
    match (r.replicated_run, &r.replicated_at) {
        (Some(run), Some(at)) => format!("{place}: at run {run} (replicated at {at}), {behind}"),
        _ => format!("{place}: nothing replicated yet, {behind}"),
    }
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

pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

pub fn suffixed(path: &Path, suffix: &str) -> PathBuf {
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
mod tests;

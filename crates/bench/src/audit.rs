//! The audit log's scenario of `orgmirror-bench --audit`: a busy organization
//! (`--audit-users`, 10,000) whose audit log holds a 90-day backlog of
//! `--audit-events` events (200,000). Two mirrors sync it in turn after the same 1% churn:
//! one with the audit log (its first run reaches back 90 days, the backlog then comes over
//! the following runs), one without. Reported: the audit requests each run spent (from the
//! fake's request log) against the quota share (`api.hourly_quota = 600`, a Premium plan,
//! `schedule.quota_share = 0.5`: a run may spend at most 300), the backlog runs' local (CPU)
//! time against the same runs without the audit log (and, from the runs' debug lines, how
//! much of it was storing and matching the events, and each mirror's `quick_check`), the
//! mirrors' file sizes, and `changes --since 7d --actor X` at the size reached.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use orgmirror_fake::{AuditBacklog, FakeOptions, FakeServer, QuotaConfig};
use serde_json::json;

use crate::child::run_child;
use crate::report::{machine_info, write_json};
use crate::scenarios::apply_churn;
use crate::{failed, BenchArgs, BenchError, Binaries, PER_PAGE};

/// The plan's hourly quota (Premium) and the share left to other tools.
const HOURLY_QUOTA: u32 = 600;
const QUOTA_SHARE: f64 = 0.5;
/// The most runs the backlog may take before the scenario gives up.
const MAX_RUNS: usize = 80;
/// Times `changes` is run; the median is reported.
const REPEATS: usize = 5;
/// Both mirrors log what a run spent on its `quick_check`, its checkpoint and storing the
/// audit log (debug lines, read back from each run's stderr).
const LOG_LEVEL: &str = "warn,orgmirror::sync=debug,orgmirror::store::audit=debug";

/// The milliseconds a debug line `message` of a run's stderr reports in `field` (0 when
/// there is none).
fn logged_ms(dir: &Path, run: &str, message: &str, field: &str) -> f64 {
    let text = std::fs::read_to_string(dir.join(format!("{run}.stderr"))).unwrap_or_default();
    text.lines()
        .filter(|line| line.contains(message))
        .flat_map(|line| line.split_whitespace())
        .filter_map(|word| word.strip_prefix(field)?.strip_prefix('='))
        .filter_map(|ms| ms.parse::<f64>().ok())
        .sum()
}

pub fn measure(binaries: &Binaries, args: &BenchArgs) -> Result<(), BenchError> {
    let size = args.audit_users;
    let events = args.audit_events;
    let failed_at = |what: String| failed(format!("audit, {size} users: {what}"));
    let dir = tempfile::tempdir().map_err(|e| failed_at(e.to_string()))?;
    let options = FakeOptions {
        users: size,
        per_page_cap: args.per_page_cap,
        audit_backlog: Some(AuditBacklog { events, days: 90 }),
        // The Premium quota, its window a second so that forty runs need not wait hours:
        // each run still plans with the hourly figure (api.hourly_quota).
        quota: Some(QuotaConfig {
            limit: HOURLY_QUOTA,
            window: Duration::from_secs(1),
        }),
        ..Default::default()
    };
    let server = FakeServer::start_background(options.clone())
        .map_err(|e| failed_at(format!("cannot start the fake: {e}")))?;
    let fake = server.handle();
    let config = |name: &str, audit: bool| -> Result<std::path::PathBuf, BenchError> {
        let path = dir.path().join(format!("{name}.toml"));
        let text = format!(
            "[api]\nbase_url = {:?}\norganization_id = {}\nworkspace_id = {}\nper_page = {PER_PAGE}\n\
             max_requests_per_second = 0\nhourly_quota = {HOURLY_QUOTA}\n\
             [schedule]\ncron = \"auto\"\nquota_share = {QUOTA_SHARE}\n\
             [sync]\naudit_log = {audit}\n\
             [database]\npath = {:?}\n[log]\nlevel = \"{LOG_LEVEL}\"\n",
            server.base_url(),
            options.organization_id,
            options.workspace_id,
            dir.path().join(format!("{name}.sqlite")).display().to_string()
        );
        std::fs::write(&path, text).map_err(|e| failed_at(e.to_string()))?;
        Ok(path)
    };
    let (with, without) = (config("audit", true)?, config("plain", false)?);
    // What one sync cost, its requests and its audit requests (counted by the fake).
    let sync = |config: &Path,
                name: &str|
     -> Result<(crate::child::ChildCost, usize, usize), BenchError> {
        let (before, audit_before) = (fake.request_count(), fake.audit_request_count());
        let mut cmd = Command::new(&binaries.orgmirror);
        cmd.arg("--config")
            .arg(config)
            .arg("sync")
            .env("TOGGL_API_TOKEN", "demo-token");
        let cost = run_child(&binaries.bench, cmd, dir.path(), name).map_err(failed_at)?;
        Ok((
            cost,
            fake.request_count() - before,
            fake.audit_request_count() - audit_before,
        ))
    };
    let db = dir.path().join("audit.sqlite");
    let held = || -> i64 {
        rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    let backlog_left = || -> bool {
        rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.query_row(
                    "SELECT backlog_from IS NOT NULL FROM audit_state",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(true)
    };
    let mut runs = Vec::new();
    let (mut audit_requests, mut worst_run, mut cpu_with, mut cpu_without) = (0, 0, 0.0, 0.0);
    // Over the backlog runs: storing and matching the events, and each mirror's quick_check.
    let (mut storing_ms, mut check_with_ms, mut check_without_ms) = (0.0, 0.0, 0.0);
    for run in 1..=MAX_RUNS {
        if run > 1 {
            // One run in ten is a person's (the newest member); the owner (an automation,
            // say) makes the rest.
            let person = fake.user_ids().last().copied();
            fake.set_actor(person.filter(|_| run % 10 == 0));
            apply_churn(&fake, size);
        }
        let (with_name, without_name) = (format!("audit-{run}"), format!("plain-{run}"));
        let (with_cost, requests_with, audit) = sync(&with, &with_name)?;
        let (without_cost, requests_without, _) = sync(&without, &without_name)?;
        let stored_ms = logged_ms(
            dir.path(),
            &with_name,
            "stored the audit log",
            "duration_ms",
        );
        let checks = (
            logged_ms(dir.path(), &with_name, "quick_check", "quick_check_ms"),
            logged_ms(dir.path(), &without_name, "quick_check", "quick_check_ms"),
        );
        audit_requests += audit;
        worst_run = worst_run.max(requests_with);
        // The first runs are the initial syncs: the overhead is the backlog runs'.
        if run > 1 {
            cpu_with += with_cost.cpu.as_secs_f64();
            cpu_without += without_cost.cpu.as_secs_f64();
            storing_ms += stored_ms;
            check_with_ms += checks.0;
            check_without_ms += checks.1;
        }
        runs.push(json!({
            "run": run,
            "audit_requests": audit,
            "requests": requests_with,
            "requests_without_audit": requests_without,
            "cpu_ms": with_cost.cpu.as_secs_f64() * 1e3,
            "cpu_ms_without_audit": without_cost.cpu.as_secs_f64() * 1e3,
            "storing_ms": stored_ms,
            "quick_check_ms": checks.0,
            "quick_check_ms_without_audit": checks.1,
            "wall_ms": with_cost.wall.as_secs_f64() * 1e3,
            "audit_events_held": held(),
        }));
        orgmirror::errln!(
            "  audit run {run:>3}: {audit} audit requests, {requests_with} in all, {} events held",
            held()
        );
        // Runs a second apart at least, as a schedule has them.
        std::thread::sleep(Duration::from_millis(1000));
        if run > 1 && !backlog_left() {
            break;
        }
    }
    // The median wall time of `changes --since 7d ARGS`, and its lines.
    let median_changes = |extra: &[&str], name: &str| -> Result<(Duration, usize), BenchError> {
        let mut times = Vec::new();
        let mut lines = 0;
        for i in 0..REPEATS {
            let mut cmd = Command::new(&binaries.orgmirror);
            cmd.arg("--config")
                .arg(&with)
                .args(["changes", "--since", "7d"])
                .args(extra);
            let run = format!("{name}-{i}");
            let cost = run_child(&binaries.bench, cmd, dir.path(), &run).map_err(failed_at)?;
            times.push(cost.wall);
            lines = std::fs::read_to_string(dir.path().join(format!("{run}.stdout")))
                .map(|t| t.lines().count())
                .unwrap_or(0);
        }
        times.sort();
        Ok((times[REPEATS / 2], lines))
    };
    // `changes --since 7d --actor X`: of the people the audit log names as making the
    // mirror's changes, the one who made the fewest (the person of one run in ten, unless
    // the churn removed them).
    let person: String = rusqlite::Connection::open(&db)
        .and_then(|c| {
            c.query_row(
                "SELECT actor_name FROM change_events WHERE actor_name IS NOT NULL
                 GROUP BY actor_name ORDER BY count(*) LIMIT 1",
                [],
                |r| r.get(0),
            )
        })
        .map_err(|e| failed_at(format!("no change has an actor: {e}")))?;
    let (changes, lines) = median_changes(&["--actor", &person], "changes-actor")?;
    let (all_changes, all_lines) = median_changes(&[], "changes-all")?;
    let overhead = if cpu_without > 0.0 {
        cpu_with / cpu_without - 1.0
    } else {
        0.0
    };
    let share_cap = (f64::from(HOURLY_QUOTA) * (1.0 - QUOTA_SHARE)) as usize;
    let mib = |name: &str| {
        std::fs::metadata(dir.path().join(format!("{name}.sqlite")))
            .map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
    };
    let (file_with, file_without) = (mib("audit"), mib("plain"));
    orgmirror::outln!(
        "audit log, {size} users, {events} events over 90 days:\n  \
         {audit_requests} audit requests over {} runs (at 1,000 a page); the busiest run sent {worst_run} requests, the share allows {share_cap}\n  \
         the backlog runs' local (CPU) time: {:.0} ms with the audit log, {:.0} ms without: {:+.1}%\n  \
         of it, storing and matching the events: {storing_ms:.0} ms ({:+.1}%); the quick_check of the larger file: {check_with_ms:.0} ms against {check_without_ms:.0} ms ({:+.1}%); the rest (fetching and decoding the pages, committing them) {:+.1}%\n  \
         changes --since 7d --actor: {:.0} ms (median of {REPEATS}, {lines} lines; without --actor {:.0} ms, {all_lines} lines) with {} audit events held\n  \
         the mirror's file: {file_with:.1} MiB with the audit log, {file_without:.1} MiB without",
        runs.len(),
        cpu_with * 1e3,
        cpu_without * 1e3,
        overhead * 100.0,
        storing_ms / (cpu_without * 1e3) * 100.0,
        (check_with_ms - check_without_ms) / (cpu_without * 1e3) * 100.0,
        (overhead - (storing_ms + check_with_ms - check_without_ms) / (cpu_without * 1e3)) * 100.0,
        changes.as_secs_f64() * 1e3,
        all_changes.as_secs_f64() * 1e3,
        held()
    );
    let document = json!({
        "machine": machine_info(),
        "size": size,
        "audit_events": events,
        "hourly_quota": HOURLY_QUOTA,
        "quota_share": QUOTA_SHARE,
        "audit_requests": audit_requests,
        "runs": runs,
        "busiest_run_requests": worst_run,
        "run_share_cap": share_cap,
        "backlog_cpu_ms": cpu_with * 1e3,
        "backlog_cpu_ms_without_audit": cpu_without * 1e3,
        "local_time_overhead": overhead,
        "storing_ms": storing_ms,
        "quick_check_ms": check_with_ms,
        "quick_check_ms_without_audit": check_without_ms,
        "changes_actor_ms": changes.as_secs_f64() * 1e3,
        "changes_actor_lines": lines,
        "changes_all_ms": all_changes.as_secs_f64() * 1e3,
        "changes_all_lines": all_lines,
        "audit_events_held": held(),
        "file_mib": file_with,
        "file_mib_without_audit": file_without,
    });
    write_json(&args.out, &document)
}

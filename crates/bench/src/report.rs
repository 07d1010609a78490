//! The results: the table printed, the JSON written, the machine they were measured on.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::scenarios::Measurement;
use crate::{failed, BenchError, LATENCY};

/// `m`'s wall time over that of `reference` (`floor` or `store`) at the same size.
pub fn ratio(m: &Measurement, all: &[Measurement], reference: &str) -> Option<f64> {
    all.iter()
        .find(|f| f.size == m.size && f.scenario == reference)
        .map(|f| m.cost.wall.as_secs_f64() / f.cost.wall.as_secs_f64().max(1e-9))
}

pub fn to_json(m: &Measurement, all: &[Measurement]) -> Value {
    json!({
        "size": m.size,
        "scenario": m.scenario,
        "users": m.users,
        "groups": m.groups,
        "memberships": m.memberships,
        "wall_ms": m.cost.wall.as_secs_f64() * 1e3,
        "cpu_ms": m.cost.cpu.as_secs_f64() * 1e3,
        "peak_rss_kib": m.cost.peak_rss_kib,
        "spawner_rss_kib": m.cost.spawner_rss_kib,
        "requests": m.requests,
        "min_requests": m.min_requests,
        "rows_written": m.rows_written(),
        "events_written": m.events,
        "history_rows_written": m.history_rows,
        "row_count_delta": m.row_count_delta,
        "db_bytes": m.db_bytes,
        "wal_bytes": m.wal_bytes,
        "wall_vs_floor": ratio(m, all, "floor"),
        "wall_vs_store_floor": ratio(m, all, "store"),
        "pacing_bound_ms": m.pacing_bound.map(|b| b.as_secs_f64() * 1e3),
        "churn": m.churn,
    })
}

pub fn print_table(results: &[Measurement]) {
    orgmirror::outln!(
        "\n{:>7} {:<9} {:>8} {:>7} {:>7} {:>8} {:>8} {:>11} {:>9} {:>8} {:>8} {:>8}",
        "users",
        "scenario",
        "wall s",
        "×floor",
        "×store",
        "cpu s",
        "RSS MiB",
        "req/min",
        "rows",
        "events",
        "Δrows",
        "db MiB"
    );
    let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    let times = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
    for m in results {
        let mib = |b: u64| format!("{:.1}", b as f64 / 1_048_576.0);
        orgmirror::outln!(
            "{:>7} {:<9} {:>8.2} {:>7} {:>7} {:>8.2} {:>8.1} {:>11} {:>9} {:>8} {:>8} {:>8}",
            m.size,
            m.scenario,
            m.cost.wall.as_secs_f64(),
            times(ratio(m, results, "floor")),
            times(ratio(m, results, "store")),
            m.cost.cpu.as_secs_f64(),
            m.cost.peak_rss_kib as f64 / 1024.0,
            format!("{}/{}", m.requests, m.min_requests),
            opt(m.rows_written()),
            opt(m.events),
            opt(m.row_count_delta),
            m.db_bytes
                .map_or("-".to_string(), |b| mib(b + m.wal_bytes.unwrap_or(0))),
        );
    }
    for m in results {
        if let Some(bound) = m.pacing_bound {
            orgmirror::outln!(
                "{:>7} paced: {:.1} s for {} requests, bound requests × interval {:.1} s ({:.2}×), {} ms latency a request",
                m.size,
                m.cost.wall.as_secs_f64(),
                m.requests,
                bound.as_secs_f64(),
                m.cost.wall.as_secs_f64() / bound.as_secs_f64().max(1e-9),
                LATENCY.as_millis()
            );
        }
    }
}

pub fn write_json(out: &Path, document: &Value) -> Result<(), BenchError> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| failed(format!("--out: {}: {e}", parent.display())))?;
    }
    let text = serde_json::to_string_pretty(document)
        .map_err(|e| failed(format!("cannot encode the results: {e}")))?;
    std::fs::write(out, text + "\n").map_err(|e| failed(format!("--out: {}: {e}", out.display())))
}

/// nproc, CPU model, total memory, git commit and the date.
pub fn machine_info() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_kib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok());
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]);
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": cpu_model,
        "mem_total_kib": mem_total_kib,
        "git_commit": commit,
        "git_dirty": dirty,
        "date": orgmirror::now_utc(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

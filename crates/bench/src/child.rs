//! Measuring one child process: its wall time, CPU time and peak RSS, through a small
//! intermediate so that the fake this process holds does not inflate the peak.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{failed, BenchError};

/// What one child process cost.
pub struct ChildCost {
    pub wall: Duration,
    pub cpu: Duration,
    pub peak_rss_kib: i64,
    /// RSS of the intermediate that spawned it: the most the peak can be inflated by.
    pub spawner_rss_kib: i64,
}

/// Runs `cmd` to completion with stdout and stderr in `dir`, and returns what it cost.
///
/// Linux carries the RSS of the process that spawns a child into the child's `ru_maxrss`
/// (fork and vfork alike, through exec), and this process holds the whole fake
/// organization. So the child is started by a small intermediate, `orgmirror-bench
/// --measure-into PATH -- CMD…` (`bench`: this binary), a fresh process a few MiB large:
/// that is the most its own RSS can add, and it is recorded as `spawner_rss_kib`.
pub fn run_child(bench: &Path, cmd: Command, dir: &Path, name: &str) -> Result<ChildCost, String> {
    let stdout_path = dir.join(format!("{name}.stdout"));
    let stderr_path = dir.join(format!("{name}.stderr"));
    let cost_path = dir.join(format!("{name}.cost.json"));
    let open = |p: &Path| File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut spawner = Command::new(bench);
    spawner
        .arg("--measure-into")
        .arg(&cost_path)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => spawner.env(key, v),
            None => spawner.env_remove(key),
        };
    }
    spawner
        .stdin(Stdio::null())
        .stdout(open(&stdout_path)?)
        .stderr(open(&stderr_path)?)
        .env_remove("TOGGL_EMAIL")
        .env_remove("TOGGL_PASSWORD")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .env_remove("ORGMIRROR_CONFIG");
    let status = spawner
        .status()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    if !status.success() {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(format!("{name} failed ({status}): {}", stderr.trim()));
    }
    let cost: Value = std::fs::read_to_string(&cost_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("{name}: cannot read {}: {e}", cost_path.display()))?;
    let micros = |k: &str| Duration::from_micros(cost[k].as_u64().unwrap_or(0));
    Ok(ChildCost {
        wall: micros("wall_us"),
        cpu: micros("cpu_us"),
        peak_rss_kib: cost["peak_rss_kib"].as_i64().unwrap_or(0),
        spawner_rss_kib: cost["spawner_rss_kib"].as_i64().unwrap_or(0),
    })
}

/// `orgmirror-bench --measure-into PATH -- CMD…`: runs CMD (stdio inherited), reads its
/// wall time, CPU time and peak RSS with `wait4`, writes them to PATH, and fails unless CMD
/// succeeded.
pub fn measure_command(into: &Path, command: &[String]) -> Result<(), BenchError> {
    let failed = |m: String| failed(format!("--measure-into: {m}"));
    let (program, args) = command
        .split_first()
        .ok_or_else(|| failed("no command after --".to_string()))?;
    let spawner_rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<i64>().ok())
        });
    let started = Instant::now();
    let child = Command::new(program)
        .args(args)
        .spawn()
        .map_err(|e| failed(format!("cannot start {program}: {e}")))?;
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| failed(format!("pid: {e}")))?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped (std's `Child` is never waited on);
        // `status` and `usage` are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(failed(format!("wait4: {err}")));
        }
    }
    let wall = started.elapsed();
    drop(child);
    let micros = |t: libc::timeval| t.tv_sec.max(0) as u64 * 1_000_000 + t.tv_usec.max(0) as u64;
    let cost = json!({
        "wall_us": wall.as_micros() as u64,
        "cpu_us": micros(usage.ru_utime) + micros(usage.ru_stime),
        // Linux reports kilobytes.
        "peak_rss_kib": usage.ru_maxrss,
        "spawner_rss_kib": spawner_rss_kib,
        "wait_status": status,
    });
    std::fs::write(into, cost.to_string())
        .map_err(|e| failed(format!("{}: {e}", into.display())))?;
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(failed(format!("{program} ended with wait status {status}")))
    }
}

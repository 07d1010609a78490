//! `orgmirror-bench --postgres URL`: the PostgreSQL replica's scenarios.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::child::{run_child, ChildCost};
use crate::report::{machine_info, write_json};
use crate::scenarios::{apply_churn, sizes_of, BenchOrg};
use crate::{failed, BenchArgs, BenchError, Binaries};

/// `orgmirror-bench --postgres URL`: per size, a first sync (SQLite alone), its replication (a replica
/// configured before the first run bootstraps from it), a churn sync and its replication,
/// and a bootstrap of the whole mirror (two runs of history) into a fresh schema, each a
/// child process (`orgmirror sync`, `orgmirror replicate`). Prints a table and writes the
/// JSON.
pub fn measure(
    binaries: &Binaries,
    args: &BenchArgs,
    url: &str,
    runtime: &tokio::runtime::Handle,
) -> Result<(), BenchError> {
    let sizes = sizes_of(args)?;
    let mut results = Vec::new();
    orgmirror::outln!(
        "{:>8}  {:<18} {:>8} {:>10} {:>12} {:>10}",
        "users",
        "scenario",
        "wall s",
        "rows",
        "rows/s",
        "vs sync"
    );
    for &size in &sizes {
        for r in measure_size(binaries, size, args.per_page_cap, url, runtime)? {
            let vs = r["vs_sync"]
                .as_f64()
                .map(|v| format!("{v:.2}x"))
                .unwrap_or_else(|| "-".to_string());
            orgmirror::outln!(
                "{:>8}  {:<18} {:>8.2} {:>10} {:>12} {:>10}",
                size,
                r["scenario"].as_str().unwrap_or(""),
                r["wall_s"].as_f64().unwrap_or(0.0),
                r["rows"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                r["rows_per_s"]
                    .as_f64()
                    .map(|n| format!("{n:.0}"))
                    .unwrap_or_default(),
                vs
            );
            results.push(r);
        }
    }
    let document = json!({
        "machine": machine_info(),
        "postgres": redact_url(url),
        "wall_means": "from spawning the child process (`orgmirror sync` or `orgmirror replicate`) to its exit",
        "rows_means": "rows copied into PostgreSQL (runs, history rows, closed intervals, events), as `replicate` reports them",
        "results": results,
    });
    write_json(&args.out, &document)?;
    orgmirror::outln!("\nwritten to {}", args.out.display());
    Ok(())
}

/// The URL without anything after a `:` in its user part.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s && url[s + 3..at].contains(':') => {
            let user = &url[s + 3..at];
            format!(
                "{}{}{}",
                &url[..s + 3],
                &user[..user.find(':').unwrap_or(0)],
                &url[at..]
            )
        }
        _ => url.to_string(),
    }
}

fn measure_size(
    binaries: &Binaries,
    size: usize,
    per_page_cap: usize,
    url: &str,
    runtime: &tokio::runtime::Handle,
) -> Result<Vec<Value>, BenchError> {
    let failed = |what: String| failed(format!("{size} users: {what}"));
    let BenchOrg {
        dir,
        server,
        fake,
        config,
        ..
    } = BenchOrg::start(size, per_page_cap).map_err(failed)?;
    let base = std::fs::read_to_string(&config)
        .map_err(|e| failed(format!("cannot read the config: {e}")))?;
    let stamp = std::process::id();
    let follow_schema = format!("bench_{size}_{stamp}_follow");
    let boot_schema = format!("bench_{size}_{stamp}_boot");
    let write_config = |name: &str, schema: Option<&str>| -> Result<PathBuf, BenchError> {
        let path = dir.path().join(name);
        let replica = schema
            .map(|s| format!("[replica.postgres]\nurl = {url:?}\nschema = {s:?}\n"))
            .unwrap_or_default();
        std::fs::write(&path, format!("{base}{replica}"))
            .map_err(|e| failed(format!("cannot write the config: {e}")))?;
        Ok(path)
    };
    let plain = write_config("sync.toml", None)?;
    let follow = write_config("follow.toml", Some(&follow_schema))?;
    let boot = write_config("boot.toml", Some(&boot_schema))?;
    let run =
        |config: &Path, command: &str, name: &str| -> Result<(ChildCost, String), BenchError> {
            let mut cmd = Command::new(&binaries.orgmirror);
            cmd.arg("--config")
                .arg(config)
                .arg(command)
                .env("TOGGL_API_TOKEN", "demo-token");
            let cost = run_child(&binaries.bench, cmd, dir.path(), name).map_err(failed)?;
            let stdout = std::fs::read_to_string(dir.path().join(format!("{name}.stdout")))
                .unwrap_or_default();
            Ok((cost, stdout))
        };
    // "…, 1234 rows in 0.5s; …" as `replicate` prints it.
    let rows_of = |stdout: &str| -> Option<u64> {
        let before = stdout.split(" rows in ").next()?;
        before.rsplit(' ').next()?.parse().ok()
    };
    let mut out = Vec::new();
    let mut record =
        |scenario: &str, cost: &ChildCost, rows: Option<u64>, sync: Option<&ChildCost>| {
            let wall = cost.wall.as_secs_f64();
            out.push(json!({
                "size": size,
                "scenario": scenario,
                "wall_s": wall,
                "cpu_s": cost.cpu.as_secs_f64(),
                "peak_rss_kib": cost.peak_rss_kib,
                "rows": rows,
                "rows_per_s": rows.map(|r| r as f64 / wall.max(1e-9)),
                "vs_sync": sync.map(|s| wall / s.wall.as_secs_f64().max(1e-9)),
            }));
            orgmirror::errln!("  {size:>7} {scenario:<18} done");
        };

    let (initial, _) = run(&plain, "sync", "sync-initial")?;
    record("sync initial", &initial, None, None);
    let (first, stdout) = run(&follow, "replicate", "replicate-initial")?;
    record(
        "replicate initial",
        &first,
        rows_of(&stdout),
        Some(&initial),
    );
    std::thread::sleep(Duration::from_millis(1000));
    apply_churn(&fake, size);
    let (churn, _) = run(&plain, "sync", "sync-churn")?;
    record("sync churn", &churn, None, None);
    let (churned, stdout) = run(&follow, "replicate", "replicate-churn")?;
    record("replicate churn", &churned, rows_of(&stdout), Some(&churn));
    let (bootstrap, stdout) = run(&boot, "replicate", "bootstrap")?;
    record("bootstrap (2 runs)", &bootstrap, rows_of(&stdout), None);
    drop(server);
    // The schemas are the bench's own: leave the server as it was.
    for schema in [&follow_schema, &boot_schema] {
        if let Err(e) = runtime.block_on(orgmirror::drop_schema(url, schema)) {
            orgmirror::errln!("orgmirror-bench: cannot drop schema {schema}: {e}");
        }
    }
    Ok(out)
}

//! `orgmirror bench`: the speed, the frugality and the memory of a sync, side by side with
//! the floor — what fetching and parsing the same pages costs with nothing else.
//!
//! For each organization size, in a fresh temp dir, with the built-in fake served over
//! loopback from THIS process (its own thread), four scenarios run as child processes of
//! this binary, so that wall time, CPU time and peak RSS (`wait4` rusage) are those of the
//! child alone and the fake's cost is the same for all of them:
//!
//! - `floor`: `orgmirror bench --floor-only URL`: roles, every teams page, every users page
//!   (rates and working hours), the same `per_page`, typed into [`orgmirror::api::models`] with
//!   a bare `reqwest` + `serde_json` client; no retries, no storage;
//! - `initial`: `orgmirror --config … sync` into an empty database;
//! - `store`: the store floor, what SQLite alone needs to store what `initial` stored:
//!   `orgmirror bench --store-floor-from DB --store-into NEW` makes NEW as a sync would (the
//!   same schema, WAL, `synchronous=FULL`, cache) and copies every row of DB into it with
//!   `INSERT … SELECT` in one transaction, then checkpoints — no HTTP, no JSON, no Rust
//!   values, so no sync can store those rows in less time on this machine;
//! - `unchanged`: the same sync again, nothing changed upstream;
//! - `churn`: 1% of the users changed upstream (rates, group joins and leaves, renames,
//!   leavers, joiners, in turn), then a sync.
//!
//! - `latency` and `paced` (sizes up to [`PACED_MAX_USERS`]): the unchanged sync again with
//!   [`LATENCY`] injected before every answer, first unpaced, then paced at `--paced-rps`
//!   (the default of `api.max_requests_per_second`); the paced run is reported against its
//!   bound, requests × the pacing interval.
//!
//! The fake runs its default (focus) profile, as the real API is reported to answer.
//! Requests are counted by the fake (every request it served), and set against the
//! minimum: one roles call, `ceil(groups / page)` pages of teams (they announce a total)
//! and `floor(users / page) + 1` pages of users (only a short page ends them), where
//! `page = min(api.per_page, the fake's cap)`. Rows written are counted in the database:
//! the run's `change_events` rows plus the `entity_history` rows it opened or closed
//! (exact, by `sync_run_id` / `opened_by` / `closed_by`); the net change of the row count
//! of every other table but `sync_runs` is reported beside them as a cross-check.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use orgmirror::api::models::{OrganizationUser, Role, Team, TeamsPage};
use orgmirror::commands::{CommandError, Exit};
use orgmirror::fake::{FakeHandle, FakeOptions, FakeServer};
use orgmirror::store::{Store, StoreOptions};

mod queries;

/// Why a bench stopped: an argument to fix (exit 2), a failure (exit 1), or the error of a
/// command it ran. Dev tooling, not the product: its messages are what it reports.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl BenchError {
    fn failed(message: impl std::fmt::Display) -> BenchError {
        BenchError::Failed(message.to_string())
    }

    fn usage(message: impl std::fmt::Display) -> BenchError {
        BenchError::Usage(message.to_string())
    }
}

/// The sizes `--quick` runs (a CI smoke test, not a measurement).
const QUICK_SIZES: [usize; 2] = [200, 1000];

/// What `per_page` every client asks for (the config default; the default profile of the
/// fake, as the real API is reported to, refuses more than 100).
const PER_PAGE: u32 = 100;

/// The per-request latency injected for the `latency` and `paced` scenarios.
const LATENCY: Duration = Duration::from_millis(100);

/// The largest size with a paced run (at one request a second, 10,000 users take ~2 min).
const PACED_MAX_USERS: usize = 10_000;

/// Options of `orgmirror bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Organization sizes (users), comma-separated; groups are a tenth of them.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    pub sizes: Vec<usize>,
    /// Where to write the results as JSON.
    #[arg(long, value_name = "PATH", default_value = "bench-results/bench.json")]
    pub out: PathBuf,
    /// The most rows the fake returns per page, whatever per_page asks.
    #[arg(long, default_value_t = 200)]
    pub per_page_cap: usize,
    /// Sizes 200 and 1000 only (a smoke test for CI); the query scenario at 1000 users
    /// after 4 churn runs.
    #[arg(long)]
    pub quick: bool,
    /// Instead of the sync scenarios: the PostgreSQL replica's, against this server
    /// (`postgres://user@host:port/db`; password in PGPASSWORD): a first sync's replication
    /// against the sync, a churn run's, and a bootstrap's rows per second. See
    /// `benches/replica.sh`, which starts a throwaway server for it.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Organization sizes of the query scenario (a mirror after a year of weekly churn).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    pub query_sizes: Vec<usize>,
    /// Churn runs (1% of the users each, a week apart) before the queries are timed.
    #[arg(long, default_value_t = 52)]
    pub churn_runs: usize,
    /// Only the query scenario.
    #[arg(long)]
    pub queries_only: bool,
    /// Internal: copy the query scenario's mirrors into this directory (to study plans).
    #[arg(long, hide = true, value_name = "DIR")]
    pub keep_query_mirrors: Option<PathBuf>,
    /// The pacing of the `paced` scenario, requests per second.
    #[arg(long, default_value_t = 1.0)]
    pub paced_rps: f64,
    /// Internal: fetch and parse every page from this base URL, print counts, exit.
    #[arg(long, hide = true, value_name = "BASE_URL")]
    pub floor_only: Option<String>,
    /// Internal (with --floor-only): the organization id.
    #[arg(long, hide = true, default_value_t = 1001)]
    pub organization_id: i64,
    /// Internal (with --floor-only): the workspace id.
    #[arg(long, hide = true, default_value_t = 2001)]
    pub workspace_id: i64,
    /// Internal: copy every row of the mirror at this path into a new one (--store-into).
    #[arg(long, hide = true, value_name = "PATH", requires = "store_into")]
    pub store_floor_from: Option<PathBuf>,
    /// Internal (with --store-floor-from): the new database.
    #[arg(long, hide = true, value_name = "PATH")]
    pub store_into: Option<PathBuf>,
    /// Internal: run the command after `--`, wait for it, write its cost here as JSON.
    #[arg(long, hide = true, value_name = "PATH", requires = "command")]
    pub measure_into: Option<PathBuf>,
    /// Internal (with --measure-into): the command to measure.
    #[arg(last = true, hide = true)]
    pub command: Vec<String>,
}

/// `orgmirror bench`: runs every scenario at every size, prints a table, writes the JSON.
pub async fn run(args: BenchArgs) -> Result<Exit, BenchError> {
    if let Some(base_url) = args.floor_only.clone() {
        return floor(&base_url, args.organization_id, args.workspace_id).await;
    }
    if let (Some(from), Some(into)) = (args.store_floor_from.clone(), args.store_into.clone()) {
        return tokio::task::spawn_blocking(move || store_floor(&from, &into))
            .await
            .map_err(|e| BenchError::failed(format!("bench: {e}")))?;
    }
    if let Some(into) = args.measure_into.clone() {
        return tokio::task::spawn_blocking(move || measure_command(&into, &args.command))
            .await
            .map_err(|e| BenchError::failed(format!("bench: {e}")))?;
    }
    if let Some(url) = args.postgres.clone() {
        let handle = tokio::runtime::Handle::current();
        return tokio::task::spawn_blocking(move || measure_replica(&args, &url, &handle))
            .await
            .map_err(|e| BenchError::failed(format!("bench: {e}")))?;
    }
    // Children are waited for with blocking calls; keep them off the runtime's workers.
    tokio::task::spawn_blocking(move || measure_all(&args))
        .await
        .map_err(|e| BenchError::failed(format!("bench: {e}")))?
}

/// The floor: the same pages with a bare typed client. Prints one JSON line of counts.
async fn floor(base_url: &str, org: i64, workspace: i64) -> Result<Exit, BenchError> {
    let http = reqwest::Client::new();
    let base = format!("{}/organizations/{org}", base_url.trim_end_matches('/'));
    let get = |path: String| {
        let http = http.clone();
        async move {
            let resp = http
                .get(&path)
                .basic_auth("demo-token", Some("api_token"))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| BenchError::failed(format!("floor: GET {path}: {e}")))?;
            resp.bytes()
                .await
                .map_err(|e| BenchError::failed(format!("floor: GET {path}: {e}")))
        }
    };
    let parse_error = |what: &str, e: serde_json::Error| {
        BenchError::failed(format!("floor: cannot parse {what}: {e}"))
    };
    let mut requests = 0u32;

    let body = get(format!("{base}/roles")).await?;
    requests += 1;
    // The default profile answers bare arrays, but for teams (`data` with a `total`).
    let roles: Vec<Role> = serde_json::from_slice(&body).map_err(|e| parse_error("roles", e))?;

    let mut teams = 0usize;
    for page in 1.. {
        let body = get(format!(
            "{base}/teams?workspace_id={workspace}&page={page}&per_page={PER_PAGE}"
        ))
        .await?;
        requests += 1;
        let parsed: TeamsPage<Team> =
            serde_json::from_slice(&body).map_err(|e| parse_error("teams", e))?;
        teams += parsed.data.len();
        let total = parsed.total.and_then(|t| usize::try_from(t).ok());
        if parsed.data.is_empty() || total.is_some_and(|t| teams >= t) {
            break;
        }
    }

    // No total for users: a page shorter than the largest one, or an empty one, ends it.
    let (mut users, mut largest) = (0usize, 0usize);
    for page in 1.. {
        let body = get(format!(
            "{base}/users?page={page}&per_page={PER_PAGE}&include_rates=true&include_working_hours=true"
        ))
        .await?;
        requests += 1;
        let parsed: Vec<OrganizationUser> =
            serde_json::from_slice(&body).map_err(|e| parse_error("users", e))?;
        let n = parsed.len();
        users += n;
        if n == 0 || n < largest {
            break;
        }
        largest = largest.max(n);
    }
    orgmirror::outln!(
        "{}",
        json!({"requests": requests, "roles": roles.len(), "teams": teams, "users": users})
    );
    Ok(Exit::Ok)
}

/// The store floor: a new database made as a sync makes it, filled with every row of
/// `from` by SQLite alone, in one transaction, then checkpointed like a sync.
fn store_floor(from: &Path, into: &Path) -> Result<Exit, BenchError> {
    let failed = |e: String| BenchError::failed(format!("bench --store-floor-from: {e}"));
    let store = Store::open(into, &StoreOptions::default()).map_err(|e| failed(e.to_string()))?;
    store
        .fill_from_for_bench(from)
        .map_err(|e| failed(e.to_string()))?;
    Ok(Exit::Ok)
}

/// What one child process cost.
struct ChildCost {
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: i64,
    /// RSS of the intermediate that spawned it: the most the peak can be inflated by.
    spawner_rss_kib: i64,
}

/// One measured (size, scenario).
struct Measurement {
    size: usize,
    scenario: &'static str,
    cost: ChildCost,
    requests: usize,
    min_requests: usize,
    /// For the paced run: requests × the pacing interval.
    pacing_bound: Option<Duration>,
    /// `change_events` rows of the run (None for the floor).
    events: Option<i64>,
    /// `entity_history` rows the run opened or closed.
    history_rows: Option<i64>,
    /// Net change of the row count of every table but `sync_runs`.
    row_count_delta: Option<i64>,
    db_bytes: Option<u64>,
    wal_bytes: Option<u64>,
    users: usize,
    groups: usize,
    memberships: usize,
    /// What the churn changed upstream.
    churn: Option<Value>,
}

impl Measurement {
    fn rows_written(&self) -> Option<i64> {
        Some(self.events? + self.history_rows?)
    }
}

/// The organization sizes to measure: `--sizes`, or the quick ones.
fn sizes_of(args: &BenchArgs) -> Result<Vec<usize>, BenchError> {
    let sizes: Vec<usize> = if args.quick {
        QUICK_SIZES.to_vec()
    } else {
        args.sizes.clone()
    };
    let max = orgmirror::fake::MAX_USERS;
    if sizes.is_empty() || sizes.iter().any(|&n| n == 0 || n > max) {
        return Err(BenchError::usage(format!(
            "--sizes: give one or more sizes from 1 to {max}"
        )));
    }
    Ok(sizes)
}

fn measure_all(args: &BenchArgs) -> Result<Exit, BenchError> {
    let sizes = sizes_of(args)?;
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::failed(format!("bench: cannot find this binary: {e}")))?;
    let machine = machine_info();
    orgmirror::errln!(
        "orgmirror bench: sizes {sizes:?}, per_page {PER_PAGE}, fake page cap {}",
        args.per_page_cap
    );
    let (query_sizes, churn_runs) = if args.quick {
        (vec![1000], 4)
    } else {
        (args.query_sizes.clone(), args.churn_runs)
    };
    let max = orgmirror::fake::MAX_USERS;
    if query_sizes.iter().any(|&n| n == 0 || n > max) {
        return Err(BenchError::usage(format!(
            "--query-sizes: give sizes from 1 to {max}"
        )));
    }
    if !(args.paced_rps.is_finite() && args.paced_rps > 0.0) {
        return Err(BenchError::usage(format!(
            "--paced-rps {}: give a positive number",
            args.paced_rps
        )));
    }
    let mut results = Vec::new();
    if !args.queries_only {
        for &size in &sizes {
            results.extend(measure_size(&exe, size, args.per_page_cap, args.paced_rps)?);
        }
        print_table(&results);
    }
    let (mut query_results, mut query_builds) = (Vec::new(), Vec::new());
    for &size in &query_sizes {
        let (measured, build) = queries::measure(
            &exe,
            size,
            churn_runs,
            args.per_page_cap,
            args.keep_query_mirrors.as_deref(),
        )?;
        query_results.extend(measured);
        query_builds.push(build);
    }
    queries::print_table(&query_results);
    let document = json!({
        "machine": machine,
        "per_page": PER_PAGE,
        "per_page_cap": args.per_page_cap,
        "profile": "focus",
        "paced_rps": args.paced_rps,
        "latency_ms": LATENCY.as_millis() as u64,
        "pacing_bound_means": "scenario paced: requests × the pacing interval (1 / paced_rps); the latency scenario is the same run unpaced, both with latency_ms injected before every answer",
        "rows_written_means": "change_events rows of the run + entity_history rows it opened or closed (exact); row_count_delta = net change of the row count of every table but sync_runs",
        "wall_means": "from spawning the child process to its exit",
        "store_floor_means": "scenario store: SQLite alone copying every row the initial sync stored into a new database made as a sync makes it (schema, WAL, synchronous=FULL), row by row (no transfer optimisation), one transaction and a checkpoint; wall_vs_store_floor is a run's wall time over it",
        "peak_rss_means": "ru_maxrss of the child (wait4); Linux folds in the RSS of the process that spawned it, a small intermediate whose RSS is spawner_rss_kib",
        "results": results.iter().map(|m| to_json(m, &results)).collect::<Vec<_>>(),
        "queries_means": "a mirror after a first sync and churn_runs syncs of 1% churn each, the runs then spread a week apart; canned queries of datasette/metadata.yml timed in process (median of 7), asof and changes as child processes (wall from spawn to exit)",
        "query_builds": query_builds,
        "queries": query_results.iter().map(queries::QueryMeasurement::to_json).collect::<Vec<_>>(),
    });
    write_json(&args.out, &document)?;
    orgmirror::outln!("\nwritten to {}", args.out.display());
    Ok(Exit::Ok)
}

fn measure_size(
    exe: &Path,
    size: usize,
    per_page_cap: usize,
    paced_rps: f64,
) -> Result<Vec<Measurement>, BenchError> {
    let failed = |what: String| BenchError::failed(format!("bench ({size} users): {what}"));
    let BenchOrg {
        dir,
        options,
        server,
        fake,
        db,
        config,
    } = BenchOrg::start(size, per_page_cap).map_err(failed)?;
    let text = std::fs::read_to_string(&config)
        .map_err(|e| failed(format!("cannot read the config: {e}")))?;
    let paced_config = dir.path().join("paced.toml");
    std::fs::write(
        &paced_config,
        text.replace(
            "max_requests_per_second = 0\n",
            &format!("max_requests_per_second = {paced_rps}\n"),
        ),
    )
    .map_err(|e| failed(format!("cannot write the config: {e}")))?;

    let mut out = Vec::new();
    let page = (PER_PAGE as usize).min(per_page_cap).max(1);

    // floor
    let counts = fake.counts();
    let before = fake.request_count();
    let mut floor_cmd = Command::new(exe);
    floor_cmd
        .args(["bench", "--floor-only", &server.base_url()])
        .args(["--organization-id", &options.organization_id.to_string()])
        .args(["--workspace-id", &options.workspace_id.to_string()]);
    let cost = run_child(exe, floor_cmd, dir.path(), "floor").map_err(failed)?;
    out.push(Measurement {
        size,
        scenario: "floor",
        cost,
        requests: fake.request_count() - before,
        min_requests: min_requests(&fake, page),
        pacing_bound: None,
        events: None,
        history_rows: None,
        row_count_delta: None,
        db_bytes: None,
        wal_bytes: None,
        users: counts.users,
        groups: counts.groups,
        memberships: counts.memberships,
        churn: None,
    });
    orgmirror::errln!("  {size:>7} floor     done");

    let scenarios: &[&'static str] = if size <= PACED_MAX_USERS {
        &["initial", "unchanged", "churn", "latency", "paced"]
    } else {
        &["initial", "unchanged", "churn"]
    };
    for &scenario in scenarios {
        let churn = if scenario == "churn" {
            Some(apply_churn(&fake, size))
        } else {
            None
        };
        if scenario == "latency" {
            fake.set_latency(LATENCY);
        }
        let config = if scenario == "paced" {
            &paced_config
        } else {
            &config
        };
        let counts = fake.counts();
        let min = min_requests(&fake, page);
        let rows_before = row_count(&db).map_err(failed)?;
        let before = fake.request_count();
        let mut sync_cmd = Command::new(exe);
        sync_cmd
            .arg("--config")
            .arg(config)
            .arg("sync")
            .env("TOGGL_API_TOKEN", "demo-token");
        let cost = run_child(exe, sync_cmd, dir.path(), scenario).map_err(failed)?;
        let requests = fake.request_count() - before;
        let written = written_by_last_run(&db).map_err(failed)?;
        let rows_after = row_count(&db).map_err(failed)?;
        out.push(Measurement {
            size,
            scenario,
            cost,
            requests,
            min_requests: min,
            pacing_bound: (scenario == "paced")
                .then(|| Duration::from_secs_f64(requests as f64 / paced_rps)),
            events: Some(written.0),
            history_rows: Some(written.1),
            row_count_delta: Some(rows_after - rows_before),
            db_bytes: Some(file_size(&db)),
            wal_bytes: Some(file_size(&with_suffix(&db, "-wal"))),
            users: counts.users,
            groups: counts.groups,
            memberships: counts.memberships,
            churn,
        });
        orgmirror::errln!("  {size:>7} {scenario:<9} done");
        if scenario == "initial" {
            // Second in the table, next to the floor it bounds from the other side.
            out.insert(
                1,
                measure_store_floor(exe, &db, dir.path(), size, &counts).map_err(failed)?,
            );
            orgmirror::errln!("  {size:>7} store     done");
        }
        // Runs in the same second would give zero-length history intervals: not what a
        // scheduled mirror sees. Outside the timed part.
        std::thread::sleep(Duration::from_millis(1000));
    }
    drop(server);
    Ok(out)
}

/// `bench --postgres URL`: per size, a first sync (SQLite alone), its replication (a replica
/// configured before the first run bootstraps from it), a churn sync and its replication,
/// and a bootstrap of the whole mirror (two runs of history) into a fresh schema, each a
/// child process of this binary. Prints a table and writes the JSON.
fn measure_replica(
    args: &BenchArgs,
    url: &str,
    runtime: &tokio::runtime::Handle,
) -> Result<Exit, BenchError> {
    let sizes = sizes_of(args)?;
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::failed(format!("bench: cannot find this binary: {e}")))?;
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
        for r in measure_replica_size(&exe, size, args.per_page_cap, url, runtime)? {
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
    Ok(Exit::Ok)
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

fn measure_replica_size(
    exe: &Path,
    size: usize,
    per_page_cap: usize,
    url: &str,
    runtime: &tokio::runtime::Handle,
) -> Result<Vec<Value>, BenchError> {
    let failed = |what: String| BenchError::failed(format!("bench ({size} users): {what}"));
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
            let mut cmd = Command::new(exe);
            cmd.arg("--config")
                .arg(config)
                .arg(command)
                .env("TOGGL_API_TOKEN", "demo-token");
            let cost = run_child(exe, cmd, dir.path(), name).map_err(failed)?;
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
    let text = std::fs::read_to_string(&boot).unwrap_or_default();
    if let Ok(config) = orgmirror::config::Config::parse(&text) {
        if let Some(pg) = config.replica.postgres {
            for schema in [&follow_schema, &boot_schema] {
                let pg = orgmirror::config::PostgresReplicaConfig {
                    schema: schema.clone(),
                    ..pg.clone()
                };
                if let Err(e) = runtime.block_on(orgmirror::replica::drop_schema(&pg)) {
                    orgmirror::errln!("bench: cannot drop schema {schema}: {e}");
                }
            }
        }
    }
    Ok(out)
}

/// A fake organization of `size` users served by this process, and the config that syncs
/// it (pacing off) into a new mirror, both in a temp dir of their own.
struct BenchOrg {
    dir: tempfile::TempDir,
    options: FakeOptions,
    server: FakeServer,
    fake: FakeHandle,
    db: PathBuf,
    config: PathBuf,
}

impl BenchOrg {
    fn start(size: usize, per_page_cap: usize) -> Result<BenchOrg, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let options = FakeOptions {
            users: size,
            per_page_cap,
            ..Default::default()
        };
        let server = FakeServer::start_background(options.clone())
            .map_err(|e| format!("cannot start the fake: {e}"))?;
        let fake = server.handle();
        let db = dir.path().join("org.sqlite");
        let config = dir.path().join("orgmirror.toml");
        let text = format!(
            "[api]\nbase_url = {:?}\norganization_id = {}\nworkspace_id = {}\nper_page = {PER_PAGE}\n\
             max_requests_per_second = 0\n[database]\npath = {:?}\n[log]\nlevel = \"warn\"\n",
            server.base_url(),
            options.organization_id,
            options.workspace_id,
            db.display().to_string()
        );
        std::fs::write(&config, text).map_err(|e| format!("cannot write the config: {e}"))?;
        Ok(BenchOrg {
            dir,
            options,
            server,
            fake,
            db,
            config,
        })
    }
}

/// Runs the store floor on the mirror `initial` made; `row_count_delta` is the rows it
/// copied. The copy is deleted afterwards.
fn measure_store_floor(
    exe: &Path,
    db: &Path,
    dir: &Path,
    size: usize,
    counts: &orgmirror::fake::OrgCounts,
) -> Result<Measurement, String> {
    let copy = dir.join("store-floor.sqlite");
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "--store-floor-from"])
        .arg(db)
        .arg("--store-into")
        .arg(&copy);
    let cost = run_child(exe, cmd, dir, "store")?;
    let rows = row_count(&copy)?;
    let db_bytes = file_size(&copy);
    let wal_bytes = file_size(&with_suffix(&copy, "-wal"));
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(with_suffix(&copy, suffix));
    }
    Ok(Measurement {
        size,
        scenario: "store",
        cost,
        requests: 0,
        min_requests: 0,
        pacing_bound: None,
        events: None,
        history_rows: None,
        row_count_delta: Some(rows),
        db_bytes: Some(db_bytes),
        wal_bytes: Some(wal_bytes),
        users: counts.users,
        groups: counts.groups,
        memberships: counts.memberships,
        churn: None,
    })
}

/// One roles call plus the pages of teams and of users at `page` rows a page. Teams
/// announce their `total`, so `ceil(groups / page)` pages do; users do not, so only a
/// short (or empty) page ends the list: `floor(users / page) + 1`.
fn min_requests(fake: &FakeHandle, page: usize) -> usize {
    let counts = fake.counts();
    1 + counts.groups.div_ceil(page).max(1) + counts.users / page + 1
}

/// Changes 1% of the users (at least 6), one kind of change after another: a rate, a group
/// join, a group leave, a rename, a leaver, a joiner. Returns what it did, by kind.
fn apply_churn(fake: &FakeHandle, size: usize) -> Value {
    fake.advance(chrono::Duration::hours(1));
    let target = size.div_ceil(100).max(6);
    let mut rng = fastrand::Rng::with_seed(42);
    let mut users = fake.user_ids();
    // Not the owner: the deletion guard and `groups/me` lean on them.
    users.retain(|&id| id != orgmirror::fake::FIRST_USER_ID);
    rng.shuffle(&mut users);
    let groups = fake.group_ids();
    let mut done = [0usize; 6];
    let mut picks = users.into_iter();
    let mut changed = 0usize;
    while changed < target {
        let Some(user) = picks.next() else { break };
        let kind = changed % 6;
        let ok = match kind {
            0 => fake.set_rate(user, Some(40.0 + rng.f64() * 100.0), "EUR"),
            1 => (0..8).any(|_| match rng.choice(&groups) {
                Some(&g) => fake.join_group(g, user),
                None => false,
            }),
            2 => match fake.user(user).and_then(|u| u.groups.first().copied()) {
                Some(g) => fake.leave_group(g, user),
                None => false,
            },
            3 => fake.rename_user(user, &format!("Renamed Person {user}")),
            4 => fake.remove_user(user),
            _ => {
                fake.add_user(
                    &format!("New Joiner {changed}"),
                    &format!("joiner.{changed}@example.com"),
                );
                true
            }
        };
        if ok {
            done[kind] += 1;
            changed += 1;
        }
    }
    json!({
        "users_changed": changed,
        "rate": done[0], "join_group": done[1], "leave_group": done[2],
        "rename": done[3], "leaver": done[4], "joiner": done[5],
    })
}

/// Runs `cmd` to completion with stdout and stderr in `dir`, and returns what it cost.
///
/// Linux carries the RSS of the process that spawns a child into the child's `ru_maxrss`
/// (fork and vfork alike, through exec), and this process holds the whole fake
/// organization. So the child is started by a small intermediate, `orgmirror bench
/// --measure-into PATH -- CMD…`, a fresh process a few MiB large: that is the most its
/// own RSS can add, and it is recorded as `spawner_rss_kib`.
fn run_child(exe: &Path, cmd: Command, dir: &Path, name: &str) -> Result<ChildCost, String> {
    let stdout_path = dir.join(format!("{name}.stdout"));
    let stderr_path = dir.join(format!("{name}.stderr"));
    let cost_path = dir.join(format!("{name}.cost.json"));
    let open = |p: &Path| File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut spawner = Command::new(exe);
    spawner
        .args(["bench", "--measure-into"])
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

/// `bench --measure-into PATH -- CMD…`: runs CMD (stdio inherited), reads its wall time,
/// CPU time and peak RSS with `wait4`, writes them to PATH, and exits as CMD did.
fn measure_command(into: &Path, command: &[String]) -> Result<Exit, BenchError> {
    let failed = |m: String| BenchError::failed(format!("bench --measure-into: {m}"));
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
        Ok(Exit::Ok)
    } else {
        Err(failed(format!("{program} ended with wait status {status}")))
    }
}

/// Rows in every table but `sync_runs` (0 when there is no database yet).
fn row_count(db: &Path) -> Result<i64, String> {
    if !db.exists() {
        return Ok(0);
    }
    let store = Store::open_read_only(db).map_err(|e| e.to_string())?;
    store.rows_outside_sync_runs().map_err(|e| e.to_string())
}

/// `(change_events rows, entity_history rows opened or closed)` of the last run, which
/// must have succeeded.
fn written_by_last_run(db: &Path) -> Result<(i64, i64), String> {
    let store = Store::open_read_only(db).map_err(|e| e.to_string())?;
    let (run, status) = store.last_run_for_bench().map_err(|e| e.to_string())?;
    if status != "succeeded" {
        return Err(format!("run {run} is {status}"));
    }
    store.rows_written_by(run).map_err(|e| e.to_string())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// `m`'s wall time over that of `reference` (`floor` or `store`) at the same size.
fn ratio(m: &Measurement, all: &[Measurement], reference: &str) -> Option<f64> {
    all.iter()
        .find(|f| f.size == m.size && f.scenario == reference)
        .map(|f| m.cost.wall.as_secs_f64() / f.cost.wall.as_secs_f64().max(1e-9))
}

fn to_json(m: &Measurement, all: &[Measurement]) -> Value {
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

fn print_table(results: &[Measurement]) {
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

fn write_json(out: &Path, document: &Value) -> Result<(), BenchError> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| BenchError::failed(format!("--out: {}: {e}", parent.display())))?;
    }
    let text = serde_json::to_string_pretty(document)
        .map_err(|e| BenchError::failed(format!("bench: cannot encode the results: {e}")))?;
    std::fs::write(out, text + "\n")
        .map_err(|e| BenchError::failed(format!("--out: {}: {e}", out.display())))
}

/// nproc, CPU model, total memory, git commit and the date.
fn machine_info() -> Value {
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
        "date": orgmirror::clock::now_utc(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

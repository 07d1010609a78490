//! `orgmirror-bench`: the speed, the frugality and the memory of a sync, side by side with
//! the floor — what fetching and parsing the same pages costs with nothing else. A binary of
//! its own (dev tooling): the `orgmirror` binary people install holds no benchmark.
//!
//! For each organization size, in a fresh temp dir, with the fake served over loopback from
//! THIS process (its own thread), the scenarios run as child processes, so that wall time,
//! CPU time and peak RSS (`wait4` rusage) are those of the child alone and the fake's cost is
//! the same for all of them. The syncs are the real `orgmirror` binary's (`--orgmirror`, by
//! default the one beside this one), so any build can be measured:
//!
//! - `floor`: `orgmirror-bench --floor-only URL`: roles, every teams page, every users page
//!   (rates and working hours), the same `per_page`, typed into `orgmirror`'s API models with
//!   a bare `reqwest` + `serde_json` client; no retries, no storage;
//! - `initial`: `orgmirror --config … sync` into an empty database;
//! - `store`: the store floor, what SQLite alone needs to store what `initial` stored:
//!   `orgmirror-bench --store-floor-from DB --store-into NEW` makes NEW with DB's schema and a
//!   sync's settings (WAL, `synchronous=FULL`, cache) and copies every row of DB into it with
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

mod audit;
mod canned;
mod child;
mod erasure;
mod floor;
mod queries;
mod replica;
mod report;
mod respace;
mod scenarios;
mod sql;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// The sizes `--quick` runs (a CI smoke test, not a measurement).
const QUICK_SIZES: [usize; 2] = [200, 1000];

/// What `per_page` every client asks for (the config default; the default profile of the
/// fake, as the real API is reported to, refuses more than 100).
const PER_PAGE: u32 = 100;

/// The per-request latency injected for the `latency` and `paced` scenarios.
const LATENCY: Duration = Duration::from_millis(100);

/// The largest size with a paced run (at one request a second, 10,000 users take ~2 min).
const PACED_MAX_USERS: usize = 10_000;

/// The benchmark of orgmirror: syncs of fake organizations against the fetch-and-parse floor
/// and the store floor, the queries of a year of history, or the PostgreSQL replica; a table,
/// and the results as JSON.
#[derive(Debug, Clone, Parser)]
#[command(name = "orgmirror-bench", version)]
pub struct BenchArgs {
    /// The `orgmirror` binary to measure (default: the one beside this binary).
    #[arg(long, value_name = "PATH")]
    pub orgmirror: Option<PathBuf>,
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
    /// Instead of the sync scenarios: the audit log's, at --audit-users: a 90-day backlog of --audit-events events fetched over runs within the
    /// quota share, those runs' local time against the same runs without the audit log,
    /// and `changes --since 7d --actor X`.
    #[arg(long)]
    pub audit: bool,
    /// The audit scenario's organization size.
    #[arg(long, default_value_t = 10_000)]
    pub audit_users: usize,
    /// The audit scenario's backlog: events over 90 days.
    #[arg(long, default_value_t = 200_000)]
    pub audit_events: usize,
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

/// Why the benchmark stopped: something to fix in how it was asked (exit 2), or a failure
/// that may pass on another run (exit 1).
#[derive(Debug)]
pub enum BenchError {
    Usage(String),
    Failed(String),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Usage(m) | BenchError::Failed(m) => f.write_str(m),
        }
    }
}

/// A failure of the benchmark, with what it was doing.
fn failed(message: impl Into<String>) -> BenchError {
    BenchError::Failed(message.into())
}

/// The two binaries at work: this one (the intermediates and the floors) and the
/// `orgmirror` measured.
pub struct Binaries {
    pub bench: PathBuf,
    pub orgmirror: PathBuf,
}

impl Binaries {
    fn find(orgmirror: Option<&Path>) -> Result<Binaries, BenchError> {
        let bench =
            std::env::current_exe().map_err(|e| failed(format!("cannot find this binary: {e}")))?;
        let orgmirror = match orgmirror {
            Some(path) => path.to_path_buf(),
            None => bench.with_file_name("orgmirror"),
        };
        if !orgmirror.is_file() {
            return Err(BenchError::Usage(format!(
                "{} is not the orgmirror binary: build it (cargo build --release) or give --orgmirror PATH",
                orgmirror.display()
            )));
        }
        Ok(Binaries { bench, orgmirror })
    }
}

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&failed(format!("cannot start the async runtime: {e}"))),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &BenchError) -> ExitCode {
    orgmirror::errln!("orgmirror-bench: {e}");
    ExitCode::from(match e {
        BenchError::Usage(_) => 2,
        BenchError::Failed(_) => 1,
    })
}

/// Runs every scenario at every size, prints a table, writes the JSON; or, as a child of
/// itself, one floor or one measured command.
async fn run(args: BenchArgs) -> Result<(), BenchError> {
    if let Some(base_url) = args.floor_only.clone() {
        return floor::fetch_and_parse(&base_url, args.organization_id, args.workspace_id).await;
    }
    if let (Some(from), Some(into)) = (args.store_floor_from.clone(), args.store_into.clone()) {
        return sql::store_floor(&from, &into)
            .map_err(|e| failed(format!("--store-floor-from: {e}")));
    }
    if let Some(into) = args.measure_into.clone() {
        return tokio::task::spawn_blocking(move || child::measure_command(&into, &args.command))
            .await
            .map_err(|e| failed(e.to_string()))?;
    }
    let binaries = Binaries::find(args.orgmirror.as_deref())?;
    let joined = |e: tokio::task::JoinError| failed(e.to_string());
    if let Some(url) = args.postgres.clone() {
        let handle = tokio::runtime::Handle::current();
        return tokio::task::spawn_blocking(move || {
            replica::measure(&binaries, &args, &url, &handle)
        })
        .await
        .map_err(joined)?;
    }
    if args.audit {
        return tokio::task::spawn_blocking(move || audit::measure(&binaries, &args))
            .await
            .map_err(joined)?;
    }
    // Children are waited for with blocking calls; keep them off the runtime's workers.
    tokio::task::spawn_blocking(move || scenarios::measure_all(&binaries, &args))
        .await
        .map_err(joined)?
}

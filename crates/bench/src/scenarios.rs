//! The sync scenarios at each size: the floor, the initial sync and the store floor, an
//! unchanged sync, a churn sync, and (up to [`PACED_MAX_USERS`]) the unchanged sync with
//! latency, unpaced and paced.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use orgmirror_fake::{FakeHandle, FakeOptions, FakeServer, OrgCounts};

use crate::child::{run_child, ChildCost};
use crate::report::{machine_info, print_table, to_json, write_json};
use crate::{
    failed, queries, sql, BenchArgs, BenchError, Binaries, LATENCY, PACED_MAX_USERS, PER_PAGE,
    QUICK_SIZES,
};

/// One measured (size, scenario).
pub struct Measurement {
    pub size: usize,
    pub scenario: &'static str,
    pub cost: ChildCost,
    pub requests: usize,
    pub min_requests: usize,
    /// For the paced run: requests × the pacing interval.
    pub pacing_bound: Option<Duration>,
    /// `change_events` rows of the run (None for the floor).
    pub events: Option<i64>,
    /// `entity_history` rows the run opened or closed.
    pub history_rows: Option<i64>,
    /// Net change of the row count of every table but `sync_runs`.
    pub row_count_delta: Option<i64>,
    pub db_bytes: Option<u64>,
    pub wal_bytes: Option<u64>,
    pub users: usize,
    pub groups: usize,
    pub memberships: usize,
    /// What the churn changed upstream.
    pub churn: Option<Value>,
}

impl Measurement {
    pub fn rows_written(&self) -> Option<i64> {
        Some(self.events? + self.history_rows?)
    }
}

/// The organization sizes to measure: `--sizes`, or the quick ones.
pub fn sizes_of(args: &BenchArgs) -> Result<Vec<usize>, BenchError> {
    let sizes: Vec<usize> = if args.quick {
        QUICK_SIZES.to_vec()
    } else {
        args.sizes.clone()
    };
    let max = orgmirror_fake::MAX_USERS;
    if sizes.is_empty() || sizes.iter().any(|&n| n == 0 || n > max) {
        return Err(BenchError::Usage(format!(
            "--sizes: give one or more sizes from 1 to {max}"
        )));
    }
    Ok(sizes)
}

/// Every scenario at every size, then the query scenario: prints the tables, writes the JSON.
pub fn measure_all(binaries: &Binaries, args: &BenchArgs) -> Result<(), BenchError> {
    let sizes = sizes_of(args)?;
    let machine = machine_info();
    orgmirror::errln!(
        "orgmirror-bench: {}, sizes {sizes:?}, per_page {PER_PAGE}, fake page cap {}",
        binaries.orgmirror.display(),
        args.per_page_cap
    );
    let (query_sizes, churn_runs) = if args.quick {
        (vec![1000], 4)
    } else {
        (args.query_sizes.clone(), args.churn_runs)
    };
    let max = orgmirror_fake::MAX_USERS;
    if query_sizes.iter().any(|&n| n == 0 || n > max) {
        return Err(BenchError::Usage(format!(
            "--query-sizes: give sizes from 1 to {max}"
        )));
    }
    if !(args.paced_rps.is_finite() && args.paced_rps > 0.0) {
        return Err(BenchError::Usage(format!(
            "--paced-rps {}: give a positive number",
            args.paced_rps
        )));
    }
    let mut results = Vec::new();
    if !args.queries_only {
        for &size in &sizes {
            results.extend(measure_size(
                binaries,
                size,
                args.per_page_cap,
                args.paced_rps,
            )?);
        }
        print_table(&results);
    }
    let (mut query_results, mut query_builds) = (Vec::new(), Vec::new());
    for &size in &query_sizes {
        let (measured, build) = queries::measure(
            binaries,
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
    Ok(())
}

fn measure_size(
    binaries: &Binaries,
    size: usize,
    per_page_cap: usize,
    paced_rps: f64,
) -> Result<Vec<Measurement>, BenchError> {
    let failed = |what: String| failed(format!("{size} users: {what}"));
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
    let mut floor_cmd = Command::new(&binaries.bench);
    floor_cmd
        .args(["--floor-only", &server.base_url()])
        .args(["--organization-id", &options.organization_id.to_string()])
        .args(["--workspace-id", &options.workspace_id.to_string()]);
    let cost = run_child(&binaries.bench, floor_cmd, dir.path(), "floor").map_err(failed)?;
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
        let mut sync_cmd = Command::new(&binaries.orgmirror);
        sync_cmd
            .arg("--config")
            .arg(config)
            .arg("sync")
            .env("TOGGL_API_TOKEN", "demo-token");
        let cost = run_child(&binaries.bench, sync_cmd, dir.path(), scenario).map_err(failed)?;
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
                measure_store_floor(&binaries.bench, &db, dir.path(), size, &counts)
                    .map_err(failed)?,
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

/// A fake organization of `size` users served by this process, and the config that syncs
/// it (pacing off) into a new mirror, both in a temp dir of their own.
pub struct BenchOrg {
    pub dir: tempfile::TempDir,
    pub options: FakeOptions,
    pub server: FakeServer,
    pub fake: FakeHandle,
    pub db: PathBuf,
    pub config: PathBuf,
}

impl BenchOrg {
    pub fn start(size: usize, per_page_cap: usize) -> Result<BenchOrg, String> {
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
    bench: &Path,
    db: &Path,
    dir: &Path,
    size: usize,
    counts: &OrgCounts,
) -> Result<Measurement, String> {
    let copy = dir.join("store-floor.sqlite");
    let mut cmd = Command::new(bench);
    cmd.arg("--store-floor-from")
        .arg(db)
        .arg("--store-into")
        .arg(&copy);
    let cost = run_child(bench, cmd, dir, "store")?;
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
pub fn apply_churn(fake: &FakeHandle, size: usize) -> Value {
    fake.advance(chrono::Duration::hours(1));
    let target = size.div_ceil(100).max(6);
    let mut rng = fastrand::Rng::with_seed(42);
    let mut users = fake.user_ids();
    // Not the owner: the deletion guard and `groups/me` lean on them.
    users.retain(|&id| id != orgmirror_fake::FIRST_USER_ID);
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

/// Rows in every table but `sync_runs` (0 when there is no database yet).
fn row_count(db: &Path) -> Result<i64, String> {
    if !db.exists() {
        return Ok(0);
    }
    let conn = sql::read(db).map_err(|e| e.to_string())?;
    sql::rows_outside_sync_runs(&conn).map_err(|e| e.to_string())
}

/// `(change_events rows, entity_history rows opened or closed)` of the last run, which
/// must have succeeded.
fn written_by_last_run(db: &Path) -> Result<(i64, i64), String> {
    let conn = sql::read(db).map_err(|e| e.to_string())?;
    let (run, status) = sql::last_run(&conn).map_err(|e| e.to_string())?;
    if status != "succeeded" {
        return Err(format!("run {run} is {status}"));
    }
    sql::rows_written_by(&conn, run).map_err(|e| e.to_string())
}

pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

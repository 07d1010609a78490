//! The PostgreSQL replica (`[replica.postgres]`): SQLite stays the system of record; every
//! run it committed is copied, in order, each in one PostgreSQL transaction that also moves
//! the organization's row of `replica_progress`. So the replica is always at a whole run,
//! a crash or a lost connection loses only the transaction in flight, and the next attempt
//! (after the next run, or `orgmirror replicate`) resumes from there.
//!
//! - A replica with no progress for this organization is bootstrapped: everything up to the
//!   newest committed run, streamed with `COPY` from one read transaction of the mirror.
//! - Then each committed run after it: its `sync_runs` row (and the failed runs' before it),
//!   the intervals it closed, the history rows it opened and its events.
//! - Replication runs after a run's commit and never changes how the run went: a replica
//!   that is down costs at most `replica.postgres.connect_timeout`, logged as a warning.
//!
//! The schema (`schema.sql`) has the SQLite contract's views over those tables, each row with
//! `organization_id`, so several mirrors share one schema.

mod connect;
mod copy;
mod verify;

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{Config, PostgresReplicaConfig};
use crate::store::{ReplicaPart, ReplicaSlice, Store, StoreError};

pub use connect::Target;
pub use verify::verify;

/// The replica schema's version (`replica_schema.version`); `schema.sql` is applied to a
/// schema older than this.
pub const SCHEMA_VERSION: i32 = 5;
const SCHEMA_SQL: &str = include_str!("schema.sql");

/// Why a replication attempt stopped; the mirror is unaffected either way.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// `[replica.postgres]` as written cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("invalid config: replica.postgres.ca_file: {}: {source}", .path.display())]
    CaFile {
        path: std::path::PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("invalid config: TLS: {0}")]
    Tls(#[source] rustls::Error),
    /// The replica's password (`$CREDENTIALS_DIRECTORY/postgres_password`).
    #[error("invalid config: cannot read credential {}: {source}", .path.display())]
    Credential {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config: replica.postgres.schema: schema {schema} was set up by a newer orgmirror (replica schema version {version}); upgrade orgmirror")]
    NewerSchema { schema: String, version: i32 },
    #[error("PostgreSQL replica {target}: cannot connect: {message}")]
    Connect { target: String, message: String },
    #[error("PostgreSQL replica {target}: {context}: {message}")]
    Postgres {
        target: String,
        context: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The replica holds runs of another mirror under this organization id.
    #[error(
        "PostgreSQL replica {target} (schema {schema}) holds organization {organization} up to run \
         {run}, which is not this mirror's (run {run} started at {} there, {} here): another \
         mirror file replicates this organization into this schema. Use another \
         replica.postgres.schema, or delete the organization's rows there (every table's rows \
         WHERE organization_id = {organization}) to bootstrap it from this mirror",
        .replica_started_at.as_deref().unwrap_or("no such run"),
        .mirror_started_at.as_deref().unwrap_or("no such run")
    )]
    Foreign {
        target: String,
        schema: String,
        organization: i64,
        run: i64,
        replica_started_at: Option<String>,
        mirror_started_at: Option<String>,
    },
    /// The server took fewer (or more) rows of a part than were sent (changed by hand?).
    #[error("the replica no longer matches the mirror: {part:?}: the server took {copied} rows of {rows}; {DIVERGED}")]
    CopiedRows {
        part: crate::store::ReplicaPart,
        copied: u64,
        rows: u64,
    },
    /// The intervals a run closes are not all open in the replica (changed by hand?).
    #[error("the replica no longer matches the mirror: the run closes {rows} intervals, of which the replica holds {closed} open; {DIVERGED}")]
    ClosedIntervals { rows: u64, closed: u64 },
    /// The mirror's reader is gone (a task that stopped took it).
    #[error("cannot read the mirror: it is not open")]
    MirrorClosed,
    /// The mirror's reader task stopped (`doing` says when).
    #[error("cannot read the mirror: {doing}: {source}")]
    MirrorTask {
        doing: &'static str,
        source: tokio::task::JoinError,
    },
    #[error("another replicator kept moving this organization's progress; try again")]
    KeptMoving,
    /// `replicate --verify` met a mirror that committed runs the replica does not have yet.
    #[error("database {path}: the mirror has committed runs after run {at}, which the replica is at; run `orgmirror replicate --verify` again")]
    MirrorMovedOn { path: std::path::PathBuf, at: i64 },
    /// `replicate --verify` before anything was replicated.
    #[error("the replica holds nothing of organization {0} yet; run `orgmirror replicate`")]
    NothingReplicated(i64),
    /// `orgmirror replicate` with no replica configured.
    #[error(
        "no [replica.postgres] in the config: add url (and schema) to replicate into PostgreSQL"
    )]
    NotConfigured,
    /// `replicate --verify` found views that differ (listed above it).
    #[error("the replica differs from the mirror in {0} view(s) (above); delete the organization's rows in PostgreSQL to bootstrap it anew")]
    Differs(usize),
}

/// What a replica that no longer matches its mirror is told.
const DIVERGED: &str = "nothing of this run was applied (see `orgmirror replicate --verify`)";

impl ReplicaError {
    /// The reason alone, without the replica's URL (for `status`, which shows it already).
    pub fn reason(&self) -> String {
        match self {
            ReplicaError::Connect { message, .. } => format!("cannot connect: {message}"),
            ReplicaError::Postgres {
                context, message, ..
            } => format!("{context}: {message}"),
            other => other.to_string(),
        }
    }
}

/// What one catch-up did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CatchUp {
    /// The run a bootstrap copied the mirror up to.
    pub bootstrapped_to: Option<i64>,
    /// Runs replicated one by one, in order.
    pub runs: Vec<i64>,
    /// Rows copied (runs, history rows, closed intervals, events).
    pub rows: u64,
    /// The run the replica is at now (None: the mirror has no committed run yet).
    pub at_run: Option<i64>,
    pub seconds: f64,
}

/// Replicates every committed run the replica does not have yet.
pub async fn catch_up(
    config: &Config,
    pg: &PostgresReplicaConfig,
) -> Result<CatchUp, ReplicaError> {
    let started = Instant::now();
    let target = Target::from_config(pg)?;
    let mut client = target.connect().await?;
    ensure_schema(&target, &mut client).await?;
    let organization = config.api.organization_id;
    let mut store = Some(open_mirror(&config.database.path).await?);
    let mut done = CatchUp::default();
    // Another replicator (a manual `replicate` beside the daemon) may move the progress
    // between plan and apply: the apply notices, and the plan is made again. Runs
    // committed meanwhile are picked up by the next plan.
    let mut conflicts = 0;
    loop {
        let progress = progress_of(&target, &client, organization).await?;
        let (s, plan) = with_store(store.take(), move |s| -> Result<_, StoreError> {
            let after = progress.map(|(run, _)| run).unwrap_or(0);
            let runs = s.committed_runs_after(after)?;
            let started_at = match progress {
                Some((run, _)) => Some(s.run_started_at(run)?),
                None => None,
            };
            Ok((runs, started_at))
        })
        .await?;
        store = Some(s);
        let (runs, mirror_started_at) = plan?;
        if let (Some((run, replica_started_at)), Some(mirror)) = (progress, &mirror_started_at) {
            check_same_mirror(
                &target,
                organization,
                run,
                replica_started_at,
                mirror.as_deref(),
            )?;
        }
        done.at_run = progress.map(|(run, _)| run);
        let Some(&last) = runs.last() else {
            done.seconds = started.elapsed().as_secs_f64();
            return Ok(done);
        };
        let mut moved = false;
        if progress.is_none() {
            let slice = ReplicaSlice::UpTo(last);
            let parts = [
                ReplicaPart::SyncRuns,
                ReplicaPart::History,
                ReplicaPart::Events,
                ReplicaPart::AuditActors,
                ReplicaPart::AuditEvents,
                ReplicaPart::Erasures,
            ];
            let (s, applied) = apply(
                &target,
                &mut client,
                store.take(),
                organization,
                None,
                slice,
                &parts,
            )
            .await;
            store = s;
            match applied? {
                Some(rows) => {
                    info!(organization, run = last, rows, "replica bootstrapped");
                    done.bootstrapped_to = Some(last);
                    done.rows += rows;
                    done.at_run = Some(last);
                }
                None => moved = true,
            }
        } else {
            let mut after = progress.map(|(run, _)| run).unwrap_or(0);
            for run in runs {
                let slice = ReplicaSlice::Run { after, run };
                // In the order the mirror wrote them: the run's own rows, then what an
                // erasure (or its retention pass) rewrote, then what retention dropped.
                let parts = [
                    ReplicaPart::SyncRuns,
                    ReplicaPart::Closings,
                    ReplicaPart::History,
                    ReplicaPart::Events,
                    ReplicaPart::AuditActors,
                    ReplicaPart::AuditEvents,
                    ReplicaPart::Attributions,
                    ReplicaPart::Rewrites,
                    ReplicaPart::AuditRewrites,
                    ReplicaPart::Retention,
                    ReplicaPart::Erasures,
                ];
                let (s, applied) = apply(
                    &target,
                    &mut client,
                    store.take(),
                    organization,
                    Some(after),
                    slice,
                    &parts,
                )
                .await;
                store = s;
                match applied? {
                    Some(rows) => {
                        info!(organization, run, rows, "run replicated");
                        done.runs.push(run);
                        done.rows += rows;
                        done.at_run = Some(run);
                        after = run;
                    }
                    None => {
                        moved = true;
                        break;
                    }
                }
            }
        }
        if moved {
            conflicts += 1;
            if conflicts > 10 {
                return Err(ReplicaError::KeptMoving);
            }
        }
        if store.is_none() {
            store = Some(open_mirror(&config.database.path).await?);
        }
    }
}

/// Applies one slice in one transaction: the parts, then the progress. `expected` is the
/// progress the slice follows (None: a bootstrap). Returns the rows copied, or None when
/// the progress was no longer `expected` (nothing applied). Gives the store back.
async fn apply(
    target: &Target,
    client: &mut tokio_postgres::Client,
    store: Option<Store>,
    organization: i64,
    expected: Option<i64>,
    slice: ReplicaSlice,
    parts: &[ReplicaPart],
) -> (Option<Store>, Result<Option<u64>, ReplicaError>) {
    let tx = match client.transaction().await {
        Ok(tx) => tx,
        Err(e) => return (store, Err(target.error("cannot begin a transaction", e))),
    };
    // One replicator per organization and schema at a time.
    let locked = tx
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('orgmirror replica ' || current_schema() || ' ' || $1::text, 0))",
            &[&organization.to_string()],
        )
        .await;
    if let Err(e) = locked {
        return (
            store,
            Err(target.error("cannot lock the organization's progress", e)),
        );
    }
    match tx
        .query_opt(
            "SELECT sync_run_id FROM replica_progress WHERE organization_id = $1",
            &[&organization],
        )
        .await
    {
        Ok(row) if row.as_ref().map(|r| r.get::<_, i64>(0)) == expected => {}
        Ok(_) => return (store, Ok(None)),
        Err(e) => return (store, Err(target.error("cannot read the progress", e))),
    }
    let Some(mut store) = store else {
        return (None, Err(ReplicaError::MirrorClosed));
    };
    let (out, mut pieces) = mpsc::channel(copy::QUEUE);
    let parts_owned = parts.to_vec();
    let reader = tokio::task::spawn_blocking(move || {
        let r = copy::read(&mut store, organization, slice, &parts_owned, &out);
        (store, r)
    });
    let sent = copy::send(target, &tx, organization, &mut pieces).await;
    // Whatever happened, the reader stops once nothing receives.
    drop(pieces);
    let (store, read) = match reader.await {
        Ok((store, read)) => (Some(store), read.map_err(ReplicaError::from)),
        Err(source) => (
            None,
            Err(ReplicaError::MirrorTask {
                doing: "the reader stopped",
                source,
            }),
        ),
    };
    let result = async {
        read?;
        let rows = sent?;
        let run = match slice {
            ReplicaSlice::UpTo(run) | ReplicaSlice::Run { run, .. } => run,
        };
        tx.execute(
            "INSERT INTO replica_progress (organization_id, sync_run_id, replicated_at)
             VALUES ($1, $2, now())
             ON CONFLICT (organization_id) DO UPDATE
                 SET sync_run_id = excluded.sync_run_id, replicated_at = excluded.replicated_at",
            &[&organization, &run],
        )
        .await
        .map_err(|e| target.error("cannot record the progress", e))?;
        tx.commit()
            .await
            .map_err(|e| target.error("cannot commit", e))?;
        Ok(Some(rows))
    }
    .await;
    (store, result)
}

/// The replica's run for `organization` and when that run started, if any.
async fn progress_of(
    target: &Target,
    client: &tokio_postgres::Client,
    organization: i64,
) -> Result<Option<(i64, Option<chrono::DateTime<chrono::Utc>>)>, ReplicaError> {
    let row = client
        .query_opt(
            "SELECT p.sync_run_id, r.started_at FROM replica_progress p
             LEFT JOIN sync_runs r ON r.organization_id = p.organization_id AND r.sync_run_id = p.sync_run_id
             WHERE p.organization_id = $1",
            &[&organization],
        )
        .await
        .map_err(|e| target.error("cannot read the progress", e))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Refuses to add to an organization's rows that came from another mirror file (a new file
/// numbers its runs from 1 again): the replica's last run must be this mirror's.
fn check_same_mirror(
    target: &Target,
    organization: i64,
    run: i64,
    replica: Option<chrono::DateTime<chrono::Utc>>,
    mirror: Option<&str>,
) -> Result<(), ReplicaError> {
    let mirror_at = mirror
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    if replica.is_some() && replica == mirror_at {
        return Ok(());
    }
    Err(ReplicaError::Foreign {
        target: target.display.clone(),
        schema: target.schema.clone(),
        organization,
        run,
        replica_started_at: replica.map(crate::clock::format_utc),
        mirror_started_at: mirror.map(str::to_string),
    })
}

/// Creates or upgrades the replica's schema when it is older than [`SCHEMA_VERSION`], and
/// points the session's `search_path` at it.
async fn ensure_schema(
    target: &Target,
    client: &mut tokio_postgres::Client,
) -> Result<(), ReplicaError> {
    let schema = &target.schema;
    // The name is validated to [a-z_][a-z0-9_]*: no quoting issue.
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .await
        .map_err(|e| target.error("cannot set search_path", e))?;
    let version = schema_version(target, client).await?;
    if version == Some(SCHEMA_VERSION) {
        return Ok(());
    }
    if version.is_some_and(|v| v > SCHEMA_VERSION) {
        return Err(ReplicaError::NewerSchema {
            schema: schema.clone(),
            version: version.unwrap_or_default(),
        });
    }
    let tx = client
        .transaction()
        .await
        .map_err(|e| target.error("cannot begin a transaction", e))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('orgmirror replica schema ' || $1::text, 0))",
        &[schema],
    )
    .await
    .map_err(|e| target.error("cannot lock the schema", e))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; SET LOCAL search_path TO {schema};"
    ))
    .await
    .map_err(|e| target.error(&format!("cannot create schema {schema}"), e))?;
    tx.batch_execute(SCHEMA_SQL)
        .await
        .map_err(|e| target.error(&format!("cannot set up schema {schema}"), e))?;
    tx.execute("DELETE FROM replica_schema", &[])
        .await
        .and(
            tx.execute(
                "INSERT INTO replica_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await,
        )
        .map_err(|e| target.error("cannot record the schema version", e))?;
    tx.commit()
        .await
        .map_err(|e| target.error("cannot commit the schema", e))?;
    info!(schema = %schema, version = SCHEMA_VERSION, "replica schema set up");
    Ok(())
}

async fn schema_version(
    target: &Target,
    client: &tokio_postgres::Client,
) -> Result<Option<i32>, ReplicaError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass(quote_ident($1) || '.replica_schema') IS NOT NULL",
            &[&target.schema],
        )
        .await
        .map_err(|e| target.error("cannot look for the schema", e))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt("SELECT max(version) FROM replica_schema", &[])
        .await
        .map_err(|e| target.error("cannot read the schema version", e))?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Opens the mirror read-only, off the async threads.
async fn open_mirror(path: &Path) -> Result<Store, ReplicaError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || Store::open_read_only(&path))
        .await
        .map_err(|source| ReplicaError::MirrorTask {
            doing: "cannot open it",
            source,
        })?
        .map_err(ReplicaError::from)
}

/// Runs `f` on the store on a blocking thread and gives the store back.
async fn with_store<T: Send + 'static>(
    store: Option<Store>,
    f: impl FnOnce(&mut Store) -> T + Send + 'static,
) -> Result<(Store, T), ReplicaError> {
    let Some(mut store) = store else {
        return Err(ReplicaError::MirrorClosed);
    };
    tokio::task::spawn_blocking(move || {
        let t = f(&mut store);
        (store, t)
    })
    .await
    .map_err(|source| ReplicaError::MirrorTask {
        doing: "the reader stopped",
        source,
    })
}

/// After run `run_id`: replicates it (and whatever the replica misses) when a replica is
/// configured and the run `committed`. Never fails: a replica that cannot be reached or
/// refuses is a warning, and the next run or `orgmirror replicate` catches up.
pub async fn after_run(config: &Config, run_id: i64, committed: bool) {
    let Some(pg) = &config.replica.postgres else {
        return;
    };
    if !committed {
        // A failed run's row waits for the next committed one; its health does not.
        if let Err(e) = record_health(config, pg).await {
            warn!(run_id, error = %e, "could not record the mirror's health in PostgreSQL; the next run tries again");
        }
        return;
    }
    match catch_up(config, pg).await {
        Ok(done) => info!(
            run_id,
            replica_run = done.at_run,
            runs = done.runs.len(),
            bootstrapped_to = done.bootstrapped_to,
            rows = done.rows,
            duration_ms = (done.seconds * 1000.0) as u64,
            "replicated to PostgreSQL"
        ),
        Err(e) => warn!(
            run_id,
            error = %e,
            "replication to PostgreSQL failed; the run is committed in SQLite, and the next run or `orgmirror replicate` catches up"
        ),
    }
    if let Err(e) = record_health(config, pg).await {
        warn!(run_id, error = %e, "could not record the mirror's health in PostgreSQL; the next run tries again");
    }
}

/// Copies the mirror's health (`mirror_freshness`) into the replica's `mirror_health` row
/// for this organization, so that its `mirror_freshness` says the same.
pub async fn record_health(
    config: &Config,
    pg: &PostgresReplicaConfig,
) -> Result<(), ReplicaError> {
    let store = open_mirror(&config.database.path).await?;
    let (_, read) = with_store(Some(store), |s| s.freshness()).await?;
    let Some(f) = read? else {
        return Ok(());
    };
    let target = Target::from_config(pg)?;
    let mut client = target.connect().await?;
    ensure_schema(&target, &mut client).await?;
    let instant = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    client
        .execute(
            "INSERT INTO mirror_health (organization_id, last_success_at, last_attempt_at, last_status,
                 last_error, consecutive_failures, stale_after_seconds, failing_since, hint,
                 first_attempt_at, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
             ON CONFLICT (organization_id) DO UPDATE SET
                 last_success_at = excluded.last_success_at, last_attempt_at = excluded.last_attempt_at,
                 last_status = excluded.last_status, last_error = excluded.last_error,
                 consecutive_failures = excluded.consecutive_failures,
                 stale_after_seconds = excluded.stale_after_seconds,
                 failing_since = excluded.failing_since, hint = excluded.hint,
                 first_attempt_at = excluded.first_attempt_at, recorded_at = excluded.recorded_at",
            &[
                &config.api.organization_id,
                &instant(&f.last_success_at),
                &instant(&f.last_attempt_at),
                &f.last_status,
                &f.last_error,
                &f.consecutive_failures,
                &f.stale_after_seconds,
                &instant(&f.failing_since),
                &f.hint,
                &instant(&f.first_attempt_at),
            ],
        )
        .await
        .map_err(|e| target.error("cannot record the mirror's health", e))?;
    Ok(())
}

/// Drops the replica schema `schema` at `url` and everything in it (the benchmark's
/// clean-up); the password comes from where `replicate` reads it.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), ReplicaError> {
    let pg = PostgresReplicaConfig::at(url, schema);
    let target = Target::from_config(&pg)?;
    let client = target.connect().await?;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", target.schema))
        .await
        .map_err(|e| target.error("cannot drop the schema", e))
}

/// Where the replica stands, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// `postgres://user@host/db`.
    pub url: String,
    pub schema: String,
    /// The last run replicated (None: not bootstrapped yet, or unreachable).
    pub replicated_run: Option<i64>,
    pub replicated_at: Option<String>,
    /// Committed runs of the mirror the replica does not have yet.
    pub runs_behind: Option<i64>,
    /// Why the replica could not be asked.
    pub error: Option<String>,
}

/// Asks the replica how far it is (bounded by its connect timeout).
pub async fn status(config: &Config) -> Option<ReplicaStatus> {
    let pg = config.replica.postgres.as_ref()?;
    let mut report = ReplicaStatus {
        url: pg.url.clone(),
        schema: pg.schema.clone(),
        replicated_run: None,
        replicated_at: None,
        runs_behind: None,
        error: None,
    };
    let asked = async {
        let target = Target::from_config(pg)?;
        let client = target.connect().await?;
        client
            .batch_execute(&format!("SET search_path TO {}", target.schema))
            .await
            .map_err(|e| target.error("cannot set search_path", e))?;
        if schema_version(&target, &client).await?.is_none() {
            return Ok(None);
        }
        let row = client
            .query_opt(
                "SELECT sync_run_id, replicated_at FROM replica_progress WHERE organization_id = $1",
                &[&config.api.organization_id],
            )
            .await
            .map_err(|e| target.error("cannot read the progress", e))?;
        Ok::<_, ReplicaError>(row.map(|r| {
            (
                r.get::<_, i64>(0),
                r.get::<_, chrono::DateTime<chrono::Utc>>(1),
            )
        }))
    }
    .await;
    let at = match asked {
        Ok(Some((run, at))) => {
            report.replicated_run = Some(run);
            report.replicated_at = Some(crate::clock::format_utc(at));
            run
        }
        Ok(None) => 0,
        Err(e) => {
            report.error = Some(e.reason());
            return Some(report);
        }
    };
    let path = config.database.path.clone();
    let behind = tokio::task::spawn_blocking(move || {
        Store::open_read_only(&path).and_then(|s| s.committed_runs_after(at))
    })
    .await;
    if let Ok(Ok(runs)) = behind {
        report.runs_behind = Some(runs.len() as i64);
    }
    Some(report)
}

/// `orgmirror replicate [--verify]`.
pub async fn run(config: &Config, verify_after: bool) -> Result<(), ReplicaError> {
    let Some(pg) = config.replica.postgres.clone() else {
        return Err(ReplicaError::NotConfigured);
    };
    let done = catch_up(config, &pg).await?;
    record_health(config, &pg).await?;
    let at = done
        .at_run
        .map(|r| format!("at run {r}"))
        .unwrap_or_else(|| "empty (the mirror has no committed run yet)".to_string());
    match done.bootstrapped_to {
        Some(run) => crate::outln!(
            "bootstrapped the replica with the mirror up to run {run}, then {} runs; {} rows in {:.1}s; the replica is {at}",
            done.runs.len(),
            done.rows,
            done.seconds
        ),
        None => crate::outln!(
            "replicated {} runs, {} rows in {:.1}s; the replica is {at}",
            done.runs.len(),
            done.rows,
            done.seconds
        ),
    }
    if !verify_after {
        return Ok(());
    }
    let checks = verify(config, &pg).await?;
    let mut differ = 0;
    for check in &checks {
        crate::outln!("{}", check.line());
        if !check.same() {
            differ += 1;
        }
    }
    if differ == 0 {
        crate::outln!("the replica matches the mirror in every view");
        Ok(())
    } else {
        Err(ReplicaError::Differs(differ))
    }
}

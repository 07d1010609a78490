//! One run: pull completely -> confirm absences -> guard -> diff -> commit, in one
//! transaction at the end. `sync`, `run` (the daemon), `demo` and the group commands all go
//! through here.
//!
//! To follow a run: [`run_once`], then `pull_and_commit`: the stored hashes
//! (`Store::stored_state`), every page into an [`OrgSnapshot`] (a record that matches its
//! stored hash is kept as its key only), what the pull missed asked for by id
//! (`confirm.rs`), the deletion guard, [`diff::diff`], and `Store::commit_run`. `end.rs`
//! records how a run ended; `refresh.rs` is the targeted run after a group write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::api::{
    ApiError, Client, IdFilter, PageProgress, QuotaSeen, RequestStats, MAX_QUOTA_RESET,
};
use crate::clock::{format_utc, now_utc};
use crate::config::Config;
use crate::diff::{self, Scope};
use crate::model::Entity;
use crate::snapshot::{OrgSnapshot, RecordError};
use crate::store::{RunTimes, RunTotals, Store, StoreError};

mod audit;
mod confirm;
mod end;
mod failure;
#[cfg(test)]
mod guard_tests;
mod progress;
mod refresh;
pub use failure::{same_error, ExitStatusOf};
pub use refresh::refresh;

pub use confirm::MassDelete;
use confirm::{confirm_absences, confirm_members, guard_deletions};
use end::{record_end, Ending};
use progress::ProgressLine;

/// Why a run did not commit.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A record the API sent that cannot be mirrored, named by entity, id and field.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The deletion guard refused the run.
    #[error("refused: {0}")]
    Refused(MassDelete),
    /// The credentials could not be read (a daemon's tick reads them afresh).
    #[error(transparent)]
    Credentials(#[from] crate::config::ConfigError),
}

impl SyncError {
    /// Whether the deletion guard refused the run (as opposed to a failure).
    pub fn is_refusal(&self) -> bool {
        matches!(self, SyncError::Refused(_))
    }
}

/// A run that did not commit, with its figures and why: what `sync` and `demo` print
/// (once) and exit with (`exit::status`).
#[derive(Debug, thiserror::Error)]
#[error("run {run_id} failed after {:.1}s ({requests} requests{}); the mirror is unchanged: {error}",
    .duration.as_secs_f64(), quota_left(*.quota_remaining))]
pub struct RunFailed {
    pub run_id: i64,
    pub duration: Duration,
    pub requests: u32,
    pub quota_remaining: Option<i64>,
    /// Part of the message, so not also its `source` (a chain would say it twice).
    pub error: SyncError,
}

/// `, 42 requests left this hour`, or nothing when the quota was not seen.
pub fn quota_left(remaining: Option<i64>) -> String {
    remaining
        .map(|q| format!(", {q} requests left this hour"))
        .unwrap_or_default()
}

/// What the caller wants of a run.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Accept a pull that trips the deletion guard.
    pub allow_mass_delete: bool,
    /// Show a progress line per entity on stderr (only when it is a terminal).
    pub progress: bool,
    /// The caller prints the run's report, error included (`sync`, `demo`): the summary
    /// event then leaves the error out, so that a person reads it once.
    pub prints_report: bool,
    /// The exit status a failed run's error maps to, recorded with it (`exit`'s mapping).
    pub exit_status: Option<ExitStatusOf>,
}

/// How a run went, committed or not.
#[derive(Debug)]
pub struct RunReport {
    pub run_id: i64,
    pub committed: bool,
    /// Events by (entity, op).
    pub events: BTreeMap<(Entity, &'static str), usize>,
    pub requests: u32,
    pub quota_remaining: Option<i64>,
    pub duration: Duration,
    /// Why it did not commit, as the run met it.
    pub error: Option<SyncError>,
}

impl RunReport {
    /// The deletion guard refused it.
    pub fn refused(&self) -> bool {
        self.error.as_ref().is_some_and(SyncError::is_refusal)
    }

    /// The report of a committed run, or the error of one that did not commit.
    pub fn into_result(self) -> Result<RunReport, Box<RunFailed>> {
        match self.error {
            Some(error) if !self.committed => Err(Box::new(RunFailed {
                run_id: self.run_id,
                duration: self.duration,
                requests: self.requests,
                quota_remaining: self.quota_remaining,
                error,
            })),
            _ => Ok(self),
        }
    }

    /// Total events written.
    pub fn events_written(&self) -> usize {
        self.events.values().sum()
    }

    /// `user: 3 insert, 1 update; group_membership: 2 delete`.
    pub fn events_line(&self) -> String {
        if self.events.is_empty() {
            return "no changes".to_string();
        }
        let mut by_entity: BTreeMap<Entity, Vec<String>> = BTreeMap::new();
        for ((entity, op), n) in &self.events {
            by_entity
                .entry(*entity)
                .or_default()
                .push(format!("{n} {op}"));
        }
        by_entity
            .into_iter()
            .map(|(e, ops)| format!("{}: {}", e.as_str(), ops.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Runs one complete sync and records it, whatever happens, in `sync_runs`.
/// Returns the report of a committed run, or of a failed one with its error.
pub async fn run_once(
    client: &Client,
    store: &mut Store,
    config: &Config,
    options: &SyncOptions,
) -> Result<RunReport, StoreError> {
    let started = Instant::now();
    let (run_id, at) = begin_run(store, "full", config).await?;
    client.start_run();
    info!(run_id, at, "sync started");
    let result = pull_and_commit(client, store, config, options, run_id, &at).await;
    let report = record_end(
        client,
        store,
        run_id,
        started,
        result,
        Ending::full(options),
    )?;
    after_full_run(store, config, &report).await;
    Ok(report)
}

/// After a full run, its row final: the health alerts its outcome calls for (not part of
/// the run: a transaction of their own, see `Store::queue_health_alerts`), then the replica.
async fn after_full_run(store: &mut Store, config: &Config, report: &RunReport) {
    let run_id = report.run_id;
    match store.queue_health_alerts(&now_utc()) {
        Ok(0) => {}
        Ok(n) => info!(run_id, alerts = n, "health alerts queued"),
        Err(error) => {
            warn!(run_id, %error, "could not queue the health alerts; the daemon's next check does")
        }
    }
    crate::replica::after_run(config, run_id, report.committed).await;
}

/// A full run with the credentials read afresh, as the daemon's ticks run: a key replaced
/// in `api.token_file` or the systemd credential is used without a restart, and a key the
/// API refused is never kept. Credentials that cannot be read fail the run, recorded in
/// `sync_runs` like any other failure.
pub async fn run_with_fresh_credentials(
    client: &Client,
    store: &mut Store,
    config: &Config,
    options: &SyncOptions,
) -> Result<RunReport, StoreError> {
    let fresh = crate::config::Credentials::load(&config.api)
        .map_err(SyncError::from)
        .and_then(|c| client.use_credentials(&c).map_err(SyncError::from));
    match fresh {
        Ok(()) => run_once(client, store, config, options).await,
        Err(error) => {
            let started = Instant::now();
            let (run_id, _) = begin_run(store, "full", config).await?;
            client.start_run();
            let report = record_end(
                client,
                store,
                run_id,
                started,
                Err(error),
                Ending::full(options),
            )?;
            after_full_run(store, config, &report).await;
            Ok(report)
        }
    }
}

/// Starts a run; returns its id and its time (see [`run_time`]). While another connection
/// holds SQLite's write lock, or another orgmirror process the writer lock (a manual `sync`,
/// a group command, the daemon's run), the wait (up to `database.busy_timeout`) is asleep,
/// not in SQLite's busy handler: the daemon's loop then goes on pinging the watchdog and
/// hearing stop signals, and a tick or a group command's refresh is not lost to a busy moment.
async fn begin_run(
    store: &mut Store,
    kind: &str,
    config: &Config,
) -> Result<(i64, String), StoreError> {
    // Nothing is written on top of damage (not even the run's row).
    let checking = Instant::now();
    store.refuse_damage()?;
    tracing::debug!(
        quick_check_ms = checking.elapsed().as_secs_f64() * 1e3,
        "quick_check"
    );
    let patience = config.database.busy_timeout.duration();
    let stale_after = crate::cadence::stale_after(config, Some(store)).as_secs();
    let stale_after = i64::try_from(stale_after).ok();
    let run_id = crate::store::retry_while_busy(
        patience,
        || store.begin_run(kind, &now_utc(), stale_after),
        |e| info!(kind, error = %e, patience_s = patience.as_secs_f64(), "waiting for the database"),
    )
    .await?;
    let at = run_time(store, run_id)?;
    Ok((run_id, at))
}

/// The time run `run_id` carries. A wall clock behind the last committed run's is
/// clamped past it: a warning when the clock stepped back since that run, an info line when
/// it did not (another run committed in the same second, or the clock has not yet caught up
/// with a step back already warned of).
fn run_time(store: &Store, run_id: i64) -> Result<String, StoreError> {
    let RunTimes {
        at,
        wall_clock,
        clock_went_back,
    } = store.run_times(run_id)?;
    if clock_went_back {
        warn!(
            run_id,
            wall_clock,
            at,
            "the clock is behind the last committed run's; this run is recorded one second after that run, so history intervals never overlap or are empty"
        );
    } else if at != wall_clock {
        info!(
            run_id,
            wall_clock,
            at,
            "the clock has not passed the last committed run's time; this run is recorded one second after it"
        );
    }
    Ok(at)
}

/// How long a list found to honour no id filter form is taken at its word before a by-id
/// read asks again (a server may come to honour one).
const NO_FILTER_RECHECK: chrono::Duration = chrono::Duration::days(1);

/// Primes `client` with what the API taught earlier runs (from the database): the page size
/// each list accepted, and the id filter form each honours, so that neither costs a request
/// again.
pub fn prime_client(client: &Client, store: &Store) -> Result<(), StoreError> {
    for (list, size) in store.page_sizes()? {
        client.remember_page_size(&list, size);
    }
    let recheck_before = format_utc(chrono::Utc::now() - NO_FILTER_RECHECK);
    for (list, form, learned_at) in store.filter_forms()? {
        match IdFilter::parse(&form) {
            Some(IdFilter::Neither) if learned_at < recheck_before => {}
            Some(form) => client.remember_filter_form(&list, form),
            None => {}
        }
    }
    Ok(())
}

fn totals_of(stats: &RequestStats) -> RunTotals {
    RunTotals {
        pacing_wait_ms: i64::try_from(stats.pacing_wait.as_millis()).unwrap_or(i64::MAX),
        requests: i64::from(stats.requests),
        quota_remaining: stats.quota.and_then(|q| q.remaining),
        quota_resets_at: stats
            .quota
            .and_then(|q| q.resets_at_unix)
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(format_utc),
        quarantined: None,
        pending_absences: None,
        audit: None,
    }
}

/// Quarantines, in `snapshot`, the records the client could not read so far this run
/// (each is in its list as a stand-in, which `add_user`/`add_team` then pass over).
fn apply_quarantine(client: &Client, snapshot: &mut OrgSnapshot) {
    for q in client.quarantined() {
        let entity = match q.list.as_str() {
            "teams" => Entity::Group,
            "users" => Entity::User,
            // A custom fields row that could not be read only leaves that member's values be.
            _ => continue,
        };
        let key = crate::model::EntityKey::new(entity, q.id);
        if !snapshot.is_quarantined(&key) {
            warn!(
                entity = entity.as_str(),
                id = q.id,
                reason = q.reason,
                "record quarantined: its id is readable, its body is not; the mirror keeps its last good version"
            );
            snapshot.quarantine(key, q.reason);
        }
    }
}

/// The run's quarantined records as `sync_runs.quarantined_json`, or None when there are none.
fn quarantined_json(client: &Client) -> Option<String> {
    let q = client.quarantined();
    (!q.is_empty()).then(|| serde_json::to_string(&q).unwrap_or_else(|_| "[]".to_string()))
}

async fn pull_and_commit(
    client: &Client,
    store: &mut Store,
    config: &Config,
    options: &SyncOptions,
    run_id: i64,
    at: &str,
) -> Result<BTreeMap<(Entity, &'static str), usize>, SyncError> {
    // Before spending any request, make sure the quota can carry the whole run.
    if let Some((remaining, resets_at)) = store.last_quota()? {
        let resets_at_unix = resets_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp());
        // A reset further away than any hourly quota can be (recorded by an older build, or
        // a clock that jumped) is not honoured: the next answer says where the quota stands.
        let horizon = chrono::Utc::now().timestamp() + MAX_QUOTA_RESET.as_secs() as i64;
        if resets_at_unix.is_none_or(|at| at <= horizon) {
            client.seed_quota(QuotaSeen {
                remaining: Some(remaining),
                resets_at_unix,
            });
        }
    }
    // Page sizes the API refused, and id filter forms it ignored, in earlier runs are not
    // asked again.
    prime_client(client, store)?;
    let pending = store.pending_absences()?;
    let expected = store
        .last_full_run_requests()?
        .unwrap_or(3)
        .clamp(1, i64::from(u32::MAX)) as u32;
    client.ensure_quota(expected).await?;

    let mut progress = ProgressLine::new(options.progress);
    // This process holds the writer lock: what the mirror holds cannot change during the
    // pull, so records that match it can be reduced to their keys as they arrive.
    let stored = Arc::new(store.stored_state()?);
    let mut snapshot = OrgSnapshot::against(Arc::clone(&stored));
    if let Some(workspace) = config.sync.custom_fields_workspace_id {
        snapshot.watch_custom_fields(workspace);
    }
    pull(client, config, &mut progress, &mut snapshot).await?;
    progress.done();
    info!(
        run_id,
        roles = snapshot.count(Entity::Role),
        groups = snapshot.count(Entity::Group),
        users = snapshot.count(Entity::User),
        memberships = snapshot.count(Entity::GroupMembership),
        unchanged = snapshot.unchanged().count(),
        requests = client.stats().requests,
        "pulled the organization"
    );

    let pending = confirm_absences(client, config, &stored, &pending, &mut snapshot).await?;
    confirm_members(client, config, &stored, &mut snapshot, false).await?;
    if let Some(workspace) = config.sync.custom_fields_workspace_id {
        pull_custom_fields(client, &mut progress, &mut snapshot, workspace).await?;
    }
    if !options.allow_mass_delete {
        guard_deletions(&stored, &snapshot, config.sync.max_delete_fraction)?;
    }
    let scope = Scope {
        only: None,
        rates: config.sync.include_rates,
        custom_fields: config.sync.custom_fields_workspace_id.is_some(),
    };
    let d = diff::diff(&stored, &snapshot, &scope);
    let audit = audit::pull_audit(client, store, config, run_id).await?;
    let totals = RunTotals {
        quarantined: quarantined_json(client),
        pending_absences: Some(pending),
        audit: audit.map(Box::new),
        ..totals_of(&client.stats())
    };
    Ok(store.commit_run(run_id, &d, &snapshot.workspace_names, at, &totals)?)
}

/// Pulls roles, teams and users into `snapshot`, a page at a time.
async fn pull(
    client: &Client,
    config: &Config,
    progress: &mut ProgressLine,
    snapshot: &mut OrgSnapshot,
) -> Result<(), SyncError> {
    let roles = client.roles().await?;
    progress.report(&PageProgress {
        entity: "roles",
        page: 1,
        rows: roles.len(),
        requests: client.stats().requests,
        quota_remaining: client.stats().quota.and_then(|q| q.remaining),
        pacing_wait: client.stats().pacing_wait,
    });
    snapshot.add_roles(roles)?;
    // Pages go straight into the snapshot: the raw rows of the whole org are never held.
    client
        .pull_teams_each(&mut |p| progress.report(p), &mut |page| {
            apply_quarantine(client, snapshot);
            for (team, unknown) in page {
                snapshot.add_team(team, unknown)?;
            }
            Ok::<(), SyncError>(())
        })
        .await?;
    let (rates, hours) = (config.sync.include_rates, config.sync.include_working_hours);
    client
        .pull_users_each(rates, hours, &mut |p| progress.report(p), &mut |page| {
            apply_quarantine(client, snapshot);
            for (user, unknown) in page {
                snapshot.add_user(user, unknown)?;
            }
            Ok::<(), SyncError>(())
        })
        .await?;
    Ok(())
}

/// The custom field values of the members of `workspace` (a paged pull of its members),
/// after every user is known: a member's values are taken only from a row that has them, and
/// the values of a member the pull did not speak for stay as they are while the users pull
/// listed them in the workspace (see [`OrgSnapshot::settle_custom_fields`]).
async fn pull_custom_fields(
    client: &Client,
    progress: &mut ProgressLine,
    snapshot: &mut OrgSnapshot,
    workspace: i64,
) -> Result<(), SyncError> {
    let (mut rows, mut spoken) = (0usize, 0usize);
    let mut report = |p: &PageProgress| {
        progress.report(&PageProgress {
            entity: "custom fields",
            ..p.clone()
        })
    };
    client
        .pull_custom_fields_each(workspace, &mut report, &mut |page| {
            for (member, _) in page {
                rows += 1;
                spoken += usize::from(snapshot.add_member_custom_fields(member)?);
            }
            Ok::<(), SyncError>(())
        })
        .await?;
    progress.done();
    let kept = snapshot.settle_custom_fields();
    if rows > 0 && spoken == 0 {
        warn!(
            workspace,
            members = rows,
            "the users list sent no custom_field_values for the workspace; its custom fields are not mirrored this run (the API key's user may not see them) and what the mirror holds of them stays"
        );
    }
    info!(
        workspace,
        members = rows,
        with_values = spoken,
        values = snapshot.count(Entity::UserCustomField),
        kept_unread = kept,
        "pulled custom fields"
    );
    Ok(())
}

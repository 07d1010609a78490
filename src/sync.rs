//! One run: pull completely -> confirm absences -> guard -> diff -> commit.
//! `sync`, `run` (the daemon), `demo` and the group commands all go through here.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::api::{
    ApiError, ByIds, Client, IdFilter, PageProgress, QuotaSeen, RequestStats, MAX_QUOTA_RESET,
};
use crate::clock::{format_utc, now_utc};
use crate::config::Config;
use crate::diff::{self, Scope};
use crate::model::{Entity, EntityKey, StoredState, Targets};
use crate::snapshot::{OrgSnapshot, RecordError};
use crate::store::{RunFailure, RunTimes, RunTotals, Store};

mod failure;
#[cfg(test)]
mod guard_tests;
mod mirror;
/// The error a run ends with: the store's, for now (one error type per layer is issue 14's
/// later part); re-exported so the daemon names only `sync`.
pub use crate::store::StoreError;
pub use failure::{same_error, ExitStatusOf};
pub use mirror::{open_store, Mirror};

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
    Refused(String),
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
    let report = finish(
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
            let report = finish(
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
        quick_check_ms = checking.elapsed().as_millis() as u64,
        "quick_check"
    );
    let patience = config.database.busy_timeout.duration();
    let waiting = Instant::now();
    let mut said = false;
    let stale_after = crate::cadence::stale_after(config, Some(store)).as_secs();
    let stale_after = i64::try_from(stale_after).ok();
    let run_id = loop {
        match store.begin_run(kind, &now_utc(), stale_after) {
            Err(e) if (e.is_busy() || e.is_locked()) && waiting.elapsed() < patience => {
                if !said {
                    said = true;
                    info!(kind, error = %e, patience_s = patience.as_secs_f64(), "waiting for the database");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            begun => break begun?,
        }
    };
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

/// Refreshes only the given groups and users (after a group write): a targeted run with
/// its own `sync_runs` row and events. Ids that no longer exist upstream are recorded as deleted.
pub async fn refresh(
    client: &Client,
    store: &mut Store,
    config: &Config,
    mut targets: Targets,
) -> Result<RunReport, StoreError> {
    let started = Instant::now();
    let (run_id, observed_at) = begin_run(store, "targeted", config).await?;
    client.start_run();
    let result = async {
        prime_client(client, store)?;
        let mut snapshot = OrgSnapshot::default();
        let groups: Vec<i64> = targets.groups.iter().copied().collect();
        let users: Vec<i64> = targets.users.iter().copied().collect();
        if !groups.is_empty() {
            let found = match client.teams_by_ids(&groups).await? {
                ByIds::Found(found) => found,
                ByIds::Unfiltered => {
                    // No id filter: the groups come from a complete pull of the teams, where
                    // a missing one may have been skipped, so only a group the command
                    // deleted is judged gone; the others are the next syncs' to confirm.
                    let all = client.pull_teams(&mut |_| {}).await?;
                    let listed: BTreeSet<i64> = all.iter().filter_map(|(t, _)| t.id).collect();
                    targets
                        .groups
                        .retain(|g| listed.contains(g) || targets.deleted.contains(g));
                    all
                }
            };
            apply_quarantine(client, &mut snapshot);
            for (team, unknown) in found {
                snapshot.add_team(team, unknown)?;
            }
        }
        if !users.is_empty() {
            let (rates, hours) = (config.sync.include_rates, config.sync.include_working_hours);
            match client.users_by_ids(&users, rates, hours).await? {
                ByIds::Found(found) => {
                    apply_quarantine(client, &mut snapshot);
                    for (user, unknown) in found {
                        snapshot.add_user(user, unknown)?;
                    }
                }
                ByIds::Unfiltered => {
                    // Reading them would take a complete pull of the users: the next sync
                    // records what changed of them (their memberships are the groups').
                    info!(
                        users = users.len(),
                        "the API honours no id filter: the users are refreshed by the next sync"
                    );
                    targets.users.clear();
                }
            }
        }
        // Rows the filters returned beyond what was asked are not this refresh's to judge.
        snapshot.users.retain(|id, _| targets.users.contains(id));
        snapshot.rates.retain(|id, _| targets.users.contains(id));
        snapshot.groups.retain(|id, _| targets.groups.contains(id));
        snapshot
            .memberships
            .retain(|(g, _), _| targets.groups.contains(g));
        let stored = store.stored_state()?;
        let found = confirm_members(client, config, &stored, &mut snapshot, true).await?;
        targets.users.extend(found);
        // A record that could not be read is not this refresh's to judge.
        for key in snapshot.quarantined() {
            match key.entity {
                Entity::User => targets.users.remove(&key.id),
                _ => targets.groups.remove(&key.id),
            };
        }
        let scope = Scope {
            only: Some(targets),
            rates: config.sync.include_rates,
            custom_fields: false,
        };
        let d = diff::diff(&stored, &snapshot, &scope);
        let totals = RunTotals {
            quarantined: quarantined_json(client),
            ..totals_of(&client.stats())
        };
        let counts =
            store.commit_run(run_id, &d, &snapshot.workspace_names, &observed_at, &totals)?;
        Ok(counts)
    }
    .await;
    // The group commands print the report.
    let ending = Ending {
        printed: true,
        exit_status: None,
        full: false,
    };
    let report = finish(client, store, run_id, started, result, ending)?;
    crate::replica::after_run(config, report.run_id, report.committed).await;
    Ok(report)
}

/// How [`finish`] records and tells a run's end.
#[derive(Debug, Clone, Copy)]
struct Ending {
    /// The caller prints the report, error included.
    printed: bool,
    exit_status: Option<ExitStatusOf>,
    /// A full run: the journal tells how it stands among the runs before it.
    full: bool,
}

impl Ending {
    /// A full run's, as `options` ask.
    fn full(options: &SyncOptions) -> Ending {
        Ending {
            printed: options.prints_report,
            exit_status: options.exit_status,
            full: true,
        }
    }
}

fn finish(
    client: &Client,
    store: &mut Store,
    run_id: i64,
    started: Instant,
    result: Result<BTreeMap<(Entity, &'static str), usize>, SyncError>,
    ending: Ending,
) -> Result<RunReport, StoreError> {
    let stats = client.stats();
    let totals = totals_of(&stats);
    // What the API taught about page sizes and id filters holds whether this run
    // succeeded or not.
    for (list, size) in client.page_sizes() {
        if let Err(error) = store.remember_page_size(list, size, &now_utc()) {
            warn!(run_id, list, size, %error, "could not remember the page size the API accepted");
        }
    }
    for (list, form) in client.take_filter_forms() {
        if let Err(error) = store.remember_filter_form(list, form.as_str(), &now_utc()) {
            warn!(run_id, list, form = form.as_str(), %error, "could not remember the id filter form the API honours");
        }
    }
    let mut report = RunReport {
        run_id,
        committed: false,
        events: BTreeMap::new(),
        requests: stats.requests,
        quota_remaining: stats.quota.and_then(|q| q.remaining),
        duration: started.elapsed(),
        error: None,
    };
    let unwritable = matches!(result, Err(SyncError::Store(_)));
    match result {
        Ok(events) => {
            report.committed = true;
            report.events = events;
            let checkpoint = Instant::now();
            let complete = store.checkpoint();
            tracing::debug!(
                run_id,
                checkpoint_ms = checkpoint.elapsed().as_millis() as u64,
                "WAL checkpoint"
            );
            if let Ok(false) = complete {
                warn!(run_id, "WAL checkpoint incomplete: a reader holds an old snapshot open; the -wal file keeps its size until it lets go");
            }
        }
        Err(e) => {
            let failure = RunFailure {
                error: e.to_string(),
                reason: e.reason(),
                hint: e.hint(),
                exit_status: ending.exit_status.map(|of| of(&e)),
            };
            if let Err(e) = store.fail_run(run_id, &failure, &now_utc(), &totals) {
                store.release_writer();
                return Err(e);
            }
            report.error = Some(e);
        }
    }
    let events: BTreeMap<String, usize> = report
        .events
        .iter()
        .map(|((e, op), n)| (format!("{}.{op}", e.as_str()), *n))
        .collect();
    // How the run stands among the full runs before it: the first failure after a success
    // is an error, the same failure again a warning with its count, a success after
    // failures says how long the outage lasted.
    let streak = if ending.full {
        store
            .run_streak(run_id)
            .inspect_err(|error| warn!(run_id, %error, "cannot read the runs before this one"))
            .ok()
    } else {
        None
    };
    let failed_before = streak.as_ref().map_or(0, |s| s.failed_before);
    let repeated = match (&streak, &report.error) {
        (Some(s), Some(e)) if s.failed_before > 0 => s
            .previous_error
            .as_deref()
            .is_some_and(|previous| same_error(previous, &e.to_string())),
        _ => false,
    };
    let in_a_row = (!report.committed).then_some(failed_before + 1);
    let hint = report.error.as_ref().map(SyncError::hint);
    let outage_s = streak
        .as_ref()
        .filter(|_| report.committed && failed_before > 0)
        .and_then(|s| s.first_failed_at.as_deref())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .num_seconds()
                .max(0)
        });
    // A run that failed or was refused is an error the first time after a success, with what
    // to do (unless the caller prints the error, whose message says it), then a warning while
    // it fails the same way; one that could not write the mirror at all (the database refused
    // it) is always an error.
    let (status, level) = if report.committed {
        ("succeeded", tracing::Level::INFO)
    } else if unwritable || (ending.full && !repeated) {
        (
            if report.refused() {
                "refused"
            } else {
                "failed"
            },
            tracing::Level::ERROR,
        )
    } else if report.refused() {
        ("refused", tracing::Level::WARN)
    } else {
        ("failed", tracing::Level::WARN)
    };
    let message = match (in_a_row, repeated) {
        (Some(n), true) => format!("{} failed run in a row: same error", ordinal(n)),
        (Some(n), false) if n > 1 => {
            format!("{} failed run in a row: a different error", ordinal(n))
        }
        (Some(_), false) => "sync failed".to_string(),
        (None, _) if outage_s.is_some() => format!(
            "sync finished: recovered after {failed_before} failed run{}, an outage of {}",
            if failed_before == 1 { "" } else { "s" },
            crate::clock::span(outage_s.unwrap_or(0))
        ),
        (None, _) => "sync finished".to_string(),
    };
    macro_rules! finished {
        ($level:expr) => {
            tracing::event!(
                $level,
                run_id,
                status,
                duration_ms = report.duration.as_millis() as u64,
                requests = report.requests,
                quota_remaining = report.quota_remaining,
                events_written = report.events_written(),
                events = ?events,
                consecutive_failures = in_a_row,
                recovered_after_failures = (outage_s.is_some()).then_some(failed_before),
                outage_seconds = outage_s,
                error = report
                    .error
                    .as_ref()
                    .filter(|_| !ending.printed)
                    .map(tracing::field::display),
                hint = hint.as_deref().filter(|_| !repeated && !ending.printed),
                "{message}"
            )
        };
    }
    match level {
        tracing::Level::INFO => finished!(tracing::Level::INFO),
        tracing::Level::ERROR => finished!(tracing::Level::ERROR),
        _ => finished!(tracing::Level::WARN),
    }
    store.release_writer();
    Ok(report)
}

/// `1st`, `2nd`, `3rd`, `4th`, …, `11th`, `21st`.
fn ordinal(n: i64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
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
    let totals = RunTotals {
        quarantined: quarantined_json(client),
        pending_absences: Some(pending),
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
            "the users list sent no custom_field_values for workspace {workspace}; its custom fields are not mirrored this run (the API key's user may not see them) and what the mirror holds of them stays"
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

/// Users and groups the mirror holds that the pull did not list may have been skipped
/// by rows shifting between pages. Ask for them by id; only those still missing are gone.
/// When the API honours no id filter, one is gone only if the previous complete pull missed
/// it too (`pending`, from the database); one missed for the first time is kept as stored.
/// Returns the absences that stay pending, for the run to record.
async fn confirm_absences(
    client: &Client,
    config: &Config,
    stored: &StoredState,
    pending: &BTreeSet<EntityKey>,
    snapshot: &mut OrgSnapshot,
) -> Result<Vec<EntityKey>, SyncError> {
    let mut missing_users = BTreeSet::new();
    let mut missing_groups = BTreeSet::new();
    for key in stored.keys() {
        match key.entity {
            Entity::User if !snapshot.has(key) => {
                missing_users.insert(key.id);
            }
            Entity::Group if !snapshot.has(key) => {
                missing_groups.insert(key.id);
            }
            _ => {}
        }
    }
    let mut still_pending = Vec::new();
    if !missing_groups.is_empty() {
        let ids: Vec<i64> = missing_groups.into_iter().collect();
        match client.teams_by_ids(&ids).await? {
            ByIds::Found(found) => {
                apply_quarantine(client, snapshot);
                still_there(Entity::Group, ids.len(), found.len());
                for (team, unknown) in found {
                    if team.id.is_some_and(|id| ids.contains(&id)) {
                        snapshot.add_team(team, unknown)?;
                    }
                }
            }
            ByIds::Unfiltered => {
                let (_, kept) = settle_unconfirmed(Entity::Group, &ids, pending, snapshot);
                still_pending.extend(kept);
            }
        }
    }
    if !missing_users.is_empty() {
        let ids: Vec<i64> = missing_users.into_iter().collect();
        let (rates, hours) = (config.sync.include_rates, config.sync.include_working_hours);
        let gone = match client.users_by_ids(&ids, rates, hours).await? {
            ByIds::Found(found) => {
                apply_quarantine(client, snapshot);
                still_there(Entity::User, ids.len(), found.len());
                let mut gone: BTreeSet<i64> = ids.iter().copied().collect();
                for (user, unknown) in found {
                    if let Some(id) = user.id.filter(|id| ids.contains(id)) {
                        gone.remove(&id);
                        snapshot.add_user(user, unknown)?;
                    }
                }
                gone
            }
            ByIds::Unfiltered => {
                let (gone, kept) = settle_unconfirmed(Entity::User, &ids, pending, snapshot);
                still_pending.extend(kept);
                gone
            }
        };
        // The teams were read before the users: a member who left in between is still
        // listed there. Gone from the organization is gone from its groups, in this run.
        snapshot.remove_memberships_of_users(&gone);
    }
    Ok(still_pending)
}

/// Logs that `found` of the `asked` users or groups missing from the pull were still there
/// when asked for by id.
fn still_there(entity: Entity, asked: usize, found: usize) {
    if found > 0 {
        info!(
            entity = entity.as_str(),
            asked, found, "missing from the pull, and still there when asked for by id"
        );
    }
}

/// Without an id filter: of the `ids` a complete pull missed, those the previous complete
/// pull missed too are gone (left out of `snapshot`); the others are kept as stored and
/// stay pending. Returns (gone, pending).
fn settle_unconfirmed(
    entity: Entity,
    ids: &[i64],
    pending: &BTreeSet<EntityKey>,
    snapshot: &mut OrgSnapshot,
) -> (BTreeSet<i64>, Vec<EntityKey>) {
    let mut gone = BTreeSet::new();
    let mut kept = Vec::new();
    for &id in ids {
        let key = EntityKey::new(entity, id);
        if pending.contains(&key) {
            gone.insert(id);
        } else {
            snapshot.keep_stored(key);
            kept.push(key);
        }
    }
    info!(
        entity = entity.as_str(),
        gone = gone.len(),
        pending = kept.len(),
        "missing from the pull, and the API honours no id filter: gone if the previous complete pull missed them too, else confirmed by the next"
    );
    (gone, kept)
}

/// A member the pull listed in a team but not among the users (added upstream between the
/// two pulls, or a team that lists an id no user has) is asked for by id: a user who
/// exists is mirrored with the membership, and for one who does not the membership is
/// not mirrored (a member is a user: `group_members` declares the key). Returns the users
/// found, for a targeted refresh to take into its scope.
async fn confirm_members(
    client: &Client,
    config: &Config,
    stored: &StoredState,
    snapshot: &mut OrgSnapshot,
    targeted: bool,
) -> Result<BTreeSet<i64>, SyncError> {
    // A full pull saw every user (the mirror's, confirmed by id); a targeted refresh only
    // those it read, and the mirror's others still are users.
    let is_user = |snapshot: &OrgSnapshot, id: i64| {
        let key = crate::model::EntityKey::new(Entity::User, id);
        snapshot.has(&key) || (targeted && stored.get(&key).is_some())
    };
    let members = snapshot.memberships.keys().copied().chain(
        snapshot
            .unchanged()
            .filter(|k| k.entity == Entity::GroupMembership)
            .map(|k| (k.id, k.sub_id)),
    );
    let mut orphans: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for (group, user) in members {
        if !is_user(snapshot, user) {
            orphans.entry(user).or_default().insert(group);
        }
    }
    if orphans.is_empty() {
        return Ok(BTreeSet::new());
    }
    let ids: Vec<i64> = orphans.keys().copied().collect();
    let (rates, hours) = (config.sync.include_rates, config.sync.include_working_hours);
    let mut found = BTreeSet::new();
    let asked = match client.users_by_ids(&ids, rates, hours).await? {
        ByIds::Found(asked) => asked,
        ByIds::Unfiltered => {
            // Not to be read by id: the memberships wait for a pull that lists the users.
            warn!(
                users = ?ids,
                "a group lists members who are not users of the mirror, and the API honours no id filter to ask for them; the memberships are mirrored once a complete pull lists them"
            );
            snapshot.remove_memberships_of_users(&orphans.keys().copied().collect());
            return Ok(BTreeSet::new());
        }
    };
    apply_quarantine(client, snapshot);
    for (user, unknown) in asked {
        if let Some(id) = user.id.filter(|id| orphans.contains_key(id)) {
            snapshot.add_user(user, unknown)?;
            if is_user(snapshot, id) {
                found.insert(id);
            }
        }
    }
    if !found.is_empty() {
        info!(
            users = ?found,
            "members missing from the users pull were asked for by id and are mirrored"
        );
    }
    let gone: BTreeSet<i64> = ids.into_iter().filter(|id| !found.contains(id)).collect();
    for id in &gone {
        warn!(
            organization_user_id = id,
            groups = ?orphans[id],
            "a group lists a member who is not a user of the organization (asked for by id: not found); the membership is not mirrored"
        );
    }
    snapshot.remove_memberships_of_users(&gone);
    Ok(found)
}

/// Refuses a run that would remove more than `max_fraction` of the users or of the
/// groups, or every one of them.
pub fn guard_deletions(
    stored: &StoredState,
    pulled: &OrgSnapshot,
    max_fraction: f64,
) -> Result<(), SyncError> {
    for (entity, plural) in [(Entity::User, "users"), (Entity::Group, "groups")] {
        let held = stored.keys().filter(|k| k.entity == entity).count();
        if held == 0 {
            continue;
        }
        let kept = stored
            .keys()
            .filter(|k| k.entity == entity)
            .filter(|k| pulled.has(k))
            .count();
        let removed = held - kept;
        let fraction = removed as f64 / held as f64;
        if removed > 0 && (fraction > max_fraction || removed == held) {
            return Err(SyncError::Refused(format!(
                "this run would delete {removed} of {held} {plural} ({:.0}%), more than sync.max_delete_fraction = {max_fraction} allows{}; \
                 nothing was changed. If the organization really lost them, run `orgmirror sync --allow-mass-delete`",
                fraction * 100.0,
                if removed == held { " (all of them)" } else { "" }
            )));
        }
    }
    Ok(())
}

/// A progress line per entity on stderr, only on a terminal.
struct ProgressLine {
    enabled: bool,
    current: Option<&'static str>,
}

impl ProgressLine {
    fn new(wanted: bool) -> ProgressLine {
        ProgressLine {
            enabled: wanted && std::io::stderr().is_terminal(),
            current: None,
        }
    }

    fn report(&mut self, p: &PageProgress) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.current.is_some_and(|c| c != p.entity) {
            let _ = writeln!(err);
        }
        self.current = Some(p.entity);
        let left = p
            .quota_remaining
            .map(|q| format!(", {q} requests left this hour"))
            .unwrap_or_default();
        let paced = if p.pacing_wait.is_zero() {
            String::new()
        } else {
            format!(", {:.0}s waiting for pacing", p.pacing_wait.as_secs_f64())
        };
        let _ = write!(
            err,
            "\r{:<6} page {:>4}, {:>7} rows, {} requests{left}{paced}\x1b[K",
            p.entity, p.page, p.rows, p.requests
        );
        let _ = err.flush();
    }

    fn done(&mut self) {
        if self.enabled && self.current.take().is_some() {
            let _ = writeln!(std::io::stderr());
        }
    }
}

//! A run's end, committed or not: what it records beside its commit and how the journal
//! tells it (the first failure after a success loudly, the same failure again as a
//! warning with its count, a recovery with the outage's length).

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::warn;

use crate::api::Client;
use crate::clock::now_utc;
use crate::model::Entity;
use crate::store::{RunFailure, Store, StoreError};

use super::{same_error, totals_of, ExitStatusOf, RunReport, SyncError, SyncOptions};

/// How [`record_end`] records and tells a run's end.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ending {
    /// The caller prints the report, error included.
    pub printed: bool,
    pub exit_status: Option<ExitStatusOf>,
    /// A full run: the journal tells how it stands among the runs before it.
    pub full: bool,
}

impl Ending {
    /// A full run's, as `options` ask.
    pub(super) fn full(options: &SyncOptions) -> Ending {
        Ending {
            printed: options.prints_report,
            exit_status: options.exit_status,
            full: true,
        }
    }
}

/// Records a run's end in its `sync_runs` row (a failure with its reason, hint and exit
/// status; a success is already recorded by its commit, which is then checkpointed), with
/// what the API taught about page sizes and id filters, logs how it went among the runs
/// before it, and lets go of the writer lock.
pub(super) fn record_end(
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
            match store.vacuum_old_free_space() {
                Ok(true) => tracing::info!(
                    run_id,
                    "vacuumed: the free space predated secure_delete, and retention erases"
                ),
                Ok(false) => {}
                Err(error) => {
                    warn!(run_id, %error, "could not vacuum the free space an older orgmirror left; the next run tries again")
                }
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

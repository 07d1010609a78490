//! A full run's part of the audit log: the events since the log last reached (less an
//! overlap for late writes; the store keeps each event once), up to now, newest first, whole
//! (up to [`GAP_PAGES_MAX`] more pages); then, with what the quota leaves, a few pages of the
//! backlog (`sync.audit_log_backfill` on the
//! first run, or a window a run could not finish). The audit log never fails a run: a 403
//! (or a 404) is remembered and asked again a day later, with one warning; any other failure
//! leaves the window to the next run, which asks for the whole of it.

use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use crate::api::{ApiError, AuditPage, Client, AUDIT_PAGE_SIZE};
use crate::config::Config;
use crate::store::{AuditState, AuditWrite, Store, StoreError};

/// Asked again before the newest instant held: events written late are not lost (when
/// they are on the window's first page).
const OVERLAP: Duration = Duration::minutes(5);
/// A refused log is asked again after this.
const REFUSAL_RETRY: Duration = Duration::days(1);
/// The most pages of the backlog a run fetches, when the quota leaves them.
pub(crate) const SPARE_PAGES_MAX: u32 = 5;
/// The most pages beyond the first a run spends on the window since the last pull (more
/// than a page only after an outage); what is left joins the backlog.
const GAP_PAGES_MAX: u32 = 20;

/// The audit log's part of the run, to write in its transaction; None when the log is off
/// or refused less than a day ago (no request).
pub(super) async fn pull_audit(
    client: &Client,
    store: &Store,
    config: &Config,
    run_id: i64,
) -> Result<Option<AuditWrite>, StoreError> {
    if !config.sync.audit_log {
        return Ok(None);
    }
    let before = store.audit_state()?;
    let now = Utc::now();
    if before.refused_at.is_some_and(|at| now - at < REFUSAL_RETRY) {
        return Ok(None);
    }
    let previous_run = store
        .last_committed_full_run_at()?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    let mut state = before.clone();
    let mut write = AuditWrite::default();
    let from = match before.reached_to {
        Some(t) => t - OVERLAP,
        None => now - config.sync.audit_log_backfill.duration(),
    };
    // The new part is fetched whole (up to GAP_PAGES_MAX pages, after an outage); the
    // first pull's window reaches back `sync.audit_log_backfill`: past its first page, it
    // is backlog for the runs that follow.
    let mut gap = match before.reached_to {
        Some(_) => GAP_PAGES_MAX,
        None => 0,
    };
    // The new part, [from, now], newest first.
    let mut cursor = Cursor {
        from,
        to: now,
        page: 1,
    };
    let mut first = true;
    let remainder = loop {
        if !first && gap == 0 {
            break Some(cursor);
        }
        let answer = client.audit_page(cursor.from, cursor.to, cursor.page).await;
        match answer {
            Ok(page) => {
                if !first {
                    gap -= 1;
                    write.backlog_requests += 1;
                }
                first = false;
                // Late writes are looked for on the first page: a page that reaches back
                // past the last pull ends the window (the overlap is not read again page
                // by page when runs come close together in a busy organization).
                let next = cursor
                    .after(&page)
                    .filter(|_| !reaches_before(&page, before.reached_to));
                take(&mut write, page);
                match next {
                    Some(next) => cursor = next,
                    None => break None,
                }
            }
            Err(error) if first => {
                return Ok(Some(refused_or_failed(before, state, &error, run_id, now)));
            }
            Err(error) => {
                failed(&mut state, &error, run_id, now);
                break Some(cursor);
            }
        }
    };
    if before.refused_at.is_some() {
        info!(run_id, "the audit log is readable again");
    }
    state.refused_at = None;
    state.refusal = None;
    state.reached_to = Some(now);
    if state.reached_from.is_none() {
        state.reached_from = Some(from);
    }
    // What this run could not fetch joins the backlog (asked again whole: the store keeps
    // each event once).
    if let Some(rest) = remainder {
        state.backlog = Some(match state.backlog {
            Some((f, _)) => (f.min(rest.from), rest.to),
            None => (rest.from, rest.to),
        });
        state.backlog_page = rest.page;
    } else if let Some((f, t)) = state.backlog {
        let mut spare = spare_pages(client, config, store)?;
        let mut cursor = Cursor {
            from: f,
            to: t,
            page: state.backlog_page,
        };
        let mut left = Some(cursor);
        while spare > 0 {
            match client.audit_page(cursor.from, cursor.to, cursor.page).await {
                Ok(page) => {
                    spare -= 1;
                    write.backlog_requests += 1;
                    left = cursor.after(&page);
                    take(&mut write, page);
                    match left {
                        Some(next) => cursor = next,
                        None => break,
                    }
                }
                Err(error) => {
                    failed(&mut state, &error, run_id, now);
                    break;
                }
            }
        }
        state.backlog = left.map(|c| (c.from, c.to));
        state.backlog_page = left.map_or(1, |c| c.page);
    }
    write.window = previous_run.map(|at| (before.reached_to.unwrap_or(at), now));
    info!(
        run_id,
        events = write.events.len(),
        backlog_requests = write.backlog_requests,
        reaches_back_to = state.reaches_back_to().map(crate::clock::format_utc),
        "pulled the audit log"
    );
    write.state = state;
    Ok(Some(write))
}

/// Where the next page of a window is: newest first, each next request ends at the oldest
/// event of the last (asked again, whole second and all), so that events written meanwhile
/// shift nothing.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    page: u32,
}

impl Cursor {
    /// The next page after `page`, None when it was the last.
    fn after(self, page: &AuditPage) -> Option<Cursor> {
        if page.received < AUDIT_PAGE_SIZE {
            return None;
        }
        match page.events.iter().map(|e| e.created_at).min() {
            // A whole page in one second: the next page of the same window.
            Some(oldest) if oldest.timestamp() < self.to.timestamp() => Some(Cursor {
                to: oldest,
                page: 1,
                ..self
            }),
            _ => Some(Cursor {
                page: self.page + 1,
                ..self
            }),
        }
    }
}

/// Whether `page` holds an event older than `instant`.
fn reaches_before(page: &AuditPage, instant: Option<DateTime<Utc>>) -> bool {
    instant.is_some_and(|t| page.events.iter().any(|e| e.created_at < t))
}

fn take(write: &mut AuditWrite, page: AuditPage) {
    if page.unreadable > 0 {
        warn!(
            events = page.unreadable,
            "audit events without a readable created_at were passed over"
        );
    }
    write.events.extend(page.events);
    write.actors.extend(page.actors);
}

/// The first audit request of the run failed: a 403 (or 404) is remembered and asked again
/// a day later; anything else leaves the window to the next run.
fn refused_or_failed(
    before: AuditState,
    mut state: AuditState,
    error: &ApiError,
    run_id: i64,
    now: DateTime<Utc>,
) -> AuditWrite {
    let refusal = match error {
        ApiError::Auth { status: 403, .. } => Some(
            "the API key's user lacks the view_audit_log permission on the organization (HTTP 403)",
        ),
        ApiError::Status { status: 404, .. } => {
            Some("the API has no audit log for this organization (HTTP 404)")
        }
        _ => None,
    };
    match refusal {
        Some(refusal) => {
            if before.refused_at.is_none() {
                warn!(
                    run_id,
                    "{refusal}: runs go on without who made each change; asked again once a day (set sync.audit_log = false to stop asking)"
                );
            } else {
                info!(run_id, "the audit log is still refused: {refusal}");
            }
            state.refused_at = Some(now);
            state.refusal = Some(refusal.to_string());
        }
        None => failed(&mut state, error, run_id, now),
    }
    AuditWrite {
        state,
        ..AuditWrite::default()
    }
}

fn failed(state: &mut AuditState, error: &ApiError, run_id: i64, now: DateTime<Utc>) {
    warn!(run_id, %error, "the audit log request failed; the run goes on, and the next one asks for the whole window");
    state.failed_at = Some(now);
    state.failure = Some(error.to_string());
}

/// Pages the quota leaves this run beyond its first audit request: what remains less the
/// share left to other tools and one more sync, at most [`SPARE_PAGES_MAX`] (all of them
/// while the quota is not known).
fn spare_pages(client: &Client, config: &Config, store: &Store) -> Result<u32, StoreError> {
    let stats = client.stats();
    let Some(remaining) = stats.quota.and_then(|q| q.remaining) else {
        return Ok(SPARE_PAGES_MAX);
    };
    let hourly = match config.api.hourly_quota {
        Some(q) => i64::from(q),
        None => store
            .hourly_quota_seen()?
            .unwrap_or(remaining + i64::from(stats.requests)),
    };
    let share = (hourly as f64 * config.schedule.quota_share).ceil() as i64;
    let sync = store
        .last_full_run_requests()?
        .unwrap_or(i64::from(stats.requests));
    let spare = remaining - share - sync - 1;
    Ok(spare.clamp(0, i64::from(SPARE_PAGES_MAX)) as u32)
}

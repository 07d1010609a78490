//! The audit log in the mirror: how far it reaches ([`AuditState`]), and what a run writes
//! of it in its transaction ([`AuditWrite`]): the events (each once, by its de-duplication
//! key), the people they name, the state, and which event explains each change the run
//! (or an earlier run the log had not covered yet) wrote.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{Store, StoreError};
use crate::model::audit::{audit_time, AuditActor, AuditEvent};

/// How far the mirrored log reaches, and what it still has to fetch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditState {
    /// The oldest instant held (the backlog's start once it is fetched).
    pub reached_from: Option<DateTime<Utc>>,
    /// The newest instant held without a gap: the next pull starts here (less an overlap).
    pub reached_to: Option<DateTime<Utc>>,
    /// What is still to fetch, `[backlog_from, backlog_to]`, newest first.
    pub backlog: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The page of the backlog to ask next (more than 1 only when a whole page shares one
    /// instant).
    pub backlog_page: u32,
    /// The last 403 (or 404), and what it said: asked again a day later.
    pub refused_at: Option<DateTime<Utc>>,
    pub refusal: Option<String>,
    /// The last other failure of the audit request, and what it was.
    pub failed_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
}

/// What a run writes of the audit log, in its transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditWrite {
    pub events: Vec<AuditEvent>,
    pub actors: Vec<AuditActor>,
    pub state: AuditState,
    /// The window `(lo, hi]` the log now covers since it last did: changes written since
    /// `lo` are matched with the events in it. None: nothing to match (the mirror's first
    /// run, or no audit answer).
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Requests spent on the backlog (left out of the cost of a sync).
    pub backlog_requests: i64,
}

impl AuditState {
    /// How far back the log reaches without a gap down from its newest instant.
    pub fn reaches_back_to(&self) -> Option<DateTime<Utc>> {
        match self.backlog {
            Some((_, to)) => Some(to),
            None => self.reached_from,
        }
    }
}

fn moment(text: Option<String>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&text?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Store {
    /// The audit log's reach (the default state when the log was never pulled, or the
    /// mirror is not migrated yet).
    pub fn audit_state(&self) -> Result<AuditState, StoreError> {
        if !self.has_column("audit_state", "one")? {
            return Ok(AuditState::default());
        }
        let row = self.sql(
            self.conn
                .query_row(
                    "SELECT reached_from, reached_to, backlog_from, backlog_to, backlog_page,
                            refused_at, refusal, failed_at, failure
                     FROM audit_state WHERE one = 1",
                    [],
                    |r| {
                        Ok(AuditState {
                            reached_from: moment(r.get(0)?),
                            reached_to: moment(r.get(1)?),
                            backlog: moment(r.get(2)?).zip(moment(r.get(3)?)),
                            backlog_page: r.get::<_, i64>(4)?.clamp(1, i64::from(u32::MAX)) as u32,
                            refused_at: moment(r.get(5)?),
                            refusal: r.get(6)?,
                            failed_at: moment(r.get(7)?),
                            failure: r.get(8)?,
                        })
                    },
                )
                .optional(),
        )?;
        Ok(row.unwrap_or_default())
    }

    /// Audit events held (0 before the mirror is migrated).
    pub fn audit_event_count(&self) -> Result<i64, StoreError> {
        if !self.has_column("audit_events", "dedup_key")? {
            return Ok(0);
        }
        self.sql(
            self.conn
                .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0)),
        )
    }

    /// The time of the last committed full run, and whether there is one before it.
    pub fn last_committed_full_run_at(&self) -> Result<Option<String>, StoreError> {
        self.sql(
            self.conn
                .query_row(
                    "SELECT started_at FROM sync_runs WHERE kind = 'full' AND status = 'succeeded'
                     ORDER BY sync_run_id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional(),
        )
    }
}

fn write_state(conn: &Connection, s: &AuditState) -> rusqlite::Result<()> {
    let t = |v: Option<DateTime<Utc>>| v.map(audit_time);
    conn.execute(
        "INSERT INTO audit_state (one, reached_from, reached_to, backlog_from, backlog_to,
             backlog_page, refused_at, refusal, failed_at, failure)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (one) DO UPDATE SET reached_from = ?1, reached_to = ?2, backlog_from = ?3,
             backlog_to = ?4, backlog_page = ?5, refused_at = ?6, refusal = ?7, failed_at = ?8,
             failure = ?9",
        params![
            t(s.reached_from),
            t(s.reached_to),
            t(s.backlog.map(|b| b.0)),
            t(s.backlog.map(|b| b.1)),
            i64::from(s.backlog_page.max(1)),
            t(s.refused_at),
            s.refusal,
            t(s.failed_at),
            s.failure,
        ],
    )?;
    Ok(())
}

/// Writes `audit` in run `run_id`'s transaction, then matches the changes written since
/// the window's start with the events that explain them.
pub(super) fn write(conn: &Connection, run_id: i64, audit: &AuditWrite) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    let now = crate::clock::now_utc();
    let mut actor = conn.prepare_cached(
        "INSERT INTO audit_actors (user_id, name, email, user_account_id, seen_at, sync_run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (user_id) DO UPDATE SET name = ?2, email = ?3,
             user_account_id = coalesce(?4, user_account_id), seen_at = ?5, sync_run_id = ?6",
    )?;
    // A person erased whole and not a member again stays tombstoned, whatever the log says
    // of them now; their texts are replaced in the events stored below too.
    let erased = super::erase::erased_accounts(conn)?;
    let mut scrub: Vec<(String, String)> = Vec::new();
    for a in &audit.actors {
        let account = match a.user_account_id {
            Some(id) => Some(id),
            None => conn
                .query_row(
                    "SELECT user_account_id FROM audit_actors WHERE user_id = ?1",
                    [a.user_id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten(),
        };
        if let Some(&user) = account.and_then(|id| erased.get(&id)) {
            let tomb = super::erase::erased_name(user);
            for text in [&a.name, &a.email].into_iter().flatten() {
                if text.trim().len() >= 3 && *text != tomb {
                    scrub.push((text.clone(), tomb.clone()));
                }
            }
            actor.execute(params![
                a.user_id,
                tomb,
                None::<String>,
                a.user_account_id,
                now,
                run_id
            ])?;
            continue;
        }
        actor.execute(params![
            a.user_id,
            a.name,
            a.email,
            a.user_account_id,
            now,
            run_id
        ])?;
    }
    let window = audit
        .window
        .map(|(lo, hi)| (audit_time(lo), audit_time(hi)));
    let mut insert = conn.prepare_cached(
        "INSERT INTO audit_events (created_at, entity_type, entity_id, action, actor_user_id,
             workspace_id, old_value, new_value, meta_data, raw_json, dedup_key, sync_run_id,
             subject_entity, subject_id, window_run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (created_at, dedup_key) DO NOTHING",
    )?;
    // Oldest first: a run's events then fill the pages of the index by time (the unique
    // index) in order; a page stored newest first left them about half full.
    let mut events: Vec<&AuditEvent> = audit.events.iter().collect();
    events.sort_by_key(|e| e.created_at);
    let mut stored = 0;
    for e in events {
        let at = audit_time(e.created_at);
        let subject = e.subject();
        let in_window = window
            .as_ref()
            .is_some_and(|(lo, hi)| at.as_str() > lo.as_str() && at.as_str() <= hi.as_str());
        stored += insert.execute(params![
            at,
            e.entity_type,
            e.entity_id,
            e.action,
            e.user_id,
            e.workspace_id,
            scrubbed(&scrub, e.old_value.as_deref()),
            scrubbed(&scrub, e.new_value.as_deref()),
            scrubbed(&scrub, e.meta_data.as_deref()),
            scrubbed(&scrub, Some(&e.raw_json)),
            // The key of the event as received: one held already (tombstoned) stays as it is.
            e.dedup_key,
            run_id,
            subject.as_ref().map(|s| s.0.as_str()),
            subject.as_ref().map(|s| s.1.as_str()),
            in_window.then_some(run_id),
        ])?;
    }
    write_state(conn, &audit.state)?;
    conn.execute(
        "UPDATE sync_runs SET audit_backlog_requests = ?2 WHERE sync_run_id = ?1",
        params![run_id, audit.backlog_requests],
    )?;
    let matched = match &window {
        Some((lo, hi)) => match_changes(conn, run_id, lo, hi)?,
        None => 0,
    };
    // What `orgmirror-bench --audit` reads: storing and matching, against the run's own time.
    tracing::debug!(
        run_id,
        events = audit.events.len(),
        stored,
        matched,
        duration_ms = started.elapsed().as_secs_f64() * 1e3,
        "stored the audit log"
    );
    Ok(())
}

/// `text` with each erased person's name or e-mail in `scrub` replaced by their tombstone.
fn scrubbed<'a>(scrub: &[(String, String)], text: Option<&'a str>) -> Option<Cow<'a, str>> {
    text.map(|t| {
        scrub.iter().fold(Cow::Borrowed(t), |t, (from, to)| {
            Cow::Owned(t.replace(from.as_str(), to))
        })
    })
}

/// Gives each change written since `lo` that no event explains yet the event that does:
/// the same entity, inside `(lo, hi]`, not before the wall clock's start of the previous
/// full run that committed before the change's run (a run's `started_at` may be clamped
/// past it), not after its run ended (whole seconds, rounded up; the run being committed:
/// `hi`); of those, the latest. A change of bookkeeping alone (`updated_at`) takes none: it
/// would take the event of the change that caused it. Returns how many changes it matched.
fn match_changes(conn: &Connection, run_id: i64, lo: &str, hi: &str) -> rusqlite::Result<usize> {
    let lo_seconds = &lo[..19];
    let mut changes = conn.prepare(
        "SELECT c.event_id, c.entity, c.entity_id,
                (SELECT coalesce(p.wall_clock_at, p.started_at) FROM sync_runs p
                 WHERE p.kind = 'full' AND p.status = 'succeeded'
                   AND p.sync_run_id < c.sync_run_id
                 ORDER BY p.sync_run_id DESC LIMIT 1) AS previous_run_at,
                strftime('%Y-%m-%dT%H:%M:%SZ', r.finished_at, '+1 second')
         FROM change_log c JOIN sync_runs r ON r.sync_run_id = c.sync_run_id
         WHERE c.observed_at >= ?1 AND c.attribution IS NULL
           AND coalesce(c.changed_fields, '') <> '[\"updated_at\"]'
         ORDER BY c.event_id",
    )?;
    let rows: Vec<Unmatched> = changes
        .query_map([lo_seconds], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut best = conn.prepare_cached(
        "SELECT audit_event_id, actor_user_id, created_at FROM audit_events a
         WHERE subject_entity = ?1 AND subject_id = ?2 AND created_at > ?3 AND created_at <= ?4
           AND NOT EXISTS (SELECT 1 FROM change_log c WHERE c.audit_event_id = a.audit_event_id)
         ORDER BY created_at DESC LIMIT 1",
    )?;
    let mut any = conn.prepare_cached(
        "SELECT audit_event_id, actor_user_id, created_at FROM audit_events
         WHERE subject_entity = ?1 AND subject_id = ?2 AND created_at > ?3 AND created_at <= ?4
         ORDER BY created_at DESC LIMIT 1",
    )?;
    let mut set = conn.prepare_cached(
        "UPDATE change_log SET actor_user_id = ?2, changed_at = ?3, attribution = 'audit',
             audit_event_id = ?4, attributed_by = ?5
         WHERE event_id = ?1",
    )?;
    let mut matched = 0;
    for (event_id, entity, entity_id, previous_run_at, finished_at) in rows {
        // The first run's inserts are what was there, not changes.
        let Some(previous) = previous_run_at else {
            continue;
        };
        let from = std::cmp::max(lo.to_string(), seconds_to_audit(&previous));
        let to = match finished_at {
            Some(f) => std::cmp::min(hi.to_string(), seconds_to_audit(&f)),
            None => hi.to_string(),
        };
        let mut found: Option<(i64, Option<i64>, String)> = best
            .query_row(params![entity, entity_id, from, to], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        // A membership, rate or value without an event of its own goes with its member's
        // (or group's) event: removing a member ends their rate and memberships.
        for (owner, id) in owners(&entity, &entity_id) {
            if found.is_some() {
                break;
            }
            found = any
                .query_row(params![owner, id, from, to], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
        }
        if let Some((audit_event_id, actor, at)) = found {
            matched += set.execute(params![event_id, actor, at, audit_event_id, run_id])?;
        }
    }
    Ok(matched)
}

/// The entities whose events explain a change of `(entity, entity_id)` that has none of
/// its own: a membership's member and group, a rate's or a value's member.
fn owners(entity: &str, entity_id: &str) -> Vec<(&'static str, String)> {
    let part = |i: usize| entity_id.split(':').nth(i).unwrap_or_default().to_string();
    match entity {
        "group_membership" => vec![("user", part(1)), ("group", part(0))],
        "user_rate" => vec![("user", entity_id.to_string())],
        "user_custom_field" => vec![("user", part(0))],
        _ => Vec::new(),
    }
}

/// A change without its event yet: its id, entity, entity id, the previous full run's
/// time and its own run's end.
type Unmatched = (i64, String, String, Option<String>, Option<String>);

/// A run's whole-second time (`…:00Z`) in the audit log's form (`…:00.000000Z`).
fn seconds_to_audit(t: &str) -> String {
    match DateTime::parse_from_rfc3339(t) {
        Ok(t) => audit_time(t.with_timezone(&Utc)),
        Err(_) => t.to_string(),
    }
}

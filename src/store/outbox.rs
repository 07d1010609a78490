//! The alert outbox (`alert_outbox`, migrations 17 and 25): the events `[[alert]]` rules
//! match are queued here inside the run's own transaction ([`queue_run`], called by
//! `write::commit` for full and targeted runs alike), so a committed change always has its
//! alerts; the health alerts the mirror's state calls for are queued by the health check
//! (`store::health`). The deliverer (`crate::alerts`) sends them after the commit and
//! records each outcome. A row with `delivered_at` set is never selected for sending again.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::{sqlite_error, Store, StoreError};

/// What the store needs of the alert rules to queue a run's events, and the health alerts
/// the mirror's state calls for (`Store::queue_health_alerts`).
pub trait OutboxRules: Send + Sync {
    /// The entities any rule watches (events of other entities are not read).
    fn entities(&self) -> Vec<&'static str>;
    /// The names of the rules `event` matches.
    fn matching(&self, event: &EventRow) -> Vec<String>;
    /// The body sent to `rule`'s target for `event` (the names are filled in).
    fn payload(&self, rule: &str, event: &EventRow) -> String;
    /// Whether any rule watches the mirror's health.
    fn watches_health(&self) -> bool;
    /// The health alerts `state` calls for, with their bodies (those already queued are
    /// in `state.queued`; one queued again is ignored).
    fn health_due(&self, state: &super::HealthState) -> Vec<super::HealthAlert>;
}

/// One change event as the rules see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventRow {
    pub event_id: i64,
    pub sync_run_id: i64,
    pub observed_at: String,
    pub entity: String,
    pub entity_id: String,
    pub op: String,
    /// Upstream field names (empty for an insert or a delete).
    pub changed_fields: Vec<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// (organization_user_id, name) of the people the event is about.
    pub people: Vec<(i64, Option<String>)>,
    /// (group_id, name) of the groups the event is about.
    pub groups: Vec<(i64, Option<String>)>,
    /// Who made the change, by the audit log.
    pub actor: Option<Actor>,
    /// When it happened, by the audit log.
    pub changed_at: Option<String>,
}

/// The person the audit log says made a change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actor {
    /// In the audit log's ids.
    pub user_id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// A queued alert not delivered yet.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub outbox_id: i64,
    pub rule: String,
    /// The change event it is about; `None` for a health alert.
    pub event_id: Option<i64>,
    /// What every attempt sends as `Idempotency-Key`: the event id, or for a health alert
    /// `health-<kind>-after-run-<run>` (the same for a rule's alert however often queued).
    pub key: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub payload_json: String,
}

/// Where one rule's deliveries stand.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleBacklog {
    pub rule: String,
    /// Queued and not accepted yet.
    pub pending: i64,
    pub delivered: i64,
    /// Attempts that failed, over the rule's whole life.
    pub failures: i64,
    /// The newest failed attempt's error (it may have been delivered since: see `pending`).
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// When the oldest pending alert was queued.
    pub oldest_pending_at: Option<String>,
}

/// The delivery lock: one process delivers alerts at a time (an open-file-description
/// lock on byte 2 of `<db>.lock`, apart from the writer's flock and the daemon's byte 1).
/// Released when dropped, or when the process dies.
pub struct DeliveryLock {
    _file: std::fs::File,
}

const EVENT_COLUMNS: &str = "e.event_id, e.sync_run_id, e.observed_at, e.entity, e.entity_id, e.op, e.changed_fields, e.before_json, e.after_json, e.actor_user_id, p.name, p.email, e.changed_at";
/// The events with their actors.
const EVENTS: &str = "change_events e LEFT JOIN audit_actors p ON p.user_id = e.actor_user_id";

/// Queues the events of run `run_id` that `rules` match, inside the caller's transaction.
pub(super) fn queue_run(
    conn: &Connection,
    run_id: i64,
    rules: &dyn OutboxRules,
    queued_at: &str,
) -> rusqlite::Result<usize> {
    let entities = rules.entities();
    if entities.is_empty() {
        return Ok(0);
    }
    let list = entities
        .iter()
        .map(|e| format!("'{e}'"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM {EVENTS} WHERE e.sync_run_id = ?1 AND e.entity IN ({list}) ORDER BY e.event_id"
    );
    let events = read_events(conn, &sql, params![run_id])?;
    let mut queued = 0;
    for mut event in events {
        let names = rules.matching(&event);
        if names.is_empty() {
            continue;
        }
        add_names(conn, &mut event)?;
        for rule in names {
            queued += insert(conn, &rule, &event, rules, queued_at)?;
        }
    }
    Ok(queued)
}

fn insert(
    conn: &Connection,
    rule: &str,
    event: &EventRow,
    rules: &dyn OutboxRules,
    queued_at: &str,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO alert_outbox (rule, event_id, queued_at, payload_json) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        rule,
        event.event_id,
        queued_at,
        rules.payload(rule, event)
    ])
}

fn read_events(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<EventRow>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(args, |r| {
        let json = |i: usize| -> rusqlite::Result<Option<Value>> {
            Ok(r.get::<_, Option<String>>(i)?
                .and_then(|t| serde_json::from_str(&t).ok()))
        };
        Ok(EventRow {
            event_id: r.get(0)?,
            sync_run_id: r.get(1)?,
            observed_at: r.get(2)?,
            entity: r.get(3)?,
            entity_id: r.get(4)?,
            op: r.get(5)?,
            changed_fields: r
                .get::<_, Option<String>>(6)?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
            before: json(7)?,
            after: json(8)?,
            people: Vec::new(),
            groups: Vec::new(),
            actor: r.get::<_, Option<i64>>(9)?.map(|user_id| Actor {
                user_id,
                name: None,
                email: None,
            }),
            changed_at: r.get(12)?,
        })
        .map(|mut event: EventRow| {
            if let Some(actor) = &mut event.actor {
                actor.name = r.get(10).ok().flatten();
                actor.email = r.get(11).ok().flatten();
            }
            event
        })
    })?;
    rows.collect()
}

/// The names of the people and groups `event` is about, from their newest version
/// (a person who left keeps the name they had).
fn add_names(conn: &Connection, event: &mut EventRow) -> rusqlite::Result<()> {
    let id = |s: &str| s.parse::<i64>().ok();
    let (user, group) = match event.entity.as_str() {
        "user" | "user_rate" => (id(&event.entity_id), None),
        "group" => (None, id(&event.entity_id)),
        "group_membership" => match event.entity_id.split_once(':') {
            Some((g, u)) => (id(u), id(g)),
            None => (None, None),
        },
        "user_custom_field" => (
            event.entity_id.split_once(':').and_then(|(u, _)| id(u)),
            None,
        ),
        _ => (None, None),
    };
    let name_of = |entity: &str, id: i64| -> rusqlite::Result<Option<String>> {
        conn.prepare_cached(
            "SELECT json_extract(data_json, '$.name') FROM entity_history
             WHERE entity = ?1 AND id = ?2 ORDER BY history_id DESC LIMIT 1",
        )?
        .query_row(params![entity, id], |r| r.get::<_, Option<String>>(0))
        .optional()
        .map(Option::flatten)
    };
    if let Some(u) = user {
        event.people = vec![(u, name_of("user", u)?)];
    }
    if let Some(g) = group {
        event.groups = vec![(g, name_of("group", g)?)];
    }
    Ok(())
}

impl Store {
    /// Queues every event observed at or after `since` that `rule` matches and that is not
    /// queued for it yet (`alerts replay`). Returns (queued now, matched in all).
    pub fn replay_alerts(
        &mut self,
        rule: &str,
        since: &str,
        rules: &dyn OutboxRules,
        queued_at: &str,
    ) -> Result<(usize, usize), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite_error(&path))?;
        let result = (|| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM {EVENTS} WHERE e.observed_at >= ?1 ORDER BY e.event_id"
            );
            let mut queued = 0;
            let mut matched = 0;
            for mut event in read_events(&tx, &sql, params![since])? {
                if !rules.matching(&event).iter().any(|r| r == rule) {
                    continue;
                }
                matched += 1;
                add_names(&tx, &mut event)?;
                queued += insert(&tx, rule, &event, rules, queued_at)?;
            }
            Ok((queued, matched))
        })();
        result
            .and_then(|r| tx.commit().map(|()| r))
            .map_err(sqlite_error(&path))
    }

    /// Alerts not delivered yet, oldest event first per rule (a health rule's in the order
    /// queued), at most `per_rule` of each.
    pub fn pending_alerts(&self, per_rule: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT outbox_id, rule, event_id,
                    coalesce(CAST(event_id AS TEXT),
                             'health-' || health_kind || '-after-run-' || health_after_run),
                    attempts, next_attempt_ms, payload_json FROM (
                 SELECT *, row_number() OVER (PARTITION BY rule ORDER BY event_id, outbox_id) AS n
                 FROM alert_outbox WHERE delivered_at IS NULL)
             WHERE n <= ?1 ORDER BY rule, event_id, outbox_id",
        ))?;
        let rows = self.sql(stmt.query_map([per_rule as i64], |r| {
            Ok(OutboxRow {
                outbox_id: r.get(0)?,
                rule: r.get(1)?,
                event_id: r.get(2)?,
                key: r.get(3)?,
                attempts: r.get(4)?,
                next_attempt_ms: r.get(5)?,
                payload_json: r.get(6)?,
            })
        }))?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// Records that the target accepted alert `outbox_id`: it is never sent again.
    pub fn alert_delivered(&self, outbox_id: i64, at: &str) -> Result<(), StoreError> {
        let r = self.conn.execute(
            "UPDATE alert_outbox SET delivered_at = ?2, last_attempt_at = ?2, attempts = attempts + 1
             WHERE outbox_id = ?1 AND delivered_at IS NULL",
            params![outbox_id, at],
        );
        self.sql(r).map(|_| ())
    }

    /// Records a failed attempt and when to try again.
    pub fn alert_failed(
        &self,
        outbox_id: i64,
        at: &str,
        error: &str,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        let r = self.conn.execute(
            "UPDATE alert_outbox SET last_attempt_at = ?2, last_error = ?3, last_error_at = ?2,
                 next_attempt_ms = ?4, attempts = attempts + 1
             WHERE outbox_id = ?1 AND delivered_at IS NULL",
            params![outbox_id, at, error, next_attempt_ms],
        );
        self.sql(r).map(|_| ())
    }

    /// Where each rule's deliveries stand, by rule name.
    pub fn alert_backlog(&self) -> Result<Vec<RuleBacklog>, StoreError> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT o.rule,
                    sum(o.delivered_at IS NULL),
                    sum(o.delivered_at IS NOT NULL),
                    sum(o.attempts) - sum(o.delivered_at IS NOT NULL),
                    min(CASE WHEN o.delivered_at IS NULL THEN o.queued_at END),
                    (SELECT l.last_error || char(31) || l.last_error_at FROM alert_outbox l
                      WHERE l.rule = o.rule AND l.last_error_at IS NOT NULL
                      ORDER BY l.last_error_at DESC, l.outbox_id DESC LIMIT 1)
             FROM alert_outbox o GROUP BY o.rule ORDER BY o.rule",
        ))?;
        let rows = self.sql(stmt.query_map([], |r| {
            let last: Option<String> = r.get(5)?;
            let (last_error, last_error_at) =
                match last.as_deref().and_then(|l| l.split_once('\u{1f}')) {
                    Some((e, at)) => (Some(e.to_string()), Some(at.to_string())),
                    None => (None, None),
                };
            Ok(RuleBacklog {
                rule: r.get(0)?,
                pending: r.get(1)?,
                delivered: r.get(2)?,
                failures: r.get(3)?,
                oldest_pending_at: r.get(4)?,
                last_error,
                last_error_at,
            })
        }))?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// Takes the delivery lock unless another process holds it (then `None`).
    pub fn lock_delivery(&self) -> Result<Option<DeliveryLock>, StoreError> {
        let take =
            |file: &std::fs::File| crate::lockfile::lock_byte(file, super::DELIVERY_LOCK_BYTE);
        let lock = self.take_lock("the alert delivery lock", take)?;
        Ok(lock.map(|file| DeliveryLock { _file: file }))
    }
}

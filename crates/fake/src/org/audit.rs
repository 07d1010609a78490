//! The organization's audit log: an event for every change the fake makes (through its
//! write endpoints, the handle and the control surface), stamped with the wall clock and
//! the member who made it, after a generated history ([`crate::AuditBacklog`]).
//!
//! Toggl's published spec enumerates neither entity types nor actions; the fake names them
//! as an audit log of this organization plausibly does: `organization_user`, `group`,
//! `group_user` (a membership, its id the membership's `user_group_id`),
//! `workspace_user_rate`, `role`, `custom_field`, `custom_field_option`,
//! `custom_field_value`; the generated history adds `time_entry`, `project` and `client`,
//! which the mirror does not track. Actions are `create`, `update` and `delete`.
//! `old_value` and `new_value` hold the changed fields (`{}` for the side that does not
//! exist); `updated_at` is bookkeeping, never a changed field. `meta_data` (strings) names
//! the member and the group a membership, rate or value belongs to. An event's `user_id`,
//! the actor, is in an id space of its own (`user_account_id + AUDIT_USER_ID_OFFSET`):
//! only `user_summaries` joins it to a member. Times are the wall clock with
//! microseconds (the fake clock stamps records, not the log), strictly increasing.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use serde_json::{json, Map, Value};

use super::generate::SplitMix64;
#[cfg(feature = "control")]
use super::{FakeCustomValue, FakeRole};
use super::{FakeGroup, FakeOrg, FakeRate, FakeUser};
use crate::options::AuditBacklog;

mod backlog;

/// An actor's `user_id` in the audit log is their `user_account_id` plus this.
pub const AUDIT_USER_ID_OFFSET: i64 = 9_000_000;

/// One event of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeAuditEvent {
    pub created_at: DateTime<Utc>,
    pub entity_type: String,
    pub entity_id: i64,
    pub action: String,
    /// The actor, in the audit log's id space ([`AUDIT_USER_ID_OFFSET`]).
    pub user_id: i64,
    /// 0 for a change at the organization's level.
    pub workspace_id: i64,
    pub project_id: i64,
    pub old_value: Map<String, Value>,
    pub new_value: Map<String, Value>,
    pub meta_data: BTreeMap<String, String>,
}

/// Someone an event named, as the log last knew them: a member removed since keeps a
/// summary.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Person {
    pub(crate) organization_user_id: i64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) user_account_id: i64,
}

/// The log: what the fake recorded, oldest first, after the generated history.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditLog {
    recording: bool,
    events: Vec<FakeAuditEvent>,
    backlog: Option<Backlog>,
    /// Everyone an event named, by audit user id.
    people: BTreeMap<i64, Person>,
    /// The member making the changes (`None`: the owner).
    actor: Option<i64>,
}

/// The generated history: event `i` of `events` is a pure function of the seed and `i`,
/// at `start + span * (i + 1) / events`.
#[derive(Debug, Clone)]
struct Backlog {
    events: usize,
    start: DateTime<Utc>,
    span_us: i64,
    seed: u64,
    /// Audit ids of the members who made it.
    actors: Vec<i64>,
    /// Organization user ids it speaks about.
    users: Vec<i64>,
    groups: Vec<i64>,
    workspaces: Vec<i64>,
}

/// The fields of an `organization_user` event (what a member's record says, without the
/// bookkeeping).
fn user_fields(u: &FakeUser) -> Map<String, Value> {
    let value = json!({
        "name": u.name,
        "email": u.email,
        "active": u.active,
        "admin": u.admin,
        "owner": u.owner,
        "joined": u.joined,
        "invite_sent": u.invite_sent,
        "2fa_enabled": u.two_fa_enabled,
        "can_edit_personal_details": u.can_edit_personal_details,
        "account_locked_at": u.account_locked_at.map(stamp),
        "working_hours": u.working_hours,
        "tag_ids": u.tags.iter().map(|t| t.id).collect::<Vec<_>>(),
        "workspaces": u.workspaces.iter().map(|w| json!({
            "workspace_id": w.workspace_id,
            "focus_role_id": w.focus_role_id,
            "track_role_id": w.track_role_id,
            "work_role_id": w.work_role_id,
        })).collect::<Vec<_>>(),
    });
    object(value)
}

fn rate_fields(r: &FakeRate) -> Map<String, Value> {
    object(json!({
        "hourly_rate": r.hourly_rate,
        "currency": r.currency,
        "start_at": stamp(r.start_at),
    }))
}

fn group_fields(g: &FakeGroup) -> Map<String, Value> {
    object(json!({
        "name": g.name,
        "emoji": g.emoji,
        "workspace_ids": g.workspaces.iter().map(|w| w.workspace_id).collect::<Vec<_>>(),
    }))
}

#[cfg(feature = "control")]
fn role_fields(r: &FakeRole) -> Map<String, Value> {
    object(json!({
        "name": r.name,
        "code": r.code,
        "type": r.kind,
        "description": r.description,
        "privilege_level": r.privilege_level,
        "permission_ids": r.permissions.iter().map(|p| p.permission_id).collect::<Vec<_>>(),
    }))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The fields that differ: `(old, new)`, empty when nothing does.
fn changed(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut old = Map::new();
    let mut new = Map::new();
    for (k, v) in after {
        if before.get(k) != Some(v) {
            old.insert(k.clone(), before.get(k).cloned().unwrap_or(Value::Null));
            new.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in before {
        if !after.contains_key(k) {
            old.insert(k.clone(), v.clone());
            new.insert(k.clone(), Value::Null);
        }
    }
    (old, new)
}

fn meta(pairs: &[(&str, i64)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An event before the log stamps it with its time and actor.
pub(crate) struct Change<'a> {
    pub(crate) entity_type: &'a str,
    pub(crate) entity_id: i64,
    pub(crate) action: &'a str,
    pub(crate) workspace_id: i64,
    pub(crate) old_value: Map<String, Value>,
    pub(crate) new_value: Map<String, Value>,
    pub(crate) meta_data: BTreeMap<String, String>,
}

impl<'a> Change<'a> {
    fn new(entity_type: &'a str, entity_id: i64, action: &'a str) -> Change<'a> {
        Change {
            entity_type,
            entity_id,
            action,
            workspace_id: 0,
            old_value: Map::new(),
            new_value: Map::new(),
            meta_data: BTreeMap::new(),
        }
    }
}

pub(crate) fn audit_user_id(u: &FakeUser) -> i64 {
    u.user_account_id + AUDIT_USER_ID_OFFSET
}

impl FakeOrg {
    /// Starts recording (the generator's own changes are not events), after a generated
    /// history ending now.
    pub(crate) fn start_audit(&mut self, backlog: Option<AuditBacklog>, seed: u64) {
        self.audit.recording = true;
        let Some(b) = backlog.filter(|b| b.events > 0) else {
            return;
        };
        let owner = self.owner_audit_id();
        let mut actors: Vec<i64> = owner.into_iter().collect();
        actors.extend(
            self.users
                .iter()
                .filter(|u| u.admin && !u.owner)
                .take(7)
                .map(audit_user_id),
        );
        let step = (self.users.len() / 1000).max(1);
        let users: Vec<i64> = self.users.iter().step_by(step).map(|u| u.id).collect();
        for u in self.users.iter().step_by(step) {
            self.audit.people.insert(audit_user_id(u), person(u));
        }
        for u in self
            .users
            .iter()
            .filter(|u| actors.contains(&audit_user_id(u)))
        {
            self.audit.people.insert(audit_user_id(u), person(u));
        }
        let span = TimeDelta::days(i64::from(b.days));
        self.audit.backlog = Some(Backlog {
            events: b.events,
            start: Utc::now() - span,
            span_us: span.num_microseconds().unwrap_or(i64::MAX),
            seed,
            actors,
            users,
            groups: self.groups.keys().copied().collect(),
            workspaces: self.workspaces.iter().map(|w| w.id).collect(),
        });
    }

    fn owner_audit_id(&self) -> Option<i64> {
        self.users
            .iter()
            .find(|u| u.owner)
            .or(self.users.first())
            .map(audit_user_id)
    }

    /// Makes `actor` (an organization user id) the one changing the organization from now
    /// on (`None`: the owner). False when that user is unknown.
    pub(crate) fn set_actor(&mut self, actor: Option<i64>) -> bool {
        if actor.is_some_and(|id| self.user(id).is_none()) {
            return false;
        }
        self.audit.actor = actor;
        true
    }

    /// Runs `f` as the owner, whoever the actor is (a write through the API is the
    /// caller's, and the fake's caller is the owner).
    pub(crate) fn as_owner<R>(&mut self, f: impl FnOnce(&mut FakeOrg) -> R) -> R {
        let actor = self.audit.actor.take();
        let out = f(self);
        self.audit.actor = actor;
        out
    }

    /// Appends an event for a change just made, by the current actor, naming `subjects`
    /// (organization user ids) so that the log can summarize them later.
    pub(crate) fn record(&mut self, change: Change<'_>, subjects: &[i64]) {
        if !self.audit.recording {
            return;
        }
        let actor = self
            .audit
            .actor
            .and_then(|id| self.user(id))
            .map(audit_user_id)
            .or_else(|| self.owner_audit_id())
            .unwrap_or(0);
        let named: Vec<(i64, Person)> = subjects
            .iter()
            .filter_map(|id| self.user(*id))
            .chain(
                self.users
                    .iter()
                    .filter(|u| audit_user_id(u) == actor)
                    .take(1),
            )
            .map(|u| (audit_user_id(u), person(u)))
            .collect();
        self.audit.people.extend(named);
        let mut at = Utc::now();
        if let Some(last) = self.audit.events.last() {
            at = at.max(last.created_at + TimeDelta::microseconds(1));
        }
        // Whole microseconds, as a log written from a database's timestamps has them.
        at = DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at);
        self.audit.events.push(FakeAuditEvent {
            created_at: at,
            entity_type: change.entity_type.to_string(),
            entity_id: change.entity_id,
            action: change.action.to_string(),
            user_id: actor,
            workspace_id: change.workspace_id,
            project_id: 0,
            old_value: change.old_value,
            new_value: change.new_value,
            meta_data: change.meta_data,
        });
    }

    /// Adds an event as given (its time and actor included), in time order.
    #[cfg(feature = "control")]
    pub(crate) fn insert_audit_event(&mut self, event: FakeAuditEvent) {
        let at = self
            .audit
            .events
            .partition_point(|e| e.created_at <= event.created_at);
        self.audit.events.insert(at, event);
    }

    /// The events recorded (not the generated history), oldest first.
    #[cfg(feature = "control")]
    pub(crate) fn audit_events(&self) -> Vec<FakeAuditEvent> {
        self.audit.events.clone()
    }

    pub(super) fn record_user_created(&mut self, id: i64) {
        if let Some(u) = self.user(id) {
            let mut c = Change::new("organization_user", id, "create");
            c.new_value = user_fields(u);
            self.record(c, &[id]);
        }
    }

    pub(super) fn record_user_deleted(&mut self, u: &FakeUser) {
        let mut c = Change::new("organization_user", u.id, "delete");
        c.old_value = user_fields(u);
        self.record(c, &[u.id]);
    }

    /// The events of an edit of a member: their record's fields, their rate.
    pub(super) fn record_user_edit(&mut self, before: &FakeUser) {
        let Some(after) = self.user(before.id).cloned() else {
            return;
        };
        let (old, new) = changed(&user_fields(before), &user_fields(&after));
        if !new.is_empty() {
            let mut c = Change::new("organization_user", after.id, "update");
            c.old_value = old;
            c.new_value = new;
            self.record(c, &[after.id]);
        }
        let workspace_user = |ws: i64| {
            after
                .workspaces
                .iter()
                .find(|w| w.workspace_id == ws)
                .map(|w| w.workspace_user_id)
                .unwrap_or(0)
        };
        let rate_change = match (&before.rate, &after.rate) {
            (None, Some(r)) => Some((r, "create", Map::new(), rate_fields(r))),
            (Some(r), None) => Some((r, "delete", rate_fields(r), Map::new())),
            (Some(a), Some(b)) if a != b => {
                let (old, new) = changed(&rate_fields(a), &rate_fields(b));
                Some((b, "update", old, new))
            }
            _ => None,
        };
        if let Some((r, action, old, new)) = rate_change {
            let mut c = Change::new("workspace_user_rate", r.workspace_user_rate_id, action);
            c.workspace_id = r.workspace_id;
            c.old_value = old;
            c.new_value = new;
            c.meta_data = meta(&[
                ("organization_user_id", after.id),
                ("workspace_user_id", workspace_user(r.workspace_id)),
            ]);
            self.record(c, &[after.id]);
        }
    }

    /// The events of a change to a member's custom field values.
    #[cfg(feature = "control")]
    pub(super) fn record_custom_values(
        &mut self,
        user_id: i64,
        before: &BTreeMap<i64, FakeCustomValue>,
    ) {
        let Some(after) = self.user(user_id).map(|u| u.custom_values.clone()) else {
            return;
        };
        let mut fields: Vec<i64> = before.keys().chain(after.keys()).copied().collect();
        fields.sort_unstable();
        fields.dedup();
        for field in fields {
            let (old, new) = (before.get(&field), after.get(&field));
            let action = match (old, new) {
                (None, Some(_)) => "create",
                (Some(_), None) => "delete",
                (Some(a), Some(b)) if a != b => "update",
                _ => continue,
            };
            let value = |v: Option<&FakeCustomValue>| match v {
                Some(v) => object(json!({ "value": v.value })),
                None => Map::new(),
            };
            let workspace_id = self
                .custom_fields
                .iter()
                .find(|f| f.id == field)
                .map(|f| f.workspace_id)
                .unwrap_or(0);
            let mut c = Change::new("custom_field_value", field, action);
            c.workspace_id = workspace_id;
            c.old_value = value(old);
            c.new_value = value(new);
            c.meta_data = meta(&[
                ("organization_user_id", user_id),
                ("custom_field_id", field),
            ]);
            self.record(c, &[user_id]);
        }
    }

    pub(super) fn record_member(&mut self, action: &str, group_id: i64, user_id: i64, ugid: i64) {
        let mut c = Change::new("group_user", ugid, action);
        let fields = object(json!({ "group_id": group_id, "organization_user_id": user_id }));
        if action == "delete" {
            c.old_value = fields;
        } else {
            c.new_value = fields;
        }
        c.meta_data = meta(&[("group_id", group_id), ("organization_user_id", user_id)]);
        self.record(c, &[user_id]);
    }

    pub(super) fn record_group(&mut self, id: i64, action: &str, before: Option<&FakeGroup>) {
        let after = self.groups.get(&id).map(group_fields).unwrap_or_default();
        let before = before.map(group_fields).unwrap_or_default();
        let (old, new) = match action {
            "update" => changed(&before, &after),
            "delete" => (before, Map::new()),
            _ => (Map::new(), after),
        };
        if action == "update" && new.is_empty() {
            return;
        }
        let mut c = Change::new("group", id, action);
        c.old_value = old;
        c.new_value = new;
        c.meta_data = meta(&[("group_id", id)]);
        self.record(c, &[]);
    }

    /// Applies `f` to the organization as a change of group `id` (its name, emoji,
    /// workspaces; its members record their own events), bumps the group's `updated_at`,
    /// and records what changed. False when the group is unknown.
    pub(crate) fn edit_group(&mut self, id: i64, f: impl FnOnce(&mut FakeOrg)) -> bool {
        let Some(before) = self.groups.get(&id).cloned() else {
            return false;
        };
        f(self);
        let now = self.now;
        if let Some(g) = self.groups.get_mut(&id) {
            g.updated_at = now;
        }
        self.record_group(id, "update", Some(&before));
        true
    }

    /// Applies `f` to a role and records what changed. False when unknown.
    #[cfg(feature = "control")]
    pub(crate) fn edit_role(&mut self, role_id: i64, f: impl FnOnce(&mut FakeRole)) -> bool {
        let Some(role) = self.roles.iter_mut().find(|r| r.role_id == role_id) else {
            return false;
        };
        let before = role_fields(role);
        f(role);
        let (old, new) = changed(&before, &role_fields(role));
        if !new.is_empty() {
            let mut c = Change::new("role", role_id, "update");
            c.old_value = old;
            c.new_value = new;
            self.record(c, &[]);
        }
        true
    }

    /// Records a change of a custom field (`custom_field`) or of one of its options
    /// (`custom_field_option`).
    #[cfg(feature = "control")]
    pub(crate) fn record_custom_field(
        &mut self,
        entity_type: &str,
        entity_id: i64,
        action: &str,
        field_id: i64,
        old: Map<String, Value>,
        new: Map<String, Value>,
    ) {
        let workspace_id = self
            .custom_fields
            .iter()
            .find(|f| f.id == field_id)
            .map(|f| f.workspace_id)
            .unwrap_or(0);
        let mut c = Change::new(entity_type, entity_id, action);
        c.workspace_id = workspace_id;
        c.old_value = old;
        c.new_value = new;
        c.meta_data = meta(&[("custom_field_id", field_id)]);
        self.record(c, &[]);
    }
}

fn person(u: &FakeUser) -> Person {
    Person {
        organization_user_id: u.id,
        name: u.name.clone(),
        email: u.email.clone(),
        user_account_id: u.user_account_id,
    }
}

/// What a request to the log asks for, beside its window and page.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFilter {
    pub(crate) workspace_id: Option<i64>,
    /// Empty: every type.
    pub(crate) entity_types: Vec<String>,
    /// `workspace_logs`: every type but `time_entry`.
    pub(crate) workspace_logs: bool,
    pub(crate) entity_id: Option<i64>,
    pub(crate) actions: Vec<String>,
    pub(crate) user_ids: Vec<i64>,
}

impl AuditFilter {
    fn is_empty(&self) -> bool {
        self.workspace_id.is_none()
            && self.entity_types.is_empty()
            && !self.workspace_logs
            && self.entity_id.is_none()
            && self.actions.is_empty()
            && self.user_ids.is_empty()
    }

    fn matches(&self, e: &FakeAuditEvent) -> bool {
        let type_ok = (self.entity_types.is_empty() && !self.workspace_logs)
            || self.entity_types.contains(&e.entity_type)
            || (self.workspace_logs && e.entity_type != "time_entry");
        type_ok
            && self.workspace_id.is_none_or(|w| e.workspace_id == w)
            && self.entity_id.is_none_or(|id| e.entity_id == id)
            && (self.actions.is_empty() || self.actions.contains(&e.action))
            && (self.user_ids.is_empty() || self.user_ids.contains(&e.user_id))
    }
}

/// Where an event of the log is: recorded, or generated.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Recorded(usize),
    Generated(usize),
}

impl AuditLog {
    /// The events in `[from, to]` that `filter` keeps, newest first, after skipping `skip`
    /// of them, at most `limit`.
    pub(crate) fn select(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &AuditFilter,
        skip: usize,
        limit: usize,
    ) -> Vec<FakeAuditEvent> {
        let lo = self.events.partition_point(|e| e.created_at < from);
        let hi = self.events.partition_point(|e| e.created_at <= to);
        let (glo, ghi) = match &self.backlog {
            Some(b) => (b.first_at_or_after(from), b.first_at_or_after_next(to)),
            None => (0, 0),
        };
        let slots = Merge {
            log: self,
            recorded: (lo, hi),
            generated: (glo, ghi),
        };
        if filter.is_empty() {
            slots
                .skip(skip)
                .take(limit)
                .filter_map(|s| self.event(s))
                .collect()
        } else {
            slots
                .filter_map(|s| self.event(s))
                .filter(|e| filter.matches(e))
                .skip(skip)
                .take(limit)
                .collect()
        }
    }

    /// The event in a slot (`Merge` yields generated slots only of a backlog there is).
    fn event(&self, slot: Slot) -> Option<FakeAuditEvent> {
        match slot {
            Slot::Recorded(i) => self.events.get(i).cloned(),
            Slot::Generated(i) => self.backlog.as_ref().map(|b| b.event(i)),
        }
    }

    fn time(&self, slot: Slot) -> Option<DateTime<Utc>> {
        match slot {
            Slot::Recorded(i) => self.events.get(i).map(|e| e.created_at),
            Slot::Generated(i) => self.backlog.as_ref().map(|b| b.time(i)),
        }
    }

    /// The summary of an actor or subject (by audit user id), from the organization as
    /// it is, or as the log last knew them.
    pub(crate) fn person(&self, audit_id: i64) -> Option<&Person> {
        self.people.get(&audit_id)
    }

    /// The audit id of an organization user the log has named.
    pub(crate) fn audit_id_of(&self, organization_user_id: i64) -> Option<i64> {
        self.people
            .iter()
            .find(|(_, p)| p.organization_user_id == organization_user_id)
            .map(|(id, _)| *id)
    }
}

/// The slots of two ranges, each oldest first, merged newest first by time (cheap: a
/// generated event's time is arithmetic, so skipping costs no event).
struct Merge<'a> {
    log: &'a AuditLog,
    recorded: (usize, usize),
    generated: (usize, usize),
}

impl Iterator for Merge<'_> {
    type Item = Slot;
    fn next(&mut self) -> Option<Slot> {
        let r = (self.recorded.1 > self.recorded.0).then(|| Slot::Recorded(self.recorded.1 - 1));
        let g =
            (self.generated.1 > self.generated.0).then(|| Slot::Generated(self.generated.1 - 1));
        let pick = match (r, g) {
            (Some(r), Some(g)) => {
                if self.log.time(r) >= self.log.time(g) {
                    r
                } else {
                    g
                }
            }
            (r, g) => r.or(g)?,
        };
        match pick {
            Slot::Recorded(_) => self.recorded.1 -= 1,
            Slot::Generated(_) => self.generated.1 -= 1,
        }
        Some(pick)
    }
}

/// The organization users an event speaks about: its entity when that is a member, and
/// the member its `meta_data` names.
pub(crate) fn subjects(e: &FakeAuditEvent) -> impl Iterator<Item = i64> + '_ {
    let entity = (e.entity_type == "organization_user").then_some(e.entity_id);
    let named = e
        .meta_data
        .get("organization_user_id")
        .and_then(|v| v.parse::<i64>().ok());
    entity.into_iter().chain(named)
}

/// The group an event speaks about.
pub(crate) fn group_of(e: &FakeAuditEvent) -> Option<i64> {
    if e.entity_type == "group" {
        return Some(e.entity_id);
    }
    e.meta_data.get("group_id").and_then(|v| v.parse().ok())
}

//! The mirror's own picture of an organization: normalised records of every entity,
//! built from the API models and compared by their canonical JSON.
//!
//! Normalisation is what makes "the same data" compare equal: timestamps become UTC
//! with a `Z`, lists are sorted by id, and the fields that merely repeat another
//! entity (a group's name inside a user, a user's name inside a membership) are left
//! out so that a rename is one event on the renamed entity, not one per reference.
//! Field names are the upstream's, so `changed_fields` speaks the API's language.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::models::{OrganizationUser, Role, Team};
use crate::clock::format_utc;
use crate::diff::{hashes_of, StoredHashes, StoredState};

/// The kinds of entity the mirror tracks, named as `change_events.entity` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Role,
    Group,
    User,
    GroupMembership,
    UserRate,
}

impl Entity {
    /// Every kind, in the order a run writes them.
    pub const ALL: [Entity; 5] = [
        Entity::Role,
        Entity::Group,
        Entity::User,
        Entity::GroupMembership,
        Entity::UserRate,
    ];

    /// The name used in `change_events.entity` and the history table.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Role => "role",
            Entity::Group => "group",
            Entity::User => "user",
            Entity::GroupMembership => "group_membership",
            Entity::UserRate => "user_rate",
        }
    }

    /// The inverse of [`Entity::as_str`].
    pub fn parse(s: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Identifies one entity: the upstream id, or (group, user) for a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey {
    pub entity: Entity,
    /// The upstream id; the group id for a membership; the user id for a rate.
    pub id: i64,
    /// The organization user id of a membership; 0 otherwise.
    pub sub_id: i64,
}

impl EntityKey {
    pub fn new(entity: Entity, id: i64) -> EntityKey {
        EntityKey {
            entity,
            id,
            sub_id: 0,
        }
    }

    pub fn membership(group_id: i64, organization_user_id: i64) -> EntityKey {
        EntityKey {
            entity: Entity::GroupMembership,
            id: group_id,
            sub_id: organization_user_id,
        }
    }

    /// `change_events.entity_id`: the upstream id, or `group_id:organization_user_id`.
    pub fn entity_id(&self) -> String {
        match self.entity {
            Entity::GroupMembership => format!("{}:{}", self.id, self.sub_id),
            _ => self.id.to_string(),
        }
    }

    /// The inverse of [`EntityKey::entity_id`].
    pub fn parse(entity: Entity, entity_id: &str) -> Option<EntityKey> {
        match entity {
            Entity::GroupMembership => {
                let (g, u) = entity_id.split_once(':')?;
                Some(EntityKey::membership(g.parse().ok()?, u.parse().ok()?))
            }
            _ => Some(EntityKey::new(entity, entity_id.parse().ok()?)),
        }
    }
}

/// A normalised organization user (without rate: see [`RateRecord`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: i64,
    pub user_account_id: Option<i64>,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub active: Option<bool>,
    pub admin: Option<bool>,
    pub owner: Option<bool>,
    pub joined: Option<bool>,
    pub invite_sent: Option<bool>,
    #[serde(rename = "2fa_enabled")]
    pub two_fa_enabled: Option<bool>,
    pub can_edit_personal_details: Option<bool>,
    pub account_locked_at: Option<Timestamp>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    pub organization_id: Option<i64>,
    pub working_hours: Option<f64>,
    /// The seed's untyped `permissions` object, as canonical JSON.
    pub permissions: Option<CanonicalJson>,
    /// Sorted by id.
    pub tags: Vec<TagRecord>,
    /// Sorted by workspace id.
    pub workspaces: Vec<UserWorkspaceRecord>,
}

/// JSON text in canonical form (object keys sorted), kept as text: far smaller than a
/// `serde_json::Value` and serialized verbatim into the record's JSON.
#[derive(Debug, Clone)]
pub struct CanonicalJson(Box<serde_json::value::RawValue>);

impl CanonicalJson {
    /// The canonical text of `value` (serde_json's map keeps keys sorted: see the test
    /// `json_objects_serialize_with_sorted_keys`).
    pub fn from_value(value: &serde_json::Value) -> CanonicalJson {
        let text = value.to_string();
        match serde_json::value::RawValue::from_string(text) {
            Ok(raw) => CanonicalJson(raw),
            // `Value::to_string` always yields valid JSON; keep a valid fallback anyway.
            Err(_) => CanonicalJson(serde_json::value::RawValue::NULL.to_owned()),
        }
    }

    /// A JSON array of these strings (the caller sorts them), made without a `Value`.
    pub fn from_strings(items: &[String]) -> CanonicalJson {
        let text = serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string());
        match serde_json::value::RawValue::from_string(text) {
            Ok(raw) => CanonicalJson(raw),
            Err(_) => CanonicalJson(serde_json::value::RawValue::NULL.to_owned()),
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for CanonicalJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for CanonicalJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CanonicalJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(CanonicalJson::from_value(&value))
    }
}

/// A tag on a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagRecord {
    pub id: i64,
    pub label: Option<String>,
    pub color: Option<String>,
}

/// A user's place in a workspace, with the role ids there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserWorkspaceRecord {
    pub id: i64,
    pub workspace_user_id: Option<i64>,
    pub focus_role_id: Option<i64>,
    pub track_role_id: Option<i64>,
    pub work_role_id: Option<i64>,
    /// Sorted, as a JSON array (one small allocation instead of one per product).
    pub toggl_products: CanonicalJson,
}

/// A user's current rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateRecord {
    pub organization_user_id: i64,
    pub hourly_rate: Option<f64>,
    pub currency: Option<String>,
    pub start_at: Option<Timestamp>,
    pub end_at: Option<Timestamp>,
    pub workspace_id: Option<i64>,
    pub workspace_rate_id: Option<i64>,
    pub workspace_user_rate_id: Option<i64>,
}

/// A normalised group (its members are [`MembershipRecord`]s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: i64,
    pub name: Option<String>,
    pub emoji: Option<String>,
    pub organization_id: Option<i64>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    /// Sorted by workspace id.
    pub workspaces: Vec<GroupWorkspaceRecord>,
    /// Sorted by id.
    pub ghosts: Vec<GhostRecord>,
}

/// A workspace a group is linked to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupWorkspaceRecord {
    pub workspace_id: i64,
    pub workspace_group_id: Option<i64>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
}

/// A ghost of a team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GhostRecord {
    pub id: i64,
    pub name: Option<String>,
}

/// One user's membership of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipRecord {
    pub group_id: i64,
    pub organization_user_id: i64,
    pub user_group_id: Option<i64>,
    pub user_account_id: Option<i64>,
    pub focus_role_id: Option<i64>,
    pub track_role_id: Option<i64>,
    pub work_role_id: Option<i64>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
}

/// A role with its permissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleRecord {
    pub role_id: i64,
    pub code: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub privilege_level: Option<i64>,
    pub entity: Option<String>,
    pub description: Option<String>,
    pub organization_id: Option<i64>,
    /// Sorted by permission id.
    pub permissions: Vec<PermissionRecord>,
}

/// A permission of a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionRecord {
    pub permission_id: i64,
    pub name: Option<String>,
    pub entity: Option<String>,
    pub condition: Option<String>,
    pub description: Option<String>,
}

/// A record with the top-level fields the model did not know, kept verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept<T> {
    pub record: T,
    /// Canonical JSON object of unknown top-level fields; `None` when there were none.
    pub unknown: Option<String>,
}

/// Everything one pull saw, normalised and keyed. Built only from a complete pull.
///
/// Built [`OrgSnapshot::against`] what the mirror holds, a record whose canonical JSON
/// hashes to the stored version is not kept: only its key goes into `unchanged`. A
/// re-sync then holds the keys of the organization plus what changed, not a copy of
/// all of it. What changed, and what is gone, is still decided only by `diff` once
/// every page has arrived.
#[derive(Debug, Clone, Default)]
pub struct OrgSnapshot {
    pub roles: BTreeMap<i64, Kept<RoleRecord>>,
    pub groups: BTreeMap<i64, Kept<GroupRecord>>,
    pub users: BTreeMap<i64, Kept<UserRecord>>,
    pub memberships: BTreeMap<(i64, i64), MembershipRecord>,
    pub rates: BTreeMap<i64, RateRecord>,
    /// Workspace names seen in users and groups (not tracked as history).
    pub workspace_names: BTreeMap<i64, String>,
    /// Entities the pull saw unchanged (only with a baseline), and those handed over
    /// early by [`OrgSnapshot::take_new`] while the pull still sees them.
    pub unchanged: BTreeSet<EntityKey>,
    baseline: Option<Arc<StoredState>>,
    /// Entities new to the baseline that [`OrgSnapshot::take_new`] handed over, with the
    /// hashes of what was handed over: this run's own "stored" version of them.
    settled: BTreeMap<EntityKey, StoredHashes>,
    /// Keys of records kept since the last [`OrgSnapshot::take_new`] that no stored
    /// version matched: the candidates it hands over (so it never scans the whole maps).
    pending_new: Vec<EntityKey>,
    /// Users and groups whose record could not be read this run, with why: what the
    /// baseline holds of them counts as seen unchanged (see [`OrgSnapshot::quarantine`]).
    pub quarantined: BTreeMap<EntityKey, String>,
}

/// A record the API sent that cannot be mirrored (no id, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad record {entity} {position}: {message}")]
pub struct RecordError {
    pub entity: &'static str,
    /// Which it was: its id (`42`), or where it was when it has none (`#17`).
    pub position: String,
    pub message: String,
}

fn missing(entity: &'static str, position: String, field: &str) -> RecordError {
    RecordError {
        entity,
        position,
        message: format!("field `{field}`: missing"),
    }
}

impl OrgSnapshot {
    /// Adds roles as the roles endpoint listed them.
    pub fn add_roles(&mut self, roles: Vec<(Role, Option<String>)>) -> Result<(), RecordError> {
        for (i, (role, unknown)) in roles.into_iter().enumerate() {
            let record = RoleRecord::from_api(role).map_err(|m| RecordError {
                entity: "role",
                position: format!("#{}", i + 1),
                message: m,
            })?;
            let key = EntityKey::new(Entity::Role, record.role_id);
            if !self.is_unchanged(key, RecordRef::Role(&record), unknown.as_deref()) {
                self.roles.insert(record.role_id, Kept { record, unknown });
            }
        }
        Ok(())
    }

    /// A snapshot that keeps only what differs from `baseline` (see the type's docs).
    pub fn against(baseline: Arc<StoredState>) -> OrgSnapshot {
        OrgSnapshot {
            baseline: Some(baseline),
            ..OrgSnapshot::default()
        }
    }

    /// Whether the record is the stored version; if so only its key is kept. Either way
    /// an earlier copy of the same entity is forgotten by the caller's insert or here.
    fn is_unchanged(
        &mut self,
        key: EntityKey,
        record: RecordRef<'_>,
        unknown: Option<&str>,
    ) -> bool {
        let stored = match self.settled.get(&key) {
            Some(settled) => Some(settled),
            None => self.baseline.as_ref().and_then(|b| b.get(&key)),
        };
        if stored.is_none() && self.baseline.is_some() {
            self.pending_new.push(key);
        }
        let same = stored.is_some_and(|stored| {
            *stored
                == StoredHashes {
                    data: record.content_hash(),
                    unknown: unknown.map(content_hash),
                }
        });
        if same {
            self.unchanged.insert(key);
            match key.entity {
                Entity::Role => drop(self.roles.remove(&key.id)),
                Entity::Group => drop(self.groups.remove(&key.id)),
                Entity::User => drop(self.users.remove(&key.id)),
                Entity::GroupMembership => drop(self.memberships.remove(&(key.id, key.sub_id))),
                Entity::UserRate => drop(self.rates.remove(&key.id)),
            }
        } else {
            self.unchanged.remove(&key);
        }
        same
    }

    /// Hands over, whole, the records of entities the baseline does not hold and that
    /// were not handed over before: a run writes these inserts while it still pulls.
    /// What is handed over stays seen (in `unchanged`) and becomes this run's stored
    /// version of the entity ([`OrgSnapshot::settled`]): a later copy that differs is
    /// kept as a change against it, and one the pull takes back (a team seen again
    /// without a member) is no longer seen, so the final diff undoes it.
    /// Without a baseline nothing is known to be new, and nothing is handed over.
    pub fn take_new(&mut self) -> Vec<NewRow> {
        let Some(baseline) = self.baseline.clone() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for key in std::mem::take(&mut self.pending_new) {
            // A key can be pending twice, or have been handed over, taken back, or stored.
            if self.settled.contains_key(&key) || baseline.get(&key).is_some() {
                continue;
            }
            let row = match key.entity {
                Entity::Role => self
                    .roles
                    .remove(&key.id)
                    .map(|k| NewRow::new(key, Record::Role(k.record), k.unknown)),
                Entity::Group => self
                    .groups
                    .remove(&key.id)
                    .map(|k| NewRow::new(key, Record::Group(k.record), k.unknown)),
                Entity::User => self
                    .users
                    .remove(&key.id)
                    .map(|k| NewRow::new(key, Record::User(k.record), k.unknown)),
                Entity::GroupMembership => self
                    .memberships
                    .remove(&(key.id, key.sub_id))
                    .map(|m| NewRow::new(key, Record::Membership(m), None)),
                Entity::UserRate => self
                    .rates
                    .remove(&key.id)
                    .map(|r| NewRow::new(key, Record::Rate(r), None)),
            };
            if let Some(row) = row {
                self.settled.insert(row.key, row.hashes);
                self.unchanged.insert(row.key);
                out.push(row);
            }
        }
        // In key order, as a diff writes: each table and index then grows at one end.
        out.sort_by_key(|row| row.key);
        out
    }

    /// What [`OrgSnapshot::take_new`] handed over this run, with its hashes.
    pub fn settled(&self) -> &BTreeMap<EntityKey, StoredHashes> {
        &self.settled
    }

    /// Whether the pull saw this entity (changed or not).
    pub fn has(&self, key: &EntityKey) -> bool {
        self.unchanged.contains(key)
            || match key.entity {
                Entity::Role => self.roles.contains_key(&key.id),
                Entity::Group => self.groups.contains_key(&key.id),
                Entity::User => self.users.contains_key(&key.id),
                Entity::GroupMembership => self.memberships.contains_key(&(key.id, key.sub_id)),
                Entity::UserRate => self.rates.contains_key(&key.id),
            }
    }

    /// Quarantines a user or group whose id could be read and whose body could not: its
    /// last good version stays (what the baseline holds of it, a user's rate and a group's
    /// memberships included, counts as seen unchanged: never a false delete, never a
    /// change), and copies of it this run are not taken. One the mirror does not hold is
    /// not mirrored.
    pub fn quarantine(&mut self, key: EntityKey, reason: String) {
        match key.entity {
            Entity::User => self.remove_user(key.id),
            Entity::Group => self.remove_group(key.id),
            _ => return,
        }
        if let Some(baseline) = self.baseline.clone() {
            let held = baseline.keys().filter(|k| match key.entity {
                Entity::User => {
                    k.id == key.id && matches!(k.entity, Entity::User | Entity::UserRate)
                }
                _ => k.id == key.id && matches!(k.entity, Entity::Group | Entity::GroupMembership),
            });
            for k in held {
                self.unchanged.insert(*k);
            }
        }
        self.quarantined.insert(key, reason);
    }

    /// Adds a team: the group, its memberships and workspace names.
    pub fn add_team(&mut self, team: Team, unknown: Option<String>) -> Result<(), RecordError> {
        let id = team
            .id
            .ok_or_else(|| missing("group", "without id".into(), "id"))?;
        if self
            .quarantined
            .contains_key(&EntityKey::new(Entity::Group, id))
        {
            return Ok(());
        }
        let pos = || id.to_string();
        let mut members = BTreeMap::new();
        for u in team
            .users
            .iter()
            .filter(|u| !is_soft_deleted(u.deleted_at.as_deref()))
        {
            let uid = u
                .organization_user_id
                .ok_or_else(|| missing("group", pos(), "users[].organization_user_id"))?;
            members.insert(
                (id, uid),
                MembershipRecord {
                    group_id: id,
                    organization_user_id: uid,
                    user_group_id: u.user_group_id,
                    user_account_id: u.user_account_id,
                    focus_role_id: u.focus_role_id,
                    track_role_id: u.track_role_id,
                    work_role_id: u.work_role_id,
                    created_at: utc(u.created_at.as_deref()),
                    updated_at: utc(u.updated_at.as_deref()),
                    deleted_at: utc(u.deleted_at.as_deref()),
                },
            );
        }
        let mut workspaces = Vec::with_capacity(team.workspaces.len());
        for w in &team.workspaces {
            let wid = w
                .workspace_id
                .ok_or_else(|| missing("group", pos(), "workspaces[].workspace_id"))?;
            if let Some(name) = &w.name {
                self.workspace_names.insert(wid, name.clone());
            }
            workspaces.push(GroupWorkspaceRecord {
                workspace_id: wid,
                workspace_group_id: w.workspace_group_id,
                created_at: utc(w.created_at.as_deref()),
                updated_at: utc(w.updated_at.as_deref()),
                deleted_at: utc(w.deleted_at.as_deref()),
            });
        }
        workspaces.sort_by_key(|w| w.workspace_id);
        workspaces.dedup_by_key(|w| w.workspace_id);
        let mut ghosts = Vec::with_capacity(team.ghosts.len());
        for g in team.ghosts {
            let gid = g.id.ok_or_else(|| missing("group", pos(), "ghosts[].id"))?;
            ghosts.push(GhostRecord {
                id: gid,
                name: g.name,
            });
        }
        ghosts.sort_by_key(|g| g.id);
        ghosts.dedup_by_key(|g| g.id);
        let record = GroupRecord {
            id,
            name: team.name,
            emoji: team.emoji,
            organization_id: team.organization_id,
            created_at: utc(team.created_at.as_deref()),
            updated_at: utc(team.updated_at.as_deref()),
            deleted_at: utc(team.deleted_at.as_deref()),
            workspaces,
            ghosts,
        };
        // A team seen twice (paging shifted) replaces its earlier copy whole.
        if self.has(&EntityKey::new(Entity::Group, id)) {
            self.remove_memberships_of(id);
        }
        for (k, m) in members {
            let key = EntityKey::membership(k.0, k.1);
            if !self.is_unchanged(key, RecordRef::Membership(&m), None) {
                self.memberships.insert(k, m);
            }
        }
        let key = EntityKey::new(Entity::Group, id);
        if !self.is_unchanged(key, RecordRef::Group(&record), unknown.as_deref()) {
            self.groups.insert(id, Kept { record, unknown });
        }
        Ok(())
    }

    /// Adds a user and, when present, its rate.
    pub fn add_user(
        &mut self,
        user: OrganizationUser,
        unknown: Option<String>,
    ) -> Result<(), RecordError> {
        let id = user
            .id
            .ok_or_else(|| missing("user", "without id".into(), "id"))?;
        if self
            .quarantined
            .contains_key(&EntityKey::new(Entity::User, id))
        {
            return Ok(());
        }
        let mut tags = Vec::with_capacity(user.tags.len());
        for t in user.tags {
            let tid =
                t.id.ok_or_else(|| missing("user", id.to_string(), "tags[].id"))?;
            tags.push(TagRecord {
                id: tid,
                label: t.label,
                color: t.color,
            });
        }
        tags.sort_by_key(|t| t.id);
        tags.dedup_by_key(|t| t.id);
        let mut workspaces = Vec::with_capacity(user.workspaces.len());
        for w in user.workspaces {
            let wid =
                w.id.ok_or_else(|| missing("user", id.to_string(), "workspaces[].id"))?;
            if let Some(name) = w.name {
                self.workspace_names.insert(wid, name);
            }
            let mut products = w.toggl_products;
            products.sort();
            products.dedup();
            let products = CanonicalJson::from_strings(&products);
            workspaces.push(UserWorkspaceRecord {
                id: wid,
                workspace_user_id: w.workspace_user_id,
                focus_role_id: w.focus_role_id,
                track_role_id: w.track_role_id,
                work_role_id: w.work_role_id,
                toggl_products: products,
            });
        }
        workspaces.sort_by_key(|w| w.id);
        workspaces.dedup_by_key(|w| w.id);
        match user.rate {
            Some(rate) => {
                let record = RateRecord {
                    organization_user_id: id,
                    hourly_rate: rate.hourly_rate,
                    currency: rate.currency,
                    start_at: utc(rate.start_at.as_deref()),
                    end_at: utc(rate.end_at.as_deref()),
                    workspace_id: rate.workspace_id,
                    workspace_rate_id: rate.workspace_rate_id,
                    workspace_user_rate_id: rate.workspace_user_rate_id,
                };
                let key = EntityKey::new(Entity::UserRate, id);
                if !self.is_unchanged(key, RecordRef::Rate(&record), None) {
                    self.rates.insert(id, record);
                }
            }
            None => {
                self.rates.remove(&id);
                self.unchanged.remove(&EntityKey::new(Entity::UserRate, id));
            }
        }
        let record = UserRecord {
            id,
            user_account_id: user.user_account_id,
            user_id: user.user_id,
            name: user.name,
            email: user.email,
            active: user.active,
            admin: user.admin,
            owner: user.owner,
            joined: user.joined,
            invite_sent: user.invite_sent,
            two_fa_enabled: user.two_fa_enabled,
            can_edit_personal_details: user.can_edit_personal_details,
            account_locked_at: utc(user.account_locked_at.as_deref()),
            created_at: utc(user.created_at.as_deref()),
            updated_at: utc(user.updated_at.as_deref()),
            deleted_at: utc(user.deleted_at.as_deref()),
            organization_id: user.organization_id,
            working_hours: user.working_hours,
            permissions: user
                .permissions
                .filter(|p| !p.is_null())
                .map(|p| CanonicalJson::from_value(&p)),
            tags,
            workspaces,
        };
        let key = EntityKey::new(Entity::User, id);
        if !self.is_unchanged(key, RecordRef::User(&record), unknown.as_deref()) {
            self.users.insert(id, Kept { record, unknown });
        }
        Ok(())
    }

    /// Removes a user and its rate (memberships come from the groups).
    pub fn remove_user(&mut self, id: i64) {
        self.users.remove(&id);
        self.rates.remove(&id);
        self.unchanged.remove(&EntityKey::new(Entity::User, id));
        self.unchanged.remove(&EntityKey::new(Entity::UserRate, id));
    }

    /// Removes a group and its memberships.
    pub fn remove_group(&mut self, id: i64) {
        self.groups.remove(&id);
        self.unchanged.remove(&EntityKey::new(Entity::Group, id));
        self.remove_memberships_of(id);
    }

    fn remove_memberships_of(&mut self, group_id: i64) {
        let keys: Vec<(i64, i64)> = self
            .memberships
            .range((group_id, i64::MIN)..=(group_id, i64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.memberships.remove(&k);
        }
        let unchanged: Vec<EntityKey> = self
            .unchanged
            .range(
                EntityKey::membership(group_id, i64::MIN)
                    ..=EntityKey::membership(group_id, i64::MAX),
            )
            .copied()
            .collect();
        for k in unchanged {
            self.unchanged.remove(&k);
        }
    }

    /// Removes every membership of these users (users confirmed gone: the teams that listed
    /// them were read before they left).
    pub fn remove_memberships_of_users(&mut self, users: &BTreeSet<i64>) {
        if users.is_empty() {
            return;
        }
        self.memberships
            .retain(|&(_, user), _| !users.contains(&user));
        self.unchanged
            .retain(|k| !(k.entity == Entity::GroupMembership && users.contains(&k.sub_id)));
    }

    /// Every entity as (key, canonical JSON, unknown fields), in key order.
    pub fn rows(&self) -> impl Iterator<Item = SnapshotRow<'_>> + '_ {
        let roles = self.roles.iter().map(|(&id, k)| SnapshotRow {
            key: EntityKey::new(Entity::Role, id),
            value: RecordRef::Role(&k.record),
            unknown: k.unknown.as_deref(),
        });
        let groups = self.groups.iter().map(|(&id, k)| SnapshotRow {
            key: EntityKey::new(Entity::Group, id),
            value: RecordRef::Group(&k.record),
            unknown: k.unknown.as_deref(),
        });
        let users = self.users.iter().map(|(&id, k)| SnapshotRow {
            key: EntityKey::new(Entity::User, id),
            value: RecordRef::User(&k.record),
            unknown: k.unknown.as_deref(),
        });
        let memberships = self.memberships.iter().map(|(&(g, u), m)| SnapshotRow {
            key: EntityKey::membership(g, u),
            value: RecordRef::Membership(m),
            unknown: None,
        });
        let rates = self.rates.iter().map(|(&id, r)| SnapshotRow {
            key: EntityKey::new(Entity::UserRate, id),
            value: RecordRef::Rate(r),
            unknown: None,
        });
        roles
            .chain(groups)
            .chain(users)
            .chain(memberships)
            .chain(rates)
    }

    /// Number of entities of each kind.
    pub fn count(&self, entity: Entity) -> usize {
        let unchanged = self.unchanged.iter().filter(|k| k.entity == entity).count();
        unchanged
            + match entity {
                Entity::Role => self.roles.len(),
                Entity::Group => self.groups.len(),
                Entity::User => self.users.len(),
                Entity::GroupMembership => self.memberships.len(),
                Entity::UserRate => self.rates.len(),
            }
    }
}

thread_local! {
    /// Where [`RecordRef::with_json`] writes a record's JSON (kept at the largest size seen).
    static JSON_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A borrowed record of any kind.
#[derive(Debug, Clone, Copy)]
pub enum RecordRef<'a> {
    Role(&'a RoleRecord),
    Group(&'a GroupRecord),
    User(&'a UserRecord),
    Membership(&'a MembershipRecord),
    Rate(&'a RateRecord),
}

impl RecordRef<'_> {
    /// [`content_hash`] of [`RecordRef::canonical_json`], without making the string: a
    /// re-sync hashes every record it pulls.
    pub fn content_hash(&self) -> i64 {
        self.with_json(|json| twox_hash::XxHash3_64::oneshot(json) as i64)
    }

    /// The canonical JSON the mirror compares and stores.
    pub fn canonical_json(&self) -> String {
        self.with_json(|json| String::from_utf8_lossy(json).into_owned())
    }

    /// Calls `f` with the record's canonical JSON, written into this thread's
    /// [`JSON_BUFFER`]: a string is then allocated once at its size, or not at all,
    /// instead of being grown (and copied) from empty for every record.
    fn with_json<T>(&self, f: impl FnOnce(&[u8]) -> T) -> T {
        JSON_BUFFER.with_borrow_mut(|buffer| {
            buffer.clear();
            self.write_json(buffer);
            f(buffer)
        })
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        let r = match self {
            RecordRef::Role(r) => serde_json::to_writer(&mut *out, r),
            RecordRef::Group(r) => serde_json::to_writer(&mut *out, r),
            RecordRef::User(r) => serde_json::to_writer(&mut *out, r),
            RecordRef::Membership(r) => serde_json::to_writer(&mut *out, r),
            RecordRef::Rate(r) => serde_json::to_writer(&mut *out, r),
        };
        // Serializing these plain structs (strings, numbers, Values) cannot fail.
        if let Err(e) = r {
            out.clear();
            out.extend_from_slice(
                format!("{{\"serialization_error\":{:?}}}", e.to_string()).as_bytes(),
            );
        }
    }
}

/// An owned record of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Role(RoleRecord),
    Group(GroupRecord),
    User(UserRecord),
    Membership(MembershipRecord),
    Rate(RateRecord),
}

impl Record {
    pub fn as_ref(&self) -> RecordRef<'_> {
        match self {
            Record::Role(r) => RecordRef::Role(r),
            Record::Group(r) => RecordRef::Group(r),
            Record::User(r) => RecordRef::User(r),
            Record::Membership(r) => RecordRef::Membership(r),
            Record::Rate(r) => RecordRef::Rate(r),
        }
    }
}

/// A new entity handed over by [`OrgSnapshot::take_new`], with what the store writes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRow {
    pub key: EntityKey,
    pub record: Record,
    pub unknown: Option<String>,
    /// The canonical JSON and its hashes.
    pub json: String,
    pub hashes: StoredHashes,
}

impl NewRow {
    fn new(key: EntityKey, record: Record, unknown: Option<String>) -> NewRow {
        let json = record.as_ref().canonical_json();
        let hashes = hashes_of(&json, unknown.as_deref());
        NewRow {
            key,
            record,
            unknown,
            json,
            hashes,
        }
    }
}

/// One entity of a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotRow<'a> {
    pub key: EntityKey,
    pub value: RecordRef<'a>,
    pub unknown: Option<&'a str>,
}

impl RoleRecord {
    fn from_api(role: Role) -> Result<RoleRecord, String> {
        let role_id = role.role_id.ok_or("field `role_id`: missing")?;
        let mut permissions = Vec::with_capacity(role.permissions.len());
        for p in role.permissions {
            let permission_id = p.permission_id.ok_or_else(|| {
                format!("field `permissions[].permission_id`: missing (role_id {role_id})")
            })?;
            permissions.push(PermissionRecord {
                permission_id,
                name: p.name,
                entity: p.entity,
                condition: p.condition,
                description: p.description,
            });
        }
        permissions.sort_by_key(|p| p.permission_id);
        permissions.dedup_by_key(|p| p.permission_id);
        Ok(RoleRecord {
            role_id,
            code: role.code,
            name: role.name,
            kind: role.kind,
            privilege_level: role.privilege_level,
            entity: role.entity,
            description: role.description,
            organization_id: role.organization_id,
            permissions,
        })
    }
}

/// An RFC 3339 timestamp in UTC with a `Z`; text that is not a timestamp is kept as sent.
pub fn utc(ts: Option<&str>) -> Option<Timestamp> {
    ts.map(Timestamp::parse)
}

/// Whether a row's `deleted_at` says it was removed: an RFC 3339 instant from 1970 on.
/// A null, text that is not a timestamp, or a zero-value date such as `0001-01-01T00:00:00Z`
/// (how some APIs render "never") leaves the row in place: taken for a removal, it would
/// end memberships that did not end.
pub fn is_soft_deleted(deleted_at: Option<&str>) -> bool {
    matches!(
        deleted_at.map(Timestamp::parse),
        Some(Timestamp::Instant { secs, .. }) if secs >= 0
    )
}

/// An upstream timestamp, normalised: an instant, written RFC 3339 in UTC with a `Z`, or —
/// when the API sent something that is not RFC 3339 — its text as sent. Twelve bytes
/// instead of a heap string for every timestamp of every record a run holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timestamp {
    Instant { secs: i64, nanos: u32 },
    Text(Box<str>),
}

impl Timestamp {
    /// Parses RFC 3339 in any UTC offset; anything else is kept as text.
    pub fn parse(text: &str) -> Timestamp {
        match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => Timestamp::Instant {
                secs: t.timestamp(),
                nanos: t.timestamp_subsec_nanos(),
            },
            Err(_) => Timestamp::Text(text.into()),
        }
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Timestamp::Instant { secs, nanos } => {
                match chrono::DateTime::from_timestamp(*secs, *nanos) {
                    Some(t) => f.write_str(&format_utc(t)),
                    None => write!(f, "{secs}"),
                }
            }
            Timestamp::Text(t) => f.write_str(t),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Timestamp::parse(&String::deserialize(d)?))
    }
}

impl rusqlite::ToSql for CanonicalJson {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

/// Stored as [`Entity::as_str`].
impl rusqlite::ToSql for Entity {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
    }
}

impl rusqlite::ToSql for Timestamp {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Owned(
            rusqlite::types::Value::Text(self.to_string()),
        ))
    }
}

/// A stable 64-bit hash (XXH3, seed 0) of canonical JSON: stored in the database, so it
/// must not change between builds or platforms, unlike std's hasher. (FNV-1a, byte by
/// byte, cost a tenth of an unchanged re-sync.)
pub fn content_hash(text: &str) -> i64 {
    twox_hash::XxHash3_64::oneshot(text.as_bytes()) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_text(ts: &str) -> String {
        utc(Some(ts)).map(|t| t.to_string()).unwrap_or_default()
    }

    #[test]
    fn offsets_normalise_to_the_same_instant() {
        assert_eq!(
            utc_text("2026-03-01T14:00:00+02:00"),
            "2026-03-01T12:00:00Z"
        );
        assert_eq!(utc_text("2026-03-01T12:00:00Z"), "2026-03-01T12:00:00Z");
        assert_eq!(
            utc_text("2026-03-01T07:30:00.250-04:30"),
            "2026-03-01T12:00:00.250Z"
        );
        assert_eq!(utc_text("not a time"), "not a time");
        assert_eq!(utc(None), None);
        let json = serde_json::to_string(&utc(Some("2026-03-01T14:00:00+02:00"))).unwrap();
        assert_eq!(json, "\"2026-03-01T12:00:00Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(Some(back), utc(Some("2026-03-01T12:00:00Z")));
    }

    #[test]
    fn only_a_real_instant_in_deleted_at_is_a_removal() {
        assert!(is_soft_deleted(Some("2026-03-01T14:00:00+02:00")));
        assert!(is_soft_deleted(Some("1970-01-01T00:00:00Z")));
        assert!(!is_soft_deleted(None));
        assert!(!is_soft_deleted(Some("0001-01-01T00:00:00Z")));
        assert!(!is_soft_deleted(Some("")));
        assert!(!is_soft_deleted(Some("yesterday")));
    }

    #[test]
    fn reordered_lists_give_the_same_json() {
        let user = |tags: Vec<i64>| OrganizationUser {
            id: Some(7),
            tags: tags
                .into_iter()
                .map(|id| crate::api::models::Tag {
                    id: Some(id),
                    label: Some(format!("t{id}")),
                    color: None,
                })
                .collect(),
            ..Default::default()
        };
        let mut a = OrgSnapshot::default();
        a.add_user(user(vec![3, 1, 2]), None).unwrap();
        let mut b = OrgSnapshot::default();
        b.add_user(user(vec![2, 3, 1]), None).unwrap();
        let ja: Vec<String> = a.rows().map(|r| r.value.canonical_json()).collect();
        let jb: Vec<String> = b.rows().map(|r| r.value.canonical_json()).collect();
        assert_eq!(ja, jb);
    }

    #[test]
    fn a_team_seen_twice_keeps_only_its_later_members() {
        let team = |members: &[i64]| Team {
            id: Some(5),
            users: members
                .iter()
                .map(|&u| crate::api::models::GroupUser {
                    organization_user_id: Some(u),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let mut s = OrgSnapshot::default();
        s.add_team(team(&[1, 2]), None).unwrap();
        s.add_team(
            Team {
                id: Some(6),
                ..team(&[1])
            },
            None,
        )
        .unwrap();
        s.add_team(team(&[2, 3]), None).unwrap();
        let keys: Vec<(i64, i64)> = s.memberships.keys().copied().collect();
        assert_eq!(keys, vec![(5, 2), (5, 3), (6, 1)]);
        s.remove_group(5);
        assert_eq!(
            s.memberships.keys().copied().collect::<Vec<_>>(),
            vec![(6, 1)]
        );
    }

    #[test]
    fn json_objects_serialize_with_sorted_keys() {
        // Canonical JSON relies on serde_json's map being sorted (no `preserve_order`
        // feature anywhere in the build). If a dependency ever turns it on, this fails.
        let v: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        assert_eq!(
            CanonicalJson::from_value(&v).as_str(),
            r#"{"a":{"c":3,"d":2},"b":1}"#
        );
    }

    #[test]
    fn a_record_hashes_as_its_canonical_json() {
        let mut s = OrgSnapshot::default();
        let user = OrganizationUser {
            id: Some(7),
            name: Some("Zoë \"quoted\" 🙂".into()),
            permissions: Some(serde_json::json!({"b": 1, "a": [true, null]})),
            ..Default::default()
        };
        s.add_user(user, None).unwrap();
        let rows: Vec<_> = s.rows().collect();
        assert!(!rows.is_empty());
        // The buffer holds the previous record's JSON (longer, then shorter) when the next is written.
        let long_rate = RateRecord {
            organization_user_id: 1,
            hourly_rate: None,
            currency: Some("x".repeat(4096)),
            start_at: None,
            end_at: None,
            workspace_id: None,
            workspace_rate_id: None,
            workspace_user_rate_id: None,
        };
        let long = RecordRef::Rate(&long_rate);
        for row in rows {
            assert!(long.canonical_json().len() > 4096);
            assert_eq!(
                row.value.content_hash(),
                content_hash(&row.value.canonical_json())
            );
            let json = row.value.canonical_json();
            assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&json).is_ok_and(|v| v.is_object()),
                "{json}"
            );
        }
    }

    #[test]
    fn a_list_of_strings_is_the_json_of_its_value() {
        for items in [
            vec![],
            vec!["focus".to_string()],
            vec!["a\"b".into(), "é🙂".into()],
        ] {
            let direct = CanonicalJson::from_strings(&items);
            let via_value = CanonicalJson::from_value(&serde_json::Value::from(items.clone()));
            assert_eq!(direct, via_value, "{items:?}");
        }
    }

    #[test]
    fn the_content_hash_is_xxh3_of_the_text() {
        // Stored hashes must stay what they are: pin the algorithm with known values.
        assert_eq!(content_hash("") as u64, 0x2d06_8005_38d3_94c2);
        assert_ne!(content_hash("{\"a\":1}"), content_hash("{\"a\":2}"));
    }

    #[test]
    fn a_record_without_id_is_an_error() {
        let mut s = OrgSnapshot::default();
        let err = s.add_user(OrganizationUser::default(), None).unwrap_err();
        assert!(err.to_string().contains("`id`"), "{err}");
    }

    #[test]
    fn entity_ids_round_trip() {
        for key in [
            EntityKey::new(Entity::User, 42),
            EntityKey::membership(5, 9),
        ] {
            assert_eq!(EntityKey::parse(key.entity, &key.entity_id()), Some(key));
        }
    }
}

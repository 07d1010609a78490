//! API answers → the mirror's records: an [`OrgSnapshot`] of everything one pull saw,
//! each answer normalised into the model's records as it arrives (see `model` for what
//! normalised means) and, built against what the mirror holds, reduced to its key when it
//! matches the stored version (the bookkeeping is `baseline.rs`'s).

mod baseline;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::api::models::{CustomFieldValue, MemberCustomFields, OrganizationUser, Role, Team};
use crate::model::{
    is_soft_deleted, utc, CanonicalJson, Entity, EntityKey, GhostRecord, GroupRecord,
    GroupWorkspaceRecord, Kept, MembershipRecord, PermissionRecord, RateRecord, RecordRef,
    RoleRecord, SelectedOptionRecord, StoredState, TagRecord, UserCustomFieldRecord, UserRecord,
    UserWorkspaceRecord,
};
use baseline::Baseline;

/// Everything one pull saw, normalised and keyed. Built only from a complete pull.
///
/// Built [`OrgSnapshot::against`] what the mirror holds, a record whose canonical JSON
/// hashes to the stored version is not kept: only its key is ([`OrgSnapshot::unchanged`]). A
/// re-sync then holds the keys of the organization plus what changed, not a copy of
/// all of it. What changed, and what is gone, is still decided only by `diff` once
/// every page has arrived.
#[derive(Debug, Clone, Default)]
pub struct OrgSnapshot {
    // Records are boxed: a B-tree node has room for eleven values and a pull, adding in key
    // order, leaves most nodes about half full, which costs more than a pointer each.
    pub roles: BTreeMap<i64, Box<Kept<RoleRecord>>>,
    pub groups: BTreeMap<i64, Box<Kept<GroupRecord>>>,
    pub users: BTreeMap<i64, Box<Kept<UserRecord>>>,
    pub memberships: BTreeMap<(i64, i64), Box<MembershipRecord>>,
    pub rates: BTreeMap<i64, Box<RateRecord>>,
    /// Custom field values by (organization user, custom field).
    pub custom_fields: BTreeMap<(i64, i64), Box<UserCustomFieldRecord>>,
    /// Workspace names seen in users and groups (not tracked as history).
    pub workspace_names: BTreeMap<i64, String>,
    /// What the pull matched against the mirror, or could not read.
    baseline: Baseline,
    /// The workspace whose custom fields this pull mirrors, and what it saw of them.
    custom_field_pull: Option<CustomFieldPull>,
}

/// What a pull saw of the members of the custom fields' workspace.
#[derive(Debug, Clone, Default)]
struct CustomFieldPull {
    workspace_id: i64,
    /// Users whose record (in the users pull) lists the workspace.
    members: BTreeSet<i64>,
    /// Members the custom fields pull spoke for: every value of theirs it did not list is gone.
    spoken_for: BTreeSet<i64>,
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
                self.roles
                    .insert(record.role_id, Box::new(Kept { record, unknown }));
            }
        }
        Ok(())
    }

    /// A snapshot that keeps only what differs from `baseline` (see the type's docs).
    pub fn against(baseline: Arc<StoredState>) -> OrgSnapshot {
        OrgSnapshot {
            baseline: Baseline::new(baseline),
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
        let same = self.baseline.matches(key, record, unknown);
        if same {
            match key.entity {
                Entity::Role => drop(self.roles.remove(&key.id)),
                Entity::Group => drop(self.groups.remove(&key.id)),
                Entity::User => drop(self.users.remove(&key.id)),
                Entity::GroupMembership => drop(self.memberships.remove(&(key.id, key.sub_id))),
                Entity::UserRate => drop(self.rates.remove(&key.id)),
                Entity::UserCustomField => drop(self.custom_fields.remove(&(key.id, key.sub_id))),
            }
        }
        same
    }

    /// Entities the pull saw unchanged (only against a stored state), in key order: seen,
    /// with no record kept.
    pub fn unchanged(&self) -> impl Iterator<Item = &EntityKey> + '_ {
        self.baseline.unchanged()
    }

    /// The users and groups quarantined this run (see [`OrgSnapshot::quarantine`]).
    pub fn quarantined(&self) -> impl Iterator<Item = &EntityKey> + '_ {
        self.baseline.quarantined()
    }

    /// Whether this user or group was quarantined this run.
    pub fn is_quarantined(&self, key: &EntityKey) -> bool {
        self.baseline.is_quarantined(key)
    }

    /// Whether the pull saw this entity (changed or not).
    pub fn has(&self, key: &EntityKey) -> bool {
        self.baseline.saw_unchanged(key)
            || match key.entity {
                Entity::Role => self.roles.contains_key(&key.id),
                Entity::Group => self.groups.contains_key(&key.id),
                Entity::User => self.users.contains_key(&key.id),
                Entity::GroupMembership => self.memberships.contains_key(&(key.id, key.sub_id)),
                Entity::UserRate => self.rates.contains_key(&key.id),
                Entity::UserCustomField => self.custom_fields.contains_key(&(key.id, key.sub_id)),
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
        self.baseline.quarantine(key, reason);
    }

    /// Keeps a user or group the mirror holds at its stored version, seen unchanged (a
    /// user's rate and a group's memberships included): a complete pull missed it, and
    /// nothing has confirmed it gone yet.
    pub fn keep_stored(&mut self, key: EntityKey) {
        self.baseline.hold(&key);
    }

    /// Adds a team: the group, its memberships and workspace names.
    pub fn add_team(&mut self, team: Team, unknown: Option<String>) -> Result<(), RecordError> {
        let id = team
            .id
            .ok_or_else(|| missing("group", "without id".into(), "id"))?;
        if self.is_quarantined(&EntityKey::new(Entity::Group, id)) {
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
                self.memberships.insert(k, Box::new(m));
            }
        }
        let key = EntityKey::new(Entity::Group, id);
        if !self.is_unchanged(key, RecordRef::Group(&record), unknown.as_deref()) {
            self.groups.insert(id, Box::new(Kept { record, unknown }));
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
        if self.is_quarantined(&EntityKey::new(Entity::User, id)) {
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
        if let Some(pull) = &mut self.custom_field_pull {
            // The later copy of a user seen twice says where they are.
            if workspaces.iter().any(|w| w.id == pull.workspace_id) {
                pull.members.insert(id);
            } else {
                pull.members.remove(&id);
            }
        }
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
                    self.rates.insert(id, Box::new(record));
                }
            }
            None => {
                self.rates.remove(&id);
                self.baseline.forget(&EntityKey::new(Entity::UserRate, id));
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
            self.users.insert(id, Box::new(Kept { record, unknown }));
        }
        Ok(())
    }

    /// Removes a user, its rate and its custom field values (memberships come from the groups).
    pub fn remove_user(&mut self, id: i64) {
        self.users.remove(&id);
        self.rates.remove(&id);
        self.baseline.forget(&EntityKey::new(Entity::User, id));
        self.baseline.forget(&EntityKey::new(Entity::UserRate, id));
        self.remove_custom_fields_of(id);
        if let Some(pull) = &mut self.custom_field_pull {
            pull.members.remove(&id);
            pull.spoken_for.remove(&id);
        }
    }

    fn remove_custom_fields_of(&mut self, user: i64) {
        remove_pairs_of(&mut self.custom_fields, user);
        self.baseline.forget_custom_fields_of(user);
    }

    /// This pull mirrors the custom fields of `workspace_id`: the users pull notes who is a
    /// member of it. Call before the users are added.
    pub fn watch_custom_fields(&mut self, workspace_id: i64) {
        self.custom_field_pull = Some(CustomFieldPull {
            workspace_id,
            ..CustomFieldPull::default()
        });
    }

    /// Adds one row of the custom fields pull: the member's values, when the row has them
    /// and the member is a user the users pull listed in the workspace (anyone else is not
    /// this run's to judge). A member seen twice (rows shift between pages) keeps the later
    /// copy's values. Returns whether the row spoke for the member.
    pub fn add_member_custom_fields(
        &mut self,
        member: MemberCustomFields,
    ) -> Result<bool, RecordError> {
        const ENTITY: &str = "user_custom_field";
        let id = member
            .id
            .ok_or_else(|| missing(ENTITY, "without id".into(), "id"))?;
        let Some(values) = member.custom_field_values else {
            return Ok(false);
        };
        let user = EntityKey::new(Entity::User, id);
        let listed = self
            .custom_field_pull
            .as_ref()
            .is_some_and(|p| p.members.contains(&id));
        if !listed || self.is_quarantined(&user) || !self.has(&user) {
            return Ok(false);
        }
        let mut records = BTreeMap::new();
        for v in values {
            let record = custom_field_record(id, v)?;
            records.insert(record.custom_field_id, record);
        }
        if let Some(pull) = &mut self.custom_field_pull {
            if !pull.spoken_for.insert(id) {
                self.remove_custom_fields_of(id);
            }
        }
        for (field, record) in records {
            let key = EntityKey::custom_field(id, field);
            if !self.is_unchanged(key, RecordRef::CustomField(&record), None) {
                self.custom_fields.insert((id, field), Box::new(record));
            }
        }
        Ok(true)
    }

    /// Ends the custom fields pull. The values the mirror holds of a member the pull did not
    /// speak for are kept (seen unchanged) while the member is still a user listed in the
    /// workspace, or quarantined: a row skipped by a page shift, or one without values, never
    /// removes them. A member gone from the organization or from the workspace loses them.
    /// Returns the members whose values were kept that way.
    pub fn settle_custom_fields(&mut self) -> usize {
        let Some(pull) = &self.custom_field_pull else {
            return 0;
        };
        let held: BTreeSet<i64> = self
            .baseline
            .stored_keys(Entity::UserCustomField)
            .map(|k| k.id)
            .filter(|u| !pull.spoken_for.contains(u))
            .collect();
        let mut kept = 0;
        for user in held {
            let key = EntityKey::new(Entity::User, user);
            let still = self.is_quarantined(&key)
                || (self.has(&key)
                    && self
                        .custom_field_pull
                        .as_ref()
                        .is_some_and(|p| p.members.contains(&user)));
            if still {
                self.baseline.keep_custom_fields_of(user);
                kept += 1;
            }
        }
        kept
    }

    /// Removes a group and its memberships.
    pub fn remove_group(&mut self, id: i64) {
        self.groups.remove(&id);
        self.baseline.forget(&EntityKey::new(Entity::Group, id));
        self.remove_memberships_of(id);
    }

    fn remove_memberships_of(&mut self, group_id: i64) {
        remove_pairs_of(&mut self.memberships, group_id);
        self.baseline.forget_memberships_of(group_id);
    }

    /// Removes every membership of these users (users confirmed gone: the teams that listed
    /// them were read before they left).
    pub fn remove_memberships_of_users(&mut self, users: &BTreeSet<i64>) {
        if users.is_empty() {
            return;
        }
        self.memberships
            .retain(|&(_, user), _| !users.contains(&user));
        self.baseline.forget_memberships_of_users(users);
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
        let custom_fields = self.custom_fields.iter().map(|(&(u, f), v)| SnapshotRow {
            key: EntityKey::custom_field(u, f),
            value: RecordRef::CustomField(v),
            unknown: None,
        });
        roles
            .chain(groups)
            .chain(users)
            .chain(memberships)
            .chain(rates)
            .chain(custom_fields)
    }

    /// How many records the snapshot keeps (those it saw unchanged are keys only).
    pub fn records(&self) -> usize {
        self.roles.len()
            + self.groups.len()
            + self.users.len()
            + self.memberships.len()
            + self.rates.len()
            + self.custom_fields.len()
    }

    /// Number of entities of each kind.
    pub fn count(&self, entity: Entity) -> usize {
        let unchanged = self.baseline.count(entity);
        unchanged
            + match entity {
                Entity::Role => self.roles.len(),
                Entity::Group => self.groups.len(),
                Entity::User => self.users.len(),
                Entity::GroupMembership => self.memberships.len(),
                Entity::UserRate => self.rates.len(),
                Entity::UserCustomField => self.custom_fields.len(),
            }
    }
}

/// Removes the entries of a map keyed by pairs whose first is `first`.
fn remove_pairs_of<V>(map: &mut BTreeMap<(i64, i64), V>, first: i64) {
    let keys: Vec<(i64, i64)> = map
        .range((first, i64::MIN)..=(first, i64::MAX))
        .map(|(k, _)| *k)
        .collect();
    for k in keys {
        map.remove(&k);
    }
}

/// One value of a member's `custom_field_values`, normalised: the value as text, the
/// selected options sorted by id.
fn custom_field_record(
    user: i64,
    v: CustomFieldValue,
) -> Result<UserCustomFieldRecord, RecordError> {
    let at = || user.to_string();
    let field = v.custom_field_id.ok_or_else(|| {
        missing(
            "user_custom_field",
            at(),
            "custom_field_values[].custom_field_id",
        )
    })?;
    let mut selected_options = Vec::with_capacity(v.selected_options.len());
    for o in v.selected_options {
        let option_id = o.option_id.ok_or_else(|| {
            missing(
                "user_custom_field",
                format!("{user}:{field}"),
                "selected_options[].option_id",
            )
        })?;
        selected_options.push(SelectedOptionRecord {
            option_id,
            option_name: o.option_name,
            is_deleted: o.is_deleted,
        });
    }
    selected_options.sort_by_key(|o| o.option_id);
    selected_options.dedup_by_key(|o| o.option_id);
    let value = match v.value {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text),
        // serde_json's maps are sorted: an object's text is canonical.
        other => Some(other.to_string()),
    };
    Ok(UserCustomFieldRecord {
        organization_user_id: user,
        custom_field_id: field,
        custom_field_name: v.custom_field_name,
        field_type: v.field_type,
        value,
        selected_options,
    })
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
                category_id: p.category_id,
                category_name: p.category_name,
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
            require_group: role.require_group,
            default_for_levels: role
                .default_for_levels
                .map(|levels| CanonicalJson::from_strings(&levels)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_record_without_id_is_an_error() {
        let mut s = OrgSnapshot::default();
        let err = s.add_user(OrganizationUser::default(), None).unwrap_err();
        assert!(err.to_string().contains("`id`"), "{err}");
    }

    /// Quarantine never deletes: what the mirror holds of a user (its rate included) or of
    /// a group (its memberships included) counts as seen, and copies the pull sends later
    /// are not taken.
    #[test]
    fn a_quarantined_user_or_group_keeps_what_the_mirror_holds() {
        use crate::api::models::build::team;
        use crate::diff::{diff, state_of, Scope};
        let user = |id: i64, name: &str| crate::api::models::build::user(id, name, Some(10.0));
        let team = |members: &[i64]| team(100, "Ops", members);
        let mut held = OrgSnapshot::default();
        held.add_user(user(1, "Ann"), None).unwrap();
        held.add_user(user(2, "Bob"), None).unwrap();
        held.add_team(team(&[1, 2]), None).unwrap();
        let stored = Arc::new(state_of(&held));

        let mut s = OrgSnapshot::against(Arc::clone(&stored));
        s.quarantine(EntityKey::new(Entity::User, 1), "bad body".into());
        s.quarantine(EntityKey::new(Entity::Group, 100), "bad body".into());
        // Later copies (renamed, a member gone) are passed over, not taken as changes.
        s.add_user(user(1, "Renamed"), None).unwrap();
        s.add_team(team(&[2]), None).unwrap();
        s.add_user(user(2, "Bob"), None).unwrap();

        let quarantined: Vec<EntityKey> = s.quarantined().copied().collect();
        assert_eq!(
            quarantined,
            vec![
                EntityKey::new(Entity::Group, 100),
                EntityKey::new(Entity::User, 1)
            ]
        );
        assert!(s.is_quarantined(&EntityKey::new(Entity::User, 1)));
        assert!(!s.is_quarantined(&EntityKey::new(Entity::User, 2)));
        let d = diff(&stored, &s, &Scope::FULL);
        assert!(d.is_empty(), "{:?}", d.changes);
    }
}

//! The fake organization: its records, and the changes the server, the handle and the
//! control surface make to them. [`generate`] makes one; [`render`] writes its records in
//! the fake's own wire definitions ([`crate::wire`]).
//!
//! **Generation is a pure function of `(users, seed)`**: the PRNG is our own splitmix64 and
//! the clock is a fake one, so the same inputs give byte-identical responses forever.

pub(crate) mod audit;
mod generate;
mod render;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub use audit::{FakeAuditEvent, AUDIT_USER_ID_OFFSET};
pub(crate) use generate::GenParams;
pub(crate) use render::WithExtra;

/// The first organization user id; ids grow from here.
pub const FIRST_USER_ID: i64 = 100_001;
/// The first group id.
pub const FIRST_GROUP_ID: i64 = 5001;
/// The first custom field's id (`Department`, a select of the first workspace).
pub const FIRST_CUSTOM_FIELD_ID: i64 = 8001;

/// A workspace of the organization.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeWorkspace {
    pub id: i64,
    pub name: String,
}

/// A user's membership of one workspace, with the user's role ids there.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeUserWorkspace {
    pub workspace_id: i64,
    pub workspace_user_id: i64,
    pub focus_role_id: i64,
    pub track_role_id: i64,
    pub work_role_id: i64,
    pub toggl_products: Vec<String>,
}

/// A tag on a user.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeTag {
    pub id: i64,
    pub label: String,
    pub color: String,
}

/// A user's current rate.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeRate {
    pub hourly_rate: f64,
    pub currency: String,
    pub start_at: DateTime<Utc>,
    pub workspace_id: i64,
    pub workspace_rate_id: i64,
    pub workspace_user_rate_id: i64,
}

/// An organization user.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeUser {
    pub id: i64,
    pub user_account_id: i64,
    pub user_id: String,
    pub name: String,
    pub email: String,
    pub active: bool,
    pub admin: bool,
    pub owner: bool,
    pub joined: bool,
    pub invite_sent: bool,
    pub two_fa_enabled: bool,
    pub can_edit_personal_details: bool,
    pub account_locked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub workspaces: Vec<FakeUserWorkspace>,
    pub tags: Vec<FakeTag>,
    pub rate: Option<FakeRate>,
    pub working_hours: Option<f64>,
    /// The groups the user is a member of; kept equal to the groups' member lists.
    pub groups: BTreeSet<i64>,
    /// The user's custom field values by custom field id (fields of any workspace).
    pub custom_values: BTreeMap<i64, FakeCustomValue>,
}

/// A custom field of a workspace (entity type `user`).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCustomField {
    pub id: i64,
    pub workspace_id: i64,
    pub name: String,
    /// `text`, `number`, `date`, `checkbox`, `select`, `multi_select`.
    pub field_type: String,
    pub options: Vec<FakeCustomFieldOption>,
}

/// An option of a select or multi-select custom field.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCustomFieldOption {
    pub id: i64,
    pub name: String,
    /// Deleted from the field; members who had it selected keep it, marked `is_deleted`.
    pub deleted: bool,
}

/// A member's value of one custom field: the JSON `value` and, for the select types, the
/// options selected.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCustomValue {
    pub value: Value,
    pub option_ids: Vec<i64>,
}

/// A user's membership of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMember {
    pub user_group_id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A group's link to a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeGroupWorkspace {
    pub workspace_id: i64,
    pub workspace_group_id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A group (a "team" in the teams list).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeGroup {
    pub id: i64,
    pub name: String,
    pub emoji: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Members by organization user id.
    pub members: BTreeMap<i64, FakeMember>,
    pub workspaces: Vec<FakeGroupWorkspace>,
    /// Local ghosts: `(id, name)`.
    pub ghosts: Vec<(i64, String)>,
    /// Members removed softly: still listed, with `deleted_at` set (the seed has the field).
    pub departed: BTreeMap<i64, (FakeMember, DateTime<Utc>)>,
}

/// A permission inside a role.
#[derive(Debug, Clone, PartialEq)]
pub struct FakePermission {
    pub permission_id: i64,
    pub name: String,
    pub entity: String,
    pub condition: Option<String>,
    pub description: String,
    /// The published spec's permission category.
    pub category_id: i64,
    pub category_name: String,
}

/// An organization role.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeRole {
    pub role_id: i64,
    pub code: String,
    pub name: String,
    /// Wire name `type`.
    pub kind: String,
    pub privilege_level: i64,
    pub entity: String,
    pub description: String,
    pub permissions: Vec<FakePermission>,
    /// Only conferred through a group (the published spec's).
    pub require_group: bool,
    /// The levels it is the default at; `None` when it is the default nowhere.
    pub default_for_levels: Option<Vec<String>>,
}

/// The whole fake organization. Users are a `Vec` sorted by id so a page is a slice.
#[derive(Debug, Clone)]
pub struct FakeOrg {
    pub organization_id: i64,
    pub workspaces: Vec<FakeWorkspace>,
    pub users: Vec<FakeUser>,
    pub groups: BTreeMap<i64, FakeGroup>,
    pub roles: Vec<FakeRole>,
    /// The custom fields of the workspaces, by id.
    pub custom_fields: Vec<FakeCustomField>,
    /// The fake clock: mutations stamp `updated_at` with it.
    pub now: DateTime<Utc>,
    /// Extra top-level fields per entity (`user`, `group`, `role`) the models do not know.
    pub extra: BTreeMap<String, Map<String, Value>>,
    /// The audit log of the changes made since the fake started.
    pub(crate) audit: audit::AuditLog,
    next_user_id: i64,
    next_group_id: i64,
    next_id: i64,
    next_permission_id: i64,
}

impl FakeOrg {
    /// A new id for records without an id range of their own (links, memberships, rates).
    pub(crate) fn fresh_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// Index of a user in the sorted `users`.
    pub fn user_index(&self, id: i64) -> Option<usize> {
        self.users.binary_search_by_key(&id, |u| u.id).ok()
    }

    /// The user with this id.
    pub fn user(&self, id: i64) -> Option<&FakeUser> {
        self.user_index(id).map(|i| &self.users[i])
    }

    fn user_mut(&mut self, id: i64) -> Option<&mut FakeUser> {
        self.user_index(id).map(move |i| &mut self.users[i])
    }

    /// Adds `user_id` to `group_id` on both sides; false when either is unknown or already joined.
    pub fn add_member(&mut self, group_id: i64, user_id: i64, at: DateTime<Utc>) -> bool {
        if self.user_index(user_id).is_none() {
            return false;
        }
        let ugid = self.fresh_id();
        let Some(group) = self.groups.get_mut(&group_id) else {
            return false;
        };
        if group.members.contains_key(&user_id) {
            return false;
        }
        group.departed.remove(&user_id);
        group.members.insert(
            user_id,
            FakeMember {
                user_group_id: ugid,
                created_at: at,
                updated_at: at,
            },
        );
        if let Some(u) = self.user_mut(user_id) {
            u.groups.insert(group_id);
        }
        self.record_member("create", group_id, user_id, ugid);
        true
    }

    /// Removes `user_id` from `group_id` on both sides.
    pub fn remove_member(&mut self, group_id: i64, user_id: i64) -> bool {
        let removed = self
            .groups
            .get_mut(&group_id)
            .and_then(|g| g.members.remove(&user_id));
        if let Some(u) = self.user_mut(user_id) {
            u.groups.remove(&group_id);
        }
        match removed {
            Some(member) => {
                self.record_member("delete", group_id, user_id, member.user_group_id);
                true
            }
            None => false,
        }
    }

    /// Adds a user with default settings in the first workspace; returns its id.
    pub fn add_user(&mut self, name: &str, email: &str) -> i64 {
        let id = self.next_user_id;
        self.next_user_id += 1;
        let now = self.now;
        let ws = self.workspaces.first().map(|w| w.id).unwrap_or(0);
        let role = self.roles.last().map(|r| r.role_id).unwrap_or(0);
        let wuid = self.fresh_id();
        let account = self
            .users
            .last()
            .map(|u| u.user_account_id)
            .unwrap_or(3_000_000)
            + 1;
        self.users.push(FakeUser {
            id,
            user_account_id: account,
            user_id: format!("{:016x}", id as u64 ^ 0x5EED),
            name: name.to_string(),
            email: email.to_string(),
            active: true,
            admin: false,
            owner: false,
            joined: true,
            invite_sent: true,
            two_fa_enabled: false,
            can_edit_personal_details: true,
            account_locked_at: None,
            created_at: now,
            updated_at: now,
            workspaces: vec![FakeUserWorkspace {
                workspace_id: ws,
                workspace_user_id: wuid,
                focus_role_id: role,
                track_role_id: role,
                work_role_id: role,
                toggl_products: vec!["focus".to_string()],
            }],
            tags: Vec::new(),
            rate: None,
            working_hours: None,
            groups: BTreeSet::new(),
            custom_values: BTreeMap::new(),
        });
        self.record_user_created(id);
        id
    }

    /// Removes a user and all their memberships.
    pub fn remove_user(&mut self, id: i64) -> bool {
        let Some(i) = self.user_index(id) else {
            return false;
        };
        let leaving = self.users[i].clone();
        self.record_user_deleted(&leaving);
        let user = self.users.remove(i);
        for g in user.groups {
            if let Some(group) = self.groups.get_mut(&g) {
                group.members.remove(&id);
            }
        }
        true
    }

    /// Applies `f` to a user and bumps its `updated_at`.
    /// Records what changed in the audit log.
    pub fn edit_user(&mut self, id: i64, f: impl FnOnce(&mut FakeUser, DateTime<Utc>)) -> bool {
        let now = self.now;
        let Some(u) = self.user_mut(id) else {
            return false;
        };
        let before = u.clone();
        f(u, now);
        u.updated_at = now;
        self.record_user_edit(&before);
        true
    }

    /// Creates a group; returns its id. Unknown user or workspace ids are the caller's to check.
    pub fn create_group(
        &mut self,
        name: &str,
        emoji: Option<&str>,
        members: &[i64],
        workspaces: &[i64],
    ) -> i64 {
        let id = self.next_group_id;
        self.next_group_id += 1;
        let now = self.now;
        self.groups.insert(
            id,
            FakeGroup {
                id,
                name: name.to_string(),
                emoji: emoji.map(str::to_string),
                created_at: now,
                updated_at: now,
                members: BTreeMap::new(),
                workspaces: Vec::new(),
                ghosts: Vec::new(),
                departed: BTreeMap::new(),
            },
        );
        self.set_group_workspaces(id, workspaces);
        self.record_group(id, "create", None);
        for &m in members {
            self.add_member(id, m, now);
        }
        id
    }

    /// Replaces a group's workspace set, keeping the links that stay.
    pub fn set_group_workspaces(&mut self, group_id: i64, workspaces: &[i64]) {
        let now = self.now;
        let mut wanted: Vec<i64> = workspaces.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut fresh: Vec<i64> = Vec::new();
        for _ in &wanted {
            fresh.push(self.fresh_id());
        }
        if let Some(g) = self.groups.get_mut(&group_id) {
            let old = std::mem::take(&mut g.workspaces);
            for (w, new_id) in wanted.into_iter().zip(fresh) {
                match old.iter().find(|x| x.workspace_id == w) {
                    Some(link) => g.workspaces.push(link.clone()),
                    None => g.workspaces.push(FakeGroupWorkspace {
                        workspace_id: w,
                        workspace_group_id: new_id,
                        created_at: now,
                        updated_at: now,
                    }),
                }
            }
        }
    }

    /// Replaces a group's member set, keeping the memberships that stay.
    pub fn set_group_members(&mut self, group_id: i64, members: &[i64]) {
        let now = self.now;
        let current: Vec<i64> = match self.groups.get(&group_id) {
            Some(g) => g.members.keys().copied().collect(),
            None => return,
        };
        for uid in &current {
            if !members.contains(uid) {
                self.remove_member(group_id, *uid);
            }
        }
        for &uid in members {
            self.add_member(group_id, uid, now);
        }
    }

    /// Removes a group and every membership of it.
    pub fn remove_group(&mut self, id: i64) -> bool {
        let Some(group) = self.groups.remove(&id) else {
            return false;
        };
        for uid in group.members.keys() {
            if let Some(u) = self.user_mut(*uid) {
                u.groups.remove(&id);
            }
        }
        self.record_group(id, "delete", Some(&group));
        true
    }

    /// The workspace's name, when it exists.
    pub fn workspace_name(&self, id: i64) -> Option<&str> {
        self.workspaces
            .iter()
            .find(|w| w.id == id)
            .map(|w| w.name.as_str())
    }

    /// The extra fields configured for an entity (empty when none).
    pub fn extra_for(&self, entity: &str) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.extra
            .get(entity)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }
}

/// The changes only the control surface makes.
#[cfg(feature = "control")]
impl FakeOrg {
    /// Applies `f` to a user's custom field values; the user's `updated_at` stays (the values
    /// are not part of the user's record). False when the user is unknown.
    pub fn edit_custom_values(
        &mut self,
        user_id: i64,
        f: impl FnOnce(&mut BTreeMap<i64, FakeCustomValue>),
    ) -> bool {
        let Some(u) = self.user_mut(user_id) else {
            return false;
        };
        let before = u.custom_values.clone();
        f(&mut u.custom_values);
        self.record_custom_values(user_id, &before);
        true
    }

    /// A custom field by id.
    pub fn custom_field_mut(&mut self, id: i64) -> Option<&mut FakeCustomField> {
        self.custom_fields.iter_mut().find(|f| f.id == id)
    }

    /// Removes `user_id` from `group_id` softly: the teams list goes on listing the
    /// membership, with `deleted_at` set to `at`.
    pub fn soft_remove_member(&mut self, group_id: i64, user_id: i64, at: DateTime<Utc>) -> bool {
        let Some(member) = self
            .groups
            .get(&group_id)
            .and_then(|g| g.members.get(&user_id))
            .cloned()
        else {
            return false;
        };
        self.remove_member(group_id, user_id);
        if let Some(g) = self.groups.get_mut(&group_id) {
            g.departed.insert(user_id, (member, at));
        }
        true
    }

    /// Adds a permission to a role; returns its id.
    pub fn add_role_permission(&mut self, role_id: i64, name: &str) -> Option<i64> {
        let pid = self.next_permission_id;
        let (category_id, category_name) = generate::permission_category(name);
        let added = self.edit_role(role_id, |role| {
            role.permissions.push(FakePermission {
                permission_id: pid,
                name: name.to_string(),
                entity: role.entity.clone(),
                condition: None,
                description: format!("Allows {name}"),
                category_id,
                category_name: category_name.to_string(),
            })
        });
        if added {
            self.next_permission_id += 1;
        }
        added.then_some(pid)
    }
}

//! A fake organization's records as the API writes them, in the fake's own wire
//! definitions, each timestamp in UTC or in the offset the control surface sets.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{FakeGroup, FakeOrg, FakeRole, FakeUser};
use crate::options::FakeProfile;
use crate::wire::{
    CustomFieldValue, Ghost, Group, GroupRef, GroupUser, GroupWorkspace, OrganizationUser,
    Permission, Rate, Role, SelectedOption, Tag, Team, UserGroup, UserWorkspace,
};

/// Renders a timestamp as RFC 3339 with a `Z`, or in the given offset (same instant).
pub(crate) fn render_time(at: DateTime<Utc>, offset: Option<FixedOffset>) -> String {
    match offset {
        Some(off) => at
            .with_timezone(&off)
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        None => at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

impl FakeOrg {
    /// A member's values of the custom fields of `workspace`, as the users list renders them.
    fn render_custom_values(&self, u: &FakeUser, workspace: i64) -> Vec<CustomFieldValue> {
        self.custom_fields
            .iter()
            .filter(|f| f.workspace_id == workspace)
            .filter_map(|f| {
                let v = u.custom_values.get(&f.id)?;
                let selected_options = v
                    .option_ids
                    .iter()
                    .filter_map(|id| f.options.iter().find(|o| o.id == *id))
                    .map(|o| SelectedOption {
                        is_deleted: o.deleted,
                        option_id: o.id,
                        option_name: o.name.clone(),
                    })
                    .collect();
                Some(CustomFieldValue {
                    custom_field_id: f.id,
                    custom_field_name: f.name.clone(),
                    field_type: f.field_type.clone(),
                    selected_options,
                    value: v.value.clone(),
                })
            })
            .collect()
    }

    /// A user as `GET …/users` lists it; with `custom_fields`, their values of that
    /// workspace's custom fields (`include_custom_fields=true`).
    pub fn render_user(
        &self,
        u: &FakeUser,
        include_rates: bool,
        include_working_hours: bool,
        custom_fields: Option<i64>,
        offset: Option<FixedOffset>,
    ) -> OrganizationUser {
        let t = |at: DateTime<Utc>| Some(render_time(at, offset));
        let groups: Vec<&FakeGroup> = u.groups.iter().filter_map(|g| self.groups.get(g)).collect();
        OrganizationUser {
            two_fa_enabled: Some(u.two_fa_enabled),
            account_locked_at: u.account_locked_at.and_then(t),
            active: Some(u.active),
            admin: Some(u.admin),
            can_edit_personal_details: Some(u.can_edit_personal_details),
            created_at: t(u.created_at),
            custom_field_values: custom_fields.map(|ws| self.render_custom_values(u, ws)),
            deleted_at: None,
            email: Some(u.email.clone()),
            groups: groups
                .iter()
                .map(|g| UserGroup {
                    emoji: g.emoji.clone(),
                    id: Some(g.id),
                    name: Some(g.name.clone()),
                    workspace_ids: g.workspaces.iter().map(|w| w.workspace_id).collect(),
                })
                .collect(),
            id: Some(u.id),
            invite_sent: Some(u.invite_sent),
            joined: Some(u.joined),
            name: Some(u.name.clone()),
            organization_id: Some(self.organization_id),
            owner: Some(u.owner),
            permissions: Some(user_permissions(u)),
            rate: if include_rates {
                u.rate.as_ref().map(|r| Rate {
                    currency: Some(r.currency.clone()),
                    end_at: None,
                    hourly_rate: Some(r.hourly_rate),
                    start_at: t(r.start_at),
                    workspace_id: Some(r.workspace_id),
                    workspace_rate_id: Some(r.workspace_rate_id),
                    workspace_user_rate_id: Some(r.workspace_user_rate_id),
                })
            } else {
                None
            },
            tags: u
                .tags
                .iter()
                .map(|x| Tag {
                    color: Some(x.color.clone()),
                    id: Some(x.id),
                    label: Some(x.label.clone()),
                })
                .collect(),
            updated_at: t(u.updated_at),
            user_account_id: Some(u.user_account_id),
            user_id: Some(u.user_id.clone()),
            working_hours: if include_working_hours {
                u.working_hours
            } else {
                None
            },
            workspaces: u
                .workspaces
                .iter()
                .map(|w| UserWorkspace {
                    focus_role_id: Some(w.focus_role_id),
                    groups: groups
                        .iter()
                        .filter(|g| {
                            g.workspaces
                                .iter()
                                .any(|x| x.workspace_id == w.workspace_id)
                        })
                        .map(|g| GroupRef {
                            emoji: g.emoji.clone(),
                            id: Some(g.id),
                            name: Some(g.name.clone()),
                        })
                        .collect(),
                    id: Some(w.workspace_id),
                    name: self.workspace_name(w.workspace_id).map(str::to_string),
                    toggl_products: w.toggl_products.clone(),
                    track_role_id: Some(w.track_role_id),
                    work_role_id: Some(w.work_role_id),
                    workspace_user_id: Some(w.workspace_user_id),
                })
                .collect(),
        }
    }

    fn render_group_users(&self, g: &FakeGroup, offset: Option<FixedOffset>) -> Vec<GroupUser> {
        let departed = g.departed.iter().map(|(uid, (m, at))| (uid, m, Some(*at)));
        g.members
            .iter()
            .map(|(uid, m)| (uid, m, None))
            .chain(departed)
            .filter_map(|(uid, m, deleted_at)| {
                let u = self.user(*uid)?;
                // The role ids of the user in the group's workspace, else their first one.
                let uw = u
                    .workspaces
                    .iter()
                    .find(|w| {
                        g.workspaces
                            .iter()
                            .any(|x| x.workspace_id == w.workspace_id)
                    })
                    .or_else(|| u.workspaces.first());
                Some(GroupUser {
                    created_at: Some(render_time(m.created_at, offset)),
                    deleted_at: deleted_at.map(|at| render_time(at, offset)),
                    display_name: Some(u.name.clone()),
                    focus_role_id: uw.map(|w| w.focus_role_id),
                    organization_user_id: Some(u.id),
                    track_role_id: uw.map(|w| w.track_role_id),
                    updated_at: Some(render_time(m.updated_at, offset)),
                    user_account_id: Some(u.user_account_id),
                    user_group_id: Some(m.user_group_id),
                    work_role_id: uw.map(|w| w.work_role_id),
                })
            })
            .collect()
    }

    fn render_group_workspaces(
        &self,
        g: &FakeGroup,
        offset: Option<FixedOffset>,
    ) -> Vec<GroupWorkspace> {
        g.workspaces
            .iter()
            .map(|w| GroupWorkspace {
                created_at: Some(render_time(w.created_at, offset)),
                deleted_at: None,
                name: self.workspace_name(w.workspace_id).map(str::to_string),
                updated_at: Some(render_time(w.updated_at, offset)),
                workspace_group_id: Some(w.workspace_group_id),
                workspace_id: Some(w.workspace_id),
            })
            .collect()
    }

    /// A group as the create and update responses return it.
    pub fn render_group(&self, g: &FakeGroup, offset: Option<FixedOffset>) -> Group {
        Group {
            created_at: Some(render_time(g.created_at, offset)),
            deleted_at: None,
            emoji: g.emoji.clone(),
            id: Some(g.id),
            name: Some(g.name.clone()),
            organization_id: Some(self.organization_id),
            updated_at: Some(render_time(g.updated_at, offset)),
            users: self.render_group_users(g, offset),
            workspaces: self.render_group_workspaces(g, offset),
        }
    }

    /// A group as the teams list returns it (with its ghosts on the seed profile only).
    pub fn render_team(
        &self,
        g: &FakeGroup,
        offset: Option<FixedOffset>,
        profile: FakeProfile,
    ) -> Team {
        let ghosts = g
            .ghosts
            .iter()
            .map(|(id, name)| Ghost {
                id: Some(*id),
                name: Some(name.clone()),
            })
            .collect();
        Team {
            created_at: Some(render_time(g.created_at, offset)),
            deleted_at: None,
            emoji: g.emoji.clone(),
            ghosts: (profile == FakeProfile::Seed).then_some(ghosts),
            id: Some(g.id),
            name: Some(g.name.clone()),
            organization_id: Some(self.organization_id),
            updated_at: Some(render_time(g.updated_at, offset)),
            users: self.render_group_users(g, offset),
            workspaces: self.render_group_workspaces(g, offset),
        }
    }

    /// A role as `GET …/roles` lists it (the published spec's fields on the focus profile only).
    pub fn render_role(&self, r: &FakeRole, profile: FakeProfile) -> Role {
        let published = profile == FakeProfile::Focus;
        Role {
            code: Some(r.code.clone()),
            default_for_levels: published.then(|| r.default_for_levels.clone()),
            description: Some(r.description.clone()),
            entity: Some(r.entity.clone()),
            name: Some(r.name.clone()),
            organization_id: Some(self.organization_id),
            permissions: r
                .permissions
                .iter()
                .map(|p| Permission {
                    category_id: published.then_some(p.category_id),
                    category_name: published.then(|| p.category_name.clone()),
                    condition: p.condition.clone(),
                    description: Some(p.description.clone()),
                    entity: Some(p.entity.clone()),
                    name: Some(p.name.clone()),
                    permission_id: Some(p.permission_id),
                })
                .collect(),
            privilege_level: Some(r.privilege_level),
            require_group: published.then_some(r.require_group),
            role_id: Some(r.role_id),
            kind: Some(r.kind.clone()),
        }
    }
}

/// The seed types `permissions` as a bare object; this shape is ours.
fn user_permissions(u: &FakeUser) -> Value {
    let mut m = Map::new();
    m.insert("manage_users".into(), Value::Bool(u.admin || u.owner));
    m.insert("manage_groups".into(), Value::Bool(u.admin || u.owner));
    m.insert("view_rates".into(), Value::Bool(u.admin || u.owner));
    Value::Object(m)
}

/// Serializes a record with extra top-level fields appended (the flatten keeps the bytes
/// identical to the plain model when `extra` is empty).
#[derive(Serialize)]
pub(crate) struct WithExtra<'a, T: Serialize> {
    #[serde(flatten)]
    pub inner: T,
    #[serde(flatten)]
    pub extra: &'a Map<String, Value>,
}

//! Serde models of every response and request body in the upstream reference page
//! (`shared/seed/toggl-focus-organization-api.txt`), with the fields Toggl's published spec
//! adds (a role's `require_group` and `default_for_levels`, a permission's category, a member's
//! `custom_field_values`: [`KnownFields::PUBLISHED_FIELDS`]).
//!
//! The page promises no field, so every field is an `Option` and `null` is accepted.
//! Unknown fields are ignored by these structs; the sync keeps them separately
//! (see [`crate::api::split_unknown_fields`]). The names here are the wire names (the fake
//! has its own definitions of them).

use serde::{Deserialize, Serialize};

/// Body of `POST /organizations/{organization_id}/groups` and `PUT …/groups/{group_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupWrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_users: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspaces: Option<Vec<i64>>,
}

/// A group as listed by "my groups" (`items[]`) and inside a user's `groups`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupRef {
    pub emoji: Option<String>,
    pub id: Option<i64>,
    pub name: Option<String>,
}

/// A member of a group, as the teams and update-group responses list it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupUser {
    pub created_at: Option<String>,
    pub deleted_at: Option<String>,
    pub display_name: Option<String>,
    pub focus_role_id: Option<i64>,
    pub organization_user_id: Option<i64>,
    pub track_role_id: Option<i64>,
    pub updated_at: Option<String>,
    pub user_account_id: Option<i64>,
    pub user_group_id: Option<i64>,
    pub work_role_id: Option<i64>,
}

/// A workspace a group is linked to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupWorkspace {
    pub created_at: Option<String>,
    pub deleted_at: Option<String>,
    pub name: Option<String>,
    pub updated_at: Option<String>,
    pub workspace_group_id: Option<i64>,
    pub workspace_id: Option<i64>,
}

/// A local ghost attached to a team.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ghost {
    pub id: Option<i64>,
    pub name: Option<String>,
}

/// The 200 body of `PUT …/groups/{group_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub created_at: Option<String>,
    pub deleted_at: Option<String>,
    pub emoji: Option<String>,
    pub id: Option<i64>,
    pub name: Option<String>,
    pub organization_id: Option<i64>,
    pub updated_at: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub users: Vec<GroupUser>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub workspaces: Vec<GroupWorkspace>,
}

/// One element of the teams list: a group with its ghosts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub created_at: Option<String>,
    pub deleted_at: Option<String>,
    pub emoji: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub ghosts: Vec<Ghost>,
    pub id: Option<i64>,
    pub name: Option<String>,
    pub organization_id: Option<i64>,
    pub updated_at: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub users: Vec<GroupUser>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub workspaces: Vec<GroupWorkspace>,
}

/// The 200 body of `GET …/teams`: `data/page/rows/total`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct TeamsPage<T = Team> {
    #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
    pub data: Vec<T>,
    pub page: Option<i64>,
    pub rows: Option<i64>,
    pub total: Option<i64>,
}

/// A permission inside a role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Permission {
    /// The published spec's; the reference page has none.
    pub category_id: Option<i64>,
    pub category_name: Option<String>,
    pub condition: Option<String>,
    pub description: Option<String>,
    pub entity: Option<String>,
    pub name: Option<String>,
    pub permission_id: Option<i64>,
}

/// One element of `GET …/roles` `items[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub code: Option<String>,
    /// The levels it is the default at, or `null` (the published spec's; the reference
    /// page has none, nor `require_group`).
    pub default_for_levels: Option<Vec<String>>,
    pub description: Option<String>,
    pub entity: Option<String>,
    pub name: Option<String>,
    pub organization_id: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub permissions: Vec<Permission>,
    pub privilege_level: Option<i64>,
    /// Only conferred through a group.
    pub require_group: Option<bool>,
    pub role_id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A group inside a user's `groups`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserGroup {
    pub emoji: Option<String>,
    pub id: Option<i64>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub workspace_ids: Vec<i64>,
}

/// A user's current rate (`include_rates=true`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub currency: Option<String>,
    pub end_at: Option<String>,
    pub hourly_rate: Option<f64>,
    pub start_at: Option<String>,
    pub workspace_id: Option<i64>,
    pub workspace_rate_id: Option<i64>,
    pub workspace_user_rate_id: Option<i64>,
}

/// A tag on a user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub color: Option<String>,
    pub id: Option<i64>,
    pub label: Option<String>,
}

/// A workspace a user belongs to, with the user's role ids there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserWorkspace {
    pub focus_role_id: Option<i64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub groups: Vec<GroupRef>,
    pub id: Option<i64>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub toggl_products: Vec<String>,
    pub track_role_id: Option<i64>,
    pub work_role_id: Option<i64>,
    pub workspace_user_id: Option<i64>,
}

/// One element of `GET …/users` `items[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrganizationUser {
    #[serde(rename = "2fa_enabled")]
    pub two_fa_enabled: Option<bool>,
    pub account_locked_at: Option<String>,
    pub active: Option<bool>,
    pub admin: Option<bool>,
    pub can_edit_personal_details: Option<bool>,
    pub created_at: Option<String>,
    /// Only with `include_custom_fields=true` (see [`MemberCustomFields`]).
    #[serde(default, deserialize_with = "present_list")]
    pub custom_field_values: Option<Vec<CustomFieldValue>>,
    pub deleted_at: Option<String>,
    pub email: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub groups: Vec<UserGroup>,
    pub id: Option<i64>,
    pub invite_sent: Option<bool>,
    pub joined: Option<bool>,
    pub name: Option<String>,
    pub organization_id: Option<i64>,
    pub owner: Option<bool>,
    /// The seed types this as a bare `object`: kept as JSON.
    pub permissions: Option<serde_json::Value>,
    pub rate: Option<Rate>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tags: Vec<Tag>,
    pub updated_at: Option<String>,
    pub user_account_id: Option<i64>,
    pub user_id: Option<String>,
    pub working_hours: Option<f64>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub workspaces: Vec<UserWorkspace>,
}

/// One member of a workspace with their custom field values: a row of `GET …/users?
/// workspaces=N&include_custom_fields=true` (the published spec's), read for nothing else.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberCustomFields {
    pub id: Option<i64>,
    /// `None` when the row has no `custom_field_values` (the spec omits it when the key may
    /// not see them): the member's values are then not spoken for. `null` is no values.
    #[serde(default, deserialize_with = "present_list")]
    pub custom_field_values: Option<Vec<CustomFieldValue>>,
}

/// A member's value of one custom field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomFieldValue {
    pub custom_field_id: Option<i64>,
    pub custom_field_name: Option<String>,
    pub field_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub selected_options: Vec<SelectedOption>,
    /// Any JSON (text, a number, a date, a list of ids); `Null` when absent.
    #[serde(default)]
    pub value: serde_json::Value,
}

/// An option selected in a custom field value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectedOption {
    pub is_deleted: Option<bool>,
    pub option_id: Option<i64>,
    pub option_name: Option<String>,
}

/// Top-level field names each entity's model knows; anything else the API sends is
/// "unknown" and kept verbatim by the mirror.
pub trait KnownFields {
    /// The wire names of the fields this model reads that the reference page lists.
    const FIELDS: &'static [&'static str];

    /// The fields it reads that only Toggl's published spec has (`check` does not miss them).
    const PUBLISHED_FIELDS: &'static [&'static str] = &[];

    /// Whether the model reads a top-level field of this name.
    fn is_known(name: &str) -> bool {
        Self::FIELDS.contains(&name) || Self::PUBLISHED_FIELDS.contains(&name)
    }

    /// A stand-in for an item whose `id` could be read but whose body could not: a list
    /// of a model that has one quarantines such items instead of failing (see
    /// [`crate::api::decode_page`]); without one, the item fails the list.
    fn stand_in(_id: i64) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

impl KnownFields for OrganizationUser {
    const FIELDS: &'static [&'static str] = &[
        "2fa_enabled",
        "account_locked_at",
        "active",
        "admin",
        "can_edit_personal_details",
        "created_at",
        "deleted_at",
        "email",
        "groups",
        "id",
        "invite_sent",
        "joined",
        "name",
        "organization_id",
        "owner",
        "permissions",
        "rate",
        "tags",
        "updated_at",
        "user_account_id",
        "user_id",
        "working_hours",
        "workspaces",
    ];

    const PUBLISHED_FIELDS: &'static [&'static str] = &["custom_field_values"];

    fn stand_in(id: i64) -> Option<Self> {
        Some(OrganizationUser {
            id: Some(id),
            ..OrganizationUser::default()
        })
    }
}

impl KnownFields for MemberCustomFields {
    /// A user's fields: the rest of the row is the users list's, not unknown.
    const FIELDS: &'static [&'static str] = OrganizationUser::FIELDS;
    const PUBLISHED_FIELDS: &'static [&'static str] = OrganizationUser::PUBLISHED_FIELDS;

    /// A member whose row could not be read: their values are not spoken for (kept).
    fn stand_in(id: i64) -> Option<Self> {
        Some(MemberCustomFields {
            id: Some(id),
            custom_field_values: None,
        })
    }
}

impl KnownFields for Team {
    const FIELDS: &'static [&'static str] = &[
        "created_at",
        "deleted_at",
        "emoji",
        "ghosts",
        "id",
        "name",
        "organization_id",
        "updated_at",
        "users",
        "workspaces",
    ];

    fn stand_in(id: i64) -> Option<Self> {
        Some(Team {
            id: Some(id),
            ..Team::default()
        })
    }
}

impl KnownFields for Role {
    const FIELDS: &'static [&'static str] = &[
        "code",
        "description",
        "entity",
        "name",
        "organization_id",
        "permissions",
        "privilege_level",
        "role_id",
        "type",
    ];

    const PUBLISHED_FIELDS: &'static [&'static str] = &["default_for_levels", "require_group"];
}

/// A list that is present: `null` is an empty one (absent stays `None` by `default`).
fn present_list<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(
        Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

/// Lists arrive as `null` as readily as `[]`; both mean "none".
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

impl KnownFields for GroupRef {
    const FIELDS: &'static [&'static str] = &["emoji", "id", "name"];
}

/// Models as a test writes them, shared by the tests of every layer that reads them
/// (snapshot, diff, store).
#[cfg(test)]
pub(crate) mod build {
    use super::{GroupUser, OrganizationUser, Rate, Team};

    /// A user with an email and, if given, an hourly rate in EUR.
    pub(crate) fn user(id: i64, name: &str, rate: Option<f64>) -> OrganizationUser {
        OrganizationUser {
            id: Some(id),
            name: Some(name.to_string()),
            email: Some(format!("u{id}@example.com")),
            rate: rate.map(|r| Rate {
                hourly_rate: Some(r),
                currency: Some("EUR".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A team with these members (organization user ids).
    pub(crate) fn team(id: i64, name: &str, members: &[i64]) -> Team {
        Team {
            id: Some(id),
            name: Some(name.to_string()),
            users: members
                .iter()
                .map(|&u| GroupUser {
                    organization_user_id: Some(u),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

//! The fake's own wire definitions: the JSON of every record it serves, written from the
//! reference page's field names (`shared/seed/toggl-focus-organization-api.txt`) and Toggl's
//! published spec ("Toggl Focus API"), not from the client's models. A field the client
//! misreads is then misread on one side only, and a test notices.
//!
//! Fields are `Option` where the page shows `null` as a possible value (they serialize as
//! `null`, as the page's examples do); field order is the page's (alphabetical). A field only
//! one of the two documents has is left out of the JSON when `None` (`skip_serializing_if`):
//! the profile that follows the other document never sends it.

use serde::Serialize;

/// A group as listed by "my groups" (`items[]`) and inside a user's `groups`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct GroupRef {
    pub emoji: Option<String>,
    pub id: Option<i64>,
    pub name: Option<String>,
}

/// A member of a group, as the teams and update-group responses list it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct GroupWorkspace {
    pub created_at: Option<String>,
    pub deleted_at: Option<String>,
    pub name: Option<String>,
    pub updated_at: Option<String>,
    pub workspace_group_id: Option<i64>,
    pub workspace_id: Option<i64>,
}

/// A local ghost attached to a team.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct Ghost {
    pub id: Option<i64>,
    pub name: Option<String>,
}

/// The 200 body of `PUT …/groups/{group_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct Group {
    pub created_at: Option<String>,
    pub deleted_at: Option<String>,
    pub emoji: Option<String>,
    pub id: Option<i64>,
    pub name: Option<String>,
    pub organization_id: Option<i64>,
    pub updated_at: Option<String>,
    pub users: Vec<GroupUser>,
    pub workspaces: Vec<GroupWorkspace>,
}

/// One element of the teams list: a group, with its ghosts on the reference page (the
/// published spec's team has none).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct Team {
    pub created_at: Option<String>,
    pub deleted_at: Option<String>,
    pub emoji: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ghosts: Option<Vec<Ghost>>,
    pub id: Option<i64>,
    pub name: Option<String>,
    pub organization_id: Option<i64>,
    pub updated_at: Option<String>,
    pub users: Vec<GroupUser>,
    pub workspaces: Vec<GroupWorkspace>,
}

/// A permission inside a role (`category_*`: the published spec's only).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct Permission {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_name: Option<String>,
    pub condition: Option<String>,
    pub description: Option<String>,
    pub entity: Option<String>,
    pub name: Option<String>,
    pub permission_id: Option<i64>,
}

/// One element of `GET …/roles` (`default_for_levels` and `require_group`: the published
/// spec's only, where both are required: `default_for_levels` is `null` for a role that is
/// the default nowhere, never `[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct Role {
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_for_levels: Option<Option<Vec<String>>>,
    pub description: Option<String>,
    pub entity: Option<String>,
    pub name: Option<String>,
    pub organization_id: Option<i64>,
    pub permissions: Vec<Permission>,
    pub privilege_level: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_group: Option<bool>,
    pub role_id: Option<i64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A group inside a user's `groups`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct UserGroup {
    pub emoji: Option<String>,
    pub id: Option<i64>,
    pub name: Option<String>,
    pub workspace_ids: Vec<i64>,
}

/// A user's current rate (`include_rates=true`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct Tag {
    pub color: Option<String>,
    pub id: Option<i64>,
    pub label: Option<String>,
}

/// A workspace a user belongs to, with the user's role ids there.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct UserWorkspace {
    pub focus_role_id: Option<i64>,
    pub groups: Vec<GroupRef>,
    pub id: Option<i64>,
    pub name: Option<String>,
    pub toggl_products: Vec<String>,
    pub track_role_id: Option<i64>,
    pub work_role_id: Option<i64>,
    pub workspace_user_id: Option<i64>,
}

/// One element of `GET …/users` `items[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct OrganizationUser {
    #[serde(rename = "2fa_enabled")]
    pub two_fa_enabled: Option<bool>,
    pub account_locked_at: Option<String>,
    pub active: Option<bool>,
    pub admin: Option<bool>,
    pub can_edit_personal_details: Option<bool>,
    pub created_at: Option<String>,
    /// Only with `include_custom_fields=true` (the published spec's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_field_values: Option<Vec<CustomFieldValue>>,
    pub deleted_at: Option<String>,
    pub email: Option<String>,
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
    pub tags: Vec<Tag>,
    pub updated_at: Option<String>,
    pub user_account_id: Option<i64>,
    pub user_id: Option<String>,
    pub working_hours: Option<f64>,
    pub workspaces: Vec<UserWorkspace>,
}

/// A member's value of one custom field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct CustomFieldValue {
    pub custom_field_id: i64,
    pub custom_field_name: String,
    pub field_type: String,
    pub selected_options: Vec<SelectedOption>,
    /// Text, a number, a date, a checkbox, an option id or a list of them.
    pub value: serde_json::Value,
}

/// An option selected in a custom field value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct SelectedOption {
    pub is_deleted: bool,
    pub option_id: i64,
    pub option_name: String,
}

/// The body of a group create (`POST …/groups`) or update (`PUT …/groups/{id}`), as the
/// fake reads it: the page's tables say integers, so objects are refused (400).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct GroupWriteBody {
    pub emoji: Option<String>,
    pub name: Option<String>,
    pub organization_users: Option<Vec<i64>>,
    pub workspaces: Option<Vec<i64>>,
}

/// How a list's rows are wrapped: the seed's `{"items": [...]}`, a `{"data": [...]}` with
/// the paging fields chosen, or a bare JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListShape {
    Items,
    Data {
        page: bool,
        per_page: bool,
        rows: bool,
        total: bool,
    },
    Bare,
}

impl ListShape {
    /// `{"data": [...]}` alone.
    pub const DATA: ListShape = ListShape::Data {
        page: false,
        per_page: false,
        rows: false,
        total: false,
    };
    /// The teams list of the reference page and of the published spec: `data`, `page`,
    /// `rows`, `total`.
    pub const TEAMS: ListShape = ListShape::Data {
        page: true,
        per_page: false,
        rows: true,
        total: true,
    };
    /// What public clients of the real API reported: `page`, `per_page`, `data`.
    pub const FOCUS: ListShape = ListShape::Data {
        page: true,
        per_page: true,
        rows: false,
        total: false,
    };
    /// The reported shape with a `total`.
    pub const FOCUS_TOTAL: ListShape = ListShape::Data {
        page: true,
        per_page: true,
        rows: false,
        total: true,
    };
}

/// Where a list page sits: its number, its size, and how many rows match in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFacts {
    pub page: usize,
    pub per_page: usize,
    pub total: usize,
}

#[derive(Serialize)]
struct DataBody<'a, T: Serialize> {
    data: &'a [T],
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_page: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<usize>,
}

#[derive(Serialize)]
struct ItemsBody<'a, T: Serialize> {
    items: &'a [T],
}

/// A list page's JSON in `shape`.
pub fn list_body<T: Serialize>(
    shape: ListShape,
    rows: &[T],
    facts: PageFacts,
) -> serde_json::Result<Vec<u8>> {
    match shape {
        ListShape::Items => serde_json::to_vec(&ItemsBody { items: rows }),
        ListShape::Bare => serde_json::to_vec(rows),
        ListShape::Data {
            page,
            per_page,
            rows: with_rows,
            total,
        } => serde_json::to_vec(&DataBody {
            data: rows,
            page: page.then_some(facts.page),
            per_page: per_page.then_some(facts.per_page),
            rows: with_rows.then_some(rows.len()),
            total: total.then_some(facts.total),
        }),
    }
}

/// The error body of the published spec (`response.Error`): `error`,
/// `error_description`, the `error_values` some errors carry, and a `trace_id` support asks for.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_values: Option<serde_json::Value>,
    pub trace_id: String,
}

/// The `error` word of a status, as a Go API would name it.
pub fn error_word(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        402 => "payment_required",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "request_too_large",
        429 => "too_many_requests",
        _ => "internal_error",
    }
}

/// 32 hex digits, as the real API's trace ids look.
pub fn trace_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// The Go validator's text for a `per_page` above the API's ceiling, as reported verbatim.
pub const PER_PAGE_REFUSAL: &str =
    "Key: 'Pagination.PerPage' Error:Field validation for 'PerPage' failed on the 'max' tag";

/// One event of `GET …/audit-log/{from}/{to}` (the published spec's `models.StreamEvent`:
/// every field required; `meta_data` is a map of strings).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct AuditEvent {
    pub action: String,
    pub created_at: String,
    pub entity_id: i64,
    pub entity_type: String,
    pub meta_data: std::collections::BTreeMap<String, String>,
    pub new_value: serde_json::Map<String, serde_json::Value>,
    pub old_value: serde_json::Map<String, serde_json::Value>,
    pub organization_id: i64,
    pub product_id: i64,
    pub project_id: i64,
    pub user_id: i64,
    pub workspace_id: i64,
}

/// A person an audit answer names (`auditlog.UserSummary`), keyed by the events' `user_id`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct AuditUserSummary {
    pub email: String,
    pub id: i64,
    pub name: String,
    pub user_account_id: i64,
}

/// A group an audit answer names (`auditlog.GroupSummary`); `user_ids` in the events'
/// `user_id` space.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct AuditGroupSummary {
    pub group_id: i64,
    pub name: String,
    pub user_ids: Vec<i64>,
}

/// A workspace an audit answer names (`auditlog.WorkspaceSummary`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct AuditWorkspaceSummary {
    pub id: i64,
    pub name: String,
}

/// The 200 body of `GET …/audit-log/{from}/{to}` (`auditlog.Response`: every map
/// required, empty when it names nothing).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct AuditLogPage {
    pub client_summaries: serde_json::Map<String, serde_json::Value>,
    pub custom_field_option_summaries: serde_json::Map<String, serde_json::Value>,
    pub custom_field_summaries: serde_json::Map<String, serde_json::Value>,
    pub events: Vec<AuditEvent>,
    pub group_summaries: std::collections::BTreeMap<String, AuditGroupSummary>,
    pub project_summaries: serde_json::Map<String, serde_json::Value>,
    pub task_summaries: serde_json::Map<String, serde_json::Value>,
    pub user_summaries: std::collections::BTreeMap<String, AuditUserSummary>,
    pub workspace_summaries: std::collections::BTreeMap<String, AuditWorkspaceSummary>,
}

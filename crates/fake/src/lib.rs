//! The fake Focus API: a deterministic organization served over HTTP with the seed's
//! endpoints, auth, paging and quota headers.
//!
//! `orgmirror demo` and `orgmirror fake-api` serve it plain: a [`FakeHandle`] reads the
//! organization and changes it in the few ways the demo and the benchmark need. The tests
//! build it with the `control` feature (orgmirror's dev-dependency), which adds the control
//! surface (`control/`): every change to the organization, the server's knobs, injected
//! faults and the request log. The `orgmirror` binary is built without it.
//!
//! This crate does not depend on `orgmirror`: it renders its answers from its own wire
//! definitions ([`wire`]) and cannot name the client's models, so that a field the client
//! misreads shows up as a failing test instead of being misread on both sides.
//!
//! Two profiles ([`FakeProfile`]):
//! - **`Focus`** (the default: `demo`, the tests, `bench`) answers as Toggl's published spec
//!   ("Toggl Focus API") says, where public clients of the real API reported nothing else:
//!   `Authorization: Bearer toggl_sk_…` ([`FakeOptions::api_key`]) accepted beside the seed's
//!   Basic credentials (`<token>:api_token`, `<email>:<password>`); any other key or scheme is
//!   **401**; `per_page` above 100 is **400** with the Go validator's JSON; every error body
//!   is JSON `{"error", "error_description", "trace_id"}`. Users, roles and groups/me are
//!   **bare JSON arrays**, which announce no total, so a users pull ends at a short or empty
//!   page; teams are `{"data", "page", "rows", "total"}` and a team has **no `ghosts`**. Roles
//!   carry `default_for_levels` (`null` for a role that is the default nowhere) and
//!   `require_group`, their permissions `category_id` and `category_name`; `type` is owner,
//!   admin, manager or guest. The users list filters by `workspaces=N` (the comma form; the
//!   `workspaces[]` form is an unknown parameter, ignored) and, with
//!   `include_custom_fields=true`, adds each member's `custom_field_values` of that one
//!   workspace (anything but exactly one workspace is a 400).
//! - **`Seed`** answers exactly as the reference page shows: `items` for users, roles and
//!   groups/me, `data/page/rows/total` for teams with their `ghosts`, roles without the
//!   published fields, `workspaces[]` filters, no custom fields (`include_custom_fields` is an
//!   unknown parameter), plain-text errors, 403 for refused credentials, `per_page` silently
//!   capped by `per_page_cap`.
//!
//! The organization has a few custom fields in its first workspace, one of each kind (select,
//! text, select, multi-select with a deleted option, number, date), with values for most
//! members; [`FakeHandle`] sets, clears and renames them. Changing a value does not change
//! the user's `updated_at`.
//!
//! Filters that take several values (`org_user_ids`, `user_account_ids`, `workspaces`,
//! `groups`, `roles`, `tag_ids`, `toggl_products`, `active_status` on users; `group_ids` on
//! teams) are honoured in one form only ([`ArrayFilters`]): comma-separated on focus, as the
//! published spec names them (`org_user_ids=1,2,3`), `name[]=…` repeated on seed, as the
//! reference page does; the other form is an unknown parameter, ignored (the whole list
//! comes back). [`FakeHandle::set_array_filters`] makes a server that honours neither.
//!
//! Keys expire as a Focus key does when asked ([`FakeOptions::key_expires_after`],
//! [`FakeHandle::expire_key_after`]: after N requests or N seconds): then every request with
//! the key or the token gets 401 `API key expired` (the seed profile's 403 text names the
//! reason); a login never expires. A new key ([`FakeHandle::set_api_key`],
//! [`FakeHandle::set_credentials`]) revokes the old one (401 `API key revoked`) and starts
//! its expiry afresh.
//!
//! A plan can lack rates, working hours or custom fields ([`FakeOptions::plan_lacks`],
//! `--plan-lacks`): a users request asking for one (`include_rates=true`, …) gets 402
//! `<feature> feature not available on the plan` as a JSON error without quota headers
//! (with a quota on, its headers say requests are left), as the published spec has it.
//! Error bodies carry `error_values` where the spec gives them: a group created without a
//! name is 400 `required_fields_missing` with `{"fields": ["name"], "is_deletion": false}`.
//!
//! Tests can force any envelope per list ([`FakeHandle::set_list_shape`]) and the Track v9
//! paging headers `X-Records`, `X-Pages`, `X-Page`, `X-Page-Size`
//! ([`FakeHandle::set_paging_headers`], one by one with [`FakeHandle::send_paging_headers`]).
//!
//! Choices where the seed is silent (documented here so the client work can rely on them):
//! - `DELETE …/groups/{id}` answers 200 with an **empty body**.
//! - `GET …/teams` does not filter by `workspace_id`: the parameter is only the seed's
//!   "permission check" (an id that is not a workspace of the organization gives 403).
//! - Error bodies are `text/plain` (seed) or the JSON above (focus); an injected
//!   [`FaultKind::Status`] is sent verbatim as text on both. Unknown paths give 404, wrong
//!   methods 405.
//! - `GET …/users` ignores `pinned_ids`.
//! - Group membership changes bump the group's `updated_at`, not the user's.
//!
//! The organization keeps an **audit log** (`org/audit.rs` names its entity types and
//! actions; `server/audit.rs` serves it): every change the fake makes is an event, made by
//! the owner through the API's write endpoints and by the member [`FakeHandle::set_actor`]
//! names (default: the owner) through the handle, stamped with the wall clock. It is served
//! at `GET /organizations/{id}/audit-log/{from}/{to}` on both profiles, as Toggl's published
//! spec describes it; [`AuditLogMode`] (`--audit-log`) makes it 404, 403 or 503, and
//! [`AuditBacklog`] gives it a generated history before the fake started.

mod cli;
#[cfg(feature = "control")]
mod control;
mod handle;
mod options;
mod org;
mod server;
#[cfg(test)]
mod tests;
pub mod wire;

pub use cli::serve_cli;
#[cfg(feature = "control")]
pub use control::{Fault, FaultKind, LoggedRequest, Mutation, REQUEST_LOG_MAX};
pub use handle::{FakeHandle, GroupInfo, OrgCounts, UserInfo};
pub use options::{
    ArrayFilters, AuditBacklog, AuditLogMode, FakeOptions, FakeProfile, KeyExpiry, PagingHeader,
    PlanFeature, QuotaConfig, UnknownValue,
};
pub use org::{
    FakeAuditEvent, FakeCustomField, FakeCustomFieldOption, FakeCustomValue, FakeGroup,
    FakeGroupWorkspace, FakeMember, FakePermission, FakeRate, FakeRole, FakeTag, FakeUser,
    FakeUserWorkspace, FakeWorkspace, AUDIT_USER_ID_OFFSET, FIRST_CUSTOM_FIELD_ID, FIRST_GROUP_ID,
    FIRST_USER_ID,
};
pub use server::{
    FakeServer, Route, AUDIT_FORBIDDEN, AUDIT_PAGE_NUMBER_MAX, AUDIT_PAGE_SIZE_MAX,
    AUDIT_UNAVAILABLE,
};
pub use wire::{ListShape, PER_PAGE_REFUSAL};

/// The Focus API key the fake accepts by default (as `Authorization: Bearer …`).
pub const DEMO_API_KEY: &str = "toggl_sk_demo";

/// The `error_description` of a 401 for a key that ran out ([`KeyExpiry`]).
pub const KEY_EXPIRED: &str = "API key expired";
/// The `error_description` of a 401 for a key a newer one replaced.
pub const KEY_REVOKED: &str = "API key revoked";

/// The most rows the Focus profile lets `per_page` ask for; more is a 400.
pub const FOCUS_PER_PAGE_MAX: usize = 100;

/// The login (and the owner's e-mail) of the fake organization by default.
pub const DEMO_EMAIL: &str = "demo@example.com";

/// The most users a fake organization holds (it lives in memory, whole).
pub const MAX_USERS: usize = 1_000_000;

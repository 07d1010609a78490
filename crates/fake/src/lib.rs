//! The built-in fake Focus API: a deterministic organization served over HTTP with the
//! seed's endpoints, auth, paging and quota headers, plus a control surface
//! ([`FakeHandle`]) to change the organization, inject faults and read the request log.
//!
//! Used by the tests, `orgmirror demo`, `orgmirror fake-api` and the benchmarks.
//!
//! It renders its answers from its own wire definitions ([`wire`]), never with the client's
//! models, so that a field the client misreads shows up as a failing test instead of being
//! misread on both sides.
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

mod org;
mod server;
#[cfg(test)]
mod tests;
pub mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Utc};

pub use org::{
    FakeCustomField, FakeCustomFieldOption, FakeCustomValue, FakeGroup, FakeGroupWorkspace,
    FakeMember, FakePermission, FakeRate, FakeRole, FakeTag, FakeUser, FakeUserWorkspace,
    FakeWorkspace, FIRST_CUSTOM_FIELD_ID, FIRST_GROUP_ID, FIRST_USER_ID,
};
use org::{FakeOrg, GenParams};
pub use wire::{ListShape, PER_PAGE_REFUSAL};

/// The Focus API key the fake accepts by default (as `Authorization: Bearer …`).
pub const DEMO_API_KEY: &str = "toggl_sk_demo";

/// The `error_description` of a 401 for a key that ran out ([`KeyExpiry`]).
pub const KEY_EXPIRED: &str = "API key expired";
/// The `error_description` of a 401 for a key a newer one replaced.
pub const KEY_REVOKED: &str = "API key revoked";

/// The most rows the Focus profile lets `per_page` ask for; more is a 400.
pub const FOCUS_PER_PAGE_MAX: usize = 100;

/// Which API the fake behaves as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FakeProfile {
    /// As public clients of the real Focus API report it (see the module doc).
    #[default]
    Focus,
    /// Exactly as the reference page shows it.
    Seed,
}

impl std::str::FromStr for FakeProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "focus" => Ok(FakeProfile::Focus),
            "seed" => Ok(FakeProfile::Seed),
            other => Err(format!("unknown profile `{other}` (focus or seed)")),
        }
    }
}

/// How the filters that take several values (`org_user_ids`, `group_ids`, `workspaces`,
/// …) must be written to be honoured; the other form is an unknown parameter, ignored
/// as a server ignores one (the whole list comes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayFilters {
    /// `org_user_ids=1,2,3`, as the published spec names them (focus).
    Comma,
    /// `org_user_ids[]=1&org_user_ids[]=2`, as the reference page does (seed).
    Brackets,
    /// Neither form: every such filter is ignored.
    Ignored,
}

/// A Track v9 paging header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingHeader {
    /// `X-Records`: the rows of the whole list.
    Records,
    /// `X-Pages`: its pages at this page size.
    Pages,
    /// `X-Page`: this page's number.
    Page,
    /// `X-Page-Size`: the rows a page holds.
    PageSize,
}

/// The envelope of each list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shapes {
    pub(crate) users: ListShape,
    pub(crate) teams: ListShape,
    pub(crate) roles: ListShape,
    pub(crate) my_groups: ListShape,
}

impl Shapes {
    fn of(profile: FakeProfile) -> Shapes {
        match profile {
            FakeProfile::Focus => Shapes {
                users: ListShape::Bare,
                teams: ListShape::TEAMS,
                roles: ListShape::Bare,
                my_groups: ListShape::Bare,
            },
            FakeProfile::Seed => Shapes {
                users: ListShape::Items,
                teams: ListShape::TEAMS,
                roles: ListShape::Items,
                my_groups: ListShape::Items,
            },
        }
    }
}

/// The login (and the owner's e-mail) of the fake organization by default.
pub const DEMO_EMAIL: &str = "demo@example.com";

/// The most users a fake organization holds (it lives in memory, whole).
pub const MAX_USERS: usize = 1_000_000;

/// The most requests the fake's log keeps (it drops the older half when full), so that a
/// long-running `fake-api` does not grow without end.
pub const REQUEST_LOG_MAX: usize = 100_000;

/// How the fake is generated and what it accepts.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Number of organization users (at least 1: the owner).
    pub users: usize,
    /// Seed of the deterministic generator.
    pub seed: u64,
    pub organization_id: i64,
    /// The first workspace's id; further workspaces follow it.
    pub workspace_id: i64,
    /// The most rows a page holds, whatever `per_page` asks.
    pub per_page_cap: usize,
    /// Accepted as Basic `<token>:api_token` and as `Bearer <token>`.
    pub token: String,
    /// Login e-mail; also the owner's e-mail, the "current user" of `groups/me`.
    pub email: String,
    pub password: String,
    /// The request quota; `None` sends no quota headers and never answers 402.
    pub quota: Option<QuotaConfig>,
    /// How the fake behaves (default: as the real Focus API is reported to).
    pub profile: FakeProfile,
    /// The Focus API key accepted as `Authorization: Bearer …` (focus profile).
    pub api_key: String,
    /// Waited before every answer: a slow network, for the paced bench.
    pub latency: Duration,
    /// When the key (the API key and the token) stops being accepted; `None`: never.
    pub key_expires_after: Option<KeyExpiry>,
    /// Features the organization's plan lacks: asking for one is a 402.
    pub plan_lacks: Vec<PlanFeature>,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            users: 50,
            seed: 1,
            organization_id: 1001,
            workspace_id: 2001,
            per_page_cap: 200,
            token: "demo-token".to_string(),
            email: DEMO_EMAIL.to_string(),
            password: "demo-password".to_string(),
            quota: None,
            profile: FakeProfile::Focus,
            api_key: DEMO_API_KEY.to_string(),
            latency: Duration::ZERO,
            key_expires_after: None,
            plan_lacks: Vec::new(),
        }
    }
}

/// A feature a plan may lack, asked for by a parameter of the users list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFeature {
    /// `include_rates=true`.
    Rates,
    /// `include_working_hours=true`.
    WorkingHours,
    /// `include_custom_fields=true`.
    CustomFields,
}

impl PlanFeature {
    /// The query parameter that asks for it.
    pub fn parameter(self) -> &'static str {
        match self {
            PlanFeature::Rates => "include_rates",
            PlanFeature::WorkingHours => "include_working_hours",
            PlanFeature::CustomFields => "include_custom_fields",
        }
    }

    /// As a 402's description names it.
    pub fn name(self) -> &'static str {
        match self {
            PlanFeature::Rates => "rates",
            PlanFeature::WorkingHours => "working_hours",
            PlanFeature::CustomFields => "user_custom_fields",
        }
    }
}

impl std::str::FromStr for PlanFeature {
    type Err = String;
    /// `rates`, `working_hours` or `custom_fields` (`--plan-lacks`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "rates" => Ok(PlanFeature::Rates),
            "working_hours" => Ok(PlanFeature::WorkingHours),
            "custom_fields" => Ok(PlanFeature::CustomFields),
            other => Err(format!(
                "unknown feature `{other}` (rates, working_hours or custom_fields)"
            )),
        }
    }
}

/// When a Focus API key runs out, as its user picked when making it: after this many
/// requests with it, or this many seconds after it became valid. Once spent, every
/// request with it gets 401 `API key expired`; a login (e-mail and password) never expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExpiry {
    /// The key answers this many requests, then is expired.
    Requests(u64),
    /// The key is expired this many seconds after it became valid.
    Seconds(u64),
}

impl std::str::FromStr for KeyExpiry {
    type Err = String;
    /// `N` requests, or `Ns` seconds.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (digits, make): (&str, fn(u64) -> KeyExpiry) = match text.strip_suffix('s') {
            Some(secs) => (secs, KeyExpiry::Seconds),
            None => (text, KeyExpiry::Requests),
        };
        digits
            .parse::<u64>()
            .map(make)
            .map_err(|_| format!("`{s}` is not N (requests) or Ns (seconds)"))
    }
}

/// A request quota: `limit` requests per `window`, announced in the `X-Toggl-Quota-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaConfig {
    pub limit: u32,
    pub window: Duration,
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub at: Instant,
    pub method: String,
    /// The path as requested, e.g. `/api/organizations/1001/users`.
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    pub status: u16,
}

/// Which endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Any,
    Users,
    Teams,
    Roles,
    MyGroups,
    CreateGroup,
    UpdateGroup,
    DeleteGroup,
}

/// A misbehaviour to inject into matching requests.
#[derive(Debug, Clone)]
pub struct Fault {
    pub route: Route,
    /// The `page` query parameter (1 when absent) a request must ask for; `None` = any.
    pub page: Option<u32>,
    /// `Some(n)`: the next `n` matching requests; `None`: every matching request.
    pub times: Option<u32>,
    pub kind: FaultKind,
}

impl Fault {
    /// A fault on every matching request of `route`.
    pub fn new(route: Route, kind: FaultKind) -> Fault {
        Fault {
            route,
            page: None,
            times: None,
            kind,
        }
    }

    /// Restricts the fault to one page.
    pub fn on_page(mut self, page: u32) -> Fault {
        self.page = Some(page);
        self
    }

    /// Restricts the fault to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }
}

/// A mutation run after a response was built (see [`FaultKind::MutateAfter`]).
pub type Mutation = Arc<dyn Fn(&FakeHandle) + Send + Sync>;

/// What a fault does. Faults are checked after quota accounting and before auth.
#[derive(Clone)]
pub enum FaultKind {
    /// This status with this plain-text body (e.g. 500 "internal error", 503).
    Status(u16, String),
    /// An HTML error page (`text/html`) with this status.
    Html(u16),
    /// This status with the real API's JSON error body: `{"error": word,
    /// "error_description": description, "trace_id": <32 hex>}`.
    JsonError {
        status: u16,
        error: String,
        description: String,
    },
    /// 429, with `Retry-After` sent verbatim (seconds or an HTTP date); `None` = no header.
    TooManyRequests { retry_after: Option<String> },
    /// 402 with `X-Toggl-Quota-Remaining: 0` and `X-Toggl-Quota-Resets-In: resets_in`.
    QuotaSpent { resets_in: u64 },
    /// Waits, then answers normally.
    Delay(Duration),
    /// A 200 whose JSON body is cut in half.
    Truncated,
    /// A 200 whose body is not JSON (still labelled `application/json`).
    Malformed,
    /// A 200 whose first record has `"id": "abc"` (`role_id` for roles).
    WrongType,
    /// A 200 of valid JSON at least this many bytes long (a `padding` string field).
    Huge(usize),
    /// A 200 whose headers and first bytes arrive, and the rest never does.
    Hang,
    /// 302 to this `Location`.
    Redirect(String),
    /// Answers as if the request had asked for this page (the `page` field says so too).
    RepeatPage(u32),
    /// Users and teams: every page is full of fresh made-up ids and `total` always runs ahead.
    NeverEnds,
    /// Serves normally, then runs this with the fake's handle, after the response body was
    /// built (so e.g. "remove a user after serving page 1" shifts the later pages).
    MutateAfter(Mutation),
}

impl std::fmt::Debug for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultKind::Status(code, body) => write!(f, "Status({code}, {body:?})"),
            FaultKind::Html(code) => write!(f, "Html({code})"),
            FaultKind::JsonError {
                status,
                error,
                description,
            } => write!(f, "JsonError({status}, {error:?}, {description:?})"),
            FaultKind::TooManyRequests { retry_after } => {
                write!(f, "TooManyRequests {{ retry_after: {retry_after:?} }}")
            }
            FaultKind::QuotaSpent { resets_in } => {
                write!(f, "QuotaSpent {{ resets_in: {resets_in} }}")
            }
            FaultKind::Delay(d) => write!(f, "Delay({d:?})"),
            FaultKind::Truncated => f.write_str("Truncated"),
            FaultKind::Malformed => f.write_str("Malformed"),
            FaultKind::WrongType => f.write_str("WrongType"),
            FaultKind::Huge(n) => write!(f, "Huge({n})"),
            FaultKind::Hang => f.write_str("Hang"),
            FaultKind::Redirect(to) => write!(f, "Redirect({to:?})"),
            FaultKind::RepeatPage(p) => write!(f, "RepeatPage({p})"),
            FaultKind::NeverEnds => f.write_str("NeverEnds"),
            FaultKind::MutateAfter(_) => f.write_str("MutateAfter(..)"),
        }
    }
}

/// A group as [`FakeHandle::group`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfo {
    pub id: i64,
    pub name: String,
    pub emoji: Option<String>,
    pub members: Vec<i64>,
    pub workspaces: Vec<i64>,
}

/// A user as [`FakeHandle::user`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    pub id: i64,
    pub user_account_id: i64,
    pub name: String,
    pub email: String,
    pub active: bool,
    pub hourly_rate: Option<f64>,
    pub currency: Option<String>,
    pub working_hours: Option<f64>,
    pub groups: Vec<i64>,
}

/// How big the organization is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrgCounts {
    pub users: usize,
    pub groups: usize,
    pub roles: usize,
    /// Group memberships in total.
    pub memberships: usize,
    pub workspaces: usize,
}

/// Everything the server and the handle share.
pub(crate) struct FakeState {
    pub(crate) org: FakeOrg,
    pub(crate) per_page_cap: usize,
    pub(crate) utc_offset: Option<FixedOffset>,
    pub(crate) quota: Option<QuotaConfig>,
    /// Start of the current quota window and the requests counted in it.
    pub(crate) quota_window: Option<(Instant, u32)>,
    pub(crate) token: String,
    pub(crate) email: String,
    pub(crate) password: String,
    /// The newest [`REQUEST_LOG_MAX`] requests at most, oldest first.
    pub(crate) requests: Vec<LoggedRequest>,
    /// Requests served and dropped from the log (a long-running `fake-api`).
    pub(crate) requests_dropped: usize,
    /// Active faults with their remaining counts.
    pub(crate) faults: Vec<Fault>,
    pub(crate) profile: FakeProfile,
    pub(crate) api_key: String,
    /// `per_page` above this is refused with the validator's 400 (`None`: capped silently).
    pub(crate) per_page_max: Option<usize>,
    pub(crate) shapes: Shapes,
    /// Which of `X-Records`, `X-Pages`, `X-Page`, `X-Page-Size` list answers carry.
    pub(crate) paging_headers: Vec<PagingHeader>,
    pub(crate) latency: Duration,
    /// When the current key runs out, and the requests it answered since it became valid.
    pub(crate) key_expiry: Option<KeyExpiry>,
    pub(crate) key_uses: u64,
    pub(crate) key_since: Instant,
    /// Keys and tokens replaced by a new one: refused as revoked.
    pub(crate) revoked: Vec<String>,
    /// Features the plan lacks: asking for one is a 402 without the quota's headers.
    pub(crate) plan_lacks: Vec<PlanFeature>,
    /// Which form of the filters that take several values is honoured.
    pub(crate) array_filters: ArrayFilters,
}

impl FakeState {
    /// Logs a request served, dropping the older half of the log when it is full.
    pub(crate) fn log(&mut self, request: LoggedRequest) {
        if self.requests.len() >= REQUEST_LOG_MAX {
            let half = REQUEST_LOG_MAX / 2;
            self.requests.drain(..half);
            self.requests_dropped += half;
        }
        self.requests.push(request);
    }

    /// Whether the current key has run out (see [`KeyExpiry`]).
    pub(crate) fn key_expired(&self) -> bool {
        match self.key_expiry {
            None => false,
            Some(KeyExpiry::Requests(n)) => self.key_uses >= n,
            Some(KeyExpiry::Seconds(n)) => self.key_since.elapsed() >= Duration::from_secs(n),
        }
    }

    /// A new key: the old one is revoked, and the expiry counts from now.
    fn replace_key(&mut self, old: String, new: &str) {
        if !old.is_empty() && old != new && !self.revoked.contains(&old) {
            self.revoked.push(old);
        }
        self.revoked.retain(|k| k != new);
        self.restart_key_clock();
    }

    fn restart_key_clock(&mut self) {
        self.key_uses = 0;
        self.key_since = Instant::now();
    }
}

/// The control surface of a running (or not yet started) fake. Cheap to clone; every
/// method is synchronous and may be called from any thread.
#[derive(Clone)]
pub struct FakeHandle {
    pub(crate) state: Arc<Mutex<FakeState>>,
}

impl FakeHandle {
    /// A fake organization without a server (the server takes a handle).
    pub fn new(opts: &FakeOptions) -> FakeHandle {
        let org = FakeOrg::generate(&GenParams {
            users: opts.users,
            seed: opts.seed,
            organization_id: opts.organization_id,
            workspace_id: opts.workspace_id,
            owner_email: opts.email.clone(),
        });
        FakeHandle {
            state: Arc::new(Mutex::new(FakeState {
                org,
                per_page_cap: opts.per_page_cap.max(1),
                utc_offset: None,
                quota: opts.quota,
                quota_window: None,
                token: opts.token.clone(),
                email: opts.email.clone(),
                password: opts.password.clone(),
                requests: Vec::new(),
                requests_dropped: 0,
                faults: Vec::new(),
                profile: opts.profile,
                api_key: opts.api_key.clone(),
                per_page_max: match opts.profile {
                    FakeProfile::Focus => Some(FOCUS_PER_PAGE_MAX),
                    FakeProfile::Seed => None,
                },
                shapes: Shapes::of(opts.profile),
                paging_headers: Vec::new(),
                latency: opts.latency,
                key_expiry: opts.key_expires_after,
                key_uses: 0,
                key_since: Instant::now(),
                revoked: Vec::new(),
                plan_lacks: opts.plan_lacks.clone(),
                array_filters: match opts.profile {
                    FakeProfile::Focus => ArrayFilters::Comma,
                    FakeProfile::Seed => ArrayFilters::Brackets,
                },
            })),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panicking test thread must not take the fake down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn org<R>(&self, f: impl FnOnce(&mut FakeOrg) -> R) -> R {
        f(&mut self.lock().org)
    }

    // ----- organization mutations -----

    /// Adds an active, joined user in the first workspace, with no rate; returns its id.
    pub fn add_user(&self, name: &str, email: &str) -> i64 {
        self.org(|o| o.add_user(name, email))
    }

    /// Removes a user; they leave every group. False when unknown.
    pub fn remove_user(&self, id: i64) -> bool {
        self.org(|o| o.remove_user(id))
    }

    /// Renames a user. False when unknown.
    pub fn rename_user(&self, id: i64, name: &str) -> bool {
        self.org(|o| o.edit_user(id, |u, _| u.name = name.to_string()))
    }

    /// Changes a user's e-mail. False when unknown.
    pub fn set_email(&self, id: i64, email: &str) -> bool {
        self.org(|o| o.edit_user(id, |u, _| u.email = email.to_string()))
    }

    /// Activates or deactivates a user. False when unknown.
    pub fn set_active(&self, id: i64, active: bool) -> bool {
        self.org(|o| o.edit_user(id, |u, _| u.active = active))
    }

    /// Makes a user an admin or not. False when unknown.
    pub fn set_admin(&self, id: i64, admin: bool) -> bool {
        self.org(|o| o.edit_user(id, |u, _| u.admin = admin))
    }

    /// Adds a user to a group. False when either is unknown or the user is already in it.
    pub fn join_group(&self, group_id: i64, user_id: i64) -> bool {
        self.edit_membership(group_id, |o| {
            let now = o.now;
            o.add_member(group_id, user_id, now)
        })
    }

    /// Removes a user from a group. False when they were not in it.
    pub fn leave_group(&self, group_id: i64, user_id: i64) -> bool {
        self.edit_membership(group_id, |o| o.remove_member(group_id, user_id))
    }

    /// Removes a user from a group softly: the teams list still lists them, with
    /// `deleted_at` set to now. False when they were not in it.
    pub fn soft_leave_group(&self, group_id: i64, user_id: i64) -> bool {
        self.edit_membership(group_id, |o| {
            let now = o.now;
            o.soft_remove_member(group_id, user_id, now)
        })
    }

    /// Applies a membership change; when it changed something, the group's `updated_at`
    /// moves on as the real API's does.
    fn edit_membership(&self, group_id: i64, change: impl FnOnce(&mut FakeOrg) -> bool) -> bool {
        self.org(|o| {
            let done = change(o);
            if done {
                bump_group(o, group_id);
            }
            done
        })
    }

    /// Sets (`Some`) or removes (`None`) a user's rate; a new or changed rate starts now.
    pub fn set_rate(&self, user_id: i64, hourly_rate: Option<f64>, currency: &str) -> bool {
        self.org(|o| {
            let fresh = o.fresh_id();
            o.edit_user(user_id, |u, now| match hourly_rate {
                None => u.rate = None,
                Some(rate) => {
                    let ws = u.workspaces.first().map(|w| w.workspace_id).unwrap_or(0);
                    u.rate = Some(FakeRate {
                        hourly_rate: rate,
                        currency: currency.to_string(),
                        start_at: now,
                        workspace_id: ws,
                        workspace_rate_id: 60_000 + ws,
                        workspace_user_rate_id: fresh,
                    });
                }
            })
        })
    }

    /// Sets or clears a user's working hours.
    pub fn set_working_hours(&self, user_id: i64, hours: Option<f64>) -> bool {
        self.org(|o| o.edit_user(user_id, |u, _| u.working_hours = hours))
    }

    /// Applies any change to a user (bumps `updated_at`). False when unknown.
    pub fn edit_user(&self, user_id: i64, f: impl FnOnce(&mut FakeUser)) -> bool {
        self.org(|o| o.edit_user(user_id, |u, _| f(u)))
    }

    /// Adds an empty group linked to the first workspace; returns its id. An empty emoji
    /// means none.
    pub fn add_group(&self, name: &str, emoji: &str) -> i64 {
        self.org(|o| {
            let ws: Vec<i64> = o.workspaces.first().map(|w| w.id).into_iter().collect();
            let emoji = (!emoji.is_empty()).then_some(emoji);
            o.create_group(name, emoji, &[], &ws)
        })
    }

    /// Renames a group. False when unknown.
    pub fn rename_group(&self, id: i64, name: &str) -> bool {
        self.org(|o| match o.groups.get_mut(&id) {
            Some(g) => {
                g.name = name.to_string();
                true
            }
            None => false,
        }) && self.org(|o| bump_group(o, id))
    }

    /// Removes a group; its members leave it. False when unknown.
    pub fn remove_group(&self, id: i64) -> bool {
        self.org(|o| o.remove_group(id))
    }

    /// Applies any change to a role. False when unknown.
    pub fn edit_role(&self, role_id: i64, f: impl FnOnce(&mut FakeRole)) -> bool {
        self.org(
            |o| match o.roles.iter_mut().find(|r| r.role_id == role_id) {
                Some(r) => {
                    f(r);
                    true
                }
                None => false,
            },
        )
    }

    /// Renames a role. False when unknown.
    pub fn rename_role(&self, role_id: i64, name: &str) -> bool {
        self.edit_role(role_id, |r| r.name = name.to_string())
    }

    /// Changes a role's description. False when unknown.
    pub fn set_role_description(&self, role_id: i64, description: &str) -> bool {
        self.edit_role(role_id, |r| r.description = description.to_string())
    }

    /// Moves a permission of a role to another category. False when either is unknown.
    pub fn set_permission_category(
        &self,
        role_id: i64,
        permission_id: i64,
        category_id: i64,
        category_name: &str,
    ) -> bool {
        let mut found = false;
        self.edit_role(role_id, |r| {
            if let Some(p) = r
                .permissions
                .iter_mut()
                .find(|p| p.permission_id == permission_id)
            {
                p.category_id = category_id;
                p.category_name = category_name.to_string();
                found = true;
            }
        });
        found
    }

    /// Sets a member's value of a custom field that has no options (text, number, date,
    /// checkbox). False when the user or field is unknown, or the field has options.
    pub fn set_custom_field_value(
        &self,
        user_id: i64,
        field_id: i64,
        value: serde_json::Value,
    ) -> bool {
        self.org(|o| {
            let plain = o
                .custom_fields
                .iter()
                .any(|f| f.id == field_id && f.options.is_empty());
            plain
                && o.edit_custom_values(user_id, |values| {
                    values.insert(
                        field_id,
                        FakeCustomValue {
                            value,
                            option_ids: Vec::new(),
                        },
                    );
                })
        })
    }

    /// Selects these options of a select (one) or multi-select field for a member; the
    /// `value` is the option's id, or the list of ids. False when the user, the field or an
    /// option is unknown, or a select gets more than one.
    pub fn select_custom_field_options(
        &self,
        user_id: i64,
        field_id: i64,
        options: &[i64],
    ) -> bool {
        self.org(|o| {
            let Some(field) = o.custom_fields.iter().find(|f| f.id == field_id) else {
                return false;
            };
            let known = options
                .iter()
                .all(|id| field.options.iter().any(|x| x.id == *id));
            let value = match (field.field_type.as_str(), options) {
                ("select", [one]) => serde_json::Value::from(*one),
                ("multi_select", ids) => serde_json::Value::from(ids.to_vec()),
                _ => return false,
            };
            known
                && o.edit_custom_values(user_id, |values| {
                    values.insert(
                        field_id,
                        FakeCustomValue {
                            value,
                            option_ids: options.to_vec(),
                        },
                    );
                })
        })
    }

    /// Clears a member's value of a custom field. False when the user is unknown or had none.
    pub fn clear_custom_field(&self, user_id: i64, field_id: i64) -> bool {
        let mut had = false;
        self.org(|o| {
            o.edit_custom_values(user_id, |values| {
                had = values.remove(&field_id).is_some();
            })
        });
        had
    }

    /// Renames a custom field. False when unknown.
    pub fn rename_custom_field(&self, field_id: i64, name: &str) -> bool {
        self.org(|o| match o.custom_field_mut(field_id) {
            Some(f) => {
                f.name = name.to_string();
                true
            }
            None => false,
        })
    }

    /// Renames an option of a custom field. False when either is unknown.
    pub fn rename_custom_field_option(&self, field_id: i64, option_id: i64, name: &str) -> bool {
        self.org(|o| {
            match o
                .custom_field_mut(field_id)
                .and_then(|f| f.options.iter_mut().find(|x| x.id == option_id))
            {
                Some(option) => {
                    option.name = name.to_string();
                    true
                }
                None => false,
            }
        })
    }

    /// Deletes an option of a custom field: members who had it keep it, `is_deleted`. False
    /// when either is unknown.
    pub fn delete_custom_field_option(&self, field_id: i64, option_id: i64) -> bool {
        self.org(|o| {
            match o
                .custom_field_mut(field_id)
                .and_then(|f| f.options.iter_mut().find(|x| x.id == option_id))
            {
                Some(option) => {
                    option.deleted = true;
                    true
                }
                None => false,
            }
        })
    }

    /// Adds a permission to a role; returns the new permission's id.
    pub fn add_role_permission(&self, role_id: i64, name: &str) -> Option<i64> {
        self.org(|o| o.add_role_permission(role_id, name))
    }

    /// Removes a permission from a role. False when either is unknown.
    pub fn remove_role_permission(&self, role_id: i64, permission_id: i64) -> bool {
        let mut removed = false;
        self.edit_role(role_id, |r| {
            let before = r.permissions.len();
            r.permissions.retain(|p| p.permission_id != permission_id);
            removed = r.permissions.len() != before;
        });
        removed
    }

    /// Makes every record of `entity` (`"user"`, `"group"` or `"role"`) carry an extra
    /// top-level field the models do not know.
    pub fn add_unknown_field(&self, entity: &str, key: &str, value: serde_json::Value) {
        self.org(|o| {
            o.extra
                .entry(entity.to_string())
                .or_default()
                .insert(key.to_string(), value);
        })
    }

    /// Removes all extra fields again.
    pub fn clear_unknown_fields(&self) {
        self.org(|o| o.extra.clear())
    }

    /// Sets the fake clock that mutations stamp `updated_at` with.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.org(|o| o.now = now)
    }

    /// Moves the fake clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.org(|o| o.now += by)
    }

    /// The fake clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.org(|o| o.now)
    }

    // ----- inspection -----

    /// The organization id served.
    pub fn organization_id(&self) -> i64 {
        self.org(|o| o.organization_id)
    }

    /// All user ids, ascending.
    pub fn user_ids(&self) -> Vec<i64> {
        self.org(|o| o.users.iter().map(|u| u.id).collect())
    }

    /// All group ids, ascending.
    pub fn group_ids(&self) -> Vec<i64> {
        self.org(|o| o.groups.keys().copied().collect())
    }

    /// All workspace ids, ascending.
    pub fn workspace_ids(&self) -> Vec<i64> {
        self.org(|o| o.workspaces.iter().map(|w| w.id).collect())
    }

    /// All role ids, ascending.
    pub fn role_ids(&self) -> Vec<i64> {
        self.org(|o| o.roles.iter().map(|r| r.role_id).collect())
    }

    /// The members of a group, ascending (empty when unknown).
    pub fn group_members(&self, group_id: i64) -> Vec<i64> {
        self.org(|o| {
            o.groups
                .get(&group_id)
                .map(|g| g.members.keys().copied().collect())
                .unwrap_or_default()
        })
    }

    /// A group's name, emoji, members and workspaces.
    pub fn group(&self, id: i64) -> Option<GroupInfo> {
        self.org(|o| {
            o.groups.get(&id).map(|g| GroupInfo {
                id: g.id,
                name: g.name.clone(),
                emoji: g.emoji.clone(),
                members: g.members.keys().copied().collect(),
                workspaces: g.workspaces.iter().map(|w| w.workspace_id).collect(),
            })
        })
    }

    /// The main facts of a user.
    pub fn user(&self, id: i64) -> Option<UserInfo> {
        self.org(|o| {
            o.user(id).map(|u| UserInfo {
                id: u.id,
                user_account_id: u.user_account_id,
                name: u.name.clone(),
                email: u.email.clone(),
                active: u.active,
                hourly_rate: u.rate.as_ref().map(|r| r.hourly_rate),
                currency: u.rate.as_ref().map(|r| r.currency.clone()),
                working_hours: u.working_hours,
                groups: u.groups.iter().copied().collect(),
            })
        })
    }

    /// A full copy of a user record.
    pub fn user_record(&self, id: i64) -> Option<FakeUser> {
        self.org(|o| o.user(id).cloned())
    }

    /// A full copy of a role.
    pub fn role(&self, role_id: i64) -> Option<FakeRole> {
        self.org(|o| o.roles.iter().find(|r| r.role_id == role_id).cloned())
    }

    /// Every custom field, by id.
    pub fn custom_fields(&self) -> Vec<FakeCustomField> {
        self.org(|o| o.custom_fields.clone())
    }

    /// A member's custom field values by field id (empty when unknown).
    pub fn custom_field_values(
        &self,
        user_id: i64,
    ) -> std::collections::BTreeMap<i64, FakeCustomValue> {
        self.org(|o| {
            o.user(user_id)
                .map(|u| u.custom_values.clone())
                .unwrap_or_default()
        })
    }

    /// How many users, groups, roles, memberships and workspaces there are.
    pub fn counts(&self) -> OrgCounts {
        self.org(|o| OrgCounts {
            users: o.users.len(),
            groups: o.groups.len(),
            roles: o.roles.len(),
            memberships: o.groups.values().map(|g| g.members.len()).sum(),
            workspaces: o.workspaces.len(),
        })
    }

    // ----- server configuration -----

    /// Changes the most rows a page holds (at least 1).
    pub fn set_per_page_cap(&self, cap: usize) {
        self.lock().per_page_cap = cap.max(1);
    }

    /// Renders every timestamp in this offset (`None`: UTC with `Z`); instants are unchanged.
    pub fn set_utc_offset(&self, offset: Option<FixedOffset>) {
        self.lock().utc_offset = offset;
    }

    /// Turns the request quota on or off; a new quota starts a fresh window.
    pub fn set_quota(&self, quota: Option<QuotaConfig>) {
        let mut s = self.lock();
        s.quota = quota;
        s.quota_window = None;
    }

    /// Changes the accepted token and login. A new token revokes the old one (401 `API key
    /// revoked`) and starts its expiry afresh.
    pub fn set_credentials(&self, token: &str, email: &str, password: &str) {
        let mut s = self.lock();
        let old = std::mem::replace(&mut s.token, token.to_string());
        s.replace_key(old, token);
        s.email = email.to_string();
        s.password = password.to_string();
    }

    /// Makes `key` the Focus API key accepted as Bearer: the old key is revoked (401 `API
    /// key revoked`), and the new one's expiry counts from now.
    pub fn set_api_key(&self, key: &str) {
        let mut s = self.lock();
        let old = std::mem::replace(&mut s.api_key, key.to_string());
        s.replace_key(old, key);
    }

    /// Honours the filters that take several values only in `form` from now on
    /// ([`ArrayFilters::Ignored`]: a server that honours neither form).
    pub fn set_array_filters(&self, form: ArrayFilters) {
        self.lock().array_filters = form;
    }

    /// The plan lacks exactly these features from now on: a request asking for one gets
    /// 402 with a JSON error body (the quota's headers, when a quota is on, say requests
    /// are left).
    pub fn set_plan_lacks(&self, features: &[PlanFeature]) {
        self.lock().plan_lacks = features.to_vec();
    }

    /// Makes the key (the API key and the token) expire as `expiry` says, counting from
    /// now (`None`: never).
    pub fn expire_key_after(&self, expiry: Option<KeyExpiry>) {
        let mut s = self.lock();
        s.key_expiry = expiry;
        s.restart_key_clock();
    }

    /// The profile served.
    pub fn profile(&self) -> FakeProfile {
        self.lock().profile
    }

    /// Wraps one list's rows in `shape` from now on (`route`: users, teams, roles or
    /// my groups; other routes are ignored).
    pub fn set_list_shape(&self, route: Route, shape: ListShape) {
        let mut s = self.lock();
        match route {
            Route::Users => s.shapes.users = shape,
            Route::Teams => s.shapes.teams = shape,
            Route::Roles => s.shapes.roles = shape,
            Route::MyGroups => s.shapes.my_groups = shape,
            _ => {}
        }
    }

    /// Sends (or stops sending) all four Track v9 paging headers on list answers.
    pub fn set_paging_headers(&self, on: bool) {
        let all = [
            PagingHeader::Records,
            PagingHeader::Pages,
            PagingHeader::Page,
            PagingHeader::PageSize,
        ];
        self.send_paging_headers(if on { &all } else { &[] });
    }

    /// Sends exactly these paging headers on list answers.
    pub fn send_paging_headers(&self, headers: &[PagingHeader]) {
        self.lock().paging_headers = headers.to_vec();
    }

    /// Refuses `per_page` above `max` with the validator's 400 (`None`: never refused).
    pub fn set_per_page_max(&self, max: Option<usize>) {
        self.lock().per_page_max = max;
    }

    /// Waits this long before every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    // ----- request log -----

    /// Every request served so far, oldest first (the newest [`REQUEST_LOG_MAX`] of them).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        let mut s = self.lock();
        s.requests.clear();
        s.requests_dropped = 0;
    }

    /// How many requests were served.
    pub fn request_count(&self) -> usize {
        let s = self.lock();
        s.requests_dropped + s.requests.len()
    }

    // ----- faults -----

    /// Adds a fault; the first matching fault in injection order applies to a request.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }
}

fn bump_group(o: &mut FakeOrg, id: i64) -> bool {
    let now = o.now;
    match o.groups.get_mut(&id) {
        Some(g) => {
            g.updated_at = now;
            true
        }
        None => false,
    }
}

/// A running fake. Dropping it stops the server.
pub struct FakeServer {
    addr: SocketAddr,
    handle: FakeHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    /// Starts serving on `listen` inside the current tokio runtime.
    pub async fn start(opts: FakeOptions, listen: SocketAddr) -> std::io::Result<FakeServer> {
        let handle = FakeHandle::new(&opts);
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(server::serve(listener, handle.clone(), stopped));
        Ok(FakeServer {
            addr,
            handle,
            stop: Some(stop),
            thread: None,
        })
    }

    /// Starts serving on `127.0.0.1:0` on a thread of its own with its own runtime, for
    /// blocking tests (e.g. ones driving the binary as a subprocess).
    pub fn start_background(opts: FakeOptions) -> std::io::Result<FakeServer> {
        let handle = FakeHandle::new(&opts);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let served = handle.clone();
        let thread = std::thread::Builder::new()
            .name("orgmirror-fake-api".to_string())
            .spawn(move || {
                runtime.block_on(server::serve(listener, served, stopped));
                // Dropping the runtime ends every connection task, hanging ones included.
                runtime.shutdown_background();
            })?;
        Ok(FakeServer {
            addr,
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/api`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The control surface.
    pub fn handle(&self) -> FakeHandle {
        self.handle.clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `orgmirror fake-api`: serves until Ctrl-C or SIGTERM, after printing the base URL, the
/// ids and the credentials, one `key=value` a line.
pub async fn serve_cli(listen: SocketAddr, opts: FakeOptions) -> anyhow::Result<()> {
    // `Stdout`, not a lock held across the wait: the future stays `Send`.
    serve_until(listen, opts, &mut std::io::stdout(), wait_for_signal()).await
}

/// The body of [`serve_cli`] with the output and the stop signal as parameters.
async fn serve_until<W: std::io::Write + Send>(
    listen: SocketAddr,
    opts: FakeOptions,
    out: &mut W,
    stop: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let server = FakeServer::start(opts.clone(), listen)
        .await
        .map_err(|e| anyhow::anyhow!("fake-api: cannot listen on {listen}: {e}"))?;
    let users = server.handle().counts().users;
    writeln!(out, "base_url={}", server.base_url())?;
    writeln!(out, "organization_id={}", opts.organization_id)?;
    writeln!(out, "workspace_id={}", opts.workspace_id)?;
    writeln!(out, "api_token={}", opts.token)?;
    if opts.profile == FakeProfile::Focus {
        writeln!(out, "api_key={}", opts.api_key)?;
    }
    writeln!(out, "email={}", opts.email)?;
    writeln!(out, "password={}", opts.password)?;
    writeln!(out, "users={users}")?;
    let profile = match opts.profile {
        FakeProfile::Focus => "focus",
        FakeProfile::Seed => "seed",
    };
    writeln!(out, "profile={profile}")?;
    // Scripts read these lines before the first request: they must not sit in a buffer.
    out.flush()?;
    stop.await?;
    drop(server);
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

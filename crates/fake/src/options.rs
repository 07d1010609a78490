//! How a fake is made: its size and seed, its ids and credentials, the profile it answers
//! as, and what its plan lacks.

use std::time::Duration;

use crate::wire::ListShape;
use crate::{DEMO_API_KEY, DEMO_EMAIL};

/// Which API the fake behaves as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FakeProfile {
    /// As public clients of the real Focus API report it (see the module doc).
    #[default]
    Focus,
    /// Exactly as the reference page shows it.
    Seed,
}

/// A value of a `fake-api` flag the fake does not take, and what it takes instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue(String);

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnknownValue {}

impl std::str::FromStr for FakeProfile {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "focus" => Ok(FakeProfile::Focus),
            "seed" => Ok(FakeProfile::Seed),
            other => Err(UnknownValue(format!(
                "unknown profile `{other}` (focus or seed)"
            ))),
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
    pub(crate) fn of(profile: FakeProfile) -> Shapes {
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
    /// How the audit log endpoint answers (default: it serves the log).
    pub audit_log: AuditLogMode,
    /// A history generated before the fake starts, served with the changes it records.
    pub audit_backlog: Option<AuditBacklog>,
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
            audit_log: AuditLogMode::On,
            audit_backlog: None,
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
    type Err = UnknownValue;
    /// `rates`, `working_hours` or `custom_fields` (`--plan-lacks`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "rates" => Ok(PlanFeature::Rates),
            "working_hours" => Ok(PlanFeature::WorkingHours),
            "custom_fields" => Ok(PlanFeature::CustomFields),
            other => Err(UnknownValue(format!(
                "unknown feature `{other}` (rates, working_hours or custom_fields)"
            ))),
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
    type Err = UnknownValue;
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
            .map_err(|_| UnknownValue(format!("`{s}` is not N (requests) or Ns (seconds)")))
    }
}

/// A request quota: `limit` requests per `window`, announced in the `X-Toggl-Quota-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaConfig {
    pub limit: u32,
    pub window: Duration,
}

/// How `GET …/audit-log/{from}/{to}` answers (`fake-api --audit-log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditLogMode {
    /// The log, paged.
    #[default]
    On,
    /// 404, as a server without the endpoint answers.
    Off,
    /// 403: the caller lacks `view_audit_log` on the organization.
    Forbidden,
    /// 503: the authorization service is unavailable.
    Unavailable,
}

impl std::str::FromStr for AuditLogMode {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" => Ok(AuditLogMode::On),
            "off" => Ok(AuditLogMode::Off),
            "forbidden" => Ok(AuditLogMode::Forbidden),
            "unavailable" => Ok(AuditLogMode::Unavailable),
            other => Err(UnknownValue(format!(
                "unknown audit log mode `{other}` (on, off, forbidden or unavailable)"
            ))),
        }
    }
}

/// A generated audit history: `events` spread evenly over the `days` before the fake
/// started, made by a few of its members, about its users, groups and rates and about
/// things the mirror does not track (time entries, projects, clients). Each event is a pure
/// function of the seed and its position, made when a request reads it, so a large backlog
/// costs no memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditBacklog {
    pub events: usize,
    pub days: u32,
}

impl std::str::FromStr for AuditBacklog {
    type Err = UnknownValue;
    /// `N` events over 90 days, or `N:Dd` (`200000:90d`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wrong = || UnknownValue(format!("`{s}` is not N or N:Dd (200000:90d)"));
        let (events, days) = match s.trim().split_once(':') {
            None => (s.trim(), "90d"),
            Some((n, d)) => (n, d),
        };
        let events = events.trim().parse::<usize>().map_err(|_| wrong())?;
        let days = days
            .trim()
            .strip_suffix('d')
            .and_then(|d| d.parse::<u32>().ok())
            .filter(|d| (1..=3650).contains(d))
            .ok_or_else(wrong)?;
        Ok(AuditBacklog { events, days })
    }
}

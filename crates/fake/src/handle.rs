//! The handle on a fake organization: what `demo` and the benchmark read and change, and
//! the state the server and the handle share. The tests' control surface adds to it
//! ([`crate::control`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Utc};

use crate::options::{
    ArrayFilters, AuditLogMode, FakeOptions, FakeProfile, KeyExpiry, PagingHeader, PlanFeature,
    QuotaConfig, Shapes,
};
use crate::org::{FakeOrg, FakeRate, GenParams};
use crate::FOCUS_PER_PAGE_MAX;

/// A group as [`FakeHandle::group`] reports it.
#[derive(Debug, Clone, Default, PartialEq)]
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
    pub admin: bool,
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
    /// Requests served (since the log was last cleared, with the control surface).
    pub(crate) served: usize,
    /// The faults waiting and the request log.
    #[cfg(feature = "control")]
    pub(crate) recorder: crate::control::Recorder,
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
    /// How the audit log endpoint answers.
    pub(crate) audit_log: AuditLogMode,
    /// Requests to the audit log served (however they were answered).
    pub(crate) audit_served: usize,
}

impl FakeState {
    /// Whether the current key has run out (see [`KeyExpiry`]).
    pub(crate) fn key_expired(&self) -> bool {
        match self.key_expiry {
            None => false,
            Some(KeyExpiry::Requests(n)) => self.key_uses >= n,
            Some(KeyExpiry::Seconds(n)) => self.key_since.elapsed() >= Duration::from_secs(n),
        }
    }
}

/// A fake organization, served or not yet. Cheap to clone; every method is synchronous and
/// may be called from any thread.
#[derive(Clone)]
pub struct FakeHandle {
    pub(crate) state: Arc<Mutex<FakeState>>,
}

impl FakeHandle {
    /// A fake organization without a server (the server takes a handle).
    pub fn new(opts: &FakeOptions) -> FakeHandle {
        let mut org = FakeOrg::generate(&GenParams {
            users: opts.users,
            seed: opts.seed,
            organization_id: opts.organization_id,
            workspace_id: opts.workspace_id,
            owner_email: opts.email.clone(),
        });
        org.start_audit(opts.audit_backlog, opts.seed);
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
                served: 0,
                #[cfg(feature = "control")]
                recorder: Default::default(),
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
                audit_log: opts.audit_log,
                audit_served: 0,
            })),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panicking test thread must not take the fake down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn org<R>(&self, f: impl FnOnce(&mut FakeOrg) -> R) -> R {
        f(&mut self.lock().org)
    }

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

    /// Applies a membership change; when it changed something, the group's `updated_at`
    /// moves on as the real API's does.
    pub(crate) fn edit_membership(
        &self,
        group_id: i64,
        change: impl FnOnce(&mut FakeOrg) -> bool,
    ) -> bool {
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

    /// Renames a group. False when unknown.
    pub fn rename_group(&self, id: i64, name: &str) -> bool {
        self.org(|o| {
            o.edit_group(id, |o| {
                if let Some(g) = o.groups.get_mut(&id) {
                    g.name = name.to_string();
                }
            })
        })
    }

    /// Makes the member `actor` (an organization user id) the one who makes the changes
    /// that follow, as the audit log records them (`None`: the owner, the default). The
    /// API's write endpoints are always the owner's, the fake's caller. False when that
    /// user is unknown.
    pub fn set_actor(&self, actor: Option<i64>) -> bool {
        self.org(|o| o.set_actor(actor))
    }

    /// Moves the fake clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.org(|o| o.now += by)
    }

    /// The fake clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.org(|o| o.now)
    }

    /// All user ids, ascending.
    pub fn user_ids(&self) -> Vec<i64> {
        self.org(|o| o.users.iter().map(|u| u.id).collect())
    }

    /// All group ids, ascending.
    pub fn group_ids(&self) -> Vec<i64> {
        self.org(|o| o.groups.keys().copied().collect())
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
                admin: u.admin,
                hourly_rate: u.rate.as_ref().map(|r| r.hourly_rate),
                currency: u.rate.as_ref().map(|r| r.currency.clone()),
                working_hours: u.working_hours,
                groups: u.groups.iter().copied().collect(),
            })
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

    /// How many requests were served (since the request log was last cleared).
    pub fn request_count(&self) -> usize {
        self.lock().served
    }

    /// How many requests the audit log endpoint was sent (since the fake started).
    pub fn audit_request_count(&self) -> usize {
        self.lock().audit_served
    }

    /// Waits this long before every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }
}

pub(crate) fn bump_group(o: &mut FakeOrg, id: i64) -> bool {
    let now = o.now;
    match o.groups.get_mut(&id) {
        Some(g) => {
            g.updated_at = now;
            true
        }
        None => false,
    }
}

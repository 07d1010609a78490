//! The control surface of the fake, for the tests (the `control` feature): every change to
//! the organization ([`edit`]), the server's knobs, injected faults ([`faults`]) and the
//! request log. `orgmirror`'s dev-dependency turns it on; the `orgmirror` binary is built
//! without it.

mod edit;
pub(crate) mod faults;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::FixedOffset;

use crate::handle::{FakeHandle, FakeState};
use crate::options::{
    ArrayFilters, AuditLogMode, KeyExpiry, PagingHeader, PlanFeature, QuotaConfig,
};
use crate::org::FakeAuditEvent;
use crate::server::Route;
use crate::wire::ListShape;

/// The most requests the fake's log keeps (it drops the older half when full), so that a
/// long test does not grow it without end.
pub const REQUEST_LOG_MAX: usize = 100_000;

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

/// What the control surface adds to the shared state: the faults waiting and the log.
#[derive(Default)]
pub(crate) struct Recorder {
    /// Active faults with their remaining counts.
    pub(crate) faults: Vec<Fault>,
    /// The newest [`REQUEST_LOG_MAX`] requests at most, oldest first.
    pub(crate) requests: Vec<LoggedRequest>,
}

impl Recorder {
    /// Logs a request served, dropping the older half of the log when it is full.
    pub(crate) fn log(&mut self, request: LoggedRequest) {
        if self.requests.len() >= REQUEST_LOG_MAX {
            self.requests.drain(..REQUEST_LOG_MAX / 2);
        }
        self.requests.push(request);
    }
}

impl FakeState {
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

impl FakeHandle {
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

    /// Every request served so far, oldest first (the newest [`REQUEST_LOG_MAX`] of them).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().recorder.requests.clone()
    }

    /// Forgets the request log, and the count of requests served.
    pub fn clear_requests(&self) {
        let mut s = self.lock();
        s.recorder.requests.clear();
        s.served = 0;
    }

    /// Adds a fault; the first matching fault in injection order applies to a request.
    pub fn inject(&self, fault: Fault) {
        self.lock().recorder.faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.lock().recorder.faults.clear();
    }

    /// How the audit log endpoint answers from now on.
    pub fn set_audit_log(&self, mode: AuditLogMode) {
        self.lock().audit_log = mode;
    }

    /// The audit events recorded since the fake started (not its generated history),
    /// oldest first.
    pub fn audit_events(&self) -> Vec<FakeAuditEvent> {
        self.org(|o| o.audit_events())
    }

    /// Adds an event to the audit log as given, its time and actor included: one of a
    /// type the fake never makes, or one written late (its time in the past).
    pub fn add_audit_event(&self, event: FakeAuditEvent) {
        self.org(|o| o.insert_audit_event(event))
    }
}

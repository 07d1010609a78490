//! The upstream: a typed client for every endpoint of the seed, with auth, paging,
//! retries and quota accounting.
//!
//! Every request goes through one private path (`transport::Client::send`): it
//! waits while the quota is known to be spent, counts the attempt, reads the quota
//! headers of every answer, reads the body under `api.max_body_bytes`, retries 5xx,
//! timeouts and connection errors with capped, jittered backoff within
//! `api.max_retry_time` (but not a server certificate rustls refused: asking again will
//! not make it trusted), honours 429 `Retry-After`, and waits out a 402 that is the quota
//! (its `X-Toggl-Quota-*` headers say the window is spent, or a text body speaks of the
//! hourly limit) within `api.max_quota_wait` — one that does not say when the quota resets
//! is waited on once a run. Any other 402 is a feature the plan lacks
//! ([`ApiError::PlanLacks`]): never waited on. Paged lists follow the stop rules in [`paging`].
//!
//! Writes: POST and DELETE are never repeated after a 5xx, timeout or connection error
//! (the server may have applied them; a repeated DELETE would answer 404 for a group it
//! did delete), PUT is (it replaces the group with the same body). All of them wait out
//! the quota's 402 and 429, which the server answers without processing the request.
//!
//! **Secrets never leave this module**: the `Authorization` header is marked sensitive,
//! and error texts built from server answers are scrubbed of the credentials.

pub mod capture;
mod decode;
mod error;
pub mod models;
pub mod paging;
pub mod probe;
mod transport;

#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::config::{ApiConfig, AuthScheme, Credentials, SentAs};
pub use decode::{decode_page, split_unknown_fields, DecodedPage, Envelope};
pub(crate) use error::plan_settings;
pub use error::{ApiError, Endpoint, ErrorParts, FOCUS_KEY_ADVICE};
use models::{
    Group, GroupRef, GroupWrite, KnownFields, MemberCustomFields, OrganizationUser, Role, Team,
};
use paging::{Announced, HasId, Next, PageError, Pager};
pub use transport::MAX_QUOTA_RESET;
use transport::{Answer, Query, Request};

/// How a list's id filter is written so that the server honours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdFilter {
    /// `org_user_ids=1,2,3`, as the published spec names array parameters.
    Comma,
    /// `org_user_ids[]=1&org_user_ids[]=2`, as the reference page does.
    Brackets,
    /// The server honours neither: nothing can be read by id.
    Neither,
}

impl IdFilter {
    /// As the database keeps it: `comma`, `brackets`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdFilter::Comma => "comma",
            IdFilter::Brackets => "brackets",
            IdFilter::Neither => "none",
        }
    }

    /// The reverse of [`IdFilter::as_str`].
    pub fn parse(text: &str) -> Option<IdFilter> {
        match text {
            "comma" => Some(IdFilter::Comma),
            "brackets" => Some(IdFilter::Brackets),
            "none" => Some(IdFilter::Neither),
            _ => None,
        }
    }
}

/// What a read by id gave.
#[derive(Debug)]
pub enum ByIds<T> {
    /// The rows found; an id asked for and not among them is gone (or invisible to the
    /// credentials).
    Found(Vec<WithUnknown<T>>),
    /// The server honours no form of the id filter: the read says nothing of any id.
    Unfiltered,
}

/// The request quota as the last response announced it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaSeen {
    /// Requests left in the current window.
    pub remaining: Option<i64>,
    /// When the window resets, as a Unix timestamp (seconds).
    pub resets_at_unix: Option<i64>,
}

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestStats {
    /// HTTP requests sent (every attempt counts).
    pub requests: u32,
    /// The quota as the last answer announced it (kept across runs).
    pub quota: Option<QuotaSeen>,
    /// Retries after a 5xx, 429, timeout or connection error.
    pub retries: u32,
    /// Time spent waiting for the quota to reset.
    pub quota_wait: Duration,
    /// Time spent waiting for the request pacing (`api.max_requests_per_second`).
    pub pacing_wait: Duration,
}

/// What a paged pull reports after each page (for progress lines).
#[derive(Debug, Clone, PartialEq)]
pub struct PageProgress {
    /// `users` or `teams`.
    pub entity: &'static str,
    /// The page just received (from 1).
    pub page: u32,
    /// Distinct rows collected so far, this page included.
    pub rows: usize,
    /// Requests sent in this run so far.
    pub requests: u32,
    /// The quota left as the last answer announced it.
    pub quota_remaining: Option<i64>,
    /// Time this run has waited for its request pacing so far.
    pub pacing_wait: Duration,
}

/// Defined on the domain side, so `store` and `status` need not depend on the client.
pub use crate::quarantine::Quarantined;

/// One item of a list with the top-level fields the model did not know, as canonical JSON.
pub type WithUnknown<T> = (T, Option<String>);

/// The client. One per process; [`Client::start_run`] resets the per-run counters.
/// `Send + Sync`, used through `&self`.
pub struct Client {
    http: reqwest::Client,
    /// `api.base_url` without a trailing `/`.
    base_url: String,
    organization_id: i64,
    workspace_id: i64,
    per_page: u32,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_time: Duration,
    max_quota_wait: Duration,
    request_timeout: Duration,
    max_body_bytes: u64,
    max_pages: u32,
    /// Added to every quota wait: the reset time is the server's, in whole seconds.
    quota_margin: Duration,
    /// Waited (once a run) after a quota 402 that does not say when the quota resets.
    blind_quota_wait: Duration,
    /// How the credentials go out: replaced before a run when they were read afresh.
    auth: Mutex<Auth>,
    auth_scheme: AuthScheme,
    /// Credential strings scrubbed from error texts: every credential this client sent.
    secrets: Mutex<Vec<SecretString>>,
    /// At most `api.max_requests_per_second`, one at a time (`None`: no pacing).
    pacer: Option<governor::DefaultDirectRateLimiter>,
    state: Mutex<State>,
    /// Where every answer is recorded as well (`sync --capture`, `check`).
    recorder: Option<std::sync::Arc<capture::Recorder>>,
    /// A refused page size is warned about here (a sync, which remembers the size
    /// accepted), or reported by the caller (`check`, which writes nothing).
    warns_of_page_sizes: bool,
}

/// The `Authorization` header and what a refusal says of it.
#[derive(Debug, Clone)]
struct Auth {
    header: HeaderValue,
    /// How the credentials go out, for the message of a refusal.
    sent_as: SentAs,
    /// The token looks like a Focus API key (`toggl_sk_…`).
    focus_key: bool,
}

/// Per-run counters and what the client has learned about the server.
#[derive(Debug, Default)]
struct State {
    requests: u32,
    retries: u32,
    quota_wait: Duration,
    retry_wait: Duration,
    pacing_wait: Duration,
    quota: Option<QuotaSeen>,
    /// The precise reset time behind `quota.resets_at_unix`.
    reset_at: Option<SystemTime>,
    users: PageSizes,
    teams: PageSizes,
    /// Items quarantined this run, in the order met.
    quarantined: Vec<Quarantined>,
    /// The page size the API accepted per list (`users`, `teams`) after refusing a larger
    /// one: known across runs (seeded from the database), never larger than asked.
    page_size: std::collections::BTreeMap<&'static str, u32>,
    /// The id filter form each list (`users`, `teams`) honours: known across runs (seeded
    /// from the database), learned by the first by-id read that needs it.
    filter_form: std::collections::BTreeMap<&'static str, IdFilter>,
    /// The lists whose form a request proved, not yet taken for the store.
    filter_learned: std::collections::BTreeSet<&'static str>,
    /// This run has waited once for a 402 that did not say when the quota resets.
    blind_quota_wait: bool,
    /// Some request of this client had a 2xx answer (a 404 before that may be a base URL
    /// without `/api`).
    answered: bool,
}

/// What the pulls of one entity have shown about the server's page size.
#[derive(Debug, Default, Clone, Copy)]
struct PageSizes {
    /// The largest page of a pull that needed more than one page: the server's cap.
    cap: Option<usize>,
}

impl PageSizes {
    fn learn<T: HasId>(&mut self, pager: &Pager<T>) {
        if let Some(cap) = pager.cap_seen() {
            self.cap = Some(cap);
        }
    }

    /// Ids per by-id request: at most 100, no more than the server's cap, and no more
    /// than the page size it accepts (`accepted`).
    fn batch(&self, accepted: Option<u32>) -> usize {
        let accepted = accepted.map_or(MAX_IDS_PER_REQUEST, |a| a as usize);
        self.cap
            .unwrap_or(MAX_IDS_PER_REQUEST)
            .min(accepted)
            .clamp(1, MAX_IDS_PER_REQUEST)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("organization_id", &self.organization_id)
            .finish_non_exhaustive()
    }
}

/// A rate limiter letting one request through every `1 / per_second` seconds, with no
/// burst: requests are spaced, not bunched (`None` for 0: no pacing).
fn pacer(per_second: f64) -> Option<governor::DefaultDirectRateLimiter> {
    if !(per_second.is_finite() && per_second > 0.0) {
        return None;
    }
    let period = Duration::try_from_secs_f64(1.0 / per_second).ok()?;
    let quota = governor::Quota::with_period(period)?.allow_burst(std::num::NonZeroU32::MIN);
    Some(governor::RateLimiter::direct(quota))
}

/// The `Authorization` header of `credentials` under `scheme`, marked sensitive; the
/// strings to scrub from texts go to `secrets`.
fn authorization(
    credentials: &Credentials,
    scheme: AuthScheme,
    secrets: &mut Vec<SecretString>,
) -> Result<Auth, &'static str> {
    let authorization = credentials.authorization(scheme);
    let mut header = HeaderValue::from_str(authorization.expose_secret())
        .map_err(|_| "the credentials contain characters that cannot be sent in an HTTP header")?;
    header.set_sensitive(true);
    if let Some((_, credential)) = authorization.expose_secret().split_once(' ') {
        secrets.push(SecretString::from(credential.to_string()));
    }
    secrets.push(authorization);
    match credentials {
        Credentials::Token(token) => secrets.push(token.clone()),
        Credentials::Login { password, .. } => secrets.push(password.clone()),
    }
    Ok(Auth {
        header,
        sent_as: credentials.sent_as(scheme),
        focus_key: credentials.is_focus_key(),
    })
}

/// Ids asked for in one by-id request at most.
const MAX_IDS_PER_REQUEST: usize = 100;

impl Client {
    /// Builds the HTTP client: rustls with certificate checks, connect and whole-request
    /// timeouts, no redirects, the `Authorization` header marked sensitive.
    pub fn new(api: &ApiConfig, credentials: &Credentials) -> Result<Client, ApiError> {
        let setup_error = |message: String| ApiError::Transport {
            endpoint: Endpoint {
                method: "SETUP",
                path: format!("/organizations/{}", api.organization_id),
                page: None,
            },
            message,
        };
        let mut secrets = Vec::new();
        let auth = authorization(credentials, api.auth_scheme, &mut secrets)
            .map_err(|message| setup_error(message.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .default_headers(headers)
            .user_agent(concat!("orgmirror/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(api.connect_timeout.duration())
            .timeout(api.request_timeout.duration())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| setup_error(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base_url: api.base_url.trim_end_matches('/').to_string(),
            organization_id: api.organization_id,
            workspace_id: api.workspace_id,
            per_page: api.per_page.max(1),
            max_attempts: api.max_attempts.max(1),
            initial_backoff: api.initial_backoff.duration(),
            max_backoff: api.max_backoff.duration(),
            max_retry_time: api.max_retry_time.duration(),
            max_quota_wait: api.max_quota_wait.duration(),
            request_timeout: api.request_timeout.duration(),
            max_body_bytes: api.max_body_bytes,
            max_pages: api.max_pages.max(1),
            quota_margin: Duration::from_secs(1),
            blind_quota_wait: transport::DEFAULT_QUOTA_WAIT,
            auth: Mutex::new(auth),
            auth_scheme: api.auth_scheme,
            secrets: Mutex::new(secrets),
            pacer: pacer(api.max_requests_per_second),
            state: Mutex::new(State::default()),
            recorder: None,
            warns_of_page_sizes: true,
        })
    }

    /// Sends `credentials` from now on (read afresh before a run: a key replaced in its
    /// file or systemd credential is used without a restart). The ones sent before stay
    /// scrubbed from error texts.
    pub fn use_credentials(&self, credentials: &Credentials) -> Result<(), ApiError> {
        let mut secrets = Vec::new();
        let auth = authorization(credentials, self.auth_scheme, &mut secrets).map_err(|m| {
            ApiError::Transport {
                endpoint: Endpoint {
                    method: "SETUP",
                    path: self.org_path(""),
                    page: None,
                },
                message: m.to_string(),
            }
        })?;
        let mut known = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        for secret in secrets {
            if !known
                .iter()
                .any(|k| k.expose_secret() == secret.expose_secret())
            {
                known.push(secret);
            }
        }
        drop(known);
        *self.auth.lock().unwrap_or_else(|e| e.into_inner()) = auth;
        Ok(())
    }

    /// How the credentials go out now.
    fn auth(&self) -> Auth {
        self.auth.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The credential strings to scrub from texts.
    fn secrets(&self) -> Vec<SecretString> {
        self.secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A refused page size is the caller's to report (`check` shows it in its report and
    /// remembers nothing): no warning, which would say it is remembered in the database.
    pub fn reports_page_sizes_itself(&mut self) {
        self.warns_of_page_sizes = false;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state under the lock (never held across an await).
    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.lock())
    }

    /// Resets the per-run counters and budgets (requests, retries, quota and retry
    /// waiting) and what pulls showed about page sizes: a by-id re-check trusts only
    /// the pulls of its own run. The last quota seen is kept.
    pub fn start_run(&self) {
        self.with_state(|s| {
            s.requests = 0;
            s.retries = 0;
            s.quota_wait = Duration::ZERO;
            s.retry_wait = Duration::ZERO;
            s.pacing_wait = Duration::ZERO;
            s.blind_quota_wait = false;
            s.users = PageSizes::default();
            s.teams = PageSizes::default();
            s.quarantined.clear();
        });
    }

    /// The items quarantined since [`Client::start_run`]: each is in its list as a
    /// stand-in with only an id, which a run must not take for the record.
    pub fn quarantined(&self) -> Vec<Quarantined> {
        self.with_state(|s| s.quarantined.clone())
    }

    /// The page size a pull of `entity` asks for: `api.per_page`, or less when the API
    /// refused more.
    fn page_size_for(&self, entity: &str) -> u32 {
        let accepted = self.with_state(|s| s.page_size.get(entity).copied());
        accepted
            .map_or(self.per_page, |a| a.min(self.per_page))
            .max(1)
    }

    /// The page sizes the API accepted after refusing larger ones, per list (`users`,
    /// `teams`): what the store remembers for the next run.
    pub fn page_sizes(&self) -> Vec<(&'static str, u32)> {
        self.with_state(|s| s.page_size.iter().map(|(k, v)| (*k, *v)).collect())
    }

    /// Primes a page size the API accepted in an earlier run (from the database), so that
    /// a refused size is never asked again. Lists other than `users` and `teams` are ignored.
    pub fn remember_page_size(&self, entity: &str, size: u32) {
        let Some(entity) = known_list(entity) else {
            return;
        };
        self.with_state(|s| {
            s.page_size.insert(entity, size.max(1));
        });
    }

    /// Primes the id filter form a list (`users`, `teams`) was found to honour (from the
    /// database), so that no request is spent finding it again. Other lists are ignored.
    pub fn remember_filter_form(&self, list: &str, form: IdFilter) {
        let Some(list) = known_list(list) else {
            return;
        };
        self.with_state(|s| {
            s.filter_form.insert(list, form);
        });
    }

    /// The id filter forms requests proved since the last call, per list: what the store
    /// remembers for the next runs (a group command's read before its refresh included).
    pub fn take_filter_forms(&self) -> Vec<(&'static str, IdFilter)> {
        self.with_state(|s| {
            let learned = std::mem::take(&mut s.filter_learned);
            learned
                .into_iter()
                .filter_map(|l| s.filter_form.get(l).map(|f| (l, *f)))
                .collect()
        })
    }

    /// The id filter form a list is known to honour, if known.
    pub fn filter_form(&self, list: &str) -> Option<IdFilter> {
        let list = known_list(list)?;
        self.with_state(|s| s.filter_form.get(list).copied())
    }

    /// The counters of the current run and the last quota seen.
    pub fn stats(&self) -> RequestStats {
        self.with_state(|s| RequestStats {
            requests: s.requests,
            quota: s.quota,
            retries: s.retries,
            quota_wait: s.quota_wait,
            pacing_wait: s.pacing_wait,
        })
    }

    /// Primes the last known quota (from the database at start), so that a spent window
    /// is respected across restarts. A later answer's headers replace it.
    pub fn seed_quota(&self, seen: QuotaSeen) {
        let reset_at = seen
            .resets_at_unix
            .and_then(|t| u64::try_from(t).ok())
            .map(|t| UNIX_EPOCH + Duration::from_secs(t));
        self.with_state(|s| {
            s.quota = Some(seen);
            s.reset_at = reset_at;
        });
    }

    /// Before a run that needs about `expected_requests`: when the last known quota is
    /// smaller and its window resets in the future, waits for the reset (within
    /// `api.max_quota_wait`, else [`ApiError::QuotaExhausted`]).
    pub async fn ensure_quota(&self, expected_requests: u32) -> Result<(), ApiError> {
        match self.until_reset(expected_requests) {
            Some(wait) => {
                let endpoint = Endpoint {
                    method: "QUOTA",
                    path: self.org_path(""),
                    page: None,
                };
                self.quota_sleep(&endpoint, wait).await
            }
            None => Ok(()),
        }
    }

    /// `GET /organizations/{id}/roles`.
    pub async fn roles(&self) -> Result<Vec<WithUnknown<Role>>, ApiError> {
        let req = self.request(Method::GET, "GET", "/roles", Query::default(), None);
        let answer = self.send(&req).await?;
        self.decode_list::<Role>(&req, &answer.body)
            .map(|p| p.items)
    }

    /// `GET /organizations/{id}/groups/me`: the groups the credentials' user belongs to.
    pub async fn my_groups(&self) -> Result<Vec<GroupRef>, ApiError> {
        let req = self.request(Method::GET, "GET", "/groups/me", Query::default(), None);
        let answer = self.send(&req).await?;
        let page = self.decode_list::<GroupRef>(&req, &answer.body)?;
        Ok(page.items.into_iter().map(|(group, _)| group).collect())
    }

    /// `POST /organizations/{id}/groups`. The page documents no 201 body, so the group
    /// is returned only when the body parses as one. Not repeated after a 5xx, timeout
    /// or connection error.
    pub async fn create_group(&self, body: &GroupWrite) -> Result<Option<Group>, ApiError> {
        let mut req = self.request(Method::POST, "POST", "/groups", Query::default(), None);
        req.body = Some(encode_body(&req, body)?);
        req.retry_failures = false;
        let answer = self.send(&req).await?;
        Ok(serde_json::from_slice::<Group>(&answer.body).ok())
    }

    /// `PUT /organizations/{id}/groups/{group_id}`. A 2xx is the write done: the updated
    /// group is returned only when the body parses as one (the mirror is refreshed from a
    /// fresh read either way, and a write that went through must not be reported failed).
    pub async fn update_group(
        &self,
        group_id: i64,
        body: &GroupWrite,
    ) -> Result<Option<Group>, ApiError> {
        let path = format!("/groups/{group_id}");
        let mut req = self.request(Method::PUT, "PUT", &path, Query::default(), None);
        req.body = Some(encode_body(&req, body)?);
        let answer = self.send(&req).await?;
        Ok(serde_json::from_slice::<Group>(&answer.body).ok())
    }

    /// `DELETE /organizations/{id}/groups/{group_id}?workspace_id=…`. Not repeated
    /// after a 5xx, timeout or connection error.
    pub async fn delete_group(&self, group_id: i64) -> Result<(), ApiError> {
        let path = format!("/groups/{group_id}");
        let mut query = Query::default();
        query.push("workspace_id", self.workspace_id);
        let mut req = self.request(Method::DELETE, "DELETE", &path, query, None);
        req.retry_failures = false;
        self.send(&req).await.map(|_| ())
    }

    /// Every team (group) of the organization: `GET …/teams?workspace_id=…`, paged, and
    /// ended by the announced `total` where possible.
    pub async fn pull_teams(
        &self,
        progress: &mut dyn FnMut(&PageProgress),
    ) -> Result<Vec<WithUnknown<Team>>, ApiError> {
        let mut rows = Distinct::default();
        self.pull_teams_each(progress, &mut |page| {
            rows.extend(page);
            Ok(())
        })
        .await?;
        Ok(rows.rows)
    }

    /// Every team, handed to `each` a page at a time, so that a pull never holds the
    /// raw rows of the whole list. A team seen on two pages comes twice; the later copy
    /// is the fresher. An error from `each` fails the pull as it is (a bad record stays
    /// the caller's record error, a writer's error its store error); the pull's own
    /// errors come out through `E: From<ApiError>`.
    pub async fn pull_teams_each<E: From<ApiError>>(
        &self,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<Team>>) -> Result<(), E>,
    ) -> Result<(), E> {
        let spec = self.teams_spec();
        let mut pager = Pager::streaming();
        self.pull(
            &spec,
            self.page_size_for("teams"),
            &mut pager,
            progress,
            each,
        )
        .await?;
        self.with_state(|s| s.teams.learn(&pager));
        Ok(())
    }

    /// Every user of the organization: `GET …/users`, paged.
    pub async fn pull_users(
        &self,
        include_rates: bool,
        include_working_hours: bool,
        progress: &mut dyn FnMut(&PageProgress),
    ) -> Result<Vec<WithUnknown<OrganizationUser>>, ApiError> {
        let mut rows = Distinct::default();
        self.pull_users_each(
            include_rates,
            include_working_hours,
            progress,
            &mut |page| {
                rows.extend(page);
                Ok(())
            },
        )
        .await?;
        Ok(rows.rows)
    }

    /// Every user, handed to `each` a page at a time (see [`Client::pull_teams_each`]).
    pub async fn pull_users_each<E: From<ApiError>>(
        &self,
        include_rates: bool,
        include_working_hours: bool,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<OrganizationUser>>) -> Result<(), E>,
    ) -> Result<(), E> {
        let spec = self.users_spec(Query::default(), include_rates, include_working_hours);
        let mut pager = Pager::streaming();
        self.pull(
            &spec,
            self.page_size_for("users"),
            &mut pager,
            progress,
            each,
        )
        .await?;
        self.with_state(|s| s.users.learn(&pager));
        Ok(())
    }

    /// Re-reads specific users through the `org_user_ids` filter, in batches (at most 100
    /// ids, or the server's page cap when a pull has shown one), in the form the server
    /// honours ([`Client::by_ids`]).
    pub async fn users_by_ids(
        &self,
        ids: &[i64],
        include_rates: bool,
        include_working_hours: bool,
    ) -> Result<ByIds<OrganizationUser>, ApiError> {
        let sizes = self.with_state(|s| s.users);
        self.by_ids(ids, sizes, "users", |batch, form| {
            let mut query = Query::default();
            push_id_filter(&mut query, form, "org_user_ids", "org_user_ids[]", batch);
            self.users_spec(query, include_rates, include_working_hours)
        })
        .await
    }

    /// The members of workspace `workspace_id` with their custom field values (`GET …/users?
    /// workspaces=N&include_custom_fields=true`: the spec accepts the flag only with one
    /// workspace), paged like the users list and with its page size, without rates or working
    /// hours, handed to `each` a page at a time. A row whose body cannot be read comes as a
    /// stand-in without values (its member's values are not spoken for) and is listed in
    /// [`Client::quarantined`] under [`CUSTOM_FIELDS_LIST`], not as a user.
    pub async fn pull_custom_fields_each<E: From<ApiError>>(
        &self,
        workspace_id: i64,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<MemberCustomFields>>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut query = Query::default();
        push_workspace_filter(&mut query, workspace_id);
        query.push("include_custom_fields", "true");
        let spec = ListSpec {
            entity: "users",
            path: "/users",
            query,
        };
        let quarantined_before = self.with_state(|s| s.quarantined.len());
        let mut pager = Pager::streaming();
        let pulled = self
            .pull(
                &spec,
                self.page_size_for("users"),
                &mut pager,
                progress,
                each,
            )
            .await;
        self.with_state(|s| {
            for q in s.quarantined.iter_mut().skip(quarantined_before) {
                q.list = CUSTOM_FIELDS_LIST.to_string();
            }
        });
        pulled
    }

    /// Re-reads specific teams through the `group_ids` filter, batched like
    /// [`Client::users_by_ids`].
    pub async fn teams_by_ids(&self, ids: &[i64]) -> Result<ByIds<Team>, ApiError> {
        let sizes = self.with_state(|s| s.teams);
        self.by_ids(ids, sizes, "teams", |batch, form| {
            let mut query = Query::default();
            query.push("workspace_id", self.workspace_id);
            push_id_filter(&mut query, form, "group_ids", "group_ids[]", batch);
            ListSpec {
                entity: "teams",
                path: "/teams",
                query,
            }
        })
        .await
    }

    /// Asks for `ids` in batches through the list whose id filter `spec_for` writes in a
    /// form. The form the list is known to honour goes first (the published comma form
    /// when none is known); an answer holding rows not asked for means the server ignored
    /// it, and the same batch is asked once more in the other form. The form that filters
    /// is used from then on and remembered ([`Client::take_filter_forms`]); when neither does,
    /// the answer is [`ByIds::Unfiltered`] and no later read asks again.
    async fn by_ids<T>(
        &self,
        ids: &[i64],
        sizes: PageSizes,
        entity: &'static str,
        spec_for: impl Fn(&[i64], IdFilter) -> ListSpec,
    ) -> Result<ByIds<T>, ApiError>
    where
        T: DeserializeOwned + KnownFields + HasId + Send,
    {
        let mut found = Vec::new();
        let accepted = self.with_state(|s| s.page_size.get(entity).copied());
        // A page holds one row more than the ids asked: a server that ignores the filter
        // then always answers with a row not asked for (unless its list is that short), so
        // a form is never taken for honoured by chance.
        let size = sizes.batch(accepted).saturating_sub(1).max(1);
        for batch in batches(ids, size) {
            let mut tried = Vec::new();
            loop {
                let known = self.with_state(|s| s.filter_form.get(entity).copied());
                let form = match known {
                    Some(IdFilter::Neither) => return Ok(ByIds::Unfiltered),
                    Some(form) if !tried.contains(&form) => form,
                    _ => match [IdFilter::Comma, IdFilter::Brackets]
                        .into_iter()
                        .find(|f| !tried.contains(f))
                    {
                        Some(form) => form,
                        None => {
                            self.learn_filter_form(entity, IdFilter::Neither);
                            warn!(
                                list = entity,
                                "the API ignores the id filter in both forms; a missing entry is confirmed gone by the next complete pull instead (remembered in the database)"
                            );
                            return Ok(ByIds::Unfiltered);
                        }
                    },
                };
                tried.push(form);
                let spec = spec_for(&batch, form);
                let mut pager = Pager::for_ids(&batch);
                let pulled = self
                    .pull(
                        &spec,
                        batch.len() as u32 + 1,
                        &mut pager,
                        &mut |_| {},
                        &mut |_| Ok(()),
                    )
                    .await;
                match pulled {
                    Ok(()) => {
                        if known != Some(form) {
                            self.learn_filter_form(entity, form);
                        }
                        found.extend(pager.finish());
                        break;
                    }
                    Err(ApiError::FilterIgnored { endpoint, filter }) => {
                        debug!(%endpoint, filter, "the API ignored the id filter in this form; asking in the other");
                        self.with_state(|s| s.filter_form.remove(entity));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(ByIds::Found(found))
    }

    /// `list` honours `form`, as a request of this run showed.
    fn learn_filter_form(&self, list: &'static str, form: IdFilter) {
        self.with_state(|s| {
            s.filter_form.insert(list, form);
            s.filter_learned.insert(list);
        });
    }

    fn users_spec(&self, mut query: Query, rates: bool, working_hours: bool) -> ListSpec {
        if rates {
            query.push("include_rates", "true");
        }
        if working_hours {
            query.push("include_working_hours", "true");
        }
        ListSpec {
            entity: "users",
            path: "/users",
            query,
        }
    }

    fn teams_spec(&self) -> ListSpec {
        let mut query = Query::default();
        query.push("workspace_id", self.workspace_id);
        ListSpec {
            entity: "teams",
            path: "/teams",
            query,
        }
    }

    /// Pages through one list until the pager's stop rules say done.
    async fn pull<T, E>(
        &self,
        spec: &ListSpec,
        per_page: u32,
        pager: &mut Pager<T>,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<T>>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        T: DeserializeOwned + KnownFields + HasId + Send,
        E: From<ApiError>,
    {
        let mut current = self.send_page(spec, per_page, 1).await?;
        loop {
            let PageAnswer {
                req,
                answer,
                page,
                size,
            } = current;
            let decoded = self.decode_list::<T>(&req, &answer.body)?;
            let announced = announced(&decoded, &answer);
            let next = pager
                .accept_announced(page, decoded.items, announced)
                .map_err(|e| match e {
                    PageError::Decode(message) => ApiError::Decode {
                        endpoint: req.endpoint(),
                        message,
                    },
                    PageError::Paging(message) => ApiError::Paging {
                        endpoint: req.endpoint(),
                        message,
                    },
                    PageError::FilterIgnored => ApiError::FilterIgnored {
                        endpoint: req.endpoint(),
                        filter: spec.id_filter(),
                    },
                })?;
            if next == Next::Done {
                return self.hand_over(spec, page, pager, progress, each);
            }
            self.hand_over(spec, page, pager, progress, each)?;
            current = self.send_page(spec, size, page + 1).await?;
            if current.size != size {
                // Pages of another size: the next one says nothing about the end.
                pager.page_size_changed();
            }
        }
    }

    /// Sends page `page` of a list at `size` rows. A 400 that refuses the page size is
    /// not a failure: the same rows are asked again at the largest size that can pass
    /// (100, then halving), the size accepted is used from then on (this run and, through
    /// [`Client::page_sizes`], the next ones), and one warning says so.
    async fn send_page(
        &self,
        spec: &ListSpec,
        size: u32,
        page: u32,
    ) -> Result<PageAnswer, ApiError> {
        let (asked, mut size, mut page) = (size, size, page);
        loop {
            let req = self.page_request(spec, size, page)?;
            match self.send(&req).await {
                Ok(answer) => {
                    if size != asked && self.warns_of_page_sizes {
                        warn!(
                            endpoint = %req.endpoint(),
                            refused = asked,
                            accepted = size,
                            "the API refused the page size; asking {size} rows a page from now on (remembered in the database)"
                        );
                    }
                    return Ok(PageAnswer {
                        req,
                        answer,
                        page,
                        size,
                    });
                }
                Err(e) if refuses_page_size(&e) => {
                    let offset = u64::from(page - 1) * u64::from(size);
                    let Some(smaller) = smaller_page_size(size, offset) else {
                        return Err(e);
                    };
                    page = u32::try_from(offset / u64::from(smaller) + 1).map_err(|_| e)?;
                    size = smaller;
                    self.with_state(|s| {
                        let known = s.page_size.entry(spec.entity).or_insert(size);
                        *known = (*known).min(size);
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The request for page `page` of a list; refused beyond `api.max_pages`.
    fn page_request(&self, spec: &ListSpec, per_page: u32, page: u32) -> Result<Request, ApiError> {
        let mut query = spec.query.clone();
        query.push("page", page).push("per_page", per_page);
        let mut req = self.request(Method::GET, "GET", spec.path, query, Some(page));
        if page > self.max_pages {
            req.page = None;
            return Err(ApiError::Paging {
                endpoint: req.endpoint(),
                message: format!(
                    "still not at the end after {} pages (api.max_pages): the server never ends",
                    self.max_pages
                ),
            });
        }
        Ok(req)
    }

    /// Gives a streaming pull's page to `each` and reports progress.
    fn hand_over<T: HasId, E>(
        &self,
        spec: &ListSpec,
        page: u32,
        pager: &mut Pager<T>,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<T>>) -> Result<(), E>,
    ) -> Result<(), E> {
        if pager.is_streaming() {
            each(pager.take_page())?;
        }
        let stats = self.stats();
        progress(&PageProgress {
            entity: spec.entity,
            page,
            rows: pager.collected(),
            requests: stats.requests,
            quota_remaining: stats.quota.and_then(|q| q.remaining),
            pacing_wait: stats.pacing_wait,
        });
        Ok(())
    }

    /// Decodes a list body; the error names the endpoint, page and item. Items it
    /// quarantined are remembered for the run ([`Client::quarantined`]).
    fn decode_list<T>(&self, req: &Request, body: &[u8]) -> Result<DecodedPage<T>, ApiError>
    where
        T: DeserializeOwned + KnownFields + Send,
    {
        let decoded = decode_page::<T>(body).map_err(|message| ApiError::Decode {
            endpoint: req.endpoint(),
            message: self.redact(message),
        })?;
        if !decoded.quarantined.is_empty() {
            let endpoint = req.endpoint();
            let found: Vec<Quarantined> = decoded
                .quarantined
                .iter()
                .map(|(id, why)| Quarantined {
                    list: req.path.rsplit('/').next().unwrap_or_default().to_string(),
                    id: *id,
                    reason: self.redact(format!("{endpoint}: {why}")),
                })
                .collect();
            self.with_state(|s| s.quarantined.extend(found));
        }
        Ok(decoded)
    }

    fn org_path(&self, suffix: &str) -> String {
        format!("/organizations/{}{suffix}", self.organization_id)
    }

    fn request(
        &self,
        method: Method,
        method_name: &'static str,
        suffix: &str,
        query: Query,
        page: Option<u32>,
    ) -> Request {
        Request {
            method,
            method_name,
            path: self.org_path(suffix),
            query,
            body: None,
            page,
            retry_failures: true,
        }
    }
}

/// The list a row quarantined by [`Client::pull_custom_fields_each`] is recorded under.
pub const CUSTOM_FIELDS_LIST: &str = "custom_fields";

/// The users list's filter to one workspace, in the published form (`workspaces=N`; the
/// reference page's is `workspaces[]=N`). The one place the custom fields pull sets it: where
/// the client learns which id-filter form the users list honours, that form goes here.
fn push_workspace_filter(query: &mut Query, workspace_id: i64) {
    query.push("workspaces", workspace_id);
}

/// A paged list endpoint with its fixed query.
struct ListSpec {
    entity: &'static str,
    path: &'static str,
    query: Query,
}

impl ListSpec {
    /// The id filter a by-id read of this list sends, for messages.
    fn id_filter(&self) -> &'static str {
        match self.entity {
            "users" => "org_user_ids",
            _ => "group_ids",
        }
    }
}

/// `users` or `teams`, the lists whose page size and id filter form are known across runs.
fn known_list(list: &str) -> Option<&'static str> {
    match list {
        "users" => Some("users"),
        "teams" => Some("teams"),
        _ => None,
    }
}

/// Writes an id filter in `form`: `name=1,2,3`, or `bracketed=1&bracketed=2`.
fn push_id_filter(query: &mut Query, form: IdFilter, name: &str, bracketed: &str, ids: &[i64]) {
    if form == IdFilter::Brackets {
        for id in ids {
            query.push(bracketed, id);
        }
    } else {
        query.push_ids(name, ids);
    }
}

/// The Track v9 paging headers: the rows of the whole list, and its pages.
const X_RECORDS: &str = "x-records";
const X_PAGES: &str = "x-pages";

/// A count in a header (`X-Records: 1234`), when it is one.
fn header_count(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
}

/// What a page's answer announces about the whole list: `total` in the body, else
/// `X-Records`; `X-Pages`.
fn announced<T>(decoded: &DecodedPage<T>, answer: &Answer) -> Announced {
    Announced {
        total: decoded
            .total
            .or_else(|| header_count(&answer.headers, X_RECORDS)),
        pages: header_count(&answer.headers, X_PAGES),
    }
}

/// Whether a 400 is the server refusing the page size (the Go validator names
/// `Pagination.PerPage`; other servers say `per_page` or `page size`).
fn refuses_page_size(error: &ApiError) -> bool {
    let ApiError::Status {
        status: 400, body, ..
    } = error
    else {
        return false;
    };
    let squeezed: String = body
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    squeezed.contains("perpage") || squeezed.contains("pagesize")
}

/// The largest page size that can pass after `size` was refused: 100, then halving; it
/// must divide `offset` (the rows before the page asked for), so that the same rows
/// follow. `None` when there is nothing smaller to ask.
fn smaller_page_size(size: u32, offset: u64) -> Option<u32> {
    let mut candidate = if size > 100 { 100 } else { size / 2 };
    while candidate > 0 && offset % u64::from(candidate) != 0 {
        candidate -= 1;
    }
    (candidate > 0).then_some(candidate)
}

/// A page's answer with the page number and size it was asked at (a page-size refusal
/// may have changed both).
struct PageAnswer {
    req: Request,
    answer: Answer,
    page: u32,
    size: u32,
}

/// Splits `ids` (sorted, deduplicated) into requests of `size` ids.
fn batches(ids: &[i64], size: usize) -> Vec<Vec<i64>> {
    let size = size.max(1);
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    unique.chunks(size).map(<[i64]>::to_vec).collect()
}

fn encode_body(req: &Request, body: &GroupWrite) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(body).map_err(|e| ApiError::Decode {
        endpoint: req.endpoint(),
        message: format!("cannot encode the request body: {e}"),
    })
}

/// Rows of a streamed pull, one per id in first-seen order; a later copy replaces an
/// earlier one (rows shift while paging, and the later copy is the fresher).
struct Distinct<T> {
    rows: Vec<WithUnknown<T>>,
    at: std::collections::HashMap<i64, usize>,
}

impl<T> Default for Distinct<T> {
    fn default() -> Self {
        Distinct {
            rows: Vec::new(),
            at: std::collections::HashMap::new(),
        }
    }
}

impl<T: HasId> Distinct<T> {
    fn extend(&mut self, page: Vec<WithUnknown<T>>) {
        for row in page {
            // The pager has already rejected rows without an id.
            let id = row.0.id().unwrap_or_default();
            match self.at.get(&id) {
                Some(&i) => self.rows[i] = row,
                None => {
                    self.at.insert(id, self.rows.len());
                    self.rows.push(row);
                }
            }
        }
    }
}

#[cfg(test)]
mod page_size_tests {
    use super::*;

    #[test]
    fn a_refused_size_steps_to_100_then_halves_keeping_the_rows_that_follow() {
        assert_eq!(smaller_page_size(200, 0), Some(100));
        assert_eq!(smaller_page_size(100, 0), Some(50));
        assert_eq!(smaller_page_size(1, 0), None);
        // 150 a page, page 3 refused: 300 rows before it, so 100 a page from page 4.
        assert_eq!(smaller_page_size(150, 300), Some(100));
        // 120 a page, page 2 refused: 120 rows before it; 100 does not divide them, 60 does.
        assert_eq!(smaller_page_size(120, 120), Some(60));
    }

    #[test]
    fn only_a_400_naming_the_page_size_is_a_page_size_refusal() {
        let status = |status: u16, body: &str| ApiError::Status {
            endpoint: Endpoint {
                method: "GET",
                path: "/x".into(),
                page: Some(1),
            },
            status,
            body: body.into(),
            json: None,
        };
        for body in [
            "Key: 'Pagination.PerPage' Error:Field validation for 'PerPage' failed on the 'max' tag",
            "per_page must be at most 100",
            "invalid page size",
        ] {
            assert!(refuses_page_size(&status(400, body)), "{body}");
        }
        assert!(!refuses_page_size(&status(
            400,
            "Key: 'Filter.Status' failed"
        )));
        assert!(!refuses_page_size(&status(500, "per_page")));
    }

    #[test]
    fn ids_go_out_sorted_once_in_batches_of_the_size() {
        type Case = (&'static str, &'static [i64], usize, Vec<Vec<i64>>);
        let cases: [Case; 5] = [
            ("none", &[], 3, vec![]),
            (
                "unsorted, repeated",
                &[5, 1, 3, 1, 5],
                2,
                vec![vec![1, 3], vec![5]],
            ),
            (
                "an exact multiple",
                &[1, 2, 3, 4],
                2,
                vec![vec![1, 2], vec![3, 4]],
            ),
            ("one batch", &[9, 8], 100, vec![vec![8, 9]]),
            ("a size of 0 is 1", &[2, 1], 0, vec![vec![1], vec![2]]),
        ];
        for (case, ids, size, expected) in cases {
            assert_eq!(batches(ids, size), expected, "{case}");
        }
    }

    #[test]
    fn a_count_header_is_a_non_negative_integer() {
        let mut headers = HeaderMap::new();
        assert_eq!(header_count(&headers, X_RECORDS), None);
        for (value, count) in [
            ("1234", Some(1234)),
            (" 7 ", Some(7)),
            ("0", Some(0)),
            ("-1", None),
            ("1.5", None),
            ("many", None),
        ] {
            headers.insert(X_RECORDS, HeaderValue::from_static(value));
            assert_eq!(header_count(&headers, X_RECORDS), count, "{value:?}");
        }
    }
}

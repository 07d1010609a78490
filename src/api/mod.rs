//! The upstream: a typed client for every endpoint of the seed, with auth, paging,
//! retries and quota accounting.
//!
//! Every request goes through one private path (`transport::Client::send`): it
//! waits while the quota is known to be spent, counts the attempt, reads the quota
//! headers of every answer, reads the body under `api.max_body_bytes`, retries 5xx,
//! timeouts and connection errors with capped, jittered backoff within
//! `api.max_retry_time` (but not a server certificate rustls refused: asking again will
//! not make it trusted), honours 429 `Retry-After`, and waits out 402 (quota spent)
//! within `api.max_quota_wait`. Paged lists follow the stop rules in [`paging`].
//!
//! Writes: POST and DELETE are never repeated after a 5xx, timeout or connection error
//! (the server may have applied them; a repeated DELETE would answer 404 for a group it
//! did delete), PUT is (it replaces the group with the same body). All of them wait out
//! 402 and 429, which the server answers without processing the request.
//!
//! **Secrets never leave this module**: the `Authorization` header is marked sensitive,
//! and error texts built from server answers are scrubbed of the credentials.

mod decode;
pub mod models;
pub mod paging;
mod transport;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::config::{ApiConfig, Credentials};
pub use decode::{decode_page, split_unknown_fields, DecodedPage, Envelope};
use models::{Group, GroupRef, GroupWrite, KnownFields, OrganizationUser, Role, Team};
use paging::{HasId, Next, PageError, Pager};
pub use transport::MAX_QUOTA_RESET;
use transport::{Query, Request};

/// Where a request went, for error messages: `GET /organizations/1/users page 3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// Path below the base URL, e.g. `/organizations/1001/users`.
    pub path: String,
    /// The page number for paged lists.
    pub page: Option<u32>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(p) = self.page {
            write!(f, " page {p}")?;
        }
        Ok(())
    }
}

/// A request that did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401/403: the credentials are wrong or lack access. Never retried.
    #[error("{endpoint}: HTTP {status}: access denied — the credentials were refused or may not see this organization; check the API token (or e-mail and password), api.organization_id and api.workspace_id, and that this user may see organization data: {body}")]
    Auth {
        endpoint: Endpoint,
        status: u16,
        body: String,
    },
    /// Any other non-2xx answer (after retries, for 5xx/429).
    #[error("{endpoint}: HTTP {status}: {body}")]
    Status {
        endpoint: Endpoint,
        status: u16,
        body: String,
    },
    /// Connection refused, reset, DNS, TLS… (after retries).
    #[error("{endpoint}: {message}")]
    Transport { endpoint: Endpoint, message: String },
    /// No complete answer within `api.request_timeout` (after retries).
    #[error("{endpoint}: timed out after {0:?}", .after)]
    Timeout { endpoint: Endpoint, after: Duration },
    /// The body was not the JSON the endpoint promises.
    #[error("{endpoint}: invalid response body: {message}")]
    Decode { endpoint: Endpoint, message: String },
    /// The body exceeded `api.max_body_bytes`.
    #[error(
        "{endpoint}: response body larger than the limit of {limit} bytes (api.max_body_bytes)"
    )]
    BodyTooLarge { endpoint: Endpoint, limit: u64 },
    /// A redirect, which is never followed with credentials.
    #[error(
        "{endpoint}: HTTP {status} redirect to {location:?} not followed (check api.base_url)"
    )]
    Redirect {
        endpoint: Endpoint,
        status: u16,
        location: String,
    },
    /// The request quota is spent and would not reset within `api.max_quota_wait`.
    #[error("{endpoint}: request quota spent; it resets in {resets_in:?}, longer than the {budget:?} left of api.max_quota_wait")]
    QuotaExhausted {
        endpoint: Endpoint,
        resets_in: Duration,
        budget: Duration,
    },
    /// Retrying would exceed `api.max_retry_time` for this run.
    #[error("{endpoint}: gave up after {attempts} attempts: {last}")]
    GaveUp {
        endpoint: Endpoint,
        attempts: u32,
        last: String,
    },
    /// A paged list misbehaved: a repeated page, no end, …
    #[error("{endpoint}: {message}")]
    Paging { endpoint: Endpoint, message: String },
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
    /// Credential strings scrubbed from error texts.
    secrets: Vec<SecretString>,
    state: Mutex<State>,
}

/// Per-run counters and what the client has learned about the server.
#[derive(Debug, Default)]
struct State {
    requests: u32,
    retries: u32,
    quota_wait: Duration,
    retry_wait: Duration,
    quota: Option<QuotaSeen>,
    /// The precise reset time behind `quota.resets_at_unix`.
    reset_at: Option<SystemTime>,
    users: PageSizes,
    teams: PageSizes,
    /// Items quarantined this run, in the order met.
    quarantined: Vec<Quarantined>,
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

    /// Ids per by-id request: at most 100, and no more than the server's cap.
    fn batch(&self) -> usize {
        self.cap
            .unwrap_or(MAX_IDS_PER_REQUEST)
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
        let authorization = credentials.authorization(api.auth_scheme);
        let mut auth = HeaderValue::from_str(authorization.expose_secret()).map_err(|_| {
            setup_error(
                "the credentials contain characters that cannot be sent in an HTTP header"
                    .to_string(),
            )
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
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
        let mut secrets = vec![authorization.clone()];
        if let Some((_, credential)) = authorization.expose_secret().split_once(' ') {
            secrets.push(SecretString::from(credential.to_string()));
        }
        match credentials {
            Credentials::Token(token) => secrets.push(token.clone()),
            Credentials::Login { password, .. } => secrets.push(password.clone()),
        }
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
            secrets,
            state: Mutex::new(State::default()),
        })
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

    /// The counters of the current run and the last quota seen.
    pub fn stats(&self) -> RequestStats {
        self.with_state(|s| RequestStats {
            requests: s.requests,
            quota: s.quota,
            retries: s.retries,
            quota_wait: s.quota_wait,
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
        let body = self.send(&req).await?;
        self.decode_list::<Role>(&req, &body, Envelope::Items)
            .map(|p| p.items)
    }

    /// `GET /organizations/{id}/groups/me`: the groups the credentials' user belongs to.
    pub async fn my_groups(&self) -> Result<Vec<GroupRef>, ApiError> {
        let req = self.request(Method::GET, "GET", "/groups/me", Query::default(), None);
        let body = self.send(&req).await?;
        let page = self.decode_list::<GroupRef>(&req, &body, Envelope::Items)?;
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
        Ok(serde_json::from_slice::<Group>(&answer).ok())
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
        Ok(serde_json::from_slice::<Group>(&answer).ok())
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
    /// is the fresher. An error from `each` fails the pull, naming the page.
    pub async fn pull_teams_each(
        &self,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<Team>>) -> Result<(), String>,
    ) -> Result<(), ApiError> {
        let spec = self.teams_spec(&[]);
        let mut pager = Pager::streaming();
        self.pull(&spec, self.per_page, &mut pager, progress, each)
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
    pub async fn pull_users_each(
        &self,
        include_rates: bool,
        include_working_hours: bool,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<OrganizationUser>>) -> Result<(), String>,
    ) -> Result<(), ApiError> {
        let spec = self.users_spec(Query::default(), include_rates, include_working_hours);
        let mut pager = Pager::streaming();
        self.pull(&spec, self.per_page, &mut pager, progress, each)
            .await?;
        self.with_state(|s| s.users.learn(&pager));
        Ok(())
    }

    /// Re-reads specific users through the `org_user_ids[]` filter, in batches (at most
    /// 100 ids, or the server's page cap when a pull has shown one). Ids that do not come
    /// back are gone (or invisible to these credentials).
    pub async fn users_by_ids(
        &self,
        ids: &[i64],
        include_rates: bool,
        include_working_hours: bool,
    ) -> Result<Vec<WithUnknown<OrganizationUser>>, ApiError> {
        let sizes = self.with_state(|s| s.users);
        self.by_ids(ids, sizes, "org_user_ids[]", |batch| {
            let mut query = Query::default();
            for id in batch {
                query.push("org_user_ids[]", id);
            }
            self.users_spec(query, include_rates, include_working_hours)
        })
        .await
    }

    /// Re-reads specific teams through the `group_ids[]` filter, batched like
    /// [`Client::users_by_ids`].
    pub async fn teams_by_ids(&self, ids: &[i64]) -> Result<Vec<WithUnknown<Team>>, ApiError> {
        let sizes = self.with_state(|s| s.teams);
        self.by_ids(ids, sizes, "group_ids[]", |batch| self.teams_spec(batch))
            .await
    }

    /// The first row of the teams list, one request: whether `api.workspace_id` lets this
    /// user list the groups (`check`). Returns the `total` the server announced.
    pub async fn teams_probe(&self) -> Result<Option<i64>, ApiError> {
        let spec = self.teams_spec(&[]);
        let req = self.page_request(&spec, 1, 1)?;
        let body = self.send(&req).await?;
        let decoded = self.decode_list::<Team>(&req, &body, spec.envelope)?;
        Ok(decoded.total)
    }

    /// Asks for `ids` in batches through the list whose filter `spec_for` builds.
    async fn by_ids<T>(
        &self,
        ids: &[i64],
        sizes: PageSizes,
        filter: &'static str,
        spec_for: impl Fn(&[i64]) -> ListSpec,
    ) -> Result<Vec<WithUnknown<T>>, ApiError>
    where
        T: DeserializeOwned + KnownFields + HasId + Send,
    {
        let mut found = Vec::new();
        for batch in batches(ids, sizes.batch()) {
            let spec = spec_for(&batch);
            let mut pager = Pager::for_ids(&batch, filter);
            self.pull(
                &spec,
                batch.len() as u32,
                &mut pager,
                &mut |_| {},
                &mut |_| Ok(()),
            )
            .await?;
            found.extend(pager.finish());
        }
        Ok(found)
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
            envelope: Envelope::Items,
        }
    }

    fn teams_spec(&self, ids: &[i64]) -> ListSpec {
        let mut query = Query::default();
        query.push("workspace_id", self.workspace_id);
        for id in ids {
            query.push("group_ids[]", id);
        }
        ListSpec {
            entity: "teams",
            path: "/teams",
            query,
            envelope: Envelope::Data,
        }
    }

    /// Pages through one list until the pager's stop rules say done.
    async fn pull<T>(
        &self,
        spec: &ListSpec,
        per_page: u32,
        pager: &mut Pager<T>,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<T>>) -> Result<(), String>,
    ) -> Result<(), ApiError>
    where
        T: DeserializeOwned + KnownFields + HasId + Send,
    {
        let mut page: u32 = 1;
        let mut req = self.page_request(spec, per_page, page)?;
        let mut body = self.send(&req).await?;
        loop {
            let decoded = self.decode_list::<T>(&req, &body, spec.envelope)?;
            let next = pager
                .accept(page, decoded.items, decoded.total)
                .map_err(|e| match e {
                    PageError::Decode(message) => ApiError::Decode {
                        endpoint: req.endpoint(),
                        message,
                    },
                    PageError::Paging(message) => ApiError::Paging {
                        endpoint: req.endpoint(),
                        message,
                    },
                })?;
            if next == Next::Done {
                return self.hand_over(spec, &req, page, pager, progress, each);
            }
            // The next page is needed whatever this one holds: ask for it first, so the
            // server builds it while this one is handed over.
            let next_req = self.page_request(spec, per_page, page + 1)?;
            body = {
                let mut fetch = std::pin::pin!(self.send(&next_req));
                let early = start(&mut fetch).await;
                self.hand_over(spec, &req, page, pager, progress, each)?;
                match early {
                    Some(answer) => answer?,
                    None => fetch.await?,
                }
            };
            req = next_req;
            page += 1;
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
    fn hand_over<T: HasId>(
        &self,
        spec: &ListSpec,
        req: &Request,
        page: u32,
        pager: &mut Pager<T>,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<T>>) -> Result<(), String>,
    ) -> Result<(), ApiError> {
        if pager.is_streaming() {
            each(pager.take_page()).map_err(|message| ApiError::Decode {
                endpoint: req.endpoint(),
                message,
            })?;
        }
        let stats = self.stats();
        progress(&PageProgress {
            entity: spec.entity,
            page,
            rows: pager.collected(),
            requests: stats.requests,
            quota_remaining: stats.quota.and_then(|q| q.remaining),
        });
        Ok(())
    }

    /// Decodes a list body; the error names the endpoint, page and item. Items it
    /// quarantined are remembered for the run ([`Client::quarantined`]).
    fn decode_list<T>(
        &self,
        req: &Request,
        body: &[u8],
        envelope: Envelope,
    ) -> Result<DecodedPage<T>, ApiError>
    where
        T: DeserializeOwned + KnownFields + Send,
    {
        let decoded = decode_page::<T>(body, envelope).map_err(|message| ApiError::Decode {
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

/// A paged list endpoint with its fixed query.
struct ListSpec {
    entity: &'static str,
    path: &'static str,
    query: Query,
    envelope: Envelope,
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

/// Polls `fut` once, so that a request goes out now and proceeds (on the runtime's other
/// threads) while the caller works; its answer if it already has one.
async fn start<F: Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match Pin::new(&mut *fut).poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

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
//!
//! Here: the [`Client`] and what it keeps across requests (credentials, pacing, quota, page
//! sizes and id filter forms learned). Its parts: `lists.rs` (paged lists), `by_ids.rs`
//! (reads by id), `groups.rs` (the group writes), `transport.rs` (the send path),
//! `decode.rs` (bodies into models), `error.rs` ([`ApiError`] and how an error answer is told).

mod audit;
mod by_ids;
pub mod capture;
mod decode;
mod error;
mod groups;
mod lists;
pub mod models;
pub mod paging;
pub mod probe;
pub mod replay;
mod transport;

#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::config::{ApiConfig, AuthScheme, Credentials, SentAs};
use crate::model::Quarantined;
pub use audit::{AuditPage, AUDIT_PAGE_SIZE};
use by_ids::MAX_IDS_PER_REQUEST;
pub use by_ids::{ByIds, IdFilter};
pub use decode::{decode_page, DecodedPage};
pub(crate) use error::plan_settings;
pub use error::{ApiError, Endpoint, ErrorParts};
use lists::ListSpec;
pub use lists::PageProgress;
use models::KnownFields;
use paging::{HasId, Pager};
pub use transport::MAX_QUOTA_RESET;
use transport::{Query, Request};

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
    pacer: Option<Pacer>,
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

/// Lets one request out every `period`, with no burst: requests are spaced, not bunched,
/// and the first after a pause goes at once.
struct Pacer {
    period: Duration,
    /// When the next request may go.
    next: Mutex<std::time::Instant>,
}

impl Pacer {
    /// At most `per_second` requests a second (`None` for 0: no pacing).
    fn new(per_second: f64) -> Option<Pacer> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return None;
        }
        let period = Duration::try_from_secs_f64(1.0 / per_second).ok()?;
        Some(Pacer {
            period,
            next: Mutex::new(std::time::Instant::now()),
        })
    }

    /// Takes the next slot and sleeps until it comes. A slot taken by a request that is
    /// then dropped stays taken: pacing errs on the slow side.
    async fn until_ready(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let slot = (*next).max(std::time::Instant::now());
            *next = slot + self.period;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
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
            pacer: Pacer::new(api.max_requests_per_second),
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

    /// Decodes a list body; the error names the endpoint, page and item. Items it
    /// quarantined are remembered for the run ([`Client::quarantined`]).
    fn decode_list<T>(&self, req: &Request, body: &[u8]) -> Result<DecodedPage<T>, ApiError>
    where
        T: DeserializeOwned + KnownFields + Send,
    {
        let decoded = decode_page::<T>(body).map_err(|e| ApiError::Decode {
            endpoint: req.endpoint(),
            message: self.redact(e.to_string()),
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

/// `users` or `teams`, the lists whose page size and id filter form are known across runs.
fn known_list(list: &str) -> Option<&'static str> {
    match list {
        "users" => Some("users"),
        "teams" => Some("teams"),
        _ => None,
    }
}

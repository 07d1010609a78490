//! The upstream: a typed client for every endpoint of the seed, with auth, paging,
//! retries and quota accounting.
//!
//! INTERFACE SKELETON — the bodies are filled in by the client work (issue 2/4).

pub mod models;

use std::time::Duration;

use crate::config::{ApiConfig, Credentials};
use models::{Group, GroupRef, GroupWrite, OrganizationUser, Role, Team};

/// Where a request went, for error messages: `GET /organizations/1/users page 3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
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
    #[error("{endpoint}: HTTP {status}: access denied — check the API token (or e-mail and password) and that this user may see organization data: {body}")]
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
    pub remaining: Option<i64>,
    /// When the window resets, as a Unix timestamp (seconds).
    pub resets_at_unix: Option<i64>,
}

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestStats {
    /// HTTP requests sent (every attempt counts).
    pub requests: u32,
    pub quota: Option<QuotaSeen>,
    pub retries: u32,
    pub quota_wait: Duration,
}

/// What a paged pull reports after each page (for progress lines).
#[derive(Debug, Clone, PartialEq)]
pub struct PageProgress {
    pub entity: &'static str,
    pub page: u32,
    pub rows: usize,
    pub requests: u32,
    pub quota_remaining: Option<i64>,
}

/// One item of a list with the top-level fields the model did not know, as canonical JSON.
pub type WithUnknown<T> = (T, Option<String>);

/// The client. One per process; [`Client::start_run`] resets the per-run counters.
pub struct Client {
    _private: (),
}

impl Client {
    pub fn new(_api: &ApiConfig, _credentials: &Credentials) -> Result<Client, ApiError> {
        todo!()
    }
    pub fn start_run(&self) {
        todo!()
    }
    pub fn stats(&self) -> RequestStats {
        todo!()
    }
    pub fn seed_quota(&self, _seen: QuotaSeen) {
        todo!()
    }
    pub async fn ensure_quota(&self, _expected_requests: u32) -> Result<(), ApiError> {
        todo!()
    }
    pub async fn roles(&self) -> Result<Vec<WithUnknown<Role>>, ApiError> {
        todo!()
    }
    pub async fn my_groups(&self) -> Result<Vec<GroupRef>, ApiError> {
        todo!()
    }
    pub async fn create_group(&self, _body: &GroupWrite) -> Result<Option<Group>, ApiError> {
        todo!()
    }
    pub async fn update_group(
        &self,
        _group_id: i64,
        _body: &GroupWrite,
    ) -> Result<Group, ApiError> {
        todo!()
    }
    pub async fn delete_group(&self, _group_id: i64) -> Result<(), ApiError> {
        todo!()
    }
    pub async fn pull_teams(
        &self,
        _progress: &mut dyn FnMut(&PageProgress),
    ) -> Result<Vec<WithUnknown<Team>>, ApiError> {
        todo!()
    }
    pub async fn pull_users(
        &self,
        _include_rates: bool,
        _include_working_hours: bool,
        _progress: &mut dyn FnMut(&PageProgress),
    ) -> Result<Vec<WithUnknown<OrganizationUser>>, ApiError> {
        todo!()
    }
    pub async fn users_by_ids(
        &self,
        _ids: &[i64],
        _include_rates: bool,
        _include_working_hours: bool,
    ) -> Result<Vec<WithUnknown<OrganizationUser>>, ApiError> {
        todo!()
    }
    pub async fn teams_by_ids(&self, _ids: &[i64]) -> Result<Vec<WithUnknown<Team>>, ApiError> {
        todo!()
    }
}

//! The HTTP side of the fake: one fallback handler that routes by hand, so that every
//! answer (unknown paths and bad parameters included) is under our control: plain text
//! (seed profile) or the reported JSON error body (focus profile).
//!
//! Order per request: log time, quota accounting (402 when spent), fault selection, then
//! auth (403), organization check (403), the endpoint itself, body faults, mutations.

use std::future::IntoFuture;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use base64::Engine as _;
use serde_json::Value;

use super::org::{FakeGroup, WithExtra};
use super::wire::{
    self, ErrorBody, GroupRef, GroupWriteBody, ListShape, OrganizationUser, PageFacts, Team,
    PER_PAGE_REFUSAL,
};
use super::{
    ArrayFilters, FakeHandle, FakeProfile, FakeState, Fault, FaultKind, LoggedRequest,
    PagingHeader, Route, KEY_EXPIRED, KEY_REVOKED,
};

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Serves until `stopped` fires (or the sender is dropped).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    handle: FakeHandle,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let app = Router::new().fallback(handle_request).with_state(handle);
    tokio::select! {
        served = axum::serve(listener, app).into_future() => {
            if let Err(error) = served {
                tracing::warn!(%error, "fake API stopped serving");
            }
        }
        _ = stopped => {}
    }
}

/// The endpoints of the seed, as recognised from the path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Users,
    Teams,
    Roles,
    MyGroups,
    /// `…/groups` (create).
    Groups,
    /// `…/groups/{group_id}`, the id as written.
    Group(String),
}

/// The organization segment and endpoint of a path below `/api/organizations/`.
fn parse_path(path: &str) -> Option<(String, Endpoint)> {
    let rest = path.strip_prefix("/api/organizations/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let endpoint = match parts.as_slice() {
        [_, "users"] => Endpoint::Users,
        [_, "teams"] => Endpoint::Teams,
        [_, "roles"] => Endpoint::Roles,
        [_, "groups"] => Endpoint::Groups,
        [_, "groups", "me"] => Endpoint::MyGroups,
        [_, "groups", id] if !id.is_empty() => Endpoint::Group(id.to_string()),
        _ => return None,
    };
    Some((parts[0].to_string(), endpoint))
}

fn route_of(method: &Method, endpoint: &Endpoint) -> Option<Route> {
    Some(match (method.as_str(), endpoint) {
        ("GET", Endpoint::Users) => Route::Users,
        ("GET", Endpoint::Teams) => Route::Teams,
        ("GET", Endpoint::Roles) => Route::Roles,
        ("GET", Endpoint::MyGroups) => Route::MyGroups,
        ("POST", Endpoint::Groups) => Route::CreateGroup,
        ("PUT", Endpoint::Group(_)) => Route::UpdateGroup,
        ("DELETE", Endpoint::Group(_)) => Route::DeleteGroup,
        _ => return None,
    })
}

/// The decoded query string; repeated keys (`ids[]=1&ids[]=2`) are kept in order.
#[derive(Debug, Clone, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Params {
        Params(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_string(), value));
    }

    fn int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.first(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("invalid {key}: {v:?} is not an integer")),
        }
    }

    /// The values of a filter that takes several, written as `form` says (`name=1,2`, or
    /// `name[]=1&name[]=2`); the other form is an unknown parameter, so ignored.
    fn array(&self, form: ArrayFilters, name: &str) -> Vec<String> {
        match form {
            ArrayFilters::Comma => self
                .first(name)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            ArrayFilters::Brackets => {
                let key = format!("{name}[]");
                self.all(&key).map(str::to_string).collect()
            }
            ArrayFilters::Ignored => Vec::new(),
        }
    }

    /// [`Params::array`] of integers.
    fn array_ints(&self, form: ArrayFilters, name: &str) -> Result<Vec<i64>, String> {
        let shown = match form {
            ArrayFilters::Brackets => format!("{name}[]"),
            _ => name.to_string(),
        };
        self.array(form, name)
            .iter()
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("invalid {shown}: {v:?} is not an integer"))
            })
            .collect()
    }

    fn bool(&self, key: &str) -> Result<bool, String> {
        match self.first(key) {
            None => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") | Some("") => Ok(false),
            Some(v) => Err(format!("invalid {key}: {v:?} is not a boolean")),
        }
    }

    /// The page a request asks for, for fault matching (1 when absent or unreadable).
    fn page_for_faults(&self) -> u32 {
        self.first("page")
            .and_then(|p| p.trim().parse::<u32>().ok())
            .unwrap_or(1)
    }
}

/// `page`, `per_page` and `sort_dir`, validated and capped.
#[derive(Debug, Clone, Copy)]
struct Paging {
    page: usize,
    per_page: usize,
    desc: bool,
}

impl Paging {
    fn from(params: &Params, cap: usize, max: Option<usize>) -> Result<Paging, String> {
        let page = params.int("page")?.unwrap_or(1);
        if page < 1 {
            return Err(format!("invalid page: {page} (pages start at 1)"));
        }
        let per_page = params.int("per_page")?.unwrap_or(50);
        if per_page < 1 {
            return Err(format!("invalid per_page: {per_page} (at least 1)"));
        }
        if max.is_some_and(|max| usize::try_from(per_page).unwrap_or(usize::MAX) > max) {
            return Err(PER_PAGE_REFUSAL.to_string());
        }
        let desc = match params.first("sort_dir") {
            None | Some("") => false,
            Some(d) if d.eq_ignore_ascii_case("asc") => false,
            Some(d) if d.eq_ignore_ascii_case("desc") => true,
            Some(d) => return Err(format!("invalid sort_dir: {d:?} (asc or desc)")),
        };
        Ok(Paging {
            page: usize::try_from(page).unwrap_or(usize::MAX),
            per_page: usize::try_from(per_page).unwrap_or(usize::MAX).min(cap),
            desc,
        })
    }

    /// Positions (in sort order) of this page's rows in a list of `n`.
    fn positions(&self, n: usize) -> impl Iterator<Item = usize> {
        let start = (self.page - 1).saturating_mul(self.per_page).min(n);
        let end = start.saturating_add(self.per_page).min(n);
        let desc = self.desc;
        (start..end).map(move |i| if desc { n - 1 - i } else { i })
    }

    /// What a page of a list of `total` rows announces.
    fn facts(&self, total: usize) -> PageFacts {
        PageFacts {
            page: self.page,
            per_page: self.per_page,
            total,
        }
    }
}

/// A response before faults and quota headers are applied.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    /// Extra headers (the paging headers of a list).
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn text(status: StatusCode, message: impl Into<String>) -> Reply {
        let mut body: Vec<u8> = message.into().into_bytes();
        body.push(b'\n');
        Reply {
            status,
            content_type: TEXT,
            body,
            headers: Vec::new(),
        }
    }

    /// An error as the profile words it: plain text (seed) or
    /// `{"error", "error_description", "trace_id"}` (focus).
    fn error(profile: FakeProfile, status: StatusCode, message: impl Into<String>) -> Reply {
        let message = message.into();
        match profile {
            FakeProfile::Seed => Reply::text(status, message),
            FakeProfile::Focus => {
                let word = if message == PER_PAGE_REFUSAL {
                    "validation"
                } else {
                    wire::error_word(status.as_u16())
                };
                Reply::json(
                    status,
                    &ErrorBody {
                        error: word,
                        error_description: &message,
                        error_values: None,
                        trace_id: wire::trace_id(),
                    },
                )
            }
        }
    }

    /// A validation error with the `error_values` the published spec gives it (focus; the
    /// seed's plain text has none).
    fn error_with_values(
        profile: FakeProfile,
        status: StatusCode,
        word: &str,
        message: &str,
        values: Value,
    ) -> Reply {
        match profile {
            FakeProfile::Seed => Reply::text(status, message),
            FakeProfile::Focus => Reply::json(
                status,
                &ErrorBody {
                    error: word,
                    error_description: message,
                    error_values: Some(values),
                    trace_id: wire::trace_id(),
                },
            ),
        }
    }

    fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
        Reply::encoded(status, serde_json::to_vec(value))
    }

    fn encoded(status: StatusCode, body: serde_json::Result<Vec<u8>>) -> Reply {
        match body {
            Ok(body) => Reply {
                status,
                content_type: JSON,
                body,
                headers: Vec::new(),
            },
            Err(e) => Reply::text(StatusCode::INTERNAL_SERVER_ERROR, format!("encode: {e}")),
        }
    }

    fn into_response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body));
        *resp.status_mut() = self.status;
        if !resp.body().is_empty_hint() {
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, value);
            }
        }
        resp
    }
}

/// A list page in the shape the fake serves for it, with the paging headers when on.
fn list_reply<T: serde::Serialize>(
    s: &FakeState,
    shape: ListShape,
    rows: &[T],
    facts: PageFacts,
) -> Reply {
    let mut reply = Reply::encoded(StatusCode::OK, wire::list_body(shape, rows, facts));
    if reply.status.is_success() {
        let pages = facts.total.div_ceil(facts.per_page.max(1));
        reply.headers = s
            .paging_headers
            .iter()
            .map(|h| match h {
                PagingHeader::Records => ("X-Records", facts.total.to_string()),
                PagingHeader::Pages => ("X-Pages", pages.to_string()),
                PagingHeader::Page => ("X-Page", facts.page.to_string()),
                PagingHeader::PageSize => ("X-Page-Size", facts.per_page.to_string()),
            })
            .collect();
    }
    reply
}

trait EmptyHint {
    fn is_empty_hint(&self) -> bool;
}

impl EmptyHint for Body {
    fn is_empty_hint(&self) -> bool {
        use axum::body::HttpBody;
        self.size_hint().exact() == Some(0)
    }
}

/// The quota state a response announces.
#[derive(Debug, Clone, Copy)]
struct QuotaNote {
    remaining: u32,
    resets_in: u64,
    spent: bool,
}

fn count_against_quota(s: &mut FakeState, now: Instant) -> Option<QuotaNote> {
    let quota = s.quota?;
    let (start, used) = s.quota_window.get_or_insert((now, 0));
    if now.duration_since(*start) >= quota.window {
        *start = now;
        *used = 0;
    }
    let left = quota.window.saturating_sub(now.duration_since(*start));
    // Rounded up: a client waiting this long is sure to find the window reset.
    let resets_in = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    if *used >= quota.limit {
        return Some(QuotaNote {
            remaining: 0,
            resets_in,
            spent: true,
        });
    }
    *used += 1;
    Some(QuotaNote {
        remaining: quota.limit - *used,
        resets_in,
        spent: false,
    })
}

fn set_quota_headers(resp: &mut Response, remaining: u32, resets_in: u64) {
    let h = resp.headers_mut();
    h.insert("X-Toggl-Quota-Remaining", HeaderValue::from(remaining));
    h.insert("X-Toggl-Quota-Resets-In", HeaderValue::from(resets_in));
}

/// Takes the first fault matching this request, counting down its `times`.
fn take_fault(s: &mut FakeState, route: Option<Route>, page: u32) -> Option<FaultKind> {
    let idx = s.faults.iter().position(|f: &Fault| {
        let route_ok = f.route == Route::Any || Some(f.route) == route;
        let page_ok = f.page.is_none_or(|p| p == page);
        route_ok && page_ok && f.times != Some(0)
    })?;
    let fault = &mut s.faults[idx];
    let kind = fault.kind.clone();
    if let Some(n) = fault.times.as_mut() {
        *n -= 1;
        if *n == 0 {
            s.faults.remove(idx);
        }
    }
    Some(kind)
}

/// Request bodies larger than this get a 413 (group writes are tiny).
const MAX_REQUEST_BODY: usize = 1024 * 1024;

async fn handle_request(State(handle): State<FakeHandle>, request: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    // Read here rather than by an extractor, so that a rejected body is logged too.
    let body: Result<Bytes, _> = axum::body::to_bytes(body, MAX_REQUEST_BODY).await;
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let mut params = Params::parse(&query);
    let parsed = parse_path(&path);
    let route = parsed.as_ref().and_then(|(_, e)| route_of(&method, e));

    let (quota, fault, profile, latency) = {
        let mut s = handle.lock();
        let quota = count_against_quota(&mut s, at);
        let fault = match quota {
            Some(q) if q.spent => None,
            _ => take_fault(&mut s, route, params.page_for_faults()),
        };
        (quota, fault, s.profile, s.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let mut mutation = None;
    let mut resp = match (quota, fault) {
        (Some(q), _) if q.spent => Reply::error(
            profile,
            StatusCode::PAYMENT_REQUIRED,
            format!(
                "request quota exceeded; it resets in {} seconds",
                q.resets_in
            ),
        )
        .into_response(),
        (_, Some(FaultKind::Status(code, message))) => Reply::text(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
        )
        .into_response(),
        (
            _,
            Some(FaultKind::JsonError {
                status,
                error,
                description,
            }),
        ) => Reply::json(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            &ErrorBody {
                error: &error,
                error_description: &description,
                error_values: None,
                trace_id: wire::trace_id(),
            },
        )
        .into_response(),
        (_, Some(FaultKind::Html(code))) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            Reply {
                status,
                content_type: HTML,
                body: format!(
                    "<!DOCTYPE html>\n<html><head><title>{status}</title></head>\
                     <body><h1>{status}</h1><p>The server could not handle the request.</p></body></html>\n"
                )
                .into_bytes(),
                headers: Vec::new(),
            }
            .into_response()
        }
        (_, Some(FaultKind::TooManyRequests { retry_after })) => {
            let mut resp =
                Reply::error(profile, StatusCode::TOO_MANY_REQUESTS, "too many requests")
                    .into_response();
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                resp.headers_mut().insert(RETRY_AFTER, v);
            }
            resp
        }
        (_, Some(FaultKind::QuotaSpent { resets_in })) => {
            let mut resp = Reply::error(
                profile,
                StatusCode::PAYMENT_REQUIRED,
                format!("request quota exceeded; it resets in {resets_in} seconds"),
            )
            .into_response();
            set_quota_headers(&mut resp, 0, resets_in);
            resp
        }
        (_, Some(FaultKind::Redirect(to))) => {
            let mut resp = Reply::text(StatusCode::FOUND, "found").into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                resp.headers_mut().insert(LOCATION, v);
            }
            resp
        }
        (_, Some(FaultKind::Hang)) => match hanging_body().await {
            Ok(body) => {
                let mut resp = Response::new(body);
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
                resp
            }
            Err(e) => {
                Reply::text(StatusCode::INTERNAL_SERVER_ERROR, format!("hang: {e}")).into_response()
            }
        },
        (_, fault) => {
            if let Some(FaultKind::Delay(d)) = &fault {
                tokio::time::sleep(*d).await;
            }
            if let Some(FaultKind::RepeatPage(p)) = &fault {
                params.set("page", p.to_string());
            }
            let never_ends = matches!(fault, Some(FaultKind::NeverEnds));
            let reply = {
                let mut s = handle.lock();
                match &body {
                    Ok(body) => dispatch(
                        &mut s,
                        &method,
                        parsed.as_ref(),
                        &params,
                        &headers,
                        body,
                        never_ends,
                    ),
                    Err(e) => Reply::error(
                        profile,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("cannot read the request body: {e}"),
                    ),
                }
            };
            let reply = match &fault {
                Some(kind) if reply.status.is_success() => corrupt(reply, kind),
                _ => reply,
            };
            if let Some(FaultKind::MutateAfter(f)) = fault {
                mutation = Some(f);
            }
            reply.into_response()
        }
    };

    if let Some(q) = quota {
        // A `QuotaSpent` fault set its own numbers; keep them.
        if !resp.headers().contains_key("X-Toggl-Quota-Remaining") {
            set_quota_headers(&mut resp, q.remaining, q.resets_in);
        }
    }
    if let Some(f) = mutation {
        f(&handle);
    }
    handle.lock().log(LoggedRequest {
        at,
        method: method.to_string(),
        path,
        query,
        status: resp.status().as_u16(),
    });
    resp
}

/// Applies a body fault to a successful reply; other faults leave it as is.
fn corrupt(mut reply: Reply, kind: &FaultKind) -> Reply {
    match kind {
        FaultKind::Truncated => {
            let half = reply.body.len() / 2;
            reply.body.truncate(half);
            reply.content_type = JSON;
        }
        FaultKind::Malformed => {
            reply.body = b"<!-- upstream proxy --> this is not JSON {\"items\": [".to_vec();
            reply.content_type = JSON;
        }
        FaultKind::WrongType => {
            let mut value: Value =
                serde_json::from_slice(&reply.body).unwrap_or(Value::Object(Default::default()));
            spoil_first_id(&mut value);
            reply.body = serde_json::to_vec(&value).unwrap_or_default();
            reply.content_type = JSON;
        }
        FaultKind::Huge(n) => {
            let mut value: Value =
                serde_json::from_slice(&reply.body).unwrap_or(Value::Object(Default::default()));
            if !value.is_object() {
                value = Value::Object(Default::default());
            }
            if let Value::Object(map) = &mut value {
                map.insert("padding".to_string(), Value::String("x".repeat(*n)));
            }
            reply.body = serde_json::to_vec(&value).unwrap_or_default();
            reply.content_type = JSON;
        }
        _ => {}
    }
    reply
}

/// Puts `"abc"` where the first record's id is.
fn spoil_first_id(value: &mut Value) {
    let target = match value {
        Value::Object(map) => {
            let list = ["items", "data"]
                .iter()
                .find_map(|k| map.get(*k).filter(|v| v.is_array()).map(|_| *k));
            match list {
                Some(k) => map
                    .get_mut(k)
                    .and_then(|v| v.as_array_mut())
                    .and_then(|a| a.first_mut()),
                None => Some(value),
            }
        }
        Value::Array(rows) => rows.first_mut(),
        _ => None,
    };
    if let Some(Value::Object(record)) = target {
        let key = if record.contains_key("id") || !record.contains_key("role_id") {
            "id"
        } else {
            "role_id"
        };
        record.insert(key.to_string(), Value::String("abc".to_string()));
    }
}

/// A body whose first bytes arrive and the rest never does.
///
/// axum re-exports no body `Frame` type and the crate has no futures dependency, so a body
/// that stays pending is borrowed: a throwaway local socket sends response headers and one
/// chunk and then nothing, and the reqwest response read from it becomes our body. When our
/// client gives up, the borrowed connection closes and the helper task ends.
async fn hanging_body() -> std::io::Result<Body> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         transfer-encoding: chunked\r\n\r\n9\r\n{\"items\":\r\n";
            if socket.write_all(head).await.is_ok() {
                let mut buf = [0u8; 1024];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            }
        }
    });
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    let upstream = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .map_err(std::io::Error::other)?;
    Ok(Body::new(reqwest::Body::from(upstream)))
}

/// What credential a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presented {
    /// The accepted key or token (which may have run out).
    Key,
    /// The accepted e-mail and password.
    Login,
    /// A key or token that a newer one replaced.
    Revoked,
    /// Nothing the fake accepts.
    Refused,
}

/// Which credential the request carries.
fn presented(s: &FakeState, headers: &HeaderMap) -> Presented {
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Presented::Refused;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    let key_or_revoked = |given: &str, key: &str| {
        if !key.is_empty() && given == key {
            Presented::Key
        } else if s.revoked.iter().any(|old| old == given) {
            Presented::Revoked
        } else {
            Presented::Refused
        }
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        // The focus profile takes an API key as Bearer; the seed's fake took its token.
        let key = match s.profile {
            FakeProfile::Focus => &s.api_key,
            FakeProfile::Seed => &s.token,
        };
        return key_or_revoked(rest, key);
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Presented::Refused;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
        return Presented::Refused;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Presented::Refused;
    };
    let Some((user, password)) = decoded.split_once(':') else {
        return Presented::Refused;
    };
    if password == "api_token" {
        return key_or_revoked(user, &s.token);
    }
    if !s.email.is_empty() && user.eq_ignore_ascii_case(&s.email) && password == s.password {
        Presented::Login
    } else {
        Presented::Refused
    }
}

/// The refusal of a request's credentials, or `None` when they are accepted (a key's
/// use is counted against its expiry).
fn refuse_credentials(s: &mut FakeState, headers: &HeaderMap) -> Option<Reply> {
    let profile = s.profile;
    // The reference page knows only 403 for credentials it refuses.
    let refused = |reason: &str| match profile {
        FakeProfile::Seed => Reply::text(
            StatusCode::FORBIDDEN,
            format!("User does not have access: {reason}"),
        ),
        FakeProfile::Focus => Reply::error(profile, StatusCode::UNAUTHORIZED, reason),
    };
    match presented(s, headers) {
        Presented::Login => None,
        Presented::Key if s.key_expired() => Some(refused(KEY_EXPIRED)),
        Presented::Key => {
            s.key_uses += 1;
            None
        }
        Presented::Revoked => Some(refused(KEY_REVOKED)),
        Presented::Refused => Some(match profile {
            FakeProfile::Seed => refused("missing or invalid credentials"),
            FakeProfile::Focus => refused("invalid or missing API key"),
        }),
    }
}

fn dispatch(
    s: &mut FakeState,
    method: &Method,
    parsed: Option<&(String, Endpoint)>,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
    never_ends: bool,
) -> Reply {
    let profile = s.profile;
    let Some((org, endpoint)) = parsed else {
        return Reply::error(profile, StatusCode::NOT_FOUND, "not found");
    };
    if route_of(method, endpoint).is_none() {
        return Reply::error(
            profile,
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
        );
    }
    if let Some(refusal) = refuse_credentials(s, headers) {
        return refusal;
    }
    match org.parse::<i64>() {
        Ok(id) if id == s.org.organization_id => {}
        Ok(_) => {
            return Reply::error(
                profile,
                StatusCode::FORBIDDEN,
                "User does not have access to the organization",
            )
        }
        Err(_) => {
            return Reply::error(
                profile,
                StatusCode::BAD_REQUEST,
                format!("invalid organization_id: {org:?}"),
            )
        }
    }
    let result = match endpoint {
        Endpoint::Users => list_users(s, params, never_ends),
        Endpoint::Teams => list_teams(s, params, never_ends),
        Endpoint::Roles => Ok(list_roles(s)),
        Endpoint::MyGroups => Ok(my_groups(s)),
        Endpoint::Groups => create_group(s, body),
        Endpoint::Group(id) if *method == Method::PUT => update_group(s, id, body),
        Endpoint::Group(id) => delete_group(s, id, params),
    };
    result.unwrap_or_else(|(status, message)| Reply::error(profile, status, message))
}

type Handled = Result<Reply, (StatusCode, String)>;

fn bad(message: String) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, message)
}

/// The workspace whose custom fields the users list includes: `include_custom_fields=true`
/// (the published spec's, so the focus profile's only) needs `workspaces` to name exactly one.
fn custom_fields_of(
    profile: FakeProfile,
    params: &Params,
    workspaces: &[i64],
) -> Result<Option<i64>, String> {
    if profile == FakeProfile::Seed || !params.bool("include_custom_fields")? {
        return Ok(None);
    }
    match workspaces {
        [one] => Ok(Some(*one)),
        _ => Err(format!(
            "include_custom_fields requires workspaces to name exactly one workspace (got {})",
            workspaces.len()
        )),
    }
}

fn list_users(s: &FakeState, params: &Params, never_ends: bool) -> Handled {
    plan_allows(s, params)?;
    let paging = Paging::from(params, s.per_page_cap, s.per_page_max).map_err(bad)?;
    let rates = params.bool("include_rates").map_err(bad)?;
    let hours = params.bool("include_working_hours").map_err(bad)?;
    let form = s.array_filters;
    let ids = params.array_ints(form, "org_user_ids").map_err(bad)?;
    let accounts = params.array_ints(form, "user_account_ids").map_err(bad)?;
    let workspaces = params.array_ints(form, "workspaces").map_err(bad)?;
    let custom_fields = custom_fields_of(s.profile, params, &workspaces).map_err(bad)?;
    let groups = params.array_ints(form, "groups").map_err(bad)?;
    let tags = params.array_ints(form, "tag_ids").map_err(bad)?;
    let roles = params.array_ints(form, "roles").map_err(bad)?;
    let products = params.array(form, "toggl_products");
    let products: Vec<&str> = products.iter().map(String::as_str).collect();
    let statuses = params.array(form, "active_status");
    for st in &statuses {
        if !matches!(st.as_str(), "active" | "inactive" | "invited") {
            return Err(bad(format!(
                "invalid active_status: {st:?} (active, inactive or invited)"
            )));
        }
    }
    let only_admins = params.bool("only_admins").map_err(bad)?;
    let filter = params
        .first("filter")
        .filter(|f| !f.is_empty())
        .map(str::to_lowercase);
    let org = &s.org;
    let offset = s.utc_offset;
    let extra = org.extra_for("user");

    let (items, total): (Vec<OrganizationUser>, usize) = if never_ends {
        let made_up = made_up_users(s, paging, rates, hours);
        (
            made_up,
            paging
                .page
                .saturating_add(1)
                .saturating_mul(paging.per_page),
        )
    } else {
        let filtered = !(ids.is_empty()
            && accounts.is_empty()
            && workspaces.is_empty()
            && groups.is_empty()
            && tags.is_empty()
            && roles.is_empty()
            && products.is_empty()
            && statuses.is_empty()
            && !only_admins
            && filter.is_none());
        let render = |u| org.render_user(u, rates, hours, custom_fields, offset);
        if filtered {
            let matching: Vec<_> = org
                .users
                .iter()
                .filter(|u| ids.is_empty() || ids.contains(&u.id))
                .filter(|u| accounts.is_empty() || accounts.contains(&u.user_account_id))
                .filter(|u| {
                    workspaces.is_empty()
                        || u.workspaces
                            .iter()
                            .any(|w| workspaces.contains(&w.workspace_id))
                })
                .filter(|u| groups.is_empty() || groups.iter().any(|g| u.groups.contains(g)))
                .filter(|u| tags.is_empty() || u.tags.iter().any(|t| tags.contains(&t.id)))
                .filter(|u| {
                    roles.is_empty()
                        || u.workspaces.iter().any(|w| {
                            [w.focus_role_id, w.track_role_id, w.work_role_id]
                                .iter()
                                .any(|r| roles.contains(r))
                        })
                })
                .filter(|u| {
                    products.is_empty()
                        || u.workspaces.iter().any(|w| {
                            w.toggl_products
                                .iter()
                                .any(|p| products.contains(&p.as_str()))
                        })
                })
                .filter(|u| {
                    statuses.is_empty()
                        || statuses.iter().any(|st| match st.as_str() {
                            "active" => u.active,
                            "inactive" => !u.active,
                            _ => !u.joined,
                        })
                })
                .filter(|u| !only_admins || u.admin)
                .filter(|u| {
                    filter.as_ref().is_none_or(|f| {
                        u.name.to_lowercase().contains(f) || u.email.to_lowercase().contains(f)
                    })
                })
                .collect();
            let page = paging
                .positions(matching.len())
                .map(|i| render(matching[i]))
                .collect();
            (page, matching.len())
        } else {
            let page = paging
                .positions(org.users.len())
                .map(|i| render(&org.users[i]))
                .collect();
            (page, org.users.len())
        }
    };
    let items: Vec<WithExtra<OrganizationUser>> = items
        .into_iter()
        .map(|inner| WithExtra { inner, extra })
        .collect();
    Ok(list_reply(s, s.shapes.users, &items, paging.facts(total)))
}

/// A 402 for a feature the plan lacks that the request asks for (as the published spec
/// words it: `<feature> feature not available on the plan`).
fn plan_allows(s: &FakeState, params: &Params) -> Result<(), (StatusCode, String)> {
    for feature in &s.plan_lacks {
        if params.bool(feature.parameter()).unwrap_or(false) {
            return Err((
                StatusCode::PAYMENT_REQUIRED,
                format!("{} feature not available on the plan", feature.name()),
            ));
        }
    }
    Ok(())
}

/// Ids far above the real ones, unique per page, so a client sees only new rows.
const MADE_UP_BASE: i64 = 900_000_000;

fn made_up_users(s: &FakeState, paging: Paging, rates: bool, hours: bool) -> Vec<OrganizationUser> {
    let Some(template) = s.org.users.first() else {
        return Vec::new();
    };
    let template = s
        .org
        .render_user(template, rates, hours, None, s.utc_offset);
    let first = (paging.page as i64 - 1).saturating_mul(paging.per_page as i64);
    (0..paging.per_page as i64)
        .map(|i| {
            let id = MADE_UP_BASE.saturating_add(first).saturating_add(i);
            let mut u = template.clone();
            u.id = Some(id);
            u.user_account_id = Some(id);
            u.user_id = Some(format!("{id:016x}"));
            u.email = Some(format!("made-up.{id}@example.com"));
            u.name = Some(format!("Made Up {id}"));
            u.owner = Some(false);
            u
        })
        .collect()
}

/// The required `workspace_id` of a request, refused with 403 and `refusal` (followed by
/// the id) when the organization has no such workspace.
fn workspace_param(
    s: &FakeState,
    params: &Params,
    refusal: &str,
) -> Result<i64, (StatusCode, String)> {
    let workspace = params
        .int("workspace_id")
        .map_err(bad)?
        .ok_or_else(|| bad("workspace_id is required".to_string()))?;
    if s.org.workspace_name(workspace).is_none() {
        return Err((StatusCode::FORBIDDEN, format!("{refusal} {workspace}")));
    }
    Ok(workspace)
}

fn list_teams(s: &FakeState, params: &Params, never_ends: bool) -> Handled {
    workspace_param(
        s,
        params,
        "User does not have permission to view groups in workspace",
    )?;
    let paging = Paging::from(params, s.per_page_cap, s.per_page_max).map_err(bad)?;
    let filter = params
        .first("filter")
        .filter(|f| !f.is_empty())
        .map(str::to_lowercase);
    let member = params.int("organization_user_id").map_err(bad)?;
    let ids = params
        .array_ints(s.array_filters, "group_ids")
        .map_err(bad)?;
    let org = &s.org;
    let offset = s.utc_offset;
    let extra = org.extra_for("group");

    let (data, total): (Vec<Team>, usize) = if never_ends {
        let template = match org.groups.values().next() {
            Some(g) => org.render_team(g, offset, s.profile),
            None => Team::default(),
        };
        let first = (paging.page as i64 - 1).saturating_mul(paging.per_page as i64);
        let data = (0..paging.per_page as i64)
            .map(|i| {
                let id = MADE_UP_BASE.saturating_add(first).saturating_add(i);
                let mut t = template.clone();
                t.id = Some(id);
                t.name = Some(format!("Made Up Team {id}"));
                t
            })
            .collect();
        (
            data,
            paging
                .page
                .saturating_add(1)
                .saturating_mul(paging.per_page),
        )
    } else {
        let matching: Vec<&FakeGroup> = org
            .groups
            .values()
            .filter(|g| ids.is_empty() || ids.contains(&g.id))
            .filter(|g| member.is_none_or(|m| g.members.contains_key(&m)))
            .filter(|g| {
                filter
                    .as_ref()
                    .is_none_or(|f| g.name.to_lowercase().contains(f))
            })
            .collect();
        let data = paging
            .positions(matching.len())
            .map(|i| org.render_team(matching[i], offset, s.profile))
            .collect();
        (data, matching.len())
    };
    let data: Vec<WithExtra<Team>> = data
        .into_iter()
        .map(|inner| WithExtra { inner, extra })
        .collect();
    Ok(list_reply(s, s.shapes.teams, &data, paging.facts(total)))
}

fn list_roles(s: &FakeState) -> Reply {
    let extra = s.org.extra_for("role");
    let items: Vec<_> = s
        .org
        .roles
        .iter()
        .map(|r| WithExtra {
            inner: s.org.render_role(r, s.profile),
            extra,
        })
        .collect();
    list_reply(s, s.shapes.roles, &items, whole_list(items.len()))
}

/// A list served whole (roles, groups/me): one page of all its rows.
fn whole_list(n: usize) -> PageFacts {
    PageFacts {
        page: 1,
        per_page: n.max(1),
        total: n,
    }
}

fn my_groups(s: &FakeState) -> Reply {
    let org = &s.org;
    // The login's user; for token auth (or a login that is no user) the owner.
    let me = org
        .users
        .iter()
        .find(|u| u.email.eq_ignore_ascii_case(&s.email))
        .or_else(|| org.users.iter().find(|u| u.owner));
    let items: Vec<GroupRef> = me
        .map(|u| {
            u.groups
                .iter()
                .filter_map(|g| org.groups.get(g))
                .map(|g| GroupRef {
                    emoji: g.emoji.clone(),
                    id: Some(g.id),
                    name: Some(g.name.clone()),
                })
                .collect()
        })
        .unwrap_or_default();
    list_reply(s, s.shapes.my_groups, &items, whole_list(items.len()))
}

fn parse_group_write(body: &[u8]) -> Result<GroupWriteBody, (StatusCode, String)> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("invalid request body: not JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad(
            "invalid request body: expected a JSON object".to_string()
        ));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("invalid request body: {e}")))
}

/// Checks the ids a group write refers to.
fn check_refs(s: &FakeState, write: &GroupWriteBody) -> Result<(), (StatusCode, String)> {
    if let Some(name) = &write.name {
        if name.trim().is_empty() {
            return Err(bad("name must not be empty".to_string()));
        }
    }
    for id in write.organization_users.iter().flatten() {
        if s.org.user(*id).is_none() {
            return Err(bad(format!("unknown organization user {id}")));
        }
    }
    for id in write.workspaces.iter().flatten() {
        if s.org.workspace_name(*id).is_none() {
            return Err(bad(format!("unknown workspace {id}")));
        }
    }
    Ok(())
}

fn group_reply(s: &FakeState, status: StatusCode, id: i64) -> Reply {
    match s.org.groups.get(&id) {
        Some(g) => Reply::json(
            status,
            &WithExtra {
                inner: s.org.render_group(g, s.utc_offset),
                extra: s.org.extra_for("group"),
            },
        ),
        None => Reply::error(s.profile, StatusCode::NOT_FOUND, "Group not found"),
    }
}

fn create_group(s: &mut FakeState, body: &[u8]) -> Handled {
    let write = parse_group_write(body)?;
    if write.name.is_none() {
        return Ok(Reply::error_with_values(
            s.profile,
            StatusCode::BAD_REQUEST,
            "required_fields_missing",
            "name is required",
            serde_json::json!({ "fields": ["name"], "is_deletion": false }),
        ));
    }
    check_refs(s, &write)?;
    let name = write.name.as_deref().unwrap_or_default();
    let id = s.org.create_group(
        name,
        write.emoji.as_deref(),
        write.organization_users.as_deref().unwrap_or_default(),
        write.workspaces.as_deref().unwrap_or_default(),
    );
    Ok(group_reply(s, StatusCode::CREATED, id))
}

fn group_id(s: &FakeState, id: &str) -> Result<i64, (StatusCode, String)> {
    id.parse::<i64>()
        .ok()
        .filter(|id| s.org.groups.contains_key(id))
        .ok_or_else(|| (StatusCode::NOT_FOUND, "Group not found".to_string()))
}

fn update_group(s: &mut FakeState, id: &str, body: &[u8]) -> Handled {
    let id = group_id(s, id)?;
    let write = parse_group_write(body)?;
    check_refs(s, &write)?;
    let now = s.org.now;
    if let Some(g) = s.org.groups.get_mut(&id) {
        if let Some(name) = &write.name {
            g.name = name.clone();
        }
        if let Some(emoji) = &write.emoji {
            g.emoji = Some(emoji.clone());
        }
        g.updated_at = now;
    }
    if let Some(members) = &write.organization_users {
        s.org.set_group_members(id, members);
    }
    if let Some(workspaces) = &write.workspaces {
        s.org.set_group_workspaces(id, workspaces);
    }
    Ok(group_reply(s, StatusCode::OK, id))
}

fn delete_group(s: &mut FakeState, id: &str, params: &Params) -> Handled {
    workspace_param(s, params, "User does not have access to workspace")?;
    let id = group_id(s, id)?;
    s.org.remove_group(id);
    Ok(Reply {
        status: StatusCode::OK,
        content_type: TEXT,
        body: Vec::new(),
        headers: Vec::new(),
    })
}

//! The HTTP side of the fake: one fallback handler that routes by hand, so that every
//! answer (unknown paths and bad parameters included) is under our control: plain text
//! (seed profile) or the reported JSON error body (focus profile).
//!
//! Order per request: log time, quota accounting (402 when spent), fault selection, then
//! auth (403), organization check (403), the endpoint itself, body faults, mutations.

mod audit;
mod auth;
mod groups;
mod lists;
mod reply;
mod request;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::Router;

use crate::handle::{FakeHandle, FakeState};
use crate::options::{AuditLogMode, FakeOptions};
pub use audit::{AUDIT_FORBIDDEN, AUDIT_PAGE_NUMBER_MAX, AUDIT_PAGE_SIZE_MAX, AUDIT_UNAVAILABLE};
use auth::refuse_credentials;
use reply::count_against_quota;
pub(crate) use reply::{set_quota_headers, Reply};
#[cfg(feature = "control")]
pub(crate) use reply::{HTML, JSON};
pub(crate) use request::Params;
pub use request::Route;
use request::{parse_path, route_of, Endpoint};

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
        tokio::spawn(serve(listener, handle.clone(), stopped));
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
                runtime.block_on(serve(listener, served, stopped));
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

    /// The handle on the organization served.
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

/// Request bodies larger than this get a 413 (group writes are tiny).
const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// A request as the fake reads it.
pub(crate) struct Incoming {
    pub(crate) method: Method,
    /// The organization segment and the endpoint, when the path is one of the API's.
    pub(crate) parsed: Option<(String, Endpoint)>,
    pub(crate) params: Params,
    pub(crate) headers: HeaderMap,
    /// The body, or why it could not be read (too large).
    pub(crate) body: Result<Bytes, axum::Error>,
}

impl Incoming {
    /// The endpoint and method, when the API has them.
    #[cfg(feature = "control")]
    pub(crate) fn route(&self) -> Option<Route> {
        self.parsed
            .as_ref()
            .and_then(|(_, endpoint)| route_of(&self.method, endpoint))
    }
}

async fn handle_request(State(handle): State<FakeHandle>, request: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    // Read here rather than by an extractor, so that a rejected body is logged too.
    let body = axum::body::to_bytes(body, MAX_REQUEST_BODY).await;
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    #[cfg_attr(not(feature = "control"), allow(unused_mut))]
    let mut incoming = Incoming {
        parsed: parse_path(&path),
        params: Params::parse(&query),
        method: parts.method,
        headers: parts.headers,
        body,
    };

    let (quota, profile, latency) = {
        let mut s = handle.lock();
        (count_against_quota(&mut s, at), s.profile, s.latency)
    };
    #[cfg(feature = "control")]
    let fault = match quota {
        Some(q) if q.spent => None,
        _ => crate::control::faults::take(&mut handle.lock(), &incoming),
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let mut resp = match quota {
        Some(q) if q.spent => Reply::error(
            profile,
            StatusCode::PAYMENT_REQUIRED,
            format!(
                "request quota exceeded; it resets in {} seconds",
                q.resets_in
            ),
        )
        .into_response(),
        #[cfg(feature = "control")]
        _ => crate::control::faults::answer(&handle, fault, &mut incoming).await,
        #[cfg(not(feature = "control"))]
        _ => answer(&handle, &incoming, false).into_response(),
    };

    if let Some(q) = quota {
        // A `QuotaSpent` fault set its own numbers; keep them.
        if !resp.headers().contains_key("X-Toggl-Quota-Remaining") {
            set_quota_headers(&mut resp, q.remaining, q.resets_in);
        }
    }
    let mut s = handle.lock();
    s.served += 1;
    if matches!(&incoming.parsed, Some((_, Endpoint::AuditLog { .. }))) {
        s.audit_served += 1;
    }
    #[cfg(feature = "control")]
    s.recorder.log(crate::control::LoggedRequest {
        at,
        method: incoming.method.to_string(),
        path,
        query,
        status: resp.status().as_u16(),
    });
    resp
}

/// The endpoint's answer to a request (`never_ends`: users and teams pages of made-up rows
/// whose total runs ahead, an injected fault).
pub(crate) fn answer(handle: &FakeHandle, incoming: &Incoming, never_ends: bool) -> Reply {
    let mut s = handle.lock();
    match &incoming.body {
        Ok(body) => dispatch(&mut s, incoming, body, never_ends),
        Err(e) => Reply::error(
            s.profile,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("cannot read the request body: {e}"),
        ),
    }
}

fn dispatch(s: &mut FakeState, incoming: &Incoming, body: &[u8], never_ends: bool) -> Reply {
    let Incoming {
        method,
        parsed,
        params,
        headers,
        ..
    } = incoming;
    let profile = s.profile;
    let Some((org, endpoint)) = parsed else {
        return Reply::error(profile, StatusCode::NOT_FOUND, "not found");
    };
    if matches!(endpoint, Endpoint::AuditLog { .. }) && s.audit_log == AuditLogMode::Off {
        return Reply::error(profile, StatusCode::NOT_FOUND, "not found");
    }
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
        Endpoint::Users => lists::users(s, params, never_ends),
        Endpoint::Teams => lists::teams(s, params, never_ends),
        Endpoint::Roles => Ok(lists::roles(s)),
        Endpoint::MyGroups => Ok(lists::my_groups(s)),
        Endpoint::Groups => groups::create(s, body),
        Endpoint::Group(id) if *method == Method::PUT => groups::update(s, id, body),
        Endpoint::Group(id) => groups::delete(s, id, params),
        Endpoint::AuditLog { from, to } => audit::events(s, from, to, params),
    };
    result.unwrap_or_else(|(status, message)| Reply::error(profile, status, message))
}

type Handled = Result<Reply, (StatusCode, String)>;

/// A 400 with this message.
fn bad(message: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, message.to_string())
}

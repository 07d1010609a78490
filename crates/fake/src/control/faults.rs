//! The server's side of the injected faults: which fault a request meets, and the answer
//! it gets instead of (or made from) the normal one.

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::{Fault, FaultKind, Route};
use crate::handle::{FakeHandle, FakeState};
use crate::server::{self, set_quota_headers, Incoming, Reply, HTML, JSON};
use crate::wire::{self, ErrorBody};

/// Takes the first fault matching this request, counting down its `times`.
pub(crate) fn take(s: &mut FakeState, incoming: &Incoming) -> Option<FaultKind> {
    let route = incoming.route();
    let page = incoming.params.page_for_faults();
    let faults = &mut s.recorder.faults;
    let idx = faults.iter().position(|f: &Fault| {
        let route_ok = f.route == Route::Any || Some(f.route) == route;
        let page_ok = f.page.is_none_or(|p| p == page);
        route_ok && page_ok && f.times != Some(0)
    })?;
    let fault = &mut faults[idx];
    let kind = fault.kind.clone();
    if let Some(n) = fault.times.as_mut() {
        *n -= 1;
        if *n == 0 {
            faults.remove(idx);
        }
    }
    Some(kind)
}

/// The answer to a request that met `fault` (or none): a fault's own answer, or the
/// endpoint's, delayed, for another page, never ending or corrupted as the fault says, with
/// a fault's mutation run after it was built.
pub(crate) async fn answer(
    handle: &FakeHandle,
    fault: Option<FaultKind>,
    incoming: &mut Incoming,
) -> Response {
    let profile = handle.lock().profile;
    match fault {
        Some(FaultKind::Status(code, message)) => Reply::text(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
        )
        .into_response(),
        Some(FaultKind::JsonError {
            status,
            error,
            description,
        }) => Reply::json(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            &ErrorBody {
                error: &error,
                error_description: &description,
                error_values: None,
                trace_id: wire::trace_id(),
            },
        )
        .into_response(),
        Some(FaultKind::Html(code)) => {
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
        Some(FaultKind::TooManyRequests { retry_after }) => {
            let mut resp =
                Reply::error(profile, StatusCode::TOO_MANY_REQUESTS, "too many requests")
                    .into_response();
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                resp.headers_mut().insert(RETRY_AFTER, v);
            }
            resp
        }
        Some(FaultKind::QuotaSpent { resets_in }) => {
            let mut resp = Reply::error(
                profile,
                StatusCode::PAYMENT_REQUIRED,
                format!("request quota exceeded; it resets in {resets_in} seconds"),
            )
            .into_response();
            set_quota_headers(&mut resp, 0, resets_in);
            resp
        }
        Some(FaultKind::Redirect(to)) => {
            let mut resp = Reply::text(StatusCode::FOUND, "found").into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                resp.headers_mut().insert(LOCATION, v);
            }
            resp
        }
        Some(FaultKind::Hang) => match hanging_body().await {
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
        fault => {
            if let Some(FaultKind::Delay(d)) = &fault {
                tokio::time::sleep(*d).await;
            }
            if let Some(FaultKind::RepeatPage(p)) = &fault {
                incoming.params.set("page", p.to_string());
            }
            let never_ends = matches!(fault, Some(FaultKind::NeverEnds));
            let reply = server::answer(handle, incoming, never_ends);
            let reply = match &fault {
                Some(kind) if reply.status.is_success() => corrupt(reply, kind),
                _ => reply,
            };
            let resp = reply.into_response();
            if let Some(FaultKind::MutateAfter(f)) = fault {
                f(handle);
            }
            resp
        }
    }
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

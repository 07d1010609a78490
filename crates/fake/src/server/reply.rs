//! An answer before it is sent: a status, a content type and a body, a list page in its
//! envelope, and the quota's accounting and headers.

use std::time::Instant;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

use crate::handle::FakeState;
use crate::options::{FakeProfile, PagingHeader};
use crate::wire::{self, ErrorBody, ListShape, PageFacts, PER_PAGE_REFUSAL};

pub(crate) const JSON: &str = "application/json";
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
#[cfg(feature = "control")]
pub(crate) const HTML: &str = "text/html; charset=utf-8";

/// A response before faults and quota headers are applied.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    /// Extra headers (the paging headers of a list).
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub(crate) fn text(status: StatusCode, message: impl Into<String>) -> Reply {
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
    pub(crate) fn error(
        profile: FakeProfile,
        status: StatusCode,
        message: impl Into<String>,
    ) -> Reply {
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
    pub(crate) fn error_with_values(
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

    pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
        Reply::encoded(status, serde_json::to_vec(value))
    }

    pub(crate) fn encoded(status: StatusCode, body: serde_json::Result<Vec<u8>>) -> Reply {
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

    pub(crate) fn into_response(self) -> Response {
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
pub(super) fn list_reply<T: serde::Serialize>(
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
pub(super) struct QuotaNote {
    pub(super) remaining: u32,
    pub(super) resets_in: u64,
    pub(super) spent: bool,
}

pub(super) fn count_against_quota(s: &mut FakeState, now: Instant) -> Option<QuotaNote> {
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

pub(crate) fn set_quota_headers(resp: &mut Response, remaining: u32, resets_in: u64) {
    let h = resp.headers_mut();
    h.insert("X-Toggl-Quota-Remaining", HeaderValue::from(remaining));
    h.insert("X-Toggl-Quota-Resets-In", HeaderValue::from(resets_in));
}

//! What goes wrong talking to the API, and how it is told: [`ApiError`] naming the
//! [`Endpoint`], and what an error answer says (a JSON error body, an HTML page reduced to
//! text, a transport error's causes) in words a person can act on.

use std::time::Duration;

use crate::config::SentAs;

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
    /// 401/403: the credentials are wrong, expired or lack access. Never retried. One
    /// short message: what the server said (its reason and trace id), how the credentials
    /// went out and what to do next.
    #[error("{endpoint}: {}", auth_message(*.status, .body, .trace_id.as_deref(), *.sent_as, *.focus_key))]
    Auth {
        endpoint: Endpoint,
        status: u16,
        /// What the server said (its `error_description`, or the text).
        body: String,
        /// The `trace_id` of a JSON error body.
        trace_id: Option<String>,
        sent_as: SentAs,
        /// The token looks like a Focus API key (`toggl_sk_…`).
        focus_key: bool,
    },
    /// Any other non-2xx answer (after retries, for 5xx/429). A JSON error body reads
    /// `HTTP 400 validation: <description> (trace_id …)`.
    #[error("{endpoint}: HTTP {status}{}", describe_error(.json.as_deref(), .body))]
    Status {
        endpoint: Endpoint,
        status: u16,
        /// The server's description (`error_description`), or its text.
        body: String,
        /// The rest of a JSON error body.
        json: Option<Box<ErrorParts>>,
    },
    /// 402 without the quota saying it is spent: a feature the organization's plan lacks.
    /// Not retried, and never waited on: the run fails at once naming the setting that
    /// stops asking for it.
    #[error("{endpoint}: HTTP 402{}; {}", describe_error(.json.as_deref(), .body), plan_advice(.settings))]
    PlanLacks {
        endpoint: Endpoint,
        /// The server's description, or its text.
        body: String,
        json: Option<Box<ErrorParts>>,
        /// What stops asking for the feature (`sync.include_rates = false`), one per
        /// feature the request asked for that the description may mean.
        settings: Vec<&'static str>,
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
    /// A by-id read got rows it did not ask for: the server ignored the id filter in the
    /// form sent. Met only inside the client, which then asks in the other form.
    #[error("{endpoint}: the server ignored the `{filter}` filter")]
    FilterIgnored {
        endpoint: Endpoint,
        filter: &'static str,
    },
    /// A paged list misbehaved: a repeated page, no end, …
    #[error("{endpoint}: {message}")]
    Paging { endpoint: Endpoint, message: String },
}

/// What a Focus key refused with 401 calls for: the key expired or was replaced.
pub const FOCUS_KEY_ADVICE: &str =
    "Focus keys expire, and a new one revokes the old: make one in Focus profile settings";

/// How much of the server's reason a refusal quotes.
const AUTH_REASON_QUOTE: usize = 60;

/// `HTTP 401: API key expired; <advice> (trace_id …)`: the server's reason, how the
/// credentials went out (unless a Focus key went as Bearer, as it should), what to do.
fn auth_message(
    status: u16,
    body: &str,
    trace_id: Option<&str>,
    sent_as: SentAs,
    focus_key: bool,
) -> String {
    let mut text = format!("HTTP {status}");
    if !(focus_key && sent_as == SentAs::Bearer) {
        text.push_str(&format!(" (sent as {sent_as})"));
    }
    let reason = body.trim();
    if !reason.is_empty() {
        let cut: String = reason.chars().take(AUTH_REASON_QUOTE).collect();
        let more = if cut.len() < reason.len() { "…" } else { "" };
        text.push_str(&format!(": {cut}{more}"));
    }
    text.push_str("; ");
    text.push_str(auth_advice(status, sent_as, focus_key));
    if let Some(trace) = trace_id {
        text.push_str(&format!(" (trace_id {trace})"));
    }
    text
}

/// What to try after a 401 or 403, by how the credentials went out.
fn auth_advice(status: u16, sent_as: SentAs, focus_key: bool) -> &'static str {
    match (status, sent_as) {
        (401, SentAs::Bearer) if focus_key => FOCUS_KEY_ADVICE,
        (401, SentAs::Bearer) => "the key was refused; check TOGGL_API_TOKEN and api.base_url",
        (401, SentAs::BasicToken) if focus_key => {
            "a toggl_sk_ key goes as Bearer: set api.auth_scheme = \"auto\""
        }
        (401, SentAs::BasicToken) => "use a Focus API key (toggl_sk_…, sent as Bearer)",
        (401, SentAs::BasicLogin) => "check TOGGL_EMAIL and TOGGL_PASSWORD, or use a Focus API key",
        _ => "check the credentials, api.organization_id and api.workspace_id",
    }
}

/// What a JSON error body says beside its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorParts {
    /// The `error` word (`validation`, `not_found`…), when there is one.
    pub error: Option<String>,
    /// The `error_values`, as a person reads them (`name`, or `field=value` pairs).
    pub values: Option<String>,
    /// The `trace_id`, which the API's support asks for.
    pub trace_id: Option<String>,
}

/// ` validation: <description> (name) (trace_id …)` for a JSON error body, `: <text>`
/// otherwise.
fn describe_error(json: Option<&ErrorParts>, body: &str) -> String {
    let word = json.and_then(|j| j.error.as_deref());
    let mut text = match (word, body.is_empty()) {
        (Some(word), true) => format!(" {word}"),
        (Some(word), false) => format!(" {word}: {body}"),
        (None, true) => String::new(),
        (None, false) => format!(": {body}"),
    };
    if let Some(values) = json.and_then(|j| j.values.as_deref()) {
        text.push_str(&format!(" ({values})"));
    }
    if let Some(trace) = json.and_then(|j| j.trace_id.as_deref()) {
        text.push_str(&format!(" (trace_id {trace})"));
    }
    text
}

/// A feature a request can ask for that a plan may lack: its query parameter, a word its
/// 402's description would use, and the setting that stops asking for it.
const PLAN_FEATURES: [(&str, &str, &str); 3] = [
    ("include_rates", "rate", "sync.include_rates = false"),
    (
        "include_working_hours",
        "working",
        "sync.include_working_hours = false",
    ),
    (
        "include_custom_fields",
        "custom",
        "unset sync.custom_fields_workspace_id",
    ),
];

/// The settings that stop a request asking for what its 402 refused: the feature the
/// description names among those asked for, else every one asked for.
pub(crate) fn plan_settings(query: &str, description: &str) -> Vec<&'static str> {
    let asked: Vec<_> = PLAN_FEATURES
        .iter()
        .filter(|(param, _, _)| {
            url::form_urlencoded::parse(query.as_bytes())
                .any(|(k, v)| k == *param && (v == "true" || v == "1"))
        })
        .collect();
    let said = description.to_ascii_lowercase();
    let named: Vec<_> = asked
        .iter()
        .filter(|(_, word, _)| said.contains(word))
        .map(|(_, _, setting)| *setting)
        .collect();
    if named.is_empty() {
        asked.iter().map(|(_, _, setting)| *setting).collect()
    } else {
        named
    }
}

/// What to do about a 402 that is not the quota.
fn plan_advice(settings: &[&str]) -> String {
    if settings.is_empty() {
        "the organization's plan does not include this request".to_string()
    } else {
        format!(
            "the organization's plan lacks what it asks for: set {}",
            settings.join(" or ")
        )
    }
}

/// What an error answer said.
pub(super) struct ErrorText {
    /// The description (JSON `error_description` or `message`), or the whole text.
    pub(super) text: String,
    /// The rest of a JSON error body.
    pub(super) json: Option<Box<ErrorParts>>,
}

/// The parts of a JSON error body, `{"error", "error_description", "error_values",
/// "trace_id"}` as the published spec has it (`message` read as a description too).
pub(super) struct JsonError {
    pub(super) error: Option<String>,
    pub(super) description: String,
    pub(super) values: Option<String>,
    pub(super) trace_id: Option<String>,
}

/// `error_values` as a person reads them: a list's items (`name, email`), an object's
/// `fields` list (the spec's `required_fields_missing`), or its `key=value` pairs.
pub(super) fn error_values(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let item = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = match value {
        Value::Null => return None,
        Value::Array(items) => items.iter().map(item).collect::<Vec<_>>().join(", "),
        Value::Object(map) => match map.get("fields") {
            Some(Value::Array(fields)) => fields.iter().map(item).collect::<Vec<_>>().join(", "),
            _ => map
                .iter()
                .map(|(k, v)| format!("{k}={}", item(v)))
                .collect::<Vec<_>>()
                .join(", "),
        },
        other => item(other),
    };
    (!text.is_empty()).then_some(text)
}

pub(super) fn json_error(body: &[u8]) -> Option<JsonError> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let text = |key: &str| {
        object.get(key).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        })
    };
    let error = text("error");
    let description = text("error_description").or_else(|| text("message"));
    let trace_id = text("trace_id");
    let values = object.get("error_values").and_then(error_values);
    if error.is_none() && description.is_none() {
        return None;
    }
    Some(match description {
        Some(description) => JsonError {
            error,
            description,
            values,
            trace_id,
        },
        None => JsonError {
            error: None,
            description: error.unwrap_or_default(),
            values,
            trace_id,
        },
    })
}

/// For a 404 before any answer: the API's paths are below `…/api`, and a base URL
/// without it finds nothing.
pub(super) fn missing_api_hint(base_url: &str) -> Option<String> {
    let path = url::Url::parse(base_url)
        .ok()?
        .path()
        .trim_end_matches('/')
        .to_string();
    (!path.ends_with("/api")).then(|| {
        format!(
            "api.base_url ({base_url}) does not end in /api; the API's paths are below it (https://focus.toggl.com/api)"
        )
    })
}

/// What a person should check after a transport error, when its causes say: a refused
/// connection names the host and port; a TLS handshake answered in plain HTTP names the
/// scheme.
pub(super) fn what_to_check(base_url: &str, message: &str) -> Option<String> {
    let url = url::Url::parse(base_url).ok()?;
    let host = url.host_str().unwrap_or("?");
    let port = url.port_or_known_default().unwrap_or(0);
    let lower = message.to_ascii_lowercase();
    if lower.contains("connection refused") {
        return Some(format!(
            "nothing listens at {host}:{port} (connection refused): check api.base_url's host and port"
        ));
    }
    let not_tls = [
        "corrupt message",
        "invalidcontenttype",
        "wrong version number",
        "http/1",
    ];
    if url.scheme() == "https" && not_tls.iter().any(|t| lower.contains(t)) {
        return Some(format!(
            "{host}:{port} did not answer TLS; if it serves plain HTTP, api.base_url must start with http://"
        ));
    }
    None
}

/// An error's text without the `GET /path: ` its wrapper repeats.
pub(super) fn without_endpoint(error: &ApiError, endpoint: &Endpoint) -> String {
    let text = error.to_string();
    let prefix = format!("{endpoint}: ");
    match text.strip_prefix(&prefix) {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// Removes tags (and the contents of `script`/`style`) and collapses whitespace.
pub(super) fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(4096));
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let after = &rest[open..];
        let lower: String = after
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            Some("</script")
        } else if lower.starts_with("<style") {
            Some("</style")
        } else {
            None
        };
        let after = match skip_to {
            Some(end) => match after.to_ascii_lowercase().find(end) {
                Some(i) => &after[i..],
                None => "",
            },
            None => after,
        };
        rest = match after.find('>') {
            Some(close) => &after[close + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    collapse_space(&out)
}

pub(super) fn collapse_space(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters, on a char boundary, with `…` when cut.
pub(super) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A short, printable excerpt of a body for decode errors.
pub(super) fn body_excerpt(body: &[u8], max: usize) -> String {
    let head = &body[..body.len().min(max * 4)];
    let text = String::from_utf8_lossy(head);
    let text = if text.trim_start().starts_with('<') {
        strip_tags(&text)
    } else {
        collapse_space(&text)
    };
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(&text, max)
}

/// A transport error with its chain of causes.
pub(super) fn transport_message(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Whether rustls refused the server's certificate, somewhere in `error`'s causes
/// (hyper wraps it in I/O errors, whose `source` skips the error they carry).
pub(super) fn is_certificate_error(error: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        let carried = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in [Some(e), carried].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(_)) = candidate.downcast_ref() {
                return true;
            }
        }
        next = carried.or_else(|| e.source());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auth_refusal_is_one_short_message_naming_the_scheme_sent() {
        for status in [401, 403] {
            for sent_as in [SentAs::Bearer, SentAs::BasicToken, SentAs::BasicLogin] {
                for focus_key in [false, true] {
                    let e = ApiError::Auth {
                        endpoint: Endpoint {
                            method: "GET",
                            path: "/organizations/1234567890/groups/me".into(),
                            page: Some(1234),
                        },
                        status,
                        // The server's text is quoted only in part: it would make the
                        // message long.
                        body: "x".repeat(400),
                        trace_id: None,
                        sent_as,
                        focus_key,
                    };
                    let text = e.to_string();
                    assert!(text.chars().count() < 240, "{} chars: {text}", text.len());
                    assert!(text.contains(&"x".repeat(AUTH_REASON_QUOTE)), "{text}");
                    if !(focus_key && sent_as == SentAs::Bearer) {
                        assert!(text.contains(&format!("sent as {sent_as}")), "{text}");
                    }
                }
            }
        }
    }

    /// An expired or revoked Focus key: the server's reason and trace id, that Focus keys
    /// expire and a new one revokes the old, and where to make one, under 200 characters.
    #[test]
    fn an_expired_focus_key_says_why_and_where_to_make_a_new_one() {
        for reason in ["API key expired", "API key revoked"] {
            let e = ApiError::Auth {
                endpoint: Endpoint {
                    method: "GET",
                    path: "/organizations/4242/users".into(),
                    page: Some(1),
                },
                status: 401,
                body: reason.into(),
                trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
                sent_as: SentAs::Bearer,
                focus_key: true,
            };
            let text = e.to_string();
            assert_eq!(
                text,
                format!(
                    "GET /organizations/4242/users page 1: HTTP 401: {reason}; {FOCUS_KEY_ADVICE} \
                     (trace_id 0af7651916cd43dd8448eb211c80319c)"
                )
            );
            assert!(text.chars().count() < 200, "{} chars: {text}", text.len());
        }
    }

    /// A plan-locked 402 names the setting that stops asking for the feature: the one its
    /// description names among those the request asked for, else each one asked for.
    #[test]
    fn a_plan_refusal_names_the_setting_that_avoids_it() {
        let both = "include_rates=true&include_working_hours=true&page=1&per_page=100";
        #[rustfmt::skip]
        let cases: [(&str, &str, &[&str]); 6] = [
            (both, "rates feature not available on the plan", &["sync.include_rates = false"]),
            (both, "Working hours are not on your plan", &["sync.include_working_hours = false"]),
            (both, "Feature not available on current plan", &["sync.include_rates = false", "sync.include_working_hours = false"]),
            ("workspaces=9&include_custom_fields=true", "user_custom_fields feature not available on the plan", &["unset sync.custom_fields_workspace_id"]),
            ("include_rates=false&page=1", "Feature not available", &[]),
            ("", "rates", &[]),
        ];
        for (query, description, settings) in cases {
            assert_eq!(
                plan_settings(query, description),
                settings,
                "{query} {description}"
            );
        }
        let e = ApiError::PlanLacks {
            endpoint: Endpoint {
                method: "GET",
                path: "/organizations/4242/users".into(),
                page: Some(1),
            },
            body: "rates feature not available on the plan".into(),
            json: Some(Box::new(ErrorParts {
                error: Some("payment_required".into()),
                values: None,
                trace_id: Some("t1".into()),
            })),
            settings: vec!["sync.include_rates = false"],
        };
        assert_eq!(
            e.to_string(),
            "GET /organizations/4242/users page 1: HTTP 402 payment_required: rates feature not \
             available on the plan (trace_id t1); the organization's plan lacks what it asks for: \
             set sync.include_rates = false"
        );
    }

    #[test]
    fn html_is_reduced_to_text() {
        let html = "<html><head><style>p{color:red}</style><script>var x='<b>';</script></head>\n<body><h1>502  Bad Gateway</h1><p>nginx</p></body></html>";
        assert_eq!(strip_tags(html), "502 Bad Gateway nginx");
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hé", 2), "hé");
    }

    #[test]
    fn json_error_bodies_and_what_is_not_one() {
        // (body) -> (error, description, trace_id), or None: not a JSON error body.
        type Parts = Option<(Option<&'static str>, &'static str, Option<&'static str>)>;
        #[rustfmt::skip]
        let cases: [(&str, Parts); 8] = [
            (r#"{"error":"validation","error_description":"per_page too large","trace_id":"ab12"}"#,
                Some((Some("validation"), "per_page too large", Some("ab12")))),
            (r#"{"message":"Not found"}"#, Some((None, "Not found", None))),
            // An error without a description is the description.
            (r#"{"error":"forbidden","trace_id":"t"}"#, Some((None, "forbidden", Some("t")))),
            (r#"{"error":42,"message":null}"#, Some((None, "42", None))),
            (r#"{"error":null,"error_description":"d"}"#, Some((None, "d", None))),
            (r#"{"trace_id":"only"}"#, None),
            ("[1, 2]", None),
            ("<html>busy</html>", None),
        ];
        for (body, expected) in cases {
            let got = json_error(body.as_bytes());
            let got = got.as_ref().map(|e| {
                (
                    e.error.as_deref(),
                    e.description.as_str(),
                    e.trace_id.as_deref(),
                )
            });
            assert_eq!(got, expected, "{body}");
        }
    }

    #[test]
    fn error_values_read_as_a_list_the_specs_fields_or_pairs() {
        #[rustfmt::skip]
        let cases = [
            (r#"["name"]"#, Some("name")),
            (r#"["name", "emoji"]"#, Some("name, emoji")),
            (r#"{"fields": ["name"], "is_deletion": false}"#, Some("name")),
            (r#"{"workspace_id": 3, "limit": "5"}"#, Some("limit=5, workspace_id=3")),
            ("null", None),
            ("[]", None),
            ("7", Some("7")),
        ];
        for (json, expected) in cases {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(error_values(&value).as_deref(), expected, "{json}");
        }
        let body = r#"{"error":"required_fields_missing","error_description":"missing required fields","error_values":{"fields":["name"],"is_deletion":false},"trace_id":"t1"}"#;
        let parts = json_error(body.as_bytes()).unwrap();
        assert_eq!(parts.values.as_deref(), Some("name"));
    }

    #[test]
    fn hints_name_what_to_check() {
        let no_api = |url: &str| {
            format!("api.base_url ({url}) does not end in /api; the API's paths are below it (https://focus.toggl.com/api)")
        };
        for (url, hint) in [
            ("https://focus.toggl.com/api", None),
            ("https://focus.toggl.com/api/", None),
            (
                "https://focus.toggl.com",
                Some(no_api("https://focus.toggl.com")),
            ),
            (
                "http://127.0.0.1:9/v1",
                Some(no_api("http://127.0.0.1:9/v1")),
            ),
            ("not a url", None),
        ] {
            assert_eq!(missing_api_hint(url), hint, "{url}");
        }
        let refused = "nothing listens at 127.0.0.1:9 (connection refused): check api.base_url's host and port";
        let not_tls = |at: &str| {
            format!("{at} did not answer TLS; if it serves plain HTTP, api.base_url must start with http://")
        };
        #[rustfmt::skip]
        let cases = [
            ("http://127.0.0.1:9/api", "error sending request: Connection refused (os error 111)", Some(refused.to_string())),
            ("https://example.com/api", "tls: wrong version number", Some(not_tls("example.com:443"))),
            ("https://example.com:8443/api", "received corrupt message of type InvalidContentType", Some(not_tls("example.com:8443"))),
            ("http://example.com/api", "wrong version number", None),
            ("https://example.com/api", "operation timed out", None),
            ("not a url", "connection refused", None),
        ];
        for (url, message, hint) in cases {
            assert_eq!(what_to_check(url, message), hint, "{url}: {message}");
        }
    }

    #[test]
    fn a_body_excerpt_is_short_printable_text() {
        for (body, max, excerpt) in [
            (&b"<html><body><h1>Oops</h1></body></html>"[..], 80, "Oops"),
            (b"  {\"a\":\n 1}", 80, r#"{"a": 1}"#),
            (b"a\x07b", 80, "a b"),
            (b"abcdef", 3, "abc\u{2026}"),
            (b"\xff\xfeok", 80, "\u{fffd}\u{fffd}ok"),
            (b"", 80, ""),
        ] {
            assert_eq!(body_excerpt(body, max), excerpt, "{body:?}");
        }
    }
}

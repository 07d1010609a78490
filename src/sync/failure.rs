//! What a failed run says beside its error: the reason in short (the server's own words and
//! the HTTP status) and what to do, kept with its `sync_runs` row for `status`, the journal,
//! `mirror_freshness` and the health alerts. Which exit status it means is `exit`'s to say
//! (handed down as [`ExitStatusOf`]).

use crate::api::ApiError;

use super::SyncError;

/// The exit status `orgmirror sync` ends with for a run's error: `exit`'s mapping, handed
/// down by `main` (this layer cannot name `exit`, which names it).
pub type ExitStatusOf = fn(&SyncError) -> i64;

/// The longest reason kept.
const MAX_REASON: usize = 200;

fn short(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_REASON {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_REASON - 1).collect();
    cut.push('…');
    cut
}

/// The server's words and the status: `API key expired (401)`, or `HTTP 401` without words.
fn said(body: &str, status: u16) -> String {
    let body = body.trim();
    if body.is_empty() || body.starts_with('<') {
        format!("HTTP {status}")
    } else {
        short(&format!("{body} ({status})"))
    }
}

const PASSES: &str = "it may pass by itself: the next run tries again; if it lasts, check that this host reaches api.base_url";
const REPORT: &str = "the next run tries again; if it lasts, record the answers with `orgmirror sync --capture DIR` and report it";

impl SyncError {
    /// What went wrong, in short: `API key expired (401)`, `no answer within 30s`, …
    pub fn reason(&self) -> String {
        match self {
            SyncError::Api(e) => match e {
                ApiError::Auth { status, body, .. } | ApiError::Status { status, body, .. } => {
                    said(body, *status)
                }
                ApiError::PlanLacks { body, .. } => said(body, 402),
                ApiError::Timeout { after, .. } => {
                    format!("no answer within {:.0}s", after.as_secs_f64())
                }
                ApiError::QuotaExhausted { resets_in, .. } => format!(
                    "the request quota is spent (it resets in {} min)",
                    resets_in.as_secs().div_ceil(60)
                ),
                ApiError::Transport { message, .. }
                | ApiError::Decode { message, .. }
                | ApiError::Paging { message, .. } => short(message),
                ApiError::GaveUp { attempts, last, .. } => {
                    short(&format!("gave up after {attempts} attempts: {last}"))
                }
                other => short(&other.to_string()),
            },
            SyncError::Refused(_) => "the deletion guard refused the run".to_string(),
            other => short(&other.to_string()),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            SyncError::Refused(_) => "if the organization really lost them, run `orgmirror sync --allow-mass-delete` once; \
                 otherwise nothing: the next run that sees them again succeeds"
                .to_string(),
            SyncError::Api(e) => match e {
                ApiError::Auth { status: 401, .. } => "make a new Focus API key (in Focus profile settings; a key expires on the date its user picked) \
                     and put it where orgmirror reads it (api.token_file, TOGGL_API_TOKEN or the systemd credential); \
                     the next run uses it"
                    .to_string(),
                ApiError::Auth { .. } => "the key's user may not see this organization: check api.organization_id and \
                     api.workspace_id, and that the user is an admin of the organization"
                    .to_string(),
                ApiError::PlanLacks { settings, .. } if settings.is_empty() => {
                    "the organization's Focus plan does not include what the mirror asks for: upgrade the plan"
                        .to_string()
                }
                ApiError::PlanLacks { settings, .. } => format!(
                    "the organization's Focus plan lacks what the mirror asks for: set {} (or upgrade the plan)",
                    settings.join(" or ")
                ),
                ApiError::Status { status: 404, .. } => {
                    "check api.base_url, api.organization_id and api.workspace_id".to_string()
                }
                ApiError::QuotaExhausted { .. } => "other tools spend the hourly request quota: the next run waits for it; if it keeps \
                     happening, sync less often (schedule.cron, or \"auto\") or raise api.max_quota_wait"
                    .to_string(),
                ApiError::Redirect { .. } => "check api.base_url (redirects are not followed)".to_string(),
                ApiError::BodyTooLarge { .. } => "raise api.max_body_bytes".to_string(),
                ApiError::Decode { .. } | ApiError::Paging { .. } => REPORT.to_string(),
                _ => PASSES.to_string(),
            },
            SyncError::Store(e) if e.is_setup() => {
                format!("a person must fix the database: {e}")
            }
            SyncError::Record(_) => REPORT.to_string(),
            _ => PASSES.to_string(),
        }
    }
}

/// Whether two runs failed the same way: the same error but for its numbers (page, seconds)
/// and trace ids, so that a failure repeated run after run is told once, loudly.
pub fn same_error(a: &str, b: &str) -> bool {
    shape(a) == shape(b)
}

/// `text` with each trace id (the token after `trace_id `) and each run of digits as `#`.
fn shape(text: &str) -> String {
    fn digits_as_hash(text: &str, out: &mut String) {
        let mut in_number = false;
        for c in text.chars() {
            if c.is_ascii_digit() {
                if !in_number {
                    out.push('#');
                }
            } else {
                out.push(c);
            }
            in_number = c.is_ascii_digit();
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("trace_id ") {
        let (before, after) = rest.split_at(at + "trace_id ".len());
        digits_as_hash(before, &mut out);
        out.push('#');
        rest = after.trim_start_matches(|c: char| !(c.is_whitespace() || c == ')'));
    }
    digits_as_hash(rest, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Endpoint;
    use crate::config::SentAs;
    use crate::sync::MassDelete;
    use std::time::Duration;

    fn endpoint() -> Endpoint {
        Endpoint {
            method: "GET",
            path: "/organizations/1001/roles".into(),
            page: None,
        }
    }

    #[test]
    fn each_failure_has_a_short_reason_and_something_to_do() {
        let auth = |status, body: &str| {
            SyncError::Api(ApiError::Auth {
                endpoint: endpoint(),
                status,
                body: body.into(),
                trace_id: None,
                sent_as: SentAs::Bearer,
                focus_key: true,
            })
        };
        let status = |status, body: &str| {
            SyncError::Api(ApiError::Status {
                endpoint: endpoint(),
                status,
                body: body.into(),
                json: None,
            })
        };
        let table: Vec<(SyncError, &str, &str)> = vec![
            (
                auth(401, "API key expired"),
                "API key expired (401)",
                "make a new Focus API key",
            ),
            (auth(401, ""), "HTTP 401", "make a new Focus API key"),
            (
                auth(403, "forbidden"),
                "forbidden (403)",
                "api.organization_id",
            ),
            (
                SyncError::Api(ApiError::PlanLacks {
                    endpoint: endpoint(),
                    body: "Rates are not available on your plan".into(),
                    json: None,
                    settings: vec!["sync.include_rates = false"],
                }),
                "Rates are not available on your plan (402)",
                "set sync.include_rates = false (or upgrade the plan)",
            ),
            (
                status(502, "<html>bad gateway</html>"),
                "HTTP 502",
                "it may pass by itself",
            ),
            (
                SyncError::Api(ApiError::Timeout {
                    endpoint: endpoint(),
                    after: Duration::from_secs(30),
                }),
                "no answer within 30s",
                "it may pass by itself",
            ),
            (
                SyncError::Api(ApiError::QuotaExhausted {
                    endpoint: endpoint(),
                    resets_in: Duration::from_secs(61),
                    budget: Duration::from_secs(1),
                }),
                "the request quota is spent (it resets in 2 min)",
                "sync less often",
            ),
            (
                SyncError::Refused(MassDelete {
                    removed: 9,
                    held: 10,
                    plural: "users",
                    max_fraction: 0.5,
                }),
                "the deletion guard refused the run",
                "--allow-mass-delete",
            ),
        ];
        for (error, reason, hint) in table {
            assert_eq!(error.reason(), reason, "{error}");
            assert!(error.hint().contains(hint), "{error}: {}", error.hint());
        }
        let long = status(500, &"x".repeat(1000)).reason();
        assert_eq!(long.chars().count(), MAX_REASON);
    }

    #[test]
    fn the_same_error_differs_only_in_its_numbers() {
        assert!(same_error(
            "GET /organizations/1001/users page 3: HTTP 500 validation: x (trace_id 9f3a0c)",
            "GET /organizations/1001/users page 4: HTTP 500 validation: x (trace_id bd11e2)"
        ));
        assert!(same_error(
            "HTTP 401: API key expired (trace_id 7e8d9931c0a5decfdc15e4bea90ae98e)",
            "HTTP 401: API key expired (trace_id bd624498612fdffe1a61e04885481bae)"
        ));
        assert!(!same_error(
            "GET /x: no answer within 30s",
            "GET /x: connection refused"
        ));
        assert!(!same_error(
            "HTTP 401: API key expired",
            "HTTP 403: forbidden"
        ));
    }
}

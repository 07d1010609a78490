//! What `check` learned about the API from the answers it recorded: the auth scheme that
//! was accepted, the page size, each list's envelope and paging headers, the fields the API
//! sent that the models do not know, the seed's fields absent from the sample, and the quota
//! headers. Pure: recorded exchanges in, a report out.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::api::capture::Exchange;
use crate::api::models::{GroupRef, KnownFields, OrganizationUser, Role, Team};

/// The paging headers looked for on every list answer.
const PAGING_HEADERS: &[&str] = &[
    "x-records",
    "x-pages",
    "x-page",
    "x-page-size",
    "x-total-count",
    "link",
];
/// The envelope fields that say where a page stands.
const ENVELOPE_FIELDS: &[&str] = &["page", "per_page", "rows", "total"];

/// The compatibility report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Compatibility {
    /// Requests `check` sent.
    pub requests: usize,
    pub auth: Auth,
    pub page_size: PageSize,
    /// `groups/me`, `roles`, `teams`, `users`, in the order they were asked.
    pub lists: Vec<ListReport>,
    /// The `X-Toggl-Quota-*` headers of the last answer that had them.
    pub quota_headers: BTreeMap<String, String>,
}

/// How the credentials were sent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Auth {
    /// `Bearer` or `Basic`.
    pub scheme: String,
    /// `api token` or `e-mail and password`.
    pub credential: String,
    pub accepted: bool,
}

/// The page sizes asked of the paged lists and what the API did with them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PageSize {
    /// `api.per_page`.
    pub configured: u32,
    /// Sizes the API refused (HTTP 400), in the order asked.
    pub refused: Vec<u32>,
    /// The largest size a page was served at.
    pub accepted: Option<u32>,
}

/// One list endpoint's first page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListReport {
    /// `users`, `teams`, `roles`, `groups/me`.
    pub endpoint: String,
    /// The request of the answer described.
    pub request: String,
    pub status: u16,
    /// `items`, `data`, `bare array`, or `unrecognised`.
    pub envelope: String,
    /// `page`, `per_page`, `rows`, `total` as the envelope gave them.
    pub envelope_fields: BTreeMap<String, Value>,
    /// Keys of the envelope other than the list and [`ListReport::envelope_fields`].
    pub other_envelope_keys: Vec<String>,
    /// Rows on the page.
    pub rows: usize,
    pub paging_headers: BTreeMap<String, String>,
    /// Fields the API sent that the model does not know (`rate.x`, `workspaces[].y`).
    pub unknown_fields: Vec<String>,
    /// The seed's top-level fields that no row of the sample had.
    pub absent_seed_fields: Vec<String>,
    /// The first row that does not read as the model, with why.
    pub unreadable: Option<String>,
}

/// The list endpoints, by the end of their path, with how their rows are read.
const LISTS: &[(&str, &str)] = &[
    ("groups/me", "/groups/me"),
    ("roles", "/roles"),
    ("teams", "/teams"),
    ("users", "/users"),
];

/// Whether an exchange read rows by id (`check`'s probe of the id filter): not a list's
/// first page.
fn is_by_id(e: &Exchange) -> bool {
    url::form_urlencoded::parse(e.query.as_bytes())
        .any(|(k, _)| k.starts_with("org_user_ids") || k.starts_with("group_ids"))
}

/// Builds the report from what `check` recorded.
pub fn analyse(
    exchanges: &[Exchange],
    scheme: &str,
    credential: &str,
    configured_per_page: u32,
) -> Compatibility {
    let accepted = exchanges
        .iter()
        .any(|e| (200..300).contains(&e.status) && e.path.starts_with("/organizations/"));
    let mut lists: Vec<(usize, ListReport)> = LISTS
        .iter()
        .filter_map(|(name, suffix)| {
            let (at, answer) = exchanges.iter().enumerate().rfind(|(_, e)| {
                e.path.ends_with(suffix) && (200..300).contains(&e.status) && !is_by_id(e)
            })?;
            Some((at, describe_list(name, answer)))
        })
        .collect();
    lists.sort_by_key(|(at, _)| *at);
    Compatibility {
        requests: exchanges.len(),
        auth: Auth {
            scheme: scheme.to_string(),
            credential: credential.to_string(),
            accepted,
        },
        page_size: page_size(exchanges, configured_per_page),
        lists: lists.into_iter().map(|(_, l)| l).collect(),
        quota_headers: exchanges
            .iter()
            .rev()
            .map(|e| {
                e.headers
                    .iter()
                    .filter(|(n, _)| n.starts_with("x-toggl-quota"))
                    .cloned()
                    .collect::<BTreeMap<_, _>>()
            })
            .find(|h| !h.is_empty())
            .unwrap_or_default(),
    }
}

fn page_size(exchanges: &[Exchange], configured: u32) -> PageSize {
    let mut refused = Vec::new();
    let mut accepted: Option<u32> = None;
    for e in exchanges {
        let per_page = url::form_urlencoded::parse(e.query.as_bytes())
            .find(|(k, _)| k == "per_page")
            .and_then(|(_, v)| v.parse::<u32>().ok());
        let Some(per_page) = per_page else { continue };
        if (200..300).contains(&e.status) {
            accepted = Some(accepted.map_or(per_page, |a| a.max(per_page)));
        } else if e.status == 400 && !refused.contains(&per_page) {
            refused.push(per_page);
        }
    }
    PageSize {
        configured,
        refused,
        accepted,
    }
}

fn describe_list(name: &str, answer: &Exchange) -> ListReport {
    let mut report = ListReport {
        endpoint: name.to_string(),
        request: answer.request_line(),
        status: answer.status,
        envelope: "unrecognised".to_string(),
        envelope_fields: BTreeMap::new(),
        other_envelope_keys: Vec::new(),
        rows: 0,
        paging_headers: PAGING_HEADERS
            .iter()
            .filter_map(|h| answer.header(h).map(|v| (display_header(h), v.to_string())))
            .collect(),
        unknown_fields: Vec::new(),
        absent_seed_fields: Vec::new(),
        unreadable: None,
    };
    let rows: Vec<Value> = match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Array(rows)) => {
            report.envelope = "bare array".to_string();
            rows
        }
        Ok(Value::Object(mut envelope)) => {
            let list = ["items", "data"].into_iter().find(|k| {
                envelope
                    .get(*k)
                    .is_some_and(|v| v.is_array() || v.is_null())
            });
            let rows = match list.and_then(|k| envelope.remove(k)) {
                Some(Value::Array(rows)) => rows,
                _ => Vec::new(),
            };
            if let Some(list) = list {
                report.envelope = list.to_string();
            }
            for (key, value) in envelope {
                if ENVELOPE_FIELDS.contains(&key.as_str()) {
                    report.envelope_fields.insert(key, value);
                } else {
                    report.other_envelope_keys.push(key);
                }
            }
            rows
        }
        Ok(_) | Err(_) => {
            report.unreadable = Some("the body is not a JSON list or object".to_string());
            Vec::new()
        }
    };
    report.rows = rows.len();
    let (unknown, absent, unreadable) = match name {
        "users" => fields_of::<OrganizationUser>(&rows),
        "teams" => fields_of::<Team>(&rows),
        "roles" => fields_of::<Role>(&rows),
        _ => fields_of::<GroupRef>(&rows),
    };
    report.unknown_fields = unknown;
    report.absent_seed_fields = absent;
    report.unreadable = report.unreadable.or(unreadable);
    report
}

/// The fields of `rows` that `T` does not read, the seed fields of `T` that no row had, and
/// the first row that does not read as `T`.
fn fields_of<T: DeserializeOwned + KnownFields>(
    rows: &[Value],
) -> (Vec<String>, Vec<String>, Option<String>) {
    let mut unknown = BTreeSet::new();
    let mut present = BTreeSet::new();
    let mut unreadable = None;
    for (i, row) in rows.iter().enumerate() {
        if let Value::Object(fields) = row {
            present.extend(fields.keys().cloned());
        }
        let read: Result<T, _> = serde_ignored::deserialize(row.clone(), |path| {
            unknown.insert(field_path(&path));
        });
        if let (Err(e), None) = (read, &unreadable) {
            unreadable = Some(format!("row {i}: {e}"));
        }
    }
    let absent = if rows.is_empty() {
        Vec::new()
    } else {
        T::FIELDS
            .iter()
            .filter(|f| !present.contains(**f))
            .map(|f| f.to_string())
            .collect()
    };
    (unknown.into_iter().collect(), absent, unreadable)
}

/// `rate.x`, `workspaces[].y`: where an ignored field sits in a row.
fn field_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, .. } => format!("{}[]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// `X-Records` for `x-records`.
fn display_header(name: &str) -> String {
    if name == "link" {
        return "Link".to_string();
    }
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

impl Compatibility {
    /// The report as lines of text, for `check` without `--json`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("compatibility ({} requests):", self.requests)];
        out.push(format!(
            "  auth: {} sent as {}: {}",
            self.auth.credential,
            self.auth.scheme,
            if self.auth.accepted {
                "accepted"
            } else {
                "not accepted"
            }
        ));
        let p = &self.page_size;
        let refused = if p.refused.is_empty() {
            String::new()
        } else {
            format!(
                ", refused: {}",
                p.refused
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        out.push(format!(
            "  page size: api.per_page = {}{refused}, accepted: {}",
            p.configured,
            p.accepted
                .map(|a| a.to_string())
                .unwrap_or_else(|| "none seen".to_string())
        ));
        for list in &self.lists {
            out.push(format!("  {}: {}", list.endpoint, list.request));
            let mut envelope = match list.envelope.as_str() {
                "bare array" => format!("a bare array of {} rows", list.rows),
                "unrecognised" => "unrecognised".to_string(),
                key => format!("{{\"{key}\": [{} rows]}}", list.rows),
            };
            for (k, v) in &list.envelope_fields {
                envelope.push_str(&format!(" {k}={v}"));
            }
            if !list.other_envelope_keys.is_empty() {
                envelope.push_str(&format!(
                    " (other keys: {})",
                    list.other_envelope_keys.join(", ")
                ));
            }
            out.push(format!("    envelope: {envelope}"));
            out.push(format!(
                "    paging headers: {}",
                join_map(&list.paging_headers, "none")
            ));
            out.push(format!(
                "    fields orgmirror does not know: {}",
                join_or(&list.unknown_fields, "none")
            ));
            out.push(format!(
                "    seed fields absent from the sample: {}",
                if list.rows == 0 {
                    "no rows to sample".to_string()
                } else {
                    join_or(&list.absent_seed_fields, "none")
                }
            ));
            if let Some(why) = &list.unreadable {
                out.push(format!("    unreadable: {why}"));
            }
        }
        out.push(format!(
            "  quota headers: {}",
            join_map(&self.quota_headers, "none sent")
        ));
        out
    }
}

fn join_or(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(", ")
    }
}

fn join_map(map: &BTreeMap<String, String>, none: &str) -> String {
    if map.is_empty() {
        return none.to_string();
    }
    map.iter()
        .map(|(k, v)| format!("{}: {v}", display_header(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(
        path: &str,
        query: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Exchange {
        Exchange {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn envelopes_headers_and_fields_are_described() {
        let exchanges = [
            answer(
                "/organizations/1/groups/me",
                "",
                200,
                &[],
                r#"[{"id":1,"name":"A","emoji":null}]"#,
            ),
            answer(
                "/organizations/1/users",
                "page=1&per_page=200",
                400,
                &[],
                r#"{"error":"validation"}"#,
            ),
            answer(
                "/organizations/1/users",
                "page=1&per_page=100",
                200,
                &[
                    ("x-records", "2"),
                    ("x-pages", "1"),
                    ("x-toggl-quota-remaining", "27"),
                ],
                r#"{"page":1,"per_page":100,"data":[{"id":1,"rate":{"hourly_rate":1,"fresh":2},"color":"red"},{"id":2,"workspaces":[{"id":3,"seat":"x"}]}]}"#,
            ),
        ];
        let report = analyse(&exchanges, "Bearer", "api token", 200);
        assert!(report.auth.accepted);
        assert_eq!(report.page_size.refused, vec![200]);
        assert_eq!(report.page_size.accepted, Some(100));
        let names: Vec<_> = report.lists.iter().map(|l| l.endpoint.as_str()).collect();
        assert_eq!(names, ["groups/me", "users"]);
        let mine = &report.lists[0];
        assert_eq!(mine.envelope, "bare array");
        assert!(mine.absent_seed_fields.is_empty());
        let users = &report.lists[1];
        assert_eq!(users.envelope, "data");
        assert_eq!(users.rows, 2);
        assert_eq!(users.envelope_fields["per_page"], 100);
        assert_eq!(users.paging_headers["X-Records"], "2");
        assert_eq!(
            users.unknown_fields,
            ["color", "rate.fresh", "workspaces[].seat"]
        );
        assert!(users.absent_seed_fields.contains(&"email".to_string()));
        assert!(!users.absent_seed_fields.contains(&"rate".to_string()));
        assert_eq!(report.quota_headers["x-toggl-quota-remaining"], "27");
        let text = report.lines().join("\n");
        assert!(text.contains("refused: 200, accepted: 100"), "{text}");
        assert!(text.contains("X-Pages: 1, X-Records: 2"), "{text}");
        assert!(text.contains("X-Toggl-Quota-Remaining: 27"), "{text}");
    }

    #[test]
    fn a_row_that_does_not_read_is_named() {
        let exchanges = [answer(
            "/organizations/1/roles",
            "",
            200,
            &[],
            r#"{"items":[{"role_id":1},{"role_id":"x"}]}"#,
        )];
        let report = analyse(&exchanges, "Basic", "api token", 100);
        let roles = &report.lists[0];
        assert!(
            roles
                .unreadable
                .as_deref()
                .is_some_and(|w| w.starts_with("row 1:")),
            "{roles:?}"
        );
    }

    /// Each shape a list's body can have, as the report names it.
    #[test]
    fn every_envelope_is_named_and_what_is_not_a_list_is_unreadable() {
        // (case, body) -> (envelope, rows, envelope fields, other keys, unreadable)
        type Report = (
            &'static str,
            usize,
            &'static str,
            &'static [&'static str],
            Option<&'static str>,
        );
        #[rustfmt::skip]
        let cases: [(&str, &str, Report); 6] = [
            ("a bare array", r#"[{"id":1}]"#, ("bare array", 1, "{}", &[], None)),
            ("items", r#"{"items":[{"id":1},{"id":2}]}"#, ("items", 2, "{}", &[], None)),
            ("data with paging fields", r#"{"data":[],"page":2,"total":9,"next":"x"}"#,
                ("data", 0, r#"{"page":2,"total":9}"#, &["next"], None)),
            ("a null list", r#"{"data":null,"rows":0}"#, ("data", 0, r#"{"rows":0}"#, &[], None)),
            ("a list under another key", r#"{"results":[{"id":1}]}"#, ("unrecognised", 0, "{}", &["results"], None)),
            ("not JSON", "<html>busy</html>",
                ("unrecognised", 0, "{}", &[], Some("the body is not a JSON list or object"))),
        ];
        for (case, body, (envelope, rows, fields, other, unreadable)) in cases {
            let list = describe_list(
                "groups/me",
                &answer("/organizations/1/groups/me", "", 200, &[], body),
            );
            let got = (
                list.envelope.as_str(),
                list.rows,
                serde_json::to_string(&list.envelope_fields).unwrap_or_default(),
                list.other_envelope_keys
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                list.unreadable.as_deref(),
            );
            assert_eq!(
                got,
                (
                    envelope,
                    rows,
                    fields.to_string(),
                    other.to_vec(),
                    unreadable
                ),
                "{case}"
            );
        }
    }

    /// The page sizes: the largest accepted, each refusal (a 400) once, other answers and
    /// requests without a numeric per_page left out; auth is accepted by a 2xx of the API only.
    #[test]
    fn page_sizes_and_auth_are_read_from_the_answers() {
        let users = "/organizations/1/users";
        let exchanges = [
            answer(users, "per_page=200", 400, &[], "{}"),
            answer(users, "per_page=200", 400, &[], "{}"),
            answer(users, "per_page=150", 500, &[], "{}"),
            answer(users, "per_page=x", 200, &[], "[]"),
            answer(users, "per_page=50", 200, &[], "[]"),
            answer(users, "per_page=100", 200, &[], "[]"),
            answer(users, "per_page=20", 200, &[], "[]"),
        ];
        let p = page_size(&exchanges, 200);
        assert_eq!(
            (p.configured, p.refused, p.accepted),
            (200, vec![200], Some(100))
        );
        let cases = [
            (
                "a 2xx of the API",
                vec![answer(users, "", 204, &[], "")],
                true,
            ),
            (
                "a 2xx elsewhere",
                vec![answer("/me", "", 200, &[], "{}")],
                false,
            ),
            ("refused", vec![answer(users, "", 401, &[], "")], false),
        ];
        for (case, exchanges, accepted) in cases {
            let report = analyse(&exchanges, "Bearer", "api token", 100);
            assert_eq!(report.auth.accepted, accepted, "{case}");
        }
    }

    #[test]
    fn headers_are_shown_as_they_are_usually_written() {
        for (name, shown) in [
            ("x-records", "X-Records"),
            ("x-toggl-quota-resets-in", "X-Toggl-Quota-Resets-In"),
            ("link", "Link"),
            ("a--b", "A--B"),
        ] {
            assert_eq!(display_header(name), shown, "{name}");
        }
    }
}

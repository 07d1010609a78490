//! The client against tiny local servers on 127.0.0.1:0: an axum app whose answer is a
//! closure over (request, index), recording every request with its arrival time, and
//! a raw TCP server for answers axum will not give (endless or chunked bodies).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use secrecy::SecretString;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod against_fake;

use super::models::{GroupWrite, OrganizationUser};
use super::*;
use crate::config::{AuthScheme, Seconds};

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

impl Seen {
    fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
    fn page(&self) -> usize {
        self.param("page").and_then(|p| p.parse().ok()).unwrap_or(1)
    }
    fn per_page(&self) -> usize {
        self.param("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(50)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Server {
    base: String,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

async fn serve<F>(answer: F) -> Server
where
    F: Fn(&Seen, usize) -> Response + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let app_log = log.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let answer = answer.clone();
        let log = app_log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or("").to_string(),
                headers: parts.headers,
                body: body.to_vec(),
                at: Instant::now(),
            };
            let index = {
                let mut log = log.lock().unwrap();
                log.push(seen.clone());
                log.len() - 1
            };
            answer(&seen, index)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        base: format!("http://{addr}/api"),
        log,
    }
}

/// Answers every connection with `bytes`, then keeps it open for `hold`.
async fn raw_server(bytes: Vec<u8>, hold: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let bytes = bytes.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(&bytes).await;
                tokio::time::sleep(hold).await;
            });
        }
    });
    format!("http://{addr}/api")
}

fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<String>) -> Response {
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Body::from(body.into())).unwrap()
}

fn json_reply(value: serde_json::Value) -> Response {
    reply(
        200,
        &[("content-type", "application/json")],
        value.to_string(),
    )
}

fn config(base: &str) -> ApiConfig {
    ApiConfig {
        base_url: base.to_string(),
        organization_id: 1001,
        workspace_id: 2001,
        per_page: 200,
        max_attempts: 3,
        initial_backoff: Seconds(0.01),
        max_backoff: Seconds(0.05),
        max_retry_time: Seconds(5.0),
        max_quota_wait: Seconds(10.0),
        request_timeout: Seconds(5.0),
        // The built-in fake is not paced.
        max_requests_per_second: 0.0,
        ..ApiConfig::default()
    }
}

fn token() -> Credentials {
    Credentials::Token(SecretString::from("tok".to_string()))
}

fn client_with(api: &ApiConfig) -> Client {
    let mut client = Client::new(api, &token()).unwrap();
    client.quota_margin = Duration::from_millis(50);
    client
}

fn client(server: &Server) -> Client {
    client_with(&config(&server.base))
}

fn user(id: i64) -> serde_json::Value {
    json!({ "id": id, "name": format!("User {id}"), "email": format!("u{id}@example.com") })
}

fn id_filter(seen: &Seen, name: &str) -> Vec<i64> {
    url::form_urlencoded::parse(seen.query.as_bytes())
        .filter(|(k, _)| k == name)
        .filter_map(|(_, v)| v.parse().ok())
        .collect()
}

/// The ids of a comma-separated filter (`org_user_ids=1,2`), as the published spec writes it.
fn comma_filter(seen: &Seen, name: &str) -> Vec<i64> {
    url::form_urlencoded::parse(seen.query.as_bytes())
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| {
            v.split(',')
                .filter_map(|id| id.trim().parse().ok())
                .collect::<Vec<i64>>()
        })
        .collect()
}

/// A users list with ids 1..=len served at most `cap` per page, honouring `org_user_ids`
/// in the published comma form.
fn users_answer(len: i64, cap: usize) -> impl Fn(&Seen, usize) -> Response {
    move |seen, _| {
        let per = seen.per_page().min(cap);
        let start = (seen.page() - 1) * per;
        let wanted = comma_filter(seen, "org_user_ids");
        let items: Vec<_> = if wanted.is_empty() {
            (start as i64..(start + per) as i64)
                .filter(|i| *i < len)
                .map(|i| user(i + 1))
                .collect()
        } else {
            wanted
                .into_iter()
                .filter(|i| (1..=len).contains(i))
                .skip(start)
                .take(per)
                .map(user)
                .collect()
        };
        json_reply(json!({ "items": items }))
    }
}

/// The rows of a by-id read that filtered.
fn found<T>(read: ByIds<T>) -> Vec<WithUnknown<T>> {
    match read {
        ByIds::Found(rows) => rows,
        ByIds::Unfiltered => panic!("the server was taken to honour no id filter"),
    }
}

fn ids(users: &[WithUnknown<OrganizationUser>]) -> Vec<i64> {
    let mut ids: Vec<i64> = users.iter().filter_map(|(u, _)| u.id).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn every_endpoint_round_trips() {
    let server = serve(|seen, _| {
        let path = seen.path.trim_start_matches("/api/organizations/1001");
        match (seen.method.as_str(), path) {
            ("GET", "/roles") => json_reply(json!({ "items": [
                { "role_id": 7, "name": "Admin", "type": "org", "permissions": null, "new_thing": [2, 1] }
            ]})),
            ("GET", "/groups/me") => json_reply(json!({ "items": [{ "id": 5, "name": "Ops", "emoji": "🛠" }] })),
            ("POST", "/groups") => reply(201, &[], r#"{"id":9,"name":"New","users":null}"#),
            ("PUT", "/groups/9") => json_reply(json!({ "id": 9, "name": "Renamed", "users": [{ "organization_user_id": 1 }] })),
            ("DELETE", "/groups/9") => reply(200, &[], ""),
            ("GET", "/teams") => json_reply(json!({ "data": [{ "id": 5, "name": "Ops", "ghosts": [{ "id": 1, "name": "g" }] }], "page": 1, "rows": 1, "total": 1 })),
            ("GET", "/users") => users_answer(2, 1000)(seen, 0),
            _ => reply(404, &[], "no route"),
        }
    })
    .await;
    let client = client(&server);

    let roles = client.roles().await.unwrap();
    assert_eq!(roles[0].0.role_id, Some(7));
    assert_eq!(roles[0].0.kind.as_deref(), Some("org"));
    assert_eq!(roles[0].1.as_deref(), Some(r#"{"new_thing":[2,1]}"#));
    let mine = client.my_groups().await.unwrap();
    assert_eq!(mine[0].id, Some(5));
    let write = GroupWrite {
        name: Some("New".into()),
        organization_users: Some(vec![1, 2]),
        ..GroupWrite::default()
    };
    let created = client.create_group(&write).await.unwrap().unwrap();
    assert_eq!(created.id, Some(9));
    let updated = client.update_group(9, &write).await.unwrap().unwrap();
    assert_eq!(updated.name.as_deref(), Some("Renamed"));
    client.delete_group(9).await.unwrap();
    let teams = client.pull_teams(&mut |_| {}).await.unwrap();
    assert_eq!(teams[0].0.ghosts[0].name.as_deref(), Some("g"));
    let users = client.pull_users(true, true, &mut |_| {}).await.unwrap();
    assert_eq!(ids(&users), [1, 2]);
    let _ = client.pull_users(false, false, &mut |_| {}).await.unwrap();
    let again = found(
        client
            .users_by_ids(&[3, 2, 1, 2], false, true)
            .await
            .unwrap(),
    );
    assert_eq!(ids(&again), [1, 2]);
    let _ = found(client.teams_by_ids(&[5]).await.unwrap());

    let log = server.requests();
    let got: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str(), s.query.as_str()))
        .collect();
    let org = "/api/organizations/1001";
    assert_eq!(
        got,
        [
            ("GET", &*format!("{org}/roles"), ""),
            ("GET", &*format!("{org}/groups/me"), ""),
            ("POST", &*format!("{org}/groups"), ""),
            ("PUT", &*format!("{org}/groups/9"), ""),
            ("DELETE", &*format!("{org}/groups/9"), "workspace_id=2001"),
            (
                "GET",
                &*format!("{org}/teams"),
                "workspace_id=2001&page=1&per_page=200"
            ),
            (
                "GET",
                &*format!("{org}/users"),
                "include_rates=true&include_working_hours=true&page=1&per_page=200"
            ),
            (
                "GET",
                &*format!("{org}/users"),
                "include_rates=true&include_working_hours=true&page=2&per_page=200"
            ),
            ("GET", &*format!("{org}/users"), "page=1&per_page=200"),
            ("GET", &*format!("{org}/users"), "page=2&per_page=200"),
            // Pages of 2 were seen, so a short answer to 3 ids is ambiguous: one more page.
            (
                "GET",
                &*format!("{org}/users"),
                "org_user_ids=1,2,3&include_working_hours=true&page=1&per_page=4"
            ),
            (
                "GET",
                &*format!("{org}/users"),
                "org_user_ids=1,2,3&include_working_hours=true&page=2&per_page=4"
            ),
            (
                "GET",
                &*format!("{org}/teams"),
                "workspace_id=2001&group_ids=5&page=1&per_page=2"
            ),
        ]
    );
    for seen in &log {
        assert_eq!(
            seen.header("authorization"),
            Some("Basic dG9rOmFwaV90b2tlbg==")
        );
        assert_eq!(
            seen.header("user-agent"),
            Some(concat!("orgmirror/", env!("CARGO_PKG_VERSION")))
        );
    }
    let post: serde_json::Value = serde_json::from_slice(&log[2].body).unwrap();
    assert_eq!(post, json!({ "name": "New", "organization_users": [1, 2] }));
    assert_eq!(log[2].header("content-type"), Some("application/json"));
    assert_eq!(log[3].body, log[2].body);
    assert_eq!(client.stats().requests, 13);
}

#[tokio::test]
async fn create_without_a_group_body_is_none() {
    let server = serve(|_, _| reply(201, &[], "Created")).await;
    let created = client(&server)
        .create_group(&GroupWrite::default())
        .await
        .unwrap();
    assert_eq!(created, None);
}

#[tokio::test]
async fn auth_schemes() {
    let server = serve(|_, _| json_reply(json!({ "items": [] }))).await;
    let api = config(&server.base);
    let login = Credentials::Login {
        email: "a@b.c".into(),
        password: SecretString::from("pw".to_string()),
    };
    Client::new(&api, &login).unwrap().roles().await.unwrap();
    let bearer = ApiConfig {
        auth_scheme: AuthScheme::Bearer,
        ..api.clone()
    };
    Client::new(&bearer, &token())
        .unwrap()
        .roles()
        .await
        .unwrap();
    let got: Vec<_> = server
        .requests()
        .iter()
        .map(|s| s.header("authorization").unwrap_or("").to_string())
        .collect();
    assert_eq!(got, ["Basic YUBiLmM6cHc=", "Bearer tok"]);
}

#[tokio::test]
async fn a_capped_server_still_gives_every_row() {
    let server = serve(users_answer(50, 7)).await;
    let client = client(&server);
    let mut pages = Vec::new();
    let users = client
        .pull_users(false, false, &mut |p| pages.push((p.page, p.rows)))
        .await
        .unwrap();
    assert_eq!(ids(&users), (1..=50).collect::<Vec<_>>());
    // ceil(50 / 7) = 8: the short eighth page ends the list.
    assert_eq!(client.stats().requests, 8);
    assert_eq!(pages.last(), Some(&(8, 50)));

    // An exact multiple needs one empty page more; the re-check then uses the cap.
    let server = serve(users_answer(49, 7)).await;
    let client = client_with(&config(&server.base));
    assert_eq!(
        client
            .pull_users(false, false, &mut |_| {})
            .await
            .unwrap()
            .len(),
        49
    );
    assert_eq!(client.stats().requests, 8);
    let mut ids_asked: Vec<i64> = (1..=10).collect();
    ids_asked.push(100);
    let again = found(client.users_by_ids(&ids_asked, false, false).await.unwrap());
    assert_eq!(ids(&again), (1..=10).collect::<Vec<_>>());
    // Two batches of one id less than the cap (6 and 5), each asking one row more than
    // its ids; the second's answer lacks id 100, so one more page confirms that it is gone
    // rather than cut off by a smaller cap.
    assert_eq!(client.stats().requests, 8 + 3);
    let log = server.requests();
    assert!(
        log[8].query.ends_with("page=1&per_page=7"),
        "{}",
        log[8].query
    );
    assert!(
        log[9].query.ends_with("page=1&per_page=6"),
        "{}",
        log[9].query
    );
    assert!(
        log[10].query.ends_with("page=2&per_page=6"),
        "{}",
        log[10].query
    );
}

#[tokio::test]
async fn teams_stop_at_total_without_an_extra_request() {
    let server = serve(|seen, _| {
        let per = seen.per_page().min(10);
        let start = (seen.page() - 1) * per;
        let data: Vec<_> = (start..(start + per).min(30))
            .map(|i| json!({ "id": i + 1, "name": format!("T{i}") }))
            .collect();
        json_reply(json!({ "data": data, "page": seen.page(), "rows": data.len(), "total": 30 }))
    })
    .await;
    let client = client(&server);
    let teams = client.pull_teams(&mut |_| {}).await.unwrap();
    assert_eq!(teams.len(), 30);
    assert_eq!(server.count(), 3);
}

/// A list whose pages do not end is refused as a paging error, after the requests the
/// stop rule allows and no more.
#[tokio::test]
async fn a_server_whose_pages_never_end_is_refused() {
    type Answer = Box<dyn Fn(&Seen, usize) -> Response + Send + Sync>;
    let repeats_page_one: Answer =
        Box::new(|_, _| json_reply(json!({ "items": [user(1), user(2)] })));
    // (case, the server's answer, max_pages, the words of the error, requests sent)
    let cases: [(&str, Answer, Option<u32>, &str, usize); 2] = [
        (
            "page 2 repeats page 1",
            repeats_page_one,
            None,
            "GET /organizations/1001/users page 2",
            2,
        ),
        (
            "always a full page",
            Box::new(users_answer(i64::MAX, 3)),
            Some(5),
            "max_pages",
            5,
        ),
    ];
    for (case, answer, max_pages, words, requests) in cases {
        let server = serve(answer).await;
        let defaults = config(&server.base);
        let api = ApiConfig {
            max_pages: max_pages.unwrap_or(defaults.max_pages),
            ..defaults
        };
        let err = client_with(&api)
            .pull_users(false, false, &mut |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::Paging { .. }), "{case}: {err}");
        assert!(err.to_string().contains(words), "{case}: {err}");
        assert_eq!(server.count(), requests, "{case}");
    }
}

#[tokio::test]
async fn rows_shifting_between_pages_are_deduplicated() {
    // A row inserted at the front after page 1 pushes user 3 onto page 2 as well.
    let server = serve(|seen, _| match seen.page() {
        1 => json_reply(json!({ "items": [user(1), user(2), user(3)] })),
        2 => json_reply(json!({ "items": [
            { "id": 3, "name": "later copy" }, user(4), user(5)
        ] })),
        _ => json_reply(json!({ "items": [user(6)] })),
    })
    .await;
    let users = client(&server)
        .pull_users(false, false, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(ids(&users), [1, 2, 3, 4, 5, 6]);
    let three = users.iter().find(|(u, _)| u.id == Some(3)).unwrap();
    assert_eq!(three.0.name.as_deref(), Some("later copy"));
}

#[tokio::test]
async fn auth_errors_are_not_retried_and_hide_the_secret() {
    for status in [401, 403] {
        let server = serve(move |seen, _| {
            let echo = format!(
                "denied for {} (token tok)",
                seen.header("authorization").unwrap_or("")
            );
            reply(status, &[("content-type", "text/plain")], echo)
        })
        .await;
        let client = client(&server);
        let err = client.roles().await.unwrap_err();
        assert!(
            matches!(err, ApiError::Auth { status: s, .. } if s == status),
            "{err}"
        );
        assert_eq!(server.count(), 1);
        let text = format!("{err} {err:?} {client:?}");
        assert!(!text.contains("dG9rOmFwaV90b2tlbg"), "{text}");
        assert!(text.contains("denied for"), "{text}");
    }
}

#[tokio::test]
async fn client_errors_carry_the_body_once() {
    let server = serve(|seen, _| {
        if seen.path.ends_with("/roles") {
            reply(404, &[("content-type", "text/plain")], "Group not found\n")
        } else {
            reply(
                400,
                &[("content-type", "text/html")],
                "<html><body><h1>Invalid   request</h1></body></html>",
            )
        }
    })
    .await;
    let client = client(&server);
    let err = client.roles().await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Status { status: 404, body, .. } if body == "Group not found"),
        "{err:?}"
    );
    let err = client.my_groups().await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Status { status: 400, body, .. } if body == "Invalid request"),
        "{err:?}"
    );
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_persistent_500_gives_up_after_max_attempts() {
    let server = serve(|_, _| reply(500, &[], "boom")).await;
    let client = client(&server);
    let started = Instant::now();
    let err = client.roles().await.unwrap_err();
    assert!(
        matches!(&err, ApiError::GaveUp { attempts: 3, last, .. } if last.contains("boom")),
        "{err:?}"
    );
    assert_eq!(server.count(), 3);
    // Two backoffs of at most max_backoff (0.05 s) each.
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(client.stats().retries, 2);
}

#[tokio::test]
async fn the_retry_time_budget_is_kept() {
    let server = serve(|_, _| reply(503, &[("retry-after", "30")], "")).await;
    let api = ApiConfig {
        max_retry_time: Seconds(1.0),
        ..config(&server.base)
    };
    let started = Instant::now();
    let err = client_with(&api).roles().await.unwrap_err();
    assert!(matches!(err, ApiError::GaveUp { attempts: 1, .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn a_transient_503_is_retried() {
    let server = serve(|_, i| {
        if i == 0 {
            reply(503, &[], "<html>busy</html>")
        } else {
            json_reply(json!({ "items": [] }))
        }
    })
    .await;
    let client = client(&server);
    client.roles().await.unwrap();
    assert_eq!(client.stats().requests, 2);
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn writes_are_not_repeated_after_a_5xx_except_put() {
    let server = serve(|seen, i| match (seen.method.as_str(), i) {
        ("PUT", 3) => json_reply(json!({ "id": 1 })),
        _ => reply(502, &[], "bad gateway"),
    })
    .await;
    let client = client(&server);
    let err = client
        .create_group(&GroupWrite::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Status { status: 502, .. }), "{err}");
    let err = client.delete_group(1).await.unwrap_err();
    assert!(matches!(err, ApiError::Status { status: 502, .. }), "{err}");
    client
        .update_group(1, &GroupWrite::default())
        .await
        .unwrap();
    assert_eq!(server.count(), 4);
}

/// A 429's Retry-After, in seconds or as an HTTP date, is waited out before asking again.
#[tokio::test]
async fn retry_after_is_honoured_in_seconds_and_as_an_http_date() {
    fn in_2_s() -> String {
        httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2))
    }
    // (case, the header as the 429 is sent, its body, the shortest gap before the retry)
    type Case = (&'static str, fn() -> String, &'static str, Duration);
    let cases: [Case; 2] = [
        // Tolerance: the wait may not be shorter than 1 s minus 50 ms of timer slack.
        (
            "seconds",
            || "1".to_string(),
            "slow down",
            Duration::from_millis(950),
        ),
        // The date has whole seconds: "now + 2 s" truncated is between 1 and 2 s away.
        ("an HTTP date", in_2_s, "", Duration::from_millis(900)),
    ];
    for (case, retry_after, body, shortest) in cases {
        let server = serve(move |_, i| {
            if i == 0 {
                reply(429, &[("retry-after", &retry_after())], body)
            } else {
                json_reply(json!({ "items": [] }))
            }
        })
        .await;
        client(&server).roles().await.unwrap();
        let log = server.requests();
        let gap = log[1].at - log[0].at;
        assert!(gap >= shortest, "{case}: {gap:?}");
        assert!(gap < Duration::from_secs(3), "{case}: {gap:?}");
    }
}

#[tokio::test]
async fn a_402_waits_for_the_reset_without_counting_as_a_failure() {
    let server = serve(|_, i| {
        if i == 0 {
            reply(
                402,
                &[
                    ("x-toggl-quota-remaining", "0"),
                    ("x-toggl-quota-resets-in", "1"),
                ],
                "quota exceeded",
            )
        } else {
            reply(
                200,
                &[
                    ("x-toggl-quota-remaining", "29"),
                    ("x-toggl-quota-resets-in", "3599"),
                ],
                r#"{"items":[]}"#,
            )
        }
    })
    .await;
    let api = ApiConfig {
        max_attempts: 1,
        ..config(&server.base)
    };
    let client = client_with(&api);
    client.roles().await.unwrap();
    let log = server.requests();
    assert_eq!(log.len(), 2);
    let gap = log[1].at - log[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "sent before the reset: {gap:?}"
    );
    let stats = client.stats();
    assert_eq!(stats.requests, 2);
    assert_eq!(stats.retries, 0);
    assert!(stats.quota_wait >= Duration::from_secs(1));
    assert_eq!(stats.quota.unwrap().remaining, Some(29));
}

#[tokio::test]
async fn a_reset_beyond_the_budget_fails_at_once() {
    let server = serve(|_, _| {
        reply(
            402,
            &[
                ("x-toggl-quota-remaining", "0"),
                ("x-toggl-quota-resets-in", "3600"),
            ],
            "",
        )
    })
    .await;
    let client = client(&server);
    let started = Instant::now();
    let err = client.roles().await.unwrap_err();
    assert!(matches!(err, ApiError::QuotaExhausted { .. }), "{err}");
    // The next call does not even ask: the window is known to be spent.
    let err = client.my_groups().await.unwrap_err();
    assert!(matches!(err, ApiError::QuotaExhausted { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(server.count(), 1);
    let seen = client.stats().quota.unwrap();
    assert_eq!(seen.remaining, Some(0));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now + 3599..=now + 3601).contains(&seen.resets_at_unix.unwrap()));
}

#[tokio::test]
async fn a_402_that_does_not_say_when_the_quota_resets_is_waited_out_for_a_minute() {
    // No quota headers, the hourly limit in text: the client assumes a minute, which is
    // more than this budget (10 s), so it gives up at once instead of asking again.
    let server =
        serve(|_, _| reply(402, &[], "You have hit your hourly limit for API calls")).await;
    let client = client(&server);
    let started = Instant::now();
    let err = client.roles().await.unwrap_err();
    match &err {
        ApiError::QuotaExhausted { resets_in, .. } => {
            assert_eq!(*resets_in, Duration::from_secs(60), "{err}")
        }
        other => panic!("not a quota error: {other}"),
    }
    assert!(err.to_string().contains("request quota spent"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.count(), 1);
    assert_eq!(client.stats().quota_wait, Duration::ZERO);
}

/// A quota 402 that does not say when the quota resets is waited on once a run; the next
/// one fails the run rather than waiting again, and again.
#[tokio::test]
async fn a_402_without_a_reset_time_is_waited_on_once_a_run() {
    let server = serve(|_, _| reply(402, &[], "hourly limit reached")).await;
    let mut client = client(&server);
    client.blind_quota_wait = Duration::from_millis(20);
    client.start_run();
    let err = client.roles().await.unwrap_err();
    assert!(matches!(err, ApiError::GaveUp { .. }), "{err}");
    assert!(err.to_string().contains("x-toggl-quota-resets-in"), "{err}");
    assert_eq!(server.count(), 2, "one wait, then no more");
    // A new run may wait once again.
    client.start_run();
    assert!(client.roles().await.is_err());
    assert_eq!(server.count(), 4);
}

/// A 402 that is not the quota (JSON without quota headers, or with requests left) is a
/// feature the plan lacks: never waited on, never asked again.
#[tokio::test]
async fn a_402_that_is_not_the_quota_fails_at_once_naming_the_setting() {
    let body = r#"{"error":"payment_required","error_description":"Feature not available on current plan","trace_id":"t1"}"#;
    for headers in [
        &[][..],
        &[
            ("x-toggl-quota-remaining", "57"),
            ("x-toggl-quota-resets-in", "1200"),
        ][..],
    ] {
        let headers: Vec<(&'static str, &'static str)> = headers.to_vec();
        let server = serve(move |_, _| {
            let mut h = headers.clone();
            h.push(("content-type", "application/json"));
            reply(402, &h, body)
        })
        .await;
        let client = client(&server);
        let started = Instant::now();
        let err = client
            .pull_users(true, false, &mut |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::PlanLacks { .. }), "{err}");
        assert!(
            err.to_string().ends_with(
                "the organization's plan lacks what it asks for: set sync.include_rates = false"
            ),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(server.count(), 1);
        assert_eq!(client.stats().quota_wait, Duration::ZERO);
    }
}

#[tokio::test]
async fn a_reset_announced_beyond_an_hourly_quota_is_taken_as_two_hours() {
    let server = serve(|_, _| {
        reply(
            402,
            &[
                ("x-toggl-quota-remaining", "0"),
                ("x-toggl-quota-resets-in", "1000000000"),
            ],
            "quota",
        )
    })
    .await;
    let client = client(&server);
    match client.roles().await.unwrap_err() {
        ApiError::QuotaExhausted { resets_in, .. } => {
            assert_eq!(resets_in, Duration::from_secs(2 * 3600))
        }
        other => panic!("not a quota error: {other}"),
    }
    let resets_at = client
        .stats()
        .quota
        .and_then(|q| q.resets_at_unix)
        .expect("stored");
    let now = chrono::Utc::now().timestamp();
    assert!(resets_at <= now + 2 * 3600 + 1, "{resets_at} vs {now}");
}

#[tokio::test]
async fn nothing_is_sent_while_the_window_is_known_to_be_spent() {
    let server = serve(|_, i| {
        let remaining = if i == 0 { "0" } else { "10" };
        reply(
            200,
            &[
                ("x-toggl-quota-remaining", remaining),
                ("x-toggl-quota-resets-in", "1"),
            ],
            r#"{"items":[]}"#,
        )
    })
    .await;
    let client = client(&server);
    client.roles().await.unwrap();
    client.roles().await.unwrap();
    let log = server.requests();
    let gap = log[1].at - log[0].at;
    assert!(gap >= Duration::from_secs(1), "{gap:?}");
}

#[tokio::test]
async fn ensure_quota_waits_for_a_seeded_reset_or_refuses() {
    let client = client_with(&config("http://127.0.0.1:9/api"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    client.seed_quota(QuotaSeen {
        remaining: Some(100),
        resets_at_unix: Some(now + 1),
    });
    client.ensure_quota(50).await.unwrap();
    assert_eq!(client.stats().quota_wait, Duration::ZERO);
    client.seed_quota(QuotaSeen {
        remaining: Some(3),
        resets_at_unix: Some(now + 3600),
    });
    let err = client.ensure_quota(50).await.unwrap_err();
    assert!(matches!(err, ApiError::QuotaExhausted { .. }), "{err}");
    client.seed_quota(QuotaSeen {
        remaining: Some(3),
        resets_at_unix: Some(now + 1),
    });
    let started = Instant::now();
    client.ensure_quota(50).await.unwrap();
    assert!(started.elapsed() > Duration::ZERO);
    assert!(client.stats().quota_wait > Duration::ZERO);
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let big = format!(r#"{{"items":[{{"name":"{}"}}]}}"#, "x".repeat(4000));
    let server = serve(move |_, _| json_reply(serde_json::from_str(&big).unwrap())).await;
    let api = ApiConfig {
        max_body_bytes: 1024,
        ..config(&server.base)
    };
    let err = client_with(&api).roles().await.unwrap_err();
    assert!(
        matches!(err, ApiError::BodyTooLarge { limit: 1024, .. }),
        "{err}"
    );

    // Without a Content-Length the running count stops it.
    let chunk = format!("400\r\n{}\r\n", "x".repeat(0x400));
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let base = raw_server(
        format!("{head}{chunk}{chunk}{chunk}0\r\n\r\n").into_bytes(),
        Duration::ZERO,
    )
    .await;
    let api = ApiConfig {
        max_body_bytes: 2048,
        ..config(&base)
    };
    let err = client_with(&api).roles().await.unwrap_err();
    assert!(
        matches!(err, ApiError::BodyTooLarge { limit: 2048, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_body_that_never_finishes_times_out() {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"items\":[";
    let base = raw_server(head.as_bytes().to_vec(), Duration::from_secs(30)).await;
    let api = ApiConfig {
        request_timeout: Seconds(0.5),
        max_attempts: 1,
        ..config(&base)
    };
    let started = Instant::now();
    let err = client_with(&api).roles().await.unwrap_err();
    assert!(matches!(err, ApiError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = client_with(&config(&format!("http://{addr}/api")))
        .roles()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApiError::GaveUp { attempts: 3, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert_eq!(
        text.matches("/organizations/1001/roles").count(),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn bad_bodies_are_decode_errors_naming_page_and_item() {
    let server = serve(|seen, _| {
        if seen.path.ends_with("/roles") {
            let html = "<html><body>Maintenance</body></html>";
            reply(200, &[("content-type", "text/html")], html)
        } else if seen.path.ends_with("/groups/me") {
            reply(200, &[], r#"{"items":[{"id":1},"#)
        } else if seen.page() == 1 {
            json_reply(json!({ "items": [user(1), user(2)] }))
        } else {
            json_reply(json!({ "items": [user(3), { "id": "abc" }] }))
        }
    })
    .await;
    let client = client(&server);
    let err = client
        .pull_users(false, false, &mut |_| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ApiError::Decode { .. }), "{text}");
    assert!(
        text.contains("GET /organizations/1001/users page 2: invalid response body: item 1: invalid type: string \"abc\", expected i64"),
        "{text}"
    );
    let err = client.roles().await.unwrap_err().to_string();
    assert!(
        err.contains("not JSON") && err.contains("Maintenance"),
        "{err}"
    );
    let err = client.my_groups().await.unwrap_err().to_string();
    assert!(
        err.contains("groups/me") && err.contains("not JSON"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_fields_come_back_as_canonical_json() {
    let server = serve(|seen, _| {
        if seen.page() > 1 {
            return json_reply(json!({ "items": [] }));
        }
        reply(
            200,
            &[],
            r#"{"items":[{"id":1,"zz":{"b":2,"a":1},"aa":true},{"id":2,"name":"n"}]}"#,
        )
    })
    .await;
    let users = client(&server)
        .pull_users(false, false, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        users[0].1.as_deref(),
        Some(r#"{"aa":true,"zz":{"a":1,"b":2}}"#)
    );
    assert_eq!(users[1].1, None);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = serve(|seen, _| {
        if seen.path.ends_with("/roles") {
            reply(302, &[("location", "/elsewhere")], "")
        } else {
            json_reply(json!({ "items": [] }))
        }
    })
    .await;
    let err = client(&server).roles().await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Redirect { status: 302, location, .. } if location == "/elsewhere"),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn the_client_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Client>();
    let server = serve(|_, _| json_reply(json!({ "items": [] }))).await;
    let client = Arc::new(client(&server));
    let c = client.clone();
    tokio::spawn(async move { c.roles().await.map(|_| ()) })
        .await
        .unwrap()
        .unwrap();
}

/// What [`serve_untrusted_tls`] saw.
#[derive(Debug, Clone, Default)]
struct TlsSeen {
    connections: usize,
    handshakes: usize,
    /// Read after a handshake.
    bytes: Vec<u8>,
}

/// A TLS server on 127.0.0.1:0 with a self-signed certificate for `localhost`, which no
/// trust store has.
async fn serve_untrusted_tls() -> (u16, Arc<Mutex<TlsSeen>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;

    let cert = CertificateDer::from_pem_slice(include_bytes!(
        "../../tests/fixtures/untrusted-localhost.crt"
    ))
    .unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!(
        "../../tests/fixtures/untrusted-localhost.key"
    ))
    .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<TlsSeen>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            log.lock().unwrap().connections += 1;
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                log.lock().unwrap().handshakes += 1;
                let mut buf = vec![0u8; 4096];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                log.lock().unwrap().bytes.extend_from_slice(&buf[..n]);
                let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\nconnection: close\r\n\r\n{\"items\":[]}";
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_is_refused_before_anything_is_sent() {
    let (port, seen) = serve_untrusted_tls().await;
    let base = format!("https://localhost:{port}/api");

    // The server works: a client told to trust its certificate gets an answer.
    let trusting = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(include_bytes!(
                "../../tests/fixtures/untrusted-localhost.crt"
            ))
            .unwrap(),
        )
        .build()
        .unwrap();
    let answer = trusting
        .get(format!("{base}/organizations/1001/roles"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let control = seen.lock().unwrap().clone();
    assert_eq!(control.handshakes, 1);
    assert!(String::from_utf8_lossy(&control.bytes).contains("GET /api/organizations/1001/roles"));

    // orgmirror's client trusts only the public roots: no handshake, so no request and no
    // token, and no second try (max_attempts is 3): the certificate will not change.
    let client = client_with(&config(&base));
    let err = client.roles().await.unwrap_err();
    assert!(matches!(err, ApiError::Transport { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(message.contains("certificate is not trusted"), "{message}");
    assert!(
        !message.contains("localhost:"),
        "the URL is left out: {message}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.connections, 2, "retried: {seen:?}");
    assert_eq!(
        seen.handshakes, 1,
        "a handshake with the untrusted server completed"
    );
    assert_eq!(
        seen.bytes, control.bytes,
        "a request reached the untrusted server"
    );
    assert_eq!(client.stats().retries, 0);
}

/// A users list of ids 1..=20 honouring `org_user_ids` only in `form` (the other form is
/// an unknown parameter: the whole list comes back).
fn users_honouring(form: IdFilter) -> impl Fn(&Seen, usize) -> Response {
    move |seen, _| {
        let wanted = match form {
            IdFilter::Comma => comma_filter(seen, "org_user_ids"),
            IdFilter::Brackets => id_filter(seen, "org_user_ids[]"),
            IdFilter::Neither => Vec::new(),
        };
        let per = seen.per_page();
        let start = (seen.page() - 1) * per;
        let listed: Vec<i64> = if wanted.is_empty() {
            (1..=20).collect()
        } else {
            wanted
                .into_iter()
                .filter(|i| (1..=20).contains(i))
                .collect()
        };
        let items: Vec<_> = listed.into_iter().skip(start).take(per).map(user).collect();
        json_reply(json!({ "items": items }))
    }
}

/// The published comma form goes first; a server that answers it with rows not asked for
/// ignored it, and the same ids are asked once more as `org_user_ids[]`. The form that
/// filters is used from then on and reported for the store; when neither does, the read is
/// `Unfiltered` and no later read asks again.
#[tokio::test]
async fn a_by_id_read_learns_the_filter_form_the_server_honours() {
    // (server honours, primed with) -> (requests of the first read, of the second, learned)
    #[rustfmt::skip]
    let cases = [
        (IdFilter::Comma, None, (1, 1, Some(IdFilter::Comma))),
        (IdFilter::Brackets, None, (2, 1, Some(IdFilter::Brackets))),
        (IdFilter::Neither, None, (2, 0, Some(IdFilter::Neither))),
        // A form remembered from earlier runs goes first, and costs nothing to learn…
        (IdFilter::Brackets, Some(IdFilter::Brackets), (1, 1, None)),
        // …until the server stops honouring it.
        (IdFilter::Comma, Some(IdFilter::Brackets), (2, 1, Some(IdFilter::Comma))),
        (IdFilter::Neither, Some(IdFilter::Neither), (0, 0, None)),
    ];
    for (honours, primed, (first, second, learned)) in cases {
        let case = format!("{honours:?} primed with {primed:?}");
        let server = serve(users_honouring(honours)).await;
        let client = client(&server);
        client.start_run();
        if let Some(form) = primed {
            client.remember_filter_form("users", form);
        }
        let read = client.users_by_ids(&[3, 5], false, false).await.unwrap();
        assert_eq!(client.stats().requests, first, "{case}");
        match (&read, honours) {
            (ByIds::Unfiltered, IdFilter::Neither) => {}
            (ByIds::Found(rows), IdFilter::Comma | IdFilter::Brackets) => {
                assert_eq!(ids(rows), [3, 5], "{case}")
            }
            _ => panic!("{case}: {read:?}"),
        }
        let _ = client.users_by_ids(&[7], false, false).await.unwrap();
        assert_eq!(client.stats().requests, first + second, "{case}");
        let expected: Vec<_> = learned.into_iter().map(|f| ("users", f)).collect();
        assert_eq!(client.take_filter_forms(), expected, "{case}");
    }
    // The first ids of the list, which an ignored filter would answer with too: the row
    // asked beyond them shows the filter ignored all the same.
    let server = serve(users_honouring(IdFilter::Brackets)).await;
    let first = client(&server);
    let read = first.users_by_ids(&[1, 2], false, false).await.unwrap();
    assert!(
        matches!(&read, ByIds::Found(rows) if ids(rows) == [1, 2]),
        "{read:?}"
    );
    assert_eq!(first.take_filter_forms(), [("users", IdFilter::Brackets)]);
    assert_eq!(first.take_filter_forms(), [], "taken once");
    // The forms as sent.
    let server = serve(users_honouring(IdFilter::Brackets)).await;
    let client = client(&server);
    let _ = client.users_by_ids(&[3, 5], false, false).await.unwrap();
    let queries: Vec<String> = server.requests().into_iter().map(|s| s.query).collect();
    assert_eq!(
        queries,
        [
            "org_user_ids=3,5&page=1&per_page=3",
            "org_user_ids[]=3&org_user_ids[]=5&page=1&per_page=3"
        ]
    );
}

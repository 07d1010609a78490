//! The typed client against the built-in fake on 127.0.0.1:0: every endpoint round trip,
//! capped paging, typed errors with the plain-text body, both auth schemes, pacing, and
//! transport errors that say what to check.

use std::time::{Duration, Instant};

use orgmirror_fake::{FakeOptions, FakeServer};
use secrecy::SecretString;

use crate::api::models::GroupWrite;
use crate::api::{ApiError, ByIds, Client};
use crate::config::{AuthScheme, Config, Credentials};

/// A current-thread runtime: each test drives the client from synchronous code while the
/// fake serves on its own threads.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn config(fake: &FakeServer, scheme: &str) -> Config {
    Config::parse(&format!(
        "[api]\nbase_url = {:?}\norganization_id = 1001\nworkspace_id = 2001\nauth_scheme = {scheme:?}\nmax_requests_per_second = 0\n\
         max_attempts = 1\n",
        fake.base_url()
    ))
    .expect("config")
}

fn token(t: &str) -> Credentials {
    Credentials::Token(SecretString::from(t.to_string()))
}

#[test]
fn every_endpoint_round_trips_through_the_client() {
    let fake = FakeServer::start_background(FakeOptions {
        users: 130,
        per_page_cap: 40,
        ..Default::default()
    })
    .expect("fake");
    let org = fake.handle();
    let client = Client::new(&config(&fake, "basic").api, &token("demo-token")).expect("client");
    runtime().block_on(async {
        // Paged lists: the server caps per_page at 40 while 200 is asked; every row comes.
        let users = client
            .pull_users(true, true, &mut |_| {})
            .await
            .expect("users");
        let mut ids: Vec<i64> = users.iter().filter_map(|(u, _)| u.id).collect();
        ids.sort();
        assert_eq!(ids, org.user_ids());
        assert!(users
            .iter()
            .any(|(u, _)| u.rate.is_some() && u.working_hours.is_some()));
        let teams = client.pull_teams(&mut |_| {}).await.expect("teams");
        let mut gids: Vec<i64> = teams.iter().filter_map(|(t, _)| t.id).collect();
        gids.sort();
        assert_eq!(gids, org.group_ids());
        let roles = client.roles().await.expect("roles");
        assert_eq!(roles.len(), org.role_ids().len());
        assert!(roles.iter().all(|(r, _)| !r.permissions.is_empty()));
        let mine = client.my_groups().await.expect("my groups");
        assert!(!mine.is_empty());

        // Filters, sent as the published spec writes them (the focus profile honours
        // only that form): one request each.
        let before = org.request_count();
        let some = client
            .users_by_ids(&ids[..3], false, false)
            .await
            .expect("by ids");
        assert!(
            matches!(&some, ByIds::Found(rows) if rows.len() == 3),
            "{some:?}"
        );
        let one = client.teams_by_ids(&gids[..1]).await.expect("teams by id");
        assert!(
            matches!(&one, ByIds::Found(rows) if rows.len() == 1),
            "{one:?}"
        );
        assert_eq!(org.request_count() - before, 2);
        let log = org.requests();
        let users_filter = format!("org_user_ids={},{},{}", ids[0], ids[1], ids[2]);
        assert!(
            log.iter().any(|r| r.query.starts_with(&users_filter)),
            "{:?}",
            log.iter().map(|r| &r.query).collect::<Vec<_>>()
        );

        // Writes.
        let members = vec![ids[0], ids[1]];
        let created = client
            .create_group(&GroupWrite {
                name: Some("Round trip 🔁".into()),
                emoji: Some("🔁".into()),
                organization_users: Some(members.clone()),
                workspaces: Some(vec![2001]),
            })
            .await
            .expect("create")
            .expect("the fake answers with the group");
        let gid = created.id.expect("id");
        assert_eq!(org.group_members(gid), members);
        let updated = client
            .update_group(
                gid,
                &GroupWrite {
                    name: Some("Renamed".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("update")
            .expect("the fake answers with the group");
        assert_eq!(updated.name.as_deref(), Some("Renamed"));
        assert_eq!(
            org.group_members(gid),
            members,
            "a rename keeps the members"
        );
        client.delete_group(gid).await.expect("delete");
        assert!(org.group(gid).is_none());

        // Errors keep their status and the plain-text body.
        let err = client
            .update_group(
                gid,
                &GroupWrite {
                    name: Some("x".into()),
                    ..Default::default()
                },
            )
            .await
            .expect_err("gone");
        match &err {
            ApiError::Status {
                status: 404, body, ..
            } => assert!(!body.is_empty(), "{err}"),
            other => panic!("expected a 404, got {other}"),
        }
        let err = client
            .create_group(&GroupWrite {
                name: Some(String::new()),
                ..Default::default()
            })
            .await
            .expect_err("empty name");
        assert!(matches!(err, ApiError::Status { status: 400, .. }), "{err}");
    });
}

#[test]
fn basic_and_bearer_auth_are_accepted_and_wrong_credentials_are_an_auth_error() {
    let fake = FakeServer::start_background(FakeOptions::default()).expect("fake");
    let rt = runtime();
    let login = Credentials::from_lookup(
        |k| match k {
            "TOGGL_EMAIL" => Some("demo@example.com".into()),
            "TOGGL_PASSWORD" => Some("demo-password".into()),
            _ => None,
        },
        None,
    )
    .expect("login");
    for (scheme, credentials) in [
        ("basic", token("demo-token")),
        ("auto", token("demo-token")),
        ("bearer", token("toggl_sk_demo")),
        ("auto", token("toggl_sk_demo")),
        ("auto", login.clone()),
        ("basic", login),
    ] {
        let client = Client::new(&config(&fake, scheme).api, &credentials).expect("client");
        rt.block_on(client.my_groups())
            .unwrap_or_else(|e| panic!("{scheme}: {e}"));
    }
    assert_eq!(config(&fake, "bearer").api.auth_scheme, AuthScheme::Bearer);
    let client = Client::new(&config(&fake, "basic").api, &token("wrong-token")).expect("client");
    let err = rt.block_on(client.roles()).expect_err("wrong token");
    // The default (focus) profile answers a refused key 401, as the real API is reported to.
    assert!(matches!(err, ApiError::Auth { status: 401, .. }), "{err}");
    assert!(!err.to_string().contains("wrong-token"), "{err}");
}

/// An error's `error_values` are shown: `HTTP 400 required_fields_missing: … (name)`.
#[test]
fn an_errors_values_are_shown_beside_its_description() {
    let fake = FakeServer::start_background(FakeOptions::default()).expect("fake");
    let client = Client::new(&config(&fake, "auto").api, &token("toggl_sk_demo")).expect("client");
    let nameless = GroupWrite {
        emoji: Some("x".into()),
        name: None,
        organization_users: None,
        workspaces: None,
    };
    let err = runtime()
        .block_on(client.create_group(&nameless))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "POST /organizations/1001/groups: HTTP 400 required_fields_missing: name is required (name) (trace_id "
        ),
        "{text}"
    );
}

fn client_for(base_url: &str, extra: &str) -> Client {
    let text = format!(
        "[api]\nbase_url = {base_url:?}\norganization_id = 1001\nworkspace_id = 2001\nmax_attempts = 1\n\
         connect_timeout = \"2s\"\nrequest_timeout = \"5s\"\n{extra}\n[database]\npath = \"/nonexistent/x.sqlite\"\n"
    );
    let config = Config::parse(&text).expect("config");
    Client::new(
        &config.api,
        &Credentials::Token(SecretString::from("toggl_sk_demo".to_string())),
    )
    .expect("client")
}

#[test]
fn pacing_holds_the_rate() {
    let fake = FakeServer::start_background(FakeOptions::default()).expect("fake");
    let client = client_for(&fake.base_url(), "max_requests_per_second = 4");
    let rt = runtime();
    client.start_run();
    let started = Instant::now();
    for _ in 0..5 {
        rt.block_on(client.roles()).expect("roles");
    }
    let took = started.elapsed();
    // Five requests at 4 a second: four intervals of 250 ms, within 5% below (timer
    // granularity) and a generous bound above on a shared machine.
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(2500),
        "took {took:?}"
    );
    let waited = client.stats().pacing_wait;
    assert!(waited >= Duration::from_millis(700), "waited {waited:?}");
    let log = fake.handle().requests();
    for pair in log.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(200), "gap {gap:?}");
    }
    // 0 turns it off.
    let client = client_for(&fake.base_url(), "max_requests_per_second = 0");
    let started = Instant::now();
    for _ in 0..5 {
        rt.block_on(client.roles()).expect("roles");
    }
    assert!(started.elapsed() < Duration::from_millis(900));
    assert_eq!(client.stats().pacing_wait, Duration::ZERO);
}

#[test]
fn transport_errors_say_what_to_check() {
    let fake = FakeServer::start_background(FakeOptions::default()).expect("fake");
    let rt = runtime();
    let port = fake.addr().port();
    let off = "max_requests_per_second = 0";

    // https:// to a plain-HTTP port.
    let err = rt
        .block_on(client_for(&format!("https://127.0.0.1:{port}/api"), off).roles())
        .expect_err("no TLS there");
    let message = err.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{port} did not answer TLS"))
            && message.contains("http://"),
        "{message}"
    );

    // A base URL without /api: the first request is a 404.
    let err = rt
        .block_on(client_for(&format!("http://127.0.0.1:{port}"), off).roles())
        .expect_err("404");
    assert!(matches!(err, ApiError::Status { status: 404, .. }), "{err}");
    assert!(err.to_string().contains("does not end in /api"), "{err}");

    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port();
    drop(closed);
    let err = rt
        .block_on(client_for(&format!("http://127.0.0.1:{closed_port}/api"), off).roles())
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains(&format!("nothing listens at 127.0.0.1:{closed_port}")),
        "{err}"
    );
}

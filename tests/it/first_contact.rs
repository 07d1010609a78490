//! First contact with the real Focus API: the example config with a `toggl_sk_` key against
//! the default (focus) profile, the seed profile with Basic credentials, a page size the API
//! refuses, every envelope and paging header at the minimum of requests, and readable errors.

use std::path::Path;
use std::time::{Duration, Instant};

use orgmirror_fake::{
    FakeHandle, FakeOptions, FakeProfile, FakeServer, Fault, FaultKind, ListShape, LoggedRequest,
    PagingHeader, Route,
};

use crate::support::*;

/// The example config, pointed at `fake` and `db`, every other key as shipped.
fn example_config(fake: &FakeServer, options: &FakeOptions, db: &Path) -> String {
    let example = include_str!("../../config/orgmirror.example.toml");
    example
        .lines()
        .map(|line| {
            let key = line.split('=').next().unwrap_or("").trim();
            match key {
                "base_url" => format!("base_url = {:?}", fake.base_url()),
                "organization_id" => format!("organization_id = {}", options.organization_id),
                "workspace_id" => format!("workspace_id = {}", options.workspace_id),
                "path" => format!("path = {:?}", db.display().to_string()),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The mirror holds exactly the fake's users, groups and memberships.
fn assert_mirrors(db: &Path, org: &FakeHandle) {
    let conn = rusqlite::Connection::open(db).expect("open");
    let users: Vec<Vec<String>> = org
        .user_ids()
        .into_iter()
        .map(|id| vec![id.to_string()])
        .collect();
    assert_eq!(
        rows(
            &conn,
            "SELECT organization_user_id FROM users_current ORDER BY 1"
        ),
        users
    );
    let groups: Vec<Vec<String>> = fake_groups(org).into_iter().collect();
    assert_eq!(
        rows(
            &conn,
            "SELECT group_id, name FROM groups_current ORDER BY 1"
        ),
        groups
    );
    let members: Vec<Vec<String>> = fake_memberships(org).into_iter().collect();
    assert_eq!(
        rows(
            &conn,
            "SELECT group_id, organization_user_id FROM group_members_current ORDER BY 1, 2"
        ),
        members
    );
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM roles_current"),
        org.role_ids().len() as i64
    );
    assert_references_hold(db);
}

#[test]
fn a_toggl_sk_key_syncs_the_example_config_against_the_default_profile() {
    let options = FakeOptions {
        users: 60,
        ..Default::default()
    };
    assert_eq!(options.profile, FakeProfile::Focus);
    let fake = FakeServer::start_background(options.clone()).expect("fake");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("org.sqlite");
    let config = dir.path().join("orgmirror.toml");
    std::fs::write(&config, example_config(&fake, &options, &db)).expect("config");
    // auto sends the key as Bearer: the focus profile refuses it as Basic.
    let out = run_with(&config, &["sync"], &[("TOGGL_API_TOKEN", "toggl_sk_demo")]);
    ok(&out);
    assert_mirrors(&db, &fake.handle());
    // Paced at the example's one request a second: the run waited, and says so.
    let status = ok(&run_with(&config, &["status"], &[]));
    assert!(status.contains("for pacing"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&run_with(&config, &["status", "--json"], &[])))
            .expect("status --json");
    let waited = json["runs"][0]["pacing_wait_seconds"].as_f64();
    assert!(waited.is_some_and(|w| w > 0.5), "{json}");
}

#[test]
fn the_seed_profile_with_basic_credentials_syncs_the_example_config() {
    let options = FakeOptions {
        users: 60,
        profile: FakeProfile::Seed,
        ..Default::default()
    };
    let fake = FakeServer::start_background(options.clone()).expect("fake");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("org.sqlite");
    let config = dir.path().join("orgmirror.toml");
    let text = example_config(&fake, &options, &db).replace(
        "max_requests_per_second = 1 ",
        "max_requests_per_second = 0 ",
    );
    std::fs::write(&config, text).expect("config");
    let out = run_with(
        &config,
        &["sync"],
        &[
            ("TOGGL_EMAIL", "demo@example.com"),
            ("TOGGL_PASSWORD", "demo-password"),
        ],
    );
    ok(&out);
    assert_mirrors(&db, &fake.handle());
    let out = run_with(&config, &["sync"], &[("TOGGL_API_TOKEN", "demo-token")]);
    ok(&out);
}

fn refused(log: &[LoggedRequest], suffix: &str) -> usize {
    log.iter()
        .filter(|r| r.path.ends_with(suffix) && r.status == 400)
        .count()
}

fn per_page_of(r: &LoggedRequest) -> Option<&str> {
    r.query.split('&').find_map(|p| p.strip_prefix("per_page="))
}

#[test]
fn a_refused_page_size_costs_one_request_per_list_once_in_a_mirrors_life() {
    // The focus profile refuses more than 100 a page; a user asks for 200.
    let m = Mirror::with(
        FakeOptions {
            users: 230,
            ..Default::default()
        },
        "per_page = 200",
    );
    let fake = m.fake.handle();
    let first = m.sync_ok();
    let log = fake.requests();
    assert_eq!(refused(&log, "/users"), 1, "{log:#?}");
    assert_eq!(refused(&log, "/teams"), 1, "{log:#?}");
    assert!(log
        .iter()
        .filter(|r| r.status == 200 && r.query.contains("per_page"))
        .all(|r| per_page_of(r) == Some("100")));
    let stderr = text(&first.stderr);
    assert_eq!(
        stderr.matches("refused the page size").count(),
        2,
        "one warning per list: {stderr}"
    );
    assert_mirrors(&m.db, &fake);
    assert_eq!(
        rows(
            &m.conn(),
            "SELECT list, per_page FROM api_page_sizes ORDER BY 1"
        ),
        [["teams", "100"], ["users", "100"]]
    );
    // The next run starts at the accepted size.
    fake.clear_requests();
    m.sync_ok();
    let log = fake.requests();
    assert_eq!(refused(&log, ""), 0, "{log:#?}");
    assert!(log
        .iter()
        .filter(|r| r.query.contains("per_page"))
        .all(|r| per_page_of(r) == Some("100")));

    // A server that takes fewer still: 100 refused, then 50, then 25 passes.
    let m = Mirror::new(120);
    let fake = m.fake.handle();
    fake.set_per_page_max(Some(30));
    m.sync_ok();
    let log = fake.requests();
    assert_eq!(refused(&log, "/users"), 2, "{log:#?}");
    assert_mirrors(&m.db, &fake);
    fake.clear_requests();
    m.sync_ok();
    assert_eq!(refused(&fake.requests(), ""), 0);
}

#[test]
fn a_400_that_is_not_about_the_page_size_fails_the_run_and_leaves_the_mirror_as_it_was() {
    let m = Mirror::new(80);
    let fake = m.fake.handle();
    m.sync_ok();
    let user = fake.user_ids()[3];
    fake.rename_user(user, "Renamed Meanwhile");
    let before = dump_current(&m.db);
    fake.inject(
        Fault::new(
            Route::Users,
            FaultKind::JsonError {
                status: 400,
                error: "validation".into(),
                description: "Key: 'Filter.Status' Error:Field validation for 'Status' failed on the 'oneof' tag".into(),
            },
        )
        .times(1),
    );
    let out = m.run(&["sync"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        dump_current(&m.db) == before,
        "the failed run changed the mirror"
    );
    let error = rows(
        &m.conn(),
        "SELECT error FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1",
    )[0][0]
        .clone();
    assert!(
        error.contains("HTTP 400 validation: Key: 'Filter.Status' Error:Field validation"),
        "{error}"
    );
    let trace = error
        .split("(trace_id ")
        .nth(1)
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or_default();
    assert!(
        trace.len() == 32 && trace.chars().all(|c| c.is_ascii_hexdigit()),
        "the trace id is kept: {error}"
    );
    assert!(text(&out.stderr).contains(trace));
    assert_eq!(
        refused(&fake.requests(), "/users"),
        1,
        "not retried smaller"
    );
}

/// The least requests a list of `n` rows can be read in at 100 a page: with a total
/// announced, its pages; without, a short or empty page must end it, and a short first
/// page is ambiguous (a server cap or the end: one more is asked, see `api/paging.rs`).
fn minimum(n: usize, announced: bool) -> usize {
    if announced {
        n.div_ceil(100).max(1)
    } else if n > 0 && n < 100 {
        2
    } else {
        n / 100 + 1
    }
}

#[test]
fn every_envelope_and_paging_header_ends_paging_at_the_minimum_of_requests() {
    let all = ListShape::Data {
        page: true,
        per_page: true,
        rows: true,
        total: true,
    };
    let shapes = [
        ("items", ListShape::Items, false),
        ("data", ListShape::DATA, false),
        ("data+page+per_page", ListShape::FOCUS, false),
        ("data+page+per_page+total", ListShape::FOCUS_TOTAL, true),
        ("data+page+rows+total", ListShape::TEAMS, true),
        ("data+everything", all, true),
        ("array", ListShape::Bare, false),
    ];
    for (name, shape, total_in_body) in shapes {
        for headers in [false, true] {
            let m = Mirror::new(200);
            let fake = m.fake.handle();
            for route in [Route::Users, Route::Teams, Route::Roles, Route::MyGroups] {
                fake.set_list_shape(route, shape);
            }
            fake.set_paging_headers(headers);
            m.sync_ok();
            assert_mirrors(&m.db, &fake);
            let what = format!("{name}, paging headers {headers}");
            let log = fake.requests();
            let counts = fake.counts();
            let announced = total_in_body || headers;
            let count = |suffix: &str| log.iter().filter(|r| r.path.ends_with(suffix)).count();
            assert_eq!(count("/roles"), 1, "{what}");
            assert_eq!(count("/teams"), minimum(counts.groups, announced), "{what}");
            assert_eq!(count("/users"), minimum(counts.users, announced), "{what}");
        }
    }
    // Each header that announces the whole list, alone, under an envelope that does not.
    for header in [PagingHeader::Records, PagingHeader::Pages] {
        for users in [200, 250] {
            let m = Mirror::new(users);
            let fake = m.fake.handle();
            fake.set_list_shape(Route::Teams, ListShape::FOCUS);
            fake.send_paging_headers(&[header]);
            m.sync_ok();
            assert_mirrors(&m.db, &fake);
            let log = fake.requests();
            let count = |suffix: &str| log.iter().filter(|r| r.path.ends_with(suffix)).count();
            let what = format!("{header:?} alone, {users} users");
            assert_eq!(count("/users"), users.div_ceil(100), "{what}");
            assert_eq!(
                count("/teams"),
                minimum(fake.counts().groups, true),
                "{what}"
            );
        }
    }
    // X-Page and X-Page-Size say nothing of the end: a short or empty page still must.
    let m = Mirror::new(200);
    let fake = m.fake.handle();
    fake.send_paging_headers(&[PagingHeader::Page, PagingHeader::PageSize]);
    m.sync_ok();
    let users = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/users"))
        .count();
    assert_eq!(users, minimum(200, false));
}

#[test]
fn a_refused_key_exits_2_within_seconds_naming_the_scheme_sent() {
    let m = Mirror::new(10);
    // A Focus key goes as Bearer, as it should: the advice is about Focus keys instead.
    for (token, sent) in [
        ("toggl_sk_wrong", "Focus keys expire"),
        ("an-old-track-token", "(sent as Basic <token>:api_token)"),
    ] {
        let started = Instant::now();
        let out = run_with(&m.config, &["sync"], &[("TOGGL_API_TOKEN", token)]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(stderr.matches(sent).count(), 1, "{stderr}");
        assert!(stderr.contains("HTTP 401"), "{stderr}");
    }
}

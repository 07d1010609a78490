//! "A pull you can trust", end to end through the binary against the fake's faults:
//! retries and their bounds, 429 and quota waits, frugal paging, confirmed deletions,
//! the deletion guard, bad bodies, transport safety, and `kill -9` at any moment.
//!
//! Waits are checked against the fake's request log, whose timestamps are taken as each
//! request arrives, with [`SLACK`] for scheduling noise.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use orgmirror_fake::{
    FakeHandle, FakeOptions, FakeProfile, Fault, FaultKind, LoggedRequest, QuotaConfig, Route,
};
use rusqlite::Connection;

use crate::support::*;

/// Scheduling noise allowed around a timed wait.
const SLACK: Duration = Duration::from_millis(50);

/// How errors name the users list (the fake's organization is 1001).
fn users_page(page: u32) -> String {
    format!("GET /organizations/1001/users page {page}")
}

// ---------------------------------------------------------------------------------------
// Helpers

/// A fake of `users` users serving at most `cap` rows a page, and its mirror.
fn capped(users: usize, cap: usize, api_extra: &str) -> Mirror {
    Mirror::with(
        FakeOptions {
            users,
            per_page_cap: cap,
            ..Default::default()
        },
        api_extra,
    )
}

/// `orgmirror --config … ARGS` with this token and no other credentials.
fn command(m: &Mirror, args: &[&str], token: &str) -> Command {
    let mut c = Command::new(bin());
    c.arg("--config")
        .arg(&m.config)
        .args(args)
        .env("TOGGL_API_TOKEN", token)
        .env_remove("TOGGL_EMAIL")
        .env_remove("TOGGL_PASSWORD")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG");
    c
}

/// A `sync` in the background, to be killed.
fn spawn_sync(m: &Mirror) -> Child {
    command(m, &["sync"], "demo-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sync starts")
}

/// `sync ARGS`, and how long it took.
fn timed(m: &Mirror, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = m.run(args);
    (out, started.elapsed())
}

/// The newest `sync_runs` row.
#[derive(Debug)]
struct RunRow {
    id: i64,
    status: String,
    error: String,
    requests: i64,
    quota_remaining: Option<i64>,
    quota_resets_at: Option<String>,
}

fn last_run_row(db: &Path) -> RunRow {
    let conn = Connection::open(db).expect("open");
    conn.query_row(
        "SELECT sync_run_id, status, coalesce(error, ''), requests, quota_remaining, quota_resets_at
         FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1",
        [],
        |r| {
            Ok(RunRow {
                id: r.get(0)?,
                status: r.get(1)?,
                error: r.get(2)?,
                requests: r.get(3)?,
                quota_remaining: r.get(4)?,
                quota_resets_at: r.get(5)?,
            })
        },
    )
    .expect("a sync_runs row")
}

/// What the fake served on paths ending with `suffix` (`/users`, `/teams`, `/roles`).
fn served(fake: &FakeHandle, suffix: &str) -> Vec<LoggedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path.ends_with(suffix))
        .collect()
}

/// The value of a query parameter (the first, by name before any `[]`).
fn param<'a>(r: &'a LoggedRequest, name: &str) -> Option<&'a str> {
    r.query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

fn page_of(r: &LoggedRequest) -> u32 {
    param(r, "page").and_then(|p| p.parse().ok()).unwrap_or(1)
}

/// A re-check through `org_user_ids[]` or `group_ids[]`.
fn is_by_id(r: &LoggedRequest) -> bool {
    r.query.contains("org_user_ids") || r.query.contains("group_ids")
}

/// The ids a by-id re-check asked for (`org_user_ids=1,2` or `org_user_ids[]=1&…`).
fn ids_asked(r: &LoggedRequest) -> Vec<i64> {
    r.query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| key.starts_with("org_user_ids") || key.starts_with("group_ids"))
        .flat_map(|(_, v)| {
            v.split(',')
                .filter_map(|id| id.parse().ok())
                .collect::<Vec<i64>>()
        })
        .collect()
}

/// Pages of a full pull (not re-checks) in the order they were asked.
fn pull_pages(log: &[LoggedRequest]) -> Vec<(u32, u16)> {
    log.iter()
        .filter(|r| !is_by_id(r))
        .map(|r| (page_of(r), r.status))
        .collect()
}

/// Time from the request matching `first` to the next request the fake saw.
fn gap_after(fake: &FakeHandle, first: impl Fn(&LoggedRequest) -> bool) -> Duration {
    let log = fake.requests();
    let i = log
        .iter()
        .position(first)
        .unwrap_or_else(|| panic!("no such request in {log:#?}"));
    let next = log.get(i + 1).expect("a request after it");
    next.at.duration_since(log[i].at)
}

/// `(op, entity_id)` of a run's user events, in order.
fn user_events(db: &Path, run: i64) -> Vec<(String, String)> {
    rows(
        &Connection::open(db).expect("open"),
        &format!(
            "SELECT op, entity_id FROM change_events
             WHERE sync_run_id = {run} AND entity = 'user' ORDER BY event_id"
        ),
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

fn integrity(db: &Path) -> Vec<Vec<String>> {
    rows(
        &Connection::open(db).expect("open"),
        "PRAGMA integrity_check",
    )
}

/// Runs `sync` and asserts that it failed cleanly: exit 1, no panic, the error on stderr
/// and in `sync_runs` naming each of `says`, and the current tables as they were.
fn check_fails_cleanly(m: &Mirror, says: &[&str]) -> RunRow {
    let before = dump_current(&m.db);
    let out = m.run(&["sync"]);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {stderr}",
        text(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let run = last_run_row(&m.db);
    assert_eq!(run.status, "failed", "{run:?}");
    for s in says {
        assert!(
            run.error.contains(s),
            "{s:?} not in the run's error: {run:?}"
        );
        assert!(stderr.contains(s), "{s:?} not on stderr: {stderr}");
    }
    assert!(
        dump_current(&m.db) == before,
        "a failed run changed the mirror"
    );
    run
}

/// 30 users, 10 a page, synced once; then `kind` on every answer for users page 2 must
/// fail the next sync cleanly, naming the endpoint, the page and each of `says`.
fn check_bad_body(kind: FaultKind, api_extra: &str, says: &[&str]) {
    let m = capped(30, 10, api_extra);
    m.sync_ok();
    m.fake
        .handle()
        .inject(Fault::new(Route::Users, kind).on_page(2));
    let page = users_page(2);
    let mut says = says.to_vec();
    says.push(&page);
    check_fails_cleanly(&m, &says);
}

// ---------------------------------------------------------------------------------------
// 1. Retries: bounded attempts, bounded time

#[test]
fn a_persistent_500_on_page_3_fails_within_the_attempt_bound_and_changes_nothing() {
    let m = capped(40, 10, "max_attempts = 4");
    m.sync_ok();
    let fake = m.fake.handle();
    fake.clear_requests();
    fake.inject(
        Fault::new(
            Route::Users,
            FaultKind::Status(500, "internal error".into()),
        )
        .on_page(3),
    );
    let started = Instant::now();
    let run = check_fails_cleanly(
        &m,
        &[&users_page(3), "gave up after 4 attempts", "HTTP 500"],
    );
    // Four attempts with backoff capped at 50 ms: well under a second of waiting.
    assert!(started.elapsed() < Duration::from_secs(3), "{run:?}");
    let pages = pull_pages(&served(&fake, "/users"));
    assert_eq!(
        pages,
        [(1, 200), (2, 200), (3, 500), (3, 500), (3, 500), (3, 500)],
        "page 3 is tried max_attempts times, and nothing is asked after giving up"
    );
    assert_eq!(run.requests, fake.request_count() as i64);
}

#[test]
fn retrying_stops_within_max_retry_time() {
    let m = capped(
        20,
        200,
        "max_attempts = 1000\ninitial_backoff = \"200ms\"\nmax_backoff = \"200ms\"\nmax_retry_time = \"1s\"",
    );
    m.sync_ok();
    m.fake.handle().clear_requests();
    m.fake.handle().inject(Fault::new(
        Route::Users,
        FaultKind::Status(503, "busy".into()),
    ));
    let started = Instant::now();
    check_fails_cleanly(&m, &[&users_page(1), "api.max_retry_time", "HTTP 503"]);
    let log = served(&m.fake.handle(), "/users");
    let retrying = log[log.len() - 1].at.duration_since(log[0].at);
    assert!(
        retrying <= Duration::from_secs(1) + 10 * SLACK,
        "retried for {retrying:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn transient_503s_and_429s_are_retried_and_retry_after_is_respected() {
    let m = capped(50, 10, "");
    let fake = m.fake.handle();
    let users = |kind: FaultKind, page: u32| Fault::new(Route::Users, kind).on_page(page).times(1);
    let too_many = |after: Option<String>| FaultKind::TooManyRequests { retry_after: after };
    fake.inject(users(FaultKind::Status(503, "busy".into()), 1).times(2));
    fake.inject(users(too_many(Some("1".into())), 2));
    // An HTTP date is whole seconds: 2 to 3 s from now.
    let (now_instant, now_system) = (Instant::now(), SystemTime::now());
    let at = chrono::DateTime::<chrono::Utc>::from(now_system + Duration::from_secs(3));
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let whole_seconds = SystemTime::UNIX_EPOCH + Duration::from_secs(at.timestamp() as u64);
    let date_instant = now_instant
        + whole_seconds
            .duration_since(now_system)
            .expect("in the future");
    fake.inject(users(too_many(Some(date)), 3));
    fake.inject(users(too_many(None), 4));

    let (out, took) = timed(&m, &["sync"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(scalar(&m.conn(), "SELECT count(*) FROM users_current"), 50);

    let is = |page: u32, status: u16| {
        move |r: &LoggedRequest| {
            r.path.ends_with("/users") && page_of(r) == page && r.status == status
        }
    };
    let after_seconds = gap_after(&fake, is(2, 429));
    assert!(
        after_seconds >= Duration::from_secs(1) - SLACK && after_seconds < Duration::from_secs(2),
        "Retry-After: 1 was followed by a {after_seconds:?} wait"
    );
    let log = fake.requests();
    let retried_page_3 = log
        .iter()
        .filter(|r| is(3, 200)(r))
        .map(|r| r.at)
        .next()
        .expect("page 3 retried");
    assert!(
        retried_page_3 + SLACK >= date_instant,
        "page 3 was asked again {:?} before the Retry-After date",
        date_instant.duration_since(retried_page_3)
    );
    assert!(
        gap_after(&fake, is(4, 429)) < Duration::from_secs(1),
        "without Retry-After the client backs off (at most max_backoff = 50ms)"
    );
    let run = last_run_row(&m.db);
    assert_eq!(run.status, "succeeded");
    // Every attempt counts: 6 user pages, 5 refused answers, teams and roles.
    assert_eq!(run.requests, log.len() as i64);
    assert_eq!(log.iter().filter(|r| r.status != 200).count(), 5);
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

// ---------------------------------------------------------------------------------------
// 3. Quota

#[test]
fn a_spent_quota_is_waited_out_before_the_next_request() {
    let m = capped(30, 10, "");
    let fake = m.fake.handle();
    fake.inject(
        Fault::new(Route::Users, FaultKind::QuotaSpent { resets_in: 1 })
            .on_page(2)
            .times(1),
    );
    m.sync_ok();
    let waited = gap_after(&fake, |r| r.status == 402);
    assert!(
        waited >= Duration::from_secs(1) - SLACK && waited < Duration::from_secs(3),
        "a 402 saying 'resets in 1 s' was followed by a request after {waited:?}"
    );
    let pages = pull_pages(&served(&fake, "/users"));
    assert_eq!(pages, [(1, 200), (2, 402), (2, 200), (3, 200), (4, 200)]);
}

#[test]
fn a_quota_reset_beyond_max_quota_wait_fails_at_once() {
    let m = capped(30, 10, "max_quota_wait = \"1s\"");
    m.sync_ok();
    m.fake.handle().clear_requests();
    m.fake.handle().inject(Fault::new(
        Route::Users,
        FaultKind::QuotaSpent { resets_in: 30 },
    ));
    let started = Instant::now();
    check_fails_cleanly(&m, &[&users_page(1), "api.max_quota_wait"]);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        served(&m.fake.handle(), "/users").len(),
        1,
        "no second call into a window spent for longer than the wait allowed"
    );
}

#[test]
fn a_quota_window_is_never_overrun_and_is_recorded_shown_and_respected_by_the_next_run() {
    // 40 users, 10 a page: roles, one teams page, five users pages = 7 requests, 4 a window
    // (the audit log off: its request is counted like these, see audit.rs).
    let m = capped(40, 10, "\n[sync]\naudit_log = false\n");
    let fake = m.fake.handle();
    fake.set_quota(Some(QuotaConfig {
        limit: 4,
        window: Duration::from_secs(1),
    }));
    m.sync_ok();
    let log = fake.requests();
    assert_eq!(log.len(), 7);
    assert!(
        log.iter().all(|r| r.status == 200),
        "a request was sent into a spent window: {log:#?}"
    );
    let waited = log[4].at.duration_since(log[3].at);
    assert!(waited >= Duration::from_secs(1) - SLACK, "{waited:?}");

    let run = last_run_row(&m.db);
    assert_eq!(run.requests, 7);
    assert_eq!(run.quota_remaining, Some(1));
    let resets_at = run.quota_resets_at.clone().expect("quota_resets_at stored");
    let parsed = chrono::DateTime::parse_from_rfc3339(&resets_at).expect("RFC 3339");
    assert!(resets_at.ends_with('Z'), "{resets_at}");
    let status = m.run(&["status"]);
    assert!(
        text(&status.stdout).contains(&format!("1 requests left, resets at {resets_at}")),
        "{}",
        text(&status.stdout)
    );

    // One request left cannot carry a run of seven: the next run waits for the stored
    // reset before its first request.
    fake.clear_requests();
    let reset = instant_of(parsed.timestamp());
    m.sync_ok();
    let log = fake.requests();
    assert!(log.iter().all(|r| r.status == 200), "{log:#?}");
    assert!(
        log[0].at + SLACK >= reset,
        "the first request came {:?} before the stored reset",
        reset.duration_since(log[0].at)
    );
}

/// The `Instant` of a Unix time in seconds.
fn instant_of(unix: i64) -> Instant {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).expect("after 1970"));
    let (now_instant, now_system) = (Instant::now(), SystemTime::now());
    match at.duration_since(now_system) {
        Ok(ahead) => now_instant + ahead,
        Err(behind) => now_instant - behind.duration(),
    }
}

#[test]
fn a_quota_reset_recorded_years_ahead_does_not_stop_the_mirror() {
    let m = capped(20, 200, "");
    m.sync_ok();
    // What an older build recorded from a server that announced a reset in 10^9 seconds.
    m.conn()
        .execute(
            "UPDATE sync_runs SET quota_remaining = 0, quota_resets_at = '2058-08-06T00:00:00Z'
             WHERE sync_run_id = (SELECT max(sync_run_id) FROM sync_runs)",
            [],
        )
        .expect("seed the quota");
    let fake = m.fake.handle();
    fake.clear_requests();
    m.sync_ok();
    assert!(!fake.requests().is_empty(), "the run sent nothing");
}

#[test]
fn a_run_waits_before_its_first_request_when_the_last_quota_cannot_cover_it() {
    let m = capped(20, 200, "");
    m.sync_ok();
    let fake = m.fake.handle();
    // (quota remaining as last recorded, whether the next run must wait for the reset)
    let cases = [(0, true), (1, true), (1000, false)];
    for (remaining, waits) in cases {
        let reset = chrono::Utc::now() + chrono::Duration::seconds(2);
        let reset_text = reset.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let conn = m.conn();
        conn.execute(
            "UPDATE sync_runs SET quota_remaining = ?1, quota_resets_at = ?2
             WHERE sync_run_id = (SELECT max(sync_run_id) FROM sync_runs)",
            rusqlite::params![remaining, reset_text],
        )
        .expect("seed the quota");
        drop(conn);
        fake.clear_requests();
        let started = Instant::now();
        m.sync_ok();
        let first = fake.requests()[0].at;
        let reset_instant = instant_of(reset.timestamp());
        if waits {
            assert!(
                first + SLACK >= reset_instant,
                "remaining {remaining}: the first request came {:?} before the reset",
                reset_instant.duration_since(first)
            );
        } else {
            assert!(
                first.duration_since(started) < Duration::from_secs(1),
                "remaining {remaining}: waited {:?} with quota to spare",
                first.duration_since(started)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. Frugal, finite paging

#[test]
fn a_server_capping_per_page_far_below_the_ask_still_yields_every_row() {
    // The seed's server caps silently (the focus profile would refuse 200 instead).
    let m = Mirror::with(
        FakeOptions {
            users: 60,
            per_page_cap: 7,
            profile: FakeProfile::Seed,
            ..Default::default()
        },
        "per_page = 200",
    );
    m.sync_ok();
    let fake = m.fake.handle();
    let want: Vec<Vec<String>> = fake
        .user_ids()
        .into_iter()
        .map(|id| vec![id.to_string()])
        .collect();
    assert_eq!(
        rows(
            &m.conn(),
            "SELECT organization_user_id FROM users_current ORDER BY 1"
        ),
        want
    );
    let log = served(&fake, "/users");
    assert!(log.iter().all(|r| param(r, "per_page") == Some("200")));
    // ceil(60 / 7) = 9 pages; the ninth (4 rows) is short after full ones: the end.
    assert_eq!(pull_pages(&log).len(), 9);
}

/// A full sync of the fake's org against a page cap: roles once, teams exactly as many
/// pages as `total` needs, users the pages needed or one more (an empty or ambiguous end).
fn check_requests(users: usize, cap: usize, users_pages: usize) {
    let m = capped(users, cap, "");
    let fake = m.fake.handle();
    for sync in ["first", "unchanged"] {
        fake.clear_requests();
        m.sync_ok();
        let counts = fake.counts();
        // api.per_page (100) asks for fewer than a larger cap allows.
        let pages = |n: usize| n.div_ceil(cap.min(100)).max(1);
        let roles = served(&fake, "/roles").len();
        let teams = served(&fake, "/teams").len();
        let users_log = served(&fake, "/users");
        let what = format!("{sync} sync, {users} users, cap {cap}");
        assert_eq!(roles, 1, "{what}");
        assert_eq!(teams, pages(counts.groups), "{what}");
        assert_eq!(users_log.len(), users_pages, "{what}");
        assert!(!users_log.iter().any(is_by_id), "{what}: nothing vanished");
        let audit = fake
            .requests()
            .iter()
            .filter(|r| r.path.contains("/audit-log/"))
            .count();
        assert_eq!(audit, 1, "{what}");
        let minimum = 1 + pages(counts.groups) + pages(counts.users) + 1;
        let run = last_run_row(&m.db);
        assert_eq!(run.requests, fake.request_count() as i64, "{what}");
        assert!(
            (minimum..=minimum + 1).contains(&(run.requests as usize)),
            "{what}: {} requests, minimum {minimum}",
            run.requests
        );
    }
}

#[test]
fn a_sync_uses_the_minimum_requests_or_one_more_per_list() {
    // (users, page cap, users requests)
    let cases = [
        (120, 50, 3),  // 50 + 50 + 20: the short third page ends it
        (100, 50, 3),  // 50 + 50 + an empty page: an exact multiple needs it
        (120, 200, 2), // 100 + 20 (api.per_page = 100 asks fewer than the cap allows)
        (230, 200, 3), // 100 + 100 + 30
        (60, 200, 2),  // a short first page is ambiguous (a cap or the end): one more
    ];
    for (users, cap, users_pages) in cases {
        check_requests(users, cap, users_pages);
    }
}

#[test]
fn a_repeated_page_or_a_server_that_never_ends_fails_instead_of_looping() {
    let m = capped(30, 10, "max_pages = 6");
    m.sync_ok();
    let fake = m.fake.handle();
    fake.inject(Fault::new(Route::Users, FaultKind::RepeatPage(1)).on_page(2));
    check_fails_cleanly(&m, &[&users_page(2), "only rows already seen"]);
    fake.clear_faults();
    fake.clear_requests();
    fake.inject(Fault::new(Route::Users, FaultKind::NeverEnds));
    check_fails_cleanly(
        &m,
        &[
            "GET /organizations/1001/users",
            "api.max_pages",
            "never ends",
        ],
    );
    assert_eq!(served(&fake, "/users").len(), 6);
}

// ---------------------------------------------------------------------------------------
// 5. Only confirmed absences are deletions

/// 30 users served 10 a page, synced once; the user ids in list order.
fn shifting_org() -> (Mirror, Vec<i64>) {
    let m = capped(30, 10, "");
    m.sync_ok();
    let ids = m.fake.handle().user_ids();
    (m, ids)
}

/// Removes `gone` from the fake right after it served users page 1 of the next pull, so
/// every later row moves up a place and the first row of page 2 lands on page 1.
fn remove_after_page_1(m: &Mirror, gone: Vec<i64>) {
    let mutate = move |fake: &FakeHandle| {
        for id in &gone {
            assert!(fake.remove_user(*id));
        }
    };
    m.fake.handle().inject(
        Fault::new(Route::Users, FaultKind::MutateAfter(Arc::new(mutate)))
            .on_page(1)
            .times(1),
    );
}

/// The ids the run's by-id re-checks asked for, ascending.
fn rechecked(fake: &FakeHandle) -> Vec<i64> {
    let ids: std::collections::BTreeSet<i64> = served(fake, "/users")
        .iter()
        .filter(|r| is_by_id(r))
        .flat_map(ids_asked)
        .collect();
    ids.into_iter().collect()
}

fn delete(id: i64) -> (String, String) {
    ("delete".to_string(), id.to_string())
}

#[test]
fn a_row_skipped_by_a_shift_is_rechecked_not_deleted_and_the_removed_user_goes_next_run() {
    let (m, ids) = shifting_org();
    let fake = m.fake.handle();
    remove_after_page_1(&m, vec![ids[3]]);
    fake.clear_requests();
    m.sync_ok();
    let run = last_run_row(&m.db);
    // ids[3] was served on page 1 before it went; ids[10] slid onto page 1 unseen.
    assert_eq!(rechecked(&fake), [ids[10]]);
    assert_eq!(user_events(&m.db, run.id), []);
    assert_eq!(scalar(&m.conn(), "SELECT count(*) FROM users_current"), 30);

    m.sync_ok();
    assert_eq!(user_events(&m.db, last_run_row(&m.db).id), [delete(ids[3])]);
}

#[test]
fn a_user_deleted_during_paging_is_deleted_and_the_row_it_shifted_is_not() {
    let (m, ids) = shifting_org();
    let fake = m.fake.handle();
    // ids[10] goes too: page 2 now starts at ids[12], so ids[11] is the one skipped.
    remove_after_page_1(&m, vec![ids[3], ids[10]]);
    fake.clear_requests();
    m.sync_ok();
    assert_eq!(rechecked(&fake), [ids[10], ids[11]]);
    assert_eq!(
        user_events(&m.db, last_run_row(&m.db).id),
        [delete(ids[10])]
    );
    m.sync_ok();
    assert_eq!(user_events(&m.db, last_run_row(&m.db).id), [delete(ids[3])]);
    let conn = m.conn();
    assert_eq!(scalar(&conn, "SELECT count(*) FROM users_current"), 28);
    assert_eq!(
        scalar(
            &conn,
            &format!(
                "SELECT count(*) FROM users_current WHERE organization_user_id = {}",
                ids[11]
            )
        ),
        1
    );
}

#[test]
fn a_group_skipped_by_a_shift_is_rechecked_and_a_removed_one_is_deleted_next_run() {
    let m = capped(30, 10, "");
    let fake = m.fake.handle();
    for i in 0..25 {
        fake.add_group(&format!("team {i}"), "");
    }
    m.sync_ok();
    let groups = fake.group_ids();
    assert!(groups.len() > 20, "{groups:?}");
    let gone = groups[3];
    let remove = move |fake: &FakeHandle| assert!(fake.remove_group(gone));
    fake.inject(
        Fault::new(Route::Teams, FaultKind::MutateAfter(Arc::new(remove)))
            .on_page(1)
            .times(1),
    );
    fake.clear_requests();
    m.sync_ok();
    let asked: Vec<i64> = served(&fake, "/teams")
        .iter()
        .filter(|r| is_by_id(r))
        .flat_map(ids_asked)
        .collect();
    assert_eq!(
        asked,
        [groups[10]],
        "the group that slid onto page 1 is asked for"
    );
    let group_events = |run: i64| {
        rows(
            &m.conn(),
            &format!("SELECT op, entity_id FROM change_events WHERE sync_run_id = {run} AND entity = 'group'"),
        )
    };
    assert_eq!(
        group_events(last_run_row(&m.db).id),
        Vec::<Vec<String>>::new()
    );
    m.sync_ok();
    assert_eq!(
        group_events(last_run_row(&m.db).id),
        [["delete".to_string(), gone.to_string()]]
    );
}

#[test]
fn a_page_cap_that_shrinks_mid_pull_deletes_nobody() {
    let m = capped(50, 10, "");
    m.sync_ok();
    let before = dump_current(&m.db);
    let shrink = |fake: &FakeHandle| fake.set_per_page_cap(7);
    m.fake.handle().inject(
        Fault::new(Route::Users, FaultKind::MutateAfter(Arc::new(shrink)))
            .on_page(1)
            .times(1),
    );
    m.sync_ok();
    let run = last_run_row(&m.db);
    assert_eq!(
        user_events(&m.db, run.id),
        [],
        "a smaller page is not an absence"
    );
    assert!(
        dump_current(&m.db) == before,
        "an unchanged org changed the mirror"
    );
}

/// A first sync writes what it pulls while later pages arrive. A group seen twice because
/// the rows moved (here: the page cap shrank after page 1) counts in its later copy: a
/// rename between the copies leaves one insert with the new name, and a member who left
/// in between is not in the mirror at all (no event, no history row).
#[test]
fn a_group_seen_twice_in_a_first_sync_is_mirrored_as_its_later_copy() {
    let m = capped(200, 10, "");
    let fake = m.fake.handle();
    let groups = fake.group_ids();
    let (renamed, left) = (groups[8], groups[9]);
    let leaver = *fake.group_members(left).first().expect("a member");
    let between = move |fake: &FakeHandle| {
        assert!(fake.rename_group(renamed, "Renamed between pages"));
        assert!(fake.leave_group(left, leaver));
        // Page 2 now starts at the 8th group: the 8th to 10th come again.
        fake.set_per_page_cap(7);
    };
    fake.inject(
        Fault::new(Route::Teams, FaultKind::MutateAfter(Arc::new(between)))
            .on_page(1)
            .times(1),
    );
    m.sync_ok();
    let conn = m.conn();
    let run = last_run(&conn);
    let teams_served = served(&fake, "/teams");
    assert!(
        teams_served.iter().any(|r| page_of(r) == 2),
        "page 2 was never served: {teams_served:?}"
    );
    let group_events = rows(
        &conn,
        &format!(
            "SELECT op, json_extract(after_json, '$.name') FROM change_events
             WHERE sync_run_id = {run} AND entity = 'group' AND entity_id = '{renamed}'"
        ),
    );
    assert_eq!(group_events, [["insert", "Renamed between pages"]]);
    assert_eq!(
        scalar(
            &conn,
            &format!(
                "SELECT count(*) FROM entity_history WHERE entity = 'group' AND id = {renamed}"
            )
        ),
        1
    );
    let name: String = conn
        .query_row(
            &format!("SELECT name FROM groups_current WHERE group_id = {renamed}"),
            [],
            |r| r.get(0),
        )
        .expect("the renamed group is mirrored");
    assert_eq!(name, "Renamed between pages");
    let membership = format!("{left}:{leaver}");
    for sql in [
        format!("SELECT count(*) FROM change_events WHERE entity = 'group_membership' AND entity_id = '{membership}'"),
        format!("SELECT count(*) FROM entity_history WHERE entity = 'group_membership' AND id = {left} AND sub_id = {leaver}"),
        format!("SELECT count(*) FROM group_members WHERE group_id = {left} AND organization_user_id = {leaver}"),
    ] {
        assert_eq!(scalar(&conn, &sql), 0, "{sql}");
    }
    // The other members of that group are there, each inserted once.
    let others = fake.group_members(left).len() as i64;
    assert!(others > 0);
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM change_events WHERE sync_run_id = {run} AND entity = 'group_membership' AND entity_id LIKE '{left}:%'")
        ),
        others
    );
    // The run's event count matches its events.
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT events_written FROM sync_runs WHERE sync_run_id = {run}")
        ),
        scalar(
            &conn,
            &format!("SELECT count(*) FROM change_events WHERE sync_run_id = {run}")
        )
    );
}

// ---------------------------------------------------------------------------------------
// 6. The deletion guard

#[test]
fn a_mass_deletion_is_refused_with_exit_3_until_allowed() {
    let m = capped(30, 200, "");
    m.sync_ok();
    let fake = m.fake.handle();
    let ids = fake.user_ids();
    // A fifth of the users go: within sync.max_delete_fraction = 0.5.
    for id in &ids[..6] {
        fake.remove_user(*id);
    }
    m.sync_ok();
    assert_eq!(user_events(&m.db, last_run_row(&m.db).id).len(), 6);

    // (users removed upstream so far, what the refusal says)
    let steps: [(usize, &[&str]); 2] = [
        (
            21,
            &[
                "15 of 24 users",
                "--allow-mass-delete",
                "max_delete_fraction",
            ],
        ),
        (
            30,
            &["24 of 24 users", "(all of them)", "--allow-mass-delete"],
        ),
    ];
    for (removed, says) in steps {
        for id in &ids[6..removed] {
            fake.remove_user(*id);
        }
        let before = dump_current(&m.db);
        let out = m.run(&["sync"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        let run = last_run_row(&m.db);
        assert_eq!(run.status, "failed");
        assert!(run.error.starts_with("refused"), "{run:?}");
        for s in says {
            assert!(stderr.contains(s), "{s:?} not in {stderr}");
            assert!(run.error.contains(s), "{s:?} not in {run:?}");
        }
        assert!(
            dump_current(&m.db) == before,
            "a refused run changed the mirror"
        );
    }

    let out = m.run(&["sync", "--allow-mass-delete"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(scalar(&m.conn(), "SELECT count(*) FROM users_current"), 0);
    let events = user_events(&m.db, last_run_row(&m.db).id);
    assert_eq!(events.len(), 24);
    assert!(events.iter().all(|(op, _)| op == "delete"));
}

#[test]
fn a_mass_deletion_of_groups_is_refused_as_one_of_users_is() {
    let m = capped(80, 200, "");
    m.sync_ok();
    let fake = m.fake.handle();
    let groups = fake.group_ids();
    let gone = groups.len() / 2 + 1;
    for id in &groups[..gone] {
        assert!(fake.remove_group(*id));
    }
    let before = dump_current(&m.db);
    let out = m.run(&["sync"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let says = format!("{gone} of {} groups", groups.len());
    assert!(stderr.contains(&says), "{says:?} not in {stderr}");
    assert!(
        dump_current(&m.db) == before,
        "a refused run changed the mirror"
    );
    let out = m.run(&["sync", "--allow-mass-delete"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        scalar(&m.conn(), "SELECT count(*) FROM groups_current") as usize,
        groups.len() - gone
    );
}

// ---------------------------------------------------------------------------------------
// 7. Bad bodies

#[test]
fn a_truncated_body_fails_cleanly() {
    check_bad_body(
        FaultKind::Truncated,
        "",
        &["invalid response body", "not JSON"],
    );
}

#[test]
fn a_malformed_body_fails_cleanly() {
    check_bad_body(
        FaultKind::Malformed,
        "",
        &["invalid response body", "not JSON"],
    );
}

#[test]
fn a_wrong_type_in_one_record_fails_cleanly_naming_the_item() {
    check_bad_body(FaultKind::WrongType, "", &["item 0", "invalid type"]);
}

#[test]
fn an_html_page_with_200_fails_cleanly() {
    check_bad_body(
        FaultKind::Html(200),
        "",
        &["not JSON", "The server could not handle the request"],
    );
}

#[test]
fn an_html_502_is_retried_then_fails_cleanly() {
    check_bad_body(
        FaultKind::Html(502),
        "max_attempts = 2",
        &["HTTP 502", "gave up after 2 attempts", "Bad Gateway"],
    );
}

#[test]
fn a_body_over_max_body_bytes_fails_cleanly() {
    check_bad_body(
        FaultKind::Huge(2_000_000),
        "max_body_bytes = 1000000",
        &["api.max_body_bytes", "1000000"],
    );
}

#[test]
fn a_body_that_never_finishes_fails_cleanly() {
    check_bad_body(
        FaultKind::Hang,
        "request_timeout = \"300ms\"\nmax_attempts = 2",
        &["timed out", "gave up after 2 attempts"],
    );
}

// ---------------------------------------------------------------------------------------
// 8. Transport safety, and credentials

#[test]
fn a_redirect_is_not_followed() {
    let m = capped(10, 200, "");
    m.sync_ok();
    let fake = m.fake.handle();
    fake.clear_requests();
    // Back to the fake itself: a followed redirect would show up in its log.
    let target = format!("{}/organizations/1001/roles?followed=1", m.fake.base_url());
    fake.inject(Fault::new(Route::Users, FaultKind::Redirect(target)));
    check_fails_cleanly(&m, &[&users_page(1), "HTTP 302 redirect", "not followed"]);
    let log = fake.requests();
    assert!(
        !log.iter().any(|r| r.query.contains("followed")),
        "{log:#?}"
    );
    assert_eq!(
        served(&fake, "/users").len(),
        1,
        "a redirect is not retried"
    );
}

#[test]
fn wrong_credentials_fail_at_once_with_one_request_and_no_secret() {
    let m = capped(10, 200, "");
    let secret = "wrong-token-7c1e9b";
    let started = Instant::now();
    let out = command(&m, &["sync"], secret)
        .output()
        .expect("binary runs");
    let took = started.elapsed();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // The configuration's to fix (README: exit 2 for wrong credentials).
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(m.fake.handle().request_count(), 1, "401 is not retried");
    // One short message, printed once: the scheme sent and what to try next (the advice
    // was printed twice, by the summary event and the report, and ran to ~400 characters).
    let advice = "sent as Basic <token>:api_token";
    assert!(
        stderr.contains("HTTP 401") && stderr.contains(advice),
        "the fake answers 401: {stderr}"
    );
    assert!(stderr.contains("toggl_sk_"), "what to try next: {stderr}");
    assert_eq!(stderr.matches(advice).count(), 1, "printed once: {stderr}");
    let basic = base64_of(&format!("{secret}:api_token"));
    let run = last_run_row(&m.db);
    assert!(run.error.contains(advice), "{}", run.error);
    assert!(
        run.error.len() < 200,
        "{} chars: {}",
        run.error.len(),
        run.error
    );
    for place in [&stdout, &stderr, &run.error] {
        assert!(
            !place.contains(secret) && !place.contains(&basic),
            "{place}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 9. kill -9

/// After a SIGKILL: a sound file, the previous snapshot, and the killed run still
/// `running`; the next sync marks it interrupted and succeeds.
fn check_killed_run_recovers(
    m: &Mirror,
    before: &std::collections::BTreeMap<String, Vec<Vec<String>>>,
) {
    assert_eq!(integrity(&m.db), [["ok"]]);
    let killed = last_run_row(&m.db);
    assert_eq!(killed.status, "running", "{killed:?}");
    assert!(
        dump_current(&m.db) == *before,
        "the killed run changed the mirror"
    );
    m.sync_ok();
    let conn = m.conn();
    let marked = rows(
        &conn,
        &format!(
            "SELECT status, error FROM sync_runs WHERE sync_run_id = {}",
            killed.id
        ),
    );
    assert_eq!(marked[0][0], "failed");
    assert!(marked[0][1].starts_with("interrupted"), "{marked:?}");
    assert_eq!(last_run_row(&m.db).status, "succeeded");
}

/// A mirror of `users` served `cap` a page, synced; then, five minutes on, every user renamed
/// upstream (`renamed <id>`), so that the next run changes every row. With the mirror's
/// current state before that run.
fn synced_then_everyone_renamed(
    users: usize,
    cap: usize,
) -> (Mirror, std::collections::BTreeMap<String, Vec<Vec<String>>>) {
    let m = capped(users, cap, "");
    m.sync_ok();
    let fake = m.fake.handle();
    fake.advance(chrono::Duration::minutes(5));
    for id in fake.user_ids() {
        fake.rename_user(id, &format!("renamed {id}"));
    }
    let before = dump_current(&m.db);
    (m, before)
}

#[test]
fn a_kill_while_waiting_for_a_page_leaves_the_previous_snapshot() {
    let (m, before) = synced_then_everyone_renamed(30, 10);
    let fake = m.fake.handle();
    fake.clear_requests();
    fake.inject(
        Fault::new(Route::Users, FaultKind::Delay(Duration::from_secs(20)))
            .on_page(2)
            .times(1),
    );
    let mut child = spawn_sync(&m);
    let started = Instant::now();
    while !served(&fake, "/users").iter().any(|r| page_of(r) == 1) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "page 1 never asked"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    check_killed_run_recovers(&m, &before);
    assert_eq!(
        scalar(
            &m.conn(),
            "SELECT count(*) FROM users_current WHERE name LIKE 'renamed %'"
        ),
        30
    );
}

#[test]
fn a_kill_at_any_moment_leaves_a_sound_database() {
    let (m, before) = synced_then_everyone_renamed(200, 20);
    // Every page of users takes at least 30 ms, so a run lasts at least 300 ms however
    // fast the machine: on a fast one it would otherwise end before the third kill.
    m.fake.handle().inject(Fault::new(
        Route::Users,
        FaultKind::Delay(Duration::from_millis(30)),
    ));
    let mut killed = Vec::new();
    // Kill ever later until a run gets through: every moment of a run gets its turn.
    for delay_ms in (0..).step_by(25) {
        let newest = last_run_row(&m.db).id;
        let mut child = spawn_sync(&m);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let exited = child.try_wait().expect("try_wait").is_some();
        if !exited {
            child.kill().expect("SIGKILL");
        }
        child.wait().expect("reaped");
        assert_eq!(integrity(&m.db), [["ok"]], "killed after {delay_ms} ms");
        let run = last_run_row(&m.db);
        if run.id > newest && run.status == "succeeded" {
            break;
        }
        // Killed before its `sync_runs` row was written, or while it ran.
        assert!(!exited, "the run ended without success: {run:?}");
        assert!(
            dump_current(&m.db) == before,
            "killed after {delay_ms} ms: the mirror changed"
        );
        if run.id > newest {
            killed.push(delay_ms);
        }
        assert!(delay_ms < 20_000, "no run ever finished");
    }
    assert!(
        killed.len() >= 3,
        "too few kills landed inside a run: {killed:?}"
    );
    let conn = m.conn();
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM sync_runs WHERE status = 'running'"
        ),
        0
    );
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM sync_runs WHERE status = 'failed' AND error NOT LIKE 'interrupted%'"),
        0
    );
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM users_current WHERE name LIKE 'renamed %'"
        ),
        200
    );
}

#[test]
fn a_kill_during_a_large_commit_leaves_the_previous_snapshot() {
    let m = capped(5000, 200, "");
    m.sync_ok();
    let pull_requests = last_run_row(&m.db).requests as usize;
    let fake = m.fake.handle();
    fake.advance(chrono::Duration::minutes(5));
    for id in fake.user_ids() {
        fake.rename_user(id, &format!("renamed {id}"));
    }
    let before = dump_current(&m.db);
    fake.clear_requests();
    let wal = m.db.with_extension("sqlite-wal");
    let wal_size = || std::fs::metadata(&wal).map(|md| md.len()).unwrap_or(0);
    let mut child = spawn_sync(&m);
    let started = Instant::now();
    while fake.request_count() < pull_requests {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the pull never ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The pull is over; the run row is written. The WAL grows once the commit writes.
    let baseline = wal_size();
    while wal_size() <= baseline {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the commit ended before it was seen writing"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    check_killed_run_recovers(&m, &before);
}

// ---------------------------------------------------------------------------------------
// Measurement (not a test): `cargo test --test it -- --ignored requests_table --nocapture`

#[test]
#[ignore]
fn requests_table() {
    println!("| users | page cap | groups | requests | minimum | seconds |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for users in [1_000, 10_000] {
        for cap in [50, 200] {
            let m = capped(users, cap, "");
            let (out, took) = timed(&m, &["sync"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let counts = m.fake.handle().counts();
            // api.per_page (100) asks for fewer than a larger cap allows.
            let pages = |n: usize| n.div_ceil(cap.min(100)).max(1);
            let minimum = 1 + pages(counts.groups) + pages(counts.users);
            let run = last_run_row(&m.db);
            println!(
                "| {users} | {cap} | {} | {} | {minimum} | {:.1} |",
                counts.groups,
                run.requests,
                took.as_secs_f64()
            );
        }
    }
}

//! The history the mirror records, under attack: the same upstream state seen
//! through other renderings, entities that go and come back with the same id, renames
//! back and forth, churn while a pull pages, and targeted refreshes between full syncs.
//!
//! Some renderings the fake cannot produce (fractional seconds, missing fields, integral
//! numbers, reordered lists, an entity hidden and shown again with the same id) come from a
//! small rewriting proxy between the binary and the fake ([`Proxy`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use orgmirror_fake::{FakeHandle, FakeOptions, Fault, FaultKind, Route};
use rusqlite::Connection;
use serde_json::Value;

use crate::support::*;

// ---------------------------------------------------------------------------------------
// A rewriting proxy in front of the fake

/// Rewrites a JSON response body; gets the request path.
type Rewrite = Arc<dyn Fn(&str, &mut Value) + Send + Sync>;

struct ProxyState {
    upstream: SocketAddr,
    client: reqwest::Client,
    rewrite: Mutex<Option<Rewrite>>,
}

/// Forwards every request to the fake, and rewrites its JSON 200 answers when told to.
struct Proxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let state = Arc::new(ProxyState {
            upstream,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            rewrite: Mutex::new(None),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state));
        std::thread::spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_background();
        });
        Proxy {
            addr,
            state,
            stop: Some(stop),
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    fn set(&self, rewrite: Option<Rewrite>) {
        *self.state.rewrite.lock().unwrap_or_else(|e| e.into_inner()) = rewrite;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn forward(
    axum::extract::State(state): axum::extract::State<Arc<ProxyState>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
    let bad = |why: String| {
        axum::response::Response::builder()
            .status(502)
            .body(axum::body::Body::from(why))
            .expect("response")
    };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let pq = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers = request.headers().clone();
    let body = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(e) => return bad(e.to_string()),
    };
    let mut out = state
        .client
        .request(method, format!("http://{}{pq}", state.upstream))
        .body(body.to_vec());
    for (k, v) in &headers {
        if k != HOST && k != CONTENT_LENGTH && k != CONNECTION {
            out = out.header(k, v);
        }
    }
    let response = match out.send().await {
        Ok(r) => r,
        Err(e) => return bad(e.to_string()),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let mut bytes = match response.bytes().await {
        Ok(b) => b.to_vec(),
        Err(e) => return bad(e.to_string()),
    };
    let rewrite = state
        .rewrite
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let (Some(rewrite), true) = (rewrite, status.as_u16() == 200) {
        if let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) {
            rewrite(&path, &mut v);
            bytes = serde_json::to_vec(&v).expect("json");
        }
    }
    let mut builder = axum::response::Response::builder().status(status.as_u16());
    for (k, v) in &headers {
        if k != CONTENT_LENGTH && k != TRANSFER_ENCODING && k != CONNECTION {
            builder = builder.header(k, v);
        }
    }
    builder
        .body(axum::body::Body::from(bytes))
        .expect("response")
}

/// A mirror whose config points at a proxy in front of its fake.
fn proxied(users: usize) -> (Mirror, Proxy) {
    let m = Mirror::new(users);
    let proxy = Proxy::start(m.fake.addr());
    let config = std::fs::read_to_string(&m.config).expect("config");
    let base = format!("{:?}", m.fake.base_url());
    assert!(config.contains(&base), "{config}");
    std::fs::write(
        &m.config,
        config.replace(&base, &format!("{:?}", proxy.base_url())),
    )
    .expect("write config");
    (m, proxy)
}

/// Applies `f` to every string in `v`, replacing it when `f` says so.
fn map_strings(v: &mut Value, f: &dyn Fn(&str) -> Option<String>) {
    match v {
        Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| map_strings(i, f)),
        Value::Object(map) => map.values_mut().for_each(|i| map_strings(i, f)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// What every history must satisfy

fn one_open_interval_per_entity(conn: &Connection) {
    let dup = rows(
        conn,
        "SELECT entity, entity_id, count(*) FROM entity_history WHERE valid_to IS NULL GROUP BY 1, 2 HAVING count(*) > 1",
    );
    assert!(dup.is_empty(), "entities with two open intervals: {dup:?}");
}

/// The history and the events tell one consistent story, and the current tables are its
/// last chapter:
/// - at most one open interval per entity; an entity's intervals follow one another
///   without overlapping;
/// - every interval is opened by exactly one insert/update event of the run and time that
///   opened it, and a closed one is closed by exactly one update/delete event, at its
///   `valid_to`; an update closes the old interval exactly where the new one starts;
/// - per entity the events go insert, update*, delete, insert, ...;
/// - replaying the events gives the open intervals, and those are the current tables;
/// - each run's `events_written` is its number of events.
fn assert_history_sound(conn: &Connection) {
    one_open_interval_per_entity(conn);
    let history = rows(
        conn,
        "SELECT entity, entity_id, history_id, valid_from, valid_to FROM entity_history
         ORDER BY entity, entity_id, history_id",
    );
    for pair in history.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a[0] == b[0] && a[1] == b[1] {
            assert!(
                a[4] != "NULL" && a[4] <= b[3],
                "intervals overlap or an older one is open: {a:?} then {b:?}"
            );
        }
    }
    for r in &history {
        assert!(
            r[4] == "NULL" || r[3] <= r[4],
            "interval ends before it starts: {r:?}"
        );
    }
    let unopened = rows(
        conn,
        "SELECT h.history_id, h.entity, h.entity_id FROM entity_history h
         WHERE (SELECT count(*) FROM change_log e WHERE e.after_history = h.history_id
                AND e.op IN ('insert', 'update') AND e.sync_run_id = h.opened_by
                AND e.observed_at = h.valid_from) != 1",
    );
    assert!(
        unopened.is_empty(),
        "intervals without their opening event: {unopened:?}"
    );
    let unclosed = rows(
        conn,
        "SELECT h.history_id, h.entity, h.entity_id FROM entity_history h
         WHERE h.valid_to IS NOT NULL AND (SELECT count(*) FROM change_log e
             WHERE e.before_history = h.history_id AND e.op IN ('update', 'delete')
             AND e.sync_run_id = h.closed_by AND e.observed_at = h.valid_to) != 1",
    );
    assert!(
        unclosed.is_empty(),
        "closed intervals without their closing event: {unclosed:?}"
    );
    let closed_open = rows(
        conn,
        "SELECT h.history_id FROM entity_history h
         WHERE h.valid_to IS NULL AND EXISTS (SELECT 1 FROM change_log e WHERE e.before_history = h.history_id)",
    );
    assert!(
        closed_open.is_empty(),
        "open intervals an event closed: {closed_open:?}"
    );
    let bad_updates = rows(
        conn,
        "SELECT e.event_id, b.valid_to, a.valid_from FROM change_log e
         JOIN entity_history b ON b.history_id = e.before_history
         JOIN entity_history a ON a.history_id = e.after_history
         WHERE e.op = 'update' AND (b.valid_to IS NOT a.valid_from OR b.entity_id != a.entity_id
               OR b.entity != a.entity)",
    );
    assert!(
        bad_updates.is_empty(),
        "updates with a gap: {bad_updates:?}"
    );
    let shapes = rows(
        conn,
        "SELECT event_id, op FROM change_log WHERE NOT (
             (op = 'insert' AND before_history IS NULL AND after_history IS NOT NULL)
          OR (op = 'update' AND before_history IS NOT NULL AND after_history IS NOT NULL)
          OR (op = 'delete' AND before_history IS NOT NULL AND after_history IS NULL))",
    );
    assert!(shapes.is_empty(), "events of the wrong shape: {shapes:?}");

    // The sequence of ops per entity, and the replay.
    let mut state: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in rows(
        conn,
        "SELECT entity, entity_id, op, after_json, event_id FROM change_events ORDER BY event_id",
    ) {
        let key = (r[0].clone(), r[1].clone());
        match r[2].as_str() {
            "insert" => assert!(
                state.insert(key.clone(), r[3].clone()).is_none(),
                "insert of something present: {key:?} (event {})",
                r[4]
            ),
            "update" => assert!(
                state.insert(key.clone(), r[3].clone()).is_some(),
                "update of something absent: {key:?} (event {})",
                r[4]
            ),
            _ => assert!(
                state.remove(&key).is_some(),
                "delete of something absent: {key:?} (event {})",
                r[4]
            ),
        }
    }
    let open: BTreeMap<(String, String), String> = rows(
        conn,
        "SELECT entity, entity_id, data_json FROM entity_history WHERE valid_to IS NULL",
    )
    .into_iter()
    .map(|r| ((r[0].clone(), r[1].clone()), r[2].clone()))
    .collect();
    assert!(
        state == open,
        "replaying the events does not give the open intervals"
    );

    // The current tables hold exactly the open intervals.
    let ids_of = |entity: &str| -> BTreeSet<String> {
        open.keys()
            .filter(|(e, _)| e == entity)
            .map(|(_, id)| id.clone())
            .collect()
    };
    let table = |sql: &str| -> BTreeSet<String> {
        rows(conn, sql).into_iter().map(|r| r[0].clone()).collect()
    };
    assert_eq!(
        table("SELECT organization_user_id FROM users"),
        ids_of("user")
    );
    assert_eq!(table("SELECT group_id FROM groups"), ids_of("group"));
    assert_eq!(table("SELECT role_id FROM roles"), ids_of("role"));
    assert_eq!(
        table("SELECT organization_user_id FROM user_rates"),
        ids_of("user_rate")
    );
    assert_eq!(
        table("SELECT group_id || ':' || organization_user_id FROM group_members"),
        ids_of("group_membership")
    );
    let miscounted = rows(
        conn,
        "SELECT r.sync_run_id, r.events_written, (SELECT count(*) FROM change_log e WHERE e.sync_run_id = r.sync_run_id)
         FROM sync_runs r WHERE r.status = 'succeeded'
           AND r.events_written != (SELECT count(*) FROM change_log e WHERE e.sync_run_id = r.sync_run_id)",
    );
    assert!(
        miscounted.is_empty(),
        "runs whose events_written is wrong: {miscounted:?}"
    );
}

/// `sync_ok`, then the history checks.
fn sync_sound(m: &Mirror) {
    m.sync_ok();
    assert_history_sound(&m.conn());
}

/// `sync_sound` a second later than the last run, so that runs have distinct times.
fn sync_apart(m: &Mirror) {
    std::thread::sleep(Duration::from_millis(1100));
    sync_sound(m);
}

/// The events of the last run as (entity, op) -> count.
fn last_events(m: &Mirror) -> BTreeMap<(String, String), i64> {
    let conn = m.conn();
    events_of_run(&conn, last_run(&conn))
}

fn want(expected: &[(&str, &str, i64)]) -> BTreeMap<(String, String), i64> {
    expected
        .iter()
        .map(|(e, o, n)| ((e.to_string(), o.to_string()), *n))
        .collect()
}

/// The mirror and the fake agree on users (name, e-mail), rates, groups and memberships.
fn assert_mirror_equals_fake(m: &Mirror) {
    let org = m.fake.handle();
    let conn = m.conn();
    let set = |sql: &str| -> BTreeSet<Vec<String>> { rows(&conn, sql).into_iter().collect() };
    let users: BTreeSet<Vec<String>> = org
        .user_ids()
        .into_iter()
        .map(|id| {
            let u = org.user(id).expect("user");
            vec![
                id.to_string(),
                u.name,
                u.email,
                u.hourly_rate
                    .map(|r| format!("{r}"))
                    .unwrap_or("NULL".into()),
            ]
        })
        .collect();
    assert_eq!(
        set("SELECT organization_user_id, name, email, ifnull(hourly_rate, 'NULL') FROM users_current"),
        users
    );
    let groups = fake_groups(&org);
    assert_eq!(set("SELECT group_id, name FROM groups_current"), groups);
    let members = fake_memberships(&org);
    assert_eq!(
        set("SELECT group_id, organization_user_id FROM group_members_current"),
        members
    );
}

fn tick(org: &FakeHandle) {
    org.advance(chrono::Duration::minutes(5));
}

fn observed_at_of_run(conn: &Connection, run: i64) -> String {
    rows(
        conn,
        &format!("SELECT DISTINCT observed_at FROM change_log WHERE sync_run_id = {run}"),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .next()
    .unwrap_or_else(|| panic!("run {run} has no events"))
}

// ---------------------------------------------------------------------------------------
// 1. The same state through other renderings

/// Every timestamp 250 ms later than the fake's, rendered in the given way.
fn fractional_times(style: usize) -> Rewrite {
    Arc::new(move |_path: &str, v: &mut Value| {
        map_strings(v, &|s| {
            let t = DateTime::parse_from_rfc3339(s).ok()?;
            let t = t.with_timezone(&Utc) + chrono::Duration::milliseconds(250);
            let trim = |text: String| text.replacen(".250", ".25", 1);
            let east = |h: i32, m: i32| FixedOffset::east_opt(h * 3600 + m * 60).expect("offset");
            Some(match style {
                // 2026-06-01T12:00:05.250Z
                0 => t.to_rfc3339_opts(SecondsFormat::Millis, true),
                // 2026-06-01T12:00:05.25Z
                1 => trim(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                // 2026-06-01T14:00:05.250000000+02:00
                2 => t
                    .with_timezone(&east(2, 0))
                    .to_rfc3339_opts(SecondsFormat::Nanos, false),
                // 2026-06-01T08:30:05.25-03:30
                3 => trim(
                    t.with_timezone(&east(-3, -30))
                        .to_rfc3339_opts(SecondsFormat::Millis, false),
                ),
                // 2026-06-01T12:00:05.250000+00:00
                _ => t.to_rfc3339_opts(SecondsFormat::Micros, false),
            })
        })
    })
}

#[test]
fn fractional_seconds_in_any_rendering_and_offset_are_not_changes() {
    let (m, proxy) = proxied(40);
    let org = m.fake.handle();
    let someone = org.user_ids()[3];
    proxy.set(Some(fractional_times(0)));
    sync_sound(&m);
    let before = dump_current(&m.db);
    // Stored normalised: UTC, a Z, the milliseconds as sent.
    let created =
        org.user_record(someone).expect("user").created_at + chrono::Duration::milliseconds(250);
    assert_eq!(
        rows(
            &m.conn(),
            &format!("SELECT created_at FROM users WHERE organization_user_id = {someone}")
        ),
        [[created.to_rfc3339_opts(SecondsFormat::Millis, true)]]
    );
    for style in 1..=4 {
        proxy.set(Some(fractional_times(style)));
        sync_sound(&m);
        assert_eq!(last_events(&m), want(&[]), "style {style}");
        assert!(
            dump_current(&m.db) == before,
            "style {style} changed the mirror"
        );
    }
    // A real change seen through yet another rendering is that change alone.
    tick(&org);
    org.rename_user(someone, "Renamed in another rendering");
    proxy.set(Some(fractional_times(2)));
    sync_sound(&m);
    assert_eq!(last_events(&m), want(&[("user", "update", 1)]));
    assert_eq!(
        rows(
            &m.conn(),
            "SELECT changed_fields FROM change_events ORDER BY event_id DESC LIMIT 1"
        ),
        [[r#"["name","updated_at"]"#]]
    );
}

/// A record that decodes but cannot be mirrored (a user's workspace without its id) fails
/// the run with one message naming the entity, its id and the field (not as an invalid
/// body of the endpoint), exits 1 and leaves the mirror as it was.
#[test]
fn a_bad_record_fails_the_run_naming_entity_id_and_field() {
    let (m, proxy) = proxied(20);
    let org = m.fake.handle();
    let someone = org
        .user_ids()
        .into_iter()
        .find(|id| !org.user_record(*id).expect("user").workspaces.is_empty())
        .expect("a user with a workspace");
    sync_sound(&m);
    let before = dump_current(&m.db);
    proxy.set(Some(Arc::new(move |path: &str, v: &mut Value| {
        if path.ends_with("/users") {
            drop_workspace_ids_of(v, someone);
        }
    })));
    let out = m.run(&["sync"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let says = format!("bad record user {someone}: field `workspaces[].id`: missing");
    assert!(stderr.contains(&says), "{says:?} not in {stderr}");
    assert!(!stderr.contains("invalid response body"), "{stderr}");
    assert!(
        dump_current(&m.db) == before,
        "a failed run changed the mirror"
    );
}

/// Removes `id` from every workspace of the user object with id `user` anywhere in `v`.
fn drop_workspace_ids_of(v: &mut Value, user: i64) {
    match v {
        Value::Object(map) if map.get("id").and_then(Value::as_i64) == Some(user) => {
            if let Some(Value::Array(workspaces)) = map.get_mut("workspaces") {
                for w in workspaces.iter_mut().filter_map(Value::as_object_mut) {
                    w.remove("id");
                }
            }
        }
        Value::Object(map) => map
            .values_mut()
            .for_each(|i| drop_workspace_ids_of(i, user)),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| drop_workspace_ids_of(i, user)),
        _ => {}
    }
}

/// RFC 3339 allows a lower-case `t` and `z`.
#[test]
fn a_lower_case_t_and_z_are_the_same_instant() {
    let (m, proxy) = proxied(15);
    sync_sound(&m);
    let before = dump_current(&m.db);
    proxy.set(Some(Arc::new(|_path: &str, v: &mut Value| {
        map_strings(v, &|s| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|_| s.replace('T', "t").replace('Z', "z"))
        })
    })));
    sync_sound(&m);
    assert_eq!(last_events(&m), want(&[]));
    assert!(
        dump_current(&m.db) == before,
        "lower-case t/z changed the mirror"
    );
}

/// Reverses every list (pages, members, tags, workspaces, permissions, products).
fn reverse_lists(v: &mut Value) {
    match v {
        Value::Array(items) => {
            items.reverse();
            items.iter_mut().for_each(reverse_lists);
        }
        Value::Object(map) => map.values_mut().for_each(reverse_lists),
        _ => {}
    }
}

/// Drops every field whose value is null, below the envelope too.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        _ => {}
    }
}

/// Empty lists inside records become null (the envelope's lists are left alone).
fn empty_lists_as_null(v: &mut Value, depth: usize) {
    match v {
        Value::Array(items) if items.is_empty() && depth > 1 => *v = Value::Null,
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| empty_lists_as_null(i, depth + 1)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|i| empty_lists_as_null(i, depth + 1)),
        _ => {}
    }
}

/// 40.0 becomes 40.
fn integral_floats_as_integers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

#[test]
fn reordered_lists_missing_nulls_null_lists_and_integral_numbers_are_not_changes() {
    let (m, proxy) = proxied(40);
    let org = m.fake.handle();
    let users = org.user_ids();
    // Integral numbers to render as integers, and a user with no rate, no hours, no tags.
    org.set_rate(users[1], Some(50.0), "EUR");
    org.set_working_hours(users[1], Some(40.0));
    org.set_rate(users[2], None, "EUR");
    org.set_working_hours(users[2], None);
    org.edit_user(users[2], |u| u.tags.clear());
    let g = org.add_group("No emoji, no members", "");
    org.join_group(org.group_ids()[0], users[2]);
    sync_sound(&m);
    let before = dump_current(&m.db);
    assert!(
        scalar(
            &m.conn(),
            &format!("SELECT count(*) FROM groups WHERE group_id = {g}")
        ) == 1
    );
    let renderings: Vec<(&str, Rewrite)> = vec![
        (
            "reversed lists",
            Arc::new(|_: &str, v: &mut Value| reverse_lists(v)),
        ),
        ("no nulls", Arc::new(|_: &str, v: &mut Value| drop_nulls(v))),
        (
            "empty lists as null",
            Arc::new(|_: &str, v: &mut Value| empty_lists_as_null(v, 0)),
        ),
        (
            "integral numbers",
            Arc::new(|_: &str, v: &mut Value| integral_floats_as_integers(v)),
        ),
        (
            "all of them",
            Arc::new(|_: &str, v: &mut Value| {
                reverse_lists(v);
                drop_nulls(v);
                empty_lists_as_null(v, 0);
                integral_floats_as_integers(v);
            }),
        ),
    ];
    for (what, rewrite) in renderings {
        proxy.set(Some(rewrite));
        sync_sound(&m);
        assert_eq!(last_events(&m), want(&[]), "{what}");
        assert!(dump_current(&m.db) == before, "{what} changed the mirror");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Entities that go and come back with the same id

/// Hides these users (from the users list, by id too, and from every member list), groups
/// and roles.
fn hide(users: BTreeSet<i64>, groups: BTreeSet<i64>, roles: BTreeSet<i64>) -> Rewrite {
    Arc::new(move |path: &str, v: &mut Value| {
        let id_in = |x: &Value, field: &str, set: &BTreeSet<i64>| {
            x.get(field)
                .and_then(Value::as_i64)
                .is_some_and(|id| set.contains(&id))
        };
        if path.ends_with("/users") {
            if let Some(items) = rows_of(v) {
                items.retain(|u| !id_in(u, "id", &users));
            }
        } else if path.ends_with("/roles") {
            if let Some(items) = rows_of(v) {
                items.retain(|r| !id_in(r, "role_id", &roles));
            }
        } else if path.ends_with("/teams") {
            let mut removed = 0;
            if let Some(data) = v.get_mut("data").and_then(Value::as_array_mut) {
                let before = data.len();
                data.retain(|t| !id_in(t, "id", &groups));
                removed = (before - data.len()) as i64;
                for team in data.iter_mut() {
                    if let Some(members) = team.get_mut("users").and_then(Value::as_array_mut) {
                        members.retain(|u| !id_in(u, "organization_user_id", &users));
                    }
                }
            }
            if let Some(total) = v.get("total").and_then(Value::as_i64) {
                v["total"] = Value::from(total - removed);
            }
        }
    })
}

/// A list's rows: the focus profile's bare array, the seed's `items`, or `data`.
fn rows_of(v: &mut Value) -> Option<&mut Vec<Value>> {
    if v.is_array() {
        return v.as_array_mut();
    }
    let key = if v.get("items").is_some() {
        "items"
    } else {
        "data"
    };
    v.get_mut(key).and_then(Value::as_array_mut)
}

#[test]
fn a_user_group_and_role_that_vanish_and_come_back_with_the_same_id_open_new_intervals() {
    let (m, proxy) = proxied(40);
    let org = m.fake.handle();
    let groups = org.group_ids();
    // A user with a rate and at least one group, and a group they are not in.
    let user = org
        .user_ids()
        .into_iter()
        .skip(1)
        .find(|u| {
            let info = org.user(*u).expect("user");
            info.hourly_rate.is_some()
                && !info.groups.is_empty()
                && groups
                    .iter()
                    .any(|g| !info.groups.contains(g) && !org.group_members(*g).is_empty())
        })
        .expect("a suitable user");
    let their_groups = org.user(user).expect("user").groups;
    let group = *groups
        .iter()
        .find(|g| !their_groups.contains(*g) && !org.group_members(**g).is_empty())
        .expect("a group without them");
    let group_members = org.group_members(group).len() as i64;
    let role = org.role_ids()[2];
    sync_sound(&m);
    let r1 = last_run(&m.conn());

    proxy.set(Some(hide([user].into(), [group].into(), [role].into())));
    sync_apart(&m);
    let r2 = last_run(&m.conn());
    let memberships = their_groups.len() as i64 + group_members;
    assert_eq!(
        last_events(&m),
        want(&[
            ("role", "delete", 1),
            ("group", "delete", 1),
            ("user", "delete", 1),
            ("group_membership", "delete", memberships),
            ("user_rate", "delete", 1),
        ])
    );

    proxy.set(None);
    sync_apart(&m);
    let r3 = last_run(&m.conn());
    assert_eq!(
        last_events(&m),
        want(&[
            ("role", "insert", 1),
            ("group", "insert", 1),
            ("user", "insert", 1),
            ("group_membership", "insert", memberships),
            ("user_rate", "insert", 1),
        ])
    );
    sync_apart(&m);
    assert_eq!(last_events(&m), want(&[]), "nothing changed since");

    let conn = m.conn();
    let (t2, t3) = (observed_at_of_run(&conn, r2), observed_at_of_run(&conn, r3));
    let t1 = observed_at_of_run(&conn, r1);
    let membership = format!("{}:{user}", their_groups.first().expect("a group"));
    for (entity, id) in [
        ("user", user.to_string()),
        ("user_rate", user.to_string()),
        ("group", group.to_string()),
        ("role", role.to_string()),
        ("group_membership", membership),
    ] {
        let intervals = rows(
            &conn,
            &format!(
                "SELECT valid_from, ifnull(valid_to, 'NULL'), opened_by, ifnull(closed_by, 'NULL'), data_json
                 FROM entity_history WHERE entity = '{entity}' AND entity_id = '{id}' ORDER BY history_id"
            ),
        );
        assert_eq!(intervals.len(), 2, "{entity} {id}: {intervals:?}");
        assert_eq!(
            intervals
                .iter()
                .map(|r| r[..4].to_vec())
                .collect::<Vec<_>>(),
            [
                [t1.clone(), t2.clone(), r1.to_string(), r2.to_string()],
                [t3.clone(), "NULL".into(), r3.to_string(), "NULL".into()]
            ],
            "{entity} {id}"
        );
        assert_eq!(
            intervals[0][4], intervals[1][4],
            "{entity} {id}: the same data came back"
        );
        assert_eq!(
            rows(
                &conn,
                &format!(
                    "SELECT op, sync_run_id FROM change_events WHERE entity = '{entity}' AND entity_id = '{id}' ORDER BY event_id"
                )
            ),
            [
                ["insert".to_string(), r1.to_string()],
                ["delete".to_string(), r2.to_string()],
                ["insert".to_string(), r3.to_string()]
            ],
            "{entity} {id}"
        );
    }
    // "As of" the time between: absent; before and after: present.
    let as_of = |t: &str| {
        scalar(
            &conn,
            &format!(
                "SELECT count(*) FROM user_history WHERE organization_user_id = {user}
                 AND valid_from <= '{t}' AND (valid_to IS NULL OR valid_to > '{t}')"
            ),
        )
    };
    assert_eq!((as_of(&t1), as_of(&t2), as_of(&t3)), (1, 0, 1));
}

#[test]
fn renames_back_and_forth_and_a_rate_set_removed_and_set_again() {
    let m = Mirror::new(40);
    let org = m.fake.handle();
    let g = org.group_ids()[1];
    let first_name = org.group(g).expect("group").name;
    let u = org
        .user_ids()
        .into_iter()
        .skip(1)
        .find(|u| org.user(*u).and_then(|x| x.hourly_rate).is_some())
        .expect("a user with a rate");
    let first_rate = org.user(u).and_then(|x| x.hourly_rate).expect("rate");
    let first_currency = org.user(u).and_then(|x| x.currency).expect("currency");
    let cur = if first_currency == "USD" {
        "EUR"
    } else {
        "USD"
    };
    let role = org.role_ids()[1];
    sync_sound(&m);

    tick(&org);
    org.rename_group(g, "Second name");
    org.set_rate(u, Some(77.0), cur);
    sync_apart(&m);
    assert_eq!(
        last_events(&m),
        want(&[
            ("group", "update", 1),
            ("user", "update", 1),
            ("user_rate", "update", 1)
        ])
    );

    tick(&org);
    org.rename_group(g, &first_name);
    org.set_rate(u, None, cur);
    sync_apart(&m);
    assert_eq!(
        last_events(&m),
        want(&[
            ("group", "update", 1),
            ("user", "update", 1),
            ("user_rate", "delete", 1)
        ])
    );

    tick(&org);
    org.set_rate(u, Some(77.0), cur);
    sync_apart(&m);
    assert_eq!(
        last_events(&m),
        want(&[("user", "update", 1), ("user_rate", "insert", 1)])
    );

    // A role renamed and renamed back between two runs (roles carry no updated_at): no
    // change at all.
    let role_name = org.role(role).expect("role").name;
    org.rename_role(role, "Briefly renamed");
    org.rename_role(role, &role_name);
    sync_apart(&m);
    assert_eq!(last_events(&m), want(&[]));

    let conn = m.conn();
    let runs: Vec<String> = rows(&conn, "SELECT sync_run_id FROM sync_runs ORDER BY 1")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let t: Vec<String> = runs[..4]
        .iter()
        .map(|r| observed_at_of_run(&conn, r.parse().expect("id")))
        .collect();
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT name, valid_from, ifnull(valid_to, 'NULL') FROM group_history WHERE group_id = {g} ORDER BY valid_from, valid_to IS NULL, valid_to")
        ),
        [
            [first_name.clone(), t[0].clone(), t[1].clone()],
            ["Second name".to_string(), t[1].clone(), t[2].clone()],
            [first_name.clone(), t[2].clone(), "NULL".to_string()],
        ]
    );
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT op, changed_fields FROM change_events WHERE entity = 'group' AND entity_id = '{g}' ORDER BY event_id")
        ),
        [
            ["insert".to_string(), "NULL".to_string()],
            ["update".to_string(), r#"["name","updated_at"]"#.to_string()],
            ["update".to_string(), r#"["name","updated_at"]"#.to_string()],
        ]
    );
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT hourly_rate, currency, valid_from, ifnull(valid_to, 'NULL') FROM rate_history WHERE organization_user_id = {u} ORDER BY valid_from")
        ),
        [
            [
                format!("{first_rate}"),
                first_currency.clone(),
                t[0].clone(),
                t[1].clone()
            ],
            ["77".to_string(), cur.to_string(), t[1].clone(), t[2].clone()],
            ["77".to_string(), cur.to_string(), t[3].clone(), "NULL".to_string()],
        ]
    );
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT op, ifnull(changed_fields, 'NULL') FROM change_events WHERE entity = 'user_rate' AND entity_id = '{u}' ORDER BY event_id")
        ),
        [
            ["insert".to_string(), "NULL".to_string()],
            [
                "update".to_string(),
                r#"["currency","hourly_rate","start_at","workspace_user_rate_id"]"#.to_string()
            ],
            ["delete".to_string(), "NULL".to_string()],
            ["insert".to_string(), "NULL".to_string()],
        ]
    );
}

// ---------------------------------------------------------------------------------------
// 3. Soft-removed members

#[test]
fn a_member_soft_removed_then_added_again_has_two_intervals() {
    let m = Mirror::new(40);
    let org = m.fake.handle();
    let groups: Vec<i64> = org
        .group_ids()
        .into_iter()
        .filter(|g| org.group_members(*g).len() >= 2)
        .collect();
    let (g, g2) = (groups[0], groups[1]);
    let u = *org.group_members(g).last().expect("member");
    // Soft-removed before the mirror ever saw them: never a member in the mirror.
    let u2 = *org.group_members(g2).last().expect("member");
    assert!(org.soft_leave_group(g2, u2));
    sync_sound(&m);
    let conn = m.conn();
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM entity_history WHERE entity = 'group_membership' AND entity_id = '{g2}:{u2}'")
        ),
        0
    );
    drop(conn);

    tick(&org);
    assert!(org.soft_leave_group(g, u));
    sync_apart(&m);
    assert_eq!(
        last_events(&m),
        want(&[("group", "update", 1), ("group_membership", "delete", 1)])
    );
    tick(&org);
    assert!(org.join_group(g, u));
    assert!(org.join_group(g2, u2));
    sync_apart(&m);
    assert_eq!(
        last_events(&m),
        want(&[("group", "update", 2), ("group_membership", "insert", 2)])
    );
    // Softly out and back in between two runs: one membership, changed.
    tick(&org);
    assert!(org.soft_leave_group(g, u));
    tick(&org);
    assert!(org.join_group(g, u));
    sync_apart(&m);
    assert_eq!(
        last_events(&m),
        want(&[("group", "update", 1), ("group_membership", "update", 1)])
    );
    let conn = m.conn();
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT op, ifnull(changed_fields, 'NULL') FROM change_events WHERE entity = 'group_membership' AND entity_id = '{g}:{u}' ORDER BY event_id")
        ),
        [
            ["insert".to_string(), "NULL".to_string()],
            ["delete".to_string(), "NULL".to_string()],
            ["insert".to_string(), "NULL".to_string()],
            [
                "update".to_string(),
                r#"["created_at","updated_at","user_group_id"]"#.to_string()
            ],
        ]
    );
    let runs: Vec<i64> = rows(&conn, "SELECT sync_run_id FROM sync_runs ORDER BY 1")
        .into_iter()
        .map(|r| r[0].parse().expect("id"))
        .collect();
    let t: Vec<String> = runs.iter().map(|r| observed_at_of_run(&conn, *r)).collect();
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT valid_from, ifnull(valid_to, 'NULL') FROM group_membership_history WHERE group_id = {g} AND organization_user_id = {u} ORDER BY valid_from, valid_to IS NULL")
        ),
        [
            [t[0].clone(), t[1].clone()],
            [t[2].clone(), t[3].clone()],
            [t[3].clone(), "NULL".to_string()],
        ]
    );
    // The softly-removed rows the API still lists are not stored as members.
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM group_members WHERE deleted_at IS NOT NULL"
        ),
        0
    );
    assert_mirror_equals_fake(&m);
}

// ---------------------------------------------------------------------------------------
// 4. Churn while a pull pages

/// A mutation of the fake, run right after a page was served.
fn after_page(
    org: &FakeHandle,
    route: Route,
    page: u32,
    f: impl Fn(&FakeHandle) + Send + Sync + 'static,
) {
    org.inject(
        Fault::new(route, FaultKind::MutateAfter(Arc::new(f)))
            .on_page(page)
            .times(1),
    );
}

#[test]
fn churn_during_pulls_leaves_a_sound_history_that_converges_on_the_org() {
    let m = Mirror::with(
        FakeOptions {
            users: 90,
            per_page_cap: 10,
            ..Default::default()
        },
        "",
    );
    let org = m.fake.handle();
    sync_sound(&m);
    for round in 0..4u32 {
        let ids = org.user_ids();
        let groups = org.group_ids();
        // Users already served (page 1), and users still to come (page 5 on).
        let (early, late) = (ids[2 + round as usize], ids[45 + round as usize]);
        let g = groups[round as usize % groups.len()];
        let outsider = *ids
            .iter()
            .rev()
            .find(|u| !org.group_members(g).contains(u))
            .expect("outsider");
        let member = org.group_members(g).first().copied();
        after_page(&org, Route::Users, 2, move |f| {
            f.advance(chrono::Duration::minutes(1));
            f.rename_user(early, &format!("Early {round}"));
            f.rename_user(late, &format!("Late {round}"));
            f.set_rate(late + 1, Some(10.0 + f64::from(round)), "GBP");
            f.join_group(g, outsider);
            if let Some(member) = member {
                f.leave_group(g, member);
            }
            f.rename_group(g, &format!("Churned {round}"));
            // One served user leaves, one still to come leaves (rows shift), one arrives.
            f.remove_user(early + 1);
            f.remove_user(late + 2);
            f.add_user(
                &format!("Arrived {round}"),
                &format!("arrived{round}@example.com"),
            );
        });
        sync_sound(&m);
        let conn = m.conn();
        let run = last_run(&conn);
        let user_ops = |id: i64| {
            rows(
                &conn,
                &format!("SELECT op FROM change_events WHERE sync_run_id = {run} AND entity = 'user' AND entity_id = '{id}'"),
            )
        };
        // Seen before the churn: unchanged this run. Seen after it: the new state.
        assert_eq!(user_ops(early), Vec::<Vec<String>>::new(), "round {round}");
        assert_eq!(
            user_ops(early + 1),
            Vec::<Vec<String>>::new(),
            "round {round}: served, then gone"
        );
        assert_eq!(user_ops(late), [["update"]], "round {round}");
        assert_eq!(
            user_ops(late + 2),
            [["delete"]],
            "round {round}: gone before its page"
        );
    }
    // One quiet run catches up, and the mirror is the organization.
    sync_sound(&m);
    assert_mirror_equals_fake(&m);
    // An organization that stopped changing writes nothing, twice.
    let before = dump_current(&m.db);
    for _ in 0..2 {
        sync_sound(&m);
        assert_eq!(last_events(&m), want(&[]));
    }
    assert!(dump_current(&m.db) == before);
}

/// In a first sync, a user seen twice (the page cap shrank between pages) counts in its
/// later copy: a rate removed between the copies is never mirrored, a rate or a name
/// changed between them is mirrored as the later one, each a single insert.
#[test]
fn a_user_seen_twice_in_a_first_sync_is_mirrored_as_its_later_copy_rate_included() {
    // 21 users, 10 a page: page 2 is ids[10..20]; at 7 a page, page 3 is ids[14..21].
    let m = Mirror::with(
        FakeOptions {
            users: 21,
            per_page_cap: 10,
            ..Default::default()
        },
        "",
    );
    let org = m.fake.handle();
    let ids = org.user_ids();
    let with_rate: Vec<i64> = ids[14..20]
        .iter()
        .copied()
        .filter(|u| org.user(*u).and_then(|x| x.hourly_rate).is_some())
        .collect();
    assert!(with_rate.len() >= 2, "{with_rate:?}");
    let (no_rate, new_rate) = (with_rate[0], with_rate[1]);
    let renamed = *ids[14..20]
        .iter()
        .find(|u| !with_rate[..2].contains(u))
        .expect("a third user");
    after_page(&org, Route::Users, 2, move |f| {
        f.advance(chrono::Duration::minutes(1));
        f.set_rate(no_rate, None, "EUR");
        f.set_rate(new_rate, Some(99.0), "EUR");
        f.rename_user(renamed, "Renamed between copies");
        f.set_per_page_cap(7);
    });
    sync_sound(&m);
    let conn = m.conn();
    assert_eq!(scalar(&conn, "SELECT count(*) FROM users"), 21);
    let count = |sql: String| scalar(&conn, &sql);
    assert_eq!(
        count(format!("SELECT count(*) FROM change_events WHERE entity = 'user_rate' AND entity_id = '{no_rate}'")),
        0,
        "a rate gone before its later copy"
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM entity_history WHERE entity = 'user_rate' AND id = {no_rate}"
        )),
        0
    );
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT hourly_rate FROM user_rates WHERE organization_user_id IN ({no_rate}, {new_rate}) ORDER BY organization_user_id = {new_rate}")
        ),
        [["99"]]
    );
    for (entity, id) in [
        ("user_rate", new_rate),
        ("user", renamed),
        ("user", no_rate),
    ] {
        assert_eq!(
            count(format!("SELECT count(*) FROM change_events WHERE entity = '{entity}' AND entity_id = '{id}'")),
            1,
            "{entity} {id}"
        );
    }
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT name FROM users WHERE organization_user_id = {renamed}")
        ),
        [["Renamed between copies"]]
    );
    drop(conn);
    sync_sound(&m);
    assert_eq!(
        last_events(&m),
        want(&[]),
        "the first sync mirrored the later copies"
    );
    assert_mirror_equals_fake(&m);
}

/// A user who left the organization leaves every group: once a run records the user as
/// deleted (confirmed by asking for them by id), no membership of theirs stays open.
/// Here the user goes after the teams were read and before the users list reaches them.
#[test]
fn a_user_deleted_during_the_pull_keeps_no_open_membership() {
    let m = Mirror::with(
        FakeOptions {
            users: 30,
            per_page_cap: 10,
            ..Default::default()
        },
        "",
    );
    let org = m.fake.handle();
    sync_sound(&m);
    let gone = *org.user_ids()[20..]
        .iter()
        .find(|u| !org.user(**u).expect("user").groups.is_empty())
        .expect("a member of some group on page 3");
    after_page(&org, Route::Users, 1, move |f| assert!(f.remove_user(gone)));
    sync_sound(&m);
    let conn = m.conn();
    let run = last_run(&conn);
    assert_eq!(
        rows(&conn, &format!("SELECT op FROM change_events WHERE sync_run_id = {run} AND entity = 'user' AND entity_id = '{gone}'")),
        [["delete"]]
    );
    let open = rows(
        &conn,
        &format!("SELECT group_id FROM group_members_current WHERE organization_user_id = {gone}"),
    );
    assert!(
        open.is_empty(),
        "user {gone} is recorded as deleted in run {run}, yet still a member of groups {open:?}"
    );
}

/// A first sync while the server's page cap shrinks: it must still mirror every user (the
/// ones it did not reach are not in the mirror at all, so nothing re-checks them).
#[test]
fn a_first_sync_under_a_shrinking_page_cap_mirrors_every_user() {
    let m = Mirror::with(
        FakeOptions {
            users: 60,
            per_page_cap: 10,
            ..Default::default()
        },
        "",
    );
    let org = m.fake.handle();
    after_page(&org, Route::Users, 1, |f| f.set_per_page_cap(7));
    sync_sound(&m);
    let mirrored = scalar(&m.conn(), "SELECT count(*) FROM users_current");
    // Whatever happened, the next run must not "discover" users that were there all along.
    sync_sound(&m);
    let late = last_events(&m);
    assert_eq!(
        (mirrored, late),
        (60, want(&[])),
        "users the first sync missed are recorded as arriving in the second"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Targeted refreshes between full syncs

#[test]
fn targeted_refreshes_between_full_syncs_keep_the_history_consistent() {
    let m = Mirror::new(40);
    let org = m.fake.handle();
    sync_sound(&m);
    let g = *org
        .group_ids()
        .iter()
        .find(|g| org.group_members(**g).len() >= 2)
        .expect("group");
    let members = org.group_members(g);
    let outsider = *org
        .user_ids()
        .iter()
        .rev()
        .find(|u| !members.contains(u))
        .expect("outsider");
    let g_str = g.to_string();
    let (first, second, out) = (
        members[0].to_string(),
        members[1].to_string(),
        outsider.to_string(),
    );
    #[rustfmt::skip]
    let steps: [(&str, Vec<&str>); 7] = [
        ("add a member", vec!["group", "update", &g_str, "--add-member", &out]),
        ("rename", vec!["group", "update", &g_str, "--name", "Refreshed name"]),
        ("remove a member", vec!["group", "update", &g_str, "--remove-member", &first]),
        ("remove the added member", vec!["group", "update", &g_str, "--remove-member", &out]),
        ("add them back", vec!["group", "update", &g_str, "--add-member", &first, "--add-member", &out]),
        ("create", vec!["group", "create", "--name", "Made here", "--member", &second, "--member", &out]),
        ("delete", vec!["group", "delete", "Made here"]),
    ];
    for (what, args) in &steps {
        tick(&org);
        ok(&m.run(args));
        assert_history_sound(&m.conn());
        let conn = m.conn();
        let kind = rows(
            &conn,
            &format!(
                "SELECT kind, status FROM sync_runs WHERE sync_run_id = {}",
                last_run(&conn)
            ),
        );
        assert_eq!(kind, [["targeted", "succeeded"]], "{what}");
        drop(conn);
        // The full pull right after agrees with what the refresh recorded.
        sync_sound(&m);
        assert_eq!(
            last_events(&m),
            want(&[]),
            "{what}: the full sync after the refresh"
        );
        assert_mirror_equals_fake(&m);
    }
    // A refresh and upstream changes it does not speak for, then a full sync: the full sync
    // records those and only those.
    tick(&org);
    let other = org.user_ids()[5];
    org.rename_user(other, "Changed upstream meanwhile");
    ok(&m.run(&["group", "update", &g_str, "--name", "Second refreshed name"]));
    sync_sound(&m);
    assert_eq!(last_events(&m), want(&[("user", "update", 1)]));
    assert_mirror_equals_fake(&m);
    let conn = m.conn();
    let added = format!("{g}:{outsider}");
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT e.op, r.kind FROM change_events e JOIN sync_runs r USING (sync_run_id) WHERE e.entity = 'group_membership' AND e.entity_id = '{added}' ORDER BY e.event_id")
        ),
        [
            ["insert", "targeted"],
            ["delete", "targeted"],
            ["insert", "targeted"],
        ]
    );
}

// ---------------------------------------------------------------------------------------
// 6. The run's own record

/// `sync_runs.finished_at` says when the run finished (status shows the difference as the
/// run's duration), and `observed_at` lies between start and finish.
#[test]
fn finished_at_is_when_a_slow_run_finished() {
    let m = Mirror::new(20);
    m.fake
        .handle()
        .inject(Fault::new(Route::Users, FaultKind::Delay(Duration::from_millis(2500))).times(1));
    sync_sound(&m);
    let conn = m.conn();
    let r = rows(
        &conn,
        "SELECT started_at, finished_at, (SELECT max(observed_at) FROM change_log),
                CAST(strftime('%s', finished_at) AS INTEGER) - CAST(strftime('%s', started_at) AS INTEGER)
         FROM sync_runs",
    );
    let (started, finished, observed, seconds) = (&r[0][0], &r[0][1], &r[0][2], &r[0][3]);
    assert!(started <= observed && observed <= finished, "{r:?}");
    assert!(
        seconds.parse::<i64>().unwrap_or(0) >= 2,
        "a run that took over 2.5 s is recorded as taking {seconds} s: {r:?}"
    );
}

/// Every event and every end of an interval a run writes carries the run's one time,
/// `sync_runs.started_at`, even when the run takes seconds (ARCHITECTURE.md, "A run's
/// history rows and events carry one time").
#[test]
fn a_runs_events_and_interval_ends_all_carry_its_started_at() {
    let m = Mirror::new(30);
    let org = m.fake.handle();
    sync_sound(&m);
    tick(&org);
    let users = org.user_ids();
    org.rename_user(users[1], "Renamed");
    org.remove_user(users[2]);
    org.remove_group(org.group_ids()[0]);
    // Slow enough that a time taken while writing would fall in another second.
    org.inject(Fault::new(Route::Users, FaultKind::Delay(Duration::from_millis(1500))).times(1));
    sync_apart(&m);
    let conn = m.conn();
    let run_time =
        |run: &str| format!("(SELECT started_at FROM sync_runs WHERE sync_run_id = {run})");
    let closed = scalar(
        &conn,
        "SELECT count(*) FROM entity_history WHERE closed_by IS NOT NULL",
    );
    assert!(closed >= 3, "the second run closed {closed} intervals");
    for (what, sql) in [
        (
            "events",
            format!("SELECT count(*) FROM change_log WHERE observed_at IS NOT {}", run_time("change_log.sync_run_id")),
        ),
        (
            "interval starts",
            format!("SELECT count(*) FROM entity_history WHERE valid_from IS NOT {}", run_time("entity_history.opened_by")),
        ),
        (
            "interval ends",
            format!(
                "SELECT count(*) FROM entity_history WHERE closed_by IS NOT NULL AND valid_to IS NOT {}",
                run_time("entity_history.closed_by")
            ),
        ),
    ] {
        assert_eq!(scalar(&conn, &sql), 0, "{what} at another time than their run's start");
    }
}

#[path = "survives.rs"]
mod survives;

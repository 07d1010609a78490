//! The mirror end to end: first sync, each kind of change, unchanged re-syncs, replay,
//! failed runs, hostile strings.

use std::collections::{BTreeMap, BTreeSet};

use orgmirror_fake::{FakeOptions, Fault, FaultKind, Route};
use proptest::prelude::*;
use rusqlite::Connection;

use crate::support::*;

fn set(conn: &Connection, sql: &str) -> BTreeSet<Vec<String>> {
    rows(conn, sql).into_iter().collect()
}

#[test]
fn first_sync_reproduces_the_fake_org() {
    let m = Mirror::new(120);
    let out = m.sync_ok();
    assert!(
        text(&out.stdout).contains("succeeded"),
        "{}",
        text(&out.stdout)
    );
    let conn = m.conn();
    let org = m.fake.handle();

    let users: BTreeSet<Vec<String>> = org
        .user_ids()
        .into_iter()
        .map(|id| {
            let u = org.user(id).expect("user");
            vec![id.to_string(), u.name.clone(), u.email.clone()]
        })
        .collect();
    assert_eq!(users.len(), 120);
    assert_eq!(
        set(
            &conn,
            "SELECT organization_user_id, name, email FROM users_current"
        ),
        users
    );

    let rates: BTreeSet<Vec<String>> = org
        .user_ids()
        .into_iter()
        .filter_map(|id| {
            let u = org.user(id)?;
            Some(vec![
                id.to_string(),
                format!("{}", u.hourly_rate?),
                u.currency.clone()?,
            ])
        })
        .collect();
    assert!(!rates.is_empty());
    assert_eq!(
        set(&conn, "SELECT organization_user_id, hourly_rate, currency FROM users_current WHERE hourly_rate IS NOT NULL"),
        rates
    );

    let groups = fake_groups(&org);
    assert_eq!(
        set(&conn, "SELECT group_id, name FROM groups_current"),
        groups
    );

    let members = fake_memberships(&org);
    assert!(!members.is_empty());
    assert_eq!(
        set(
            &conn,
            "SELECT group_id, organization_user_id FROM group_members_current"
        ),
        members
    );

    let roles: BTreeSet<Vec<String>> = org
        .role_ids()
        .into_iter()
        .map(|r| vec![r.to_string()])
        .collect();
    assert_eq!(set(&conn, "SELECT role_id FROM roles_current"), roles);
    assert!(scalar(&conn, "SELECT count(*) FROM role_permissions_current") > 0);

    // The first sync is all inserts, one per entity, so replaying it rebuilds the state.
    let run = last_run(&conn);
    let events = events_of_run(&conn, run);
    assert!(events.keys().all(|(_, op)| op == "insert"), "{events:?}");
    assert_eq!(events[&("user".into(), "insert".into())], 120);
    assert_eq!(
        events[&("group_membership".into(), "insert".into())],
        members.len() as i64
    );
    assert_eq!(
        events[&("user_rate".into(), "insert".into())],
        rates.len() as i64
    );
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'"
        ),
        1
    );
    assert!(scalar(&conn, "SELECT requests FROM sync_runs") >= 3);
    assert_eq!(scalar(&conn, "PRAGMA application_id"), 0x4F4D_4952);
}

/// One mutation, one sync: exactly these events, and nothing else.
fn check_change(
    m: &Mirror,
    what: &str,
    mutate: impl FnOnce() -> bool,
    expected: &[(&str, &str, i64)],
) {
    // Time passes upstream between changes, so `updated_at` moves with every one.
    m.fake.handle().advance(chrono::Duration::minutes(5));
    assert!(mutate(), "{what}: the fake did not find the record");
    m.sync_ok();
    let conn = m.conn();
    let got = events_of_run(&conn, last_run(&conn));
    let want: BTreeMap<(String, String), i64> = expected
        .iter()
        .map(|(e, op, n)| ((e.to_string(), op.to_string()), *n))
        .collect();
    assert_eq!(got, want, "{what}");
    // Each event opened and/or closed exactly one history interval.
    let run = last_run(&conn);
    let opened = scalar(
        &conn,
        &format!("SELECT count(*) FROM entity_history WHERE opened_by = {run}"),
    );
    let closed = scalar(
        &conn,
        &format!("SELECT count(*) FROM entity_history WHERE closed_by = {run}"),
    );
    let inserts_updates: i64 = expected
        .iter()
        .filter(|(_, op, _)| *op != "delete")
        .map(|(_, _, n)| n)
        .sum();
    let updates_deletes: i64 = expected
        .iter()
        .filter(|(_, op, _)| *op != "insert")
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(
        (opened, closed),
        (inserts_updates, updates_deletes),
        "{what}: history rows"
    );
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM (SELECT entity, entity_id FROM entity_history WHERE valid_to IS NULL GROUP BY 1, 2 HAVING count(*) > 1)"),
        0
    );
}

#[test]
fn each_kind_of_change_produces_exactly_its_events() {
    let m = Mirror::new(60);
    m.sync_ok();
    let org = m.fake.handle();
    let users = org.user_ids();
    let groups = org.group_ids();
    let u1 = users[3];
    let u2 = *users[4..]
        .iter()
        .find(|u| org.user(**u).and_then(|x| x.hourly_rate).is_some())
        .expect("someone with a rate");
    let g = groups[0];
    let outsider = *users
        .iter()
        .find(|u| !org.group_members(g).contains(u))
        .expect("someone outside g");
    let member = *org.group_members(g).first().expect("g has members");
    let role = org.role_ids()[0];

    check_change(
        &m,
        "rename user",
        || org.rename_user(u1, "Renamed Person"),
        &[("user", "update", 1)],
    );
    let fields = scalar_text(
        &m.conn(),
        "SELECT changed_fields FROM change_events ORDER BY event_id DESC LIMIT 1",
    );
    assert!(fields.contains("\"name\""), "{fields}");
    // The fake, like the API, bumps the group's updated_at when its members change.
    check_change(
        &m,
        "join group",
        || org.join_group(g, outsider),
        &[("group", "update", 1), ("group_membership", "insert", 1)],
    );
    check_change(
        &m,
        "leave group",
        || org.leave_group(g, member),
        &[("group", "update", 1), ("group_membership", "delete", 1)],
    );
    // The fake, like the API, bumps the user's updated_at with the rate.
    check_change(
        &m,
        "rate change",
        || org.set_rate(u2, Some(123.5), "EUR"),
        &[("user", "update", 1), ("user_rate", "update", 1)],
    );
    let fields = scalar_text(
        &m.conn(),
        "SELECT changed_fields FROM change_events ORDER BY event_id DESC LIMIT 1",
    );
    assert!(fields.contains("hourly_rate"), "{fields}");
    check_change(
        &m,
        "rename group",
        || org.rename_group(g, "Renamed ✨"),
        &[("group", "update", 1)],
    );
    check_change(
        &m,
        "role edit",
        || org.rename_role(role, "Renamed role"),
        &[("role", "update", 1)],
    );
    let new_group = std::cell::Cell::new(0);
    check_change(
        &m,
        "add group",
        || {
            new_group.set(org.add_group("Brand new", "🆕"));
            true
        },
        &[("group", "insert", 1)],
    );
    check_change(
        &m,
        "remove group",
        || org.remove_group(new_group.get()),
        &[("group", "delete", 1)],
    );
    let had_rate = org.user(u2).and_then(|u| u.hourly_rate).is_some();
    assert!(had_rate);
    let groups_of_u2 = groups
        .iter()
        .filter(|g| org.group_members(**g).contains(&u2))
        .count() as i64;
    let mut expected = vec![("user", "delete", 1), ("user_rate", "delete", 1)];
    if groups_of_u2 > 0 {
        expected.push(("group_membership", "delete", groups_of_u2));
    }
    check_change(&m, "user leaves the org", || org.remove_user(u2), &expected);
    check_change(
        &m,
        "user joins the org",
        || {
            org.add_user("New Person", "new.person@example.com");
            true
        },
        &[("user", "insert", 1)],
    );

    // A membership that ended and started again is two intervals, the first closed.
    org.join_group(g, member);
    m.sync_ok();
    let conn = m.conn();
    let intervals = rows(
        &conn,
        &format!("SELECT valid_from, valid_to FROM group_membership_history WHERE group_id = {g} AND organization_user_id = {member} ORDER BY valid_from, valid_to IS NULL"),
    );
    assert_eq!(intervals.len(), 2, "{intervals:?}");
    assert_ne!(intervals[0][1], "NULL");
    assert_eq!(intervals[1][1], "NULL");
}

fn scalar_text(conn: &Connection, sql: &str) -> String {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn an_unchanged_org_writes_nothing_even_in_another_utc_offset() {
    let m = Mirror::new(80);
    m.sync_ok();
    let before = dump_current(&m.db);
    m.sync_ok();
    m.fake.handle().set_utc_offset(Some(
        chrono::FixedOffset::east_opt(2 * 3600).expect("offset"),
    ));
    m.sync_ok();
    m.fake.handle().set_utc_offset(Some(
        chrono::FixedOffset::west_opt(5 * 3600 + 1800).expect("offset"),
    ));
    m.sync_ok();
    assert_eq!(dump_current(&m.db), before);
    let conn = m.conn();
    assert_eq!(
        rows(
            &conn,
            "SELECT events_written FROM sync_runs ORDER BY sync_run_id"
        ),
        vec![
            vec![scalar(&conn, "SELECT count(*) FROM change_events").to_string()],
            vec!["0".into()],
            vec!["0".into()],
            vec!["0".into()]
        ]
    );
}

#[test]
fn a_field_the_api_added_is_kept_but_is_not_a_change() {
    let m = Mirror::new(20);
    m.sync_ok();
    let org = m.fake.handle();
    org.add_unknown_field("user", "favourite_colour", serde_json::json!("teal"));
    m.sync_ok();
    let conn = m.conn();
    assert_eq!(
        scalar(
            &conn,
            "SELECT events_written FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1"
        ),
        0
    );
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM users WHERE json_extract(unknown_json, '$.favourite_colour') = 'teal'"),
        scalar(&conn, "SELECT count(*) FROM users")
    );
}

#[test]
fn a_run_that_fails_halfway_changes_nothing() {
    let m = Mirror::with(
        FakeOptions {
            users: 150,
            per_page_cap: 50,
            ..Default::default()
        },
        "max_attempts = 2",
    );
    m.sync_ok();
    let before = dump_current(&m.db);
    let org = m.fake.handle();
    let users = org.user_ids();
    org.rename_user(users[0], "Changed before the failure");
    org.remove_user(users[1]);
    org.inject(Fault {
        route: Route::Users,
        page: Some(3),
        times: None,
        kind: FaultKind::Status(500, "internal error".into()),
    });
    let out = m.run(&["sync"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("page 3") && err.contains("500"), "{err}");
    assert_eq!(dump_current(&m.db), before);
    let conn = m.conn();
    let last = rows(
        &conn,
        "SELECT status, error, events_written FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1",
    );
    assert_eq!(last[0][0], "failed");
    assert!(last[0][1].contains("page 3"), "{:?}", last[0]);
    assert_eq!(last[0][2], "0");
    assert_eq!(scalar_text(&conn, "PRAGMA integrity_check"), "ok");
}

#[test]
fn hostile_strings_are_stored_verbatim() {
    let m = Mirror::new(10);
    let org = m.fake.handle();
    let names = [
        "Robert'); DROP TABLE users;--".to_string(),
        "\"quoted\" and 'single' and `back`".to_string(),
        "Ünïcødé 名前 🧑‍💻🏳️‍🌈".to_string(),
        "x".repeat(10_000) + "🎉",
    ];
    let ids: Vec<i64> = names
        .iter()
        .enumerate()
        .map(|(i, n)| org.add_user(n, &format!("odd{i}@example.com")))
        .collect();
    let g = org.add_group("'; DELETE FROM groups; -- 🔥", "🔥");
    m.sync_ok();
    let conn = m.conn();
    for (id, name) in ids.iter().zip(&names) {
        let stored: String = conn
            .query_row(
                "SELECT name FROM users_current WHERE organization_user_id = ?1",
                [id],
                |r| r.get(0),
            )
            .expect("user stored");
        assert_eq!(&stored, name);
    }
    let stored: String = conn
        .query_row(
            "SELECT name FROM groups_current WHERE group_id = ?1",
            [g],
            |r| r.get(0),
        )
        .expect("group stored");
    assert_eq!(stored, "'; DELETE FROM groups; -- 🔥");
}

/// A mutation of the fake org, for the replay property.
#[derive(Debug, Clone)]
enum Mutation {
    Rename(usize),
    Join(usize, usize),
    Leave(usize, usize),
    Rate(usize, Option<u8>),
    RemoveUser(usize),
    AddUser,
    RenameGroup(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..40usize).prop_map(Mutation::Rename),
        (0..40usize, 0..8usize).prop_map(|(u, g)| Mutation::Join(u, g)),
        (0..40usize, 0..8usize).prop_map(|(u, g)| Mutation::Leave(u, g)),
        (0..40usize, prop::option::of(0..5u8)).prop_map(|(u, r)| Mutation::Rate(u, r)),
        (0..40usize).prop_map(Mutation::RemoveUser),
        Just(Mutation::AddUser),
        (0..8usize).prop_map(Mutation::RenameGroup),
    ]
}

fn apply(m: &Mirror, mutation: &Mutation, n: usize) {
    let org = m.fake.handle();
    let users = org.user_ids();
    let groups = org.group_ids();
    let pick = |v: &[i64], i: usize| v.get(i % v.len().max(1)).copied();
    match *mutation {
        Mutation::Rename(u) => {
            if let Some(u) = pick(&users, u) {
                org.rename_user(u, &format!("Renamed {n}"));
            }
        }
        Mutation::Join(u, g) | Mutation::Leave(u, g) => {
            if let (Some(u), Some(g)) = (pick(&users, u), pick(&groups, g)) {
                if matches!(mutation, Mutation::Join(..)) {
                    org.join_group(g, u);
                } else {
                    org.leave_group(g, u);
                }
            }
        }
        Mutation::Rate(u, r) => {
            if let Some(u) = pick(&users, u) {
                org.set_rate(u, r.map(|r| 20.0 + f64::from(r) * 7.5), "EUR");
            }
        }
        Mutation::RemoveUser(u) => {
            if users.len() > 30 {
                if let Some(u) = pick(&users, u) {
                    org.remove_user(u);
                }
            }
        }
        Mutation::AddUser => {
            org.add_user(&format!("Added {n}"), &format!("added{n}@example.com"));
        }
        Mutation::RenameGroup(g) => {
            if let Some(g) = pick(&groups, g) {
                org.rename_group(g, &format!("Group {n} 🌀"));
            }
        }
    }
}

/// Replays change_events in event_id order into (entity, entity_id) -> after_json.
fn replay(conn: &Connection) -> BTreeMap<(String, String), String> {
    let mut state = BTreeMap::new();
    for r in rows(
        conn,
        "SELECT entity, entity_id, op, after_json FROM change_events ORDER BY event_id",
    ) {
        let key = (r[0].clone(), r[1].clone());
        if r[2] == "delete" {
            assert!(
                state.remove(&key).is_some(),
                "delete of something never inserted: {key:?}"
            );
        } else {
            state.insert(key, r[3].clone());
        }
    }
    state
}

fn current_from_history(conn: &Connection) -> BTreeMap<(String, String), String> {
    rows(
        conn,
        "SELECT entity, entity_id, data_json FROM entity_history WHERE valid_to IS NULL",
    )
    .into_iter()
    .map(|r| ((r[0].clone(), r[1].clone()), r[2].clone()))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    /// Replaying change_events gives the current state and the current tables.
    #[test]
    fn replaying_the_events_rebuilds_the_current_tables(batches in prop::collection::vec(prop::collection::vec(mutation(), 1..6), 1..4)) {
        let m = Mirror::new(40);
        m.sync_ok();
        let mut n = 0;
        for batch in &batches {
            for mutation in batch {
                n += 1;
                apply(&m, mutation, n);
            }
            m.sync_ok();
        }
        let conn = m.conn();
        let replayed = replay(&conn);
        prop_assert_eq!(&replayed, &current_from_history(&conn));
        // ... and the current tables say the same as the replayed JSON.
        let users: BTreeSet<Vec<String>> = replayed
            .iter()
            .filter(|((e, _), _)| e == "user")
            .map(|((_, id), json)| {
                let v: serde_json::Value = serde_json::from_str(json).expect("json");
                vec![id.clone(), v["name"].as_str().unwrap_or("NULL").to_string()]
            })
            .collect();
        prop_assert_eq!(users, set(&conn, "SELECT organization_user_id, name FROM users_current"));
        let members: BTreeSet<Vec<String>> = replayed
            .iter()
            .filter(|((e, _), _)| e == "group_membership")
            .map(|((_, id), _)| id.split(':').map(str::to_string).collect())
            .collect();
        prop_assert_eq!(members, set(&conn, "SELECT group_id, organization_user_id FROM group_members_current"));
        let rates: BTreeSet<Vec<String>> = replayed
            .iter()
            .filter(|((e, _), _)| e == "user_rate")
            .map(|((_, id), json)| {
                let v: serde_json::Value = serde_json::from_str(json).expect("json");
                vec![id.clone(), v["hourly_rate"].as_f64().map(|f| f.to_string()).unwrap_or_else(|| "NULL".into())]
            })
            .collect();
        prop_assert_eq!(rates, set(&conn, "SELECT organization_user_id, hourly_rate FROM user_rates"));
        // The fake and the mirror agree on who is where.
        let org = m.fake.handle();
        let fake_members: BTreeSet<Vec<String>> = org
            .group_ids()
            .into_iter()
            .flat_map(|g| org.group_members(g).into_iter().map(move |u| vec![g.to_string(), u.to_string()]))
            .collect();
        prop_assert_eq!(fake_members, set(&conn, "SELECT group_id, organization_user_id FROM group_members_current"));
    }
}

//! The tombstone, the byte search and migration 28.

use super::*;

#[test]
fn a_tombstone_keeps_ids_flags_and_times_and_nothing_of_the_person() {
    let user = r#"{"id":7,"user_account_id":70,"user_id":"u7","name":"Ann Example","email":"ann@example.com","active":true,"admin":false,"owner":false,"joined":true,"invite_sent":null,"2fa_enabled":true,"can_edit_personal_details":null,"account_locked_at":null,"created_at":"2030-01-01T00:00:00Z","updated_at":null,"deleted_at":null,"organization_id":1,"working_hours":8.0,"permissions":{"x":1},"tags":[{"id":1,"label":"ann's tag","color":null}],"workspaces":[{"id":5,"workspace_user_id":50,"focus_role_id":null,"track_role_id":null,"work_role_id":null,"toggl_products":["focus"]}]}"#;
    let tomb = tombstone("user", user, 7);
    for gone in ["Ann", "ann@", "8.0", "ann's tag", "\"x\""] {
        assert!(!tomb.contains(gone), "{gone} in {tomb}");
    }
    for kept in [
        "\"name\":\"erased person 7\"",
        "\"user_account_id\":70",
        "\"workspace_user_id\":50",
        "\"created_at\":\"2030-01-01T00:00:00Z\"",
        "\"active\":true",
    ] {
        assert!(tomb.contains(kept), "{kept} not in {tomb}");
    }
    // The same fields by name when the record cannot be read (an unknown shape).
    let odd = tombstone(
        "user",
        r#"{"name":"Ann","email":"a@b","id":"seven","tags":[1]}"#,
        7,
    );
    assert_eq!(
        odd,
        r#"{"email":null,"id":"seven","name":"erased person 7","tags":[]}"#
    );
    let rate = tombstone(
        "user_rate",
        r#"{"organization_user_id":7,"hourly_rate":41.5,"currency":"EUR","start_at":null,"end_at":null,"workspace_id":5,"workspace_rate_id":null,"workspace_user_rate_id":null}"#,
        7,
    );
    assert!(
        !rate.contains("41.5") && !rate.contains("EUR") && rate.contains("\"workspace_id\":5"),
        "{rate}"
    );
    // Other entities are left as they are: a membership holds ids only.
    let membership = r#"{"group_id":1,"organization_user_id":7}"#;
    assert_eq!(tombstone("group_membership", membership, 7), membership);
}

#[test]
fn the_byte_search_finds_a_text_across_two_reads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    let mut bytes = vec![b'.'; (8 << 20) - 3];
    bytes.extend_from_slice(b"needle@example.com");
    bytes.extend(vec![b'.'; 100]);
    std::fs::write(&file, &bytes).unwrap();
    let needles = [
        ("needle@example.com".to_string(), true),
        ("absent".to_string(), false),
    ];
    let (found, read) = search_file(&file, &needles).unwrap();
    assert_eq!(found, vec![(0, true)]);
    assert_eq!(read, bytes.len() as u64);
    let (none, _) = search_file(&dir.path().join("missing"), &needles).unwrap();
    assert!(none.is_empty());
}

#[test]
fn an_older_mirror_takes_erasure_runs_and_flags_its_free_space() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.sqlite");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(super::super::SCHEMA_SQL).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA application_id={}; PRAGMA user_version=1;
         INSERT INTO sync_runs (started_at, status) VALUES ('2030-01-01T00:00:00Z', 'succeeded');",
        super::super::APPLICATION_ID
    ))
    .unwrap();
    drop(conn);
    let store = Store::open(&db, &super::super::StoreOptions::default()).unwrap();
    let conn = store.connection();
    conn.execute(
        "INSERT INTO sync_runs (kind, started_at, status) VALUES ('erasure', '2030-01-02T00:00:00Z', 'succeeded')",
        [],
    )
    .unwrap();
    assert!(conn
        .execute(
            "INSERT INTO sync_runs (kind, started_at, status) VALUES ('other', '2030-01-02T00:00:00Z', 'succeeded')",
            [],
        )
        .is_err());
    let flag: i64 = conn
        .query_row("SELECT may_hold_old_bytes FROM free_space", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(flag, 1);
    let fresh = Store::open(
        &dir.path().join("new.sqlite"),
        &super::super::StoreOptions::default(),
    )
    .unwrap();
    let flag: i64 = fresh
        .connection()
        .query_row("SELECT may_hold_old_bytes FROM free_space", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(flag, 0);
    let secure: i64 = fresh
        .connection()
        .query_row("PRAGMA secure_delete", [], |r| r.get(0))
        .unwrap();
    assert_eq!(secure, 1);
}

#[test]
fn the_audit_log_loses_their_name_and_email_and_keeps_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.sqlite");
    let mut store = Store::open(&db, &super::super::StoreOptions::default()).unwrap();
    let user = r#"{"id":7,"user_account_id":70,"user_id":"u7","name":"Ann Example","email":"ann@example.com","active":true,"admin":false,"owner":false,"joined":true,"invite_sent":null,"2fa_enabled":null,"can_edit_personal_details":null,"account_locked_at":null,"created_at":null,"updated_at":null,"deleted_at":null,"organization_id":1,"working_hours":null,"permissions":null,"tags":[],"workspaces":[]}"#;
    store
        .connection()
        .execute(
            "INSERT INTO sync_runs (started_at, finished_at, status) VALUES
             ('2030-01-01T00:00:00Z', '2030-01-01T00:00:01Z', 'succeeded')",
            [],
        )
        .and_then(|_| {
            store.connection().execute(
                "INSERT INTO entity_history (history_id, entity, entity_id, id, valid_from, valid_to,
                     data_json, data_hash, opened_by, closed_by)
                 VALUES (1, 'user', '7', 7, '2030-01-01T00:00:00Z', '2030-02-01T00:00:00Z', ?1, 0, 1, 1)",
                [user],
            )
        })
        .unwrap();
    store
        .connection()
        .execute_batch(
            "INSERT INTO audit_actors (user_id, name, email, user_account_id, seen_at, sync_run_id)
             VALUES (500, 'Ann E.', 'ann@example.com', 70, '2030-01-01T00:00:00Z', 1),
                    (501, 'Bo Other', 'bo@example.com', 71, '2030-01-01T00:00:00Z', 1);
             INSERT INTO audit_events (created_at, entity_type, entity_id, action, actor_user_id,
                                       old_value, new_value, meta_data, raw_json, dedup_key, sync_run_id)
             VALUES ('2030-01-05T00:00:00.000000Z', 'organization_user', '7', 'updated', 500,
                     'Ann Example', 'Ann E.', NULL,
                     '{\"user_id\":500,\"old\":\"Ann Example\",\"new\":\"Ann E.\",\"by\":\"ann@example.com\"}', 'k1', 1),
                    ('2030-01-06T00:00:00.000000Z', 'team', '3', 'updated', 501,
                     NULL, NULL, '{\"members\":[\"Ann E.\"]}',
                     '{\"user_id\":501,\"meta\":{\"members\":[\"Ann E.\"]}}', 'k2', 1),
                    ('2030-01-07T00:00:00.000000Z', 'team', '4', 'created', 501,
                     NULL, 'Team Four', NULL, '{\"user_id\":501,\"name\":\"Team Four\"}', 'k3', 1);",
        )
        .unwrap();
    let request = EraseRequest {
        user: 7,
        reason: "ticket 1",
        erased_by: "test",
        history_only: false,
        dry_run: false,
    };
    let erasure = store.erase(&request).unwrap();
    assert_eq!(erasure.counts.get("audit_actors"), Some(&1));
    assert_eq!(erasure.counts.get("audit_events"), Some(&2));
    // The log's own spelling is looked for too.
    assert!(erasure.needles.names.contains("Ann E."));
    let conn = store.connection();
    let actors: Vec<(i64, Option<String>, Option<String>)> = conn
        .prepare("SELECT user_id, name, email FROM audit_actors ORDER BY 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        actors,
        vec![
            (500, Some("erased person 7".into()), None),
            (501, Some("Bo Other".into()), Some("bo@example.com".into()))
        ]
    );
    let events: Vec<(String, String, String)> = conn
        .prepare("SELECT dedup_key, action, raw_json || coalesce(old_value, '') || coalesce(new_value, '') || coalesce(meta_data, '') FROM audit_events ORDER BY 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(events.len(), 3, "every event stays");
    for (key, _, text) in &events {
        assert!(!text.contains("Ann"), "{key}: {text}");
        assert!(!text.contains("ann@"), "{key}: {text}");
    }
    assert!(events[2].2.contains("Team Four"));
    let bytes = store.finish_erasure(&erasure.needles).unwrap();
    assert_eq!(bytes.traces, Traces::default());
    // What the log says of account 70 later is not to bring them back, until they are a
    // member again.
    let conn = store.connection();
    assert_eq!(erased_accounts(conn).unwrap(), BTreeMap::from([(70, 7)]));
    conn.execute(
        "INSERT INTO entity_history (history_id, entity, entity_id, id, valid_from, data_json,
             data_hash, opened_by)
         VALUES (2, 'user', '7', 7, '2030-03-01T00:00:00Z', ?1, 0, 1)",
        [user],
    )
    .unwrap();
    assert_eq!(erased_accounts(conn).unwrap(), BTreeMap::new());
}

/// The steps of SQLite's plan for `sql` (with `params`) in a new mirror.
fn query_plan(sql: &str, params: impl rusqlite::Params) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("m.sqlite"),
        &super::super::StoreOptions::default(),
    )
    .unwrap();
    let steps = store
        .connection()
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(params, |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    steps
}

/// An erasure finds a person's audit actors through indexes, never by reading every actor: a
/// retention pass does it once per person long gone.
#[test]
fn the_audit_actors_of_a_person_are_found_by_index() {
    let plan = query_plan(audit_log::ACTORS_OF_PERSON, rusqlite::params![7, "[]"]);
    assert!(
        plan.iter()
            .all(|step| !step.starts_with("SCAN audit_actors")),
        "{plan:?}"
    );
    assert_eq!(
        plan.iter()
            .filter(|step| step.starts_with("SEARCH audit_actors USING"))
            .count(),
        2,
        "{plan:?}"
    );
}

/// Every run with the audit log on asks who was erased: the query reads the erasures (most
/// often none), never every user's history to find them.
#[test]
fn the_erased_people_are_read_from_the_erasures_not_from_every_users_history() {
    let plan = query_plan(audit_log::ERASED_ACCOUNTS, []);
    assert!(
        plan.iter().all(|step| !step.ends_with("(entity=?)")),
        "{plan:?}"
    );
    assert!(
        plan[0].ends_with(" e") || plan[0].contains(" e USING"),
        "{plan:?}"
    );
}

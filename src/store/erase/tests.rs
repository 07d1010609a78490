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

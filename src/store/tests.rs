use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::api::models::build::{team, user};
use crate::diff::{diff, Scope};
use crate::model::StoredState;
use crate::snapshot::OrgSnapshot;

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn org(names: &[(i64, &str)], members: &[i64]) -> OrgSnapshot {
    let mut s = OrgSnapshot::default();
    for (id, name) in names {
        s.add_user(user(*id, name, None), None).unwrap();
    }
    s.add_team(team(9, "G", members), None).unwrap();
    s
}

/// The two columns of each row `sql` selects.
fn pairs<A: rusqlite::types::FromSql, B: rusqlite::types::FromSql>(
    conn: &Connection,
    sql: &str,
) -> Vec<(A, B)> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn run(store: &mut Store, snap: &OrgSnapshot, at: &str) -> usize {
    let id = store.begin_run("full", at, None).unwrap();
    let stored = store.stored_state().unwrap();
    let d = diff(&stored, snap, &Scope::FULL);
    let counts = store
        .commit_run(id, &d, &snap.workspace_names, at, &RunTotals::default())
        .unwrap();
    counts.values().sum()
}

#[test]
fn files_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    for (group_readable, want) in [(false, 0o600), (true, 0o640)] {
        let db = dir.path().join(format!("m{want:o}.sqlite"));
        // SAFETY: umask only affects this process's file creation; tests here create files with explicit modes.
        let old = unsafe { libc::umask(0) };
        let mut store = Store::open(
            &db,
            &StoreOptions {
                group_readable,
                ..Default::default()
            },
        )
        .unwrap();
        run(&mut store, &org(&[(1, "a")], &[1]), "2026-01-01T00:00:00Z");
        unsafe { libc::umask(old) };
        for suffix in ["", "-wal", "-shm"] {
            let p = sibling(&db, suffix);
            assert_eq!(mode_of(&p), want, "{}", p.display());
        }
    }
}

/// Databases that are not a mirror this version can write, each refused with a message
/// that says what it is.
#[test]
fn a_newer_schema_or_a_foreign_database_is_refused_with_a_clear_message() {
    fn newer_schema(db: &Path) {
        drop(Store::open(db, &StoreOptions::default()).unwrap());
        let newer = format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1);
        Connection::open(db).unwrap().execute_batch(&newer).unwrap();
    }
    fn foreign(db: &Path) {
        let conn = Connection::open(db).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
    }
    // (case, how the file is made, the words the refusal has)
    type Case = (&'static str, fn(&Path), &'static str);
    let cases: [Case; 2] = [
        ("a newer schema", newer_schema, "newer orgmirror"),
        ("a foreign database", foreign, "not an orgmirror database"),
    ];
    for (case, make, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.sqlite");
        make(&db);
        let err = Store::open(&db, &StoreOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{case}: opened"))
            .to_string();
        assert!(err.contains(words), "{case}: {err}");
    }
}

#[test]
fn a_foreign_database_is_left_exactly_as_it_was_and_refused_for_reading_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.sqlite");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE users (id, foo); INSERT INTO users VALUES (1, 'x');")
        .unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(&db).unwrap();
    for err in [
        Store::open(&db, &StoreOptions::default()).err(),
        Store::open_read_only(&db).err(),
    ] {
        let err = err.expect("refused").to_string();
        assert!(err.contains("not an orgmirror database"), "{err}");
    }
    // Not switched to WAL, not chmodded, no schema added.
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert_eq!(mode_of(&db), 0o644);
    for suffix in ["-wal", "-shm"] {
        assert!(!sibling(&db, suffix).exists(), "{suffix} left behind");
    }
    // An empty file is a mirror to be, but nothing to read yet.
    let empty = dir.path().join("empty.sqlite");
    std::fs::write(&empty, b"").unwrap();
    let err = Store::open_read_only(&empty)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("empty database"), "{err}");
    drop(Store::open(&empty, &StoreOptions::default()).expect("filled"));
    assert!(Store::open_read_only(&empty).is_ok());
}

#[test]
fn one_writer_at_a_time_and_stale_runs_are_marked_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.sqlite");
    let mut a = Store::open(&db, &StoreOptions::default()).unwrap();
    let first = a.begin_run("full", "2026-01-01T00:00:00Z", None).unwrap();
    let mut b = Store::open(&db, &StoreOptions::default()).unwrap();
    assert!(matches!(b.lock_writer(), Err(StoreError::Locked { .. })));
    drop(a); // the process "died" with its run still running
    b.begin_run("full", "2026-01-01T00:01:00Z", None).unwrap();
    let runs = b.recent_runs(5).unwrap();
    let old = runs.iter().find(|r| r.sync_run_id == first).unwrap();
    assert_eq!(old.status, "failed");
    assert_eq!(old.error.as_deref(), Some(INTERRUPTED));
}

#[test]
fn history_opens_and_closes_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.sqlite");
    let mut store = Store::open(&db, &StoreOptions::default()).unwrap();
    // (run, users, group members, at, changes written)
    type Run = (
        &'static str,
        &'static [(i64, &'static str)],
        &'static [i64],
        &'static str,
        usize,
    );
    #[rustfmt::skip]
    let runs: [Run; 4] = [
        ("the first", &[(1, "a"), (2, "b")], &[1], "2026-01-01T00:00:00Z", 4),
        ("nothing changed", &[(1, "a"), (2, "b")], &[1], "2026-01-02T00:00:00Z", 0),
        // 1 leaves the group, 2 is renamed, and then 1 comes back: a new interval, not a reopened one.
        ("1 leaves, 2 renamed", &[(1, "a"), (2, "c")], &[], "2026-01-03T00:00:00Z", 2),
        ("1 comes back", &[(1, "a"), (2, "c")], &[1], "2026-01-04T00:00:00Z", 1),
    ];
    for (case, users, members, at, changes) in runs {
        assert_eq!(run(&mut store, &org(users, members), at), changes, "{case}");
    }
    let c = store.connection();
    let intervals: Vec<(String, Option<String>)> = pairs(
        c,
        "SELECT valid_from, valid_to FROM group_membership_history WHERE organization_user_id = 1 ORDER BY valid_from",
    );
    assert_eq!(
        intervals,
        vec![
            (
                "2026-01-01T00:00:00Z".to_string(),
                Some("2026-01-03T00:00:00Z".to_string())
            ),
            ("2026-01-04T00:00:00Z".to_string(), None),
        ]
    );
    let (fields, before): (String, String) = c
        .query_row(
            "SELECT changed_fields, before_json FROM change_events WHERE entity = 'user' AND op = 'update'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(fields, r#"["name"]"#);
    assert!(before.contains(r#""name":"b""#), "{before}");
    let name: String = c
        .query_row(
            "SELECT name FROM users_current WHERE organization_user_id = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(name, "c");
}

/// A commit that fails part-way (here: a user the mirror already holds, which the
/// one-current-row index refuses, in a batch beside a new one) says why and leaves the
/// mirror as it was, its transaction released.
#[test]
fn a_commit_that_fails_part_way_says_why_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.sqlite");
    let mut store = Store::open(&db, &StoreOptions::default()).unwrap();
    run(
        &mut store,
        &org(&[(1, "Ann"), (2, "Bo")], &[1]),
        "2026-01-01T00:00:00Z",
    );
    let count = |store: &Store, table: &str| -> i64 {
        store
            .connection()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let tables = ["entity_history", "change_log", "users", "group_members"];
    let before: Vec<i64> = tables.iter().map(|t| count(&store, t)).collect();

    // Against an empty stored state, user 1 looks new and is inserted again, after user 0.
    let again = org(&[(0, "Cy"), (1, "Ann")], &[0, 1]);
    let d = diff(&StoredState::new(), &again, &Scope::FULL);
    let at = "2026-01-02T00:00:00Z";
    let run_id = store.begin_run("full", at, None).unwrap();
    let error = store
        .commit_run(
            run_id,
            &d,
            &again.workspace_names,
            at,
            &RunTotals::default(),
        )
        .expect_err("a user the mirror holds cannot be inserted again")
        .to_string();
    assert!(error.contains("UNIQUE constraint failed"), "{error}");

    let after: Vec<i64> = tables.iter().map(|t| count(&store, t)).collect();
    assert_eq!(after, before);
    // The write lock is free again: the run can be recorded as failed.
    store
        .fail_run(
            run_id,
            &super::RunFailure {
                error,
                ..Default::default()
            },
            at,
            &RunTotals::default(),
        )
        .unwrap();
}

/// A mirror made by version 1 (before any migration) and a new one end with the same schema.
#[test]
fn a_version_1_mirror_is_migrated_to_the_schema_of_a_new_one() {
    fn schema_of(db: &Path) -> Vec<(String, String)> {
        let conn = Connection::open(db).unwrap();
        pairs(
            &conn,
            "SELECT name, coalesce(sql, '') FROM sqlite_schema ORDER BY name",
        )
    }
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.sqlite");
    let conn = Connection::open(&old).unwrap();
    conn.execute_batch(SCHEMA_SQL).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version=1;"
    ))
    .unwrap();
    drop(conn);
    drop(Store::open(&old, &StoreOptions::default()).unwrap());
    let new = dir.path().join("new.sqlite");
    drop(Store::open(&new, &StoreOptions::default()).unwrap());
    let version: i64 = Connection::open(&old)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(schema_of(&old), schema_of(&new));
}

/// `/metrics` counts the records the newest successful run quarantined.
#[test]
fn scrape_figures_count_the_newest_successful_runs_quarantined_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.sqlite");
    drop(Store::open(&db, &StoreOptions::default()).unwrap());
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "INSERT INTO sync_runs (started_at, finished_at, status, quarantined_json)
           VALUES ('2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 'succeeded', '[{\"id\":1},{\"id\":2},{\"id\":3}]'),
                  ('2026-01-02T00:00:00Z', '2026-01-02T00:01:00Z', 'succeeded', '[{\"id\":1},{\"id\":2}]'),
                  ('2026-01-03T00:00:00Z', '2026-01-03T00:01:00Z', 'failed', '[{\"id\":9}]');",
    )
    .unwrap();
    drop(conn);
    let mut store = Store::open_read_only(&db).unwrap();
    assert_eq!(store.scrape_figures().unwrap().quarantined, 2);
}

#[test]
fn group_headcount_daily_counts_members_at_each_days_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("m.sqlite"), &StoreOptions::default()).unwrap();
    let people = [(1, "a"), (2, "b"), (3, "c"), (4, "d")];
    run(
        &mut store,
        &org(&people, &[1, 2, 3]),
        "2026-01-01T10:00:00Z",
    );
    // One leaves the same day: the day ends with two.
    run(&mut store, &org(&people, &[1, 2]), "2026-01-01T15:00:00Z");
    run(
        &mut store,
        &org(&people, &[1, 2, 4]),
        "2026-01-03T09:00:00Z",
    );
    let days: Vec<(String, i64)> = pairs(
        store.connection(),
        "SELECT day, members FROM group_headcount_daily WHERE group_id = 9 ORDER BY day",
    );
    let expected_first = [
        ("2026-01-01", 2),
        ("2026-01-02", 2),
        ("2026-01-03", 3),
        ("2026-01-04", 3),
    ];
    for (got, (day, members)) in days.iter().zip(expected_first) {
        assert_eq!((got.0.as_str(), got.1), (day, members));
    }
    // One row a day up to today, with today's members.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        days.last().map(|d| (d.0.as_str(), d.1)),
        Some((today.as_str(), 3))
    );
    let first = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let span = chrono::Utc::now()
        .date_naive()
        .signed_duration_since(first)
        .num_days();
    assert_eq!(days.len() as i64, span + 1);
}

#[test]
fn as_of_reads_a_mirror_at_a_path_a_uri_must_escape() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("a?b#c%20d é");
    std::fs::create_dir(&odd).unwrap();
    let mut store = Store::open(&odd.join("m.sqlite"), &StoreOptions::default()).unwrap();
    run(
        &mut store,
        &org(&[(1, "a"), (2, "b")], &[1]),
        "2026-01-01T10:00:00Z",
    );
    run(&mut store, &org(&[(1, "a")], &[]), "2026-01-02T10:00:00Z");
    let count = |at: &str| -> (i64, i64) {
        let state = store.as_of(at).unwrap();
        let conn = state.connection();
        let n = |t: &str| {
            conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        };
        (n("users_current"), n("group_members_current"))
    };
    assert_eq!(count("2026-01-01T10:00:00Z"), (2, 1));
    assert_eq!(count("2026-01-02T09:59:59Z"), (2, 1));
    assert_eq!(count("2026-01-02T10:00:00Z"), (1, 0));
    match store.as_of("2026-01-01T09:59:59Z") {
        Err(AsOfError::BeforeHistory { first_sync_at, .. }) => {
            assert_eq!(first_sync_at, "2026-01-01T10:00:00Z")
        }
        other => panic!("not refused: {}", other.is_ok()),
    }
}

/// A mirror synced before roles had their published fields (the schema before
/// `24_published_roles_and_custom_fields`, a role stored with the JSON of that time) is
/// migrated: the new columns are NULL, and the role pulled again from a server that sends none
/// of the new fields is unchanged: no event.
#[test]
fn a_mirror_from_before_the_published_role_fields_migrates_without_a_change() {
    use crate::api::models::{Permission, Role};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.sqlite");
    let (conn, at) = mirror_before(&db, "24_published_roles_and_custom_fields");
    // What the previous version wrote for a role (its canonical JSON had no other fields).
    let json = r#"{"role_id":11,"code":"org_owner","name":"Owner","type":"owner","privilege_level":100,"entity":"organization","description":"All of it","organization_id":1001,"permissions":[{"permission_id":701,"name":"view_users","entity":"organization","condition":null,"description":"Allows view users"}]}"#;
    conn.execute_batch(&format!(
        "PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version={};
         INSERT INTO sync_runs (sync_run_id, started_at, finished_at, status)
             VALUES (1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', 'succeeded');
         INSERT INTO roles (role_id, code, name, type, privilege_level, entity, description, organization_id)
             VALUES (11, 'org_owner', 'Owner', 'owner', 100, 'organization', 'All of it', 1001);
         INSERT INTO role_permissions (role_id, permission_id, name, entity, condition, description)
             VALUES (11, 701, 'view_users', 'organization', NULL, 'Allows view users');",
        1 + at
    ))
    .unwrap();
    conn.execute(
        "INSERT INTO entity_history (history_id, entity, entity_id, id, sub_id, valid_from,
             data_json, data_hash, opened_by)
         VALUES (1, 'role', '11', 11, 0, '2026-01-01T00:00:00Z', ?1, ?2, 1)",
        rusqlite::params![json, crate::model::content_hash(json)],
    )
    .unwrap();
    conn.execute_batch(
        "INSERT INTO change_log (sync_run_id, observed_at, entity, entity_id, op, after_history)
         VALUES (1, '2026-01-01T00:00:00Z', 'role', '11', 'insert', 1);",
    )
    .unwrap();
    drop(conn);

    let mut store = Store::open(&db, &StoreOptions::default()).unwrap();
    let role_row: Vec<(String, Option<i64>)> = pairs(
        store.connection(),
        "SELECT name, require_group FROM roles_current",
    );
    assert_eq!(role_row, [("Owner".to_string(), None)]);
    let nulls: Vec<(Option<String>, Option<i64>)> = pairs(
        store.connection(),
        "SELECT default_for_levels, category_id FROM roles_current JOIN role_permissions_current USING (role_id)",
    );
    assert_eq!(nulls, [(None, None)]);
    let mut again = OrgSnapshot::default();
    again
        .add_roles(vec![(
            Role {
                role_id: Some(11),
                code: Some("org_owner".into()),
                name: Some("Owner".into()),
                kind: Some("owner".into()),
                privilege_level: Some(100),
                entity: Some("organization".into()),
                description: Some("All of it".into()),
                organization_id: Some(1001),
                permissions: vec![Permission {
                    permission_id: Some(701),
                    name: Some("view_users".into()),
                    entity: Some("organization".into()),
                    description: Some("Allows view users".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            None,
        )])
        .unwrap();
    assert_eq!(run(&mut store, &again, "2026-01-02T00:00:00Z"), 0);
}

#[tokio::test]
async fn a_busy_database_is_tried_again_until_the_patience_is_spent() {
    let locked = || StoreError::Locked {
        path: PathBuf::from("m.sqlite"),
        lock: PathBuf::from("m.sqlite.lock"),
    };
    // Busy twice, then free: the value, after one word that it waits.
    let (mut tries, mut said) = (0, 0);
    let got = retry_while_busy(
        Duration::from_secs(60),
        || {
            tries += 1;
            if tries < 3 {
                Err(locked())
            } else {
                Ok(tries)
            }
        },
        |e| {
            assert!(e.is_locked());
            said += 1;
        },
    )
    .await;
    assert_eq!((got.unwrap(), said), (3, 1));
    // Another error is not waited on.
    let mut tries = 0;
    let got: Result<(), _> = retry_while_busy(
        Duration::from_secs(60),
        || {
            tries += 1;
            Err(StoreError::Missing {
                path: PathBuf::from("m.sqlite"),
            })
        },
        |_| panic!("no wait"),
    )
    .await;
    assert!(matches!(got, Err(StoreError::Missing { .. })) && tries == 1);
    // No patience: the busy error itself.
    let got: Result<(), _> = retry_while_busy(Duration::ZERO, || Err(locked()), |_| {}).await;
    assert!(got.unwrap_err().is_locked());
}

/// A mirror at `db` with the schema from before migration `name` (its `user_version` not set
/// yet), and that migration's index in [`MIGRATIONS`].
fn mirror_before(db: &Path, name: &str) -> (Connection, usize) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(SCHEMA_SQL).unwrap();
    let at = MIGRATIONS.iter().position(|(n, _)| *n == name).unwrap();
    for (_, sql) in &MIGRATIONS[..at] {
        conn.execute_batch(sql).unwrap();
    }
    (conn, at)
}

/// A mirror holding audit events from before `29_audit_events_by_time` keeps every event,
/// its id, its key and what points at it; the same event pulled again is still stored once.
#[test]
fn audit_events_from_before_the_time_keyed_index_migrate_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.sqlite");
    let (conn, at) = mirror_before(&db, "29_audit_events_by_time");
    conn.execute_batch(&format!(
        "PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version={};
         INSERT INTO sync_runs (sync_run_id, started_at, finished_at, status)
             VALUES (1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', 'succeeded');
         INSERT INTO audit_actors (user_id, name, email, seen_at, sync_run_id)
             VALUES (7, 'Al', 'al@example.com', '2026-01-01T00:00:00Z', 1);
         INSERT INTO audit_events (audit_event_id, created_at, entity_type, entity_id, action,
             actor_user_id, raw_json, dedup_key, sync_run_id, subject_entity, subject_id,
             window_run_id, erased_by)
         VALUES (40, '2025-12-31T10:00:00.000000Z', 'organization_user', '5', 'update', 7,
                 '{{}}', 'k40', 1, 'user', '5', 1, NULL),
                (41, '2025-12-31T11:00:00.000000Z', 'time_entry', '9', 'create', 7,
                 '{{}}', 'k41', 1, NULL, NULL, NULL, 1);
         INSERT INTO change_log (sync_run_id, observed_at, entity, entity_id, op,
             actor_user_id, changed_at, attribution, audit_event_id, attributed_by)
         VALUES (1, '2026-01-01T00:00:00Z', 'user', '5', 'update', 7,
                 '2025-12-31T10:00:00.000000Z', 'audit', 40, 1);",
        1 + at
    ))
    .unwrap();
    drop(conn);

    let store = Store::open(&db, &StoreOptions::default()).unwrap();
    let conn = store.connection();
    let held: Vec<(i64, String)> = pairs(
        conn,
        "SELECT audit_event_id, dedup_key || ' ' || coalesce(erased_by, '-') FROM audit_events
         ORDER BY 1",
    );
    assert_eq!(held, [(40, "k40 -".to_string()), (41, "k41 1".to_string())]);
    let explained: Vec<(String, String)> = pairs(
        conn,
        "SELECT c.entity_id, a.actor_name FROM change_log c
         JOIN audit_events e ON e.audit_event_id = c.audit_event_id
         JOIN audit_log a ON a.created_at = e.created_at",
    );
    assert_eq!(explained, [("5".to_string(), "Al".to_string())]);
    let unexplained: Vec<(String, String)> =
        pairs(conn, "SELECT entity, subject_id FROM unobserved_changes");
    assert_eq!(unexplained, []);
    // The same event again (its time and key) is not stored twice; another time is another
    // event.
    for at in ["2025-12-31T10:00:00.000000Z", "2025-12-31T12:00:00.000000Z"] {
        conn.execute(
            "INSERT INTO audit_events (created_at, entity_type, action, raw_json, dedup_key,
                 sync_run_id)
             VALUES (?1, 'organization_user', 'update', '{}', 'k40', 1)
             ON CONFLICT (created_at, dedup_key) DO NOTHING",
            [at],
        )
        .unwrap();
    }
    let count: i64 = conn
        .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 3);
    let problems: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(problems, 0);
}

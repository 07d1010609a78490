//! The API as Toggl publishes it: a full sync on both of the fake's profiles, roles with
//! their published fields, and members' custom fields with their history.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use orgmirror_fake::{
    FakeHandle, FakeOptions, FakeProfile, FakeServer, Fault, FaultKind, Route,
    FIRST_CUSTOM_FIELD_ID,
};
use serde_json::Value;

use crate::support::{
    events_of_run, fake_groups, fake_memberships, last_run, ok, possessive, rows, scalar, text,
    Mirror, CUSTOM_FIELDS, CUSTOM_FIELDS_WORKSPACE,
};

/// The members of the custom fields' workspace, ascending.
fn members_of_workspace(org: &FakeHandle) -> Vec<i64> {
    org.user_ids()
        .into_iter()
        .filter(|id| {
            org.user_record(*id).is_some_and(|u| {
                u.workspaces
                    .iter()
                    .any(|w| w.workspace_id == CUSTOM_FIELDS_WORKSPACE)
            })
        })
        .collect()
}

/// The fake's custom field values of the workspace's members, as rows of
/// `user_custom_fields_current` should read them.
fn fake_custom_fields(org: &FakeHandle) -> BTreeSet<Vec<String>> {
    let fields = org.custom_fields();
    let mut out = BTreeSet::new();
    for user in members_of_workspace(org) {
        for (field_id, value) in org.custom_field_values(user) {
            let Some(field) = fields
                .iter()
                .find(|f| f.id == field_id && f.workspace_id == CUSTOM_FIELDS_WORKSPACE)
            else {
                continue;
            };
            let mut ids = value.option_ids.clone();
            ids.sort_unstable();
            let names: Vec<&str> = ids
                .iter()
                .filter_map(|id| field.options.iter().find(|o| o.id == *id))
                .map(|o| o.name.as_str())
                .collect();
            let text = match &value.value {
                Value::Null => "NULL".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.insert(vec![
                user.to_string(),
                field_id.to_string(),
                field.name.clone(),
                field.field_type.clone(),
                text,
                serde_json::to_string(&ids).unwrap(),
                serde_json::to_string(&names).unwrap(),
            ]);
        }
    }
    out
}

fn mirrored_custom_fields(m: &Mirror) -> BTreeSet<Vec<String>> {
    rows(
        &m.conn(),
        "SELECT organization_user_id, custom_field_id, custom_field_name, field_type,
                coalesce(value, 'NULL'), option_ids, option_names
         FROM user_custom_fields_current",
    )
    .into_iter()
    .collect()
}

/// Requests of the fake's log that asked for custom fields.
fn custom_field_requests(org: &FakeHandle) -> usize {
    org.requests()
        .iter()
        .filter(|r| r.query.contains("include_custom_fields=true"))
        .count()
}

/// `(changed_fields, after_json)` of run `run`'s events of `entity` with `op`.
fn events(m: &Mirror, run: i64, entity: &str, op: &str) -> Vec<(String, String)> {
    rows(
        &m.conn(),
        &format!(
            "SELECT coalesce(changed_fields, 'NULL'), coalesce(after_json, 'NULL') FROM change_events
             WHERE sync_run_id = {run} AND entity = '{entity}' AND op = '{op}' ORDER BY event_id"
        ),
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect()
}

#[test]
fn a_full_sync_mirrors_the_organization_on_both_profiles() {
    for profile in [FakeProfile::Focus, FakeProfile::Seed] {
        let m = Mirror::with(
            FakeOptions {
                users: 60,
                profile,
                ..Default::default()
            },
            CUSTOM_FIELDS,
        );
        let out = m.sync_ok();
        let org = m.fake.handle();
        let conn = m.conn();
        let users: Vec<i64> = rows(
            &conn,
            "SELECT organization_user_id FROM users_current ORDER BY 1",
        )
        .iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
        assert_eq!(users, org.user_ids(), "{profile:?}");
        let groups: BTreeSet<Vec<String>> =
            rows(&conn, "SELECT group_id, name FROM groups_current")
                .into_iter()
                .collect();
        assert_eq!(groups, fake_groups(&org), "{profile:?}");
        let members: BTreeSet<Vec<String>> = rows(
            &conn,
            "SELECT group_id, organization_user_id FROM group_members_current",
        )
        .into_iter()
        .collect();
        assert_eq!(members, fake_memberships(&org), "{profile:?}");
        assert_eq!(
            scalar(&conn, "SELECT count(*) FROM roles_current"),
            org.role_ids().len() as i64
        );
        // Every request the fake served is the run's, custom fields included.
        assert_eq!(
            scalar(&conn, "SELECT requests FROM sync_runs"),
            org.request_count() as i64,
            "{profile:?}"
        );
        let with_published_fields = scalar(
            &conn,
            "SELECT count(*) FROM roles_current WHERE require_group IS NOT NULL",
        );
        let categories = scalar(
            &conn,
            "SELECT count(*) FROM role_permissions_current WHERE category_id IS NOT NULL",
        );
        match profile {
            FakeProfile::Focus => {
                assert_eq!(with_published_fields, org.role_ids().len() as i64);
                assert_eq!(
                    categories,
                    scalar(&conn, "SELECT count(*) FROM role_permissions_current")
                );
                let expected = fake_custom_fields(&org);
                assert!(expected.len() > 20, "{}", expected.len());
                assert_eq!(mirrored_custom_fields(&m), expected);
                // One page of the workspace's members, short: one more to be sure it ended.
                assert_eq!(custom_field_requests(&org), 2);
            }
            FakeProfile::Seed => {
                // The reference page has none of these: NULL, and no custom fields (the
                // parameter is unknown there), said once.
                assert_eq!((with_published_fields, categories), (0, 0));
                assert!(mirrored_custom_fields(&m).is_empty());
                assert!(
                    text(&out.stderr).contains("sent no custom_field_values"),
                    "{}",
                    text(&out.stderr)
                );
            }
        }
        let again = m.sync_ok();
        assert!(
            events_of_run(&conn, last_run(&conn)).is_empty(),
            "{profile:?}: {}",
            text(&again.stderr)
        );
    }
}

#[test]
fn the_published_role_fields_are_mirrored_and_versioned() {
    let m = Mirror::new(20);
    m.sync_ok();
    let org = m.fake.handle();
    let conn = m.conn();
    // No custom fields unless asked for: not a request more.
    assert_eq!(custom_field_requests(&org), 0);
    let expected: BTreeSet<Vec<String>> = org
        .role_ids()
        .into_iter()
        .map(|id| {
            let r = org.role(id).unwrap();
            vec![
                id.to_string(),
                r.kind,
                u8::from(r.require_group).to_string(),
                r.default_for_levels
                    .map_or("NULL".to_string(), |l| serde_json::to_string(&l).unwrap()),
            ]
        })
        .collect();
    let mirrored: BTreeSet<Vec<String>> = rows(
        &conn,
        "SELECT role_id, type, require_group, coalesce(default_for_levels, 'NULL') FROM roles_current",
    )
    .into_iter()
    .collect();
    assert_eq!(mirrored, expected);
    assert!(mirrored.iter().any(|r| r[2] == "1") && mirrored.iter().any(|r| r[3] != "NULL"));
    let categories: BTreeSet<Vec<String>> = org
        .role_ids()
        .into_iter()
        .flat_map(|id| {
            org.role(id).unwrap().permissions.into_iter().map(move |p| {
                vec![
                    id.to_string(),
                    p.permission_id.to_string(),
                    p.category_id.to_string(),
                    p.category_name,
                ]
            })
        })
        .collect();
    let mirrored: BTreeSet<Vec<String>> = rows(
        &conn,
        "SELECT role_id, permission_id, category_id, category_name FROM role_permissions_current",
    )
    .into_iter()
    .collect();
    assert_eq!(mirrored, categories);

    // A changed description is one update event that names it.
    let role = org.role_ids()[2];
    assert!(org.set_role_description(role, "Runs the team's week"));
    m.sync_ok();
    let run = last_run(&conn);
    assert_eq!(
        events_of_run(&conn, run),
        BTreeMap::from([(("role".to_string(), "update".to_string()), 1)])
    );
    let updates = events(&m, run, "role", "update");
    assert_eq!(updates[0].0, r#"["description"]"#);
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT description FROM roles_current WHERE role_id = {role}")
        ),
        [["Runs the team's week"]]
    );

    // A permission moved to another category: one update of its role.
    let permission = org.role(role).unwrap().permissions[0].permission_id;
    assert!(org.set_permission_category(role, permission, 42, "Planning"));
    m.sync_ok();
    let run = last_run(&conn);
    assert_eq!(
        events_of_run(&conn, run),
        BTreeMap::from([(("role".to_string(), "update".to_string()), 1)])
    );
    assert_eq!(events(&m, run, "role", "update")[0].0, r#"["permissions"]"#);
    assert_eq!(
        rows(
            &conn,
            &format!(
                "SELECT category_id, category_name FROM role_permissions_current
                 WHERE role_id = {role} AND permission_id = {permission}"
            )
        ),
        [["42", "Planning"]]
    );
    let feed = ok(&m.run(&["changes"]));
    let name = org.role(role).unwrap().name;
    for sentence in [
        format!("role {name}'s description changed"),
        format!("role {name}'s permission categories changed"),
    ] {
        assert!(feed.contains(&sentence), "{sentence:?} in:\n{feed}");
    }
}

/// A server that sends none of the published fields (the seed profile, as an older server)
/// leaves them NULL and writes no event for them, however often it is synced; the same
/// organization from a server that does send them records, once, one update per role that
/// names only those fields.
#[test]
fn a_server_without_the_published_role_fields_leaves_them_null_without_events() {
    let options = FakeOptions {
        users: 20,
        profile: FakeProfile::Seed,
        ..Default::default()
    };
    let m = Mirror::with(options.clone(), "");
    m.sync_ok();
    m.sync_ok();
    let conn = m.conn();
    assert!(events_of_run(&conn, last_run(&conn)).is_empty());
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM roles_current
             WHERE require_group IS NOT NULL OR default_for_levels IS NOT NULL"
        ),
        0
    );
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM role_permissions_current
             WHERE category_id IS NOT NULL OR category_name IS NOT NULL"
        ),
        0
    );

    let published = FakeServer::start_background(FakeOptions {
        profile: FakeProfile::Focus,
        ..options
    })
    .expect("fake starts");
    m.point_at(&published);
    m.sync_ok();
    let run = last_run(&conn);
    let updates = events(&m, run, "role", "update");
    assert_eq!(updates.len(), published.handle().role_ids().len());
    assert!(events(&m, run, "role", "insert").is_empty());
    assert!(events(&m, run, "role", "delete").is_empty());
    for (fields, _) in &updates {
        let fields: Vec<String> = serde_json::from_str(fields).unwrap();
        assert!(fields.contains(&"require_group".to_string()), "{fields:?}");
        assert!(
            fields
                .iter()
                .all(|f| ["default_for_levels", "permissions", "require_group"]
                    .contains(&f.as_str())),
            "{fields:?}"
        );
    }
    let feed = ok(&m.run(&["changes", "--entity", "role"]));
    assert!(feed.contains("the API now sends require_group"), "{feed}");
    assert!(
        feed.contains("the API now sends its permissions' categories"),
        "{feed}"
    );
    m.sync_ok();
    assert!(events_of_run(&conn, last_run(&conn)).is_empty());
}

#[test]
fn custom_fields_are_mirrored_changed_and_removed_with_history() {
    let m = Mirror::with(
        FakeOptions {
            users: 40,
            ..Default::default()
        },
        CUSTOM_FIELDS,
    );
    m.sync_ok();
    let org = m.fake.handle();
    let conn = m.conn();
    let first = fake_custom_fields(&org);
    assert_eq!(mirrored_custom_fields(&m), first);
    assert_eq!(
        events_of_run(&conn, 1)[&("user_custom_field".to_string(), "insert".to_string())],
        first.len() as i64
    );
    let first_sync: String = conn
        .query_row(
            "SELECT started_at FROM sync_runs WHERE sync_run_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();

    // Pick members by what they hold: a department to change, a cost centre to clear.
    let members = members_of_workspace(&org);
    let holds = |u: i64, field: i64| org.custom_field_values(u).contains_key(&field);
    let mover = *members
        .iter()
        .find(|u| {
            org.custom_field_values(**u)
                .get(&FIRST_CUSTOM_FIELD_ID)
                .is_some_and(|v| v.option_ids == [8101])
        })
        .expect("someone in Sales");
    let clearer = *members
        .iter()
        .find(|u| **u != mover && holds(**u, 8002))
        .expect("someone with a cost centre");
    let leaver = *members
        .iter()
        .find(|u| ![mover, clearer].contains(u) && org.custom_field_values(**u).len() >= 2)
        .expect("someone with values to lose");
    let mover_name = org.user(mover).unwrap().name;
    assert!(org.select_custom_field_options(mover, FIRST_CUSTOM_FIELD_ID, &[8102]));
    assert!(org.clear_custom_field(clearer, 8002));
    // Out of the workspace (still in the organization): their values are gone.
    assert!(org.edit_user(leaver, |u| u
        .workspaces
        .retain(|w| w.workspace_id != CUSTOM_FIELDS_WORKSPACE)));
    m.sync_ok();
    let run = last_run(&conn);
    assert_eq!(mirrored_custom_fields(&m), fake_custom_fields(&org));
    let updates = events(&m, run, "user_custom_field", "update");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].0, r#"["selected_options","value"]"#);
    let deletes = rows(
        &conn,
        &format!(
            "SELECT entity_id FROM change_events
             WHERE sync_run_id = {run} AND entity = 'user_custom_field' AND op = 'delete'"
        ),
    );
    let leaver_values = first.iter().filter(|r| r[0] == leaver.to_string()).count();
    assert!(leaver_values >= 2);
    assert_eq!(deletes.len(), 1 + leaver_values, "{deletes:?}");
    assert!(deletes.contains(&vec![format!("{clearer}:8002")]));
    assert_eq!(
        deletes
            .iter()
            .filter(|d| d[0].starts_with(&format!("{leaver}:")))
            .count(),
        leaver_values
    );

    // The history view: the old department closed when the new one opened.
    assert_eq!(
        rows(
            &conn,
            &format!(
                "SELECT value, option_names, valid_to IS NULL FROM user_custom_field_history
                 WHERE organization_user_id = {mover} AND custom_field_id = {FIRST_CUSTOM_FIELD_ID}
                 ORDER BY valid_from"
            )
        ),
        [
            vec![
                "8101".to_string(),
                r#"["Sales"]"#.to_string(),
                "0".to_string()
            ],
            vec![
                "8102".to_string(),
                r#"["Support"]"#.to_string(),
                "1".to_string()
            ],
        ]
    );
    // As of the first sync, the values as they were then.
    let dir = tempfile::tempdir().unwrap();
    let then = dir.path().join("then.sqlite");
    ok(&m.run(&["asof", &first_sync, "--out", then.to_str().unwrap()]));
    let then: BTreeSet<Vec<String>> = rows(
        &rusqlite::Connection::open(&then).unwrap(),
        "SELECT organization_user_id, custom_field_id, custom_field_name, field_type,
                coalesce(value, 'NULL'), option_ids, option_names
         FROM user_custom_fields_current",
    )
    .into_iter()
    .collect();
    assert_eq!(then, first);
    // The change feed says it as a person would.
    let feed = ok(&m.run(&["changes", "--entity", "user_custom_field"]));
    let said = format!(
        "{} Department changed from Sales to Support",
        possessive(&mover_name)
    );
    assert!(feed.contains(&said), "{said:?} in:\n{feed}");
    assert!(feed.contains("Cost centre cleared (was CC-"), "{feed}");

    // A renamed option is an update of every value that carries it; a member who leaves the
    // organization takes their values along.
    let in_support = fake_custom_fields(&org)
        .iter()
        .filter(|r| r[1] == FIRST_CUSTOM_FIELD_ID.to_string() && r[6] == r#"["Support"]"#)
        .count();
    assert!(org.rename_custom_field_option(FIRST_CUSTOM_FIELD_ID, 8102, "Kundenservice"));
    assert!(org.remove_user(mover));
    m.sync_ok();
    let run = last_run(&conn);
    assert_eq!(mirrored_custom_fields(&m), fake_custom_fields(&org));
    assert_eq!(
        events(&m, run, "user_custom_field", "update").len(),
        in_support - 1
    );
    assert_eq!(
        scalar(
            &conn,
            &format!(
                "SELECT count(*) FROM user_custom_fields_current WHERE organization_user_id = {mover}"
            )
        ),
        0
    );
}

/// A member the custom fields pull skips (rows shift between its pages) keeps their values:
/// absent from that pull is not removed, while the users pull lists them in the workspace.
#[test]
fn a_custom_fields_member_skipped_by_a_page_shift_keeps_their_values() {
    let m = Mirror::with(
        FakeOptions {
            users: 40,
            ..Default::default()
        },
        &format!("per_page = 5\n{CUSTOM_FIELDS}"),
    );
    m.sync_ok();
    let org = m.fake.handle();
    let conn = m.conn();
    let held = mirrored_custom_fields(&m);
    let members = members_of_workspace(&org);
    // The fifth member sits on the custom fields pull's first page, the sixth on its second.
    let (gone_from_workspace, skipped) = (members[4], members[5]);
    assert!(
        !org.custom_field_values(skipped).is_empty(),
        "a member with values"
    );
    // After the first page of the custom fields pull (the second first page of a users list
    // this run), the fifth member leaves the workspace: the sixth moves onto page 1.
    let pages_one = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&pages_one);
    org.inject(
        Fault::new(
            Route::Users,
            FaultKind::MutateAfter(Arc::new(move |h: &FakeHandle| {
                if seen.fetch_add(1, Ordering::SeqCst) == 1 {
                    h.edit_user(gone_from_workspace, |u| {
                        u.workspaces
                            .retain(|w| w.workspace_id != CUSTOM_FIELDS_WORKSPACE)
                    });
                }
            })),
        )
        .on_page(1)
        .times(2),
    );
    org.clear_requests();
    m.sync_ok();
    assert_eq!(pages_one.load(Ordering::SeqCst), 2);
    // The skipped member's place: fifth after the shift, on the first page, read before it.
    assert_eq!(members_of_workspace(&org)[4], skipped);
    assert!(custom_field_requests(&org) > 2);
    let run = last_run(&conn);
    assert_eq!(
        events(&m, run, "user_custom_field", "delete"),
        [],
        "a skipped member lost values"
    );
    assert_eq!(mirrored_custom_fields(&m), held);

    // The next run sees the sixth member again and the fifth out of the workspace.
    m.sync_ok();
    let run = last_run(&conn);
    let deleted: Vec<String> = rows(
        &conn,
        &format!(
            "SELECT entity_id FROM change_events
             WHERE sync_run_id = {run} AND entity = 'user_custom_field' AND op = 'delete'"
        ),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert!(!deleted.is_empty());
    assert!(
        deleted
            .iter()
            .all(|d| d.starts_with(&format!("{gone_from_workspace}:"))),
        "{deleted:?}"
    );
    assert_eq!(mirrored_custom_fields(&m), fake_custom_fields(&org));
    assert!(mirrored_custom_fields(&m)
        .iter()
        .any(|r| r[0] == skipped.to_string()));
}

/// A users list that answers without `custom_field_values` (a server that does not know
/// `include_custom_fields`, or a key that may not see the values) removes none of them.
#[test]
fn a_users_list_without_custom_field_values_removes_none() {
    let options = FakeOptions {
        users: 30,
        ..Default::default()
    };
    let m = Mirror::with(options.clone(), CUSTOM_FIELDS);
    m.sync_ok();
    let held = mirrored_custom_fields(&m);
    assert!(!held.is_empty());
    // The same organization from a server that follows the reference page.
    let seed = FakeServer::start_background(FakeOptions {
        profile: FakeProfile::Seed,
        ..options
    })
    .expect("fake starts");
    m.point_at(&seed);
    let out = m.sync_ok();
    assert!(
        text(&out.stderr).contains("sent no custom_field_values"),
        "{}",
        text(&out.stderr)
    );
    let conn = m.conn();
    let run = last_run(&conn);
    for op in ["insert", "update", "delete"] {
        assert_eq!(events(&m, run, "user_custom_field", op), [], "{op}");
    }
    assert_eq!(mirrored_custom_fields(&m), held);
}

/// A plan without custom fields answers their pull with a 402 that is not the quota: the run
/// fails at once with exit 2 naming the setting that avoids it, and the mirror stays as it was.
#[test]
fn a_plan_without_custom_fields_fails_the_run_naming_the_setting() {
    let m = Mirror::with(
        FakeOptions {
            users: 20,
            ..Default::default()
        },
        CUSTOM_FIELDS,
    );
    m.sync_ok();
    let held = mirrored_custom_fields(&m);
    let org = m.fake.handle();
    org.set_plan_lacks(&[orgmirror_fake::PlanFeature::CustomFields]);
    let out = m.run(&["sync"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unset sync.custom_fields_workspace_id"),
        "{stderr}"
    );
    assert_eq!(mirrored_custom_fields(&m), held);
    let conn = m.conn();
    assert_eq!(
        rows(
            &conn,
            "SELECT status FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1"
        ),
        [["failed"]]
    );
}

//! History that survives clocks, races and bad records: a clock stepped back,
//! two runs in one second, a member who is not a user, a record that cannot be read.

use orgmirror_fake::{Fault, FaultKind, Route};
use serde_json::{json, Value};

use super::{proxied, Rewrite};
use crate::support::*;

/// Keys whose history intervals overlap or are empty: none may exist.
fn bad_intervals(m: &Mirror) -> Vec<Vec<String>> {
    let conn = m.conn();
    let mut bad = rows(
        &conn,
        "SELECT 'empty', entity, entity_id, valid_from, valid_to FROM entity_history
         WHERE valid_to IS NOT NULL AND valid_to <= valid_from",
    );
    bad.extend(rows(
        &conn,
        "SELECT 'overlap', a.entity, a.entity_id, a.valid_from || '..' || coalesce(a.valid_to, ''),
                b.valid_from || '..' || coalesce(b.valid_to, '')
         FROM entity_history a JOIN entity_history b
           ON a.entity = b.entity AND a.entity_id = b.entity_id AND a.history_id < b.history_id
         WHERE a.valid_from < coalesce(b.valid_to, '9999') AND b.valid_from < coalesce(a.valid_to, '9999')",
    ));
    bad
}

#[test]
fn a_clock_stepped_back_or_two_runs_in_one_second_never_make_history_overlap_or_empty() {
    let Some(faketime) = faketime() else {
        return;
    };
    let m = Mirror::new(20);
    let org = m.fake.handle();
    let group = org.group_ids()[0];
    let member = org.group_members(group)[0];
    sync_at(faketime, &m, "@2030-06-01 00:00:00");
    assert!(org.leave_group(group, member));
    sync_at(faketime, &m, "@2030-06-10 00:00:00");
    assert!(org.join_group(group, member));
    // The clock steps back (NTP, a VM restored): the run is clamped past the last one.
    let stderr = sync_at(faketime, &m, "@2030-06-05 00:00:00");
    let warning = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("clock is behind"))
        .unwrap_or_else(|| panic!("no warning that the clock went back:\n{stderr}"));
    assert!(
        warning.contains("2030-06-05T00:00:0") && warning.contains("2030-06-10T00:00:0"),
        "the warning does not name both times:\n{stderr}"
    );
    let (at, wall): (String, String) = m
        .conn()
        .query_row(
            "SELECT started_at, wall_clock_at FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("run row");
    assert!(at.starts_with("2030-06-10T00:00:0"), "{at}");
    assert!(wall.starts_with("2030-06-05T00:00:0"), "{wall}");
    let status = ok(&m.run(&["status"]));
    assert!(
        status.contains("the clock said 2030-06-05T00:00:0"),
        "{status}"
    );
    // An update at a still earlier clock.
    let user = org.user_ids()[1];
    assert!(org.rename_user(user, "Renamed While The Clock Was Behind"));
    sync_at(faketime, &m, "@2030-06-03 00:00:00");
    // Two runs in one second, each with a change.
    assert!(org.rename_user(user, "First Of Two"));
    sync_at(faketime, &m, "2030-07-01 00:00:00");
    assert!(org.rename_user(user, "Second Of Two"));
    let stderr = sync_at(faketime, &m, "2030-07-01 00:00:00");
    // The clock did not go back: the second run is clamped without a warning.
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert_eq!(bad_intervals(&m), Vec::<Vec<String>>::new());
    // The member is in the group at most once "as of" any time.
    let conn = m.conn();
    let as_of = |t: &str| {
        scalar(
            &conn,
            &format!(
                "SELECT count(*) FROM group_membership_history WHERE group_id = {group}
                 AND organization_user_id = {member} AND valid_from <= '{t}'
                 AND (valid_to IS NULL OR valid_to > '{t}')"
            ),
        )
    };
    // Before the fix the rejoin opened [06-05, …) beside [06-01, 06-10): counted twice.
    assert_eq!(as_of("2030-06-07T00:00:00Z"), 1);
    assert_eq!(as_of("2030-06-11T00:00:00Z"), 1);
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM user_history WHERE organization_user_id = {user} AND name = 'Second Of Two' AND valid_to IS NULL")
        ),
        1
    );
}

/// Lists a member no user has (id 987654321) in the first team of every teams answer.
fn orphan_member() -> Rewrite {
    std::sync::Arc::new(|path: &str, body: &mut Value| {
        if !path.ends_with("/teams") {
            return;
        }
        if let Some(team) = body["data"].as_array_mut().and_then(|d| d.first_mut()) {
            if let Some(users) = team["users"].as_array_mut() {
                users.push(json!({"organization_user_id": 987654321, "user_group_id": 1}));
            }
        }
    })
}

fn orphans(m: &Mirror) -> i64 {
    scalar(
        &m.conn(),
        "SELECT count(*) FROM group_members WHERE organization_user_id NOT IN (SELECT organization_user_id FROM users)",
    )
}

#[test]
fn a_member_who_is_not_a_user_is_asked_for_by_id_and_not_mirrored() {
    let (m, proxy) = proxied(15);
    proxy.set(Some(orphan_member()));
    let out = m.sync_ok();
    assert_eq!(orphans(&m), 0);
    assert!(
        text(&out.stderr).contains("987654321"),
        "the orphan member is not logged:\n{}",
        text(&out.stderr)
    );
    // It was asked for by id, as vanished users are.
    assert!(m
        .fake
        .handle()
        .requests()
        .iter()
        .any(|r| r.query.contains("987654321")));
    // A later run, the mirror holding the group, does the same.
    m.sync_ok();
    assert_eq!(orphans(&m), 0);
    assert_eq!(
        scalar(
            &m.conn(),
            "SELECT count(*) FROM entity_history WHERE entity = 'group_membership' AND sub_id = 987654321"
        ),
        0
    );
}

#[test]
fn a_member_removed_upstream_between_the_teams_and_the_users_pull_is_not_mirrored() {
    let m = Mirror::new(15);
    let org = m.fake.handle();
    let group = org.group_ids()[0];
    let leaver = *org.group_members(group).last().expect("a member");
    // Between the teams and the users pull: one member leaves the organization.
    org.inject(
        Fault::new(
            Route::Teams,
            FaultKind::MutateAfter(std::sync::Arc::new(move |h| {
                h.remove_user(leaver);
            })),
        )
        .times(1),
    );
    m.sync_ok();
    assert_eq!(orphans(&m), 0);
    assert_eq!(
        scalar(
            &m.conn(),
            &format!("SELECT count(*) FROM users WHERE organization_user_id = {leaver}")
        ),
        0
    );
}

/// Makes user `user`'s body unreadable (`"NaN"` where a number belongs) and group
/// `group`'s (a number where its name belongs); ids stay readable.
fn unreadable(user: i64, group: i64) -> Rewrite {
    std::sync::Arc::new(move |path: &str, body: &mut Value| {
        let (id, field, bad) = if path.ends_with("/users") {
            (user, "working_hours", json!("NaN"))
        } else if path.ends_with("/teams") {
            (group, "name", json!(12345))
        } else {
            return;
        };
        // Whichever envelope the profile answers with (indexing a missing key would add it).
        let rows = if body.is_array() {
            body.as_array_mut()
        } else if body.get("items").is_some() {
            body["items"].as_array_mut()
        } else {
            body["data"].as_array_mut()
        };
        for item in rows.into_iter().flatten() {
            if item["id"] == json!(id) {
                item[field] = bad.clone();
            }
        }
    })
}

fn status_json(m: &Mirror) -> Value {
    serde_json::from_str(&ok(&m.run(&["status", "--json"]))).expect("status JSON")
}

#[test]
fn a_record_that_cannot_be_read_is_quarantined_at_its_last_good_version_until_it_can() {
    let (m, proxy) = proxied(15);
    let org = m.fake.handle();
    let user = org.user_ids()[3];
    let group = org.group_ids()[0];
    m.sync_ok();
    let before = dump_current(&m.db);
    let members = org.group_members(group);
    // Upstream changes both; the API sends them unreadable (twice), then readable.
    assert!(org.rename_user(user, "Renamed Upstream"));
    assert!(org.rename_group(group, "Group Renamed Upstream"));
    proxy.set(Some(unreadable(user, group)));
    for round in ["bad", "still bad"] {
        let out = m.sync_ok();
        let stderr = text(&out.stderr);
        assert!(stderr.contains("quarantined"), "{round}: {stderr}");
        // Nothing changed: no false delete, no change of the quarantined records.
        assert_eq!(dump_current(&m.db), before, "{round}: the mirror changed");
        let run: String = m
            .conn()
            .query_row(
                "SELECT quarantined_json FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .expect("quarantined_json");
        let run: Value = serde_json::from_str(&run).expect("JSON");
        let listed = |v: &Value| -> Vec<(String, i64)> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|q| {
                    (
                        q["list"].as_str().unwrap_or("").to_string(),
                        q["id"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        };
        let expected = vec![("teams".to_string(), group), ("users".to_string(), user)];
        let mut in_run = listed(&run);
        in_run.sort();
        assert_eq!(in_run, expected, "{round}: {run}");
        let status = status_json(&m);
        let mut in_status = listed(&status["quarantined"]);
        in_status.sort();
        assert_eq!(in_status, expected, "{round}: {status}");
        assert!(
            status["quarantined"][0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("invalid type")),
            "{status}"
        );
        let human = ok(&m.run(&["status"]));
        assert!(human.contains(&format!("users {user}")), "{human}");
    }
    proxy.set(None);
    m.sync_ok();
    let conn = m.conn();
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT name FROM users WHERE organization_user_id = {user}")
        ),
        vec![vec!["Renamed Upstream".to_string()]]
    );
    assert_eq!(
        rows(
            &conn,
            &format!("SELECT name FROM groups WHERE group_id = {group}")
        ),
        vec![vec!["Group Renamed Upstream".to_string()]]
    );
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM group_members WHERE group_id = {group}")
        ),
        members.len() as i64
    );
    assert_eq!(status_json(&m)["quarantined"], json!([]));
}

#[test]
fn a_group_renamed_in_an_exported_file_plans_one_rename_and_keeps_its_id_and_history() {
    let m = Mirror::new(20);
    m.sync_ok();
    let org = m.fake.handle();
    let group = org.group_ids()[0];
    let old = org.group(group).expect("group").name;
    let file = m._dir.path().join("groups.toml");
    let path = file.to_str().expect("utf-8");
    ok(&m.run(&["groups", "export", path]));
    let text = std::fs::read_to_string(&file).expect("file");
    let renamed = text.replacen("prune = false", "prune = true", 1).replacen(
        &format!("name = {old:?}\n"),
        "name = \"Renamed In The File\"\n",
        1,
    );
    assert_ne!(renamed, text);
    std::fs::write(&file, renamed).expect("write");
    let plan = ok(&m.run(&["groups", "plan", path]));
    let lines: Vec<&str> = plan
        .lines()
        .filter(|l| l.starts_with(['+', '~', '-']))
        .collect();
    assert_eq!(
        lines,
        vec![format!(
            "~ update {old:?} (id {group}): name {old:?} -> \"Renamed In The File\""
        )],
        "{plan}"
    );
    ok(&m.run(&["groups", "apply", path, "--yes"]));
    assert_eq!(
        org.group(group).expect("same id").name,
        "Renamed In The File"
    );
    let conn = m.conn();
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM group_history WHERE group_id = {group}")
        ),
        2,
        "the group's history is one line of versions"
    );
}

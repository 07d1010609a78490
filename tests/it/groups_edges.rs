//! Group administration at its edges: partial `groups apply` failures, races
//! between the read and the write, odd names, duplicate members in a groups file, and
//! `--dry-run` sending no write.

use std::collections::BTreeSet;
use std::sync::Arc;

use orgmirror_fake::{FakeHandle, Fault, FaultKind, Route};

use super::*;

fn runs(m: &Mirror) -> i64 {
    scalar(&m.conn(), "SELECT count(*) FROM sync_runs")
}

fn groups_file(m: &Mirror, body: &str) -> String {
    let file = m.config.parent().expect("dir").join("review.toml");
    std::fs::write(&file, body).expect("write file");
    file.to_str().expect("utf-8").to_string()
}

/// `[[group]]` tables (by id, with the current name, nothing else) for every group
/// except those in `except`: with `prune = true`, those groups are left alone.
fn keep_all_but(org: &FakeHandle, except: &[i64]) -> String {
    org.group_ids()
        .into_iter()
        .filter(|g| !except.contains(g))
        .map(|g| {
            format!(
                "\n[[group]]\nid = {g}\nname = {:?}\n",
                org.group(g).expect("group").name
            )
        })
        .collect()
}

/// A file with 3 writes: create "RevNew", rename `target`, delete `victim`.
fn three_writes(m: &Mirror, target: i64, victim: i64) -> String {
    let org = m.fake.handle();
    groups_file(
        m,
        &format!(
            "prune = true\n[[group]]\nname = \"RevNew\"\n\n[[group]]\nid = {target}\nname = \"Target renamed\"\n{}",
            keep_all_but(&org, &[target, victim])
        ),
    )
}

fn pick_target_and_victim(m: &Mirror) -> (i64, i64) {
    let target = group_with_members(m, 2);
    let victim = m
        .fake
        .handle()
        .group_ids()
        .into_iter()
        .find(|g| *g != target)
        .expect("another group");
    (target, victim)
}

fn methods(m: &Mirror) -> Vec<String> {
    writes(m)
        .iter()
        .map(|w| w.split(' ').next().unwrap_or("").to_string())
        .collect()
}

/// `groups apply --yes` of `file`, which fails after the create: exit status 1, and the
/// create reported as applied. Its stderr.
fn apply_fails_after_the_create(m: &Mirror, file: &str) -> String {
    m.fake.handle().clear_requests();
    let out = m.run(&["groups", "apply", file, "--yes"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("already applied (1):\n  + create \"RevNew\""),
        "{err}"
    );
    err
}

#[test]
fn apply_whose_second_write_fails_with_500_stops_refreshes_the_first_and_replans_the_rest() {
    let m = synced();
    let org = m.fake.handle();
    let (target, victim) = pick_target_and_victim(&m);
    let target_name = org.group(target).expect("t").name;
    let victim_name = org.group(victim).expect("v").name;
    let file = three_writes(&m, target, victim);
    let plan = ok(&m.run(&["groups", "plan", &file]));
    assert!(
        plan.ends_with("plan: 1 to create, 1 to update, 1 to delete\n"),
        "{plan}"
    );
    org.inject(Fault::new(
        Route::UpdateGroup,
        FaultKind::Status(500, "internal error".into()),
    ));
    let err = apply_fails_after_the_create(&m, &file);
    assert!(
        err.contains(&format!("failed: ~ update {target_name:?} (id {target})")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "not applied (2):\n  ~ update {target_name:?} (id {target}): name {target_name:?} -> \"Target renamed\"\n  - delete {victim_name:?} (id {victim}"
        )),
        "{err}"
    );
    // Nothing after the failed update was sent.
    let ms = methods(&m);
    assert_eq!(ms.first().map(String::as_str), Some("POST"), "{ms:?}");
    assert!(ms[1..].iter().all(|x| x == "PUT"), "{ms:?}");
    assert!(org.group(victim).is_some());
    assert_eq!(org.group(target).expect("t").name, target_name);
    // The create alone, refreshed as one targeted run.
    let created = group_named(&m, "RevNew").expect("created");
    check_targeted_run(&m, &[("group", "insert", 1)]);
    assert_eq!(
        scalar(
            &m.conn(),
            &format!("SELECT count(*) FROM groups_current WHERE group_id = {created}")
        ),
        1
    );
    // Re-planning shows only what is left.
    org.clear_faults();
    let plan = ok(&m.run(&["groups", "plan", &file]));
    let lines: Vec<&str> = plan.lines().collect();
    assert_eq!(lines.len(), 3, "{plan}");
    assert!(
        lines[0].starts_with(&format!("~ update {target_name:?} (id {target})")),
        "{plan}"
    );
    assert!(
        lines[1].starts_with(&format!("- delete {victim_name:?} (id {victim}")),
        "{plan}"
    );
    assert_eq!(lines[2], "plan: 0 to create, 1 to update, 1 to delete");
}

#[test]
fn apply_whose_second_write_hits_a_spent_quota_stops_before_the_delete() {
    let m = synced();
    let org = m.fake.handle();
    let (target, victim) = pick_target_and_victim(&m);
    let file = three_writes(&m, target, victim);
    org.inject(Fault::new(
        Route::UpdateGroup,
        FaultKind::QuotaSpent { resets_in: 100_000 },
    ));
    let err = apply_fails_after_the_create(&m, &file);
    assert!(err.contains("quota"), "{err}");
    assert!(err.contains("not applied (2):"), "{err}");
    assert!(
        !methods(&m).contains(&"DELETE".to_string()),
        "{:?}",
        writes(&m)
    );
    assert!(org.group(victim).is_some());
    assert!(group_named(&m, "RevNew").is_some());
}

#[test]
fn apply_whose_update_target_vanished_after_the_create_stops_before_its_put() {
    let m = synced();
    let org = m.fake.handle();
    let (target, victim) = pick_target_and_victim(&m);
    let file = three_writes(&m, target, victim);
    org.inject(
        Fault::new(
            Route::CreateGroup,
            FaultKind::MutateAfter(Arc::new(move |h: &FakeHandle| {
                h.remove_group(target);
            })),
        )
        .times(1),
    );
    let err = apply_fails_after_the_create(&m, &file);
    assert!(err.contains("failed: ~ update"), "{err}");
    // The update reads its group fresh first, finds it gone, and sends no PUT.
    let ms = methods(&m);
    assert_eq!(ms, vec!["POST".to_string()], "{ms:?}");
    assert!(err.contains("no longer exists"), "{err}");
    assert!(org.group(target).is_none(), "not recreated");
    assert!(org.group(victim).is_some());
    check_targeted_run(&m, &[("group", "insert", 1)]);
    // The file's id is now unknown: plan says so.
    let out = m.run(&["groups", "plan", &file]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("id {target} is not a group of the organization")),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn apply_does_not_drop_a_member_added_upstream_after_the_plan_pull() {
    let m = synced();
    let org = m.fake.handle();
    let g = group_with_members(&m, 2);
    let outsider = non_member(&m, g);
    let file = groups_file(
        &m,
        &format!("[[group]]\nid = {g}\nname = \"Renamed by file\"\n"),
    );
    org.inject(
        Fault::new(
            Route::Users,
            FaultKind::MutateAfter(Arc::new(move |h: &FakeHandle| {
                h.join_group(g, outsider);
            })),
        )
        .times(1),
    );
    ok(&m.run(&["groups", "apply", &file, "--yes"]));
    let after = org.group(g).expect("group");
    assert_eq!(after.name, "Renamed by file");
    assert!(
        after.members.contains(&outsider),
        "the upstream member {outsider} was dropped: {:?}",
        after.members
    );
}

#[test]
fn update_reads_fresh_and_keeps_an_upstream_rename_and_member() {
    let m = synced();
    let org = m.fake.handle();
    let g = group_with_members(&m, 2);
    let upstream_member = non_member(&m, g);
    assert!(org.join_group(g, upstream_member));
    assert!(org.rename_group(g, "Renamed upstream"));
    let added = non_member(&m, g);
    let mirror_name = rows(
        &m.conn(),
        &format!("SELECT name FROM groups_current WHERE group_id = {g}"),
    )[0][0]
        .clone();
    // Named by the name the mirror still knows.
    ok(&m.run(&[
        "group",
        "update",
        &mirror_name,
        "--add-member",
        &email(&m, added),
    ]));
    let after = org.group(g).expect("group");
    assert_eq!(after.name, "Renamed upstream");
    assert!(after.members.contains(&upstream_member), "{after:?}");
    assert!(after.members.contains(&added), "{after:?}");
    check_targeted_run(
        &m,
        &[("group", "update", 1), ("group_membership", "insert", 2)],
    );
    assert_eq!(
        rows(
            &m.conn(),
            &format!("SELECT name FROM groups_current WHERE group_id = {g}")
        ),
        vec![vec!["Renamed upstream".to_string()]]
    );
}

#[test]
fn update_of_a_group_deleted_between_the_read_and_the_put_is_reported_and_not_recreated() {
    let m = synced();
    let org = m.fake.handle();
    let g = group_with_members(&m, 1);
    org.inject(
        Fault::new(
            Route::Teams,
            FaultKind::MutateAfter(Arc::new(move |h: &FakeHandle| {
                h.remove_group(g);
            })),
        )
        .times(1),
    );
    let before_runs = runs(&m);
    org.clear_requests();
    let out = m.run(&["group", "update", &g.to_string(), "--name", "Too late"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("group {g} does not exist")), "{err}");
    assert_eq!(methods(&m), vec!["PUT".to_string()]);
    assert!(org.group(g).is_none());
    assert!(group_named(&m, "Too late").is_none());
    assert_eq!(runs(&m), before_runs);
}

#[test]
fn an_update_answered_200_with_an_unparsable_body_is_still_reported_and_refreshed() {
    let m = synced();
    let org = m.fake.handle();
    let g = group_with_members(&m, 1);
    org.inject(Fault::new(Route::UpdateGroup, FaultKind::Malformed).times(1));
    let out = m.run(&[
        "group",
        "update",
        &g.to_string(),
        "--name",
        "Malformed answer",
    ]);
    assert_eq!(
        org.group(g).expect("g").name,
        "Malformed answer",
        "upstream changed"
    );
    let stdout = ok(&out);
    assert!(stdout.contains(&format!("updated group {g}")), "{stdout}");
    check_targeted_run(&m, &[("group", "update", 1)]);
}

#[test]
fn delete_of_a_group_with_members_records_the_group_and_each_membership() {
    let m = synced();
    let org = m.fake.handle();
    let g = group_with_members(&m, 2);
    let members = org.group_members(g);
    ok(&m.run(&["group", "delete", &g.to_string()]));
    let conn = m.conn();
    let run = last_run(&conn);
    let got: BTreeSet<Vec<String>> = rows(
        &conn,
        &format!("SELECT entity, entity_id, op FROM change_events WHERE sync_run_id = {run}"),
    )
    .into_iter()
    .collect();
    let mut want: BTreeSet<Vec<String>> = members
        .iter()
        .map(|u| {
            vec![
                "group_membership".to_string(),
                format!("{g}:{u}"),
                "delete".to_string(),
            ]
        })
        .collect();
    want.insert(vec!["group".into(), g.to_string(), "delete".into()]);
    assert_eq!(got, want);
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM group_members_current WHERE group_id = {g}")
        ),
        0
    );
}

#[test]
fn dry_runs_send_no_write_and_do_not_create_the_mirror() {
    let m = Mirror::new(20);
    let org = m.fake.handle();
    let g = org.group_ids()[0];
    let u = org.user_ids()[1];
    let before = org.group(g);
    let count = org.counts();
    for args in [
        vec![
            "group".to_string(),
            "create".into(),
            "--name".into(),
            "Dry".into(),
            "--member".into(),
            u.to_string(),
            "--workspace".into(),
            "2001".into(),
            "--dry-run".into(),
        ],
        vec![
            "group".into(),
            "update".into(),
            g.to_string(),
            "--name".into(),
            "Dry".into(),
            "--dry-run".into(),
        ],
        vec![
            "group".into(),
            "update".into(),
            g.to_string(),
            "--members".into(),
            "".into(),
            "--dry-run".into(),
        ],
        vec![
            "group".into(),
            "update".into(),
            g.to_string(),
            "--workspaces".into(),
            "2001".into(),
            "--add-member".into(),
            u.to_string(),
            "--dry-run".into(),
        ],
        vec![
            "group".into(),
            "delete".into(),
            g.to_string(),
            "--dry-run".into(),
        ],
        vec!["group".into(), "mine".into()],
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ok(&m.run(&a));
        assert!(out.contains("dry run") || a[1] == "mine", "{a:?}: {out}");
    }
    let file = groups_file(
        &m,
        &format!("prune = true\n[[group]]\nname = \"Planned\"\n[[group]]\nid = {g}\nname = \"X\"\nmembers = []\n"),
    );
    ok(&m.run(&["groups", "plan", &file]));
    assert_eq!(writes(&m), Vec::<String>::new());
    assert_eq!(org.group(g), before);
    assert_eq!(org.counts(), count);
    assert!(!m.db.exists(), "a dry run wrote the mirror");
}

#[test]
fn dry_runs_on_a_synced_mirror_record_no_run() {
    let m = synced();
    let org = m.fake.handle();
    let g = group_with_members(&m, 2);
    let gname = org.group(g).expect("g").name;
    let u = non_member(&m, g);
    let before = dump_current(&m.db);
    let n = runs(&m);
    org.clear_requests();
    for args in [
        vec![
            "group",
            "create",
            "--name",
            "Dry",
            "--member",
            &email(&m, u),
            "--dry-run",
        ],
        vec![
            "group",
            "update",
            &gname,
            "--add-member",
            &email(&m, u),
            "--dry-run",
        ],
        vec!["group", "delete", &gname, "--dry-run"],
    ] {
        ok(&m.run(&args));
    }
    assert_eq!(writes(&m), Vec::<String>::new());
    assert_eq!(runs(&m), n);
    assert_eq!(dump_current(&m.db), before);
}

#[test]
fn unicode_emoji_and_long_names_round_trip_and_can_be_named() {
    let m = synced();
    let org = m.fake.handle();
    let long = "Ł".repeat(300);
    for name in ["Équipe δ 🚀 \"quoted\"", long.as_str(), "Tab\tand\\slash"] {
        ok(&m.run(&["group", "create", "--name", name]));
        let id = group_named(&m, name).expect("created upstream");
        assert_eq!(
            rows(
                &m.conn(),
                &format!("SELECT name FROM groups_current WHERE group_id = {id}")
            ),
            vec![vec![name.to_string()]]
        );
        ok(&m.run(&["group", "update", name, "--emoji", "🧪"]));
        assert_eq!(org.group(id).expect("g").emoji.as_deref(), Some("🧪"));
    }
    // Export then plan is empty with such names.
    let file = m.config.parent().expect("dir").join("export.toml");
    let path = file.to_str().expect("utf-8");
    ok(&m.run(&["groups", "export", path]));
    assert!(ok(&m.run(&["groups", "plan", path])).starts_with("no changes"));
}

#[test]
fn names_that_differ_only_by_case_are_different_groups() {
    let m = Mirror::new(20);
    let org = m.fake.handle();
    let upper = org.add_group("Ops", "");
    let lower = org.add_group("ops", "");
    m.sync_ok();
    ok(&m.run(&["group", "update", "ops", "--emoji", "🅾"]));
    assert_eq!(org.group(lower).expect("l").emoji.as_deref(), Some("🅾"));
    assert_eq!(org.group(upper).expect("u").emoji, None);
    // In a file too: "OPS" is a new group, "Ops" is that one.
    let file = groups_file(
        &m,
        "[[group]]\nname = \"Ops\"\nemoji = \"🅰\"\n[[group]]\nname = \"OPS\"\n",
    );
    let plan = ok(&m.run(&["groups", "plan", &file]));
    let lines: Vec<&str> = plan.lines().collect();
    assert!(lines[0].starts_with("+ create \"OPS\""), "{plan}");
    assert_eq!(
        lines[1],
        format!("~ update \"Ops\" (id {upper}): emoji (none) -> 🅰"),
        "{plan}"
    );
}

#[test]
fn a_group_whose_name_has_surrounding_spaces_can_be_named_exactly() {
    let m = synced();
    let org = m.fake.handle();
    ok(&m.run(&["group", "create", "--name", "  Padded  "]));
    let id = group_named(&m, "  Padded  ").expect("created with its spaces");
    let out = m.run(&["group", "update", "  Padded  ", "--emoji", "🧪"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(org.group(id).expect("g").emoji.as_deref(), Some("🧪"));
}

#[test]
fn a_file_listing_one_member_several_ways_adds_them_once() {
    let m = synced();
    let org = m.fake.handle();
    let g = group_with_members(&m, 2);
    let before = org.group(g).expect("g");
    let outsider = non_member(&m, g);
    let e = email(&m, outsider);
    let current: Vec<String> = before.members.iter().map(i64::to_string).collect();
    let file = groups_file(
        &m,
        &format!(
            "[[group]]\nid = {g}\nname = {:?}\nmembers = [{}, {outsider}, {:?}, {:?}, {:?}, {outsider}]\n",
            before.name,
            current.join(", "),
            e,
            e.to_uppercase(),
            format!("  {e}  ")
        ),
    );
    let plan = ok(&m.run(&["groups", "plan", &file]));
    assert_eq!(
        plan,
        format!(
            "~ update {:?} (id {g}): +member {e}\nplan: 0 to create, 1 to update, 0 to delete\n",
            before.name
        )
    );
    ok(&m.run(&["groups", "apply", &file, "--yes"]));
    let mut want: BTreeSet<i64> = before.members.iter().copied().collect();
    want.insert(outsider);
    assert_eq!(
        org.group_members(g).into_iter().collect::<BTreeSet<_>>(),
        want
    );
    check_targeted_run(
        &m,
        &[("group", "update", 1), ("group_membership", "insert", 1)],
    );
    assert!(ok(&m.run(&["groups", "plan", &file])).starts_with("no changes"));
}

#[test]
fn a_file_with_unknown_or_ambiguous_references_sends_nothing() {
    let m = synced();
    let org = m.fake.handle();
    let a = org.add_user("Twin", "twin@example.com");
    let b = org.add_user("Twin 2", "Twin@Example.com");
    let g = org.group_ids()[0];
    org.clear_requests();
    for (body, needle) in [
        (
            "[[group]]\nname = \"N\"\nmembers = [\"twin@example.com\"]\n".to_string(),
            format!("users {a}, {b}"),
        ),
        (
            "[[group]]\nname = \"N\"\nmembers = [\"nobody@example.com\"]\n".to_string(),
            "\"nobody@example.com\"".to_string(),
        ),
        (
            "[[group]]\nname = \"N\"\nmembers = [99999999]\n".to_string(),
            "99999999".to_string(),
        ),
        (
            "[[group]]\nname = \"N\"\nworkspaces = [\"No such ws\"]\n".to_string(),
            "\"No such ws\"".to_string(),
        ),
        (
            format!("[[group]]\nid = {g}\nname = \"A\"\n[[group]]\nid = {g}\nname = \"B\"\n"),
            format!("group id {g} is given twice"),
        ),
        (
            "[[group]]\nname = \"N\"\nmember = []\n".to_string(),
            "member".to_string(),
        ),
    ] {
        let file = groups_file(&m, &body);
        let out = m.run(&["groups", "apply", &file, "--yes"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {err}");
        assert!(err.contains(&needle), "{body}: {err}");
    }
    assert_eq!(writes(&m), Vec::<String>::new());
}

#[test]
fn a_spaced_group_name_survives_export_then_plan() {
    let m = synced();
    let org = m.fake.handle();
    org.add_group(" Spaced ", "");
    let file = m.config.parent().expect("dir").join("spaced.toml");
    let path = file.to_str().expect("utf-8");
    ok(&m.run(&["groups", "export", path]));
    let out = ok(&m.run(&["groups", "plan", path]));
    assert!(out.starts_with("no changes"), "{out}");
}

#[test]
fn apply_counts_an_update_answered_200_with_an_unparsable_body_as_applied() {
    let m = synced();
    let org = m.fake.handle();
    let (target, victim) = pick_target_and_victim(&m);
    let file = three_writes(&m, target, victim);
    org.inject(Fault::new(Route::UpdateGroup, FaultKind::Malformed).times(1));
    let out = m.run(&["groups", "apply", &file, "--yes"]);
    assert_eq!(
        org.group(target).expect("t").name,
        "Target renamed",
        "upstream changed"
    );
    let stdout = ok(&out);
    assert!(stdout.contains("applied all 3 changes"), "{stdout}");
    assert!(org.group(victim).is_none());
    assert_eq!(
        rows(
            &m.conn(),
            &format!("SELECT name FROM groups_current WHERE group_id = {target}")
        ),
        vec![vec!["Target renamed".to_string()]]
    );
}

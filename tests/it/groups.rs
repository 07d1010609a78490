//! Managing groups from the mirror: each write against the fake, the fake's state after
//! it, and the targeted run that refreshed the mirror.

use std::collections::{BTreeMap, BTreeSet};

use orgmirror_fake::{Fault, FaultKind, Route};

use crate::support::*;

/// A synced mirror of a small org.
fn synced() -> Mirror {
    let m = Mirror::new(40);
    m.sync_ok();
    m
}

fn email(m: &Mirror, id: i64) -> String {
    m.fake.handle().user(id).expect("user").email
}

/// A group with at least `n` members.
fn group_with_members(m: &Mirror, n: usize) -> i64 {
    let org = m.fake.handle();
    org.group_ids()
        .into_iter()
        .find(|g| org.group_members(*g).len() >= n)
        .expect("a group with members")
}

fn group_named(m: &Mirror, name: &str) -> Option<i64> {
    let org = m.fake.handle();
    org.group_ids()
        .into_iter()
        .find(|g| org.group(*g).is_some_and(|i| i.name == name))
}

/// The last run is a succeeded `targeted` run with exactly these events.
fn check_targeted_run(m: &Mirror, expected: &[(&str, &str, i64)]) {
    let conn = m.conn();
    let run = last_run(&conn);
    let (kind, status) = {
        let r = rows(
            &conn,
            &format!("SELECT kind, status FROM sync_runs WHERE sync_run_id = {run}"),
        );
        (r[0][0].clone(), r[0][1].clone())
    };
    assert_eq!((kind.as_str(), status.as_str()), ("targeted", "succeeded"));
    let want: BTreeMap<(String, String), i64> = expected
        .iter()
        .map(|(e, o, n)| ((e.to_string(), o.to_string()), *n))
        .collect();
    assert_eq!(events_of_run(&conn, run), want);
}

/// The last run wrote these many events of each (entity, op) named (others may be there too).
fn assert_last_run_wrote(m: &Mirror, expected: &[(&str, &str, i64)]) {
    let conn = m.conn();
    let events = events_of_run(&conn, last_run(&conn));
    for (entity, op, n) in expected {
        let key = (entity.to_string(), op.to_string());
        assert_eq!(events.get(&key), Some(n), "{entity} {op}: {events:?}");
    }
}

fn writes(m: &Mirror) -> Vec<String> {
    m.fake
        .handle()
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect()
}

fn main_workspace_name(m: &Mirror) -> String {
    rows(
        &m.conn(),
        "SELECT name FROM workspaces WHERE workspace_id = 2001",
    )[0][0]
        .clone()
}

#[test]
fn create_resolves_emails_and_workspace_names_and_refreshes_the_mirror() {
    let m = synced();
    let users = m.fake.handle().user_ids();
    let (a, b) = (users[1], users[2]);
    let ws = main_workspace_name(&m);
    let out = m.run(&[
        "group",
        "create",
        "--name",
        "Platform",
        "--emoji",
        "🚀",
        "--member",
        &email(&m, a).to_uppercase(),
        "--member",
        &b.to_string(),
        "--workspace",
        &ws,
    ]);
    let stdout = ok(&out);
    let id = group_named(&m, "Platform").expect("created upstream");
    assert!(stdout.contains(&format!("created group {id}")), "{stdout}");
    let g = m.fake.handle().group(id).expect("group");
    assert_eq!(g.emoji.as_deref(), Some("🚀"));
    assert_eq!(
        g.members.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([a, b])
    );
    assert_eq!(g.workspaces, vec![2001]);
    check_targeted_run(
        &m,
        &[("group", "insert", 1), ("group_membership", "insert", 2)],
    );
    assert_eq!(
        rows(
            &m.conn(),
            &format!("SELECT name, emoji FROM groups_current WHERE group_id = {id}")
        ),
        vec![vec!["Platform".to_string(), "🚀".to_string()]]
    );
}

#[test]
fn a_rename_keeps_the_members_and_workspaces() {
    let m = synced();
    let g = group_with_members(&m, 2);
    let before = m.fake.handle().group(g).expect("group");
    m.fake.handle().clear_requests();
    let stdout = ok(&m.run(&["group", "update", &g.to_string(), "--name", "Renamed"]));
    assert!(stdout.contains("name"), "{stdout}");
    let after = m.fake.handle().group(g).expect("group");
    assert_eq!(after.name, "Renamed");
    assert_eq!(
        (after.members, after.workspaces),
        (before.members, before.workspaces)
    );
    // The fresh read came before the write.
    let log = m.fake.handle().requests();
    let put = log.iter().position(|r| r.method == "PUT").expect("a PUT");
    assert!(
        log[..put]
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with("/teams")),
        "{log:?}"
    );
    check_targeted_run(&m, &[("group", "update", 1)]);
    // A group may be named by its exact name.
    ok(&m.run(&["group", "update", "Renamed", "--emoji", "🧪"]));
    assert_eq!(
        m.fake.handle().group(g).expect("group").emoji.as_deref(),
        Some("🧪")
    );
    check_targeted_run(&m, &[("group", "update", 1)]);
}

#[test]
fn add_and_remove_members_change_exactly_those() {
    let m = synced();
    let g = group_with_members(&m, 2);
    let members = m.fake.handle().group_members(g);
    let gone = members[0];
    let new = m
        .fake
        .handle()
        .user_ids()
        .into_iter()
        .find(|u| !members.contains(u))
        .expect("a non-member");
    ok(&m.run(&[
        "group",
        "update",
        &g.to_string(),
        "--add-member",
        &email(&m, new),
        "--remove-member",
        &gone.to_string(),
    ]));
    let mut expected: BTreeSet<i64> = members.iter().copied().collect();
    expected.remove(&gone);
    expected.insert(new);
    assert_eq!(
        m.fake
            .handle()
            .group_members(g)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        expected
    );
    assert_last_run_wrote(
        &m,
        &[
            ("group_membership", "insert", 1),
            ("group_membership", "delete", 1),
        ],
    );
    let conn = m.conn();
    assert_eq!(
        scalar(&conn, &format!("SELECT count(*) FROM group_members_current WHERE group_id = {g} AND organization_user_id = {new}")),
        1
    );
}

#[test]
fn delete_sends_the_workspace_and_records_the_deletion() {
    let m = synced();
    let g = group_with_members(&m, 1);
    let n = m.fake.handle().group_members(g).len() as i64;
    m.fake.handle().clear_requests();
    ok(&m.run(&["group", "delete", &g.to_string()]));
    assert!(m.fake.handle().group(g).is_none());
    let w = writes(&m);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("DELETE ")
            && w[0].contains(&format!("/groups/{g}?"))
            && w[0].contains("workspace_id=2001"),
        "{w:?}"
    );
    check_targeted_run(
        &m,
        &[("group", "delete", 1), ("group_membership", "delete", n)],
    );
    assert_eq!(
        scalar(
            &m.conn(),
            &format!("SELECT count(*) FROM groups_current WHERE group_id = {g}")
        ),
        0
    );
}

#[test]
fn dry_run_prints_the_request_and_writes_nothing() {
    let m = synced();
    let g = group_with_members(&m, 2);
    let before = m.fake.handle().group(g).expect("group");
    let runs = scalar(&m.conn(), "SELECT count(*) FROM sync_runs");
    m.fake.handle().clear_requests();
    let out = ok(&m.run(&[
        "group",
        "update",
        &g.to_string(),
        "--name",
        "Dry",
        "--dry-run",
    ]));
    assert!(
        out.contains(&format!("PUT /organizations/1001/groups/{g}")),
        "{out}"
    );
    assert!(out.contains("\"name\": \"Dry\""), "{out}");
    // The printed body carries the current members, as the real PUT would.
    for u in &before.members {
        assert!(out.contains(&u.to_string()), "{out}");
    }
    let out = ok(&m.run(&["group", "create", "--name", "Dry new", "--dry-run"]));
    assert!(
        out.contains("POST /organizations/1001/groups") && out.contains("\"workspaces\""),
        "{out}"
    );
    let out = ok(&m.run(&["group", "delete", &g.to_string(), "--dry-run"]));
    assert!(
        out.contains(&format!(
            "DELETE /organizations/1001/groups/{g}?workspace_id=2001"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "group {g} {:?} has {} members",
            before.name,
            before.members.len()
        )),
        "{out}"
    );
    assert_eq!(writes(&m), Vec::<String>::new());
    assert_eq!(m.fake.handle().group(g), Some(before));
    assert!(group_named(&m, "Dry new").is_none());
    assert_eq!(
        scalar(&m.conn(), "SELECT count(*) FROM sync_runs"),
        runs,
        "a dry run records no run"
    );
}

#[test]
fn unknown_groups_emails_and_workspaces_are_named() {
    let m = synced();
    let owner = m.fake.handle().user_ids()[0];
    let twin = m.fake.handle().add_user("Twin", "twin@example.com");
    let twin2 = m.fake.handle().add_user("Twin Two", "TWIN@example.com");
    m.sync_ok();
    m.fake.handle().clear_requests();
    let check = |args: &[&str], code: i32, needle: &str| {
        let out = m.run(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    check(
        &["group", "update", "99999", "--name", "X"],
        1,
        "group 99999 does not exist",
    );
    check(
        &["group", "delete", "99999"],
        1,
        "group 99999 does not exist",
    );
    // Gone upstream but still in the mirror: a dry run says so, as the delete would.
    let gone = m.fake.handle().group_ids()[0];
    assert!(m.fake.handle().remove_group(gone));
    for dry in [true, false] {
        let mut args = vec!["group".to_string(), "delete".into(), gone.to_string()];
        args.extend(dry.then(|| "--dry-run".to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check(&args, 1, &format!("group {gone} does not exist"));
    }
    check(
        &[
            "group",
            "create",
            "--name",
            "X",
            "--member",
            "nobody@example.com",
        ],
        2,
        "\"nobody@example.com\"",
    );
    check(
        &[
            "group",
            "create",
            "--name",
            "X",
            "--member",
            "twin@example.com",
        ],
        2,
        &format!("ambiguous member e-mail \"twin@example.com\": it matches ids {twin}, {twin2}"),
    );
    check(
        &[
            "group",
            "create",
            "--name",
            "X",
            "--workspace",
            "No such workspace",
        ],
        2,
        "\"No such workspace\"",
    );
    check(
        &["group", "update", "No such group", "--name", "X"],
        2,
        "unknown group \"No such group\"",
    );
    check(
        &["group", "update", &owner.to_string()],
        2,
        "nothing to update",
    );
    assert_eq!(writes(&m), Vec::<String>::new());
}

#[test]
fn mine_lists_the_groups_of_the_current_user() {
    let m = synced();
    let org = m.fake.handle();
    let owner = org
        .user_ids()
        .into_iter()
        .find(|u| email(&m, *u) == "demo@example.com")
        .expect("owner");
    let g = org.group_ids()[0];
    org.join_group(g, owner);
    let out = ok(&m.run(&["group", "mine"]));
    let name = org.group(g).expect("group").name;
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{g}\t")) && l.ends_with(&name)),
        "{out}"
    );
}

#[test]
fn export_then_plan_is_empty() {
    let m = synced();
    let file = tempdir_of(&m).join("groups.toml");
    ok(&m.run(&["groups", "export", file.to_str().expect("utf-8")]));
    let exported = std::fs::read_to_string(&file).expect("exported");
    assert!(
        exported.contains("[[group]]") && exported.contains("@"),
        "{exported}"
    );
    m.fake.handle().clear_requests();
    let out = ok(&m.run(&["groups", "plan", file.to_str().expect("utf-8")]));
    assert!(out.starts_with("no changes"), "{out}");
    assert_eq!(writes(&m), Vec::<String>::new());
}

/// The mirror's temp dir (where its config lives).
fn tempdir_of(m: &Mirror) -> std::path::PathBuf {
    m.config
        .parent()
        .expect("the config is in a dir")
        .to_path_buf()
}

fn groups_file(m: &Mirror, body: &str) -> String {
    let file = tempdir_of(m).join("desired.toml");
    std::fs::write(&file, body).expect("write file");
    file.to_str().expect("utf-8").to_string()
}

#[test]
fn apply_creates_then_updates_then_deletes_and_refreshes() {
    let m = synced();
    let org = m.fake.handle();
    let keep = group_with_members(&m, 2);
    let keep_name = org.group(keep).expect("group").name;
    let users = org.user_ids();
    let (a, b) = (users[3], users[4]);
    let ws = main_workspace_name(&m);
    let file = groups_file(
        &m,
        &format!(
            "prune = true\n[[group]]\nname = {keep_name:?}\nmembers = [{:?}]\n\n[[group]]\nname = \"Brand new\"\nemoji = \"🆕\"\nmembers = [{:?}, {b}]\nworkspaces = [{ws:?}]\n",
            email(&m, a),
            email(&m, a)
        ),
    );
    let others: Vec<i64> = org.group_ids().into_iter().filter(|g| *g != keep).collect();
    assert!(!others.is_empty());
    let plan = ok(&m.run(&["groups", "plan", &file]));
    let lines: Vec<&str> = plan.lines().collect();
    assert!(lines[0].starts_with("+ create \"Brand new\""), "{plan}");
    assert!(
        lines[1].starts_with(&format!("~ update {keep_name:?}"))
            && lines[1].contains(&format!("+member {}", email(&m, a))),
        "{plan}"
    );
    assert!(lines[2].starts_with("- delete "), "{plan}");
    assert_eq!(writes(&m), Vec::<String>::new(), "plan writes nothing");

    let out = ok(&m.run(&["groups", "apply", &file, "--yes"]));
    assert!(
        out.contains(&format!("applied all {} changes", 2 + others.len())),
        "{out}"
    );
    let created = group_named(&m, "Brand new").expect("created");
    assert_eq!(
        org.group_members(created)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([a, b])
    );
    assert_eq!(org.group_members(keep), vec![a]);
    assert_eq!(
        org.group_ids().into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([keep, created])
    );
    // Writes in the safe order: creates, updates, deletes.
    let methods: Vec<String> = writes(&m)
        .iter()
        .map(|w| w.split(' ').next().unwrap_or("").to_string())
        .collect();
    let mut sorted = methods.clone();
    sorted.sort_by_key(|m| ["POST", "PUT", "DELETE"].iter().position(|x| x == m));
    assert_eq!(methods, sorted);
    assert_last_run_wrote(
        &m,
        &[
            ("group", "insert", 1),
            ("group", "delete", others.len() as i64),
        ],
    );
    let conn = m.conn();
    assert_eq!(scalar(&conn, "SELECT count(*) FROM groups_current"), 2);
    // Applied, the file now describes the org.
    assert!(ok(&m.run(&["groups", "plan", &file])).starts_with("no changes"));
}

#[test]
fn apply_stops_at_the_first_error_and_says_what_was_applied() {
    let m = synced();
    let org = m.fake.handle();
    let keep = group_with_members(&m, 2);
    let keep_name = org.group(keep).expect("group").name;
    let a = org.user_ids()[5];
    let file = groups_file(
        &m,
        &format!("prune = true\n[[group]]\nname = {keep_name:?}\nmembers = [{a}]\n[[group]]\nname = \"First\"\n"),
    );
    let groups_before = org.group_ids().len();
    org.inject(Fault {
        route: Route::UpdateGroup,
        page: None,
        times: None,
        kind: FaultKind::Status(500, "internal error".into()),
    });
    let out = m.run(&["groups", "apply", &file, "--yes"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("already applied (1):\n  + create \"First\""),
        "{err}"
    );
    assert!(
        err.contains(&format!("failed: ~ update {keep_name:?}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("not applied ({}):", groups_before)),
        "{err}"
    );
    // The create happened, nothing after it did.
    let first = group_named(&m, "First").expect("created");
    assert_eq!(org.group_ids().len(), groups_before + 1);
    assert_ne!(org.group_members(keep), vec![a]);
    // The mirror shows what was applied.
    check_targeted_run(&m, &[("group", "insert", 1)]);
    assert_eq!(
        scalar(
            &m.conn(),
            &format!("SELECT count(*) FROM groups_current WHERE group_id = {first}")
        ),
        1
    );
}

#[test]
fn apply_without_a_terminal_needs_yes() {
    let m = synced();
    let file = groups_file(&m, "[[group]]\nname = \"Nope\"\n");
    m.fake.handle().clear_requests();
    let out = m.run(&["groups", "apply", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("pass --yes"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(writes(&m), Vec::<String>::new());
    assert!(group_named(&m, "Nope").is_none());
}

#[test]
fn apply_on_a_terminal_asks_and_applies_only_on_yes() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let m = synced();
    let file = groups_file(&m, "[[group]]\nname = \"Prompted\"\n");
    // util-linux `script` runs the command on a pseudo-terminal and types our stdin into it.
    let on_terminal = |answer: &str| {
        let command = format!(
            "TOGGL_API_TOKEN=demo-token {} --config {} groups apply {file}",
            bin(),
            m.config.display()
        );
        let mut child = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script (util-linux) runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(answer.as_bytes())
            .expect("answer");
        child.wait_with_output().expect("script ends")
    };
    m.fake.handle().clear_requests();
    for answer in ["\n", "n\n", "yess\n"] {
        let out = on_terminal(answer);
        let screen = text(&out.stdout);
        assert!(!out.status.success(), "{answer:?} applied:\n{screen}");
        assert!(screen.contains("apply these 1 changes? [y/N]"), "{screen}");
        assert!(screen.contains("declined; nothing was changed"), "{screen}");
    }
    assert_eq!(writes(&m), Vec::<String>::new());
    assert!(group_named(&m, "Prompted").is_none());

    let out = on_terminal("y\n");
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("applied all 1 changes"), "{screen}");
    assert!(group_named(&m, "Prompted").is_some());
    assert_eq!(writes(&m).len(), 1, "{:?}", writes(&m));
}

#[test]
fn create_finds_the_new_id_by_name_when_the_201_body_has_none() {
    let m = synced();
    m.fake.handle().inject(Fault {
        route: Route::CreateGroup,
        page: None,
        times: Some(1),
        kind: FaultKind::Malformed,
    });
    m.fake.handle().clear_requests();
    let stdout = ok(&m.run(&["group", "create", "--name", "Bodiless"]));
    // The fallback: a teams pull (not by id) right after the POST.
    let log = m.fake.handle().requests();
    let post = log.iter().position(|r| r.method == "POST").expect("a POST");
    let next = &log[post + 1];
    assert!(
        next.path.ends_with("/teams") && !next.query.contains("group_ids"),
        "{log:?}"
    );
    let id = group_named(&m, "Bodiless").expect("created upstream");
    assert!(stdout.contains(&format!("created group {id}")), "{stdout}");
    check_targeted_run(&m, &[("group", "insert", 1)]);
}

#[test]
fn create_of_a_name_the_mirror_knows_finds_the_new_id_when_the_201_body_has_none() {
    let m = synced();
    let org = m.fake.handle();
    let existing = org.group_ids()[0];
    let name = org.group(existing).expect("a group").name;
    org.inject(Fault {
        route: Route::CreateGroup,
        page: None,
        times: Some(1),
        kind: FaultKind::Malformed,
    });
    let stdout = ok(&m.run(&["group", "create", "--name", &name]));
    let created: Vec<i64> = org
        .group_ids()
        .into_iter()
        .filter(|g| *g != existing && org.group(*g).is_some_and(|i| i.name == name))
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(
        stdout.contains(&format!("created group {} ", created[0])),
        "{stdout}"
    );
    check_targeted_run(&m, &[("group", "insert", 1)]);
}

#[test]
fn a_member_listed_as_deleted_has_left_and_a_rename_does_not_bring_them_back() {
    let m = synced();
    let g = group_with_members(&m, 2);
    let org = m.fake.handle();
    let gone = org.group_members(g)[0];
    assert!(org.soft_leave_group(g, gone));
    m.sync_ok();
    let conn = m.conn();
    let membership = format!("{g}:{gone}");
    assert_eq!(
        rows(
            &conn,
            &format!(
                "SELECT op FROM change_events WHERE entity = 'group_membership' AND entity_id = '{membership}' ORDER BY event_id"
            )
        ),
        vec![vec!["insert".to_string()], vec!["delete".to_string()]]
    );
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM group_members_current WHERE group_id = {g} AND organization_user_id = {gone}")
        ),
        0
    );
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM group_membership_history WHERE group_id = {g} AND organization_user_id = {gone} AND valid_to IS NOT NULL")
        ),
        1
    );
    // The PUT of a rename carries the members as listed, but not the deleted one.
    ok(&m.run(&["group", "update", &g.to_string(), "--name", "Softly left"]));
    let after = org.group(g).expect("group");
    assert_eq!(after.name, "Softly left");
    assert!(!after.members.contains(&gone), "{:?}", after.members);
    check_targeted_run(&m, &[("group", "update", 1)]);
}

/// A user of the organization who is not a member of group `g`.
fn non_member(m: &Mirror, g: i64) -> i64 {
    let members = m.fake.handle().group_members(g);
    m.fake
        .handle()
        .user_ids()
        .into_iter()
        .find(|u| !members.contains(u))
        .expect("a non-member")
}

#[test]
fn adding_and_removing_the_same_member_is_refused() {
    let m = synced();
    let g = group_with_members(&m, 2);
    let before = m.fake.handle().group(g).expect("group");
    let outsider = non_member(&m, g);
    let member = before.members[0];
    m.fake.handle().clear_requests();
    let check = |add: String, remove: String, id: i64| {
        let out = m.run(&[
            "group",
            "update",
            &g.to_string(),
            "--add-member",
            &add,
            "--remove-member",
            &remove,
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{add} / {remove}: {err}");
        assert!(
            err.contains(&format!("{add:?}"))
                && err.contains(&format!("{remove:?}"))
                && err.contains(&id.to_string()),
            "{add} / {remove}: {err}"
        );
    };
    check(outsider.to_string(), outsider.to_string(), outsider);
    // An e-mail and an id of the same user are the same member.
    check(
        email(&m, outsider).to_uppercase(),
        outsider.to_string(),
        outsider,
    );
    check(member.to_string(), email(&m, member), member);
    assert_eq!(m.fake.handle().requests(), vec![], "nothing was sent");
    assert_eq!(m.fake.handle().group(g), Some(before));
}

#[test]
fn a_dry_run_that_would_change_nothing_says_nothing_would_be_sent() {
    let m = synced();
    let g = group_with_members(&m, 2);
    let before = m.fake.handle().group(g).expect("group");
    let outsider = non_member(&m, g);
    m.fake.handle().clear_requests();
    for args in [
        vec!["--remove-member".to_string(), outsider.to_string()],
        vec!["--add-member".into(), before.members[0].to_string()],
        vec!["--name".into(), before.name.clone()],
    ] {
        let mut all = vec!["group".to_string(), "update".into(), g.to_string()];
        all.extend(args);
        all.push("--dry-run".into());
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = ok(&m.run(&all));
        assert!(out.contains("nothing would be sent"), "{all:?}: {out}");
        assert!(
            !out.contains("PUT") && !out.contains("would send"),
            "{all:?}: {out}"
        );
    }
    assert_eq!(writes(&m), Vec::<String>::new());
    assert_eq!(m.fake.handle().group(g), Some(before));
}

#[test]
fn an_unusable_mirror_is_reported_as_it_is_when_a_name_needs_it() {
    let m = Mirror::new(10);
    std::fs::write(
        &m.db,
        "this is not a database, but it is long enough to be read as one\n".repeat(20),
    )
    .expect("write");
    let someone = email(&m, m.fake.handle().user_ids()[1]);
    for args in [
        vec!["group", "create", "--name", "X", "--member", &someone],
        vec!["group", "update", "Some group", "--name", "Y"],
    ] {
        let out = m.run(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&m.db.display().to_string()) && !err.contains("does not exist"),
            "{args:?}: {err}"
        );
    }
    // Ids need no mirror, so a missing one is no error until the refresh.
    assert_eq!(writes(&m), Vec::<String>::new());
}

#[test]
fn export_refuses_an_existing_file_unless_forced() {
    let m = synced();
    let file = tempdir_of(&m).join("groups.toml");
    std::fs::write(&file, "# mine\n").expect("write");
    let path = file.to_str().expect("utf-8");
    let out = m.run(&["groups", "export", path]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(path) && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "# mine\n");
    ok(&m.run(&["groups", "export", path, "--force"]));
    assert!(std::fs::read_to_string(&file)
        .expect("read")
        .contains("[[group]]"));
}

#[test]
fn export_then_plan_is_empty_with_groups_of_the_same_name() {
    let m = synced();
    let org = m.fake.handle();
    let users = org.user_ids();
    let (d1, d2) = (org.add_group("Dup", "🅰"), org.add_group("Dup", ""));
    org.join_group(d1, users[1]);
    org.join_group(d2, users[2]);
    let file = tempdir_of(&m).join("groups.toml");
    let path = file.to_str().expect("utf-8");
    ok(&m.run(&["groups", "export", path]));
    let exported = std::fs::read_to_string(&file).expect("exported");
    assert!(
        exported.contains(&format!("id = {d1}\n")) && exported.contains(&format!("id = {d2}\n")),
        "{exported}"
    );
    m.fake.handle().clear_requests();
    let out = ok(&m.run(&["groups", "plan", path]));
    assert!(out.starts_with("no changes"), "{out}");

    // The id picks the one group: rename the second and give it a member.
    let edited = exported.replace(
        &format!("id = {d2}\nname = \"Dup\"\n"),
        &format!("id = {d2}\nname = \"Dup two\"\n"),
    );
    assert_ne!(edited, exported, "{exported}");
    std::fs::write(&file, edited).expect("write");
    let out = ok(&m.run(&["groups", "plan", path]));
    assert_eq!(
        out.lines().next(),
        Some(format!("~ update \"Dup\" (id {d2}): name \"Dup\" -> \"Dup two\"").as_str()),
        "{out}"
    );
    ok(&m.run(&["groups", "apply", path, "--yes"]));
    assert_eq!(org.group(d1).expect("d1").name, "Dup");
    assert_eq!(org.group(d2).expect("d2").name, "Dup two");
    assert_eq!(org.group_members(d2), vec![users[2]]);
    assert!(ok(&m.run(&["groups", "plan", path])).starts_with("no changes"));
}

#[test]
fn a_report_that_cannot_be_printed_does_not_stop_the_writes() {
    // stdout on a full disk: every write to it fails (as a closed pipe's would).
    let m = synced();
    let file = groups_file(
        &m,
        "[[group]]\nname = \"Unprinted A\"\n\n[[group]]\nname = \"Unprinted B\"\n",
    );
    let full = || std::fs::File::create("/dev/full").expect("/dev/full");
    let mut apply = std::process::Command::new(bin());
    apply
        .arg("--config")
        .arg(&m.config)
        .args(["groups", "apply", &file, "--yes"])
        .env("TOGGL_API_TOKEN", "demo-token")
        .stdout(full());
    let out = apply.output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(group_named(&m, "Unprinted A").is_some());
    assert!(group_named(&m, "Unprinted B").is_some());
    let status = std::process::Command::new(bin())
        .arg("--config")
        .arg(&m.config)
        .arg("status")
        .stdout(full())
        .output()
        .expect("runs");
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
}

#[path = "groups_edges.rs"]
mod edges;

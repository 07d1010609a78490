//! Answers for people: `asof` (the organization as it was) and `changes` (the change feed
//! in sentences), against real mirrors.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use rusqlite::Connection;

use crate::support::{
    bin, ok, on_a_terminal, possessive, rows, run_demo, scalar, text, Mirror, CUSTOM_FIELDS,
};

const CURRENT_VIEWS: [&str; 6] = [
    "users_current",
    "groups_current",
    "group_members_current",
    "roles_current",
    "role_permissions_current",
    "user_custom_fields_current",
];

/// Each current view (or the as-of file's table of that name): its columns and its rows in
/// key order.
fn views_of(db: &Path) -> BTreeMap<&'static str, (Vec<String>, Vec<Vec<String>>)> {
    let conn = Connection::open(db).expect("open");
    CURRENT_VIEWS
        .iter()
        .map(|v| {
            let sql = format!("SELECT * FROM {v} ORDER BY 1, 2");
            let columns: Vec<String> = conn
                .prepare(&sql)
                .expect("prepare")
                .column_names()
                .iter()
                .map(|c| c.to_string())
                .collect();
            // The types too: an integer where the view has a real reads the same as text.
            let types: Vec<String> = columns.iter().map(|c| format!("typeof(\"{c}\")")).collect();
            let typed = format!("SELECT *, {} FROM {v} ORDER BY 1, 2", types.join(", "));
            (*v, (columns, rows(&conn, &typed)))
        })
        .collect()
}

fn first_observed_at(conn: &Connection) -> String {
    conn.query_row(
        "SELECT observed_at FROM change_events ORDER BY event_id LIMIT 1",
        [],
        |r| r.get(0),
    )
    .expect("a first sync")
}

/// Changes of every kind the history holds: people, groups, memberships, rates, roles,
/// custom field values.
fn change_everything(m: &Mirror) {
    let org = m.fake.handle();
    let users = org.user_ids();
    let groups = org.group_ids();
    org.rename_group(groups[0], "Platform");
    org.remove_group(groups[1]);
    org.add_group("Data Team", "📊");
    let outsider = users
        .iter()
        .copied()
        .find(|u| !org.group_members(groups[0]).contains(u))
        .expect("someone outside the group");
    org.join_group(groups[0], outsider);
    org.leave_group(groups[0], org.group_members(groups[0])[0]);
    org.set_rate(users[3], Some(95.0), "EUR");
    org.set_admin(users[4], true);
    org.rename_user(users[5], "Grace Hopper");
    org.remove_user(users[6]);
    org.add_user("Ada Lovelace", "ada@example.com");
    let role = org.role_ids()[0];
    org.rename_role(role, "Renamed role");
    org.add_role_permission(role, "brand_new_permission");
    org.set_role_description(org.role_ids()[1], "Described again");
    let with_values: Vec<i64> = users
        .iter()
        .copied()
        .filter(|u| !org.custom_field_values(*u).is_empty())
        .collect();
    assert!(org.select_custom_field_options(with_values[0], 8004, &[8122, 8123]));
    let field = *org
        .custom_field_values(with_values[1])
        .keys()
        .next()
        .expect("a value");
    assert!(org.clear_custom_field(with_values[1], field));
    assert!(org.set_custom_field_value(with_values[2], 8002, "CC-1".into()));
}

#[test]
fn asof_between_two_syncs_is_the_first_state_and_at_now_the_current_views() {
    let m = Mirror::with(
        orgmirror_fake::FakeOptions {
            users: 40,
            ..Default::default()
        },
        CUSTOM_FIELDS,
    );
    m.sync_ok();
    let first_state = views_of(&m.db);
    let first_sync = first_observed_at(&m.conn());
    // Whole seconds: the second run must observe a later one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    change_everything(&m);
    m.sync_ok();
    assert_ne!(
        views_of(&m.db),
        first_state,
        "the second sync changed nothing"
    );
    let dir = tempfile::tempdir().expect("tempdir");

    let then = dir.path().join("then.sqlite");
    let out = ok(&m.run(&["asof", &first_sync, "--out", then.to_str().expect("utf-8")]));
    assert!(out.contains(&first_sync), "{out}");
    assert_eq!(views_of(&then), first_state);

    let now = dir.path().join("now.sqlite");
    let csv = dir.path().join("csv");
    let at = orgmirror::now_utc();
    ok(&m.run(&[
        "asof",
        &at,
        "--out",
        now.to_str().expect("utf-8"),
        "--csv",
        csv.to_str().expect("utf-8"),
    ]));
    assert_eq!(views_of(&now), views_of(&m.db));
    // A self-contained file that says which moment it shows.
    let conn = Connection::open(&now).expect("open");
    assert_eq!(
        rows(&conn, "SELECT as_of, first_sync_at, last_run_id FROM as_of"),
        [[at.clone(), first_sync.clone(), "2".to_string()]]
    );
    assert_eq!(
        rows(&conn, "PRAGMA journal_mode"),
        [["delete".to_string()]],
        "a copy, not a WAL database"
    );
    for view in CURRENT_VIEWS {
        let file = std::fs::read_to_string(csv.join(format!("{view}.csv"))).expect("csv");
        let count = scalar(&conn, &format!("SELECT count(*) FROM {view}"));
        assert_eq!(file.lines().count() as i64, count + 1, "{view}.csv");
    }

    // A file in the way is kept without --force, replaced with it.
    let again = m.run(&["asof", &first_sync, "--out", now.to_str().expect("utf-8")]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("--force"));
    assert_eq!(views_of(&now), views_of(&m.db));
    ok(&m.run(&[
        "asof",
        &first_sync,
        "--out",
        now.to_str().expect("utf-8"),
        "--force",
    ]));
    assert_eq!(views_of(&now), first_state);
    // Never over the mirror itself.
    let over = m.run(&[
        "asof",
        &at,
        "--out",
        m.db.to_str().expect("utf-8"),
        "--force",
    ]);
    assert_eq!(over.status.code(), Some(2), "{}", text(&over.stderr));
}

#[test]
fn asof_before_the_first_sync_is_refused_with_its_time() {
    let m = Mirror::new(12);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("then.sqlite");
    let out_arg = out.to_str().expect("utf-8");
    // No history at all yet.
    let empty = m.run(&["asof", "2026-01-01", "--out", out_arg]);
    assert_ne!(empty.status.code(), Some(0), "{}", text(&empty.stderr));
    m.sync_ok();
    let first_sync = first_observed_at(&m.conn());
    for before in ["2000-01-01", "1999-12-31T23:00:00-02:00"] {
        let refused = m.run(&["asof", before, "--out", out_arg]);
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&first_sync) && stderr.contains("before the mirror's first sync"),
            "{stderr}"
        );
        assert!(!out.exists(), "a refused asof wrote {}", out.display());
    }
    let bad = m.run(&["asof", "last tuesday", "--out", out_arg]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("RFC 3339"),
        "{}",
        text(&bad.stderr)
    );
}

/// A config whose database is `db` (for commands that only read the mirror).
fn config_for(dir: &Path, db: &Path) -> std::path::PathBuf {
    let config = dir.join("orgmirror.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = \"http://127.0.0.1:9/api\"\norganization_id = 1001\nworkspace_id = 2001\n\
             [database]\npath = {:?}\n",
            db.display().to_string()
        ),
    )
    .expect("write config");
    config
}

fn orgmirror(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("PAGER")
        .output()
        .expect("binary runs")
}

/// What `demo` says it changed: `(what, name)` from its "Meanwhile" lines.
fn demo_story(stdout: &str) -> BTreeMap<&'static str, String> {
    let mut story = BTreeMap::new();
    for line in stdout.lines().filter_map(|l| l.trim().strip_prefix("- ")) {
        let found = if let Some(rest) = line.strip_suffix("\" was renamed to \"Platform Team 🚀\"")
        {
            let old = rest.split_once(" \"").map(|(_, old)| old.to_string());
            let id = rest
                .strip_prefix("group ")
                .and_then(|r| r.split_once(' '))
                .map(|(id, _)| id.to_string());
            story.insert("group_id", id.unwrap_or_default());
            old.map(|o| ("old_group", o))
        } else if let Some(name) = line.strip_suffix(" left it") {
            Some(("member_left", name.to_string()))
        } else if let Some(name) = line.strip_suffix(" joined it") {
            Some(("member_joined", name.to_string()))
        } else if let Some(name) = line.strip_suffix("'s hourly rate became 95.00 EUR") {
            Some(("rate_user", name.to_string()))
        } else if let Some(name) = line.strip_suffix(" became an admin") {
            Some(("admin", name.to_string()))
        } else if let Some(name) = line.strip_suffix(" left the organization") {
            Some(("gone", name.to_string()))
        } else {
            line.strip_suffix(" joined the organization")
                .and_then(|l| l.split_once(" (id "))
                .map(|(name, _)| ("newcomer", name.to_string()))
        };
        if let Some((key, value)) = found {
            story.insert(key, value);
        }
    }
    story
}

#[test]
fn changes_tells_each_change_the_demo_made_in_sentences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("demo.sqlite");
    let demo = run_demo(&db, 60);
    let story = demo_story(&ok(&demo));
    for key in [
        "group_id",
        "old_group",
        "member_left",
        "member_joined",
        "rate_user",
        "admin",
        "gone",
        "newcomer",
    ] {
        assert!(story.contains_key(key), "the demo told no {key}: {story:?}");
    }
    let config = config_for(dir.path(), &db);
    let feed = ok(&orgmirror(&config, &["changes"]));
    // The demo ran just now: the last week is all of it.
    assert_eq!(ok(&orgmirror(&config, &["changes", "--since", "7d"])), feed);

    // What the mirror holds beside the story: the group's emoji, the old rate, and what
    // leaving the organization ended (the leaver's rate and memberships).
    let conn = Connection::open(&db).expect("open");
    let one = |sql: &str| rows(&conn, sql).into_iter().next().unwrap_or_default();
    let group_id = &story["group_id"];
    let emoji = one(&format!(
        "SELECT emoji FROM groups_current WHERE group_id = {group_id}"
    ));
    let label = |name: &str, emoji: &str| match emoji {
        "NULL" | "" => name.to_string(),
        e => format!("{name} {e}"),
    };
    let renamed = label("Platform Team 🚀", &emoji[0]);
    let old_rate = one(&format!(
        "SELECT printf('%.2f', r.hourly_rate), r.currency FROM rate_history r
         JOIN user_history u USING (organization_user_id)
         WHERE u.name = '{}' AND r.valid_to IS NOT NULL",
        story["rate_user"].replace('\'', "''")
    ));
    let old_rate = if old_rate[1] == "EUR" {
        old_rate[0].clone()
    } else {
        format!("{} {}", old_rate[0], old_rate[1])
    };
    let mut expected = vec![
        format!("{} joined the organization", story["newcomer"]),
        format!("{} became an admin", story["admin"]),
        format!("{} left the organization", story["gone"]),
        format!("group {} renamed to Platform Team 🚀", story["old_group"]),
        format!("{} left {renamed}", story["member_left"]),
        format!("{} joined {renamed}", story["member_joined"]),
        format!(
            "{} rate {old_rate} → 95.00 EUR",
            possessive(&story["rate_user"])
        ),
    ];
    let gone = story["gone"].replace('\'', "''");
    for row in rows(
        &conn,
        &format!(
            "SELECT g.name, g.emoji FROM group_membership_history m
             JOIN user_history u USING (organization_user_id)
             JOIN groups_current g USING (group_id)
             WHERE u.name = '{gone}' AND m.valid_to IS NOT NULL AND m.group_id != {group_id}"
        ),
    ) {
        expected.push(format!(
            "{} left {}",
            story["gone"],
            label(&row[0], &row[1])
        ));
    }
    if story["member_left"] != story["gone"] {
        for _ in rows(
            &conn,
            &format!(
                "SELECT 1 FROM group_membership_history m JOIN user_history u USING (organization_user_id)
                 WHERE u.name = '{gone}' AND m.valid_to IS NOT NULL AND m.group_id = {group_id}"
            ),
        ) {
            expected.push(format!("{} left {renamed}", story["gone"]));
        }
    }
    for row in rows(
        &conn,
        &format!(
            "SELECT printf('%.2f', hourly_rate), currency FROM rate_history r
             JOIN user_history u USING (organization_user_id)
             WHERE u.name = '{gone}' AND r.valid_to IS NOT NULL"
        ),
    ) {
        expected.push(format!(
            "{} rate removed (was {} {})",
            possessive(&story["gone"]),
            row[0],
            row[1]
        ));
    }
    // The fake stamps updated_at on a user whose rate it changes: recorded, and no sentence.
    assert!(
        scalar(
            &conn,
            "SELECT count(*) FROM change_events
             WHERE sync_run_id = 2 AND entity = 'user' AND changed_fields = '[\"updated_at\"]'"
        ) > 0
    );

    // Run 1 is told as one line, run 2 after it, a sentence per change.
    let blocks: Vec<&str> = feed.split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{feed}");
    assert!(blocks[0].starts_with("run 1 (full sync, "), "{feed}");
    assert!(
        blocks[0].contains("first sync: the organization as found, 60 people"),
        "{feed}"
    );
    let mut lines = blocks[1].lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("run 2 (full sync, "), "{feed}");
    // Each change the demo made is told with its actor, the fake's owner, and the time a
    // run saw it.
    let owner = rows(&conn, "SELECT name FROM users_current WHERE owner = 1")[0][0].clone();
    let mut told: Vec<String> = lines
        .map(|l| {
            let (time, sentence) = l.split_at(l.find("  ").unwrap_or(0));
            assert_eq!(time.len(), 16, "{l}");
            let sentence = sentence.trim_start();
            let by = format!(", by {owner} (seen ");
            match sentence.find(&by) {
                Some(at) => sentence[..at].to_string(),
                None => panic!("no actor: {l}\n{feed}"),
            }
        })
        .collect();
    told.sort();
    expected.sort();
    assert_eq!(told, expected, "\n{feed}");

    // --json: one object per event, names as of each one: run 1's events of the group
    // renamed in run 2 carry its old name, and the leaver's their name though they are gone.
    let json = ok(&orgmirror(&config, &["changes", "--json"]));
    let events: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        events.len() as i64,
        scalar(&conn, "SELECT count(*) FROM change_events")
    );
    let of_group: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["sync_run_id"] == 1
                && e["entity"] == "group_membership"
                && e["entity_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with(&format!("{group_id}:")))
        })
        .collect();
    assert!(!of_group.is_empty());
    for e in &of_group {
        assert_eq!(e["group_name"], story["old_group"].as_str(), "{e}");
        assert!(
            e["user_name"].as_str().is_some_and(|n| !n.is_empty()),
            "{e}"
        );
    }
    let gone_then = events.iter().find(|e| {
        e["sync_run_id"] == 1 && e["entity"] == "user" && e["user_name"] == story["gone"].as_str()
    });
    assert!(
        gone_then.is_some(),
        "no run-1 event names {}",
        story["gone"]
    );
    for e in events.iter().filter(|e| e["sync_run_id"] == 2) {
        let bookkeeping = e["changed_fields"] == serde_json::json!(["updated_at"]);
        assert_eq!(
            e["sentences"].as_array().is_some_and(|s| !s.is_empty()),
            !bookkeeping,
            "{e}"
        );
    }

    // Filters: one entity, a range that ends before run 2.
    let rates = ok(&orgmirror(
        &config,
        &["changes", "--json", "--entity", "user_rate"],
    ));
    assert!(
        rates
            .lines()
            .all(|l| l.contains("\"entity\":\"user_rate\"")),
        "{rates}"
    );
    let first_sync = first_observed_at(&conn);
    let until_second = ok(&orgmirror(
        &config,
        &[
            "changes",
            "--since",
            &first_sync,
            "--until",
            &run2_time(&conn),
        ],
    ));
    assert!(
        until_second.starts_with("run 1 ") && !until_second.contains("run 2"),
        "{until_second}"
    );
    let nothing = ok(&orgmirror(
        &config,
        &["changes", "--until", &first_sync, "--entity", "role"],
    ));
    assert_eq!(nothing, "no changes in that range\n");
    for bad in [
        &["--entity", "people"][..],
        &["--since", "7 days"],
        &["--until", "soon"],
    ] {
        let out = orgmirror(&config, &[&["changes"][..], bad].concat());
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(bad[0]), "{}", text(&out.stderr));
    }
}

fn run2_time(conn: &Connection) -> String {
    conn.query_row(
        "SELECT observed_at FROM change_events WHERE sync_run_id = 2 LIMIT 1",
        [],
        |r| r.get(0),
    )
    .expect("run 2")
}

#[test]
fn changes_goes_through_the_pager_on_a_terminal_only() {
    let m = Mirror::new(12);
    m.sync_ok();
    let dir = tempfile::tempdir().expect("tempdir");
    let paged = dir.path().join("paged.txt");
    let pager = format!("cat > {}", paged.display());
    // Not a terminal: straight to stdout.
    let plain = Command::new(bin())
        .arg("--config")
        .arg(&m.config)
        .arg("changes")
        .env("PAGER", &pager)
        .output()
        .expect("runs");
    assert!(ok(&plain).contains("first sync"));
    assert!(!paged.exists(), "paged without a terminal");
    // A terminal (util-linux `script` gives the command one).
    let command = format!(
        "PAGER='{pager}' {} --config {} changes",
        bin(),
        m.config.display()
    );
    let tty = on_a_terminal(&command);
    assert!(tty.status.success(), "{}", text(&tty.stdout));
    let through_pager = std::fs::read_to_string(&paged).expect("the pager ran");
    assert!(through_pager.contains("first sync"), "{through_pager}");
    // A pager that is not there: said, not a silent empty feed.
    let command = format!(
        "PAGER=no-such-pager-here {} --config {} changes; echo \"exit=$?\"",
        bin(),
        m.config.display()
    );
    let missing = on_a_terminal(&command);
    let screen = text(&missing.stdout);
    assert!(
        screen.contains("exit=2") && screen.contains("PAGER"),
        "{screen}"
    );
    assert!(
        !text(&tty.stdout).contains("first sync"),
        "{}",
        text(&tty.stdout)
    );
}

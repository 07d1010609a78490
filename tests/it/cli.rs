//! The README's commands that are not covered elsewhere: `demo` and `fake-api` with the
//! `curl` the README shows.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{bin, on_a_terminal, rows, run_demo, run_with, scalar, text};

#[test]
fn demo_syncs_changes_the_org_and_shows_what_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("demo.sqlite");
    let out = run_demo(&db, 60);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for expected in [
        "First sync",
        "Second sync",
        "renamed",
        "Who is in the renamed group now?",
        "rate_history",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let conn = rusqlite::Connection::open(&db).expect("open demo db");
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'"
        ),
        2
    );
    let second: Vec<Vec<String>> = rows(
        &conn,
        "SELECT DISTINCT entity, op FROM change_events WHERE sync_run_id = 2 ORDER BY 1, 2",
    );
    for (entity, op) in [
        ("group", "update"),
        ("group_membership", "delete"),
        ("group_membership", "insert"),
        ("user", "delete"),
        ("user", "insert"),
        ("user_rate", "update"),
    ] {
        assert!(
            second.contains(&vec![entity.to_string(), op.to_string()]),
            "no {entity} {op} in run 2: {second:?}"
        );
    }
    // A second demo replaces the first database rather than adding to it.
    let again = run_demo(&db, 20);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let conn = rusqlite::Connection::open(&db).expect("open demo db");
    assert_eq!(scalar(&conn, "SELECT count(*) FROM sync_runs"), 2);
}

#[test]
fn demo_refuses_to_replace_a_file_that_is_not_a_mirror() {
    let dir = tempfile::tempdir().expect("tempdir");
    let precious = dir.path().join("precious.sqlite");
    std::fs::write(&precious, "not a database").expect("write");
    let out = Command::new(bin())
        .args(["demo", "--db"])
        .arg(&precious)
        .output()
        .expect("demo runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not an orgmirror database"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&precious).expect("still there"),
        "not a database"
    );
    // Nor another program's SQLite database, which sets no application id.
    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .expect("create")
        .execute_batch("CREATE TABLE users (id, foo); INSERT INTO users VALUES (1, 'keep me');")
        .expect("fill");
    let out = Command::new(bin())
        .args(["demo", "--db"])
        .arg(&other)
        .output()
        .expect("demo runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let conn = rusqlite::Connection::open(&other).expect("open");
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM users WHERE foo = 'keep me'"),
        1
    );
    // Nor a real organization's mirror (one whose users are not the fake's).
    let real = dir.path().join("real.sqlite");
    // A sync that reaches no server still creates the mirror (and records its failed run).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let config = dir.path().join("real.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = \"http://127.0.0.1:{port}/api\"\norganization_id = 1\n\
             workspace_id = 1\nmax_attempts = 1\n[database]\npath = {:?}\n",
            real.display().to_string()
        ),
    )
    .expect("config");
    let out = run_with(&config, &["sync"], &[("TOGGL_API_TOKEN", "demo-token")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    rusqlite::Connection::open(&real)
        .expect("open")
        .execute_batch(
            "INSERT INTO users (organization_user_id, email) VALUES (7, 'ceo@example.org');",
        )
        .expect("a user");
    let out = Command::new(bin())
        .args(["demo", "--db"])
        .arg(&real)
        .output()
        .expect("demo runs");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not a demo database"),
        "{}",
        text(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&real).expect("open");
    assert_eq!(scalar(&conn, "SELECT count(*) FROM users"), 1);
}

#[test]
fn fake_organizations_too_large_to_hold_are_refused_by_name() {
    for args in [
        &["demo", "--users", "18446744073709551615"][..],
        &["demo", "--users", "9"],
        &["fake-api", "--users", "1000001"],
    ] {
        let out = Command::new(bin()).args(args).output().expect("runs");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("users"), "{args:?}: {stderr}");
    }
}

#[test]
fn fake_api_prints_its_settings_and_answers_the_readme_curl() {
    let mut child = Command::new(bin())
        .args(["fake-api", "--listen", "127.0.0.1:0", "--users", "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fake-api starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut settings = std::collections::BTreeMap::new();
    // Nine lines: the key and the profile joined the seven (a pipe closed early would end
    // the server on its next line).
    for line in BufReader::new(stdout).lines().take(9) {
        let line = line.expect("line");
        if let Some((k, v)) = line.split_once('=') {
            settings.insert(k.to_string(), v.to_string());
        }
    }
    let base = settings.get("base_url").cloned().unwrap_or_default();
    let curl = Command::new("curl")
        .args(["-s", "-u", "demo-token:api_token"])
        .arg(format!(
            "{base}/organizations/1001/users?page=1&per_page=2&include_rates=true"
        ))
        .output();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        settings.get("organization_id").map(String::as_str),
        Some("1001"),
        "{settings:?}"
    );
    assert_eq!(
        settings.get("workspace_id").map(String::as_str),
        Some("2001")
    );
    assert_eq!(
        settings.get("api_token").map(String::as_str),
        Some("demo-token")
    );
    assert_eq!(
        settings.get("email").map(String::as_str),
        Some("demo@example.com")
    );
    assert_eq!(
        settings.get("password").map(String::as_str),
        Some("demo-password")
    );
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/api"),
        "{base}"
    );
    let curl = curl.expect("curl is installed (the README's example uses it)");
    let body: serde_json::Value = serde_json::from_slice(&curl.stdout).expect("JSON from the fake");
    // The default (focus) profile answers the users list as a bare array.
    let items = body.as_array().expect("an array");
    assert_eq!(items.len(), 2);
    assert!(items[0]["rate"].is_object(), "{}", items[0]);
}

#[test]
fn sync_shows_progress_per_entity_on_a_terminal_only() {
    let m = crate::support::Mirror::new(30);
    // Not a terminal: no progress line on stderr.
    let plain = m.run(&["sync"]);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    assert!(
        !text(&plain.stderr).contains(" page "),
        "{}",
        text(&plain.stderr)
    );
    // A terminal (util-linux `script` gives the command a pseudo-terminal).
    let command = format!(
        "TOGGL_API_TOKEN=demo-token {} --config {} sync",
        bin(),
        m.config.display()
    );
    let tty = on_a_terminal(&command);
    let screen = text(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    for entity in ["roles", "teams", "users"] {
        assert!(
            screen
                .lines()
                .any(|l| l.contains(entity) && l.contains(" page ") && l.contains("requests")),
            "no progress line for {entity} in:\n{screen}"
        );
    }
}

/// `fake-api --key-expires-after 2`: the key answers two requests, then the JSON 401 of an
/// expired key (`Ns` counts seconds instead; a bad value is refused by name).
#[test]
fn fake_api_key_expires_after_its_requests() {
    let mut child = Command::new(bin())
        .args(["fake-api", "--listen", "127.0.0.1:0", "--users", "5"])
        .args(["--key-expires-after", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fake-api starts");
    let stdout = child.stdout.take().expect("stdout");
    // All nine lines: a pipe closed early would end the server on its next line.
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(9)
        .map_while(Result::ok)
        .collect();
    let base = lines
        .iter()
        .find_map(|l| l.strip_prefix("base_url="))
        .unwrap_or_default()
        .to_string();
    let roles = || {
        Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-H"])
            .arg("Authorization: Bearer toggl_sk_demo")
            .arg(format!("{base}/organizations/1001/roles"))
            .output()
            .map(|o| text(&o.stdout))
    };
    let answers: Vec<String> = (0..3).map(|_| roles().unwrap_or_default()).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        answers[0].ends_with("\n200") && answers[1].ends_with("\n200"),
        "{answers:?}"
    );
    let (body, status) = answers[2].rsplit_once('\n').expect("status line");
    assert_eq!(status, "401", "{body}");
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON 401");
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(body["error_description"], "API key expired");
    assert!(body["trace_id"].is_string(), "{body}");

    let bad = Command::new(bin())
        .args(["fake-api", "--key-expires-after", "soon"])
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("--key-expires-after"),
        "{}",
        text(&bad.stderr)
    );
}

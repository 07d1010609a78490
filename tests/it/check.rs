//! `check`'s compatibility report, as snapshots (`tests/it/snapshots/`, the fake's address
//! and the temp dir masked), and the one verdict a wrong value gets.
//!
//! A snapshot that differs fails the test; `UPDATE_SNAPSHOTS=1 cargo test --test it check::`
//! rewrites the files (review the diff before committing it).

use std::path::Path;
use std::process::Output;

use orgmirror::fake::FakeOptions;

use crate::support::{run_with as run, text, Mirror};

/// Compares `actual` with `tests/it/snapshots/NAME`, or rewrites it with `UPDATE_SNAPSHOTS`.
fn assert_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("snapshot dir")).expect("mkdir");
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (UPDATE_SNAPSHOTS=1 writes it)\nactual:\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from line {}:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display(),
            first + 1
        );
    }
}

/// Stdout, stderr and the exit status with the variable parts masked.
fn masked(m: &Mirror, out: &Output) -> String {
    let dir = m.db.parent().expect("temp dir").display().to_string();
    let all = format!(
        "exit status: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    all.replace(&m.fake.base_url(), "<base_url>")
        .replace(&dir, "<dir>")
}

const TOKEN: &[(&str, &str)] = &[("TOGGL_API_TOKEN", "demo-token")];

#[test]
fn check_reports_how_the_api_answers() {
    let m = Mirror::new(30);
    // A field the models do not know, at the top and inside a nested object.
    let org = m.fake.handle();
    org.add_unknown_field("user", "seat_type", serde_json::json!("full"));
    org.add_unknown_field("group", "color", serde_json::json!("#ff0000"));
    let out = run(&m.config, &["check"], TOKEN);
    assert!(out.status.success(), "{}", masked(&m, &out));
    assert!(org.request_count() <= 5, "{} requests", org.request_count());
    assert!(!m.db.exists(), "check created the database");
    assert_snapshot("check.txt", &masked(&m, &out));

    // --json gives the same as one document.
    org.clear_requests();
    let out = run(&m.config, &["check", "--json"], TOKEN);
    assert!(out.status.success(), "{}", masked(&m, &out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["verdict"], "all good");
    let lists = doc["compatibility"]["lists"].as_array().expect("lists");
    let users = lists
        .iter()
        .find(|l| l["endpoint"] == "users")
        .expect("users");
    assert_eq!(users["unknown_fields"], serde_json::json!(["seat_type"]));
    assert_eq!(
        doc["compatibility"]["requests"].as_u64(),
        Some(org.request_count() as u64)
    );
    assert_snapshot("check.json", &masked(&m, &out));
}

#[test]
fn one_wrong_value_gets_one_verdict() {
    let m = Mirror::with(
        FakeOptions {
            users: 8,
            ..Default::default()
        },
        "",
    );
    let config = std::fs::read_to_string(&m.config).expect("config");
    let dir = m.db.parent().expect("temp dir");
    let variant = |name: &str, from: &str, to: &str| {
        assert!(config.contains(from), "{from} not in {config}");
        let path = dir.join(name);
        std::fs::write(&path, config.replace(from, to)).expect("write config");
        path
    };
    let cases = [
        (
            "workspace id",
            variant("ws.toml", "workspace_id = 2001", "workspace_id = 999"),
            TOKEN,
            ("api.workspace_id = 999", "the groups are listed"),
        ),
        (
            "organization id",
            variant(
                "org.toml",
                "organization_id = 1001",
                "organization_id = 1002",
            ),
            TOKEN,
            ("organization 1002", "organization"),
        ),
        (
            "credentials",
            m.config.clone(),
            &[("TOGGL_API_TOKEN", "not-the-token")][..],
            ("refused the credentials", "accepted the credentials"),
        ),
    ];
    let mut snapshot = String::new();
    // Each case: what the verdict names, and the start of the "ok:" line that would
    // contradict it.
    for (what, config, env, (subject, contradiction)) in cases {
        let out = run(&config, &["check"], env);
        let stdout = text(&out.stdout);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        // One verdict: one line on stderr, and no "ok:" line about the same thing.
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(stderr.contains(subject), "{what}: {stderr}");
        for line in stdout.lines() {
            assert!(
                !line.contains(contradiction),
                "{what}: an ok line about the same thing: {line}\n{stderr}"
            );
        }
        assert!(
            !(stdout.contains("accepted the credentials")
                && stderr.contains("refused the credentials")),
            "{what}: the credentials both accepted and refused:\n{stdout}{stderr}"
        );
        assert!(!stdout.contains("all good"), "{what}: {stdout}");
        snapshot.push_str(&format!("=== wrong {what}\n{}\n", masked(&m, &out)));
    }
    assert_snapshot("check-wrong-values.txt", &snapshot);
}

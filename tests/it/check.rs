//! `check`'s compatibility report, as snapshots (`tests/it/snapshots/`, the fake's address
//! and the temp dir masked), and the one verdict a wrong value gets.
//!
//! A snapshot that differs fails the test; `UPDATE_SNAPSHOTS=1 cargo test --test it check::`
//! rewrites the files (review the diff before committing it).

use std::path::Path;
use std::process::Output;

use orgmirror_fake::{FakeOptions, FakeProfile, QuotaConfig};

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

/// Stdout, stderr and the exit status with the variable parts masked: the temp dir, the
/// fake's address and the seconds until its quota window resets.
fn masked(m: &Mirror, out: &Output) -> String {
    let dir = m.db.parent().expect("temp dir").display().to_string();
    let all = format!(
        "exit status: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    let all = all
        .replace(&m.fake.base_url(), "<base_url>")
        .replace(&dir, "<dir>");
    let all = [
        "X-Toggl-Quota-Resets-In: ",
        "\"x-toggl-quota-resets-in\": \"",
    ]
    .iter()
    .fold(all, |text, marker| digits_masked_after(&text, marker));
    let all = trace_ids_masked(&all);
    // A log line's time.
    all.lines()
        .map(|line| match line.split_once("Z ") {
            Some((time, rest)) if time.len() < 32 && time.starts_with("20") => {
                format!("<time> {rest}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect()
}

/// `text` with each `trace_id` (32 hex digits, new at every answer) masked.
fn trace_ids_masked(text: &str) -> String {
    let marker = "trace_id ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let after = at + marker.len();
        out.push_str(&rest[..after]);
        let hex = rest[after..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len() - after);
        out.push_str(if hex == 32 {
            "<trace_id>"
        } else {
            &rest[after..after + hex]
        });
        rest = &rest[after + hex..];
    }
    out.push_str(rest);
    out
}

/// `text` with the digits that follow each `marker` replaced by `<s>`.
fn digits_masked_after(text: &str, marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let after = at + marker.len();
        out.push_str(&rest[..after]);
        out.push_str("<s>");
        rest = rest[after..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

const TOKEN: &[(&str, &str)] = &[("TOGGL_API_TOKEN", "demo-token")];
const FOCUS_KEY: &[(&str, &str)] = &[("TOGGL_API_TOKEN", orgmirror_fake::DEMO_API_KEY)];
const LOGIN: &[(&str, &str)] = &[
    ("TOGGL_EMAIL", orgmirror_fake::DEMO_EMAIL),
    ("TOGGL_PASSWORD", "demo-password"),
];

/// A fake with a quota, fields the models do not know (at the top of a user and of a
/// group), and a config asking 200 rows a page.
fn witness(profile: FakeProfile) -> Mirror {
    let m = Mirror::with(
        FakeOptions {
            users: 30,
            profile,
            quota: Some(QuotaConfig {
                limit: 30,
                window: std::time::Duration::from_secs(3600),
            }),
            ..Default::default()
        },
        "per_page = 200",
    );
    let org = m.fake.handle();
    org.add_unknown_field("user", "seat_type", serde_json::json!("full"));
    org.add_unknown_field("group", "color", serde_json::json!("#ff0000"));
    m
}

#[test]
fn check_reports_how_the_focus_api_answers() {
    let m = witness(FakeProfile::Focus);
    let org = m.fake.handle();
    let out = run(&m.config, &["check"], FOCUS_KEY);
    assert!(out.status.success(), "{}", masked(&m, &out));
    // My groups, the roles, the users (refused at 200, then at 100), the teams (at 100
    // at once), one user by id, in the published form the focus profile honours, and the
    // last five minutes of the audit log.
    assert_eq!(org.request_count(), 7);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("users are asked for by id as org_user_ids=1,2 (the published form)"),
        "{stdout}"
    );
    assert!(!m.db.exists(), "check created the database");
    // The report names the refused size; check remembers nothing, so no warning says it
    // is "remembered in the database".
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("page size"), "{stderr}");
    assert_snapshot("check-focus.txt", &masked(&m, &out));

    // --json gives the same as one document.
    org.clear_requests();
    let out = run(&m.config, &["check", "--json"], FOCUS_KEY);
    assert!(out.status.success(), "{}", masked(&m, &out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["verdict"], "all good");
    let compat = &doc["compatibility"];
    assert_eq!(compat["auth"]["scheme"], "Bearer");
    assert_eq!(compat["page_size"]["refused"], serde_json::json!([200]));
    assert_eq!(compat["page_size"]["accepted"], 100);
    let lists = compat["lists"].as_array().expect("lists");
    let users = lists
        .iter()
        .find(|l| l["endpoint"] == "users")
        .expect("users");
    assert_eq!(users["unknown_fields"], serde_json::json!(["seat_type"]));
    assert_eq!(
        compat["requests"].as_u64(),
        Some(org.request_count() as u64)
    );
    assert_snapshot("check-focus.json", &masked(&m, &out));

    // Once a sync has learned the page size, check asks it at once, as the next sync would.
    m.sync_ok();
    org.clear_requests();
    let out = run(&m.config, &["check"], FOCUS_KEY);
    assert!(out.status.success(), "{}", masked(&m, &out));
    let refused: Vec<_> = org
        .requests()
        .into_iter()
        .filter(|r| r.status == 400)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(org.request_count(), 6, "five and the audit log's");
}

#[test]
fn check_reports_how_the_seed_api_answers() {
    let m = witness(FakeProfile::Seed);
    let out = run(&m.config, &["check"], LOGIN);
    assert!(out.status.success(), "{}", masked(&m, &out));
    // The seed profile ignores the published form of the id filter: one request more.
    assert!(m.fake.handle().request_count() <= 7);
    assert!(
        text(&out.stdout)
            .contains("as org_user_ids[]=1&org_user_ids[]=2 (the reference page's form"),
        "{}",
        text(&out.stdout)
    );
    assert_snapshot("check-seed.txt", &masked(&m, &out));
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

    // --json: the same verdict in the document, beside what the answers showed.
    let out = run(&dir.join("ws.toml"), &["check", "--json"], TOKEN);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit"], 2);
    let verdict = doc["verdict"].as_str().unwrap_or_default();
    assert!(verdict.contains("api.workspace_id = 999"), "{verdict}");
    assert_eq!(doc["compatibility"]["auth"]["accepted"], true);
}

#[test]
fn check_reports_a_spent_quota_at_once() {
    let m = Mirror::with(
        FakeOptions {
            users: 5,
            quota: Some(QuotaConfig {
                limit: 2,
                // Short, so that a check that waits for the reset fails the bound below
                // rather than hang the suite.
                window: std::time::Duration::from_secs(45),
            }),
            ..Default::default()
        },
        "",
    );
    let started = std::time::Instant::now();
    let out = run(&m.config, &["check"], TOKEN);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("quota is spent"), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "check waited for the quota: {:?}",
        started.elapsed()
    );
}

//! `sync --capture DIR` and `fake-api --replay DIR`: a recording of a sync, served back by
//! the real binary, syncs a new database to the same mirror; no credential is recorded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use orgmirror_fake::FakeOptions;

use crate::support::{bin, ok, rows, run_with, text, Mirror};

/// `orgmirror fake-api --replay DIR` on port 0, killed when dropped.
pub struct Replaying {
    child: Child,
    pub base_url: String,
    /// The `key=value` lines it printed.
    pub settings: std::collections::BTreeMap<String, String>,
}

impl Replaying {
    pub fn start(dir: &Path) -> Replaying {
        let mut child = Command::new(bin())
            .args(["fake-api", "--listen", "127.0.0.1:0", "--replay"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("fake-api --replay starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut settings = std::collections::BTreeMap::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            if let Some((k, v)) = line.split_once('=') {
                settings.insert(k.to_string(), v.to_string());
            }
            if line.starts_with("answers=") {
                break;
            }
        }
        let base_url = settings
            .get("base_url")
            .cloned()
            .unwrap_or_else(|| panic!("no base_url from fake-api --replay: {settings:?}"));
        Replaying {
            child,
            base_url,
            settings,
        }
    }
}

impl Drop for Replaying {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config in `dir` pointing at `base_url`, with its own database.
fn config_for(dir: &Path, base_url: &str) -> (PathBuf, PathBuf) {
    let db = dir.join("replayed.sqlite");
    let config = dir.join("replayed.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = {base_url:?}\norganization_id = 1001\nworkspace_id = 2001\n\
             initial_backoff = \"10ms\"\nmax_backoff = \"50ms\"\nmax_requests_per_second = 0\n\n[database]\npath = {:?}\n",
            db.display().to_string()
        ),
    )
    .expect("write config");
    (config, db)
}

/// What the contract views say, without the times a run observed things at.
fn contract(db: &Path) -> Vec<Vec<Vec<String>>> {
    let conn = rusqlite::Connection::open(db).expect("open");
    [
        "SELECT * FROM users_current ORDER BY organization_user_id",
        "SELECT * FROM groups_current ORDER BY group_id",
        "SELECT * FROM group_members_current ORDER BY 1, 2",
        "SELECT * FROM roles_current ORDER BY role_id",
        "SELECT * FROM role_permissions_current ORDER BY 1, 2",
        "SELECT group_id, organization_user_id, valid_to IS NULL FROM group_membership_history ORDER BY 1, 2",
        "SELECT organization_user_id, hourly_rate, currency, valid_to IS NULL FROM rate_history ORDER BY 1",
        "SELECT entity, entity_id, op, changed_fields, after_json FROM change_events ORDER BY event_id",
    ]
    .iter()
    .map(|sql| rows(&conn, sql))
    .collect()
}

#[test]
fn a_captured_sync_replayed_through_fake_api_syncs_to_the_same_mirror() {
    let m = Mirror::new(40);
    let capture = m.db.with_file_name("capture");
    let out = m.run(&["sync", "--capture", capture.to_str().expect("utf-8 path")]);
    ok(&out);
    let served = m.fake.handle().request_count();
    assert!(
        text(&out.stderr).contains(&format!("captured {served} answers in")),
        "{}",
        text(&out.stderr)
    );
    let files = std::fs::read_dir(&capture).expect("capture dir").count();
    assert_eq!(files, 2 * served, "a file pair per answer");
    // The README's packing for a bug report.
    let dir = m.db.parent().expect("temp dir");
    let tar = Command::new("tar")
        .current_dir(dir)
        .args(["czf", "capture.tar.gz", "capture/"])
        .output()
        .expect("tar runs");
    assert!(tar.status.success(), "{}", text(&tar.stderr));
    let listed = Command::new("tar")
        .current_dir(dir)
        .args(["tzf", "capture.tar.gz"])
        .output()
        .expect("tar runs");
    assert!(
        text(&listed.stdout).contains("capture/0001.json"),
        "{}",
        text(&listed.stdout)
    );

    let replay = Replaying::start(&capture);
    assert_eq!(
        replay.settings.get("organization_id").map(String::as_str),
        Some("1001")
    );
    let (config, db) = config_for(m.db.parent().expect("temp dir"), &replay.base_url);
    // Any token: the recording holds none, so the replay checks none.
    ok(&run_with(
        &config,
        &["sync"],
        &[("TOGGL_API_TOKEN", "another-token")],
    ));
    let original = contract(&m.db);
    assert!(!original[0].is_empty(), "the original mirror has users");
    assert_eq!(contract(&db), original);

    // A request the recording does not hold is a 404 naming it, in JSON.
    let curl = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .arg(format!(
            "{}/organizations/1001/users?page=99",
            replay.base_url
        ))
        .output()
        .expect("curl runs");
    let answer = text(&curl.stdout);
    let (body, status) = answer.rsplit_once('\n').expect("status line");
    assert_eq!(status, "404", "{answer}");
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON error");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("GET /api/organizations/1001/users?page=99")),
        "{body}"
    );
}

#[test]
fn no_credential_is_ever_recorded() {
    // A Focus API key, sent as Bearer.
    const TOKEN: &str = "toggl_sk_Capture-7f3a-secret";
    let m = Mirror::with(
        FakeOptions {
            users: 12,
            api_key: TOKEN.to_string(),
            ..Default::default()
        },
        "",
    );
    // A server that echoes the credential in its answers: the capture scrubs it.
    m.fake
        .handle()
        .add_unknown_field("user", "echo", serde_json::json!(format!("sent {TOKEN}")));
    let capture = m.db.with_file_name("capture");
    ok(&run_with(
        &m.config,
        &["sync", "--capture", capture.to_str().expect("utf-8 path")],
        &[("TOGGL_API_TOKEN", TOKEN)],
    ));
    // And the answers to refused credentials.
    let refused = m.db.with_file_name("refused");
    let out = run_with(
        &m.config,
        &["sync", "--capture", refused.to_str().expect("utf-8 path")],
        &[("TOGGL_API_TOKEN", "wrong-Capture-token-91")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    let basic = crate::support::base64_of(&format!("{TOKEN}:api_token"));
    let wrong_basic = crate::support::base64_of("wrong-Capture-token-91:api_token");
    let mut bodies_with_echo = 0;
    for dir in [&capture, &refused] {
        let entries: Vec<_> = std::fs::read_dir(dir).expect("capture dir").collect();
        assert!(!entries.is_empty(), "{} is empty", dir.display());
        for entry in entries {
            let path = entry.expect("entry").path();
            let content = text(&std::fs::read(&path).expect("read"));
            for secret in [TOKEN, &basic, "wrong-Capture-token-91", &wrong_basic] {
                if let Some(at) = content.find(secret) {
                    let around: String = content[at..].chars().take(100).collect();
                    panic!("{} holds a credential: …{around}…", path.display());
                }
            }
            assert!(
                !content.to_ascii_lowercase().contains("authorization"),
                "{} names the Authorization header: {content}",
                path.display()
            );
            bodies_with_echo += usize::from(content.contains("sent [redacted]"));
        }
    }
    assert!(
        bodies_with_echo > 0,
        "the echoed token was not in the capture at all"
    );
}

#[test]
fn a_capture_goes_only_into_a_new_or_empty_directory() {
    let m = Mirror::new(5);
    let used = m.db.with_file_name("used");
    std::fs::create_dir(&used).expect("mkdir");
    std::fs::write(used.join("notes.txt"), "mine").expect("write");
    let out = m.run(&["sync", "--capture", used.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is not empty"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(m.fake.handle().request_count(), 0, "nothing was asked");
    assert!(!m.db.exists(), "nothing was written");
}

#[test]
fn replaying_a_directory_without_a_recording_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (what, path) in [
        ("empty", dir.path().to_path_buf()),
        ("missing", dir.path().join("nowhere")),
    ] {
        let out = Command::new(bin())
            .args(["fake-api", "--listen", "127.0.0.1:0", "--replay"])
            .arg(&path)
            .output()
            .expect("fake-api runs");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{what}: {stderr}"
        );
    }
}

//! The mirror's own health, end to end: health rules on a real daemon against the fake
//! (a key that expires after N requests, runs that hang), a webhook receiver, kill -9,
//! `status --check` in every state, and `mirror_freshness` read by Python's sqlite3.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use orgmirror_fake::{FakeOptions, Fault, FaultKind, KeyExpiry, Route};
use serde_json::Value;

use super::alerts::{expected_signature, Answer, Hit, Receiver, SECRET};
use super::{append_config, command, dir_of, live_scalar, succeeded_runs, wait_until, Daemon};
use crate::support::{ok, text, Mirror};

/// A health rule `on` these kinds, signed with the `hooks` secret.
fn health_rule(url: &str, on: &str, extra: &str) -> String {
    format!(
        "[[alert]]\nname = \"mirror down\"\non = {on}\nwebhook = \"{url}\"\nsecret_credential = \"hooks\"\n{extra}\n"
    )
}

/// `orgmirror ARGS` with the alert secret, and the token when given (else none: the key file).
fn orgmirror(m: &Mirror, args: &[&str], token: Option<&str>) -> Command {
    let mut c = command(&m.config, args, token);
    c.env("ORGMIRROR_SECRET_HOOKS", SECRET);
    c
}

fn run(m: &Mirror, args: &[&str]) -> std::process::Output {
    orgmirror(m, args, Some("demo-token"))
        .output()
        .expect("binary runs")
}

/// A mirror that reads its key from the file `key` beside its config (`api.token_file`).
fn keyed_mirror(users: usize) -> Mirror {
    let m = Mirror::with(
        FakeOptions {
            users,
            ..Default::default()
        },
        "token_file = \"key\"\n",
    );
    write_key(&m, "toggl_sk_demo");
    m
}

/// Replaces the key file as `install` or an editor would: a new file renamed over it.
fn write_key(m: &Mirror, key: &str) {
    let dir = dir_of(m);
    let new = dir.join("key.new");
    std::fs::write(&new, format!("{key}\n")).expect("write the key");
    std::fs::rename(&new, dir.join("key")).expect("replace the key file");
}

fn failed_runs(db: &Path) -> i64 {
    live_scalar(db, "SELECT count(*) FROM sync_runs WHERE status = 'failed'")
}

/// The health alerts a receiver got, as JSON, each checked against its signature.
fn alerts(receiver: &Receiver) -> Vec<(Hit, Value)> {
    receiver
        .hits()
        .into_iter()
        .map(|hit| {
            assert_eq!(
                hit.signature.as_deref(),
                Some(expected_signature(&hit.body).as_str()),
                "{hit:?}"
            );
            let body = serde_json::from_str(&hit.body).expect("JSON body");
            (hit, body)
        })
        .collect()
}

fn kinds(receiver: &Receiver) -> Vec<String> {
    alerts(receiver)
        .iter()
        .map(|(_, body)| body["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Lines of the daemon's log at `level` that contain `words`.
fn log_lines(log: &str, level: &str, words: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(&format!(" {level} ")) && l.contains(words))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_daemon_tells_once_that_its_key_expired_and_once_that_a_new_key_file_fixed_it() {
    let m = keyed_mirror(20);
    let receiver = Receiver::start(&[]);
    append_config(
        &m,
        &format!(
            "{}\n[schedule]\ncron = \"*/1 * * * * *\"\nrun_at_start = true",
            health_rule(&receiver.url(), "[\"failing\", \"recovered\"]", "")
        ),
    );
    ok(&orgmirror(&m, &["sync"], None).output().expect("sync"));
    let per_sync = live_scalar(&m.db, "SELECT requests FROM sync_runs");
    assert!(per_sync > 0);
    // The key answers one more sync (the daemon's first run), then it has expired.
    let org = m.fake.handle();
    org.expire_key_after(Some(KeyExpiry::Requests(per_sync as u64)));
    let mut d = Daemon::spawn(dir_of(&m), orgmirror(&m, &["run"], None));
    wait_until(
        Duration::from_secs(60),
        "three failed ticks and the failing alert",
        || failed_runs(&m.db) >= 3 && kinds(&receiver).iter().any(|k| k == "failing"),
    );
    let failed_when_told = failed_runs(&m.db);
    wait_until(Duration::from_secs(60), "two more failed ticks", || {
        failed_runs(&m.db) >= failed_when_told + 2
    });
    assert_eq!(
        kinds(&receiver),
        ["failing"],
        "one alert, not one per failed run"
    );
    assert_eq!(
        succeeded_runs(&m.db),
        2,
        "the sync and the daemon's first run"
    );
    let (hit, failing) = alerts(&receiver).remove(0);
    assert_eq!(failing["rule"], "mirror down");
    assert_eq!(failing["failed_runs"], 3, "{failing}");
    assert!(
        failing["reason"]
            .as_str()
            .is_some_and(|r| r.contains("API key expired") && r.contains("401")),
        "the server's reason: {failing}"
    );
    assert!(
        failing["hint"]
            .as_str()
            .is_some_and(|h| h.contains("make a new Focus API key")),
        "{failing}"
    );
    assert_eq!(failing["exit_status"], 2, "a person must fix it: {failing}");
    assert!(failing["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("401")));
    assert_eq!(failing["mirror"], m.db.display().to_string());
    assert!(failing["host"].as_str().is_some_and(|h| !h.is_empty()));
    let since = failing["since"].as_str().expect("the last success");
    assert_eq!(
        since,
        text(
            &Command::new("sqlite3")
                .arg(&m.db)
                .arg("SELECT max(finished_at) FROM sync_runs WHERE status = 'succeeded'")
                .output()
                .expect("sqlite3")
                .stdout
        )
        .trim()
    );
    assert!(hit.key.starts_with("health-failing-after-run-"), "{hit:?}");
    // No personal data: no name or e-mail of the organization is in it.
    for id in org.user_ids() {
        let user = org.user(id).expect("user");
        assert!(!hit.body.contains(&user.name) && !hit.body.contains(&user.email));
    }

    // A new key, and its file replaced: the next tick uses it and succeeds.
    org.expire_key_after(None);
    org.set_api_key("toggl_sk_renewed");
    write_key(&m, "toggl_sk_renewed");
    let before = succeeded_runs(&m.db);
    wait_until(
        Duration::from_secs(60),
        "a success and the recovered alert",
        || succeeded_runs(&m.db) > before && kinds(&receiver).len() == 2,
    );
    let after = succeeded_runs(&m.db);
    wait_until(Duration::from_secs(60), "two more successful ticks", || {
        succeeded_runs(&m.db) >= after + 2
    });
    assert_eq!(kinds(&receiver), ["failing", "recovered"]);
    let (_, recovered) = alerts(&receiver).remove(1);
    assert_eq!(recovered["since"], since, "{recovered}");
    assert!(
        recovered["failed_runs"].as_i64().unwrap() >= 5,
        "{recovered}"
    );
    assert!(
        recovered["outage_seconds"].as_i64().is_some(),
        "{recovered}"
    );
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(15)).success());

    // The journal: the first failure loudly with what to do, the same again quietly with
    // its count, the recovery with the outage's length.
    let log = d.log();
    let first = log_lines(&log, "ERROR", "sync failed");
    assert_eq!(first.len(), 1, "{log}");
    assert!(
        first[0].contains("make a new Focus API key"),
        "{}",
        first[0]
    );
    assert_eq!(
        log_lines(&log, "WARN", "3rd failed run in a row: same error").len(),
        1,
        "{log}"
    );
    let recovery = log_lines(&log, "INFO", "recovered after");
    assert_eq!(recovery.len(), 1, "{log}");
    assert!(recovery[0].contains("outage_seconds="), "{}", recovery[0]);
}

#[test]
fn a_daemon_whose_runs_hang_sends_stale_without_a_run_finishing() {
    // Requests that hang outlast the test: no run of the daemon finishes.
    let m = Mirror::with(
        FakeOptions {
            users: 15,
            ..Default::default()
        },
        "request_timeout = \"300s\"\n",
    );
    let receiver = Receiver::start(&[]);
    append_config(
        &m,
        &format!(
            "{}\n[schedule]\ncron = \"*/2 * * * * *\"\nrun_at_start = true\nshutdown_timeout = \"1s\"",
            health_rule(&receiver.url(), "[\"stale\", \"recovered\"]", "")
        ),
    );
    ok(&run(&m, &["sync"]));
    let org = m.fake.handle();
    org.inject(Fault::new(Route::Any, FaultKind::Hang));
    let mut d = Daemon::spawn(dir_of(&m), orgmirror(&m, &["run"], Some("demo-token")));
    wait_until(Duration::from_secs(60), "the stale alert", || {
        !receiver.hits().is_empty()
    });
    let finished = "SELECT count(*) FROM sync_runs WHERE sync_run_id > 1 AND status <> 'running'";
    assert_eq!(
        live_scalar(&m.db, finished),
        0,
        "no run of the daemon finished"
    );
    assert_eq!(
        live_scalar(
            &m.db,
            "SELECT count(*) FROM sync_runs WHERE status = 'running'"
        ),
        1
    );
    let (_, stale) = alerts(&receiver).remove(0);
    assert_eq!(stale["kind"], "stale", "{stale}");
    // Three schedule intervals of two seconds: the default.
    assert_eq!(stale["stale_after_seconds"], 6, "{stale}");
    assert!(stale["age_seconds"].as_i64().unwrap() > 6, "{stale}");
    assert_eq!(stale["last_status"], "running");
    assert!(
        stale["hint"]
            .as_str()
            .is_some_and(|h| h.contains("a run has been going since")),
        "{stale}"
    );
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(15)).success(), "{}", d.log());
    assert_eq!(
        log_lines(&d.log(), "ERROR", "the mirror is stale").len(),
        1,
        "{}",
        d.log()
    );
    assert_eq!(kinds(&receiver), ["stale"], "once");

    // The API answers again: the next daemon's first run succeeds, and says so once.
    org.clear_faults();
    let mut d = Daemon::spawn(dir_of(&m), orgmirror(&m, &["run"], Some("demo-token")));
    wait_until(Duration::from_secs(60), "the recovered alert", || {
        receiver.hits().len() == 2
    });
    let ok_runs = succeeded_runs(&m.db);
    wait_until(Duration::from_secs(30), "two more runs", || {
        succeeded_runs(&m.db) >= ok_runs + 2
    });
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(15)).success());
    assert_eq!(kinds(&receiver), ["stale", "recovered"]);
}

#[test]
fn kill_9_between_a_health_alerts_commit_and_its_delivery_delivers_it_once_after_restart() {
    let m = Mirror::new(10);
    // The first attempt hangs: the alert is committed and being delivered.
    let receiver = Receiver::start(&[Answer::Hang]);
    append_config(
        &m,
        &format!(
            "{}\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = true",
            health_rule(
                &receiver.url(),
                "[\"failing\"]",
                "failing_after = 1\ntimeout = \"60s\""
            )
        ),
    );
    ok(&run(&m, &["sync"]));
    m.fake
        .handle()
        .expire_key_after(Some(KeyExpiry::Requests(0)));
    let d = Daemon::spawn(dir_of(&m), orgmirror(&m, &["run"], Some("demo-token")));
    wait_until(Duration::from_secs(30), "the first attempt", || {
        !receiver.hits().is_empty()
    });
    d.signal(libc::SIGKILL);
    drop(d);
    let pending =
        "SELECT count(*) FROM alert_outbox WHERE health_kind = 'failing' AND delivered_at IS NULL";
    assert_eq!(
        live_scalar(&m.db, pending),
        1,
        "the alert survived the kill"
    );

    // The restarted daemon's run fails too (the same outage): nothing new is queued.
    let mut d = Daemon::spawn(dir_of(&m), orgmirror(&m, &["run"], Some("demo-token")));
    wait_until(
        Duration::from_secs(30),
        "the delivery after restart",
        || live_scalar(&m.db, pending) == 0,
    );
    wait_until(
        Duration::from_secs(30),
        "the restarted daemon's run",
        || failed_runs(&m.db) >= 2,
    );
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(15)).success());
    let hits = receiver.hits();
    assert_eq!(hits.len(), 2, "the hung attempt and one delivery: {hits:?}");
    assert_eq!(hits[0].key, hits[1].key, "the idempotency key is unchanged");
    assert_eq!(hits[0].body, hits[1].body);
    assert_eq!(
        live_scalar(
            &m.db,
            "SELECT count(*) FROM alert_outbox WHERE health_kind IS NOT NULL"
        ),
        1
    );
}

/// `status --check`'s line and exit status.
fn check(m: &Mirror) -> (i32, String) {
    let out = run(m, &["status", "--check"]);
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}

/// `mirror_freshness` as Python's sqlite3 reads it (read-only, as a BI reader would).
fn python_freshness(db: &Path) -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sqlite3, sys\n\
             c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
             c.row_factory = sqlite3.Row\n\
             print(json.dumps([dict(r) for r in c.execute('SELECT * FROM mirror_freshness')]))",
        ])
        .arg(db)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "one row: {rows}");
    rows[0].clone()
}

#[test]
fn status_check_exits_0_fresh_1_failing_or_stale_2_unreadable_and_python_reads_the_same() {
    let m = Mirror::new(10);
    // Every second: stale three seconds after the last success.
    append_config(&m, "[schedule]\ncron = \"*/1 * * * * *\"");
    let (code, line) = check(&m);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("UNKNOWN: cannot read the mirror: "),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");

    ok(&run(&m, &["sync"]));
    let (code, line) = check(&m);
    assert_eq!((code, line.lines().count()), (0, 1), "{line}");
    assert!(line.starts_with("ok: last success "), "{line}");
    let status = ok(&run(&m, &["status"]));
    assert!(
        status.starts_with("ok: last success "),
        "the first line: {status}"
    );

    let org = m.fake.handle();
    org.expire_key_after(Some(KeyExpiry::Requests(0)));
    assert_eq!(run(&m, &["sync"]).status.code(), Some(2));
    let (code, line) = check(&m);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with("FAILING: 1 run since ")
            && line.contains("API key expired (401) — make a new Focus API key"),
        "{line}"
    );
    let status = ok(&run(&m, &["status"]));
    assert_eq!(status.lines().next(), line.lines().next());
    let report: Value = serde_json::from_str(&ok(&run(&m, &["status", "--json"]))).unwrap();
    assert_eq!(report["verdict"]["state"], "failing");
    assert_eq!(report["verdict"]["line"], line.trim_end());
    let fresh = &report["freshness"];
    assert_eq!(fresh["consecutive_failures"], 1);
    assert_eq!(fresh["exit_status"], 2);
    assert_eq!(fresh["reason"], "API key expired (401)");
    // Python reads the same facts from the view.
    let py = python_freshness(&m.db);
    for column in [
        "last_success_at",
        "last_attempt_at",
        "last_status",
        "last_error",
        "consecutive_failures",
        "stale_after_seconds",
        "failing_since",
        "hint",
    ] {
        assert_eq!(py[column], fresh[column], "{column}: {py}");
    }
    assert_eq!(py["last_status"], "failed");
    assert_eq!(py["stale_after_seconds"], 3);
    assert!(py["age_seconds"].as_i64().is_some_and(|a| a >= 0), "{py}");

    org.expire_key_after(None);
    ok(&run(&m, &["sync"]));
    assert_eq!(check(&m).0, 0);
    wait_until(Duration::from_secs(30), "stale", || check(&m).0 == 1);
    let (_, line) = check(&m);
    assert!(line.starts_with("STALE: last success "), "{line}");
    let py = python_freshness(&m.db);
    assert_eq!(
        (py["stale"].as_i64(), py["consecutive_failures"].as_i64()),
        (Some(1), Some(0))
    );
    assert!(py["age_seconds"].as_i64().unwrap() > 3, "{py}");
    assert!(py["last_error"].is_null() && py["hint"].is_null(), "{py}");
    // The README's sqlite3 line says the same.
    let readme = include_str!("../../README.md");
    let line = readme
        .lines()
        .find(|l| {
            l.starts_with("sqlite3 -readonly /var/lib/orgmirror/org.sqlite 'SELECT last_success_at")
        })
        .expect("the README's freshness query");
    let sql = line.split('\'').nth(1).expect("quoted SQL");
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(&m.db)
        .arg(sql)
        .output()
        .expect("sqlite3");
    let shown = text(&out.stdout);
    let last_success = py["last_success_at"].as_str().expect("a success");
    assert!(
        shown.starts_with(last_success) && shown.trim_end().ends_with("|1|0"),
        "{shown}{}",
        text(&out.stderr)
    );
}

#[test]
fn alerts_test_sends_a_health_rules_sample_and_replay_refuses_it() {
    let m = Mirror::new(5);
    let receiver = Receiver::start(&[]);
    append_config(
        &m,
        &health_rule(
            &receiver.url(),
            "[\"stale\", \"recovered\"]",
            "stale_after = \"6h\"",
        ),
    );
    let out = ok(&run(&m, &["alerts", "test", "mirror down"]));
    assert!(out.contains("accepted"), "{out}");
    let hits = alerts(&receiver);
    assert_eq!(hits.len(), 1);
    let (hit, body) = &hits[0];
    assert!(hit.key.starts_with("test-"), "{hit:?}");
    assert_eq!(body["test"], true);
    assert_eq!(body["kind"], "stale");
    assert_eq!(body["stale_after_seconds"], 6 * 3600);
    assert_eq!(body["mirror"], m.db.display().to_string());
    let replay = run(
        &m,
        &["alerts", "replay", "mirror down", "--since", "2000-01-01"],
    );
    assert_eq!(replay.status.code(), Some(2));
    assert!(
        text(&replay.stderr).contains("\"mirror down\" is on the mirror's health"),
        "{}",
        text(&replay.stderr)
    );
    // A rule with both entity and on is refused naming it.
    append_config(
        &m,
        "[[alert]]\nname = \"both\"\nentity = \"user\"\non = [\"failing\"]\ncommand = [\"/bin/true\"]",
    );
    let bad = run(&m, &["status"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("[[alert]] \"both\": on: set either entity"),
        "{}",
        text(&bad.stderr)
    );
}

//! Alerts, metrics and the auto cadence, end to end: the real binary, a webhook
//! receiver (axum) and a command on 127.0.0.1, the fake, real SQLite files, promtool.

use std::collections::{BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use orgmirror_fake::{FakeOptions, Fault, FaultKind, QuotaConfig, Route};
use serde_json::Value;

use super::{append_config, command, live_scalar, succeeded_runs, wait_until, Daemon};
use crate::support::{ok, rows, scalar, text, Mirror};

// ---------------------------------------------------------------------------------------
// A webhook receiver

#[derive(Debug, Clone, Copy)]
pub(super) enum Answer {
    Status(u16),
    /// Never answers.
    Hang,
}

#[derive(Debug, Clone)]
pub(super) struct Hit {
    pub(super) key: String,
    pub(super) event: String,
    pub(super) signature: Option<String>,
    pub(super) body: String,
}

type Shared = (Arc<Mutex<Vec<Hit>>>, Arc<Mutex<VecDeque<Answer>>>);

/// A webhook receiver on 127.0.0.1 port 0 that answers from a plan (then 200).
pub(super) struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    plan: Arc<Mutex<VecDeque<Answer>>>,
}

impl Receiver {
    pub(super) fn start(plan: &[Answer]) -> Receiver {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let plan = Arc::new(Mutex::new(plan.iter().copied().collect::<VecDeque<_>>()));
        let state: Shared = (hits.clone(), plan.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr")).expect("send");
                let app = axum::Router::new()
                    .route("/hook", axum::routing::post(hook))
                    .with_state(state);
                let _ = axum::serve(listener, app).await;
            });
        });
        let addr = rx.recv().expect("receiver started");
        Receiver { addr, hits, plan }
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub(super) fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn answer_next(&self, plan: &[Answer]) {
        *self.plan.lock().unwrap() = plan.iter().copied().collect();
    }
}

async fn hook(
    State((hits, plan)): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    hits.lock().unwrap().push(Hit {
        key: header("idempotency-key").unwrap_or_default(),
        event: header("x-orgmirror-event").unwrap_or_default(),
        signature: header("x-orgmirror-signature"),
        body,
    });
    let answer = plan
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(200));
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::OK)
            .into_response(),
        Answer::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
    }
}

pub(super) const SECRET: &str = "s3cret-for-tests";

/// `sha256=<hex>`, computed here with the hmac crate (not orgmirror's code).
pub(super) fn expected_signature(body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// `orgmirror ARGS` with the token and the alert secret.
fn orgmirror(m: &Mirror, args: &[&str]) -> Command {
    let mut c = command(&m.config, args, Some("demo-token"));
    c.env("ORGMIRROR_SECRET_HOOKS", SECRET);
    c
}

fn run(m: &Mirror, args: &[&str]) -> std::process::Output {
    orgmirror(m, args).output().expect("binary runs")
}

fn admin_rule(url: &str, extra: &str) -> String {
    format!(
        "[[alert]]\nname = \"new admin\"\nentity = \"user\"\nop = [\"update\"]\nfields = [\"admin\", \"owner\"]\n\
         after = {{ admin = true }}\nwebhook = \"{url}\"\nsecret_credential = \"hooks\"\n{extra}\n"
    )
}

fn daemon(m: &Mirror) -> Daemon {
    Daemon::spawn(super::dir_of(m), orgmirror(m, &["run"]))
}

fn outbox(db: &Path, sql: &str) -> i64 {
    live_scalar(db, sql)
}

// ---------------------------------------------------------------------------------------
// Delivery

#[test]
fn a_churn_run_alerts_a_webhook_and_a_command_with_exactly_its_matching_events() {
    let m = Mirror::new(40);
    let org = m.fake.handle();
    let users = org.user_ids();
    let (a1, a2, renamed, r1, r2) = (users[0], users[1], users[2], users[3], users[4]);
    for u in [a1, a2, renamed] {
        org.set_admin(u, false);
    }
    org.set_rate(r1, Some(100.0), "EUR");
    org.set_rate(r2, Some(100.0), "EUR");
    let receiver = Receiver::start(&[]);
    let out_file = super::dir_of(&m).join("command.out");
    append_config(
        &m,
        &format!(
            "{}\n[[alert]]\nname = \"left a group\"\nentity = \"group_membership\"\nop = [\"delete\"]\n\
             command = [\"/bin/sh\", \"-c\", \"printf '%s\\\\t' \\\"$ORGMIRROR_SIGNATURE\\\" >> '{out}'; cat >> '{out}'; echo >> '{out}'\"]\n\
             secret_credential = \"hooks\"\n\n\
             [[alert]]\nname = \"rate moved\"\nentity = \"user_rate\"\nmin_relative_change = {{ hourly_rate = 0.2 }}\n\
             webhook = \"{url}\"\nsecret_credential = \"hooks\"\n",
            admin_rule(&receiver.url(), ""),
            out = out_file.display(),
            url = receiver.url(),
        ),
    );
    ok(&run(&m, &["sync"]));
    assert!(receiver.hits().is_empty(), "{:?}", receiver.hits());

    // The churn: two made admin, one renamed, a rate cut by 40% and one moved by 5%, two
    // members leave a group, one joins, someone arrives.
    org.set_admin(a1, true);
    org.set_admin(a2, true);
    org.rename_user(renamed, "Renamed Only");
    org.set_rate(r1, Some(60.0), "EUR");
    org.set_rate(r2, Some(105.0), "EUR");
    let group = org.group_ids()[0];
    let members = org.group_members(group);
    let (left1, left2) = (members[0], members[1]);
    org.leave_group(group, left1);
    org.leave_group(group, left2);
    let outsider = users
        .iter()
        .copied()
        .find(|u| !members.contains(u))
        .expect("a user outside the group");
    org.join_group(group, outsider);
    org.add_user("New Person", "new.person@example.com");
    let out = run(&m, &["sync"]);
    let stdout = ok(&out);
    assert!(
        text(&out.stderr).contains("alerts: 5 delivered"),
        "{stdout}\n{}",
        text(&out.stderr)
    );

    let conn = m.conn();
    let run_id = scalar(&conn, "SELECT max(sync_run_id) FROM sync_runs");
    let ids = |sql: &str| -> BTreeSet<i64> {
        rows(&conn, sql)
            .into_iter()
            .map(|r| r[0].parse().unwrap())
            .collect()
    };
    // The rules' meaning, written independently in SQL.
    let made_admin = ids(&format!(
        "SELECT event_id FROM change_events WHERE sync_run_id = {run_id} AND entity = 'user' AND op = 'update'
           AND json_extract(after_json, '$.admin') = 1
           AND EXISTS (SELECT 1 FROM json_each(changed_fields) WHERE value IN ('admin', 'owner'))"
    ));
    let rate_moved = ids(&format!(
        "SELECT event_id FROM change_events WHERE sync_run_id = {run_id} AND entity = 'user_rate' AND op = 'update'
           AND abs(json_extract(after_json, '$.hourly_rate') - json_extract(before_json, '$.hourly_rate'))
               >= 0.2 * abs(json_extract(before_json, '$.hourly_rate'))"
    ));
    let left = ids(&format!(
        "SELECT event_id FROM change_events WHERE sync_run_id = {run_id} AND entity = 'group_membership' AND op = 'delete'"
    ));
    assert_eq!((made_admin.len(), rate_moved.len(), left.len()), (2, 1, 2));
    assert!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM change_events WHERE sync_run_id = {run_id}")
        ) > 5,
        "the run has events no rule matches"
    );

    let hits = receiver.hits();
    let mut webhook_ids = BTreeSet::new();
    for hit in &hits {
        assert_eq!(
            hit.signature.as_deref(),
            Some(expected_signature(&hit.body).as_str())
        );
        assert_eq!(hit.key, hit.event);
        let event: Value = serde_json::from_str(&hit.body).expect("JSON body");
        assert_eq!(event["event_id"].as_i64().unwrap().to_string(), hit.key);
        assert_eq!(event["sync_run_id"].as_i64(), Some(run_id));
        webhook_ids.insert(event["event_id"].as_i64().unwrap());
        match event["rule"].as_str() {
            Some("new admin") => {
                assert_eq!(event["after"]["admin"], Value::Bool(true));
                let fields = event["changed_fields"].as_array().unwrap();
                assert!(fields.contains(&Value::from("admin")), "{fields:?}");
                let person = &event["people"][0];
                let id = person["organization_user_id"].as_i64().unwrap();
                assert_eq!(
                    person["name"].as_str(),
                    Some(org.user(id).unwrap().name.as_str())
                );
            }
            Some("rate moved") => {
                assert_eq!(event["before"]["hourly_rate"].as_f64(), Some(100.0));
                assert_eq!(event["after"]["hourly_rate"].as_f64(), Some(60.0));
            }
            other => panic!("unexpected rule {other:?}"),
        }
    }
    assert_eq!(hits.len(), 3, "each event once: {hits:?}");
    assert_eq!(
        webhook_ids,
        made_admin
            .union(&rate_moved)
            .copied()
            .collect::<BTreeSet<_>>()
    );

    let lines = std::fs::read_to_string(&out_file).expect("the command ran");
    let mut command_ids = BTreeSet::new();
    for line in lines.lines().filter(|l| !l.is_empty()) {
        let (signature, body) = line.split_once('\t').expect("signature TAB body");
        assert_eq!(signature, expected_signature(body));
        let event: Value = serde_json::from_str(body).expect("JSON on stdin");
        assert_eq!(event["rule"], "left a group");
        assert_eq!(event["groups"][0]["group_id"].as_i64(), Some(group));
        assert_eq!(
            event["groups"][0]["name"].as_str(),
            Some(org.group(group).unwrap().name.as_str())
        );
        command_ids.insert(event["event_id"].as_i64().unwrap());
    }
    assert_eq!(command_ids, left);
    assert_eq!(lines.lines().filter(|l| !l.is_empty()).count(), 2);

    // Delivered means never again: another sync sends nothing.
    ok(&run(&m, &["sync"]));
    assert_eq!(receiver.hits().len(), 3);
    let status = ok(&run(&m, &["status"]));
    assert!(
        status.contains("\"new admin\": 0 pending, 2 delivered, 0 failed attempts"),
        "{status}"
    );
}

#[test]
fn a_receiver_that_fails_three_times_gets_the_event_then_never_again() {
    let m = Mirror::new(20);
    let org = m.fake.handle();
    let u = org.user_ids()[0];
    org.set_admin(u, false);
    let receiver = Receiver::start(&[]);
    append_config(
        &m,
        &admin_rule(
            &receiver.url(),
            "initial_backoff = \"200ms\"\nmax_backoff = \"400ms\"",
        ),
    );
    ok(&run(&m, &["sync"]));
    receiver.answer_next(&[
        Answer::Status(500),
        Answer::Status(500),
        Answer::Status(503),
    ]);
    org.set_admin(u, true);
    let out = run(&m, &["sync"]);
    ok(&out);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 4, "three failures, then the 200: {hits:?}");
    assert!(hits
        .iter()
        .all(|h| h.key == hits[0].key && h.body == hits[0].body));
    let status = ok(&run(&m, &["status"]));
    assert!(
        status.contains("\"new admin\": 0 pending, 1 delivered, 3 failed attempts; last error at"),
        "{status}"
    );
    assert!(status.contains("HTTP 503"), "{status}");
    // The webhook's path (often its secret) is not in the recorded error.
    assert!(!status.contains("/hook"), "{status}");

    // Later runs, a replay of it, the daemon: never sent again.
    ok(&run(&m, &["sync"]));
    let replay = ok(&run(
        &m,
        &["alerts", "replay", "new admin", "--since", "2000-01-01"],
    ));
    assert!(replay.contains("0 events queued"), "{replay}");
    append_config(&m, "[schedule]\ncron = \"*/1 * * * * *\"");
    let mut d = daemon(&m);
    let before = succeeded_runs(&m.db);
    wait_until(Duration::from_secs(20), "two daemon runs", || {
        succeeded_runs(&m.db) >= before + 2
    });
    d.signal(libc::SIGTERM);
    d.wait(Duration::from_secs(15));
    assert_eq!(receiver.hits().len(), 4);
}

#[test]
fn kill_9_after_the_commit_and_before_delivery_delivers_once_after_restart() {
    let m = Mirror::new(20);
    let org = m.fake.handle();
    let u = org.user_ids()[0];
    org.set_admin(u, false);
    // The first attempt hangs: the daemon has committed the run and is delivering.
    let receiver = Receiver::start(&[Answer::Hang]);
    append_config(
        &m,
        &format!(
            "{}\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = true",
            admin_rule(&receiver.url(), "timeout = \"60s\"")
        ),
    );
    ok(&run(&m, &["sync"]));
    org.set_admin(u, true);
    let d = daemon(&m);
    wait_until(Duration::from_secs(20), "the first attempt", || {
        !receiver.hits().is_empty()
    });
    d.signal(libc::SIGKILL);
    drop(d);
    let pending = "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NULL";
    assert_eq!(outbox(&m.db, pending), 1, "the alert survived the kill");

    let mut d = daemon(&m);
    wait_until(
        Duration::from_secs(20),
        "the delivery after restart",
        || outbox(&m.db, pending) == 0,
    );
    std::thread::sleep(Duration::from_secs(2));
    d.signal(libc::SIGTERM);
    d.wait(Duration::from_secs(15));
    let hits = receiver.hits();
    assert_eq!(hits.len(), 2, "the hung attempt and one delivery: {hits:?}");
    assert_eq!(hits[0].key, hits[1].key, "the idempotency key is unchanged");
    assert_eq!(hits[0].body, hits[1].body);
    assert_eq!(
        outbox(
            &m.db,
            "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NOT NULL"
        ),
        1
    );
}

#[test]
fn a_hanging_target_does_not_delay_the_next_sync_nor_another_rule() {
    let m = Mirror::new(20);
    let org = m.fake.handle();
    let users = org.user_ids();
    let (u, renamed) = (users[0], users[1]);
    org.set_admin(u, false);
    let receiver = Receiver::start(&[Answer::Hang]);
    let out_file = super::dir_of(&m).join("renamed.out");
    append_config(
        &m,
        &format!(
            "{}
[[alert]]\nname = \"renamed\"\nentity = \"user\"\nop = [\"update\"]\nfields = [\"name\"]\n\
             command = [\"/bin/sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]\n\n\
             [schedule]\ncron = \"*/1 * * * * *\"\nrun_at_start = true",
            admin_rule(&receiver.url(), "timeout = \"120s\""),
            out_file.display(),
            out_file.display(),
        ),
    );
    ok(&run(&m, &["sync"]));
    org.set_admin(u, true);
    let mut d = daemon(&m);
    wait_until(Duration::from_secs(20), "the hanging attempt", || {
        !receiver.hits().is_empty()
    });
    let at_hang = succeeded_runs(&m.db);
    // The target holds its attempt for two minutes; runs go on every second meanwhile,
    // and the other rule's alerts are delivered.
    let later = org.add_user("During The Hang", "hang@example.com");
    org.rename_user(renamed, "Renamed During The Hang");
    wait_until(
        Duration::from_secs(15),
        "three more runs and the other rule's alert during the hang",
        || {
            succeeded_runs(&m.db) >= at_hang + 3
                && live_scalar(
                    &m.db,
                    &format!(
                        "SELECT count(*) FROM users_current WHERE organization_user_id = {later}"
                    ),
                ) == 1
                && std::fs::read_to_string(&out_file)
                    .is_ok_and(|t| t.contains("Renamed During The Hang"))
        },
    );
    assert_eq!(receiver.hits().len(), 1, "still the one hanging attempt");
    d.signal(libc::SIGTERM);
    let status = d.wait(Duration::from_secs(40));
    assert!(status.success(), "{}", d.log());
}

#[test]
fn alerts_test_sends_a_sample_and_replay_queues_past_events_for_a_new_rule() {
    let m = Mirror::new(20);
    let org = m.fake.handle();
    let users = org.user_ids();
    for u in &users[..2] {
        org.set_admin(*u, false);
    }
    m.sync_ok();
    org.set_admin(users[0], true);
    org.set_admin(users[1], true);
    m.sync_ok();
    // The rule is added after the changes were mirrored.
    let receiver = Receiver::start(&[]);
    append_config(&m, &admin_rule(&receiver.url(), ""));

    let test = ok(&run(&m, &["alerts", "test", "new admin"]));
    assert!(test.contains("accepted"), "{test}");
    let sample = receiver.hits();
    assert_eq!(sample.len(), 1);
    let body: Value = serde_json::from_str(&sample[0].body).unwrap();
    assert_eq!(body["test"], Value::Bool(true));
    assert!(sample[0].key.starts_with("test-"), "{:?}", sample[0]);
    assert_eq!(
        sample[0].signature.as_deref(),
        Some(expected_signature(&sample[0].body).as_str())
    );
    let unknown = run(&m, &["alerts", "test", "no such rule"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));
    assert!(
        text(&unknown.stderr).contains("new admin"),
        "{}",
        text(&unknown.stderr)
    );

    let replay = ok(&run(
        &m,
        &["alerts", "replay", "new admin", "--since", "2000-01-01"],
    ));
    assert!(replay.contains("2 events queued"), "{replay}");
    let delivered: BTreeSet<i64> = receiver.hits()[1..]
        .iter()
        .map(|h| h.key.parse().unwrap())
        .collect();
    let conn = m.conn();
    let expected: BTreeSet<i64> = rows(
        &conn,
        "SELECT event_id FROM change_events WHERE entity = 'user' AND op = 'update'
           AND json_extract(after_json, '$.admin') = 1",
    )
    .into_iter()
    .map(|r| r[0].parse().unwrap())
    .collect();
    assert_eq!(delivered, expected);
    assert_eq!(delivered.len(), 2);
    let again = ok(&run(
        &m,
        &["alerts", "replay", "new admin", "--since", "2000-01-01"],
    ));
    assert!(again.contains("0 events queued"), "{again}");
    assert_eq!(receiver.hits().len(), 3);
    // Without a name: every rule.
    let all = ok(&run(&m, &["alerts", "replay", "--since", "2000-01-01"]));
    assert!(
        all.contains("alert \"new admin\": 0 events queued (2 matched"),
        "{all}"
    );
    // Nothing after --since: nothing queued.
    let future = ok(&run(
        &m,
        &["alerts", "replay", "new admin", "--since", "2999-01-01"],
    ));
    assert!(future.contains("0 events queued (0 matched"), "{future}");
    let bad = run(
        &m,
        &["alerts", "replay", "new admin", "--since", "last week"],
    );
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_missing_alert_secret_stops_sync_before_it_runs() {
    let m = Mirror::new(10);
    append_config(&m, &admin_rule("https://hooks.example.com/x", ""));
    let out = command(&m.config, &["sync"], Some("demo-token"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("ORGMIRROR_SECRET_HOOKS") && err.contains("\"new admin\""),
        "{err}"
    );
    // No run began (the database may have been created; -1: not even that).
    assert!(live_scalar(&m.db, "SELECT count(*) FROM sync_runs") <= 0);
    assert!(m.fake.handle().requests().is_empty(), "no request was sent");
    let check = command(&m.config, &["check"], Some("demo-token"))
        .output()
        .expect("runs");
    assert_eq!(check.status.code(), Some(2));
    assert!(
        text(&check.stderr).contains("ORGMIRROR_SECRET_HOOKS"),
        "{}",
        text(&check.stderr)
    );
    let check = ok(&run(&m, &["check"]));
    assert!(check.contains("ok: 1 alert rules"), "{check}");
}

// ---------------------------------------------------------------------------------------
// Metrics and health

/// `GET path` over plain HTTP/1.1: (status, body).
pub(super) fn http_get(addr: &str, path: &str, accept: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics server");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The `host:port` the daemon logged for its metrics server.
pub(super) fn metrics_addr(d: &Daemon) -> Option<String> {
    let log = d.log();
    let line = log.lines().find(|l| l.contains("metrics listening"))?;
    let rest = &line[line.find("addr=")? + 5..];
    Some(rest.split_whitespace().next()?.to_string())
}

pub(super) fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

fn promtool() -> Option<&'static str> {
    let ok = Command::new("promtool").arg("--version").output().is_ok();
    if !ok {
        // .ci/run installs Debian's prometheus: in CI a missing promtool is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing in CI"
        );
        eprintln!("SKIPPED the promtool check: promtool is missing (Debian package `prometheus`)");
        return None;
    }
    Some("promtool")
}

#[test]
fn metrics_pass_promtool_move_with_runs_and_healthz_turns_503_when_runs_fail() {
    let m = Mirror::new(20);
    let org = m.fake.handle();
    let u = org.user_ids()[0];
    org.set_admin(u, false);
    append_config(
        &m,
        "[schedule]\ncron = \"*/2 * * * * *\"\nrun_at_start = true\n\n[metrics]\nlisten = \"127.0.0.1:0\"",
    );
    let mut d = daemon(&m);
    wait_until(Duration::from_secs(20), "the metrics address", || {
        metrics_addr(&d).is_some()
    });
    let addr = metrics_addr(&d).unwrap();
    wait_until(Duration::from_secs(20), "a run", || {
        succeeded_runs(&m.db) >= 1
    });
    let (code, first) = http_get(&addr, "/metrics", None);
    assert_eq!(code, 200, "{first}");
    for series in [
        "orgmirror_runs_total{status=\"succeeded\"}",
        "orgmirror_requests_total",
        "orgmirror_events_total{entity=\"user\",op=\"insert\"}",
        "orgmirror_last_success_timestamp_seconds",
        "orgmirror_last_run_duration_seconds",
        "orgmirror_quarantined_records",
        "orgmirror_consecutive_failures",
        "orgmirror_last_attempt_timestamp_seconds",
        "orgmirror_database_bytes",
        "orgmirror_wal_bytes",
    ] {
        sample(&first, series);
    }
    if let Some(tool) = promtool() {
        let mut child = Command::new(tool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(first.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{first}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let (_, om) = http_get(
        &addr,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    );
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
    assert!(om.contains("# TYPE orgmirror_runs counter"), "{om}");

    // The counters move with runs.
    let runs = sample(&first, "orgmirror_runs_total{status=\"succeeded\"}");
    let updates_before = first
        .lines()
        .any(|l| l.starts_with("orgmirror_events_total{entity=\"user\",op=\"update\"}"));
    assert!(!updates_before, "{first}");
    org.set_admin(u, true);
    wait_until(Duration::from_secs(20), "two more runs", || {
        succeeded_runs(&m.db) as f64 >= runs + 2.0
    });
    let (_, second) = http_get(&addr, "/metrics", None);
    assert!(sample(&second, "orgmirror_runs_total{status=\"succeeded\"}") >= runs + 2.0);
    assert!(
        sample(&second, "orgmirror_requests_total") > sample(&first, "orgmirror_requests_total")
    );
    assert_eq!(
        sample(
            &second,
            "orgmirror_events_total{entity=\"user\",op=\"update\"}"
        ),
        1.0
    );
    let (code, body) = http_get(&addr, "/healthz", None);
    assert_eq!(code, 200, "{body}");

    // Runs fail from now on: within two intervals (4 s) of the last success, 503.
    org.inject(Fault::new(
        Route::Roles,
        FaultKind::Status(500, "down for the test".into()),
    ));
    wait_until(Duration::from_secs(30), "503 from /healthz", || {
        http_get(&addr, "/healthz", None).0 == 503
    });
    let (_, reason) = http_get(&addr, "/healthz", None);
    assert!(
        reason.contains("two schedule intervals") && reason.contains("failed"),
        "{reason}"
    );
    let (_, third) = http_get(&addr, "/metrics", None);
    assert!(
        sample(&third, "orgmirror_runs_total{status=\"failed\"}") >= 1.0,
        "{third}"
    );
    assert_eq!(sample(&first, "orgmirror_consecutive_failures"), 0.0);
    assert!(
        sample(&third, "orgmirror_consecutive_failures") >= 1.0,
        "{third}"
    );
    assert!(
        sample(&third, "orgmirror_last_attempt_timestamp_seconds")
            > sample(&first, "orgmirror_last_attempt_timestamp_seconds"),
        "{third}"
    );
    d.signal(libc::SIGTERM);
    d.wait(Duration::from_secs(15));
}

// ---------------------------------------------------------------------------------------
// The auto cadence

#[test]
fn auto_picks_the_documented_interval_from_a_fake_quota_of_30_240_and_600_an_hour() {
    for limit in [30u32, 240, 600] {
        let m = Mirror::with(
            FakeOptions {
                users: 20,
                quota: Some(QuotaConfig {
                    limit,
                    window: Duration::from_secs(3600),
                }),
                ..Default::default()
            },
            "",
        );
        append_config(&m, "[schedule]\ncron = \"auto\"");
        m.sync_ok();
        let requests = scalar(
            &m.conn(),
            "SELECT requests FROM sync_runs WHERE status = 'succeeded'",
        );
        let report: Value =
            serde_json::from_str(&ok(&m.run(&["status", "--json"]))).expect("status JSON");
        let cadence = &report["schedule"]["cadence"];
        // README: 3600 s × requests ÷ (quota × 0.5), up to a whole minute, at least 5 min.
        let exact = 3600.0 * requests as f64 / (f64::from(limit) * 0.5);
        let expected = ((exact / 60.0).ceil() as u64 * 60).max(300);
        assert_eq!(
            cadence["interval_seconds"].as_u64(),
            Some(expected),
            "quota {limit}, {requests} requests: {cadence}"
        );
        let reason = cadence["reason"].as_str().unwrap();
        assert!(reason.contains(&format!("{limit}/h")), "{reason}");
        let planned = cadence["planned_requests_per_hour"].as_f64().unwrap();
        assert!(planned <= f64::from(limit) * 0.5, "{planned}");
        let text_status = ok(&m.run(&["status"]));
        assert!(
            text_status.contains(&format!("cadence   every {expected} s")),
            "{text_status}"
        );
    }
    // The quota from api.hourly_quota wins over the headers.
    let m = Mirror::with(
        FakeOptions {
            users: 20,
            ..Default::default()
        },
        "hourly_quota = 30\n",
    );
    append_config(&m, "[schedule]\ncron = \"auto\"");
    m.sync_ok();
    let report: Value = serde_json::from_str(&ok(&m.run(&["status", "--json"]))).unwrap();
    assert!(
        report["schedule"]["cadence"]["reason"]
            .as_str()
            .unwrap()
            .contains("30/h (api.hourly_quota)"),
        "{report}"
    );
    // The daemon runs at start, then waits the chosen interval.
    let mut d = daemon(&m);
    wait_until(
        Duration::from_secs(20),
        "the auto schedule's log line",
        || d.log().contains("auto schedule"),
    );
    let log = d.log();
    let interval = report["schedule"]["cadence"]["interval_seconds"]
        .as_u64()
        .unwrap();
    assert!(log.contains(&format!("interval_s={interval}")), "{log}");
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(15)).success(), "{}", d.log());
}

#[test]
fn a_group_write_delivers_its_alerts_at_once_and_a_missing_secret_stops_it_before_the_write() {
    let m = Mirror::new(20);
    let receiver = Receiver::start(&[]);
    append_config(
        &m,
        &format!(
            "[[alert]]\nname = \"group renamed\"\nentity = \"group\"\nop = [\"update\"]\nfields = [\"name\"]\n\
             webhook = \"{}\"\nsecret_credential = \"hooks\"\n",
            receiver.url()
        ),
    );
    ok(&run(&m, &["sync"]));
    let org = m.fake.handle();
    let g = org.group_ids()[0];
    let rename = |name: &str| {
        vec![
            "group".to_string(),
            "update".to_string(),
            g.to_string(),
            "--name".to_string(),
            name.to_string(),
        ]
    };

    // Without the rule's secret: exit 2 naming it, before the PUT.
    org.clear_requests();
    let args = rename("Never Sent");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = command(&m.config, &args, Some("demo-token"))
        .output()
        .expect("runs");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ORGMIRROR_SECRET_HOOKS"), "{err}");
    assert!(
        org.requests().iter().all(|r| r.method == "GET"),
        "a write was sent: {:?}",
        org.requests()
    );

    // With it: the targeted run queues the alert and the command delivers it, signed.
    let args = rename("Renamed By Alert Test");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&m, &args);
    ok(&out);
    let queued = "SELECT count(*) FROM alert_outbox o JOIN change_log e USING (event_id)
                  JOIN sync_runs r USING (sync_run_id) WHERE r.kind = 'targeted'";
    assert_eq!(outbox(&m.db, queued), 1, "queued in the targeted run");
    let delivered = format!("{queued} AND o.delivered_at IS NOT NULL");
    assert_eq!(outbox(&m.db, &delivered), 1, "delivered by the command");
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let event: Value = serde_json::from_str(&hits[0].body).unwrap();
    assert_eq!(event["after"]["name"], "Renamed By Alert Test");
    assert_eq!(event["groups"][0]["name"], "Renamed By Alert Test");
    assert_eq!(
        hits[0].signature.as_deref(),
        Some(expected_signature(&hits[0].body).as_str())
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("alerts: 1 delivered, 0 pending"),
        "{stderr}"
    );
    // A write right after a sync is often in the same second: not a clock to warn of.
    assert!(!stderr.contains("WARN"), "{stderr}");

    // Never sent again: not by the next sync.
    ok(&run(&m, &["sync"]));
    assert_eq!(receiver.hits().len(), 1, "{:?}", receiver.hits());
}

//! The API as Toggl publishes it: keys that expire and are replaced in a file without a
//! restart, a 402 that is not the quota, and id filters in whichever form the server honours.

use std::path::Path;
use std::time::{Duration, Instant};

use orgmirror::fake::{
    FakeOptions, Fault, FaultKind, KeyExpiry, PlanFeature, QuotaConfig, Route, DEMO_API_KEY,
};

use super::{append_config, command, dir_of, live_scalar, wait_until, Daemon};
use crate::support::{run_with, scalar, text, Mirror};

/// The newest run's status and error, from the live database.
fn last_run(db: &Path) -> (String, String) {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT status, coalesce(error, '') FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap_or_default()
}

fn runs(db: &Path, status: &str) -> i64 {
    live_scalar(
        db,
        &format!("SELECT count(*) FROM sync_runs WHERE status = '{status}'"),
    )
}

// ---------------------------------------------------------------------------------------
// Keys

#[test]
fn an_expired_key_fails_the_run_with_one_message_giving_the_servers_reason_and_exit_2() {
    let m = Mirror::with(
        FakeOptions {
            key_expires_after: Some(KeyExpiry::Requests(0)),
            ..FakeOptions::default()
        },
        "",
    );
    let out = run_with(&m.config, &["sync"], &[("TOGGL_API_TOKEN", DEMO_API_KEY)]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(m.fake.handle().request_count(), 1, "a 401 is not retried");
    assert_eq!(
        stderr.matches("API key expired").count(),
        1,
        "one message: {stderr}"
    );
    let (status, error) = last_run(&m.db);
    assert_eq!(status, "failed");
    for says in [
        "HTTP 401: API key expired",
        "Focus keys expire, and a new one revokes the old",
        "Focus profile settings",
        "(trace_id ",
    ] {
        assert!(error.contains(says), "{says:?} in {error}");
        assert!(stderr.contains(says), "{says:?} in {stderr}");
    }
    assert!(
        error.chars().count() < 200,
        "{} chars: {error}",
        error.len()
    );
    assert!(!stderr.contains(DEMO_API_KEY) && !error.contains(DEMO_API_KEY));
}

/// `check` gives the same refusal as its verdict: the server's reason and what to do.
#[test]
fn check_gives_an_expired_keys_refusal_as_its_verdict() {
    let m = Mirror::with(
        FakeOptions {
            key_expires_after: Some(KeyExpiry::Requests(0)),
            ..FakeOptions::default()
        },
        "",
    );
    let out = run_with(&m.config, &["check"], &[("TOGGL_API_TOKEN", DEMO_API_KEY)]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(m.fake.handle().request_count(), 1);
    assert!(
        stderr.contains("refused the credentials")
            && stderr.contains("HTTP 401: API key expired; Focus keys expire"),
        "{stderr}"
    );
}

/// The daemon reads `api.token_file` at every tick: a key revoked upstream fails the ticks
/// that send it (the daemon carries on), a missing file fails a tick naming the file, and
/// the key written into the file is used by the next tick, with no restart.
#[test]
fn a_key_file_replaced_between_two_daemon_ticks_is_used_by_the_next_tick_without_a_restart() {
    let m = Mirror::new(10);
    let key_file = dir_of(&m).join("toggl_key");
    std::fs::write(&key_file, format!("{DEMO_API_KEY}\n")).expect("write key");
    // Relative to the config file's directory; read afresh at every tick.
    let text = std::fs::read_to_string(&m.config).expect("config");
    let text = text.replacen("[api]\n", "[api]\ntoken_file = \"toggl_key\"\n", 1);
    std::fs::write(&m.config, text).expect("config");
    append_config(
        &m,
        "[schedule]\ncron = \"* * * * * *\"\nrun_at_start = true\nshutdown_timeout = \"10s\"",
    );
    let mut daemon = Daemon::spawn(dir_of(&m), command(&m.config, &["run"], None));
    let bound = Duration::from_secs(20);
    wait_until(bound, "a first run with the key in the file", || {
        runs(&m.db, "succeeded") >= 1
    });

    // The user makes a new key: the one in the file is revoked.
    let fake = m.fake.handle();
    fake.set_api_key("toggl_sk_rotated");
    wait_until(bound, "a tick refused with the revoked key", || {
        last_run(&m.db).1.contains("API key revoked")
    });
    // A file that is gone fails the tick, naming the file (never a key).
    std::fs::remove_file(&key_file).expect("remove key");
    wait_until(bound, "a tick without the file", || {
        last_run(&m.db).1.contains("toggl_key")
    });
    let (_, missing) = last_run(&m.db);
    assert!(missing.contains("cannot read credential"), "{missing}");
    // The new key written into the file: the next tick succeeds.
    let before = runs(&m.db, "succeeded");
    let written = Instant::now();
    std::fs::write(&key_file, "toggl_sk_rotated").expect("write key");
    wait_until(bound, "a tick with the new key", || {
        runs(&m.db, "succeeded") > before
    });
    assert!(written.elapsed() < bound);
    assert!(
        daemon.child.try_wait().expect("try_wait").is_none(),
        "the daemon was not restarted: {}",
        daemon.log()
    );
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(15)).success());
    let conn = m.conn();
    let failed_with_the_file = scalar(
        &conn,
        "SELECT count(*) FROM sync_runs WHERE status = 'failed' AND error LIKE '%toggl_key%'",
    );
    assert!(failed_with_the_file >= 1);
    let leaked = scalar(
        &conn,
        "SELECT count(*) FROM sync_runs WHERE error LIKE '%toggl_sk_demo%' OR error LIKE '%toggl_sk_rotated%'",
    );
    assert_eq!(leaked, 0, "a key in sync_runs.error");
    assert!(!daemon.log().contains("toggl_sk_rotated"));
}

// ---------------------------------------------------------------------------------------
// 402: the quota, or a feature the plan lacks

/// A 402 without the quota's headers is a feature the plan lacks: the run fails at once,
/// exit 2, naming the request, the server's reason and the setting that avoids it.
#[test]
fn a_plan_locked_402_fails_the_run_at_once_with_exit_2_naming_the_setting() {
    for (lacks, setting) in [
        (PlanFeature::Rates, "sync.include_rates = false"),
        (
            PlanFeature::WorkingHours,
            "sync.include_working_hours = false",
        ),
    ] {
        let m = Mirror::with(
            FakeOptions {
                plan_lacks: vec![lacks],
                ..FakeOptions::default()
            },
            "",
        );
        let started = Instant::now();
        let out = m.run(&["sync"]);
        let took = started.elapsed();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        let (status, error) = last_run(&m.db);
        assert_eq!(status, "failed");
        for says in [
            "GET /organizations/1001/users page 1: HTTP 402 payment_required:",
            &format!("{} feature not available on the plan", lacks.name()),
            &format!("set {setting}"),
        ] {
            assert!(error.contains(says), "{says:?} in {error}");
        }
        assert_eq!(stderr.matches(setting).count(), 1, "{stderr}");
        // Never asked again: roles, one teams page, the one users page.
        let users = m
            .fake
            .handle()
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/users"))
            .count();
        assert_eq!(users, 1);
        // The setting it names makes the next run succeed.
        let key = setting.split(' ').next().expect("key").replace("sync.", "");
        append_config(&m, &format!("[sync]\n{key} = false"));
        m.sync_ok();
    }
}

/// The daemon keeps its schedule through plan-locked runs: the next ticks run (and fail
/// the same way), and once the plan allows the feature a tick succeeds.
#[test]
fn a_daemons_next_tick_still_runs_after_a_plan_locked_402() {
    let m = Mirror::with(
        FakeOptions {
            plan_lacks: vec![PlanFeature::Rates],
            ..FakeOptions::default()
        },
        "",
    );
    append_config(
        &m,
        "[schedule]\ncron = \"* * * * * *\"\nrun_at_start = true\nshutdown_timeout = \"10s\"",
    );
    let mut daemon = Daemon::start(&m);
    let bound = Duration::from_secs(20);
    wait_until(bound, "two plan-locked runs", || runs(&m.db, "failed") >= 2);
    assert!(last_run(&m.db).1.contains("sync.include_rates = false"));
    m.fake.handle().set_plan_lacks(&[]);
    wait_until(bound, "a run once the plan has rates", || {
        runs(&m.db, "succeeded") >= 1
    });
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(15)).success());
}

/// A 402 whose headers say the quota is spent is waited out as before, and the run
/// succeeds; with a quota on, a plan's 402 (requests left) is not.
#[test]
fn a_quota_402_is_still_waited_out() {
    let m = Mirror::new(20);
    let fake = m.fake.handle();
    fake.inject(Fault::new(Route::Users, FaultKind::QuotaSpent { resets_in: 1 }).times(1));
    let started = Instant::now();
    m.sync_ok();
    assert!(started.elapsed() >= Duration::from_secs(1));
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/users"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses.first(), Some(&402));
    assert!(statuses[1..].iter().all(|s| *s == 200), "{statuses:?}");

    fake.set_quota(Some(QuotaConfig {
        limit: 1000,
        window: Duration::from_secs(3600),
    }));
    fake.set_plan_lacks(&[PlanFeature::WorkingHours]);
    let started = Instant::now();
    let out = m.run(&["sync"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(2));
}

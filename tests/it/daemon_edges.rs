//! Adversarial tests of `orgmirror run` (src/daemon.rs): the watchdog while a run waits,
//! stop signals during a quota wait, a busy database, an API that is down, overlap, and
//! what systemd hears.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orgmirror_fake::{Fault, FaultKind, Route};
use rusqlite::Connection;

use super::{
    append_config, command, dir_of, live_scalar, notify_command, wait_until, Daemon, NotifySocket,
};
use crate::support::{bin, rows, text, Mirror};

// ---------------------------------------------------------------------------------------
// Helpers beyond those of service.rs

fn count_runs(db: &Path, status: &str) -> i64 {
    live_scalar(
        db,
        &format!("SELECT count(*) FROM sync_runs WHERE status = '{status}'"),
    )
}

/// The longest gap between consecutive pings that arrived in `[from, to]`, counting the
/// edges of the window as well (a window with no ping at all has one gap: the window).
fn longest_ping_gap(pings: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut points = vec![from];
    points.extend(pings.iter().copied().filter(|p| *p >= from && *p <= to));
    points.push(to);
    points
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The watchdog while a run waits

#[test]
fn watchdog_keeps_pinging_while_a_run_waits_out_a_402_quota_reset() {
    let m = Mirror::with(
        orgmirror_fake::FakeOptions {
            users: 10,
            ..Default::default()
        },
        "max_quota_wait = \"60s\"",
    );
    // One 402 on the users list: the run waits 4 s (3 s + the 1 s margin) and then succeeds.
    m.fake
        .handle()
        .inject(Fault::new(Route::Users, FaultKind::QuotaSpent { resets_in: 3 }).times(1));
    append_config(
        &m,
        "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = true\nshutdown_timeout = \"10s\"",
    );
    let socket = NotifySocket::bind(dir_of(&m));
    // WatchdogSec=2s: systemd kills a daemon that is silent for two seconds.
    let mut daemon = Daemon::spawn(
        dir_of(&m),
        notify_command(&m.config, &socket.path, Some(2_000_000)),
    );
    wait_until(Duration::from_secs(20), "the quota wait to begin", || {
        daemon.log().contains("request quota spent")
    });
    let wait_began = Instant::now();
    wait_until(Duration::from_secs(20), "the run to succeed", || {
        count_runs(&m.db, "succeeded") == 1
    });
    let run_done = Instant::now();
    assert!(
        run_done.duration_since(wait_began) >= Duration::from_secs(2),
        "the run did not wait for the quota; log:\n{}",
        daemon.log()
    );
    let gap = longest_ping_gap(&socket.pings(), wait_began, run_done);
    assert!(
        gap < Duration::from_secs(2),
        "no WATCHDOG=1 for {gap:?} during the quota wait (WATCHDOG_USEC = 2 s); heard:\n{}",
        socket.text()
    );
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "exit {status:?}; log:\n{}", daemon.log());
    let heard = socket.text();
    assert!(heard.contains("STATUS=last run 1 succeeded at "), "{heard}");
}

#[test]
fn sigterm_during_a_quota_wait_stops_within_the_shutdown_timeout_and_marks_the_run_failed() {
    let m = Mirror::with(
        orgmirror_fake::FakeOptions {
            users: 10,
            ..Default::default()
        },
        "max_quota_wait = \"10m\"",
    );
    // The quota resets in two minutes: the run waits far longer than the shutdown timeout.
    m.fake
        .handle()
        .inject(Fault::new(Route::Users, FaultKind::QuotaSpent { resets_in: 120 }).times(1));
    append_config(
        &m,
        "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = true\nshutdown_timeout = \"2s\"",
    );
    let socket = NotifySocket::bind(dir_of(&m));
    let mut daemon = Daemon::spawn(dir_of(&m), notify_command(&m.config, &socket.path, None));
    wait_until(Duration::from_secs(20), "the quota wait to begin", || {
        daemon.log().contains("request quota spent")
    });
    let sent = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(20));
    let took = sent.elapsed();
    let log = daemon.log();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "stopped after {took:?} (shutdown_timeout = 2 s); log:\n{log}"
    );
    let runs = rows(&m.conn(), "SELECT status, error FROM sync_runs");
    assert_eq!(
        runs,
        vec![vec![
            "failed".to_string(),
            "interrupted: shutdown (the run did not finish within schedule.shutdown_timeout)"
                .to_string()
        ]],
        "log:\n{log}"
    );
    assert_eq!(
        live_scalar(&m.db, "SELECT count(*) FROM change_events"),
        0,
        "an abandoned run wrote events"
    );
    let heard = socket.text();
    assert!(
        heard.starts_with("READY=1\nSTATUS=waiting for the first run"),
        "{heard}"
    );
    assert!(
        heard.contains("STOPPING=1\nSTATUS=stopping: waiting for the run in progress"),
        "{heard}"
    );
    assert!(heard.ends_with("STOPPING=1\nSTATUS=stopped"), "{heard}");
    // Nothing is left locked: a manual sync right after works.
    let out = command(&m.config, &["sync"], Some("demo-token"))
        .output()
        .expect("sync runs");
    assert!(
        out.status.success(),
        "sync after the daemon stopped: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Other writers and a busy database

#[test]
fn a_tick_while_a_manual_sync_holds_the_writer_lock_is_logged_and_the_next_tick_succeeds() {
    let m = Mirror::new(20);
    append_config(
        &m,
        "[schedule]\ncron = \"*/2 * * * * *\"\nrun_at_start = true\nshutdown_timeout = \"10s\"",
    );
    let mut daemon = Daemon::spawn(dir_of(&m), command(&m.config, &["run"], Some("demo-token")));
    wait_until(Duration::from_secs(20), "the daemon's first run", || {
        count_runs(&m.db, "succeeded") >= 1
    });
    // A manual sync that holds the writer lock for ~6 s (its users list is slow). It may
    // have to try a few times to get in between the daemon's 2-second ticks.
    let mut manual = None;
    for _ in 0..20 {
        m.fake.handle().clear_faults();
        m.fake
            .handle()
            .inject(Fault::new(Route::Users, FaultKind::Delay(Duration::from_secs(6))).times(1));
        let mut child = command(&m.config, &["sync"], Some("demo-token"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sync starts");
        let pid = child.id();
        let started = Instant::now();
        let mut got_in = false;
        while started.elapsed() < Duration::from_secs(3) {
            if live_scalar(
                &m.db,
                &format!("SELECT count(*) FROM sync_runs WHERE status = 'running' AND pid = {pid}"),
            ) == 1
            {
                got_in = true;
                break;
            }
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if got_in {
            manual = Some(child);
            break;
        }
        let _ = child.wait();
    }
    let manual = manual.expect("the manual sync never got the writer lock");
    let manual_pid = manual.id();
    let out = manual.wait_with_output().expect("manual sync");
    assert!(
        out.status.success(),
        "the manual sync failed: {}{}\ndaemon log:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        daemon.log()
    );
    let manual_run = live_scalar(
        &m.db,
        &format!("SELECT sync_run_id FROM sync_runs WHERE pid = {manual_pid}"),
    );
    // The daemon's ticks during those 6 s found the database taken, said so, and carried on.
    let log = daemon.log();
    assert!(
        log.contains("being written by another orgmirror process"),
        "no tick ran into the manual sync's lock (or it was not logged):\n{log}"
    );
    wait_until(
        Duration::from_secs(20),
        "a daemon run after the manual sync",
        || {
            live_scalar(
                &m.db,
                &format!(
                    "SELECT count(*) FROM sync_runs WHERE sync_run_id > {manual_run} AND status = 'succeeded'"
                ),
            ) >= 1
        },
    );
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(15));
    let log = daemon.log();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    // The manual sync's row was never touched by the daemon; no run is left running.
    let runs = rows(
        &m.conn(),
        "SELECT sync_run_id, status, coalesce(error, '') FROM sync_runs ORDER BY sync_run_id",
    );
    assert!(runs.iter().all(|r| r[1] == "succeeded"), "{runs:?}\n{log}");
}

/// Creates the mirror's database with a first sync, then holds SQLite's write lock
/// (`BEGIN IMMEDIATE`, as any read-write client such as `sqlite3` can) on it.
fn hold_sqlite_write_lock(m: &Mirror) -> Connection {
    m.sync_ok();
    let conn = Connection::open(&m.db).expect("open");
    conn.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    conn
}

#[test]
fn a_run_that_finds_sqlite_busy_does_not_keep_other_writers_locked_out() {
    let m = Mirror::new(10);
    append_config(&m, "busy_timeout = \"1s\"");
    append_config(
        &m,
        "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = true\nshutdown_timeout = \"10s\"",
    );
    let holder = hold_sqlite_write_lock(&m);
    let mut daemon = Daemon::spawn(dir_of(&m), command(&m.config, &["run"], Some("demo-token")));
    // The start run cannot even record itself: SQLite is busy past database.busy_timeout
    // (the daemon asks for it again shortly after).
    wait_until(Duration::from_secs(20), "the start run to fail", || {
        let log = daemon.log();
        log.contains("could not be recorded")
            || log.contains("could not start")
            || log.contains("sync finished")
    });
    holder.execute_batch("ROLLBACK").expect("let go");
    drop(holder);
    std::thread::sleep(Duration::from_millis(300));
    // The daemon now idles until next year: a manual sync must be able to run meanwhile
    // (README: "Two runs never overlap", and other writers run between the daemon's runs).
    let out = command(&m.config, &["sync"], Some("demo-token"))
        .output()
        .expect("sync runs");
    let log = daemon.log();
    if !out.status.success() {
        // Show it is the live daemon that holds the lock: once it stops, a sync works.
        daemon.signal(libc::SIGTERM);
        let status = daemon.wait(Duration::from_secs(15));
        let after = command(&m.config, &["sync"], Some("demo-token"))
            .output()
            .expect("sync runs");
        panic!(
            "a manual sync while the daemon idles after a busy start run failed ({:?}): {}{}\n\
             after the daemon stopped ({status:?}) the same sync {}\ndaemon log:\n{log}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr),
            if after.status.success() {
                "succeeded".to_string()
            } else {
                format!("failed too: {}", text(&after.stderr))
            }
        );
    }
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "exit {status:?}; log:\n{}", daemon.log());
}

#[test]
fn watchdog_keeps_pinging_while_a_run_waits_on_a_busy_database() {
    let m = Mirror::new(10);
    append_config(&m, "busy_timeout = \"4s\"");
    append_config(
        &m,
        "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = true\nshutdown_timeout = \"10s\"",
    );
    let holder = hold_sqlite_write_lock(&m);
    let socket = NotifySocket::bind(dir_of(&m));
    let mut daemon = Daemon::spawn(
        dir_of(&m),
        notify_command(&m.config, &socket.path, Some(2_000_000)),
    );
    wait_until(Duration::from_secs(20), "READY", || {
        socket.text().contains("READY=1")
    });
    let from = socket
        .messages()
        .into_iter()
        .find(|(_, t)| t.contains("READY=1"))
        .map(|(at, _)| at)
        .expect("READY");
    // Hold the lock for 3 s after READY (within busy_timeout): the run then goes on and succeeds.
    std::thread::sleep((from + Duration::from_secs(3)).saturating_duration_since(Instant::now()));
    holder.execute_batch("ROLLBACK").expect("let go");
    drop(holder);
    wait_until(Duration::from_secs(20), "the start run to succeed", || {
        count_runs(&m.db, "succeeded") == 2
    });
    let to = Instant::now();
    let gap = longest_ping_gap(&socket.pings(), from, to);
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "exit {status:?}; log:\n{}", daemon.log());
    assert!(
        gap < Duration::from_secs(2),
        "no WATCHDOG=1 for {gap:?} while the run waited on the busy database (WATCHDOG_USEC = 2 s); heard:\n{}\nlog:\n{}",
        socket.text(),
        daemon.log()
    );
}

// ---------------------------------------------------------------------------------------
// The API down at start

#[test]
fn the_daemon_survives_an_api_that_is_down_at_start_and_recovers_when_it_comes_up() {
    // A port nobody listens on (yet).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("org.sqlite");
    let config = dir.path().join("orgmirror.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = \"http://127.0.0.1:{port}/api\"\norganization_id = 1001\nworkspace_id = 2001\nmax_requests_per_second = 0\n\
             initial_backoff = \"10ms\"\nmax_backoff = \"50ms\"\nrequest_timeout = \"2s\"\n\n\
             [database]\npath = {:?}\n\n\
             [schedule]\ncron = \"*/2 * * * * *\"\nrun_at_start = true\nshutdown_timeout = \"10s\"\n",
            db.display().to_string()
        ),
    )
    .expect("config");
    let socket = NotifySocket::bind(dir.path());
    let mut daemon = Daemon::spawn(dir.path(), notify_command(&config, &socket.path, None));
    wait_until(Duration::from_secs(30), "two failed runs", || {
        count_runs(&db, "failed") >= 2
    });
    assert_eq!(count_runs(&db, "succeeded"), 0);
    // The API comes up on that port.
    let fake_log = dir.path().join("fake.log");
    let mut fake = Command::new(bin())
        .args([
            "fake-api",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--users",
            "15",
        ])
        .stdout(Stdio::null())
        .stderr(File::create(&fake_log).expect("fake log"))
        .spawn()
        .expect("fake-api starts");
    let recovered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(Duration::from_secs(30), "a run to succeed", || {
            count_runs(&db, "succeeded") >= 1
        })
    }));
    let _ = fake.kill();
    let _ = fake.wait();
    if recovered.is_err() {
        panic!(
            "no run succeeded after the API came up; daemon log:\n{}\nfake log:\n{}",
            daemon.log(),
            std::fs::read_to_string(&fake_log).unwrap_or_default()
        );
    }
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(15));
    let log = daemon.log();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    let conn = Connection::open(&db).expect("open");
    let runs = rows(
        &conn,
        "SELECT sync_run_id, status, coalesce(error, '') FROM sync_runs ORDER BY sync_run_id",
    );
    assert!(runs.iter().all(|r| r[1] != "running"), "{runs:?}");
    let first_ok = runs
        .iter()
        .position(|r| r[1] == "succeeded")
        .expect("a success");
    // Every failure before the API came up names the connection problem.
    for r in &runs[..first_ok] {
        assert_eq!(r[1], "failed", "{runs:?}");
        assert!(
            r[2].to_lowercase().contains("connect") || r[2].to_lowercase().contains("refused"),
            "a failed run's error does not say the API was unreachable: {r:?}"
        );
    }
    assert_eq!(
        crate::support::scalar(&conn, "SELECT count(*) FROM users_current"),
        15
    );
    // systemd heard READY first, a failed STATUS, then a succeeded one.
    let heard = socket.text();
    assert!(
        heard.starts_with("READY=1\nSTATUS=waiting for the first run"),
        "{heard}"
    );
    let failed_at = heard.find(" failed at ").expect("a failed STATUS");
    let succeeded_at = heard.find(" succeeded at ").expect("a succeeded STATUS");
    assert!(failed_at < succeeded_at, "{heard}");
    assert!(heard.ends_with("STOPPING=1\nSTATUS=stopped"), "{heard}");
}

// ---------------------------------------------------------------------------------------
// Fast ticks, slow runs

#[test]
fn fast_ticks_with_slow_runs_never_overlap_and_every_status_line_follows_ready() {
    let m = Mirror::new(20);
    m.fake.handle().inject(Fault::new(
        Route::Users,
        FaultKind::Delay(Duration::from_millis(2500)),
    ));
    append_config(
        &m,
        "[schedule]\ncron = \"* * * * * *\"\nrun_at_start = true\nshutdown_timeout = \"10s\"",
    );
    let socket = NotifySocket::bind(dir_of(&m));
    let mut daemon = Daemon::spawn(dir_of(&m), notify_command(&m.config, &socket.path, None));
    let mut max_running = 0;
    let start = Instant::now();
    while count_runs(&m.db, "succeeded") < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "three runs took too long; log:\n{}",
            daemon.log()
        );
        max_running = max_running.max(count_runs(&m.db, "running"));
        std::thread::sleep(Duration::from_millis(30));
    }
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(15));
    let log = daemon.log();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(max_running <= 1, "{max_running} runs at once");
    let skipped = log.matches("tick skipped").count();
    assert!(skipped >= 3, "only {skipped} skipped ticks logged:\n{log}");
    let runs = rows(
        &m.conn(),
        "SELECT sync_run_id, started_at, finished_at, status, coalesce(error, '') FROM sync_runs ORDER BY sync_run_id",
    );
    // Runs: succeeded ones, and at most the last one cut short by the stop.
    for (i, r) in runs.iter().enumerate() {
        if i + 1 < runs.len() {
            assert_eq!(r[3], "succeeded", "{runs:?}");
        } else {
            assert!(
                r[3] == "succeeded",
                "the last run: {r:?} (shutdown_timeout 10 s is plenty)"
            );
        }
    }
    for pair in runs.windows(2) {
        assert!(pair[1][1] >= pair[0][2], "runs overlap: {pair:?}");
    }
    let heard = socket.text();
    assert!(heard.starts_with("READY=1\n"), "{heard}");
    assert_eq!(heard.matches("READY=1").count(), 1, "{heard}");
    // One STATUS per finished run, in run-id order.
    let statuses: Vec<&str> = heard
        .lines()
        .filter(|l| l.starts_with("STATUS=last run "))
        .collect();
    assert_eq!(statuses.len(), runs.len(), "{heard}\n{runs:?}");
    for (line, r) in statuses.iter().zip(&runs) {
        assert!(
            line.starts_with(&format!("STATUS=last run {} succeeded at ", r[0])),
            "{line} vs {r:?}"
        );
    }
}

#[test]
fn sigterm_while_a_run_waits_on_a_busy_database_stops_within_the_shutdown_timeout() {
    let m = Mirror::new(10);
    append_config(&m, "busy_timeout = \"6s\"");
    append_config(
        &m,
        "[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = true\nshutdown_timeout = \"1s\"",
    );
    let holder = hold_sqlite_write_lock(&m);
    let mut daemon = Daemon::spawn(dir_of(&m), command(&m.config, &["run"], Some("demo-token")));
    wait_until(Duration::from_secs(20), "the daemon to start", || {
        daemon.log().contains("daemon started")
    });
    // The start run is now waiting for SQLite (up to 6 s).
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(20));
    let took = sent.elapsed();
    holder.execute_batch("ROLLBACK").expect("let go");
    let log = daemon.log();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(
        took < Duration::from_secs(4),
        "SIGTERM took {took:?} to stop the daemon (shutdown_timeout = 1 s, busy_timeout = 6 s); log:\n{log}"
    );
}

//! Running it as a service: the daemon (schedule, overlap, signals), `status`, `export`,
//! `check`, JSON logs, the systemd unit, and real BI clients reading the live file.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orgmirror_fake::{FakeOptions, Fault, FaultKind, Route};
use rusqlite::Connection;

use crate::support::{base64_of, bin, dump_current, rows, scalar, text, Mirror};

// ---------------------------------------------------------------------------------------
// Helpers

/// The mirror's temp dir (the database's directory).
fn dir_of(m: &Mirror) -> &Path {
    m.db.parent()
        .expect("the database is in the mirror's temp dir")
}

/// Appends TOML to the mirror's config (its last section is `[database]`).
fn append_config(m: &Mirror, toml: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&m.config)
        .expect("open config");
    writeln!(f, "\n{toml}").expect("append config");
}

/// A mirror of `users` whose users list always answers after `delay`, its daemon on `cron`
/// with a run at start and `shutdown_timeout` to wait for a run.
fn slow_users_under_the_daemon(
    users: usize,
    delay: Duration,
    cron: &str,
    shutdown_timeout: &str,
) -> Mirror {
    let m = Mirror::new(users);
    m.fake
        .handle()
        .inject(Fault::new(Route::Users, FaultKind::Delay(delay)));
    append_config(
        &m,
        &format!("[schedule]\ncron = {cron:?}\nrun_at_start = true\nshutdown_timeout = {shutdown_timeout:?}"),
    );
    m
}

/// `orgmirror --config CONFIG ARGS` with exactly these credentials in the environment.
fn command(config: &Path, args: &[&str], token: Option<&str>) -> Command {
    let mut c = Command::new(bin());
    c.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("TOGGL_API_TOKEN")
        .env_remove("TOGGL_EMAIL")
        .env_remove("TOGGL_PASSWORD")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    if let Some(t) = token {
        c.env("TOGGL_API_TOKEN", t);
    }
    c
}

fn output(config: &Path, args: &[&str], token: Option<&str>) -> Output {
    command(config, args, token).output().expect("binary runs")
}

/// `orgmirror run` as systemd would start it with `Type=notify` and a watchdog: the
/// notify socket, `WATCHDOG_USEC`, and `WATCHDOG_PID` = the daemon's own pid (exec keeps it).
fn notify_command(config: &Path, socket: &Path, watchdog_usec: Option<u64>) -> Command {
    let inner = command(config, &["run"], Some("demo-token"));
    let mut sh = Command::new("sh");
    let script = if watchdog_usec.is_some() {
        "export WATCHDOG_PID=$$; exec \"$0\" \"$@\""
    } else {
        "exec \"$0\" \"$@\""
    };
    sh.args(["-c", script])
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NOTIFY_SOCKET", socket);
    if let Some(usec) = watchdog_usec {
        sh.env("WATCHDOG_USEC", usec.to_string());
    }
    sh
}

/// systemd's end of the notify socket: every datagram with the time it arrived.
struct NotifySocket {
    path: PathBuf,
    heard: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        use std::os::unix::net::UnixDatagram;
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let heard: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let heard = heard.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let text = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
                        heard.lock().unwrap().push((Instant::now(), text));
                    }
                }
            })
        };
        NotifySocket {
            path,
            heard,
            stop,
            thread: Some(thread),
        }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.heard.lock().unwrap().clone()
    }

    fn text(&self) -> String {
        self.messages()
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Arrival times of the WATCHDOG=1 pings.
    fn pings(&self) -> Vec<Instant> {
        self.messages()
            .into_iter()
            .filter(|(_, t)| t.lines().any(|l| l == "WATCHDOG=1"))
            .map(|(at, _)| at)
            .collect()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A daemon process with its stderr going to a file in the mirror's directory.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(m: &Mirror) -> Daemon {
        Daemon::spawn(dir_of(m), command(&m.config, &["run"], Some("demo-token")))
    }

    /// Spawns `cmd` (an `orgmirror run`, however wrapped) with its stderr in `dir`/daemon.log.
    fn spawn(dir: &Path, mut cmd: Command) -> Daemon {
        let log = dir.join("daemon.log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("daemon starts");
        Daemon { child, log }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits up to `bound` for the process to exit.
    fn wait(&mut self, bound: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > bound {
                let _ = self.child.kill();
                panic!("daemon did not exit within {bound:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `cond` every 100 ms for up to `bound`.
fn wait_until(bound: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < bound,
            "timed out after {bound:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scalar from the live database, or -1 while it is not there yet.
fn live_scalar(db: &Path, sql: &str) -> i64 {
    Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
        .unwrap_or(-1)
}

fn succeeded_runs(db: &Path) -> i64 {
    live_scalar(
        db,
        "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'",
    )
}

// ---------------------------------------------------------------------------------------
// The daemon

#[test]
fn daemon_syncs_on_schedule_picks_up_changes_and_stops_cleanly_on_sigterm() {
    let m = Mirror::new(30);
    append_config(
        &m,
        "[schedule]\ncron = \"*/2 * * * * *\"\nrun_at_start = true\nshutdown_timeout = \"10s\"",
    );
    let mut daemon = Daemon::start(&m);
    wait_until(Duration::from_secs(20), "the first run", || {
        succeeded_runs(&m.db) >= 1
    });

    let added = m
        .fake
        .handle()
        .add_user("Scheduled Pickup", "pickup@example.com");
    wait_until(
        Duration::from_secs(20),
        "the added user and three runs",
        || {
            succeeded_runs(&m.db) >= 3
                && live_scalar(
                    &m.db,
                    &format!(
                        "SELECT count(*) FROM users_current WHERE organization_user_id = {added}"
                    ),
                ) == 1
        },
    );

    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(15));
    let log = daemon.log();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(log.contains("daemon started"), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("daemon stopped"), "{log}");
    let conn = m.conn();
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM sync_runs WHERE status = 'running'"
        ),
        0
    );
    assert_eq!(
        scalar(
            &conn,
            &format!(
                "SELECT count(*) FROM change_events WHERE entity = 'user' AND op = 'insert' AND entity_id = '{added}'"
            )
        ),
        1
    );
    // Every run of the daemon logged its one summary event.
    let finished = log.matches("sync finished").count() as i64;
    assert_eq!(
        finished,
        scalar(&conn, "SELECT count(*) FROM sync_runs"),
        "{log}"
    );
}

#[test]
fn other_writers_can_run_between_the_daemons_runs() {
    // A daily schedule: after its first run the daemon sits idle, and a manual sync or a
    // group command's refresh must not be locked out of the database meanwhile.
    let m = Mirror::new(20);
    append_config(
        &m,
        "[schedule]\ncron = \"0 0 3 * * *\"\nrun_at_start = true",
    );
    let _daemon = Daemon::start(&m);
    wait_until(Duration::from_secs(20), "the first run", || {
        succeeded_runs(&m.db) >= 1
    });
    let out = output(&m.config, &["sync"], Some("demo-token"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // But not a second daemon, between runs as at the start.
    let mut second = Daemon::start(&m);
    let status = second.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{}", second.log());
    assert!(
        second.log().contains("another orgmirror daemon"),
        "{}",
        second.log()
    );
    let group = m.fake.handle().group_ids()[0];
    let out = output(
        &m.config,
        &[
            "group",
            "update",
            &group.to_string(),
            "--name",
            "Renamed while the daemon idles",
        ],
        Some("demo-token"),
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        live_scalar(
            &m.db,
            &format!("SELECT count(*) FROM groups_current WHERE group_id = {group} AND name = 'Renamed while the daemon idles'")
        ),
        1
    );
}

/// Closing any descriptor of the database file drops every POSIX lock the process holds on
/// it, SQLite's own too. Were the daemon to open and close the file beside its connections
/// (as opening a second store once did), a read-write client closing next to it would take
/// itself for the last connection and remove the `-wal` under the daemon, whose runs would
/// then fail with "disk I/O error" and be lost.
#[test]
fn a_read_write_client_closing_beside_the_daemon_never_breaks_its_runs() {
    let m = Mirror::new(10);
    append_config(
        &m,
        "[schedule]\ncron = \"*/1 * * * * *\"\nrun_at_start = true",
    );
    let mut d = Daemon::start(&m);
    wait_until(Duration::from_secs(20), "a run", || {
        succeeded_runs(&m.db) >= 1
    });
    let out = Command::new("sqlite3")
        .arg(&m.db)
        .arg("SELECT count(*) FROM sync_runs")
        .output()
        .expect("sqlite3 runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = succeeded_runs(&m.db);
    wait_until(Duration::from_secs(20), "two more runs", || {
        succeeded_runs(&m.db) >= before + 2
    });
    d.signal(libc::SIGTERM);
    assert!(d.wait(Duration::from_secs(15)).success());
    let log = d.log();
    assert!(!log.contains("disk I/O error"), "{log}");
    assert_eq!(
        live_scalar(
            &m.db,
            "SELECT count(*) FROM sync_runs WHERE status <> 'succeeded'"
        ),
        0,
        "{log}"
    );
}

#[test]
fn runs_never_overlap_and_busy_ticks_are_skipped() {
    let m = slow_users_under_the_daemon(20, Duration::from_millis(1500), "* * * * * *", "10s");
    let mut daemon = Daemon::start(&m);
    wait_until(Duration::from_secs(25), "three runs", || {
        succeeded_runs(&m.db) >= 3
    });
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(15));
    let log = daemon.log();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(
        log.contains("tick skipped"),
        "no skipped tick logged:\n{log}"
    );

    let runs = rows(
        &m.conn(),
        "SELECT sync_run_id, started_at, finished_at, status FROM sync_runs ORDER BY sync_run_id",
    );
    assert!(runs.iter().all(|r| r[3] != "running"), "{runs:?}");
    for pair in runs.windows(2) {
        // RFC 3339 UTC with Z compares as text; whole seconds, so touching is allowed.
        assert!(pair[1][1] >= pair[0][2], "runs overlap: {pair:?}");
    }
}

#[test]
fn a_run_that_outlives_the_shutdown_timeout_is_abandoned_and_marked_failed() {
    let m = slow_users_under_the_daemon(10, Duration::from_secs(30), "0 0 0 1 1 *", "1s");
    let mut daemon = Daemon::start(&m);
    wait_until(Duration::from_secs(15), "the run to start", || {
        live_scalar(
            &m.db,
            "SELECT count(*) FROM sync_runs WHERE status = 'running'",
        ) == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(10));
    let log = daemon.log();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    let conn = m.conn();
    let run = rows(&conn, "SELECT status, error FROM sync_runs");
    assert_eq!(run.len(), 1, "{run:?}");
    assert_eq!(run[0][0], "failed");
    assert!(run[0][1].starts_with("interrupted: shutdown"), "{run:?}");
    assert_eq!(scalar(&conn, "SELECT count(*) FROM change_events"), 0);
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping_and_a_second_signal_exits_at_once() {
    // The first run hangs on the users list until well after any bound below.
    let m = slow_users_under_the_daemon(10, Duration::from_secs(60), "0 0 0 1 1 *", "30s");
    // systemd's side of Type=notify: a datagram socket, and the watchdog variables, whose
    // WATCHDOG_PID must be the daemon's own pid (the shell's, which exec keeps).
    let socket = NotifySocket::bind(dir_of(&m));
    let heard_so_far = || socket.text();
    let mut daemon = Daemon::spawn(
        dir_of(&m),
        notify_command(&m.config, &socket.path, Some(400_000)),
    );

    wait_until(Duration::from_secs(15), "the run to start", || {
        live_scalar(
            &m.db,
            "SELECT count(*) FROM sync_runs WHERE status = 'running'",
        ) == 1
    });
    // Pinged at half of WATCHDOG_USEC while the run hangs.
    wait_until(Duration::from_secs(5), "two watchdog pings", || {
        heard_so_far().matches("WATCHDOG=1").count() >= 2
    });
    daemon.signal(libc::SIGTERM);
    wait_until(Duration::from_secs(5), "STOPPING=1", || {
        heard_so_far().contains("STOPPING=1")
    });
    let second = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(10));
    let log = daemon.log();
    assert!(
        second.elapsed() < Duration::from_secs(5),
        "the second signal did not cut the 30 s shutdown_timeout short; log:\n{log}"
    );
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(log.contains("second stop signal"), "{log}");
    wait_until(Duration::from_secs(5), "STATUS=stopped", || {
        heard_so_far().contains("STATUS=stopped")
    });
    let heard = heard_so_far();
    assert!(
        heard.starts_with("READY=1\nSTATUS=waiting for the first run"),
        "{heard}"
    );
    assert!(
        heard.contains("STATUS=stopping: waiting for the run in progress"),
        "{heard}"
    );
    assert!(heard.ends_with("STOPPING=1\nSTATUS=stopped"), "{heard}");
    let run = rows(&m.conn(), "SELECT status, error FROM sync_runs");
    assert_eq!(
        run,
        vec![vec![
            "failed".to_string(),
            "interrupted: shutdown (a second stop signal)".to_string()
        ]]
    );
    assert_eq!(scalar(&m.conn(), "SELECT count(*) FROM change_events"), 0);
}

// ---------------------------------------------------------------------------------------
// status

#[test]
fn status_json_reflects_a_failed_run_and_says_when_there_are_none() {
    let m = Mirror::new(15);
    let empty = output(&m.config, &["status"], None);
    assert!(empty.status.success(), "{}", text(&empty.stderr));
    assert!(
        text(&empty.stdout).contains("no runs yet"),
        "{}",
        text(&empty.stdout)
    );

    m.sync_ok();
    m.fake.handle().inject(Fault::new(
        Route::Users,
        FaultKind::Status(500, "boom from the fake".into()),
    ));
    let failed = m.run(&["sync"]);
    assert!(!failed.status.success());

    let out = output(&m.config, &["status", "--json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    let runs = doc["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{doc:#}");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[1]["status"], "succeeded");
    assert!(runs[1]["events_written"].as_i64().unwrap() > 0);
    assert!(
        runs[1]["events"]["user"]["insert"].as_i64().unwrap() >= 15,
        "{doc:#}"
    );
    let error = doc["last_failure"]["error"].as_str().expect("last failure");
    assert!(error.contains("500"), "{error}");
    assert_eq!(doc["last_failure"]["sync_run_id"], runs[0]["sync_run_id"]);
    assert!(doc["database"]["size_bytes"].as_u64().unwrap() > 0);
    assert!(doc["database"]["wal_warning"].is_null());
    assert!(doc["schedule"]["next_run"].as_str().unwrap().ends_with('Z'));

    let human = output(&m.config, &["status"], None);
    assert!(human.status.success());
    let human = text(&human.stdout);
    assert!(human.contains("last failure: run"), "{human}");
    assert!(human.contains("next run at"), "{human}");
}

#[test]
fn status_tells_a_run_in_progress_from_one_whose_process_was_killed() {
    let m = Mirror::new(5);
    m.sync_ok();
    // Rows as a live run and a killed one leave them (no pid is that high: pid_max < 2^22).
    let alive = std::process::id();
    m.conn()
        .execute_batch(&format!(
            "INSERT INTO sync_runs (kind, started_at, status, pid)
             VALUES ('full', '2026-11-28T10:00:00Z', 'running', 2147483646),
                    ('full', '2026-11-28T11:00:00Z', 'running', {alive});"
        ))
        .unwrap();
    let out = output(&m.config, &["status", "--json"], None);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let runs = doc["runs"].as_array().expect("runs");
    assert_eq!(runs[0]["interrupted"], false, "{doc:#}");
    assert_eq!(runs[1]["interrupted"], true, "{doc:#}");
    let human = text(&output(&m.config, &["status"], None).stdout);
    let line = |started: &str| {
        human
            .lines()
            .find(|l| l.contains(started))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("T11:00:00Z").contains("in progress"), "{human}");
    assert!(
        line("T10:00:00Z").contains("its process is gone"),
        "{human}"
    );
}

#[test]
fn status_warns_when_the_wal_is_over_the_limit() {
    let m = Mirror::new(5);
    m.sync_ok();
    append_config(&m, "wal_warn_bytes = 10");
    // Hold a write-ahead entry in place: a reader's open snapshot stops the checkpoint.
    let wal = m.db.with_extension("sqlite-wal");
    std::fs::write(&wal, vec![0u8; 4096]).ok();
    let out = output(&m.config, &["status", "--json"], None);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        doc["database"]["wal_bytes"].as_u64().unwrap() > 10,
        "{doc:#}"
    );
    assert!(
        doc["database"]["wal_warning"]
            .as_str()
            .unwrap()
            .contains("wal_warn_bytes"),
        "{doc:#}"
    );
}

// ---------------------------------------------------------------------------------------
// export

/// The export is one committed state: its events are exactly those of its succeeded runs,
/// and those runs' events equal the final database's.
fn assert_one_committed_state(export: &Path, final_db: &Connection) {
    let e = Connection::open(export).expect("open export");
    let check: String = e
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mode: String = e
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "the copy is self-contained");
    let orphan = scalar(
        &e,
        "SELECT count(*) FROM change_events WHERE sync_run_id NOT IN
             (SELECT sync_run_id FROM sync_runs WHERE status = 'succeeded')",
    );
    assert_eq!(orphan, 0, "events of a run that had not committed");
    for run in rows(
        &e,
        "SELECT sync_run_id, events_written FROM sync_runs WHERE status = 'succeeded'",
    ) {
        let in_export = scalar(
            &e,
            &format!(
                "SELECT count(*) FROM change_events WHERE sync_run_id = {}",
                run[0]
            ),
        );
        let in_final = scalar(
            final_db,
            &format!(
                "SELECT count(*) FROM change_events WHERE sync_run_id = {}",
                run[0]
            ),
        );
        assert_eq!(in_export.to_string(), run[1], "run {} half there", run[0]);
        assert_eq!(
            in_export, in_final,
            "run {} differs from the committed one",
            run[0]
        );
    }
    let members = scalar(&e, "SELECT count(*) FROM group_members_current");
    let net = scalar(
        &e,
        "SELECT coalesce(sum(CASE op WHEN 'insert' THEN 1 WHEN 'delete' THEN -1 ELSE 0 END), 0)
         FROM change_events WHERE entity = 'group_membership'",
    );
    assert_eq!(members, net);
}

/// Changes the fake org a little: some users renamed, a membership flipped.
fn churn(m: &Mirror, round: usize) {
    let h = m.fake.handle();
    let users = h.user_ids();
    let groups = h.group_ids();
    for (i, u) in users.iter().enumerate().skip(round % 3).step_by(3).take(40) {
        h.rename_user(*u, &format!("Renamed {round} {i}"));
    }
    if let (Some(g), Some(u)) = (
        groups.get(round % groups.len().max(1)),
        users.get(round + 1),
    ) {
        if h.group_members(*g).contains(u) {
            h.leave_group(*g, *u);
        } else {
            h.join_group(*g, *u);
        }
    }
}

/// Runs `sync` in a loop with churn between runs until `stop` is set; returns the runs done.
fn sync_loop(m: &Mirror, stop: &std::sync::atomic::AtomicBool) -> usize {
    let mut round = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        churn(m, round);
        let out = m.run(&["sync"]);
        assert!(out.status.success(), "sync failed: {}", text(&out.stderr));
        round += 1;
    }
    round
}

#[test]
fn export_while_a_sync_writes_is_one_committed_state() {
    let m = Mirror::new(300);
    m.sync_ok();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let exports: Vec<PathBuf> = (0..6)
        .map(|i| dir_of(&m).join(format!("export-{i}.sqlite")))
        .collect();
    std::thread::scope(|s| {
        let writer = s.spawn(|| sync_loop(&m, &stop));
        for path in &exports {
            std::thread::sleep(Duration::from_millis(250));
            let out = output(
                &m.config,
                &["export", "--out", path.to_str().unwrap()],
                None,
            );
            assert!(out.status.success(), "export failed: {}", text(&out.stderr));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(writer.join().expect("writer") >= 1);
    });
    let final_db = m.conn();
    for path in &exports {
        assert_one_committed_state(path, &final_db);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir_of(&m))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn export_refuses_to_overwrite_without_force_and_writes_csv() {
    let m = Mirror::new(12);
    m.sync_ok();
    let out_path = dir_of(&m).join("copy.sqlite");
    std::fs::write(&out_path, b"precious").unwrap();
    let refused = output(
        &m.config,
        &["export", "--out", out_path.to_str().unwrap()],
        None,
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("--force"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), b"precious");

    let csv_dir = dir_of(&m).join("csv");
    let done = output(
        &m.config,
        &[
            "export",
            "--out",
            out_path.to_str().unwrap(),
            "--force",
            "--csv",
            csv_dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert_one_committed_state(&out_path, &m.conn());
    for view in orgmirror::CSV_VIEWS {
        let csv = std::fs::read_to_string(csv_dir.join(format!("{view}.csv"))).expect(view);
        let header = csv.lines().next().unwrap_or_default();
        assert!(!header.is_empty(), "{view}.csv has no header");
    }
    let users = std::fs::read_to_string(csv_dir.join("users_current.csv")).unwrap();
    assert!(
        users.starts_with("organization_user_id,user_account_id,"),
        "{users}"
    );
    // A header and one line per user (names and e-mails of the fake hold no line breaks).
    assert_eq!(users.matches("\r\n").count(), 1 + 12);
    let again = output(
        &m.config,
        &[
            "export",
            "--out",
            dir_of(&m).join("other.sqlite").to_str().unwrap(),
            "--csv",
            csv_dir.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(
        again.status.code(),
        Some(2),
        "CSV files overwritten without --force"
    );
    // Refused before the database copy was written: no half of an export.
    assert!(!dir_of(&m).join("other.sqlite").exists());
}

#[test]
fn export_refuses_to_write_over_the_mirror_or_its_own_files_even_with_force() {
    let m = Mirror::new(12);
    m.sync_ok();
    let before = dump_current(&m.db);
    let dir = dir_of(&m);
    let name = m.db.file_name().unwrap().to_str().unwrap().to_string();
    // The same file by another spelling, and the files SQLite and orgmirror keep beside it.
    let targets = [
        dir.join("..").join(dir.file_name().unwrap()).join(&name),
        dir.join(format!("{name}-wal")),
        dir.join(format!("{name}.lock")),
    ];
    for out in &targets {
        let refused = output(
            &m.config,
            &["export", "--out", out.to_str().unwrap(), "--force"],
            None,
        );
        let stderr = text(&refused.stderr);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{}: {stderr}",
            out.display()
        );
        assert!(stderr.contains("the mirror's"), "{stderr}");
    }
    assert_eq!(dump_current(&m.db), before);
    m.sync_ok();
}

#[test]
fn a_reader_in_the_group_reads_the_mirror_while_no_orgmirror_process_runs() {
    let m = Mirror::new(12);
    let mut config = std::fs::read_to_string(&m.config).unwrap();
    config.push_str("group_readable = true\n");
    std::fs::write(&m.config, config).unwrap();
    // Not `sync_ok`: its read-write check connection, closing last, would remove the files.
    let out = m.run(&["sync"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Copies for BI tools are for the group too.
    let (copy, csv) = (dir_of(&m).join("copy.sqlite"), dir_of(&m).join("csv"));
    let out = m.run(&[
        "export",
        "--out",
        copy.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for file in [copy, csv.join("users_current.csv")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", file.display());
    }
    // The -wal and -shm files outlive the process, in the database's mode.
    for suffix in ["-wal", "-shm"] {
        let mut p = m.db.clone().into_os_string();
        p.push(suffix);
        let meta = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{suffix}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o640, "{suffix}");
    }
    // The system's Python (a user's pyenv shim is not for another user to run).
    let python = Path::new("/usr/bin/python3");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !python.exists() {
        // CI runs as root with the system's Python (.ci/run): there the read must happen.
        assert!(
            std::env::var_os("CI").is_none(),
            "in CI the read as another user must run (root, /usr/bin/python3)"
        );
        eprintln!("SKIPPED the read as another user (not root, or no /usr/bin/python3); the files' presence was checked");
        return;
    }
    // As the unit has it: the directory 0750, a reader in its group who may read the files
    // but not create any beside them.
    let dir = dir_of(&m);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    let gid = std::fs::metadata(&m.db).unwrap().gid();
    let read = |script: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", &format!("--regid={gid}"), "--clear-groups"])
            .arg(python)
            .args(["-c", script, m.db.to_str().unwrap()])
            .output()
            .expect("setpriv runs")
    };
    // The temp dir's parents must let another user through (they do under /tmp).
    let reachable = read("import os,sys; sys.exit(0 if os.access(sys.argv[1], os.R_OK) else 1)");
    if !reachable.status.success() {
        eprintln!(
            "another user cannot reach {}: the read was not tried",
            dir.display()
        );
        return;
    }
    let cannot_write = read(
        "import os,sys; sys.exit(0 if not os.access(os.path.dirname(sys.argv[1]), os.W_OK) else 1)",
    );
    assert!(
        cannot_write.status.success(),
        "the reader could write the directory"
    );
    let out = read(
        "import sqlite3,sys; c=sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); \
         print(c.execute('SELECT count(*) FROM users_current').fetchone()[0])",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "12");
}

// ---------------------------------------------------------------------------------------
// check

#[test]
fn check_passes_and_reports_each_kind_of_problem_distinctly() {
    let m = Mirror::new(5);
    let ok = output(&m.config, &["check"], Some("demo-token"));
    // My groups, the roles, the first page of the teams and of the users, one user by id,
    // the audit log: six requests, nothing written.
    assert_eq!(m.fake.handle().request_count(), 6);
    assert!(!m.db.exists(), "check created the database");
    assert!(
        ok.status.success(),
        "{}\n{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    let stdout = text(&ok.stdout);
    assert!(
        stdout.contains("all good") && stdout.contains("quota headers:"),
        "{stdout}"
    );

    let config_in = |name: &str, api: &str, db: &str| {
        let path = dir_of(&m).join(name);
        let db = dir_of(&m).join(db);
        let workspace = if api.contains("workspace_id") {
            ""
        } else {
            "workspace_id = 2001\n"
        };
        std::fs::write(
            &path,
            format!(
                "[api]\norganization_id = 1001\n{workspace}max_attempts = 1\nmax_requests_per_second = 0\nconnect_timeout = \"2s\"\n{api}\n[database]\npath = {:?}\n",
                db.display().to_string()
            ),
        )
        .unwrap();
        path
    };
    let config_with = |name: &str, api: &str| config_in(name, api, "check.sqlite");
    Connection::open(dir_of(&m).join("foreign.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT)")
        .unwrap();
    let base = format!("base_url = {:?}", m.fake.base_url());
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    struct Case {
        what: &'static str,
        config: PathBuf,
        token: Option<&'static str>,
        exit: i32,
        says: &'static [&'static str],
    }
    let cases = [
        Case {
            what: "bad key",
            config: config_with("bad-key.toml", &format!("{base}\nper_pagez = 3")),
            token: Some("demo-token"),
            exit: 2,
            says: &["config is not valid", "per_pagez"],
        },
        Case {
            what: "unreachable host",
            config: config_with(
                "closed.toml",
                &format!("base_url = \"http://127.0.0.1:{closed_port}/api\""),
            ),
            token: Some("demo-token"),
            exit: 1,
            says: &["cannot reach the API"],
        },
        Case {
            what: "wrong token",
            config: config_with("wrong-token.toml", &base),
            token: Some("not-the-token"),
            exit: 2,
            // The default (focus) profile refuses an unknown key with 401.
            says: &["refused the credentials", "401"],
        },
        Case {
            what: "a workspace the user may not list groups through",
            config: config_with(
                "wrong-workspace.toml",
                &format!("{base}\nworkspace_id = 999"),
            ),
            token: Some("demo-token"),
            exit: 2,
            says: &["api.workspace_id = 999", "403"],
        },
        Case {
            what: "another program's database",
            config: config_in("foreign-db.toml", &base, "foreign.sqlite"),
            token: Some("demo-token"),
            exit: 1,
            says: &["not an orgmirror database"],
        },
        Case {
            what: "plain http to a remote host",
            config: config_with(
                "remote-http.toml",
                "base_url = \"http://focus.example.com/api\"",
            ),
            token: Some("demo-token"),
            exit: 2,
            says: &["api.base_url", "plain http"],
        },
        Case {
            what: "missing credentials",
            config: config_with("no-creds.toml", &base),
            token: None,
            exit: 2,
            says: &["no credentials", "TOGGL_API_TOKEN"],
        },
    ];
    let mut messages = Vec::new();
    for case in &cases {
        let out = output(&case.config, &["check"], case.token);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(case.exit),
            "{}: {stderr}",
            case.what
        );
        for s in case.says {
            assert!(
                stderr.contains(s),
                "{}: expected {s:?} in {stderr}",
                case.what
            );
        }
        assert!(
            !stderr.contains("not-the-token"),
            "{}: the token leaked: {stderr}",
            case.what
        );
        messages.push(stderr.lines().last().unwrap_or_default().to_string());
    }
    let distinct: std::collections::BTreeSet<_> = messages.iter().collect();
    assert_eq!(distinct.len(), messages.len(), "{messages:#?}");
}

// ---------------------------------------------------------------------------------------
// Logs

#[test]
fn json_logs_are_one_object_per_line_and_never_show_the_token() {
    const TOKEN: &str = "tok-Zq81-very-secret";
    let m = Mirror::with(
        FakeOptions {
            users: 10,
            token: TOKEN.to_string(),
            ..Default::default()
        },
        "",
    );
    // Every level of every crate that logs (HTTP, TLS, SQLite bindings included).
    append_config(&m, "[log]\nformat = \"json\"\nlevel = \"trace\"");
    let out = output(&m.config, &["sync"], Some(TOKEN));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let basic = base64_of(&format!("{TOKEN}:api_token"));
    let mut summaries = 0;
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.is_object(), "{line}");
        assert!(
            !line.contains(TOKEN) && !line.contains(&basic),
            "the token is in a log line: {line}"
        );
        if v["message"] == "sync finished" {
            summaries += 1;
            assert_eq!(v["status"], "succeeded", "{line}");
        }
    }
    assert_eq!(summaries, 1, "one summary event per run:\n{stderr}");
    // Nor in the database: every byte of the file and of its WAL.
    let wal = std::path::PathBuf::from(format!("{}-wal", m.db.display()));
    for file in [m.db.clone(), wal] {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for secret in [TOKEN, basic.as_str()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the token is in {}",
                file.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// systemd

/// The unit with ExecStart pointing at the built binary, in a temp dir.
fn unit_copy(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/orgmirror.service"
    ))
    .expect("systemd/orgmirror.service");
    assert!(unit
        .contains("ExecStart=/usr/local/bin/orgmirror --config /etc/orgmirror/orgmirror.toml run"));
    let path = dir.join("orgmirror.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/orgmirror", bin())).unwrap();
    path
}

fn systemd_analyze() -> Option<&'static str> {
    let path = "/usr/bin/systemd-analyze";
    if Path::new(path).exists() {
        Some(path)
    } else {
        // .ci/run installs systemd: in CI a missing systemd-analyze is a failure, not a skip.
        assert!(std::env::var_os("CI").is_none(), "{path} is missing in CI");
        println!(
            "SKIPPED: {path} is missing (install the `systemd` package to verify the unit file)"
        );
        None
    }
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path());
    let text_of = |o: &Output| format!("{}{}", text(&o.stdout), text(&o.stderr));

    let verify = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "systemd-analyze verify:\n{}",
        text_of(&verify)
    );

    let security = Command::new(analyze)
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = text_of(&security);
    assert!(
        security.status.success(),
        "systemd-analyze security:\n{report}"
    );
    let score: f64 = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{report}"));
    println!("systemd-analyze security exposure: {score}");
    assert!(score <= 1.5, "exposure {score} > 1.5:\n{report}");

    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "User=orgmirror",
        "Group=orgmirror",
        "StateDirectory=orgmirror",
        "StateDirectoryMode=0750",
        "LoadCredential=toggl_api_token:/etc/orgmirror/toggl_api_token",
        "UMask=0027",
    ] {
        assert!(unit_text.lines().any(|l| l == line), "missing {line}");
    }
    assert!(
        !unit_text.contains("DynamicUser"),
        "BI users join the service's fixed group"
    );
    assert!(
        !unit_text.contains("IPAddressDeny"),
        "the service must reach the API"
    );
}

/// The probe's timer and service (README, "Is the data current?") verify, and the service's
/// command is `status --check`, which passes on a fresh mirror.
#[test]
fn the_check_timer_and_service_verify_and_run_the_probe() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let service = std::fs::read_to_string(repo.join("orgmirror-check.service")).unwrap();
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    assert_eq!(
        exec,
        "/usr/local/bin/orgmirror --config /etc/orgmirror/orgmirror.toml status --check"
    );
    let m = Mirror::new(5);
    m.sync_ok();
    let args: Vec<String> = exec
        .replace(
            "/etc/orgmirror/orgmirror.toml",
            &m.config.display().to_string(),
        )
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    let out = Command::new(bin())
        .args(&args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: last success "),
        "{}",
        text(&out.stdout)
    );

    let Some(analyze) = systemd_analyze() else {
        return;
    };
    std::fs::write(
        dir.path().join("orgmirror-check.service"),
        service.replace("/usr/local/bin/orgmirror", bin()),
    )
    .unwrap();
    std::fs::copy(
        repo.join("orgmirror-check.timer"),
        dir.path().join("orgmirror-check.timer"),
    )
    .unwrap();
    for unit in ["orgmirror-check.service", "orgmirror-check.timer"] {
        let verify = Command::new(analyze)
            .args(["verify", "--man=no"])
            .arg(dir.path().join(unit))
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "systemd-analyze verify {unit}:\n{}{}",
            text(&verify.stdout),
            text(&verify.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Real BI clients on the live file

const BI_READER: &str = r#"
import glob, os, sqlite3, sys, time
db, seconds = sys.argv[1], float(sys.argv[2])
VIEWS = ["users_current", "groups_current", "group_members_current", "roles_current",
         "role_permissions_current", "group_membership_history", "rate_history",
         "change_events", "sync_runs"]
NET = "SELECT coalesce(sum(CASE op WHEN 'insert' THEN 1 WHEN 'delete' THEN -1 ELSE 0 END), 0) FROM {p}change_events WHERE entity = '{e}'"
# Contract views over WITHOUT ROWID tables break DuckDB's count(*) (its scanner asks for
# ROWID), so the contract views read rowid tables only; count(*) below proves it.
CHECKS = [("users_current", "user"), ("groups_current", "group"), ("group_members_current", "group_membership")]

def check(run, prefix, label):
    counts = {v: run(f"SELECT count(*) FROM {prefix}{v}") for v in VIEWS}
    for view, entity in CHECKS:
        net = run(NET.format(p=prefix, e=entity))
        if counts[view] != net:
            sys.exit(f"{label}: {view} has {counts[view]} rows but the events net {net}: a half-applied run")
    written = run(f"SELECT coalesce(sum(events_written), 0) FROM {prefix}sync_runs WHERE status = 'succeeded'")
    if written != counts["change_events"]:
        sys.exit(f"{label}: {counts['change_events']} events but succeeded runs wrote {written}")
    return counts

export, mode = sys.argv[3], sys.argv[4]
# The two clients run in separate processes, as BI tools do: two copies of SQLite in one
# process (Python's and DuckDB's scanner) break each other's POSIX locks, which SQLite
# documents as a way to corrupt a database ("How To Corrupt", 2.2.1).
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, timeout=10) if mode == "sqlite3" else None
duck, why = None, None
try:
    if mode != "duckdb":
        raise RuntimeError("not this process's client")
    import duckdb
    ext = None
    for mod in ("duckdb_extension_sqlite_scanner", "duckdb_ext"):
        try:
            m = __import__(mod)
            found = glob.glob(os.path.join(os.path.dirname(m.__file__), "extensions", "**", "sqlite_scanner.duckdb_extension"), recursive=True)
            if found:
                ext = found[0]
                break
        except ImportError:
            pass
    # DuckDB's SQLite scanner reads each table in a transaction of its own, so one DuckDB
    # query may pair tables of different runs: the consistency checks run on an export
    # (what the README tells DuckDB users to read); on the live file DuckDB must simply
    # never fail, while syncs write and sqlite3 reads beside it.
    duck = duckdb.connect()
    if ext:
        duck.execute(f"LOAD '{ext}'")
    else:
        duck.execute("LOAD sqlite")
except Exception as e:
    duck, why = None, f"{type(e).__name__}: {e}".splitlines()[0]

if duck is not None:
    duck.execute(f"ATTACH '{export}' AS e (TYPE sqlite, READ_ONLY)")
    for v in VIEWS:
        duck.execute(f"SELECT * FROM e.{v}").fetchall()
    check(lambda q: duck.execute(q).fetchone()[0], "e.", "duckdb on an export")
    print("duckdb_export_consistent=1")
    duck.execute(f"ATTACH '{db}' AS live (TYPE sqlite, READ_ONLY)")
rounds = 0
end = time.time() + seconds
while time.time() < end:
    if con is not None:
        con.execute("BEGIN")
        check(lambda q: con.execute(q).fetchone()[0], "", "sqlite3")
        con.execute("COMMIT")
    elif duck is not None:
        for v in VIEWS:
            duck.execute(f"SELECT count(*) FROM live.{v}").fetchone()
    else:
        break
    rounds += 1
print(f"{mode}_rounds={rounds}")
if mode == "duckdb" and duck is None:
    print(f"duckdb_skipped={why}")
"#;

#[test]
fn bi_clients_reading_the_live_file_never_see_an_error_or_a_half_applied_run() {
    let m = Mirror::new(300);
    m.sync_ok();
    let script = dir_of(&m).join("bi_reader.py");
    std::fs::write(&script, BI_READER).unwrap();
    let export = dir_of(&m).join("for-duckdb.sqlite");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (reader, runs) = std::thread::scope(|s| {
        let writer = s.spawn(|| sync_loop(&m, &stop));
        std::thread::sleep(Duration::from_millis(700));
        let out = output(
            &m.config,
            &["export", "--out", export.to_str().unwrap()],
            None,
        );
        assert!(out.status.success(), "export failed: {}", text(&out.stderr));
        let reader = |mode: &str| {
            Command::new("python3")
                .arg(&script)
                .arg(&m.db)
                .arg("5")
                .arg(&export)
                .arg(mode)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python3 runs")
        };
        let (sqlite_reader, duck_reader) = (reader("sqlite3"), reader("duckdb"));
        let outputs = [sqlite_reader, duck_reader].map(|r| r.wait_with_output().expect("reader"));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (outputs, writer.join().expect("writer"))
    });
    let [reader, duck_reader] = reader;
    let live: String = m
        .conn()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(live, "ok", "the live database after the readers");
    let stdout = text(&reader.stdout);
    assert!(
        reader.status.success(),
        "BI reader failed:\n{stdout}\n{}",
        text(&reader.stderr)
    );
    println!("{stdout}syncs during the read: {runs}");
    assert!(
        runs >= 2,
        "the writer ran only {runs} syncs during the read"
    );
    let rounds: i64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sqlite3_rounds="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(rounds > 10, "{stdout}");
    let stdout = text(&duck_reader.stdout);
    println!("{stdout}");
    assert!(
        duck_reader.status.success(),
        "DuckDB reader failed:\n{stdout}\n{}",
        text(&duck_reader.stderr)
    );
    match stdout
        .lines()
        .find_map(|l| l.strip_prefix("duckdb_skipped="))
    {
        Some(why) => {
            // .ci/run installs DuckDB: in CI a missing DuckDB is a failure, not a skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "DuckDB is missing in CI: {why}"
            );
            println!(
                "SKIPPED the DuckDB half: {why} (pip install duckdb duckdb-extension-sqlite-scanner)"
            )
        }
        None => {
            assert!(stdout.contains("duckdb_export_consistent=1"), "{stdout}");
            let live: i64 = stdout
                .lines()
                .find_map(|l| l.strip_prefix("duckdb_rounds="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(
                live > 3,
                "DuckDB read the live file too few times: {stdout}"
            );
        }
    }
}

#[path = "daemon_edges.rs"]
mod edges;

#[path = "alerts.rs"]
mod alerts;
#[path = "health.rs"]
mod health;
#[path = "published.rs"]
mod published;
#[path = "survives_daemon.rs"]
mod survives;

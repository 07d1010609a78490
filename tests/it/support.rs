//! Helpers shared by the integration tests: a fake organization, a config pointing at
//! it, the binary, and queries against the resulting database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use orgmirror_fake::{FakeHandle, FakeOptions, FakeServer};
use rusqlite::Connection;

/// The workspace whose custom fields [`CUSTOM_FIELDS`] mirrors: the fake's first.
pub const CUSTOM_FIELDS_WORKSPACE: i64 = 2001;

/// `Mirror::with`'s extra config that mirrors the custom fields of the fake's first workspace.
pub const CUSTOM_FIELDS: &str = "[sync]\ncustom_fields_workspace_id = 2001\n";

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_orgmirror")
}

/// A fake organization and a config + database in a temp dir.
pub struct Mirror {
    pub fake: FakeServer,
    /// Kept so the directory lives as long as the mirror.
    pub _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
}

impl Mirror {
    /// A fake org of `users` users and a config with `extra` TOML appended to `[api]`.
    pub fn new(users: usize) -> Mirror {
        Mirror::with(
            FakeOptions {
                users,
                ..Default::default()
            },
            "",
        )
    }

    pub fn with(options: FakeOptions, api_extra: &str) -> Mirror {
        let fake = FakeServer::start_background(options.clone()).expect("fake starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("org.sqlite");
        let config = dir.path().join("orgmirror.toml");
        // Fast retries and no pacing (the built-in fake needs none) unless `api_extra`
        // sets its own (a key may appear only once).
        let fast: String = [
            ("max_requests_per_second", "0"),
            ("initial_backoff", "\"10ms\""),
            ("max_backoff", "\"50ms\""),
            ("request_timeout", "\"5s\""),
        ]
        .iter()
        .filter(|(key, _)| !api_extra.lines().any(|l| l.trim_start().starts_with(key)))
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
        let text = format!(
            "[api]\nbase_url = {:?}\norganization_id = {}\nworkspace_id = {}\n{fast}{api_extra}\n\
             [database]\npath = {:?}\n",
            fake.base_url(),
            options.organization_id,
            options.workspace_id,
            db.display().to_string()
        );
        std::fs::write(&config, text).expect("write config");
        Mirror {
            fake,
            _dir: dir,
            config,
            db,
        }
    }

    /// Runs `orgmirror --config … ARGS` with the demo token.
    pub fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("TOGGL_API_TOKEN", "demo-token")
            .env_remove("TOGGL_EMAIL")
            .env_remove("TOGGL_PASSWORD")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("RUST_LOG")
            .output()
            .expect("binary runs")
    }

    /// `sync`, asserting it succeeded.
    pub fn sync_ok(&self) -> Output {
        let out = self.run(&["sync"]);
        assert!(
            out.status.success(),
            "sync failed: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_references_hold(&self.db);
        assert_one_time_per_run(&self.db);
        out
    }

    pub fn conn(&self) -> Connection {
        Connection::open(&self.db).expect("open db")
    }

    /// Points the config at another fake (the same organization from another server).
    pub fn point_at(&self, other: &FakeServer) {
        let config = std::fs::read_to_string(&self.config).expect("read config");
        let config = config.replace(&self.fake.base_url(), &other.base_url());
        std::fs::write(&self.config, config).expect("write config");
    }
}

/// `faketime`, which tests of times need (runs at chosen wall-clock times): .ci/run installs it.
pub fn faketime() -> Option<&'static str> {
    let path = "/usr/bin/faketime";
    if Path::new(path).exists() {
        Some(path)
    } else {
        assert!(std::env::var_os("CI").is_none(), "{path} is missing in CI");
        println!("SKIPPED: {path} is missing (install the `faketime` package)");
        None
    }
}

/// `orgmirror --config … ARGS` with the wall clock at `at` (faketime's syntax: `@…` starts
/// the clock there and lets it run; without `@` it stands still), and `env` set. The
/// monotonic clock is left alone, so timers and timeouts work as always.
pub fn run_at(faketime: &str, m: &Mirror, at: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    std::process::Command::new(faketime)
        .arg("-f")
        .arg(at)
        .arg(bin())
        .arg("--config")
        .arg(&m.config)
        .args(args)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("TOGGL_API_TOKEN", "demo-token")
        .envs(env.iter().copied())
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .output()
        .expect("faketime runs")
}

/// `sync` with the wall clock at `at`, asserting it succeeded and left sound references and
/// times; returns its stderr.
pub fn sync_at(faketime: &str, m: &Mirror, at: &str) -> String {
    let out = run_at(faketime, m, at, &["sync"], &[]);
    assert!(
        out.status.success(),
        "sync at {at} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_references_hold(&m.db);
    assert_one_time_per_run(&m.db);
    text(&out.stderr)
}

/// `name's`, or `name'` after an s, as the change feed writes it.
pub fn possessive(name: &str) -> String {
    if name.ends_with('s') {
        format!("{name}'")
    } else {
        format!("{name}'s")
    }
}

/// `orgmirror --config CONFIG ARGS` with only `env` as credentials (and no `RUST_LOG`).
pub fn run_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(bin());
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("TOGGL_API_TOKEN")
        .env_remove("TOGGL_EMAIL")
        .env_remove("TOGGL_PASSWORD")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("binary runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Rows of a query as strings, for comparisons.
pub fn rows(conn: &Connection, sql: &str) -> Vec<Vec<String>> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = stmt.column_count();
    let mut out = Vec::new();
    let mut q = stmt.query([]).expect("query");
    while let Some(r) = q.next().expect("row") {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(match r.get_ref(i).expect("cell") {
                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Real(v) => format!("{v}"),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
            });
        }
        out.push(row);
    }
    out
}

pub fn scalar(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The declared foreign keys hold (the writer does not have SQLite enforce them).
pub fn assert_references_hold(db: &Path) {
    let broken = rows(
        &Connection::open(db).expect("open"),
        "PRAGMA foreign_key_check",
    );
    assert!(broken.is_empty(), "foreign keys broken: {broken:?}");
}

/// Each run's events and the history rows it opened or closed carry one time, its
/// `observed_at` (ARCHITECTURE.md, invariants).
pub fn assert_one_time_per_run(db: &Path) {
    let runs_with_two_times = rows(
        &Connection::open(db).expect("open"),
        "SELECT run FROM (
             SELECT sync_run_id AS run, observed_at AS at FROM change_events
             UNION SELECT opened_by, valid_from FROM entity_history
             UNION SELECT closed_by, valid_to FROM entity_history WHERE closed_by IS NOT NULL)
         GROUP BY run HAVING count(*) > 1",
    );
    assert!(
        runs_with_two_times.is_empty(),
        "runs with more than one time: {runs_with_two_times:?}"
    );
}

/// Every current table, dumped in key order: for "nothing changed" comparisons.
pub fn dump_current(db: &Path) -> BTreeMap<String, Vec<Vec<String>>> {
    let conn = Connection::open(db).expect("open");
    let tables = [
        "users",
        "user_workspaces",
        "user_tags",
        "user_rates",
        "groups",
        "group_workspaces",
        "group_ghosts",
        "group_members",
        "roles",
        "role_permissions",
        "workspaces",
        "entity_history",
        "change_events",
    ];
    tables
        .iter()
        .map(|t| {
            (
                t.to_string(),
                rows(&conn, &format!("SELECT * FROM {t} ORDER BY 1, 2")),
            )
        })
        .collect()
}

/// `(entity, op) -> count` of the events of one run.
pub fn events_of_run(conn: &Connection, run: i64) -> BTreeMap<(String, String), i64> {
    rows(
        conn,
        &format!("SELECT entity, op, count(*) FROM change_events WHERE sync_run_id = {run} GROUP BY 1, 2"),
    )
    .into_iter()
    .map(|r| ((r[0].clone(), r[1].clone()), r[2].parse().unwrap_or(0)))
    .collect()
}

pub fn last_run(conn: &Connection) -> i64 {
    scalar(conn, "SELECT max(sync_run_id) FROM sync_runs")
}

/// Standard base64, as HTTP Basic sends the credentials.
pub fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The output's stdout, asserting the command succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({:?}):\n{}\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The fake's groups as `[id, name]` rows.
pub fn fake_groups(org: &FakeHandle) -> BTreeSet<Vec<String>> {
    org.group_ids()
        .into_iter()
        .map(|id| vec![id.to_string(), org.group(id).expect("group").name])
        .collect()
}

/// The fake's memberships as `[group_id, organization_user_id]` rows.
pub fn fake_memberships(org: &FakeHandle) -> BTreeSet<Vec<String>> {
    org.group_ids()
        .into_iter()
        .flat_map(|g| {
            org.group_members(g)
                .into_iter()
                .map(move |u| vec![g.to_string(), u.to_string()])
        })
        .collect()
}

/// `orgmirror demo --users N --db DB` (without `RUST_LOG`, so its output is the demo's own).
pub fn run_demo(db: &Path, users: usize) -> Output {
    std::process::Command::new(bin())
        .args(["demo", "--users", &users.to_string(), "--db"])
        .arg(db)
        .env_remove("RUST_LOG")
        .output()
        .expect("demo runs")
}

/// The shell line `command` run on a pseudo-terminal (util-linux `script`), as a person at a
/// terminal would run it; its stdout is what the terminal showed.
pub fn on_a_terminal(command: &str) -> Output {
    std::process::Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .output()
        .expect("script (util-linux) runs")
}

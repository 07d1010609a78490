//! The PostgreSQL replica against a real PostgreSQL: a throwaway cluster (Debian's
//! `postgresql` package, `initdb` + `pg_ctl` in a temp dir, 127.0.0.1 on a free port, run as
//! `nobody` when the tests run as root), shared by this module's tests with a schema each;
//! the test that stops PostgreSQL has a cluster of its own.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use orgmirror_fake::{FakeOptions, KeyExpiry};

use crate::support::{
    assert_one_time_per_run, assert_references_hold, bin, last_run, ok, rows, scalar, text, Mirror,
};

/// The password of the clusters' superuser `orgmirror` (scram over TCP).
const PASSWORD: &str = "replica-test-password";

/// A throwaway PostgreSQL cluster.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// `runuser -u nobody --` when running as root (PostgreSQL refuses root).
    as_user: Option<&'static str>,
    /// Server options beyond the listening ones (TLS).
    extra: String,
}

/// The newest `/usr/lib/postgresql/*/bin` with `initdb`, or None (SKIPPED; a failure in CI).
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Some(bin),
        None => {
            // .ci/run installs postgresql: in CI a missing PostgreSQL is a failure, not a skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL (/usr/lib/postgresql/*/bin/initdb) is missing in CI"
            );
            println!("SKIPPED: PostgreSQL is not installed (apt-get install -y postgresql)");
            None
        }
    }
}

impl Cluster {
    /// Starts a new cluster, or None when PostgreSQL is not installed (outside CI).
    pub fn start() -> Option<Cluster> {
        Cluster::start_with(false)
    }

    /// A cluster that takes TCP connections only over TLS, with a certificate for
    /// `localhost` signed by a CA of its own; returns the CA's PEM file too.
    pub fn start_tls() -> Option<(Cluster, PathBuf)> {
        let cluster = Cluster::start_with(true)?;
        let ca = cluster.dir.join("ca.pem");
        Some((cluster, ca))
    }

    fn start_with(tls: bool) -> Option<Cluster> {
        let bin = postgres_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("orgmirror-pg-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let root = unsafe { libc::geteuid() } == 0;
        let as_user = root.then_some("nobody");
        std::fs::write(dir.join("pw"), PASSWORD).unwrap();
        if root {
            let (uid, gid) = user_ids("nobody");
            for p in [dir.clone(), dir.join("pw")] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown");
            }
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().unwrap().port()
        };
        let mut cluster = Cluster {
            bin,
            dir,
            port,
            as_user,
            extra: String::new(),
        };
        let data = cluster.dir.join("data");
        let out = cluster
            .pg_command("initdb")
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "orgmirror",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", cluster.dir.join("pw").display()))
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        if tls {
            cluster.make_certificates(root);
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n",
            )
            .unwrap();
            cluster.extra = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cluster.dir.join("server.crt").display(),
                cluster.dir.join("server.key").display()
            );
        }
        cluster.start_again();
        Some(cluster)
    }

    /// A CA and a server certificate for `localhost` (openssl), readable by the server.
    fn make_certificates(&self, root: bool) {
        let d = &self.dir;
        let sh = format!(
            "set -e; cd {dir}; \
             openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -subj /CN=orgmirror-test-ca -days 2; \
             openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost; \
             printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext; \
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext; \
             chmod 600 server.key",
            dir = d.display()
        );
        let out = Command::new("bash")
            .args(["-c", &sh])
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "certificates: {}", text(&out.stderr));
        if root {
            let (uid, gid) = user_ids("nobody");
            for f in ["server.key", "server.crt"] {
                std::os::unix::fs::chown(d.join(f), Some(uid), Some(gid)).expect("chown");
            }
        }
    }

    fn pg_command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    /// (Re)starts the server on its port.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c client_connection_check_interval=1000{}",
            self.port,
            self.dir.display(),
            self.extra
        );
        let out = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-o", &options, "-w", "start"])
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}\n{}",
            text(&out.stdout),
            text(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    /// Stops the server (fast: open connections are ended).
    pub fn stop(&self) {
        let _ = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    /// `postgres://orgmirror@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://orgmirror@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL with psql over TCP; returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.try_psql(sql);
        assert!(out.status.success(), "psql {sql}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    fn try_psql(&self, sql: &str) -> Output {
        self.psql_to(&self.url(), PASSWORD)
            .args(["-c", sql])
            .env("PGTZ", "UTC")
            .output()
            .expect("psql runs")
    }

    /// psql to `url` as `password`'s role, its output unaligned and tuples only, stopping at
    /// the first error.
    fn psql_to(&self, url: &str, password: &str) -> Command {
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-F",
            "|",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
        ])
        .arg(url)
        .env("PGPASSWORD", password);
        psql
    }

    /// Starts psql in the background with `sql` on its stdin (kept open until the child is dropped).
    fn psql_session(&self) -> std::process::Child {
        Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .env("PGPASSWORD", PASSWORD)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("psql starts")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn user_ids(name: &str) -> (u32, u32) {
    let cname = std::ffi::CString::new(name).unwrap();
    // SAFETY: getpwnam returns a pointer into static storage or NULL; read at once.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    assert!(!pw.is_null(), "no user {name}");
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

/// The cluster this module's tests share (stopped when the test binary exits).
fn shared() -> Option<&'static Cluster> {
    static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
    extern "C" fn stop_shared() {
        if let Some(Some(c)) = SHARED.get() {
            let _ = c
                .pg_command("pg_ctl")
                .arg("-D")
                .arg(c.dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .output();
            let _ = std::fs::remove_dir_all(&c.dir);
        }
    }
    SHARED
        .get_or_init(|| {
            let c = Cluster::start();
            // SAFETY: registers a plain extern "C" fn to run at exit.
            unsafe { libc::atexit(stop_shared) };
            c
        })
        .as_ref()
}

/// A mirror of a fake organization with `[replica.postgres]` into `schema`.
fn mirror_with_replica(
    cluster: &Cluster,
    users: usize,
    organization_id: i64,
    schema: &str,
) -> Mirror {
    let m = Mirror::with(
        FakeOptions {
            users,
            organization_id,
            ..Default::default()
        },
        "",
    );
    let mut config = std::fs::read_to_string(&m.config).unwrap();
    config.push_str(&format!(
        "\n[replica.postgres]\nurl = {:?}\nschema = {schema:?}\nconnect_timeout = \"3s\"\n",
        cluster.url()
    ));
    std::fs::write(&m.config, config).unwrap();
    m
}

/// Runs the binary with the test token and the replica's password.
fn run(m: &Mirror, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(&m.config)
        .args(args)
        .env("TOGGL_API_TOKEN", "demo-token")
        .env("PGPASSWORD", PASSWORD)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs")
}

fn sync(m: &Mirror) -> Output {
    let out = run(m, &["sync"]);
    ok(&out);
    assert_references_hold(&m.db);
    assert_one_time_per_run(&m.db);
    out
}

/// The run the replica holds of `organization`.
fn replica_run(cluster: &Cluster, schema: &str, organization: i64) -> Option<i64> {
    cluster
        .psql(&format!(
            "SELECT sync_run_id FROM {schema}.replica_progress WHERE organization_id = {organization}"
        ))
        .trim()
        .parse()
        .ok()
}

/// Each contract view, read on both sides with queries of their own (not orgmirror's verify),
/// rendered to the same text: ids, names, flags, rates, instants as epoch seconds, JSON
/// without spaces.
fn assert_same_views(m: &Mirror, cluster: &Cluster, schema: &str, organization: i64) {
    let conn = m.conn();
    // Each column as (SQLite, PostgreSQL) expressions that render the same text.
    let same = |c: &str| (c.to_string(), c.to_string());
    // Nullable, PostgreSQL's value cast (`cast`) to the text SQLite gives.
    let or_null = |c: &str, cast: &str| {
        (
            format!("coalesce({c}, 'NULL')"),
            format!("coalesce({c}{cast}, 'NULL')"),
        )
    };
    let epoch = |c: &str| {
        (
            format!("coalesce(CAST(strftime('%s', {c}) AS INTEGER), 'NULL')"),
            format!("coalesce(extract(epoch FROM {c})::bigint::text, 'NULL')"),
        )
    };
    let (flag, float, text) = ("::int::text", "::float8::text", "::text");
    let views = [
        (
            "users_current",
            vec![
                same("organization_user_id"),
                or_null("name", ""),
                or_null("email", ""),
                or_null("active", flag),
                or_null("admin", flag),
                or_null("hourly_rate", float),
                or_null("currency", ""),
            ],
            "organization_user_id",
        ),
        (
            "groups_current",
            vec![same("group_id"), same("name"), or_null("emoji", "")],
            "group_id",
        ),
        (
            "group_members_current",
            vec![
                same("group_id"),
                same("organization_user_id"),
                or_null("user_group_id", text),
            ],
            "group_id, organization_user_id",
        ),
        (
            "roles_current",
            vec![
                same("role_id"),
                same("name"),
                or_null("privilege_level", text),
            ],
            "role_id",
        ),
        (
            "role_permissions_current",
            vec![same("role_id"), same("permission_id"), or_null("name", "")],
            "role_id, permission_id",
        ),
        (
            "group_membership_history",
            vec![
                same("group_id"),
                same("organization_user_id"),
                epoch("valid_from"),
                epoch("valid_to"),
            ],
            "1, 2, 3, 4",
        ),
        (
            "rate_history",
            vec![
                same("organization_user_id"),
                or_null("hourly_rate", float),
                epoch("valid_from"),
                epoch("valid_to"),
            ],
            "1, 3, 4",
        ),
        (
            "change_events",
            vec![
                same("event_id"),
                same("sync_run_id"),
                same("entity"),
                same("entity_id"),
                same("op"),
                (
                    "coalesce(replace(changed_fields, ' ', ''), 'NULL')".to_string(),
                    "coalesce(replace(changed_fields::text, ' ', ''), 'NULL')".to_string(),
                ),
                (
                    "coalesce(json_extract(after_json, '$.name'), 'NULL')".to_string(),
                    "coalesce(after_json->>'name', 'NULL')".to_string(),
                ),
            ],
            "event_id",
        ),
        (
            "sync_runs",
            vec![
                same("sync_run_id"),
                same("kind"),
                same("status"),
                same("events_written"),
                epoch("started_at"),
            ],
            "sync_run_id",
        ),
    ];
    for (view, columns, order) in views {
        let (sqlite_cols, pg_cols): (Vec<String>, Vec<String>) = columns.into_iter().unzip();
        let filter = if view == "sync_runs" {
            " WHERE status <> 'running'"
        } else {
            ""
        };
        let mirror: Vec<String> = rows(
            &conn,
            &format!(
                "SELECT {} FROM {view}{filter} ORDER BY {order}",
                sqlite_cols.join(", ")
            ),
        )
        .into_iter()
        .map(|r| r.join("|"))
        .collect();
        let replica: Vec<String> = cluster
            .psql(&format!(
                "SELECT {} FROM {schema}.{view} WHERE organization_id = {organization} ORDER BY {order}",
                pg_cols.join(", ")
            ))
            .lines()
            .map(str::to_string)
            .collect();
        assert!(
            !mirror.is_empty() || view == "rate_history",
            "{view} is empty"
        );
        assert_eq!(mirror.len(), replica.len(), "{view}: row counts differ");
        for (a, b) in mirror.iter().zip(&replica) {
            assert_eq!(a, b, "{view}: rows differ");
        }
    }
}

/// `replicate --verify`, asserting every view is the same.
fn verify_ok(m: &Mirror) -> String {
    let out = ok(&run(m, &["replicate", "--verify"]));
    assert!(
        out.contains("the replica matches the mirror in every view"),
        "{out}"
    );
    out
}

/// Churn upstream: a rate, group joins and leaves, renames, a leaver, a joiner.
/// The fake organization's users but its owner (whom the tests leave as they are).
fn members_but_the_owner(org: &orgmirror_fake::FakeHandle) -> Vec<i64> {
    org.user_ids()
        .into_iter()
        .filter(|&u| u != orgmirror_fake::FIRST_USER_ID)
        .collect()
}

fn churn(m: &Mirror) {
    let fake = m.fake.handle();
    fake.advance(chrono::Duration::hours(1));
    let users = members_but_the_owner(&fake);
    let groups = fake.group_ids();
    assert!(fake.set_rate(users[1], Some(123.5), "EUR"));
    assert!(fake.join_group(groups[0], users[2]) || fake.leave_group(groups[0], users[2]));
    if let Some(g) = fake.user(users[3]).and_then(|u| u.groups.first().copied()) {
        assert!(fake.leave_group(g, users[3]));
    }
    assert!(fake.rename_user(users[4], "Renamed Person"));
    assert!(fake.rename_group(groups[1], "Renamed Group"));
    assert!(fake.remove_user(users[5]));
    fake.add_user("New Joiner", "new.joiner@example.com");
}

#[test]
fn the_contract_views_answer_the_same_in_postgresql_after_a_first_sync_a_churn_sync_and_a_group_refresh(
) {
    let Some(pg) = shared() else { return };
    let schema = "t_same_views";
    let m = mirror_with_replica(pg, 120, 1001, schema);
    sync(&m);
    assert_eq!(replica_run(pg, schema, 1001), Some(1));
    assert_same_views(&m, pg, schema, 1001);

    churn(&m);
    sync(&m);
    assert_eq!(replica_run(pg, schema, 1001), Some(2));
    assert_same_views(&m, pg, schema, 1001);

    let group = m.fake.handle().group_ids()[2];
    ok(&run(
        &m,
        &[
            "group",
            "update",
            &group.to_string(),
            "--name",
            "Refreshed Group",
        ],
    ));
    assert_eq!(replica_run(pg, schema, 1001), Some(3));
    assert_eq!(
        pg.psql(&format!(
            "SELECT name FROM {schema}.groups_current WHERE group_id = {group}"
        ))
        .trim(),
        "Refreshed Group"
    );
    assert_same_views(&m, pg, schema, 1001);
    let out = verify_ok(&m);
    assert!(out.contains("users_current"), "{out}");
    // Native types.
    let types = pg.psql(&format!(
        "SELECT column_name || ':' || data_type FROM information_schema.columns
         WHERE table_schema = '{schema}' AND table_name = 'users_current'
           AND column_name IN ('active', 'created_at', 'hourly_rate') ORDER BY 1"
    ));
    assert_eq!(
        types.lines().collect::<Vec<_>>(),
        [
            "active:boolean",
            "created_at:timestamp with time zone",
            "hourly_rate:numeric"
        ]
    );
}

/// `mirror_freshness` on both sides, read with queries of their own: every fact the same,
/// and the age computed when read (the replica's read first, so never the larger).
fn assert_same_freshness(m: &Mirror, cluster: &Cluster, schema: &str) {
    let epoch = |c: &str| format!("coalesce(CAST(strftime('%s', {c}) AS INTEGER), 'NULL')");
    let pg_epoch = |c: &str| format!("coalesce(extract(epoch FROM {c})::bigint::text, 'NULL')");
    let times = ["last_success_at", "last_attempt_at", "failing_since"];
    let plain = [
        "last_status",
        "last_error",
        "consecutive_failures",
        "stale_after_seconds",
        "hint",
    ];
    let replica = cluster.psql(&format!(
        "SELECT {}, {}, coalesce(stale::int::text, 'NULL'), age_seconds
         FROM {schema}.mirror_freshness WHERE organization_id = 1001",
        times.map(pg_epoch).join(", "),
        plain
            .map(|c| format!("coalesce({c}::text, 'NULL')"))
            .join(", ")
    ));
    let mirror = rows(
        &m.conn(),
        &format!(
            "SELECT {}, {}, coalesce(stale, 'NULL'), age_seconds FROM mirror_freshness",
            times.map(epoch).join(", "),
            plain.map(|c| format!("coalesce({c}, 'NULL')")).join(", ")
        ),
    );
    assert_eq!(mirror.len(), 1);
    let replica: Vec<&str> = replica.trim_end().split('|').collect();
    let (mirror_age, facts) = mirror[0].split_last().expect("columns");
    let (replica_age, replica_facts) = replica.split_last().expect("one row");
    assert_eq!(facts, replica_facts, "mirror_freshness differs");
    let (mirror_age, replica_age): (i64, i64) = (
        mirror_age.parse().expect("an age"),
        replica_age.parse().expect("an age"),
    );
    assert!(
        (0..=mirror_age).contains(&replica_age),
        "age: {replica_age} in PostgreSQL, {mirror_age} in the mirror"
    );
}

#[test]
fn mirror_freshness_says_the_same_in_postgresql_also_while_runs_fail() {
    let Some(pg) = shared() else { return };
    let schema = "t_freshness";
    let m = mirror_with_replica(pg, 20, 1001, schema);
    sync(&m);
    assert_same_freshness(&m, pg, schema);
    // Failed runs are not committed runs: the replica's health moves at once all the same.
    m.fake
        .handle()
        .expire_key_after(Some(KeyExpiry::Requests(0)));
    for _ in 0..2 {
        assert_eq!(run(&m, &["sync"]).status.code(), Some(2));
    }
    assert_eq!(replica_run(pg, schema, 1001), Some(1));
    assert_eq!(
        pg.psql(&format!(
            "SELECT consecutive_failures, last_status FROM {schema}.mirror_freshness"
        ))
        .trim(),
        "2|failed"
    );
    assert_same_freshness(&m, pg, schema);
    m.fake.handle().expire_key_after(None);
    sync(&m);
    assert_same_freshness(&m, pg, schema);
    assert_eq!(
        pg.psql(&format!(
            "SELECT consecutive_failures, stale FROM {schema}.mirror_freshness"
        ))
        .trim(),
        "0|f"
    );
}

#[test]
fn two_organizations_in_one_schema_stay_apart() {
    let Some(pg) = shared() else { return };
    let schema = "t_two_orgs";
    let a = mirror_with_replica(pg, 40, 1001, schema);
    let b = mirror_with_replica(pg, 60, 2002, schema);
    sync(&a);
    sync(&b);
    churn(&b);
    sync(&b);
    assert_eq!(replica_run(pg, schema, 1001), Some(1));
    assert_eq!(replica_run(pg, schema, 2002), Some(2));
    assert_same_views(&a, pg, schema, 1001);
    assert_same_views(&b, pg, schema, 2002);
    verify_ok(&a);
    verify_ok(&b);
    let per_org = pg.psql(&format!(
        "SELECT organization_id, count(*) FROM {schema}.users_current GROUP BY 1 ORDER BY 1"
    ));
    let a_users = scalar(&a.conn(), "SELECT count(*) FROM users_current");
    let b_users = scalar(&b.conn(), "SELECT count(*) FROM users_current");
    assert_eq!(per_org.trim(), format!("1001|{a_users}\n2002|{b_users}"));
    // Another mirror file claiming organization 1001 is refused, not merged.
    let intruder = mirror_with_replica(pg, 10, 1001, schema);
    // A second later than `a`'s first run, whose start time tells the mirrors apart.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    sync(&intruder);
    let out = run(&intruder, &["replicate"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not this mirror's"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(replica_run(pg, schema, 1001), Some(1));
}

#[test]
fn a_replicator_killed_mid_run_leaves_the_last_whole_run_and_the_next_attempt_resumes() {
    let Some(pg) = shared() else { return };
    let schema = "t_kill";
    let m = mirror_with_replica(pg, 150, 1001, schema);
    sync(&m);
    assert_eq!(replica_run(pg, schema, 1001), Some(1));
    churn(&m);
    // Hold change_log so that the next replication waits inside its transaction, after
    // it copied the run's history rows.
    let mut blocker = pg.psql_session();
    {
        use std::io::Write;
        let stdin = blocker.stdin.as_mut().unwrap();
        writeln!(
            stdin,
            "BEGIN; LOCK TABLE {schema}.change_log IN ACCESS EXCLUSIVE MODE;"
        )
        .unwrap();
        stdin.flush().unwrap();
    }
    // Wait until the lock is held.
    let held = || {
        pg.psql(&format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = '{schema}' AND c.relname = 'change_log' AND l.granted AND l.mode = 'AccessExclusiveLock'"
        ))
        .trim()
            == "1"
    };
    wait_for(held, "the blocker's lock");
    let mut syncing = Command::new(bin())
        .arg("--config")
        .arg(&m.config)
        .arg("sync")
        .env("TOGGL_API_TOKEN", "demo-token")
        .env("PGPASSWORD", PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sync starts");
    // The replicator waits for change_log, its run's history rows copied (uncommitted).
    wait_for(
        || {
            pg.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orgmirror' AND wait_event_type = 'Lock'",
            )
            .trim()
                == "1"
        },
        "the replicator to wait on the lock",
    );
    // SAFETY: kill -9 of our own child.
    unsafe { libc::kill(syncing.id() as i32, libc::SIGKILL) };
    let _ = syncing.wait();
    drop(blocker.stdin.take());
    let _ = blocker.kill();
    let _ = blocker.wait();
    // The run is committed in SQLite; PostgreSQL is still at the last whole run.
    let conn = m.conn();
    assert_eq!(
        scalar(
            &conn,
            "SELECT max(sync_run_id) FROM sync_runs WHERE status = 'succeeded'"
        ),
        2
    );
    wait_for(
        || {
            pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orgmirror'")
                .trim()
                == "0"
        },
        "the killed replicator's session to end",
    );
    assert_eq!(replica_run(pg, schema, 1001), Some(1));
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*) FROM {schema}.entity_history WHERE opened_by = 2 OR closed_by = 2"
        ))
        .trim(),
        "0"
    );
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*) FROM {schema}.sync_runs WHERE sync_run_id = 2"
        ))
        .trim(),
        "0"
    );
    // The next attempt resumes with run 2, once, without duplicates.
    let out = ok(&run(&m, &["replicate"]));
    assert!(out.contains("replicated 1 runs"), "{out}");
    assert_eq!(replica_run(pg, schema, 1001), Some(2));
    assert_same_views(&m, pg, schema, 1001);
    let again = ok(&run(&m, &["replicate"]));
    assert!(again.contains("replicated 0 runs"), "{again}");
    verify_ok(&m);
}

#[test]
fn a_bootstrap_copies_an_existing_mirror_then_follows_and_verify_names_a_row_changed_by_hand() {
    let Some(pg) = shared() else { return };
    let schema = "t_bootstrap";
    let m = mirror_with_replica(pg, 80, 1001, schema);
    // A mirror with history before the replica exists: two syncs without the replica.
    let config = std::fs::read_to_string(&m.config).unwrap();
    let without: String = config
        .split("\n[replica.postgres]")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&m.config, &without).unwrap();
    sync(&m);
    churn(&m);
    sync(&m);
    std::fs::write(&m.config, &config).unwrap();
    assert_eq!(
        pg.psql(&format!(
            "SELECT to_regclass('{schema}.replica_progress') IS NULL"
        ))
        .trim(),
        "t",
        "nothing replicated before the replica was configured"
    );
    let out = ok(&run(&m, &["replicate"]));
    assert!(
        out.contains("bootstrapped the replica with the mirror up to run 2"),
        "{out}"
    );
    assert_same_views(&m, pg, schema, 1001);
    // Then it follows run by run.
    churn(&m);
    sync(&m);
    assert_eq!(replica_run(pg, schema, 1001), Some(3));
    assert_same_views(&m, pg, schema, 1001);
    verify_ok(&m);

    // A row changed by hand in PostgreSQL is found, and named.
    let user = scalar(
        &m.conn(),
        "SELECT min(organization_user_id) FROM users_current",
    );
    pg.psql(&format!(
        "UPDATE {schema}.entity_history SET data = jsonb_set(data, '{{name}}', '\"Changed By Hand\"')
         WHERE organization_id = 1001 AND entity = 'user' AND id = {user} AND valid_to IS NULL"
    ));
    let out = run(&m, &["replicate", "--verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    let different: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("DIFFERENT"))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        different,
        ["users_current", "change_events", "user_history"],
        "{stdout}"
    );
    assert!(stdout.contains("Changed By Hand"), "{stdout}");
    assert!(
        text(&out.stderr).contains("differs from the mirror in 3 view(s)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn postgresql_stopped_during_three_syncs_does_not_fail_them_and_the_replica_catches_up() {
    // Its own cluster: stopping the shared one would disturb the other tests.
    let Some(pg) = Cluster::start() else { return };
    let schema = "t_down";
    let m = mirror_with_replica(&pg, 60, 1001, schema);
    sync(&m);
    assert_eq!(replica_run(&pg, schema, 1001), Some(1));
    pg.stop();
    for _ in 0..3 {
        churn(&m);
        let started = std::time::Instant::now();
        let out = sync(&m);
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("replication to PostgreSQL failed"),
            "{stderr}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
    let status = ok(&run(&m, &["status"]));
    assert!(
        status.contains("replica") && status.contains("unreachable"),
        "{status}"
    );
    pg.start_again();
    let status = ok(&run(&m, &["status"]));
    assert!(
        status.contains("at run 1") && status.contains("3 committed runs behind"),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&run(&m, &["status", "--json"]))).expect("status --json");
    assert_eq!(json["replica"]["runs_behind"], 3, "{json}");
    // The next sync catches up all four.
    churn(&m);
    sync(&m);
    assert_eq!(replica_run(&pg, schema, 1001), Some(5));
    assert_same_views(&m, &pg, schema, 1001);
    verify_ok(&m);
    let status = ok(&run(&m, &["status"]));
    assert!(
        status.contains("at run 5") && status.contains("up to date"),
        "{status}"
    );
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The fenced block of `lang` that follows `after` in the README.
pub fn readme_block(after: &str, lang: &str) -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find(after)
        .unwrap_or_else(|| panic!("README has no {after:?}"));
    let fence = format!("```{lang}\n");
    let body = &readme[start..];
    let open = body.find(&fence).expect("a fenced block") + fence.len();
    let close = body[open..].find("```").expect("the block's end");
    body[open..open + close].to_string()
}

#[test]
fn the_readme_replica_setup_and_its_example_queries_run() {
    let Some(pg) = shared() else { return };
    let m = Mirror::new(200);
    sync(&m);
    // The README's commands, against this cluster instead of db.example.com.
    let script = readme_block("Set it up (the database once", "sh")
        .replace("db.example.com", &format!("127.0.0.1:{}", pg.port));
    let tools = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(bin(), tools.path().join("orgmirror")).unwrap();
    let path = format!(
        "{}:{}:{}",
        tools.path().display(),
        pg.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(m.config.parent().unwrap())
        .env("PATH", path)
        .env("TOGGL_API_TOKEN", "demo-token")
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", pg.port.to_string())
        .env("PGUSER", "orgmirror")
        .env("PGPASSWORD", PASSWORD)
        .env("PGDATABASE", "postgres")
        .env_remove("ORGMIRROR_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .output()
        .expect("bash runs");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("bootstrapped the replica with the mirror up to run 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the replica matches the mirror in every view"),
        "{stdout}"
    );
    assert!(
        stdout.contains("at run 1") && stdout.contains("up to date"),
        "{stdout}"
    );
    let users = scalar(&m.conn(), "SELECT count(*) FROM users_current");
    assert!(
        stdout.lines().any(|l| l.trim() == users.to_string()),
        "{stdout}"
    );

    // The README's PostgreSQL queries run, answer as the SQLite ones, and have indexes.
    let queries = readme_block("The example queries, in PostgreSQL", "sql");
    let statements: Vec<&str> = queries
        .split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(statements.len(), 5, "{queries}");
    let as_replica = |sql: &str| {
        let url = format!(
            "postgres://orgmirror_replica@127.0.0.1:{}/reporting",
            pg.port
        );
        let out = pg
            .psql_to(&url, "change-me")
            .args(["-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let members = as_replica(statements[0]);
    let expected: Vec<String> = rows(
        &m.conn(),
        "SELECT u.name, u.email FROM group_members_current m JOIN users_current u USING (organization_user_id)
         WHERE m.group_id = 5001 ORDER BY u.name",
    )
    .into_iter()
    .map(|r| r.join("|"))
    .collect();
    assert!(!expected.is_empty());
    assert_eq!(members.lines().collect::<Vec<_>>(), expected);
    for statement in &statements {
        as_replica(statement);
        let plan = as_replica(&format!("SET enable_seqscan = off; EXPLAIN {statement}"));
        assert!(
            plan.contains("Index"),
            "no index serves {statement}:\n{plan}"
        );
    }
}

#[test]
fn tls_to_the_replica_is_verified_against_the_configured_ca() {
    // Its own cluster: it takes TCP connections only over TLS.
    let Some((pg, ca)) = Cluster::start_tls() else {
        return;
    };
    let schema = "t_tls";
    let m = Mirror::new(30);
    let base = std::fs::read_to_string(&m.config).unwrap();
    let url = format!(
        "postgres://orgmirror@localhost:{}/postgres?sslmode=require",
        pg.port
    );
    // Without the CA the server's certificate is not trusted: the run still succeeds.
    std::fs::write(
        &m.config,
        format!("{base}\n[replica.postgres]\nurl = {url:?}\nschema = {schema:?}\n"),
    )
    .unwrap();
    let out = sync(&m);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("replication to PostgreSQL failed") && stderr.contains("certificate"),
        "{stderr}"
    );
    // With it, the replica is reached over TLS (the server takes nothing else over TCP).
    std::fs::write(
        &m.config,
        format!(
            "{base}\n[replica.postgres]\nurl = {url:?}\nschema = {schema:?}\nca_file = {:?}\n",
            ca.display().to_string()
        ),
    )
    .unwrap();
    let out = ok(&run(&m, &["replicate"]));
    assert!(
        out.contains("bootstrapped the replica with the mirror up to run 1"),
        "{out}"
    );
    // And a plain connection is refused by this server, so the one above was TLS.
    let plain = Command::new(pg.bin.join("psql"))
        .args(["-X", "-A", "-t", "-d"])
        .arg(format!(
            "postgres://orgmirror@127.0.0.1:{}/postgres?sslmode=disable",
            pg.port
        ))
        .args(["-c", "SELECT 1"])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!plain.status.success());
    assert!(
        text(&plain.stderr).contains("no encryption"),
        "{}",
        text(&plain.stderr)
    );
}

#[test]
fn the_readme_replica_bench_script_runs() {
    if postgres_bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("replica.json");
    // The README's command, on a small size and with the binary under test (no release build).
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/replica.sh"))
        .arg("300")
        .env("ORGMIRROR", bin())
        .env("BENCH_OUT", &out_path)
        .env_remove("RUST_LOG")
        .output()
        .expect("benches/replica.sh runs");
    let stdout = ok(&out);
    assert!(stdout.contains("replicate churn"), "{stdout}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let results = doc["results"].as_array().expect("results");
    let scenarios: Vec<&str> = results
        .iter()
        .map(|r| r["scenario"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        scenarios,
        [
            "sync initial",
            "replicate initial",
            "sync churn",
            "replicate churn",
            "bootstrap (2 runs)"
        ],
        "{stdout}"
    );
    for r in results
        .iter()
        .filter(|r| r["vs_sync"].is_number() || r["scenario"] == "bootstrap (2 runs)")
    {
        assert!(r["rows"].as_u64().unwrap_or(0) > 0, "{r}");
        assert!(r["rows_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    }
}

#[test]
fn the_daemon_replicates_each_committed_run() {
    let Some(pg) = shared() else { return };
    let schema = "t_daemon";
    let m = mirror_with_replica(pg, 50, 1001, schema);
    let mut daemon = Command::new(bin())
        .arg("--config")
        .arg(&m.config)
        .arg("run")
        .env("TOGGL_API_TOKEN", "demo-token")
        .env("PGPASSWORD", PASSWORD)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("daemon starts");
    // `schedule.run_at_start`: the first run, then its replication.
    wait_for(
        || {
            let out = pg.try_psql(&format!(
                "SELECT sync_run_id FROM {schema}.replica_progress WHERE organization_id = 1001"
            ));
            out.status.success() && text(&out.stdout).trim() == "1"
        },
        "the daemon's first run to be replicated",
    );
    // SAFETY: SIGTERM to our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = daemon.wait().expect("daemon exits");
    assert_eq!(status.code(), Some(0));
    assert_same_views(&m, pg, schema, 1001);
}

/// Custom field values and the published role fields, replicated: the new views answer the
/// same on both sides after values are set, changed and removed and a role changed.
#[test]
fn custom_fields_and_the_published_role_fields_answer_the_same_in_postgresql() {
    let Some(pg) = shared() else { return };
    let schema = "t_custom_fields";
    let m = mirror_with_replica(pg, 60, 1001, schema);
    let mut config = std::fs::read_to_string(&m.config).unwrap();
    config.push_str(crate::support::CUSTOM_FIELDS);
    std::fs::write(&m.config, config).unwrap();
    sync(&m);
    let fake = m.fake.handle();
    let members: Vec<i64> = fake
        .user_ids()
        .into_iter()
        .filter(|u| !fake.custom_field_values(*u).is_empty())
        .collect();
    assert!(fake.select_custom_field_options(
        members[0],
        orgmirror_fake::FIRST_CUSTOM_FIELD_ID,
        &[8103]
    ));
    assert!(fake.select_custom_field_options(members[1], 8004, &[8121, 8124]));
    assert!(fake.set_custom_field_value(members[2], 8002, serde_json::json!("CC-9")));
    let cleared = *fake.custom_field_values(members[3]).keys().next().unwrap();
    assert!(fake.clear_custom_field(members[3], cleared));
    assert!(fake.remove_user(members[4]));
    let role = fake.role_ids()[1];
    assert!(fake.set_role_description(role, "Keeps the lights on"));
    let permission = fake.role(role).unwrap().permissions[0].permission_id;
    assert!(fake.set_permission_category(role, permission, 77, "Ops"));
    sync(&m);
    assert_eq!(replica_run(pg, schema, 1001), Some(2));

    let conn = m.conn();
    let compare = |view: &str, sqlite: &str, postgres: &str, order: &str| {
        let mirror: Vec<String> = rows(
            &conn,
            &format!("SELECT {sqlite} FROM {view} ORDER BY {order}"),
        )
        .into_iter()
        .map(|r| r.join("|"))
        .collect();
        let replica: Vec<String> = pg
            .psql(&format!(
                "SELECT {postgres} FROM {schema}.{view} WHERE organization_id = 1001 ORDER BY {order}"
            ))
            .lines()
            .map(str::to_string)
            .collect();
        assert!(!mirror.is_empty(), "{view} is empty");
        assert_eq!(mirror, replica, "{view}");
    };
    compare(
        "user_custom_fields_current",
        "organization_user_id, custom_field_id, custom_field_name, field_type, coalesce(value, 'NULL'),
         option_ids, option_names",
        "organization_user_id, custom_field_id, custom_field_name, field_type, coalesce(value, 'NULL'),
         replace(option_ids::text, ', ', ','), replace(option_names::text, ', ', ',')",
        "1, 2",
    );
    compare(
        "user_custom_field_history",
        "organization_user_id, custom_field_id, coalesce(value, 'NULL'), option_names,
         CAST(strftime('%s', valid_from) AS INTEGER), coalesce(CAST(strftime('%s', valid_to) AS INTEGER), 'NULL')",
        "organization_user_id, custom_field_id, coalesce(value, 'NULL'), replace(option_names::text, ', ', ','),
         extract(epoch FROM valid_from)::bigint, coalesce(extract(epoch FROM valid_to)::bigint::text, 'NULL')",
        "1, 2, 5",
    );
    compare(
        "roles_current",
        "role_id, description, coalesce(require_group, 'NULL'), coalesce(default_for_levels, 'NULL')",
        "role_id, description, coalesce(require_group::int::text, 'NULL'),
         coalesce(replace(default_for_levels::text, ', ', ','), 'NULL')",
        "1",
    );
    compare(
        "role_permissions_current",
        "role_id, permission_id, category_id, category_name",
        "role_id, permission_id, category_id, category_name",
        "1, 2",
    );
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM change_events WHERE entity = 'user_custom_field' AND sync_run_id = 2"
        ),
        pg.psql(&format!(
            "SELECT count(*) FROM {schema}.change_events
             WHERE organization_id = 1001 AND entity = 'user_custom_field' AND sync_run_id = 2"
        ))
        .trim()
        .parse::<i64>()
        .unwrap()
    );
    let out = verify_ok(&m);
    assert!(out.contains("user_custom_fields_current"), "{out}");
    assert!(out.contains("user_custom_field_history"), "{out}");
}

#[test]
fn the_audit_log_and_who_made_each_change_answer_the_same_in_postgresql() {
    let Some(pg) = shared() else { return };
    let schema = "t_audit";
    let m = mirror_with_replica(pg, 40, 1001, schema);
    let mut config = std::fs::read_to_string(&m.config).unwrap();
    config = config.replace("[api]\n", "[api]\nmax_retry_time = \"1s\"\n");
    std::fs::write(&m.config, config).unwrap();
    let fake = m.fake.handle();
    sync(&m);
    let users = fake.user_ids();
    let (alice, bob, carol) = (users[1], users[2], users[3]);
    let alice_name = fake.user(alice).expect("alice").name;
    assert!(fake.set_actor(Some(alice)));
    assert!(fake.rename_user(bob, "Bob By Alice"));
    assert!(fake.set_rate(carol, Some(77.0), "EUR"));
    sync(&m);
    // A run without the log (503), then the run that fills the gap and attributes the
    // earlier run's change: the replica gets the attribution with that later run.
    fake.set_audit_log(orgmirror_fake::AuditLogMode::Unavailable);
    let was = fake.user(carol).expect("carol").admin;
    assert!(fake.set_admin(carol, !was));
    sync(&m);
    fake.set_audit_log(orgmirror_fake::AuditLogMode::On);
    assert!(fake.set_admin(bob, true) || fake.set_admin(bob, false));
    assert!(fake.set_admin(bob, !fake.user(bob).expect("bob").admin));
    sync(&m);
    assert_eq!(replica_run(pg, schema, 1001), Some(4));
    let conn = m.conn();
    assert_eq!(
        crate::support::scalar(
            &conn,
            "SELECT count(*) FROM change_events WHERE sync_run_id = 3 AND attribution = 'audit'"
        ),
        1,
        "run 3's change is attributed by run 4"
    );
    verify_ok(&m);
    assert_eq!(
        pg.psql(&format!(
            "SELECT actor_name || ' ' || to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
             FROM {schema}.change_events
             WHERE entity = 'user' AND entity_id = '{bob}' AND sync_run_id = 2"
        ))
        .trim(),
        crate::support::rows(
            &conn,
            &format!(
                "SELECT actor_name || ' ' || changed_at FROM change_events
                 WHERE entity = 'user' AND entity_id = '{bob}' AND sync_run_id = 2"
            )
        )[0][0]
    );
    assert!(pg
        .psql(&format!(
            "SELECT actor_name FROM {schema}.change_events WHERE sync_run_id = 2 AND entity = 'user_rate'"
        ))
        .contains(&alice_name));
    let counts = |sql: &str| pg.psql(sql).trim().parse::<i64>().unwrap_or(-1);
    assert_eq!(
        counts(&format!("SELECT count(*) FROM {schema}.audit_log")),
        crate::support::scalar(&conn, "SELECT count(*) FROM audit_log")
    );
    assert_eq!(
        counts(&format!("SELECT count(*) FROM {schema}.unobserved_changes")),
        crate::support::scalar(&conn, "SELECT count(*) FROM unobserved_changes")
    );
    assert!(counts(&format!("SELECT count(*) FROM {schema}.unobserved_changes")) >= 2);
}

/// `orgmirror … ARGS` with the wall clock starting at `at`, the replica's password set.
fn run_at(m: &Mirror, at: &str, args: &[&str]) -> Output {
    let faketime = crate::support::faketime().expect("faketime");
    crate::support::run_at(faketime, m, at, args, &[("PGPASSWORD", PASSWORD)])
}

/// `pg_dump` of the replica's schema, as text.
fn pg_dump(cluster: &Cluster, schema: &str) -> String {
    let out = Command::new(cluster.bin.join("pg_dump"))
        .args(["--dbname", &cluster.url(), "--schema", schema, "--no-owner"])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn an_erasure_and_a_retention_pass_reach_the_replica_and_pg_dump_finds_neither_email_nor_name() {
    let Some(cluster) = shared() else {
        return;
    };
    if crate::support::faketime().is_none() {
        return;
    }
    let schema = "erasure_test";
    let organization = 4811;
    let m = mirror_with_replica(cluster, 16, organization, schema);
    let org = m.fake.handle();
    let ids = members_but_the_owner(&org);
    let (leaver, kept) = (ids[2], ids[3]);
    let email = org.user(leaver).unwrap().email;
    let names = ["Xanthippe Vandersloot", "Xanthippe Vandersloot-Ng"];
    org.rename_user(leaver, names[0]);
    org.set_rate(leaver, Some(61.0), "EUR");
    org.rename_user(kept, "Remy Old-Name");
    let synced = |at: &str| {
        let out = run_at(&m, at, &["sync"]);
        ok(&out);
    };
    synced("@2030-01-07 09:00:00");
    org.rename_user(leaver, names[1]);
    org.rename_user(kept, "Remy New-Name");
    synced("@2030-03-04 09:00:00");
    org.remove_user(leaver);
    synced("@2030-05-06 09:00:00");
    let dump = pg_dump(cluster, schema);
    assert!(
        dump.contains(&email) && dump.contains(names[1]),
        "the replica holds them"
    );

    let erased = ok(&run(
        &m,
        &["erase", "--user", &leaver.to_string(), "--reason", "DSR-77"],
    ));
    assert!(erased.contains("erased user"), "{erased}");
    let conn = m.conn();
    let last = last_run(&conn);
    drop(conn);
    assert_eq!(replica_run(cluster, schema, organization), Some(last));
    let dump = pg_dump(cluster, schema);
    for needle in [email.as_str(), names[0], names[1]] {
        assert!(!dump.contains(needle), "pg_dump still holds {needle}");
    }
    assert!(dump.contains(&format!("erased person {leaver}")));
    assert_eq!(
        cluster
            .psql(&format!(
                "SELECT organization_user_id, reason, history_only FROM {schema}.erasures WHERE organization_id = {organization}"
            ))
            .trim(),
        format!("{leaver}|DSR-77|f")
    );
    assert_same_views(&m, cluster, schema, organization);
    verify_ok(&m);

    // Retention: 2030-07-01 minus 3 months is 2030-04-01; Remy's first version ended before.
    let mut config = std::fs::read_to_string(&m.config).unwrap();
    config.push_str("\n[retention]\nhistory = \"3mo\"\n");
    std::fs::write(&m.config, config).unwrap();
    synced("@2030-07-01 09:00:00");
    let dump = pg_dump(cluster, schema);
    assert!(!dump.contains("Remy Old-Name") && dump.contains("Remy New-Name"));
    assert_eq!(
        cluster
            .psql(&format!(
                "SELECT count(*) FROM {schema}.entity_history WHERE organization_id = {organization} AND valid_to < '2030-04-01T09:00:00Z'"
            ))
            .trim(),
        "0"
    );
    assert_same_views(&m, cluster, schema, organization);
    verify_ok(&m);
}

#[test]
fn an_erasure_reaches_the_replicas_audit_log_and_pg_dump_finds_neither_email_nor_name() {
    let Some(cluster) = shared() else {
        return;
    };
    let schema = "erasure_audit";
    let organization = 4812;
    let m = mirror_with_replica(cluster, 12, organization, schema);
    let org = m.fake.handle();
    let ids = members_but_the_owner(&org);
    let (leaver, other) = (ids[2], ids[3]);
    let email = org.user(leaver).unwrap().email;
    org.rename_user(leaver, "Ignatius Replicant");
    sync(&m);
    // They make a change: the audit log (and the replica's) names them as its actor.
    assert!(org.set_actor(Some(leaver)));
    org.rename_user(other, "Renamed By Ignatius");
    sync(&m);
    assert!(org.set_actor(None));
    org.remove_user(leaver);
    sync(&m);
    let dump = pg_dump(cluster, schema);
    assert!(dump.contains(&email), "the replica's audit log holds them");

    ok(&run(
        &m,
        &["erase", "--user", &leaver.to_string(), "--reason", "DSR-78"],
    ));
    let dump = pg_dump(cluster, schema);
    for needle in [email.as_str(), "Ignatius Replicant"] {
        assert!(!dump.contains(needle), "pg_dump still holds {needle}");
    }
    verify_ok(&m);
    // The next run pulls the log's overlap again: nothing of them comes back there either.
    sync(&m);
    assert!(!pg_dump(cluster, schema).contains(&email));
    verify_ok(&m);
}

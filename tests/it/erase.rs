//! Forgetting a person (`orgmirror erase`) and keeping history only as long as
//! `[retention] history` says: the bytes are gone from the file and its WAL, the
//! organization keeps its shape, later syncs neither bring them back nor speak of them.

use std::path::Path;
use std::process::Command;

use orgmirror_fake::FakeOptions;

use crate::support::*;

/// Appends TOML to the mirror's config.
pub fn configure(m: &Mirror, toml: &str) {
    let mut config = std::fs::read_to_string(&m.config).unwrap();
    config.push('\n');
    config.push_str(toml);
    std::fs::write(&m.config, config).unwrap();
}

/// Whether `needle` occurs anywhere in the database file or its `-wal`.
pub fn bytes_hold(db: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", db.display());
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(path);
        }
    }
    found
}

/// What an older orgmirror left: `text` in deleted rows' bytes in free pages of the file (no
/// secure_delete then), and the flag migration 28 sets on a mirror that had runs before it.
fn leave_old_bytes(m: &Mirror, text: &str) {
    m.conn()
        .execute_batch(&format!(
            "PRAGMA secure_delete = OFF;
             CREATE TABLE old_rows (t TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
             INSERT INTO old_rows SELECT '{text} ' || hex(randomblob(2000)) FROM n;
             DROP TABLE old_rows;
             UPDATE free_space SET may_hold_old_bytes = 1;
             PRAGMA wal_checkpoint(TRUNCATE);"
        ))
        .unwrap();
}

/// No erasure run and no receipt.
fn assert_nothing_erased(m: &Mirror) {
    let conn = m.conn();
    assert_eq!(scalar(&conn, "SELECT count(*) FROM erasures"), 0);
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM sync_runs WHERE kind = 'erasure'"
        ),
        0
    );
}

/// The rows that make the organization's shape: every interval, the headcounts, the counts.
fn shape(conn: &rusqlite::Connection) -> Vec<Vec<Vec<String>>> {
    [
        "SELECT * FROM group_membership_history ORDER BY 1, 2, 3",
        "SELECT * FROM group_headcount_daily ORDER BY 1, 2",
        "SELECT entity, id, sub_id, valid_from, valid_to, opened_by, closed_by FROM entity_history ORDER BY history_id",
        "SELECT event_id, sync_run_id, observed_at, entity, entity_id, op, changed_fields FROM change_events ORDER BY event_id",
        "SELECT rule, event_id, delivered_at IS NULL FROM alert_outbox ORDER BY outbox_id",
    ]
    .iter()
    .map(|sql| rows(conn, sql))
    .collect()
}

const ALERTS: &str = r#"
[[alert]]
name = "people"
entity = "user"
command = ["/bin/true"]

[[alert]]
name = "pay"
entity = "user_rate"
command = ["/bin/true"]

[[alert]]
name = "teams"
entity = "group_membership"
command = ["/bin/false"]
initial_backoff = "6h"
max_backoff = "6h"
"#;

/// A leaver with a year of history: renamed twice, three rates, moved between groups, with
/// alerts delivered (their user and rate events) and pending (their memberships').
struct Leaver {
    m: Mirror,
    user: i64,
    names: Vec<String>,
    email: String,
}

fn a_leaver_with_a_year_of_history(faketime: &str) -> Leaver {
    let m = Mirror::with(
        FakeOptions {
            users: 30,
            ..Default::default()
        },
        "",
    );
    configure(&m, ALERTS);
    let org = m.fake.handle();
    let groups = org.group_ids();
    let user = org
        .user_ids()
        .into_iter()
        .find(|&u| !org.user(u).unwrap().groups.is_empty())
        .expect("a member");
    let email = org.user(user).unwrap().email;
    let names: Vec<String> = [
        "Zebulon Quartermaine",
        "Zebulon Quartermaine-Okafor",
        "Zeb Okafor-Quartermaine",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for other in org.user_ids().into_iter().filter(|&u| u != user) {
        assert!(!org.user(other).unwrap().email.contains(&email));
    }
    org.rename_user(user, &names[0]);
    org.set_rate(user, Some(41.5), "EUR");
    sync_at(faketime, &m, "@2030-01-07 09:00:00");
    org.rename_user(user, &names[1]);
    sync_at(faketime, &m, "@2030-03-04 09:00:00");
    org.set_rate(user, Some(47.25), "EUR");
    let first = org.user(user).unwrap().groups[0];
    let other = *groups.iter().find(|&&g| g != first).unwrap();
    org.leave_group(first, user);
    org.join_group(other, user);
    sync_at(faketime, &m, "@2030-05-06 09:00:00");
    org.rename_user(user, &names[2]);
    org.set_rate(user, Some(52.0), "USD");
    sync_at(faketime, &m, "@2030-08-05 09:00:00");
    assert!(org.remove_user(user));
    sync_at(faketime, &m, "@2030-11-04 09:00:00");
    Leaver {
        m,
        user,
        names,
        email,
    }
}

#[test]
fn a_leaver_erased_is_gone_byte_for_byte_and_the_organization_keeps_its_shape() {
    let Some(faketime) = faketime() else {
        return;
    };
    let Leaver {
        m,
        user,
        names,
        email,
    } = a_leaver_with_a_year_of_history(faketime);
    let conn = m.conn();
    let id = user.to_string();
    // The history holds them: every name, the e-mail, delivered and pending alerts.
    for name in &names {
        assert!(!bytes_hold(&m.db, name).is_empty(), "{name} is mirrored");
    }
    assert!(!bytes_hold(&m.db, &email).is_empty());
    assert!(
        scalar(
            &conn,
            "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NOT NULL"
        ) > 0
    );
    assert!(
        scalar(
            &conn,
            "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NULL"
        ) > 0
    );
    let before = shape(&conn);
    drop(conn);

    let out = m.run(&["erase", "--user", &id, "--reason", "ticket HR-1234"]);
    let said = ok(&out);
    assert!(
        said.contains(&format!("erased user {user} in run")),
        "{said}"
    );
    assert!(
        said.contains("neither their e-mail address nor their name occurs"),
        "{said}"
    );
    // A mirror written with secure_delete needs no VACUUM: what the erasure freed is zeroes.
    assert!(!said.contains("vacuumed"), "{said}");
    for needle in names.iter().chain([&email]) {
        assert_eq!(
            bytes_hold(&m.db, needle),
            Vec::<String>::new(),
            "{needle} remains"
        );
        assert!(!said.contains(needle.as_str()));
    }

    let conn = m.conn();
    assert_eq!(shape(&conn), before, "the organization keeps its shape");
    let tomb = format!("erased person {user}");
    assert_eq!(
        rows(
            &conn,
            &format!(
                "SELECT DISTINCT name, email FROM user_history WHERE organization_user_id = {user}"
            )
        ),
        vec![vec![tomb.clone(), "NULL".to_string()]]
    );
    assert_eq!(
        scalar(&conn, &format!("SELECT count(*) FROM rate_history WHERE organization_user_id = {user} AND (hourly_rate IS NOT NULL OR currency IS NOT NULL)")),
        0
    );
    // The receipt: who, why, counts; never the data.
    let receipt = rows(&conn, "SELECT organization_user_id, reason, erased_by <> '', history_only, json_extract(counts, '$.entity_history') > 0, json_extract(counts, '$.alert_outbox') > 0 FROM erasures");
    assert_eq!(
        receipt,
        vec![vec![
            id.clone(),
            "ticket HR-1234".into(),
            "1".into(),
            "0".into(),
            "1".into(),
            "1".into()
        ]]
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT kind, status FROM sync_runs ORDER BY sync_run_id DESC LIMIT 1"
        ),
        vec![vec!["erasure".to_string(), "succeeded".to_string()]]
    );
    // No alert was fired by the erasure.
    let outbox = scalar(&conn, "SELECT count(*) FROM alert_outbox");
    drop(conn);
    let status = ok(&m.run(&["status"]));
    assert!(
        status.contains(&format!("erasures  1 receipt; newest: user {user}")),
        "{status}"
    );

    // The past reads as the tombstone.
    let asof = m._dir.path().join("asof.sqlite");
    ok(&m.run(&[
        "asof",
        "2030-04-01T00:00:00Z",
        "--out",
        asof.to_str().unwrap(),
    ]));
    let past = rusqlite::Connection::open(&asof).unwrap();
    assert_eq!(
        rows(&past, &format!("SELECT name, email, hourly_rate FROM users_current WHERE organization_user_id = {user}")),
        vec![vec![tomb.clone(), "NULL".into(), "NULL".into()]]
    );
    drop(past);
    // The erase command names the copy it cannot delete.
    let again = ok(&m.run(&["erase", "--user", &id, "--reason", "ticket HR-1234"]));
    assert!(again.contains("holds nothing left to erase"), "{again}");
    assert!(again.contains("asof.sqlite (a SQLite copy"), "{again}");

    // The next sync writes nothing about them and brings nothing back.
    sync_at(faketime, &m, "@2030-12-07 09:00:00");
    let conn = m.conn();
    let run = last_run(&conn);
    assert_eq!(
        scalar(&conn, &format!("SELECT count(*) FROM change_log WHERE sync_run_id = {run} AND (entity_id = '{id}' OR entity_id LIKE '%:{id}' OR entity_id LIKE '{id}:%')")),
        0
    );
    assert_eq!(scalar(&conn, "SELECT count(*) FROM alert_outbox"), outbox);
    drop(conn);
    for needle in names.iter().chain([&email]) {
        assert_eq!(
            bytes_hold(&m.db, needle),
            Vec::<String>::new(),
            "{needle} came back"
        );
    }

    // Re-hired: the API shows them again, and a new, normal history starts.
    let rehired = orgmirror_fake::FakeServer::start_background(FakeOptions {
        users: 30,
        ..Default::default()
    })
    .unwrap();
    rehired.handle().rename_user(user, &names[2]);
    m.point_at(&rehired);
    sync_at(faketime, &m, "@2031-01-05 09:00:00");
    let conn = m.conn();
    let history = rows(&conn, &format!("SELECT name, valid_to IS NULL FROM user_history WHERE organization_user_id = {user} ORDER BY valid_from"));
    assert_eq!(
        history.last().unwrap(),
        &vec![names[2].clone(), "1".to_string()]
    );
    assert!(history[..history.len() - 1]
        .iter()
        .all(|r| r[0] == tomb && r[1] == "0"));
    let run = last_run(&conn);
    assert_eq!(
        rows(&conn, &format!("SELECT op FROM change_log WHERE sync_run_id = {run} AND entity = 'user' AND entity_id = '{id}'")),
        vec![vec!["insert".to_string()]]
    );
}

#[test]
fn a_present_member_is_refused_with_exit_2_and_history_only_erases_all_but_the_current_version() {
    let m = Mirror::new(12);
    let org = m.fake.handle();
    let user = org.user_ids()[3];
    org.rename_user(user, "Philippa Old-Name");
    org.set_rate(user, Some(30.0), "EUR");
    m.sync_ok();
    org.rename_user(user, "Philippa New-Name");
    org.set_rate(user, Some(35.0), "EUR");
    m.sync_ok();
    let id = user.to_string();

    let out = m.run(&["erase", "--user", &id, "--reason", "request 7"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("still a member") && err.contains("--history-only"),
        "{err}"
    );
    assert_nothing_erased(&m);

    let unknown = m.run(&["erase", "--user", "999999", "--reason", "request 7"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));
    let naming = m.run(&[
        "erase",
        "--user",
        &id,
        "--reason",
        "Philippa Old-Name asked",
        "--history-only",
    ]);
    assert_eq!(naming.status.code(), Some(2), "{}", text(&naming.stderr));
    assert!(
        !text(&naming.stderr).contains("Philippa"),
        "{}",
        text(&naming.stderr)
    );

    let said = ok(&m.run(&[
        "erase",
        "--user",
        &id,
        "--reason",
        "request 7",
        "--history-only",
    ]));
    assert!(said.contains("every version but the current one"), "{said}");
    assert_eq!(bytes_hold(&m.db, "Philippa Old-Name"), Vec::<String>::new());
    let conn = m.conn();
    assert_eq!(
        rows(&conn, &format!("SELECT name, valid_to IS NULL FROM user_history WHERE organization_user_id = {user} ORDER BY valid_from")),
        vec![
            vec![format!("erased person {user}"), "0".to_string()],
            vec!["Philippa New-Name".to_string(), "1".to_string()]
        ]
    );
    assert_eq!(
        rows(&conn, &format!("SELECT hourly_rate FROM rate_history WHERE organization_user_id = {user} ORDER BY valid_from")),
        vec![vec!["NULL".to_string()], vec!["35".to_string()]]
    );
    assert_eq!(
        rows(
            &conn,
            &format!(
                "SELECT name, hourly_rate FROM users_current WHERE organization_user_id = {user}"
            )
        ),
        vec![vec!["Philippa New-Name".to_string(), "35".to_string()]]
    );
    drop(conn);
    // The current version is untouched: the next sync sees nothing new.
    m.sync_ok();
    let conn = m.conn();
    let run = last_run(&conn);
    assert_eq!(
        scalar(
            &conn,
            &format!("SELECT count(*) FROM change_log WHERE sync_run_id = {run}")
        ),
        0
    );
}

#[test]
fn a_dry_run_lists_what_would_change_by_table_and_changes_nothing() {
    let m = Mirror::new(12);
    let org = m.fake.handle();
    let user = org.user_ids()[2];
    org.rename_user(user, "Dorothea Dryrun");
    m.sync_ok();
    org.remove_user(user);
    m.sync_ok();
    let before = std::fs::read(&m.db).unwrap();
    let said = ok(&m.run(&[
        "erase",
        "--user",
        &user.to_string(),
        "--reason",
        "r",
        "--dry-run",
    ]));
    assert!(
        said.starts_with(&format!("dry run: erasing user {user} would change ")),
        "{said}"
    );
    assert!(
        said.contains("entity_history") && said.contains("nothing was changed"),
        "{said}"
    );
    assert_nothing_erased(&m);
    assert!(!bytes_hold(&m.db, "Dorothea Dryrun").is_empty());
    assert_eq!(std::fs::read(&m.db).unwrap().len(), before.len());
}

#[test]
fn retention_drops_exactly_the_versions_that_ended_before_the_cutoff_and_asof_before_it_exits_2() {
    let Some(faketime) = faketime() else {
        return;
    };
    let m = Mirror::new(20);
    let org = m.fake.handle();
    let ids = org.user_ids();
    let (gone, renamed, kept) = (ids[1], ids[2], ids[3]);
    org.rename_user(gone, "Ottilie Longgone");
    sync_at(faketime, &m, "@2030-01-07 09:00:00");
    org.remove_user(gone);
    org.rename_user(renamed, "Renata Renamed-Once");
    sync_at(faketime, &m, "@2030-02-04 09:00:00");
    org.rename_user(renamed, "Renata Renamed-Twice");
    sync_at(faketime, &m, "@2030-06-03 09:00:00");
    let conn = m.conn();
    let total = scalar(&conn, "SELECT count(*) FROM entity_history");
    let current = rows(
        &conn,
        "SELECT history_id FROM entity_history WHERE valid_to IS NULL ORDER BY 1",
    );
    // Ended before 2030-05-01: the leaver's versions, the first rename's predecessor and
    // the first version of the second; and their memberships.
    let expired = rows(
        &conn,
        "SELECT history_id FROM entity_history WHERE valid_to < '2030-05-01T09:00:00Z' ORDER BY 1",
    );
    let kept_closed = rows(
        &conn,
        "SELECT history_id FROM entity_history WHERE valid_to >= '2030-05-01T09:00:00Z' ORDER BY 1",
    );
    assert!(!expired.is_empty() && !kept_closed.is_empty());
    drop(conn);

    // A mirror an older orgmirror wrote: the leaver's bytes also in free space. The first run
    // with retention vacuums it.
    leave_old_bytes(&m, "Ottilie Longgone");
    assert!(!bytes_hold(&m.db, "Ottilie Longgone").is_empty());
    configure(&m, "[retention]\nhistory = \"8mo\"\n");
    // 2031-01-01 minus 8 months: 2030-05-01.
    org.rename_user(kept, "Kasimir Kept");
    sync_at(faketime, &m, "@2031-01-01 09:00:00");
    let conn = m.conn();
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) FROM entity_history WHERE valid_to < '2030-05-01T09:00:00Z'"
        ),
        0
    );
    // Every current version stays, however old, and so does every one that ended later.
    for row in current.iter().chain(&kept_closed) {
        let id = &row[0];
        assert_eq!(
            scalar(
                &conn,
                &format!("SELECT count(*) FROM entity_history WHERE history_id = {id}")
            ),
            1,
            "version {id} was dropped"
        );
    }
    // The rename of `kept` closed a version (kept: it ends now) and opened one.
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM entity_history"),
        total - expired.len() as i64 + 1
    );
    // No event points at a dropped version; the long-gone leaver is erased with a receipt.
    assert_eq!(
        scalar(&conn, "SELECT count(*) FROM change_log e WHERE (e.before_history IS NOT NULL AND NOT EXISTS (SELECT 1 FROM entity_history h WHERE h.history_id = e.before_history)) OR (e.after_history IS NOT NULL AND NOT EXISTS (SELECT 1 FROM entity_history h WHERE h.history_id = e.after_history))"),
        0
    );
    assert_eq!(
        rows(&conn, "SELECT organization_user_id, reason FROM erasures"),
        vec![vec![gone.to_string(), "retention".to_string()]]
    );
    // The version that ended after the cutoff stays; the one before it went.
    assert_eq!(
        rows(&conn, &format!("SELECT name FROM user_history WHERE organization_user_id = {renamed} ORDER BY valid_from")),
        vec![vec!["Renata Renamed-Once".to_string()], vec!["Renata Renamed-Twice".to_string()]]
    );
    drop(conn);
    assert_eq!(bytes_hold(&m.db, "Ottilie Longgone"), Vec::<String>::new());

    let out_file = m._dir.path().join("old.sqlite");
    let old = run_at(
        faketime,
        &m,
        "@2031-01-01 10:00:00",
        &[
            "asof",
            "2030-04-30T00:00:00Z",
            "--out",
            out_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(old.status.code(), Some(2), "{}", text(&old.stderr));
    assert!(
        text(&old.stderr).contains("not kept that far"),
        "{}",
        text(&old.stderr)
    );
    let fine = run_at(
        faketime,
        &m,
        "@2031-01-01 10:00:00",
        &[
            "asof",
            "2030-05-02T00:00:00Z",
            "--out",
            out_file.to_str().unwrap(),
        ],
        &[],
    );
    ok(&fine);
    let state = rusqlite::Connection::open(&out_file).unwrap();
    assert_eq!(
        rows(
            &state,
            &format!("SELECT name FROM users_current WHERE organization_user_id = {renamed}")
        ),
        vec![vec!["Renata Renamed-Once".to_string()]]
    );
}

#[test]
fn kill_9_during_erase_leaves_the_mirror_untouched_or_fully_erased() {
    let m = Mirror::new(400);
    let org = m.fake.handle();
    let user = org.user_ids()[5];
    org.rename_user(user, "Killian Midway");
    m.sync_ok();
    for i in 0..6 {
        org.set_rate(user, Some(20.0 + f64::from(i)), "EUR");
        m.sync_ok();
    }
    org.remove_user(user);
    m.sync_ok();
    // A mirror whose free space predates secure_delete: the erasure vacuums it too, which
    // widens the window a kill can land in.
    m.conn()
        .execute("UPDATE free_space SET may_hold_old_bytes = 1", [])
        .unwrap();
    let dir = m._dir.path();
    let pristine = std::fs::read(&m.db).unwrap();
    let config = std::fs::read_to_string(&m.config).unwrap();
    let mut outcomes = std::collections::BTreeSet::new();
    for delay_ms in [0u64, 1, 3, 6, 10, 20, 40, 80, 160] {
        let db = dir.join(format!("kill-{delay_ms}.sqlite"));
        std::fs::write(&db, &pristine).unwrap();
        let cfg = dir.join(format!("kill-{delay_ms}.toml"));
        std::fs::write(
            &cfg,
            config.replace(&m.db.display().to_string(), &db.display().to_string()),
        )
        .unwrap();
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .args([
                "erase",
                "--user",
                &user.to_string(),
                "--reason",
                "kill test",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let conn = rusqlite::Connection::open(&db).unwrap();
        assert_eq!(
            rows(&conn, "PRAGMA integrity_check"),
            vec![vec!["ok".to_string()]]
        );
        let receipts = scalar(&conn, "SELECT count(*) FROM erasures");
        let named = scalar(&conn, &format!("SELECT count(*) FROM user_history WHERE organization_user_id = {user} AND name = 'Killian Midway'"));
        let versions = scalar(
            &conn,
            &format!("SELECT count(*) FROM user_history WHERE organization_user_id = {user}"),
        );
        let rated = scalar(&conn, &format!("SELECT count(*) FROM rate_history WHERE organization_user_id = {user} AND hourly_rate IS NOT NULL"));
        match receipts {
            0 => assert!(
                named == versions && rated > 0,
                "half-erased after a kill at {delay_ms} ms"
            ),
            1 => assert!(
                named == 0 && rated == 0,
                "a receipt without the erasure at {delay_ms} ms"
            ),
            n => panic!("{n} receipts"),
        }
        outcomes.insert(receipts);
    }
    println!("outcomes seen: {outcomes:?}");
}

#[test]
fn a_mirror_written_before_secure_delete_is_vacuumed_by_its_first_erasure() {
    let m = Mirror::new(12);
    let org = m.fake.handle();
    let user = org.user_ids()[4];
    org.rename_user(user, "Freya Freespace");
    m.sync_ok();
    org.remove_user(user);
    m.sync_ok();
    leave_old_bytes(&m, "Freya Freespace");
    let db = m.db.display().to_string();
    assert_eq!(
        bytes_hold(&m.db, "Freya Freespace"),
        vec![db.clone()],
        "old bytes in free space"
    );
    let said = ok(&m.run(&["erase", "--user", &user.to_string(), "--reason", "r-9"]));
    assert!(said.contains("vacuumed the database"), "{said}");
    assert_eq!(bytes_hold(&m.db, "Freya Freespace"), Vec::<String>::new());
    assert_eq!(
        scalar(&m.conn(), "SELECT may_hold_old_bytes FROM free_space"),
        0
    );
}

#[test]
fn the_audit_log_forgets_them_and_a_later_pull_of_it_brings_nothing_back() {
    let m = Mirror::new(12);
    let org = m.fake.handle();
    let ids = org.user_ids();
    let (user, other) = (ids[3], ids[4]);
    org.rename_user(user, "Aurelio Auditmann");
    m.sync_ok();
    let email = org.user(user).unwrap().email;
    // They make a change (the log names them as its actor), then are renamed and leave.
    assert!(org.set_actor(Some(user)));
    org.rename_user(other, "Renamed By Aurelio");
    m.sync_ok();
    assert!(org.set_actor(None));
    org.rename_user(user, "Aurelio Auditmann-Gone");
    m.sync_ok();
    org.remove_user(user);
    m.sync_ok();
    let actor = format!("SELECT count(*) FROM audit_log WHERE actor_email = '{email}'");
    assert!(
        scalar(&m.conn(), &actor) > 0,
        "the log names them as an actor"
    );

    let said = ok(&m.run(&[
        "erase",
        "--user",
        &user.to_string(),
        "--reason",
        "ticket A-1",
    ]));
    assert!(
        said.contains("audit_actors") && said.contains("audit_events"),
        "{said}"
    );
    for needle in ["Aurelio Auditmann", email.as_str()] {
        assert_eq!(
            bytes_hold(&m.db, needle),
            Vec::<String>::new(),
            "{needle} remains"
        );
    }
    let conn = m.conn();
    let events = scalar(&conn, "SELECT count(*) FROM audit_events");
    let tomb = format!("SELECT count(*) FROM audit_log WHERE actor_name = 'erased person {user}'");
    assert!(scalar(&conn, &tomb) > 0);
    drop(conn);
    // The next pull asks the log again (its overlap holds their events and summary): what is
    // held stays tombstoned, and nothing of them comes back.
    m.sync_ok();
    for needle in ["Aurelio Auditmann", email.as_str()] {
        assert_eq!(
            bytes_hold(&m.db, needle),
            Vec::<String>::new(),
            "{needle} came back"
        );
    }
    let conn = m.conn();
    assert!(scalar(&conn, "SELECT count(*) FROM audit_events") >= events);
    assert!(scalar(&conn, &tomb) > 0);
    assert_eq!(scalar(&conn, &actor), 0);
}

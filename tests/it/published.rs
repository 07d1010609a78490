//! The API as Toggl publishes it: keys that expire and are replaced in a file without a
//! restart, a 402 that is not the quota, and id filters in whichever form the server honours.

use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Arc;

use orgmirror_fake::{
    ArrayFilters, FakeHandle, FakeOptions, FakeProfile, Fault, FaultKind, KeyExpiry, LoggedRequest,
    PlanFeature, QuotaConfig, Route, DEMO_API_KEY,
};

use super::{append_config, command, dir_of, live_scalar, wait_until, Daemon};
use crate::support::{ok, rows, run_with, scalar, text, Mirror};

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
    // Replaced whole, as the README shows: written beside it, then renamed over it.
    let new_file = dir_of(&m).join("toggl_key.new");
    std::fs::write(&new_file, "toggl_sk_rotated\n").expect("write key");
    std::fs::rename(&new_file, &key_file).expect("replace key");
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

// ---------------------------------------------------------------------------------------
// Id filters in the form the server honours

/// A request that asks for rows by id (`org_user_ids=…`, `group_ids[]=…`).
fn is_by_id(r: &LoggedRequest) -> bool {
    r.query.contains("org_user_ids") || r.query.contains("group_ids")
}

/// The by-id requests the fake served since its log was cleared.
fn by_id_requests(fake: &FakeHandle) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(is_by_id)
        .map(|r| r.query)
        .collect()
}

/// The users in the mirror now.
fn mirrored_users(m: &Mirror) -> i64 {
    scalar(&m.conn(), "SELECT count(*) FROM users_current")
}

fn is_mirrored(m: &Mirror, user: i64) -> bool {
    scalar(
        &m.conn(),
        &format!("SELECT count(*) FROM users_current WHERE organization_user_id = {user}"),
    ) == 1
}

fn filter_forms(m: &Mirror) -> Vec<Vec<String>> {
    rows(
        &m.conn(),
        "SELECT list, form FROM api_filter_forms ORDER BY list",
    )
}

/// A sync of `m`, returning how many requests it sent.
fn sync_counting(m: &Mirror) -> usize {
    let fake = m.fake.handle();
    fake.clear_requests();
    m.sync_ok();
    fake.request_count()
}

/// A departure is confirmed by one request by id, in the form the profile honours: the
/// focus profile's published `org_user_ids=…` at once, the seed profile's `org_user_ids[]`
/// after one request in the other form, which the mirror remembers, so every later
/// departure costs exactly one request more than a sync without one.
#[test]
fn a_departure_is_confirmed_by_one_request_in_the_form_each_profile_honours() {
    for (profile, first_departure, form) in [
        (FakeProfile::Focus, vec!["org_user_ids={id}&"], "comma"),
        (
            FakeProfile::Seed,
            vec!["org_user_ids={id}&", "org_user_ids[]={id}&"],
            "brackets",
        ),
    ] {
        let m = Mirror::with(
            FakeOptions {
                users: 30,
                profile,
                ..FakeOptions::default()
            },
            "",
        );
        let fake = m.fake.handle();
        m.sync_ok();
        let plain = sync_counting(&m);
        assert!(filter_forms(&m).is_empty(), "nothing to learn yet");

        for (round, expected) in [first_departure, vec![&*first_departure_last(profile)]]
            .into_iter()
            .enumerate()
        {
            let gone = fake.user_ids()[5 + round];
            assert!(fake.remove_user(gone));
            let sent = sync_counting(&m);
            let asked: Vec<String> = expected
                .iter()
                .map(|q| q.replace("{id}", &gone.to_string()))
                .collect();
            let by_id = by_id_requests(&fake);
            assert_eq!(
                by_id.len(),
                asked.len(),
                "{profile:?} round {round}: {by_id:?}"
            );
            for (query, prefix) in by_id.iter().zip(&asked) {
                assert!(
                    query.starts_with(prefix),
                    "{profile:?}: {query} is not {prefix}…"
                );
            }
            assert_eq!(sent, plain + asked.len(), "{profile:?} round {round}");
            assert!(!is_mirrored(&m, gone), "{profile:?}: {gone} confirmed gone");
            assert_eq!(filter_forms(&m), [["users".to_string(), form.to_string()]]);
        }
        assert_eq!(mirrored_users(&m), 28);
        assert_eq!(
            scalar(&m.conn(), "SELECT count(*) FROM pending_absences"),
            0
        );
    }
}

/// The form a profile's later departures use.
fn first_departure_last(profile: FakeProfile) -> String {
    match profile {
        FakeProfile::Focus => "org_user_ids={id}&".to_string(),
        FakeProfile::Seed => "org_user_ids[]={id}&".to_string(),
    }
}

/// On a server that honours no form of the id filter, no run fails: a user missing from
/// a complete pull is kept, and deleted only when the next complete pull misses them too; a
/// row a shift skipped in one pull is back in the next and is never deleted. `status` says
/// absences take one more run. The forms are tried once, then remembered.
#[test]
fn without_an_id_filter_an_absence_is_confirmed_by_the_next_complete_pull() {
    let m = Mirror::with(
        FakeOptions {
            users: 30,
            per_page_cap: 10,
            ..FakeOptions::default()
        },
        "per_page = 10\n",
    );
    let fake = m.fake.handle();
    fake.set_array_filters(ArrayFilters::Ignored);
    m.sync_ok();
    let ids = fake.user_ids();

    // ids[3] leaves right after page 1 was served: it was listed, but ids[10] slides onto
    // page 1 unseen — skipped by this pull, not gone.
    let leaver = ids[3];
    let skipped = ids[10];
    let remove = move |fake: &FakeHandle| assert!(fake.remove_user(leaver));
    fake.inject(
        Fault::new(Route::Users, FaultKind::MutateAfter(Arc::new(remove)))
            .on_page(1)
            .times(1),
    );
    fake.clear_requests();
    m.sync_ok();
    // Both forms tried once, and found ignored: the run succeeds all the same.
    assert_eq!(
        by_id_requests(&fake).len(),
        2,
        "{:?}",
        by_id_requests(&fake)
    );
    assert_eq!(
        filter_forms(&m),
        [["users".to_string(), "none".to_string()]]
    );
    assert!(
        is_mirrored(&m, skipped),
        "one pull without it is not enough"
    );
    let status = ok(&m.run(&["status"]));
    assert!(
        status.contains("the API honours no id filter (users)")
            && status.contains("confirmed gone by the next one (one more run); 1 pending"),
        "{status}"
    );

    // The next pull lists the skipped user again (cleared) and misses the leaver once.
    fake.clear_requests();
    m.sync_ok();
    assert_eq!(
        by_id_requests(&fake),
        Vec::<String>::new(),
        "remembered: none asked"
    );
    assert!(is_mirrored(&m, skipped) && is_mirrored(&m, leaver));
    let pending = rows(&m.conn(), "SELECT entity, entity_id FROM pending_absences");
    assert_eq!(pending, [["user".to_string(), leaver.to_string()]]);

    // Missed by a second complete pull in a row: gone.
    m.sync_ok();
    assert!(!is_mirrored(&m, leaver) && is_mirrored(&m, skipped));
    assert_eq!(mirrored_users(&m), 29);
    let deletes = scalar(
        &m.conn(),
        "SELECT count(*) FROM change_events WHERE entity = 'user' AND op = 'delete'",
    );
    assert_eq!(deletes, 1);
    assert_eq!(
        scalar(&m.conn(), "SELECT count(*) FROM pending_absences"),
        0
    );
    let failed = scalar(
        &m.conn(),
        "SELECT count(*) FROM sync_runs WHERE status <> 'succeeded'",
    );
    assert_eq!(failed, 0);
}

/// A group write's targeted refresh reads the group by id in the form the server honours
/// (or, when it honours none, in a pull of the teams), on both profiles: a rename shows at
/// once, and so does a deletion.
#[test]
fn a_group_writes_refresh_reads_the_group_in_the_form_the_server_honours() {
    for (profile, filters, form) in [
        (FakeProfile::Focus, None, "group_ids="),
        (FakeProfile::Seed, None, "group_ids[]="),
        (FakeProfile::Focus, Some(ArrayFilters::Ignored), ""),
    ] {
        let case = format!("{profile:?} {filters:?}");
        let m = Mirror::with(
            FakeOptions {
                users: 20,
                profile,
                ..FakeOptions::default()
            },
            "",
        );
        let fake = m.fake.handle();
        if let Some(filters) = filters {
            fake.set_array_filters(filters);
        }
        m.sync_ok();
        let group = fake.group_ids()[0];
        fake.clear_requests();
        ok(&m.run(&[
            "group",
            "update",
            &group.to_string(),
            "--name",
            "Renamed 🔁",
        ]));
        let name = rows(
            &m.conn(),
            &format!("SELECT name FROM groups_current WHERE group_id = {group}"),
        );
        assert_eq!(name, [["Renamed 🔁".to_string()]], "{case}");
        let teams: Vec<String> = fake
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/teams"))
            .map(|r| r.query)
            .collect();
        if form.is_empty() {
            // No form filters: both are tried once, then every read is a pull of the teams.
            let probes = teams.iter().filter(|q| q.contains("group_ids")).count();
            assert_eq!(probes, 2, "{case}: {teams:?}");
            assert_eq!(
                filter_forms(&m),
                [["teams".to_string(), "none".to_string()]]
            );
        } else {
            assert!(
                teams.iter().any(|q| q.contains(&format!("{form}{group}"))),
                "{case}: {teams:?}"
            );
        }
        fake.clear_requests();
        ok(&m.run(&["group", "delete", &group.to_string()]));
        if form.is_empty() {
            // The teams' form is remembered: no group is asked for by id again (the users'
            // form is a list of its own, tried once).
            let teams_by_id: Vec<String> = by_id_requests(&fake)
                .into_iter()
                .filter(|q| q.contains("group_ids"))
                .collect();
            assert_eq!(teams_by_id, Vec::<String>::new(), "{case}");
        }
        let left = scalar(
            &m.conn(),
            &format!("SELECT count(*) FROM groups_current WHERE group_id = {group}"),
        );
        assert_eq!(left, 0, "{case}: the deletion shows at once");
        let failed = scalar(
            &m.conn(),
            "SELECT count(*) FROM sync_runs WHERE status <> 'succeeded'",
        );
        assert_eq!(failed, 0, "{case}");
    }
}

/// `check` names the id filter form that works (one request when it is the published one),
/// says when neither works, and gives a plan's 402 as its verdict, naming the setting.
#[test]
fn check_names_the_id_filter_form_and_gives_the_plans_402_as_its_verdict() {
    let m = Mirror::new(10);
    let fake = m.fake.handle();
    fake.set_array_filters(ArrayFilters::Ignored);
    let out = m.run(&["check"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("the API honours the id filter in neither form")
            && stdout.contains("confirmed gone by the next one, one run later"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "the organization's plan includes the rates and working hours a sync asks for"
        ),
        "{stdout}"
    );
    assert!(!m.db.exists(), "check remembers nothing");

    fake.set_plan_lacks(&[PlanFeature::WorkingHours]);
    fake.clear_requests();
    let out = m.run(&["check"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("answered 402, not the quota")
            && stderr.contains("working_hours feature not available on the plan")
            && stderr.contains("set sync.include_working_hours = false"),
        "{stderr}"
    );
    // My groups, the roles, the users page: nothing more once the verdict is in.
    assert_eq!(fake.request_count(), 3);
}

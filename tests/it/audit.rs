//! The organization's audit log in the mirror: mirrored and kept, what a refusal or a
//! failure does, the backlog, and who made each change and when.

use std::time::Duration;

use orgmirror_fake::{
    AuditBacklog, AuditLogMode, FakeAuditEvent, FakeOptions, QuotaConfig, FIRST_USER_ID,
};

use crate::support::{rows, scalar, text, Mirror};

/// Requests the fake's audit log endpoint was sent since its request log was cleared.
fn audit_requests(m: &Mirror) -> usize {
    m.fake
        .handle()
        .requests()
        .iter()
        .filter(|r| r.path.contains("/audit-log/"))
        .count()
}

fn fast_failures() -> &'static str {
    "max_retry_time = \"1s\"\n"
}

#[test]
fn every_event_is_kept_in_the_runs_transaction_and_steady_state_costs_one_request() {
    let m = Mirror::new(20);
    let h = m.fake.handle();
    m.sync_ok();
    let (alice, bob) = (FIRST_USER_ID + 1, FIRST_USER_ID + 2);
    assert!(h.set_actor(Some(alice)));
    assert!(h.rename_user(bob, "Bob Renamed"));
    h.add_audit_event(FakeAuditEvent {
        created_at: chrono::Utc::now() - chrono::Duration::seconds(20),
        entity_type: "time_off_request".to_string(),
        entity_id: 42,
        action: "approve".to_string(),
        user_id: 1,
        workspace_id: 2001,
        project_id: 0,
        old_value: Default::default(),
        new_value: Default::default(),
        meta_data: [("reason".to_string(), "vacation".to_string())].into(),
    });
    h.clear_requests();
    m.sync_ok();
    assert_eq!(audit_requests(&m), 1);
    let c = m.conn();
    let alice_name = h.user(alice).expect("alice").name;
    let kept = rows(
        &c,
        "SELECT entity_type, action, coalesce(actor_name, '-') FROM audit_log ORDER BY created_at",
    );
    assert!(
        kept.contains(&vec![
            "organization_user".to_string(),
            "update".to_string(),
            alice_name.clone()
        ]) && kept.len() == 2,
        "{kept:?}"
    );
    assert!(
        kept.contains(&vec![
            "time_off_request".to_string(),
            "approve".to_string(),
            "-".to_string()
        ]),
        "an unknown type is kept: {kept:?}"
    );
    // Every event the fake recorded is held, once, by the run that pulled it.
    assert_eq!(
        scalar(&c, "SELECT count(*) FROM audit_events") as usize,
        h.audit_events().len()
    );
    assert_eq!(
        scalar(&c, "SELECT count(DISTINCT sync_run_id) FROM audit_events"),
        1
    );
    // Steady state: one request a run, counted in the run's requests.
    for _ in 0..2 {
        h.clear_requests();
        m.sync_ok();
        assert_eq!(audit_requests(&m), 1);
        let run = crate::support::last_run(&c);
        assert_eq!(
            scalar(
                &c,
                &format!("SELECT requests FROM sync_runs WHERE sync_run_id = {run}")
            ) as usize,
            h.requests().len()
        );
    }
    assert_eq!(
        scalar(&c, "SELECT count(*) FROM audit_events") as usize,
        h.audit_events().len(),
        "the overlap asked again is stored once"
    );
    let status = text(&m.run(&["status"]).stdout);
    assert!(status.contains("audit log "), "{status}");
    assert!(status.contains(" events from "), "{status}");
    // Names never reach the log.
    let out = m.run(&["sync"]);
    let log = text(&out.stderr);
    assert!(!log.contains(&alice_name), "{log}");
}

#[test]
fn a_key_without_the_permission_runs_without_attribution_warns_once_and_asks_once_a_day() {
    let m = Mirror::with(
        FakeOptions {
            users: 10,
            audit_log: AuditLogMode::Forbidden,
            ..Default::default()
        },
        "",
    );
    let first = m.sync_ok();
    let log = text(&first.stderr);
    assert_eq!(
        log.matches("view_audit_log").count(),
        1,
        "one warning naming the permission: {log}"
    );
    assert!(log.contains("WARN"), "{log}");
    let h = m.fake.handle();
    h.rename_user(FIRST_USER_ID + 1, "Someone Else");
    let second = m.sync_ok();
    assert!(
        !text(&second.stderr).contains("view_audit_log"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(h.audit_request_count(), 1, "not asked again the same day");
    let c = m.conn();
    assert_eq!(
        scalar(
            &c,
            "SELECT count(*) FROM change_events WHERE entity = 'user' AND op = 'update'"
        ),
        1
    );
    assert_eq!(
        scalar(
            &c,
            "SELECT count(*) FROM change_events WHERE attribution IS NOT NULL"
        ),
        0
    );
    let status = text(&m.run(&["status"]).stdout);
    assert!(status.contains("audit log refused since"), "{status}");
    let check = m.run(&["check"]);
    let said = text(&check.stdout);
    assert!(check.status.success(), "{said}{}", text(&check.stderr));
    assert!(
        said.contains("note: the audit log is refused (HTTP 403)")
            && said.contains("view_audit_log"),
        "{said}"
    );
    // A day later it is asked again; once granted, it is read.
    c.execute(
        "UPDATE audit_state SET refused_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-25 hours')",
        [],
    )
    .expect("age the refusal");
    h.set_audit_log(AuditLogMode::On);
    let before = h.audit_request_count();
    m.sync_ok();
    assert_eq!(h.audit_request_count(), before + 1);
    assert!(scalar(&c, "SELECT count(*) FROM audit_events") > 0);
    let status = text(&m.run(&["status"]).stdout);
    assert!(!status.contains("refused"), "{status}");
}

#[test]
fn a_503_fails_no_run_and_the_next_run_fills_the_gap_exactly_once() {
    let m = Mirror::with(
        FakeOptions {
            users: 12,
            ..Default::default()
        },
        fast_failures(),
    );
    let h = m.fake.handle();
    m.sync_ok();
    h.rename_user(FIRST_USER_ID + 1, "First Rename");
    m.sync_ok();
    h.set_audit_log(AuditLogMode::Unavailable);
    h.rename_user(FIRST_USER_ID + 2, "During The Outage");
    h.set_admin(FIRST_USER_ID + 3, true);
    let out = m.sync_ok();
    assert!(
        text(&out.stderr).contains("the audit log request failed"),
        "{}",
        text(&out.stderr)
    );
    let c = m.conn();
    let held = scalar(&c, "SELECT count(*) FROM audit_events");
    assert_eq!(held, 1, "only the first rename so far");
    let status = text(&m.run(&["status"]).stdout);
    assert!(status.contains("the last request failed"), "{status}");
    h.set_audit_log(AuditLogMode::On);
    h.rename_user(FIRST_USER_ID + 4, "After The Outage");
    m.sync_ok();
    m.sync_ok();
    let stored: Vec<String> = rows(
        &c,
        "SELECT created_at FROM audit_events ORDER BY created_at",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    let recorded: Vec<String> = h
        .audit_events()
        .iter()
        .map(|e| e.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .collect();
    assert_eq!(stored, recorded, "none missing, none twice");
    // The outage run's changes are attributed by the run that filled the gap.
    assert_eq!(
        scalar(
            &c,
            "SELECT count(*) FROM change_events
             WHERE sync_run_id = 3 AND attribution = 'audit' AND changed_fields <> '[\"updated_at\"]'"
        ),
        2
    );
}

#[test]
fn a_backlog_is_fetched_newest_first_over_the_runs_that_follow() {
    let m = Mirror::with(
        FakeOptions {
            users: 30,
            audit_backlog: Some(AuditBacklog {
                events: 7500,
                days: 60,
            }),
            ..Default::default()
        },
        "\n[sync]\naudit_log_backfill = \"90d\"\n",
    );
    let h = m.fake.handle();
    let c_count = |m: &Mirror| scalar(&m.conn(), "SELECT count(*) FROM audit_events");
    let mut per_run = Vec::new();
    let mut held = Vec::new();
    for _ in 0..4 {
        h.clear_requests();
        m.sync_ok();
        per_run.push(audit_requests(&m));
        held.push(c_count(&m));
    }
    // The first run: one page; then up to five pages of backlog a run beside the new events.
    assert_eq!(per_run, vec![1, 6, 3, 1]);
    // Each page ends where the last began (its oldest second asked again, stored once).
    assert_eq!((held[0], held[2], held[3]), (1000, 7500, 7500));
    assert!((5990..=6000).contains(&held[1]), "{held:?}");
    let c = m.conn();
    // Newest first: what the first run holds is the newest thousand.
    let first_oldest = rows(
        &c,
        "SELECT min(created_at) FROM audit_events WHERE sync_run_id = (SELECT min(sync_run_id) FROM audit_events)",
    );
    let later_newest = rows(
        &c,
        "SELECT max(created_at) FROM audit_events WHERE sync_run_id > (SELECT min(sync_run_id) FROM audit_events)",
    );
    assert!(later_newest[0][0] <= first_oldest[0][0]);
    // The backlog is counted in the run's requests, not in the cost cron = "auto" plans with.
    let costs = rows(
        &c,
        "SELECT requests - audit_backlog_requests FROM sync_runs WHERE status = 'succeeded' ORDER BY sync_run_id",
    );
    assert!(costs.windows(2).all(|w| w[0] == w[1]), "{costs:?}");
    let status = text(&m.run(&["status"]).stdout);
    assert!(status.contains("7500 events from "), "{status}");
}

#[test]
fn the_backlog_spends_only_what_the_quota_share_leaves() {
    let m = Mirror::with(
        FakeOptions {
            users: 30,
            audit_backlog: Some(AuditBacklog {
                events: 3000,
                days: 30,
            }),
            quota: Some(QuotaConfig {
                limit: 24,
                window: Duration::from_secs(3600),
            }),
            ..Default::default()
        },
        "",
    );
    let h = m.fake.handle();
    for _ in 0..2 {
        h.clear_requests();
        m.sync_ok();
        assert_eq!(
            audit_requests(&m),
            1,
            "no spare requests: the backlog waits"
        );
    }
    let status = text(&m.run(&["status"]).stdout);
    assert!(status.contains("is fetched over the next runs"), "{status}");
}

#[test]
fn audit_log_off_sends_no_audit_request() {
    let m = Mirror::with(
        FakeOptions {
            users: 10,
            ..Default::default()
        },
        "\n[sync]\naudit_log = false\n",
    );
    m.sync_ok();
    m.sync_ok();
    assert_eq!(m.fake.handle().audit_request_count(), 0);
    let status = text(&m.run(&["status"]).stdout);
    assert!(!status.contains("audit log"), "{status}");
}

/// The fake's recorded events as (entity_type, its time as the mirror stores it, actor's
/// name).
fn recorded(m: &Mirror) -> Vec<(String, String, String)> {
    let h = m.fake.handle();
    let by_audit_id = |id: i64| {
        h.user_ids()
            .into_iter()
            .filter_map(|u| h.user(u))
            .find(|u| u.user_account_id + orgmirror_fake::AUDIT_USER_ID_OFFSET == id)
            .map(|u| u.name)
            .unwrap_or_default()
    };
    h.audit_events()
        .iter()
        .map(|e| {
            (
                e.entity_type.clone(),
                e.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                by_audit_id(e.user_id),
            )
        })
        .collect()
}

#[test]
fn a_rename_a_grant_a_membership_and_a_rate_by_named_actors_carry_their_actor_and_time() {
    let m = Mirror::new(30);
    let h = m.fake.handle();
    m.sync_ok();
    let (alice, carol, bob, dan) = (
        FIRST_USER_ID + 1,
        FIRST_USER_ID + 2,
        FIRST_USER_ID + 3,
        FIRST_USER_ID + 4,
    );
    let alice_name = h.user(alice).expect("alice").name;
    let carol_name = h.user(carol).expect("carol").name;
    let dan_admin = h.user(dan).expect("dan").admin;
    let group = h
        .group_ids()
        .into_iter()
        .find(|g| !h.user(bob).expect("bob").groups.contains(g))
        .expect("a group without bob");
    assert!(h.set_actor(Some(alice)));
    assert!(h.rename_user(bob, "Bob Renamed"));
    assert!(h.set_actor(Some(carol)));
    assert!(h.set_admin(dan, !dan_admin));
    assert!(h.set_actor(Some(alice)));
    assert!(h.join_group(group, bob));
    assert!(h.set_actor(Some(carol)));
    assert!(h.set_rate(dan, Some(55.5), "EUR"));
    let carol_email = h.user(carol).expect("carol").email;
    let alerts = m._dir.path().join("alerts.jsonl");
    let spared = m._dir.path().join("spared.jsonl");
    let command = |file: &std::path::Path| {
        format!(
            "command = [\"/bin/sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]",
            file.display(),
            file.display()
        )
    };
    let mut config = std::fs::read_to_string(&m.config).expect("config");
    config.push_str(&format!(
        "\n[[alert]]\nname = \"admins\"\nentity = \"user\"\nfields = [\"admin\"]\n{}\n\
         \n[[alert]]\nname = \"rates, not carol's\"\nentity = \"user_rate\"\nactor_not = [{carol_email:?}]\n{}\n",
        command(&alerts),
        command(&spared)
    ));
    std::fs::write(&m.config, config).expect("write config");
    m.sync_ok();
    let events = recorded(&m);
    let time_of = |t: &str| {
        events
            .iter()
            .find(|e| e.0 == t)
            .map(|e| e.1.clone())
            .expect("recorded")
    };
    let c = m.conn();
    let run = crate::support::last_run(&c);
    let attributed = rows(
        &c,
        &format!(
            "SELECT entity, entity_id, actor_name, changed_at, attribution FROM change_events
             WHERE sync_run_id = {run} AND attribution IS NOT NULL ORDER BY entity, entity_id"
        ),
    );
    let row = |entity: &str, id: String, actor: &str, at: String| {
        vec![
            entity.to_string(),
            id,
            actor.to_string(),
            at,
            "audit".to_string(),
        ]
    };
    let mut expected = vec![
        row(
            "group_membership",
            format!("{group}:{bob}"),
            &alice_name,
            time_of("group_user"),
        ),
        row("user", bob.to_string(), &alice_name, {
            events
                .iter()
                .find(|e| e.0 == "organization_user" && e.2 == alice_name)
                .map(|e| e.1.clone())
                .expect("the rename")
        }),
        row("user", dan.to_string(), &carol_name, {
            events
                .iter()
                .find(|e| e.0 == "organization_user" && e.2 == carol_name)
                .map(|e| e.1.clone())
                .expect("the grant")
        }),
        row(
            "user_rate",
            dan.to_string(),
            &carol_name,
            time_of("workspace_user_rate"),
        ),
    ];
    expected.sort();
    assert_eq!(attributed, expected);
    // The actor's id joins audit_actors, and through user_account_id users_current.
    assert_eq!(
        rows(
            &c,
            &format!(
                "SELECT u.name FROM change_events e
                 JOIN audit_actors a ON a.user_id = e.actor_user_id
                 JOIN users_current u ON u.user_account_id = a.user_account_id
                 WHERE e.sync_run_id = {run} AND e.entity = 'user_rate'"
            )
        ),
        vec![vec![carol_name.clone()]]
    );
    // Bookkeeping alone (updated_at) takes no event; the first run's inserts take none.
    assert_eq!(
        scalar(
            &c,
            "SELECT count(*) FROM change_events
             WHERE attribution IS NOT NULL AND (changed_fields = '[\"updated_at\"]' OR sync_run_id = 1)"
        ),
        0
    );
    // The history views carry the real time beside the observed one.
    assert_eq!(
        rows(
            &c,
            &format!(
                "SELECT changed_at FROM rate_history WHERE organization_user_id = {dan} AND valid_to IS NULL"
            )
        ),
        vec![vec![time_of("workspace_user_rate")]]
    );
    assert_eq!(
        scalar(&c, "SELECT count(*) FROM unobserved_changes"),
        0,
        "every event is explained"
    );

    // The alert carries the actor and the real time; carol's own rate change spares her.
    let sent = std::fs::read_to_string(&alerts).expect("the admin alert");
    let sent: serde_json::Value = serde_json::from_str(sent.trim()).expect("one JSON object");
    assert_eq!(sent["actor"]["name"], carol_name.as_str());
    assert_eq!(sent["actor"]["email"], carol_email.as_str());
    assert_eq!(
        sent["changed_at"],
        expected[2][3].as_str(),
        "the grant's time: {sent}"
    );
    assert!(!spared.exists(), "actor_not");

    // `changes` tells who and when; --actor keeps one person's.
    let feed = text(&m.run(&["changes", "--since", "7d"]).stdout);
    let seen = |at: &str| format!("{} {}", &at[..10], &at[11..16]);
    let grant_line = format!(
        "{}  {} {}, by {carol_name} (seen ",
        seen(&expected[2][3]),
        h.user(dan).expect("dan").name,
        if dan_admin {
            "is no longer an admin"
        } else {
            "became an admin"
        }
    );
    assert!(feed.contains(&grant_line), "{grant_line}\n{feed}");
    assert!(
        feed.contains(&format!(
            "is now called Bob Renamed, by {alice_name} (seen "
        )),
        "{feed}"
    );
    assert!(!feed.contains("updated_at changed"), "{feed}");
    let alices = text(
        &m.run(&["changes", "--since", "7d", "--actor", &alice_name])
            .stdout,
    );
    let lines: Vec<&str> = alices.lines().filter(|l| l.contains("  ")).collect();
    assert_eq!(lines.len(), 2, "{alices}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!(", by {alice_name} "))),
        "{alices}"
    );
    let by_email = text(&m.run(&["changes", "--actor", &carol_email]).stdout);
    assert!(
        by_email.contains(&format!("by {carol_name}")) && !by_email.contains(&alice_name),
        "{by_email}"
    );
}

#[test]
fn a_grant_made_and_revoked_between_two_runs_is_an_unobserved_change() {
    let m = Mirror::new(15);
    let h = m.fake.handle();
    m.sync_ok();
    let (alice, bob) = (FIRST_USER_ID + 1, FIRST_USER_ID + 2);
    let was = h.user(bob).expect("bob").admin;
    assert!(h.set_actor(Some(alice)));
    assert!(h.set_admin(bob, !was));
    assert!(h.set_admin(bob, was));
    m.sync_ok();
    let c = m.conn();
    let run = crate::support::last_run(&c);
    assert_eq!(
        scalar(
            &c,
            &format!(
                "SELECT count(*) FROM change_events
                 WHERE sync_run_id = {run} AND changed_fields <> '[\"updated_at\"]'"
            )
        ),
        0,
        "no run saw it (but its bookkeeping)"
    );
    let alice_name = h.user(alice).expect("alice").name;
    assert_eq!(
        rows(
            &c,
            "SELECT entity, subject_id, action, actor_name, json_extract(new_value, '$.admin'), sync_run_id
             FROM unobserved_changes ORDER BY created_at"
        ),
        vec![
            vec![
                "user".to_string(),
                bob.to_string(),
                "update".to_string(),
                alice_name.clone(),
                i64::from(!was).to_string(),
                run.to_string()
            ],
            vec![
                "user".to_string(),
                bob.to_string(),
                "update".to_string(),
                alice_name.clone(),
                i64::from(was).to_string(),
                run.to_string()
            ],
        ]
    );
    let feed = text(&m.run(&["changes"]).stdout);
    let bob_name = h.user(bob).expect("bob").name;
    assert_eq!(
        feed.matches(&format!("between runs: {bob_name}: admin → "))
            .count(),
        2,
        "{feed}"
    );
    assert!(
        feed.contains(&format!(", by {alice_name} (no run saw it)")),
        "{feed}"
    );
}

#[test]
fn a_window_longer_than_a_page_is_fetched_whole_and_the_overlap_is_not_paged_again() {
    let m = Mirror::new(10);
    let h = m.fake.handle();
    m.sync_ok();
    let now = chrono::Utc::now();
    for i in 0..1100 {
        h.add_audit_event(FakeAuditEvent {
            created_at: now - chrono::Duration::microseconds(1100 - i),
            entity_type: "time_entry".to_string(),
            entity_id: i,
            action: "create".to_string(),
            user_id: 1,
            workspace_id: 2001,
            project_id: 0,
            old_value: Default::default(),
            new_value: Default::default(),
            meta_data: Default::default(),
        });
    }
    // The run asks up to the second it starts in: in a later second than the newest page's
    // oldest event, the next request ends at that event and asks its second again whole (a
    // run in the same second pages on instead, one request fewer). Waiting past the second
    // makes the count not depend on how fast the run starts.
    while chrono::Utc::now().timestamp() <= now.timestamp() {
        std::thread::sleep(Duration::from_millis(20));
    }
    h.clear_requests();
    m.sync_ok();
    assert_eq!(
        audit_requests(&m),
        3,
        "1,100 events in one second: the first page, that second again, its second page"
    );
    assert_eq!(scalar(&m.conn(), "SELECT count(*) FROM audit_events"), 1100);
    h.clear_requests();
    m.sync_ok();
    assert_eq!(
        audit_requests(&m),
        1,
        "the overlap's 1,100 events are not paged through again"
    );
}

//! The audit log: every change an event with its actor, served in the published spec's
//! shape, paged and filtered; its switch; the generated history.

use std::collections::BTreeMap;

use chrono::{Duration as TimeDelta, Utc};

use super::*;
use crate::wire::AuditLogPage;

fn focus(users: usize) -> FakeOptions {
    FakeOptions {
        users,
        ..FakeOptions::default()
    }
}

/// The log path for the last `minutes` until a minute from now, with a query.
fn log_path(minutes: i64, query: &str) -> String {
    let now = Utc::now();
    let from =
        (now - TimeDelta::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let to = (now + TimeDelta::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!("/organizations/1001/audit-log/{from}/{to}?{query}")
}

async fn page(server: &FakeServer, path: &str) -> AuditLogPage {
    let a = get(server, path).await;
    assert_eq!(a.status, 200, "{}", a.body);
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: {}", a.body))
}

#[tokio::test]
async fn every_change_is_an_event_of_its_actor_newest_first_in_the_published_shape() {
    let server = start(focus(30)).await;
    let h = server.handle();
    let owner = FIRST_USER_ID;
    let (alice, bob) = (FIRST_USER_ID + 1, FIRST_USER_ID + 2);
    let bob_before = h.user(bob).expect("bob");
    let group = h
        .group_ids()
        .into_iter()
        .find(|g| !bob_before.groups.contains(g))
        .expect("a group without bob");
    h.clear_requests();

    assert!(h.set_actor(Some(alice)));
    assert!(h.rename_user(bob, "Bob Renamed"));
    assert!(h.set_admin(bob, !bob_before.admin));
    assert!(h.join_group(group, bob));
    assert!(h.set_rate(bob, Some(77.5), "EUR"));
    assert!(!h.set_actor(Some(999)), "an unknown actor is refused");
    assert!(h.set_actor(None));
    // Through the API: the caller, the owner, whoever the handle's actor is.
    assert!(h.set_actor(Some(alice)));
    let put = call(
        &server,
        reqwest::Method::PUT,
        &format!("{GROUPS}/{group}"),
        Auth::Token,
        Some(r#"{"name": "Renamed by the API"}"#),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);

    let a = get(&server, &log_path(5, "page_size=100")).await;
    let raw = a.json();
    for key in [
        "events",
        "user_summaries",
        "group_summaries",
        "workspace_summaries",
        "project_summaries",
        "client_summaries",
        "task_summaries",
        "custom_field_summaries",
        "custom_field_option_summaries",
    ] {
        assert!(raw.get(key).is_some(), "{key} missing: {raw}");
    }
    assert_fields(
        records(&raw, "events[]"),
        &[
            "action",
            "created_at",
            "entity_id",
            "entity_type",
            "meta_data",
            "new_value",
            "old_value",
            "organization_id",
            "product_id",
            "project_id",
            "user_id",
            "workspace_id",
        ],
        "audit event",
    );
    let log: AuditLogPage = serde_json::from_str(&a.body).expect("the page");
    let kinds: Vec<(&str, &str)> = log
        .events
        .iter()
        .map(|e| (e.entity_type.as_str(), e.action.as_str()))
        .collect();
    // Newest first: the API's group rename, then the rate, the membership, admin, name.
    assert_eq!(kinds[0], ("group", "update"), "{kinds:?}");
    assert_eq!(kinds[1].0, "workspace_user_rate", "{kinds:?}");
    assert_eq!(kinds[2].0, "group_user", "{kinds:?}");
    assert_eq!(
        kinds.last(),
        Some(&("organization_user", "update")),
        "{kinds:?}"
    );
    let times: Vec<&str> = log.events.iter().map(|e| e.created_at.as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort_by_key(|t| {
        std::cmp::Reverse(chrono::DateTime::parse_from_rfc3339(t).expect("RFC 3339"))
    });
    assert_eq!(times, sorted, "newest first");

    let actor_of = |i: usize| {
        let summary = &log.user_summaries[&log.events[i].user_id.to_string()];
        (summary.user_account_id, summary.name.clone())
    };
    let alice_info = h.user(alice).expect("alice");
    let owner_info = h.user(owner).expect("owner");
    assert_eq!(
        actor_of(0),
        (owner_info.user_account_id, owner_info.name.clone())
    );
    for i in 1..log.events.len() {
        assert_eq!(
            actor_of(i),
            (alice_info.user_account_id, alice_info.name.clone())
        );
    }
    assert_ne!(
        log.events[1].user_id, alice_info.user_account_id,
        "the actor's id is in a space of its own: only the summaries join it"
    );

    let rename = log.events.last().expect("the rename");
    assert_eq!(rename.entity_id, bob);
    assert_eq!(
        rename.old_value,
        serde_json::json!({"name": bob_before.name})
            .as_object()
            .cloned()
            .unwrap_or_default()
    );
    assert_eq!(rename.new_value["name"], "Bob Renamed");
    for e in &log.events {
        assert!(
            !e.new_value.contains_key("updated_at"),
            "bookkeeping is no field: {e:?}"
        );
    }
    let admin = &log.events[log.events.len() - 2];
    assert_eq!(admin.new_value["admin"], !bob_before.admin);
    let member = &log.events[2];
    assert_eq!(member.meta_data["group_id"], group.to_string());
    assert_eq!(member.meta_data["organization_user_id"], bob.to_string());
    let rate = &log.events[1];
    assert_eq!(rate.new_value["hourly_rate"], 77.5);
    assert_eq!(rate.meta_data["organization_user_id"], bob.to_string());
    assert_ne!(rate.workspace_id, 0);
    assert!(log
        .workspace_summaries
        .contains_key(&rate.workspace_id.to_string()));
    assert_eq!(
        log.group_summaries[&group.to_string()].name,
        "Renamed by the API"
    );
    // The subject is summarized too, under their audit id.
    assert!(log.user_summaries.values().any(|s| s.name == "Bob Renamed"));
    assert_eq!(h.audit_events().len(), log.events.len());
    assert_eq!(h.audit_request_count(), 1);
}

#[tokio::test]
async fn a_change_made_and_undone_is_two_events_and_an_unknown_type_is_served() {
    let server = start(focus(10)).await;
    let h = server.handle();
    let bob = FIRST_USER_ID + 3;
    let was = h.user(bob).expect("bob").admin;
    h.set_admin(bob, !was);
    h.set_admin(bob, was);
    h.add_audit_event(FakeAuditEvent {
        created_at: Utc::now() - TimeDelta::seconds(30),
        entity_type: "time_off_request".to_string(),
        entity_id: 42,
        action: "approve".to_string(),
        user_id: 1,
        workspace_id: 2001,
        project_id: 0,
        old_value: Default::default(),
        new_value: Default::default(),
        meta_data: BTreeMap::from([("reason".to_string(), "vacation".to_string())]),
    });
    let log = page(&server, &log_path(5, "")).await;
    let admin: Vec<bool> = log
        .events
        .iter()
        .filter(|e| e.entity_type == "organization_user")
        .map(|e| e.new_value["admin"].as_bool().expect("admin"))
        .collect();
    assert_eq!(admin, vec![was, !was]);
    assert_eq!(
        log.events.last().map(|e| e.entity_type.as_str()),
        Some("time_off_request")
    );
}

#[tokio::test]
async fn pages_are_capped_and_filtered_as_the_published_spec_says() {
    let server = start(focus(40)).await;
    let h = server.handle();
    let g = h.add_group("Audit", "");
    for id in h.user_ids().into_iter().take(30) {
        h.join_group(g, id);
    }
    h.set_rate(FIRST_USER_ID + 1, Some(10.5), "EUR");
    h.rename_user(FIRST_USER_ID + 2, "Zed");
    let all = page(&server, &log_path(5, "page_size=5000")).await.events;
    assert_eq!(all.len(), 33, "a group, 30 members, a rate and a rename");
    // No page_size: 50 a page; then pages until a short one.
    assert_eq!(page(&server, &log_path(5, "")).await.events, all);
    let p1 = page(&server, &log_path(5, "page_size=20")).await.events;
    let p2 = page(&server, &log_path(5, "page_size=20&page_number=2"))
        .await
        .events;
    assert_eq!((p1.len(), p2.len()), (20, 13));
    assert_eq!([p1, p2].concat(), all);
    let rate_ws = all
        .iter()
        .find(|e| e.entity_type == "workspace_user_rate")
        .map(|e| e.workspace_id)
        .expect("the rate's event");
    type Keep = Box<dyn Fn(&crate::wire::AuditEvent) -> bool>;
    let cases: Vec<(String, Keep)> = vec![
        (
            "entity_type=group_user".into(),
            Box::new(|e| e.entity_type == "group_user"),
        ),
        (
            "entity_type=group,workspace_user_rate".into(),
            Box::new(|e| e.entity_type == "group" || e.entity_type == "workspace_user_rate"),
        ),
        ("entity_type=workspace_logs".into(), Box::new(|_| true)),
        ("action=create".into(), Box::new(|e| e.action == "create")),
        (
            "action=update,delete".into(),
            Box::new(|e| e.action != "create"),
        ),
        (
            format!("entity_id={g}"),
            Box::new(move |e| e.entity_id == g),
        ),
        (
            format!("workspace_id={rate_ws}"),
            Box::new(move |e| e.workspace_id == rate_ws),
        ),
        (format!("user_id={}", all[0].user_id), Box::new(|_| true)),
        ("user_id=1,2".into(), Box::new(|_| false)),
    ];
    for (query, keep) in cases {
        let got = page(&server, &log_path(5, &format!("page_size=1000&{query}")))
            .await
            .events;
        let expected: Vec<_> = all.iter().filter(|e| keep(e)).cloned().collect();
        assert_eq!(got, expected, "{query}");
    }
    let export = page(
        &server,
        &log_path(
            5,
            &format!("export=true&workspace_id={rate_ws}&page_size=1"),
        ),
    )
    .await;
    assert_eq!(export.events.len(), 1);
    for query in ["export=true", "page_size=0", "page_number=0", "user_id=x"] {
        let a = get(&server, &log_path(5, query)).await;
        assert_eq!(a.status, 400, "{query}: {}", a.body);
    }
    let a = get(&server, &log_path(5, "workspace_id=9")).await;
    assert_eq!(a.status, 403, "a workspace of another organization");
    let a = get(
        &server,
        "/organizations/1001/audit-log/yesterday/2026-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = get(
        &server,
        "/organizations/1001/audit-log/2026-02-01T00:00:00Z/2026-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(a.status, 400, "from after to: {}", a.body);
    // A window before every change is empty; escapes and offsets in the path are read.
    let a = get(
        &server,
        "/organizations/1001/audit-log/2020-01-01T00%3A00%3A00%2B02%3A00/2020-01-02T00:00:00Z",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["events"], serde_json::json!([]));
}

#[tokio::test]
async fn page_size_and_page_number_are_capped_not_refused() {
    let server = start(FakeOptions {
        audit_backlog: Some(AuditBacklog {
            events: 12_000,
            days: 30,
        }),
        ..focus(20)
    })
    .await;
    let window = 31 * 24 * 60;
    let big = page(&server, &log_path(window, "page_size=5000"))
        .await
        .events;
    assert_eq!(big.len(), AUDIT_PAGE_SIZE_MAX);
    let at_cap = page(
        &server,
        &log_path(
            window,
            &format!("page_size=1&page_number={AUDIT_PAGE_NUMBER_MAX}"),
        ),
    )
    .await
    .events;
    let beyond = page(&server, &log_path(window, "page_size=1&page_number=10500"))
        .await
        .events;
    assert_eq!(at_cap.len(), 1);
    assert_eq!(beyond, at_cap, "a page beyond the cap is the cap's page");
}

#[tokio::test]
async fn the_switch_makes_the_log_404_403_or_503() {
    for (mode, status) in [
        (AuditLogMode::Off, 404),
        (AuditLogMode::Forbidden, 403),
        (AuditLogMode::Unavailable, 503),
    ] {
        let server = start(FakeOptions {
            audit_log: mode,
            ..focus(5)
        })
        .await;
        let a = get(&server, &log_path(5, "")).await;
        assert_eq!(a.status, status, "{mode:?}: {}", a.body);
        assert!(
            a.content_type().starts_with("application/json"),
            "{}",
            a.body
        );
        server.handle().set_audit_log(AuditLogMode::On);
        assert_eq!(get(&server, &log_path(5, "")).await.status, 200);
        assert_eq!(server.handle().audit_request_count(), 2);
    }
    let off = start(focus(5)).await;
    let a = call(
        &off,
        reqwest::Method::GET,
        &log_path(5, ""),
        Auth::None,
        None,
    )
    .await;
    assert_eq!(
        a.status, 401,
        "the log asks for credentials as every endpoint does"
    );
    assert_eq!(
        "unavailable".parse::<AuditLogMode>(),
        Ok(AuditLogMode::Unavailable)
    );
    assert!("sometimes".parse::<AuditLogMode>().is_err());
}

#[tokio::test]
async fn a_generated_history_is_paged_newest_first_and_the_same_for_the_same_seed() {
    let backlog: AuditBacklog = "5000:90d".parse().expect("backlog");
    assert_eq!(
        backlog,
        AuditBacklog {
            events: 5000,
            days: 90
        }
    );
    assert_eq!("7".parse::<AuditBacklog>().map(|b| b.days), Ok(90));
    assert!("7:90".parse::<AuditBacklog>().is_err());
    let opts = FakeOptions {
        audit_backlog: Some(backlog),
        ..focus(200)
    };
    let server = start(opts.clone()).await;
    let twin = start(opts).await;
    let window = 91 * 24 * 60;
    let mut seen = Vec::new();
    for n in 1..=6 {
        let p = page(
            &server,
            &log_path(window, &format!("page_size=1000&page_number={n}")),
        )
        .await;
        seen.extend(p.events);
    }
    assert_eq!(seen.len(), 5000, "five full pages, then an empty one");
    let times: Vec<chrono::DateTime<Utc>> = seen
        .iter()
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(&e.created_at)
                .expect("time")
                .with_timezone(&Utc)
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first"
    );
    let oldest = *times.last().expect("events");
    assert!(oldest > Utc::now() - TimeDelta::days(91) && oldest < Utc::now() - TimeDelta::days(89));
    let types: std::collections::BTreeSet<&str> =
        seen.iter().map(|e| e.entity_type.as_str()).collect();
    for t in [
        "time_entry",
        "project",
        "organization_user",
        "group_user",
        "workspace_user_rate",
    ] {
        assert!(types.contains(t), "{t} in {types:?}");
    }
    let last = page(&twin, &log_path(window, "page_size=1000&page_number=5")).await;
    let strip = |e: &crate::wire::AuditEvent| {
        (
            e.entity_type.clone(),
            e.entity_id,
            e.action.clone(),
            e.user_id,
        )
    };
    assert_eq!(
        last.events.iter().map(strip).collect::<Vec<_>>(),
        seen[4000..].iter().map(strip).collect::<Vec<_>>(),
        "the same seed makes the same history"
    );
    // A recorded change comes first; a filter reads the history too.
    server.handle().rename_user(FIRST_USER_ID + 5, "New");
    let first = page(&server, &log_path(window, "page_size=1")).await;
    assert_eq!(first.events[0].new_value["name"], "New");
    let n = page(
        &server,
        &log_path(window, "page_size=1000&entity_type=client"),
    )
    .await
    .events
    .len();
    assert!((100..500).contains(&n), "about 5% are clients: {n}");
}

//! The quota, and every fault the tests inject.

use super::*;

#[tokio::test]
async fn quota_headers_and_402_until_the_window_resets() {
    let server = start(FakeOptions {
        quota: Some(QuotaConfig {
            limit: 3,
            window: Duration::from_secs(1),
        }),
        ..opts(10)
    })
    .await;
    for expected in ["2", "1", "0"] {
        let a = get(&server, ROLES).await;
        assert_eq!(a.status, 200);
        assert_eq!(
            a.header("x-toggl-quota-remaining").as_deref(),
            Some(expected)
        );
        assert_eq!(a.header("x-toggl-quota-resets-in").as_deref(), Some("1"));
    }
    let spent = get(&server, ROLES).await;
    assert_eq!(spent.status, 402);
    assert!(spent.content_type().starts_with("text/plain"));
    assert_eq!(
        spent.header("x-toggl-quota-remaining").as_deref(),
        Some("0")
    );
    assert!(spent.header("x-toggl-quota-resets-in").is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = get(&server, ROLES).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.header("x-toggl-quota-remaining").as_deref(),
        Some("2")
    );

    server.handle().set_quota(None);
    assert!(get(&server, ROLES)
        .await
        .header("x-toggl-quota-remaining")
        .is_none());
}

#[tokio::test]
async fn status_html_429_402_and_redirect_faults() {
    let server = start(opts(120)).await;
    let h = server.handle();
    h.inject(
        Fault::new(Route::Users, FaultKind::Status(503, "try later".into()))
            .on_page(2)
            .times(2),
    );
    assert_eq!(get(&server, USERS).await.status, 200);
    for _ in 0..2 {
        let a = get(&server, &format!("{USERS}?page=2")).await;
        assert_eq!(a.status, 503);
        assert_eq!(a.body.trim(), "try later");
        assert!(a.content_type().starts_with("text/plain"));
    }
    assert_eq!(get(&server, &format!("{USERS}?page=2")).await.status, 200);

    h.inject(Fault::new(Route::Roles, FaultKind::Html(502)).times(1));
    let html = get(&server, ROLES).await;
    assert_eq!(html.status, 502);
    assert!(html.content_type().starts_with("text/html"));
    assert!(html.body.contains("<html>"));

    h.inject(
        Fault::new(
            Route::Teams,
            FaultKind::TooManyRequests {
                retry_after: Some("2".into()),
            },
        )
        .times(1),
    );
    h.inject(
        Fault::new(
            Route::Teams,
            FaultKind::TooManyRequests { retry_after: None },
        )
        .times(1),
    );
    let with = get(&server, TEAMS).await;
    assert_eq!(
        (with.status, with.header("retry-after").as_deref()),
        (429, Some("2"))
    );
    let without = get(&server, TEAMS).await;
    assert_eq!((without.status, without.header("retry-after")), (429, None));
    let date = "Wed, 21 Oct 2026 07:28:00 GMT";
    h.inject(
        Fault::new(
            Route::Any,
            FaultKind::TooManyRequests {
                retry_after: Some(date.into()),
            },
        )
        .times(1),
    );
    assert_eq!(
        get(&server, TEAMS).await.header("retry-after").as_deref(),
        Some(date)
    );

    h.inject(Fault::new(Route::MyGroups, FaultKind::QuotaSpent { resets_in: 42 }).times(1));
    let spent = get(&server, MY_GROUPS).await;
    assert_eq!(spent.status, 402);
    assert_eq!(
        spent.header("x-toggl-quota-remaining").as_deref(),
        Some("0")
    );
    assert_eq!(
        spent.header("x-toggl-quota-resets-in").as_deref(),
        Some("42")
    );
    assert_eq!(get(&server, MY_GROUPS).await.status, 200);

    h.inject(
        Fault::new(
            Route::Any,
            FaultKind::Redirect("https://elsewhere.example/api".into()),
        )
        .times(1),
    );
    let moved = get(&server, ROLES).await;
    assert_eq!(moved.status, 302);
    assert_eq!(
        moved.header("location").as_deref(),
        Some("https://elsewhere.example/api")
    );

    // Write routes are matched too, and clear_faults ends a fault that never runs out.
    h.inject(Fault::new(
        Route::CreateGroup,
        FaultKind::Status(500, "boom".into()),
    ));
    for _ in 0..2 {
        let a = call(
            &server,
            reqwest::Method::POST,
            GROUPS,
            Auth::Token,
            Some(r#"{"name":"x"}"#),
        )
        .await;
        assert_eq!(a.status, 500);
    }
    h.clear_faults();
    let a = call(
        &server,
        reqwest::Method::POST,
        GROUPS,
        Auth::Token,
        Some(r#"{"name":"x"}"#),
    )
    .await;
    assert_eq!(a.status, 201);
}

#[tokio::test]
async fn body_faults() {
    let server = start(opts(60)).await;
    let h = server.handle();
    h.inject(Fault::new(Route::Users, FaultKind::Truncated).times(1));
    let cut = get(&server, USERS).await;
    assert_eq!(cut.status, 200);
    assert!(serde_json::from_str::<Value>(&cut.body).is_err());
    assert!(cut.body.starts_with("{\"items\":["));

    h.inject(Fault::new(Route::Teams, FaultKind::Malformed).times(1));
    let junk = get(&server, TEAMS).await;
    assert_eq!(junk.status, 200);
    assert!(serde_json::from_str::<Value>(&junk.body).is_err());

    h.inject(Fault::new(Route::Users, FaultKind::WrongType).times(1));
    let wrong = get(&server, USERS).await;
    assert_eq!(wrong.json()["items"][0]["id"], "abc");
    assert!(serde_json::from_str::<Items<OrganizationUser>>(&wrong.body).is_err());
    h.inject(Fault::new(Route::Roles, FaultKind::WrongType).times(1));
    let wrong = get(&server, ROLES).await;
    assert!(serde_json::from_str::<Items<Role>>(&wrong.body).is_err());
    h.inject(Fault::new(Route::Teams, FaultKind::WrongType).times(1));
    assert_eq!(get(&server, TEAMS).await.json()["data"][0]["id"], "abc");

    h.inject(Fault::new(Route::Roles, FaultKind::Huge(300_000)).times(1));
    let huge = get(&server, ROLES).await;
    assert!(huge.body.len() >= 300_000);
    let parsed: Items<Role> = serde_json::from_str(&huge.body).expect("still valid JSON");
    assert!(!parsed.items.is_empty());

    // The next request is normal again.
    let fine: Items<OrganizationUser> =
        serde_json::from_str(&get(&server, USERS).await.body).expect("parse");
    assert_eq!(fine.items.len(), 50);
}

#[tokio::test]
async fn delay_and_hang_faults() {
    let server = start(opts(10)).await;
    let h = server.handle();
    h.inject(Fault::new(Route::Roles, FaultKind::Delay(Duration::from_millis(300))).times(1));
    let started = std::time::Instant::now();
    assert_eq!(get(&server, ROLES).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    h.inject(Fault::new(Route::Users, FaultKind::Hang).times(1));
    let resp = client()
        .get(format!("{}{USERS}", server.base_url()))
        .basic_auth("demo-token", Some("api_token"))
        .send()
        .await
        .expect("headers arrive");
    assert_eq!(resp.status().as_u16(), 200);
    let body = tokio::time::timeout(Duration::from_millis(500), resp.text()).await;
    assert!(body.is_err(), "the body never finishes");
    // The server still serves others.
    assert_eq!(get(&server, USERS).await.status, 200);
}

#[tokio::test]
async fn paging_faults_repeat_never_end_and_mutate() {
    let server = start(opts(100)).await;
    let h = server.handle();
    let page1 = ids(
        &get(&server, &format!("{USERS}?per_page=20")).await.json(),
        "items",
    );

    h.inject(
        Fault::new(Route::Users, FaultKind::RepeatPage(1))
            .on_page(2)
            .times(1),
    );
    let repeated = list_ids(&server, &format!("{USERS}?per_page=20&page=2"), "items").await;
    assert_eq!(repeated, page1);

    h.inject(Fault::new(Route::Users, FaultKind::NeverEnds));
    let far = list_ids(&server, &format!("{USERS}?per_page=20&page=1000"), "items").await;
    assert_eq!(far.len(), 20);
    let next = list_ids(&server, &format!("{USERS}?per_page=20&page=1001"), "items").await;
    assert!(next.iter().all(|id| !far.contains(id)));
    h.clear_faults();
    h.inject(Fault::new(Route::Teams, FaultKind::NeverEnds));
    let teams = get(&server, &format!("{TEAMS}&per_page=5&page=50"))
        .await
        .json();
    assert_eq!(ids(&teams, "data").len(), 5);
    assert!(teams["total"].as_i64().unwrap_or(0) > 50 * 5);
    h.clear_faults();

    // After page 1 is served, a user of page 1 disappears: page 2 starts one row later.
    let victim = page1[3];
    h.inject(
        Fault::new(
            Route::Users,
            FaultKind::MutateAfter(Arc::new(move |h: &FakeHandle| {
                h.remove_user(victim);
            })),
        )
        .on_page(1)
        .times(1),
    );
    let first = ids(
        &get(&server, &format!("{USERS}?per_page=20")).await.json(),
        "items",
    );
    assert!(
        first.contains(&victim),
        "the page was built before the mutation"
    );
    let second = list_ids(&server, &format!("{USERS}?per_page=20&page=2"), "items").await;
    assert_eq!(second[0], page1[19] + 2, "rows shifted by one");
    assert!(h.user(victim).is_none());
}

#[tokio::test]
async fn request_log_records_every_request() {
    let server = start(opts(10)).await;
    let h = server.handle();
    get(&server, &format!("{USERS}?page=1&per_page=5")).await;
    call(&server, reqwest::Method::GET, ROLES, Auth::None, None).await;
    let log = h.requests();
    assert_eq!(h.request_count(), 2);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/api/organizations/1001/users");
    assert_eq!(log[0].query, "page=1&per_page=5");
    assert_eq!(log[0].status, 200);
    assert_eq!(log[1].status, 403);
    assert!(log[0].at <= log[1].at);
    h.clear_requests();
    assert_eq!(h.request_count(), 0);
}

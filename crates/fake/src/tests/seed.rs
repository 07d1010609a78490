//! The seed profile: every field, envelope, status and filter as the reference page shows it.

use super::*;

// ----- the seed's field lists, copied from the reference page -----

pub(super) const SEED_USER: &[&str] = &[
    "2fa_enabled",
    "account_locked_at",
    "active",
    "admin",
    "can_edit_personal_details",
    "created_at",
    "deleted_at",
    "email",
    "groups",
    "id",
    "invite_sent",
    "joined",
    "name",
    "organization_id",
    "owner",
    "permissions",
    "rate",
    "tags",
    "updated_at",
    "user_account_id",
    "user_id",
    "working_hours",
    "workspaces",
];
pub(super) const SEED_USER_GROUP: &[&str] = &["emoji", "id", "name", "workspace_ids"];
pub(super) const SEED_RATE: &[&str] = &[
    "currency",
    "end_at",
    "hourly_rate",
    "start_at",
    "workspace_id",
    "workspace_rate_id",
    "workspace_user_rate_id",
];
pub(super) const SEED_TAG: &[&str] = &["color", "id", "label"];
pub(super) const SEED_USER_WORKSPACE: &[&str] = &[
    "focus_role_id",
    "groups",
    "id",
    "name",
    "toggl_products",
    "track_role_id",
    "work_role_id",
    "workspace_user_id",
];
pub(super) const SEED_USER_WORKSPACE_GROUP: &[&str] = &["emoji", "id", "name"];
pub(super) const SEED_TEAM: &[&str] = &[
    "created_at",
    "deleted_at",
    "emoji",
    "ghosts",
    "id",
    "name",
    "organization_id",
    "updated_at",
    "users",
    "workspaces",
];
pub(super) const SEED_TEAMS_PAGE: &[&str] = &["data", "page", "rows", "total"];
pub(super) const SEED_GHOST: &[&str] = &["id", "name"];
pub(super) const SEED_GROUP_USER: &[&str] = &[
    "created_at",
    "deleted_at",
    "display_name",
    "focus_role_id",
    "organization_user_id",
    "track_role_id",
    "updated_at",
    "user_account_id",
    "user_group_id",
    "work_role_id",
];
pub(super) const SEED_GROUP_WORKSPACE: &[&str] = &[
    "created_at",
    "deleted_at",
    "name",
    "updated_at",
    "workspace_group_id",
    "workspace_id",
];
pub(super) const SEED_GROUP: &[&str] = &[
    "created_at",
    "deleted_at",
    "emoji",
    "id",
    "name",
    "organization_id",
    "updated_at",
    "users",
    "workspaces",
];
pub(super) const SEED_ROLE: &[&str] = &[
    "code",
    "description",
    "entity",
    "name",
    "organization_id",
    "permissions",
    "privilege_level",
    "role_id",
    "type",
];
pub(super) const SEED_PERMISSION: &[&str] = &[
    "condition",
    "description",
    "entity",
    "name",
    "permission_id",
];
pub(super) const SEED_GROUP_REF: &[&str] = &["emoji", "id", "name"];

#[tokio::test]
async fn every_field_the_seed_lists_is_present() {
    let server = start(opts(200)).await;
    let users = get(
        &server,
        &format!("{USERS}?per_page=200&include_rates=true&include_working_hours=true"),
    )
    .await
    .json();
    let teams = get(&server, &format!("{TEAMS}&per_page=200")).await.json();
    let roles = get(&server, ROLES).await.json();
    let mine = get(&server, MY_GROUPS).await.json();
    let put = call(
        &server,
        reqwest::Method::PUT,
        &format!("{GROUPS}/{FIRST_GROUP_ID}"),
        Auth::Token,
        Some(r#"{"name":"Renamed ✨","organization_users":[100001,100002]}"#),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let put = put.json();

    // (what, the answer, where its records are, the fields the seed lists for them)
    #[rustfmt::skip]
    let cases: [(&str, &Value, &str, &[&str]); 17] = [
        ("users.items", &users, "items[]", SEED_USER),
        ("users.groups", &users, "items[].groups[]", SEED_USER_GROUP),
        ("users.rate", &users, "items[].rate", SEED_RATE),
        ("users.tags", &users, "items[].tags[]", SEED_TAG),
        ("users.workspaces", &users, "items[].workspaces[]", SEED_USER_WORKSPACE),
        ("users.workspaces.groups", &users, "items[].workspaces[].groups[]", SEED_USER_WORKSPACE_GROUP),
        ("teams", &teams, "", SEED_TEAMS_PAGE),
        ("teams.data", &teams, "data[]", SEED_TEAM),
        ("teams.ghosts", &teams, "data[].ghosts[]", SEED_GHOST),
        ("teams.users", &teams, "data[].users[]", SEED_GROUP_USER),
        ("teams.workspaces", &teams, "data[].workspaces[]", SEED_GROUP_WORKSPACE),
        ("roles.items", &roles, "items[]", SEED_ROLE),
        ("roles.permissions", &roles, "items[].permissions[]", SEED_PERMISSION),
        ("groups/me.items", &mine, "items[]", SEED_GROUP_REF),
        ("PUT group", &put, "", SEED_GROUP),
        ("PUT group.users", &put, "users[]", SEED_GROUP_USER),
        ("PUT group.workspaces", &put, "workspaces[]", SEED_GROUP_WORKSPACE),
    ];
    for (what, answer, path, fields) in cases {
        assert_fields(records(answer, path), fields, what);
    }
    assert!(records(&users, "items[]")
        .iter()
        .all(|u| u["permissions"].is_object()));
}

#[tokio::test]
async fn every_response_deserializes_into_the_models() {
    let server = start(opts(120)).await;
    let users: Items<OrganizationUser> = serde_json::from_str(
        &get(
            &server,
            &format!("{USERS}?include_rates=true&include_working_hours=true"),
        )
        .await
        .body,
    )
    .expect("users parse");
    assert_eq!(users.items.len(), 50);
    assert!(users.items.iter().any(|u| u.rate.is_some()));
    assert!(users.items.iter().any(|u| u.working_hours.is_some()));
    let teams: TeamsPage<Team> =
        serde_json::from_str(&get(&server, TEAMS).await.body).expect("teams parse");
    assert_eq!(teams.total, Some(12));
    assert_eq!(teams.data.len(), 12);
    let roles: Items<Role> =
        serde_json::from_str(&get(&server, ROLES).await.body).expect("roles parse");
    assert!(roles.items.len() >= 5);
    let mine: Items<GroupRef> =
        serde_json::from_str(&get(&server, MY_GROUPS).await.body).expect("groups/me parse");
    assert!(!mine.items.is_empty());
    let created = call(
        &server,
        reqwest::Method::POST,
        GROUPS,
        Auth::Token,
        Some(r#"{"name":"Nouvelle équipe","emoji":"🧪","organization_users":[100003],"workspaces":[2001]}"#),
    )
    .await;
    let created: Group = serde_json::from_str(&created.body).expect("created group parse");
    assert_eq!(created.name.as_deref(), Some("Nouvelle équipe"));
    let updated = call(
        &server,
        reqwest::Method::PUT,
        &format!("{GROUPS}/{}", created.id.unwrap_or_default()),
        Auth::Token,
        Some(r#"{"emoji":"🎯"}"#),
    )
    .await;
    let updated: Group = serde_json::from_str(&updated.body).expect("updated group parse");
    assert_eq!(updated.emoji.as_deref(), Some("🎯"));
    assert_eq!(updated.name.as_deref(), Some("Nouvelle équipe"));
    assert_eq!(updated.users.len(), 1);
}

async fn snapshot_bytes(server: &FakeServer) -> Vec<String> {
    let mut out = Vec::new();
    for q in [
        format!("{USERS}?per_page=200&include_rates=true&include_working_hours=true"),
        format!("{USERS}?per_page=200&page=2&include_rates=true"),
        format!("{TEAMS}&per_page=200"),
        ROLES.to_string(),
        MY_GROUPS.to_string(),
    ] {
        out.push(get(server, &q).await.body);
    }
    out
}

#[tokio::test]
async fn same_seed_same_bytes_different_seed_different_bytes() {
    let a = start(opts(300)).await;
    let b = start(opts(300)).await;
    let c = start(FakeOptions {
        seed: 2,
        ..opts(300)
    })
    .await;
    let (sa, sb, sc) = (
        snapshot_bytes(&a).await,
        snapshot_bytes(&b).await,
        snapshot_bytes(&c).await,
    );
    assert_eq!(sa, sb);
    assert_ne!(sa[0], sc[0]);
    assert_ne!(sa[2], sc[2]);
}

#[tokio::test]
async fn auth_variants() {
    let server = start(opts(10)).await;
    for auth in [Auth::Token, Auth::Login, Auth::Bearer] {
        assert_eq!(
            call(&server, reqwest::Method::GET, ROLES, auth, None)
                .await
                .status,
            200
        );
    }
    for auth in [
        Auth::None,
        Auth::Raw("Bearer nope"),
        Auth::Raw("Basic !!!notbase64"),
        Auth::Raw("Basic ZGVtby10b2tlbjp3cm9uZw=="), // demo-token:wrong
        Auth::Raw("Digest whatever"),
    ] {
        let a = call(&server, reqwest::Method::GET, ROLES, auth, None).await;
        assert_eq!(a.status, 403);
        assert!(
            a.content_type().starts_with("text/plain"),
            "{}",
            a.content_type()
        );
    }
    // A wrong password for the login.
    let wrong = client()
        .get(format!("{}{ROLES}", server.base_url()))
        .basic_auth("demo@example.com", Some("nope"))
        .send()
        .await
        .expect("sent");
    assert_eq!(wrong.status().as_u16(), 403);
    // A wrong organization.
    assert_eq!(get(&server, "/organizations/999/roles").await.status, 403);
    assert_eq!(get(&server, "/organizations/abc/roles").await.status, 400);

    server
        .handle()
        .set_credentials("new-token", "x@example.com", "pw");
    assert_eq!(get(&server, ROLES).await.status, 403);
    let ok = client()
        .get(format!("{}{ROLES}", server.base_url()))
        .basic_auth("new-token", Some("api_token"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test]
async fn status_codes_of_every_endpoint() {
    let server = start(opts(30)).await;
    let post = |body: &'static str| {
        let server = &server;
        async move {
            call(
                server,
                reqwest::Method::POST,
                GROUPS,
                Auth::Token,
                Some(body),
            )
            .await
        }
    };
    let created = post(r#"{"name":"A","organization_users":[100001],"workspaces":[2001]}"#).await;
    assert_eq!(created.status, 201);
    assert!(created.content_type().starts_with("application/json"));
    let new_id = created.json()["id"].as_i64().expect("id");
    for bad in [
        r#"{"emoji":"🚀"}"#,
        r#"{"name":"   "}"#,
        "not json",
        r#"["name"]"#,
        r#"{"name":5}"#,
        r#"{"name":"B","organization_users":[42]}"#,
        r#"{"name":"B","workspaces":[9]}"#,
    ] {
        let a = post(bad).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
        assert!(a.content_type().starts_with("text/plain"));
    }
    let no_auth = call(
        &server,
        reqwest::Method::POST,
        GROUPS,
        Auth::None,
        Some(r#"{"name":"A"}"#),
    )
    .await;
    assert_eq!(no_auth.status, 403);

    // Walked in order: the writes act on the group created above, which is then deleted.
    let group = format!("{GROUPS}/{new_id}");
    let name_x = Some(r#"{"name":"x"}"#);
    #[rustfmt::skip]
    let before_delete = [
        ("rename", "PUT", group.clone(), Some(r#"{"name":"A2"}"#), 200),
        ("empty name", "PUT", group.clone(), Some(r#"{"name":""}"#), 400),
        ("bad JSON", "PUT", group.clone(), Some("{"), 400),
        ("PUT an unknown group", "PUT", format!("{GROUPS}/424242"), name_x, 404),
        ("PUT a non-numeric id", "PUT", format!("{GROUPS}/abc"), name_x, 404),
        ("DELETE without workspace_id", "DELETE", group.clone(), None, 400),
        ("DELETE, workspace_id not a number", "DELETE", format!("{group}?workspace_id=x"), None, 400),
        ("DELETE in another workspace", "DELETE", format!("{group}?workspace_id=77"), None, 403),
        ("DELETE an unknown group", "DELETE", format!("{GROUPS}/424242?workspace_id=2001"), None, 404),
    ];
    for (case, method, path, body, status) in before_delete {
        let a = call(&server, method_of(method), &path, Auth::Token, body).await;
        assert_eq!(a.status, status, "{case}: {method} {path}: {}", a.body);
    }
    let delete = format!("{group}?workspace_id=2001");
    let deleted = call(&server, reqwest::Method::DELETE, &delete, Auth::Token, None).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body, "", "delete answers an empty body");
    assert!(server.handle().group(new_id).is_none());

    #[rustfmt::skip]
    let after_delete = [
        ("DELETE it again", "DELETE", delete, 404),
        ("teams without workspace_id", "GET", "/organizations/1001/teams".to_string(), 400),
        ("teams of another workspace", "GET", "/organizations/1001/teams?workspace_id=1".to_string(), 403),
        ("page 0", "GET", format!("{USERS}?page=0"), 400),
        ("per_page not a number", "GET", format!("{USERS}?per_page=x"), 400),
        ("an id filter not a number", "GET", format!("{USERS}?org_user_ids[]=x"), 400),
        ("an unknown sort_dir", "GET", format!("{USERS}?sort_dir=up"), 400),
        ("include_rates not a boolean", "GET", format!("{USERS}?include_rates=maybe"), 400),
        ("an unknown organization route", "GET", "/organizations/1001/nothing".to_string(), 404),
        ("outside the API", "GET", "/elsewhere".to_string(), 404),
        ("a method the route has not", "DELETE", USERS.to_string(), 405),
    ];
    for (case, method, path, status) in after_delete {
        let a = call(&server, method_of(method), &path, Auth::Token, None).await;
        assert_eq!(a.status, status, "{case}: {method} {path}: {}", a.body);
        if status == 405 {
            assert!(a.content_type().starts_with("text/plain"), "{case}");
        }
    }
}

fn method_of(name: &str) -> reqwest::Method {
    reqwest::Method::from_bytes(name.as_bytes()).expect("a method name")
}

#[tokio::test]
async fn paging_is_capped_sorted_and_ends() {
    let server = start(opts(120)).await;
    let h = server.handle();
    h.set_per_page_cap(50);
    let page1 = get(&server, &format!("{USERS}?per_page=500")).await.json();
    let got = ids(&page1, "items");
    assert_eq!(got.len(), 50);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(got[0], FIRST_USER_ID);
    let page3 = list_ids(&server, &format!("{USERS}?per_page=500&page=3"), "items").await;
    assert_eq!(page3.len(), 20);
    let past = list_ids(&server, &format!("{USERS}?page=4&per_page=50"), "items").await;
    assert!(past.is_empty());
    let far = list_ids(&server, &format!("{USERS}?page=99999999999"), "items").await;
    assert!(far.is_empty());
    let desc = list_ids(
        &server,
        &format!("{USERS}?per_page=10&sort_dir=desc"),
        "items",
    )
    .await;
    assert_eq!(desc.first().copied(), h.user_ids().last().copied());
    assert!(desc.windows(2).all(|w| w[0] > w[1]));
    // No `total` on users: the seed has none.
    assert!(page1.get("total").is_none());
    // Default per_page is 50.
    h.set_per_page_cap(200);
    assert_eq!(ids(&get(&server, USERS).await.json(), "items").len(), 50);

    let teams = get(&server, &format!("{TEAMS}&per_page=5&page=3"))
        .await
        .json();
    assert_eq!(teams["page"], 3);
    assert_eq!(teams["rows"], 2);
    assert_eq!(teams["total"], 12);
    let teams_desc = get(&server, &format!("{TEAMS}&per_page=3&sort_dir=desc"))
        .await
        .json();
    assert_eq!(
        ids(&teams_desc, "data")[0],
        *h.group_ids().last().expect("groups")
    );
}

#[tokio::test]
async fn array_filters_use_the_repeated_form() {
    let server = start(opts(80)).await;
    let h = server.handle();
    let users = get(
        &server,
        &format!("{USERS}?org_user_ids[]=100005&org_user_ids[]=100002&org_user_ids[]=999"),
    )
    .await
    .json();
    assert_eq!(ids(&users, "items"), vec![100002, 100005]);
    // Percent-encoded brackets are the same parameter.
    let encoded = get(&server, &format!("{USERS}?org_user_ids%5B%5D=100003"))
        .await
        .json();
    assert_eq!(ids(&encoded, "items"), vec![100003]);
    let groups = h.group_ids();
    let teams = get(
        &server,
        &format!(
            "{TEAMS}&group_ids[]={}&group_ids[]={}",
            groups[2], groups[0]
        ),
    )
    .await
    .json();
    assert_eq!(ids(&teams, "data"), vec![groups[0], groups[2]]);
    assert_eq!(teams["total"], 2);

    let members = h.group_members(groups[0]);
    let member = members[0];
    let by_member = get(&server, &format!("{TEAMS}&organization_user_id={member}"))
        .await
        .json();
    let expected: Vec<i64> = h.user(member).expect("user").groups;
    assert_eq!(ids(&by_member, "data"), expected);

    let in_group = get(
        &server,
        &format!("{USERS}?groups[]={}&per_page=200", groups[0]),
    )
    .await
    .json();
    assert_eq!(ids(&in_group, "items"), members);

    h.rename_user(100010, "Ünïqué Nâme 🦄");
    let found = get(&server, &format!("{USERS}?filter=%C3%BCn%C3%AFqu%C3%A9"))
        .await
        .json();
    assert_eq!(ids(&found, "items"), vec![100010]);
    let admins = get(&server, &format!("{USERS}?only_admins=true&per_page=200"))
        .await
        .json();
    assert!(arr(&admins["items"]).iter().all(|u| u["admin"] == true));
    assert!(!arr(&admins["items"]).is_empty());
}

#[tokio::test]
async fn rates_and_working_hours_only_when_asked() {
    let server = start(opts(40)).await;
    let plain = get(&server, USERS).await.json();
    assert!(arr(&plain["items"])
        .iter()
        .all(|u| u["rate"].is_null() && u["working_hours"].is_null()));
    let full = get(
        &server,
        &format!("{USERS}?include_rates=true&include_working_hours=1"),
    )
    .await
    .json();
    assert!(arr(&full["items"]).iter().any(|u| u["rate"].is_object()));
    assert!(
        arr(&full["items"]).iter().any(|u| u["rate"].is_null()),
        "some users have no rate"
    );
    assert!(arr(&full["items"])
        .iter()
        .any(|u| u["working_hours"].is_number()));
}

#[tokio::test]
async fn utc_offset_changes_the_rendering_not_the_instant() {
    let server = start(opts(10)).await;
    let utc = get(&server, USERS).await.json();
    let plus2 = FixedOffset::east_opt(2 * 3600).expect("valid offset");
    server.handle().set_utc_offset(Some(plus2));
    let shifted = get(&server, USERS).await.json();
    let a = utc["items"][0]["created_at"].as_str().expect("created_at");
    let b = shifted["items"][0]["created_at"]
        .as_str()
        .expect("created_at");
    assert!(a.ends_with('Z'), "{a}");
    assert!(b.ends_with("+02:00"), "{b}");
    assert_eq!(
        DateTime::parse_from_rfc3339(a).expect("rfc3339"),
        DateTime::parse_from_rfc3339(b).expect("rfc3339")
    );
    let teams = get(&server, TEAMS).await.json();
    assert!(teams["data"][0]["updated_at"]
        .as_str()
        .expect("updated_at")
        .ends_with("+02:00"));
}

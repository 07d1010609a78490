//! The focus profile: as Toggl's published spec says.

use super::seed::{SEED_GROUP_REF, SEED_TEAM, SEED_USER, SEED_USER_GROUP};
use super::*;

fn focus(users: usize) -> FakeOptions {
    FakeOptions {
        users,
        ..FakeOptions::default()
    }
}

/// A JSON error body as the real API is reported to send: `error`, `error_description`,
/// and a 32-hex `trace_id`.
fn assert_json_error(a: &Answer, status: u16, error: &str) -> String {
    assert_eq!(a.status, status, "{}", a.body);
    assert!(
        a.content_type().starts_with("application/json"),
        "{}",
        a.body
    );
    let v = a.json();
    assert_eq!(v["error"], error, "{}", a.body);
    let trace = v["trace_id"].as_str().expect("trace_id");
    assert!(
        trace.len() == 32 && trace.chars().all(|c| c.is_ascii_hexdigit()),
        "{trace}"
    );
    v["error_description"]
        .as_str()
        .expect("error_description")
        .to_string()
}

#[tokio::test]
async fn focus_is_the_default_and_takes_a_bearer_key_beside_the_seeds_basic_credentials() {
    assert_eq!(FakeOptions::default().profile, FakeProfile::Focus);
    let server = start(focus(10)).await;
    for auth in [Auth::Raw("Bearer toggl_sk_demo"), Auth::Token, Auth::Login] {
        let a = call(&server, reqwest::Method::GET, ROLES, auth, None).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    // The seed's token as Bearer is an older product's key: refused, as is anything else.
    for auth in [
        Auth::Bearer,
        Auth::None,
        Auth::Raw("Bearer toggl_sk_other"),
        Auth::Raw("Digest whatever"),
        Auth::Raw("Basic ZGVtby10b2tlbjp3cm9uZw=="),
    ] {
        let a = call(&server, reqwest::Method::GET, ROLES, auth, None).await;
        assert_json_error(&a, 401, "unauthorized");
    }
}

#[tokio::test]
async fn focus_refuses_more_than_100_a_page_with_the_validators_json() {
    let server = start(focus(150)).await;
    let ok = get(&server, &format!("{USERS}?per_page=100")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json().as_array().map(Vec::len), Some(100));
    for path in [
        format!("{USERS}?per_page=101"),
        format!("{TEAMS}&per_page=200"),
    ] {
        let a = get(&server, &path).await;
        let description = assert_json_error(&a, 400, "validation");
        assert_eq!(description, PER_PAGE_REFUSAL);
    }
    // Other errors are JSON too.
    let a = get(&server, "/organizations/1001/nothing").await;
    assert_json_error(&a, 404, "not_found");
    let a = get(&server, "/organizations/999/roles").await;
    assert_json_error(&a, 403, "forbidden");
}

// The published spec's field lists (its `required`), where they differ from the seed's.
const FOCUS_TEAM: &[&str] = &[
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
const FOCUS_ROLE: &[&str] = &[
    "code",
    "default_for_levels",
    "description",
    "entity",
    "name",
    "organization_id",
    "permissions",
    "privilege_level",
    "require_group",
    "role_id",
    "type",
];
const FOCUS_PERMISSION: &[&str] = &[
    "category_id",
    "category_name",
    "condition",
    "description",
    "entity",
    "name",
    "permission_id",
];
const FOCUS_CUSTOM_FIELD_VALUE: &[&str] = &[
    "custom_field_id",
    "custom_field_name",
    "field_type",
    "selected_options",
    "value",
];
const FOCUS_SELECTED_OPTION: &[&str] = &["is_deleted", "option_id", "option_name"];

#[tokio::test]
async fn focus_answers_as_the_published_spec() {
    let server = start(focus(30)).await;
    let users = get(&server, &format!("{USERS}?page=2&per_page=10"))
        .await
        .json();
    assert_eq!(users.as_array().map(Vec::len), Some(10), "{users}");
    assert_fields(records(&users, "[]"), SEED_USER, "users");
    assert_fields(
        records(&users, "[].groups[]"),
        SEED_USER_GROUP,
        "users.groups",
    );
    for u in arr(&users) {
        assert!(u["user_id"].is_string(), "{u}");
        assert!(u.get("custom_field_values").is_none(), "not asked for: {u}");
    }
    let teams = get(&server, TEAMS).await.json();
    let mut keys: Vec<&String> = teams.as_object().expect("an object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["data", "page", "rows", "total"], "{teams}");
    assert_fields(records(&teams, "data[]"), FOCUS_TEAM, "teams.data");
    assert!(
        arr(&teams["data"])
            .iter()
            .all(|t| t.get("ghosts").is_none()),
        "{teams}"
    );
    let roles = get(&server, ROLES).await.json();
    assert_fields(records(&roles, "[]"), FOCUS_ROLE, "roles");
    assert_fields(
        records(&roles, "[].permissions[]"),
        FOCUS_PERMISSION,
        "roles.permissions",
    );
    for r in arr(&roles) {
        assert!(
            ["owner", "admin", "manager", "guest"].contains(&r["type"].as_str().unwrap_or("")),
            "{r}"
        );
        assert!(
            ["organization", "workspace", "project", "group"]
                .contains(&r["entity"].as_str().unwrap_or("")),
            "{r}"
        );
        // `null` for a role that is the default nowhere, never an empty list.
        let levels = &r["default_for_levels"];
        assert!(
            levels.is_null() || arr(levels).iter().all(Value::is_string) && !arr(levels).is_empty(),
            "{r}"
        );
    }
    assert!(arr(&roles).iter().any(|r| r["require_group"] == true));
    assert!(arr(&roles)
        .iter()
        .any(|r| r["default_for_levels"].is_array()));
    assert!(arr(&roles)
        .iter()
        .any(|r| r["default_for_levels"].is_null()));
    let mine = get(&server, MY_GROUPS).await.json();
    assert_fields(records(&mine, "[]"), SEED_GROUP_REF, "groups/me");
}

#[tokio::test]
async fn focus_lists_custom_fields_of_exactly_one_workspace() {
    let server = start(focus(60)).await;
    let h = server.handle();
    let with_fields = format!("{USERS}?workspaces=2001&include_custom_fields=true&per_page=100");
    let members = get(&server, &with_fields).await.json();
    let in_2001: Vec<i64> = h
        .user_ids()
        .into_iter()
        .filter(|id| {
            h.user_record(*id)
                .is_some_and(|u| u.workspaces.iter().any(|w| w.workspace_id == 2001))
        })
        .collect();
    assert!(in_2001.len() < 60, "workspace 2001 is not everyone's");
    assert_eq!(ids(&json!({ "data": members }), "data"), in_2001);
    assert_fields(
        records(&members, "[].custom_field_values[]"),
        FOCUS_CUSTOM_FIELD_VALUE,
        "custom_field_values",
    );
    assert_fields(
        records(&members, "[].custom_field_values[].selected_options[]"),
        FOCUS_SELECTED_OPTION,
        "selected_options",
    );
    let values = records(&members, "[].custom_field_values[]");
    let types: std::collections::BTreeSet<&str> = values
        .iter()
        .filter_map(|v| v["field_type"].as_str())
        .collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["date", "multi_select", "number", "select", "text"]
    );
    assert!(
        records(&members, "[].custom_field_values[].selected_options[]")
            .iter()
            .any(|o| o["is_deleted"] == true)
    );
    // Without, or with more than one workspace, or in the reference page's form: 400.
    for query in [
        "include_custom_fields=true",
        "workspaces=2001,2002&include_custom_fields=true",
        "workspaces[]=2001&include_custom_fields=true",
    ] {
        let a = get(&server, &format!("{USERS}?{query}")).await;
        let description = assert_json_error(&a, 400, "bad_request");
        assert!(
            description.contains("exactly one workspace"),
            "{description}"
        );
    }
    // The control surface: a value set, cleared, renamed.
    let member = in_2001[1];
    assert!(h.select_custom_field_options(member, FIRST_CUSTOM_FIELD_ID, &[8102]));
    assert!(h.set_custom_field_value(member, 8002, json!("CC-7")));
    assert!(h.rename_custom_field_option(FIRST_CUSTOM_FIELD_ID, 8102, "Kundenservice"));
    assert!(!h.select_custom_field_options(member, FIRST_CUSTOM_FIELD_ID, &[8102, 8103]));
    let value_of = |v: &Value, field: i64| -> Option<Value> {
        arr(v).iter().find(|u| u["id"] == member).and_then(|u| {
            arr(&u["custom_field_values"])
                .iter()
                .find(|c| c["custom_field_id"] == field)
                .cloned()
        })
    };
    let members = get(&server, &with_fields).await.json();
    let department = value_of(&members, FIRST_CUSTOM_FIELD_ID).expect("set");
    assert_eq!(department["value"], 8102);
    assert_eq!(
        department["selected_options"][0]["option_name"],
        "Kundenservice"
    );
    assert_eq!(value_of(&members, 8002).expect("set")["value"], "CC-7");
    assert!(h.clear_custom_field(member, 8002));
    assert!(h.rename_custom_field(FIRST_CUSTOM_FIELD_ID, "Abteilung"));
    let members = get(&server, &with_fields).await.json();
    assert_eq!(value_of(&members, 8002), None);
    assert_eq!(
        value_of(&members, FIRST_CUSTOM_FIELD_ID).expect("set")["custom_field_name"],
        "Abteilung"
    );
}

#[tokio::test]
async fn seed_answers_without_the_published_fields() {
    let server = start(opts(30)).await;
    let roles = get(&server, ROLES).await.json();
    for r in records(&roles, "items[]") {
        assert!(
            r.get("require_group").is_none() && r.get("default_for_levels").is_none(),
            "{r}"
        );
    }
    for p in records(&roles, "items[].permissions[]") {
        assert!(p.get("category_id").is_none(), "{p}");
    }
    let teams = get(&server, TEAMS).await.json();
    assert_fields(records(&teams, "data[]"), SEED_TEAM, "teams.data");
    // `include_custom_fields` is not the reference page's: an unknown parameter, ignored.
    let users = get(
        &server,
        &format!("{USERS}?workspaces[]=2001&include_custom_fields=true"),
    )
    .await
    .json();
    assert!(!records(&users, "items[]").is_empty());
    assert!(records(&users, "items[]")
        .iter()
        .all(|u| u.get("custom_field_values").is_none()));
}

#[tokio::test]
async fn every_envelope_and_the_paging_headers_can_be_forced() {
    let server = start(focus(25)).await;
    let h = server.handle();
    let page2 = format!("{USERS}?page=2&per_page=10");
    h.set_list_shape(Route::Users, ListShape::Bare);
    let v = get(&server, &page2).await.json();
    assert_eq!(v.as_array().map(Vec::len), Some(10), "{v}");
    h.set_list_shape(Route::Users, ListShape::Items);
    assert_eq!(list_ids(&server, &page2, "items").await.len(), 10);
    h.set_list_shape(Route::Users, ListShape::DATA);
    let v = get(&server, &page2).await.json();
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    h.set_list_shape(
        Route::Users,
        ListShape::Data {
            page: true,
            per_page: true,
            rows: true,
            total: true,
        },
    );
    let v = get(&server, &page2).await.json();
    assert_eq!(
        (&v["page"], &v["per_page"], &v["rows"], &v["total"]),
        (&2.into(), &10.into(), &10.into(), &25.into())
    );
    let a = get(&server, &page2).await;
    assert_eq!(a.header("x-records"), None);
    h.set_paging_headers(true);
    let a = get(&server, &page2).await;
    assert_eq!(a.header("x-records").as_deref(), Some("25"));
    assert_eq!(a.header("x-pages").as_deref(), Some("3"));
    assert_eq!(a.header("x-page").as_deref(), Some("2"));
    assert_eq!(a.header("x-page-size").as_deref(), Some("10"));
    // The teams list and the whole lists too.
    h.set_list_shape(Route::Teams, ListShape::Bare);
    h.set_list_shape(Route::Roles, ListShape::Items);
    assert!(get(&server, TEAMS).await.json().is_array());
    let roles = get(&server, ROLES).await;
    assert!(roles.json()["items"].is_array());
    assert_eq!(roles.header("x-page").as_deref(), Some("1"));
}

#[tokio::test]
async fn a_key_expires_after_its_requests_and_a_new_key_revokes_the_old_one() {
    let server = start(FakeOptions {
        key_expires_after: Some(KeyExpiry::Requests(2)),
        ..focus(5)
    })
    .await;
    let h = server.handle();
    let roles = |auth| call(&server, reqwest::Method::GET, ROLES, auth, None);
    // The key and the token are one key: two requests between them, then both are spent.
    assert_eq!(roles(Auth::Raw("Bearer toggl_sk_demo")).await.status, 200);
    assert_eq!(roles(Auth::Token).await.status, 200);
    for auth in [Auth::Raw("Bearer toggl_sk_demo"), Auth::Token] {
        let a = roles(auth).await;
        assert_eq!(assert_json_error(&a, 401, "unauthorized"), KEY_EXPIRED);
        assert!(a.header("x-toggl-quota-remaining").is_none());
    }
    // A login is not a key: it never expires.
    assert_eq!(roles(Auth::Login).await.status, 200);
    // A new key is valid (its own two requests); the old one is revoked.
    h.set_api_key("toggl_sk_second");
    assert_eq!(roles(Auth::Raw("Bearer toggl_sk_second")).await.status, 200);
    let old = roles(Auth::Raw("Bearer toggl_sk_demo")).await;
    assert_eq!(assert_json_error(&old, 401, "unauthorized"), KEY_REVOKED);
    // A new token revokes the old token, and starts the count again.
    h.set_credentials("token-two", DEMO_EMAIL, "demo-password");
    let old = roles(Auth::Token).await;
    assert_eq!(assert_json_error(&old, 401, "unauthorized"), KEY_REVOKED);
    assert_eq!(roles(Auth::Raw("Bearer toggl_sk_second")).await.status, 200);
    // No expiry: the key answers for ever.
    h.expire_key_after(None);
    for _ in 0..3 {
        assert_eq!(roles(Auth::Raw("Bearer toggl_sk_second")).await.status, 200);
    }
    // By time: spent once its seconds have passed.
    h.expire_key_after(Some(KeyExpiry::Seconds(0)));
    let a = roles(Auth::Raw("Bearer toggl_sk_second")).await;
    assert_eq!(assert_json_error(&a, 401, "unauthorized"), KEY_EXPIRED);
    h.expire_key_after(Some(KeyExpiry::Seconds(3600)));
    assert_eq!(roles(Auth::Raw("Bearer toggl_sk_second")).await.status, 200);
}

#[test]
fn key_expiry_reads_requests_or_seconds() {
    assert_eq!("3".parse::<KeyExpiry>(), Ok(KeyExpiry::Requests(3)));
    assert_eq!(" 90s ".parse::<KeyExpiry>(), Ok(KeyExpiry::Seconds(90)));
    for bad in ["", "s", "-1", "2m", "1.5s"] {
        assert!(bad.parse::<KeyExpiry>().is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn a_feature_the_plan_lacks_is_a_402_without_the_quotas_headers() {
    let server = start(FakeOptions {
        plan_lacks: vec![PlanFeature::Rates],
        ..focus(5)
    })
    .await;
    let locked = get(&server, &format!("{USERS}?include_rates=true")).await;
    let said = assert_json_error(&locked, 402, "payment_required");
    assert_eq!(said, "rates feature not available on the plan");
    assert!(locked.header("x-toggl-quota-remaining").is_none());
    assert!(locked.header("x-toggl-quota-resets-in").is_none());
    // Not asking for it is fine; so is a feature the plan has.
    for query in ["?include_rates=false", "?include_working_hours=true"] {
        assert_eq!(get(&server, &format!("{USERS}{query}")).await.status, 200);
    }
    let h = server.handle();
    h.set_plan_lacks(&[PlanFeature::WorkingHours, PlanFeature::CustomFields]);
    assert_eq!(
        get(&server, &format!("{USERS}?include_rates=true"))
            .await
            .status,
        200
    );
    for (query, feature) in [
        ("include_working_hours=true", "working_hours"),
        (
            "workspaces=2001&include_custom_fields=true",
            "user_custom_fields",
        ),
    ] {
        let a = get(&server, &format!("{USERS}?{query}")).await;
        let said = assert_json_error(&a, 402, "payment_required");
        assert_eq!(said, format!("{feature} feature not available on the plan"));
    }
    // With a quota on, its headers say requests are left: not the quota's 402.
    h.set_quota(Some(QuotaConfig {
        limit: 10,
        window: Duration::from_secs(3600),
    }));
    let a = get(&server, &format!("{USERS}?include_working_hours=true")).await;
    assert_eq!(a.status, 402);
    assert_eq!(a.header("x-toggl-quota-remaining").as_deref(), Some("9"));
    assert_eq!(
        "rates,working_hours,custom_fields"
            .split(',')
            .map(str::parse::<PlanFeature>)
            .collect::<Result<Vec<_>, _>>(),
        Ok(vec![
            PlanFeature::Rates,
            PlanFeature::WorkingHours,
            PlanFeature::CustomFields
        ])
    );
}

#[tokio::test]
async fn a_group_created_without_a_name_is_required_fields_missing_with_its_values() {
    let server = start(focus(5)).await;
    let a = call(
        &server,
        reqwest::Method::POST,
        "/organizations/1001/groups",
        Auth::Token,
        Some(r#"{"emoji":"x"}"#),
    )
    .await;
    let said = assert_json_error(&a, 400, "required_fields_missing");
    assert_eq!(said, "name is required");
    assert_eq!(
        a.json()["error_values"],
        serde_json::json!({ "fields": ["name"], "is_deletion": false })
    );
    // Other errors carry none.
    let other = get(&server, &format!("{USERS}?per_page=101")).await;
    assert!(other.json().get("error_values").is_none(), "{}", other.body);
}

/// Focus honours the published comma form and ignores `name[]` as an unknown parameter
/// (the whole list comes back); seed the other way round; a server can honour neither.
#[tokio::test]
async fn each_profile_honours_one_form_of_the_array_filters() {
    let focus_server = start(focus(30)).await;
    let seed_server = start(opts(30)).await;
    let everyone = |server: &FakeServer| server.handle().user_ids().len();
    /// The ids listed, whatever the envelope (a bare array on focus).
    async fn users(server: &FakeServer, list: &str, query: String) -> Vec<i64> {
        let url = format!("{USERS}?per_page=100&{query}");
        let v = get(server, &url).await.json();
        match v.as_array() {
            Some(rows) => rows.iter().filter_map(|x| x["id"].as_i64()).collect(),
            None => ids(&v, list),
        }
    }
    let comma = "org_user_ids=100005,100002,999".to_string();
    let brackets = "org_user_ids[]=100005&org_user_ids[]=100002".to_string();
    assert_eq!(
        users(&focus_server, "data", comma.clone()).await,
        [100002, 100005]
    );
    assert_eq!(
        users(&focus_server, "data", brackets.clone()).await.len(),
        everyone(&focus_server)
    );
    assert_eq!(
        users(&seed_server, "items", brackets.clone()).await,
        [100002, 100005]
    );
    assert_eq!(
        users(&seed_server, "items", comma.clone()).await.len(),
        everyone(&seed_server)
    );
    // Every array filter on focus, and a bad value in the honoured form only.
    let h = focus_server.handle();
    let group = h.group_ids()[0];
    let members = h.group_members(group);
    assert_eq!(
        users(&focus_server, "data", format!("groups={group}")).await,
        members
    );
    let teams = get(
        &focus_server,
        &format!("{TEAMS}&group_ids={},{}", h.group_ids()[1], group),
    )
    .await
    .json();
    assert_eq!(ids(&teams, "data"), [group, h.group_ids()[1]]);
    let bad = get(&focus_server, &format!("{USERS}?org_user_ids=1,x")).await;
    assert_eq!(
        assert_json_error(&bad, 400, "bad_request"),
        "invalid org_user_ids: \"x\" is not an integer"
    );
    assert_eq!(
        get(&focus_server, &format!("{USERS}?org_user_ids[]=x"))
            .await
            .status,
        200
    );
    // Neither form: every such filter is ignored.
    h.set_array_filters(ArrayFilters::Ignored);
    for query in [comma, brackets, format!("group_ids={group}")] {
        assert_eq!(
            users(&focus_server, "data", query).await.len(),
            everyone(&focus_server)
        );
    }
    let all_teams = get(
        &focus_server,
        &format!("{TEAMS}&group_ids={group}&per_page=100"),
    )
    .await
    .json();
    assert_eq!(ids(&all_teams, "data").len(), h.group_ids().len());
}

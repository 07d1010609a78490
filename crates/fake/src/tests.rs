//! Unit tests of the fake, against the real server on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};

use super::wire::{Group, GroupRef, OrganizationUser, Role, Team};
use super::*;

/// The seed's `{"items": [...]}`, read back with the fake's own wire types (never the
/// client's models: the fake is the client's independent witness).
#[derive(Debug, serde::Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// The seed's teams page.
#[derive(Debug, serde::Deserialize)]
struct TeamsPage<T> {
    data: Vec<T>,
    total: Option<i64>,
}

const ANY_PORT: &str = "127.0.0.1:0";

/// The seed profile: most tests here hold the fake to the reference page; the focus
/// profile has tests of its own (`focus_*`).
fn opts(users: usize) -> FakeOptions {
    FakeOptions {
        users,
        profile: FakeProfile::Seed,
        ..FakeOptions::default()
    }
}

async fn start(opts: FakeOptions) -> FakeServer {
    let addr: SocketAddr = ANY_PORT.parse().expect("literal address");
    FakeServer::start(opts, addr).await.expect("fake starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn content_type(&self) -> String {
        self.header("content-type").unwrap_or_default()
    }
}

enum Auth {
    Token,
    Login,
    Bearer,
    None,
    Raw(&'static str),
}

async fn call(
    server: &FakeServer,
    method: reqwest::Method,
    path_and_query: &str,
    auth: Auth,
    body: Option<&str>,
) -> Answer {
    let url = format!("{}{}", server.base_url(), path_and_query);
    let mut req = client().request(method, url);
    req = match auth {
        Auth::Token => req.basic_auth("demo-token", Some("api_token")),
        Auth::Login => req.basic_auth("demo@example.com", Some("demo-password")),
        Auth::Bearer => req.bearer_auth("demo-token"),
        Auth::None => req,
        Auth::Raw(v) => req.header("authorization", v),
    };
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.expect("body read");
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(server: &FakeServer, path_and_query: &str) -> Answer {
    call(
        server,
        reqwest::Method::GET,
        path_and_query,
        Auth::Token,
        None,
    )
    .await
}

const USERS: &str = "/organizations/1001/users";
const TEAMS: &str = "/organizations/1001/teams?workspace_id=2001";
const ROLES: &str = "/organizations/1001/roles";
const MY_GROUPS: &str = "/organizations/1001/groups/me";
const GROUPS: &str = "/organizations/1001/groups";

/// The ids of the `list` (`items` or `data`) that a GET answers with.
async fn list_ids(server: &FakeServer, path_and_query: &str, list: &str) -> Vec<i64> {
    ids(&get(server, path_and_query).await.json(), list)
}

fn ids(v: &Value, list: &str) -> Vec<i64> {
    v[list]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["id"].as_i64()).collect())
        .unwrap_or_default()
}

// ----- the seed's field lists, copied from the reference page -----

const SEED_USER: &[&str] = &[
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
const SEED_USER_GROUP: &[&str] = &["emoji", "id", "name", "workspace_ids"];
const SEED_RATE: &[&str] = &[
    "currency",
    "end_at",
    "hourly_rate",
    "start_at",
    "workspace_id",
    "workspace_rate_id",
    "workspace_user_rate_id",
];
const SEED_TAG: &[&str] = &["color", "id", "label"];
const SEED_USER_WORKSPACE: &[&str] = &[
    "focus_role_id",
    "groups",
    "id",
    "name",
    "toggl_products",
    "track_role_id",
    "work_role_id",
    "workspace_user_id",
];
const SEED_USER_WORKSPACE_GROUP: &[&str] = &["emoji", "id", "name"];
const SEED_TEAM: &[&str] = &[
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
const SEED_TEAMS_PAGE: &[&str] = &["data", "page", "rows", "total"];
const SEED_GHOST: &[&str] = &["id", "name"];
const SEED_GROUP_USER: &[&str] = &[
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
const SEED_GROUP_WORKSPACE: &[&str] = &[
    "created_at",
    "deleted_at",
    "name",
    "updated_at",
    "workspace_group_id",
    "workspace_id",
];
const SEED_GROUP: &[&str] = &[
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
const SEED_ROLE: &[&str] = &[
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
const SEED_PERMISSION: &[&str] = &[
    "condition",
    "description",
    "entity",
    "name",
    "permission_id",
];
const SEED_GROUP_REF: &[&str] = &["emoji", "id", "name"];

/// Every record has every field, and there is at least one record (so the check bites).
fn assert_fields<'a>(records: impl IntoIterator<Item = &'a Value>, fields: &[&str], what: &str) {
    let mut seen = 0;
    for r in records {
        seen += 1;
        let obj = r
            .as_object()
            .unwrap_or_else(|| panic!("{what}: not an object: {r}"));
        for f in fields {
            assert!(obj.contains_key(*f), "{what}: field {f:?} missing in {r}");
        }
    }
    assert!(seen > 0, "{what}: no record to check");
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The records at `path` below `v`: `key` steps into a field (a null one is no record),
/// `key[]` into each element of a list (`[]` of `v` itself, a bare array); `""` is `v` itself.
fn records<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut at = vec![v];
    for step in path.split('.').filter(|s| !s.is_empty()) {
        at = match step.strip_suffix("[]") {
            Some("") => at.into_iter().flat_map(arr).collect(),
            Some(list) => at.into_iter().flat_map(|v| arr(&v[list])).collect(),
            None => at
                .into_iter()
                .map(|v| &v[step])
                .filter(|v| !v.is_null())
                .collect(),
        };
    }
    at
}

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

#[tokio::test]
async fn mutations_show_in_every_endpoint_consistently() {
    let server = start(opts(60)).await;
    let h = server.handle();
    let t0 = h.now();
    h.advance(chrono::Duration::hours(1));
    assert_eq!(h.now(), t0 + chrono::Duration::hours(1));

    let id = h.add_user("Élodie Nouvelle", "elodie@example.com");
    assert_eq!(h.user_ids().last().copied(), Some(id));
    let group = h.add_group("Neu 🆕", "🆕");
    assert!(h.join_group(group, id));
    assert!(!h.join_group(group, id), "already a member");
    assert!(h.join_group(group, FIRST_USER_ID + 1));
    assert_eq!(h.group_members(group), vec![FIRST_USER_ID + 1, id]);
    assert!(h.rename_user(id, "Élodie Renamed"));
    assert!(h.set_email(id, "elodie2@example.com"));
    assert!(h.set_active(id, false));
    assert!(h.set_rate(id, Some(99.5), "EUR"));
    assert!(h.set_working_hours(id, Some(32.0)));

    let user = get(
        &server,
        &format!("{USERS}?org_user_ids[]={id}&include_rates=true&include_working_hours=true"),
    )
    .await
    .json();
    let u = &user["items"][0];
    assert_eq!(u["name"], "Élodie Renamed");
    assert_eq!(u["email"], "elodie2@example.com");
    assert_eq!(u["active"], false);
    assert_eq!(u["rate"]["hourly_rate"], 99.5);
    assert_eq!(u["rate"]["currency"], "EUR");
    assert_eq!(u["working_hours"], 32.0);
    assert_eq!(u["groups"][0]["id"], group);
    assert_eq!(u["groups"][0]["name"], "Neu 🆕");
    assert_eq!(u["workspaces"][0]["groups"][0]["id"], group);
    let stamp = render_stamp(h.now());
    assert_eq!(u["updated_at"], stamp.as_str());
    assert_eq!(u["rate"]["start_at"], stamp.as_str());

    // A changed rate starts at the (advanced) clock.
    h.advance(chrono::Duration::days(1));
    h.set_rate(id, Some(120.0), "USD");
    let info = h.user(id).expect("user");
    assert_eq!(
        (info.hourly_rate, info.currency.as_deref()),
        (Some(120.0), Some("USD"))
    );
    assert_eq!(
        h.user_record(id).and_then(|u| u.rate).map(|r| r.start_at),
        Some(h.now())
    );
    h.set_rate(id, None, "EUR");
    assert_eq!(h.user(id).and_then(|u| u.hourly_rate), None);

    let team = get(&server, &format!("{TEAMS}&group_ids[]={group}"))
        .await
        .json();
    let names: Vec<&str> = arr(&team["data"][0]["users"])
        .iter()
        .filter_map(|u| u["display_name"].as_str())
        .collect();
    assert!(names.contains(&"Élodie Renamed"));
    assert_eq!(
        team["data"][0]["updated_at"],
        render_stamp(t0 + chrono::Duration::hours(1)).as_str()
    );

    assert!(h.rename_group(group, "Umbenannt"));
    assert_eq!(
        h.group(group).map(|g| g.name),
        Some("Umbenannt".to_string())
    );
    assert!(h.leave_group(group, FIRST_USER_ID + 1));
    assert_eq!(h.group_members(group), vec![id]);

    // Removing a user takes them out of every group.
    let before = h.counts();
    assert!(h.remove_user(id));
    assert!(!h.remove_user(id));
    assert!(h.group_members(group).is_empty());
    assert_eq!(h.counts().users, before.users - 1);
    assert_eq!(h.counts().memberships, before.memberships - 1);

    assert!(h.remove_group(group));
    assert!(!h.remove_group(group));
    assert!(h.group(group).is_none());
    assert!(!h.rename_user(424242, "x"));

    // Roles.
    let role = h.role_ids()[0];
    assert!(h.rename_role(role, "Eigentümer"));
    let pid = h
        .add_role_permission(role, "export_data")
        .expect("role exists");
    let roles = get(&server, ROLES).await.json();
    let r = arr(&roles["items"])
        .iter()
        .find(|r| r["role_id"] == role)
        .expect("role")
        .clone();
    assert_eq!(r["name"], "Eigentümer");
    assert!(arr(&r["permissions"])
        .iter()
        .any(|p| p["permission_id"] == pid && p["name"] == "export_data"));
    assert!(h.remove_role_permission(role, pid));
    assert!(!h.remove_role_permission(role, pid));
    assert!(h
        .role(role)
        .expect("role")
        .permissions
        .iter()
        .all(|p| p.permission_id != pid));
    assert!(h.edit_role(role, |r| r.privilege_level = 7));
    assert_eq!(h.role(role).map(|r| r.privilege_level), Some(7));
    assert_eq!(h.add_role_permission(999, "x"), None);

    assert_org_consistent(&server).await;
}

fn render_stamp(at: DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn unknown_fields_reach_every_record_and_models_ignore_them() {
    let server = start(opts(20)).await;
    let h = server.handle();
    h.add_unknown_field("user", "pronouns", Value::String("they/them".into()));
    h.add_unknown_field("group", "color", serde_json::json!({"hex": "#fff"}));
    h.add_unknown_field("role", "scope", Value::from(3));
    let users = get(&server, USERS).await;
    assert!(arr(&users.json()["items"])
        .iter()
        .all(|u| u["pronouns"] == "they/them"));
    let parsed: Items<OrganizationUser> =
        serde_json::from_str(&users.body).expect("models ignore it");
    assert_eq!(parsed.items.len(), 20);
    assert!(arr(&get(&server, TEAMS).await.json()["data"])
        .iter()
        .all(|t| t["color"]["hex"] == "#fff"));
    assert!(arr(&get(&server, ROLES).await.json()["items"])
        .iter()
        .all(|r| r["scope"] == 3));
    let put = call(
        &server,
        reqwest::Method::PUT,
        &format!("{GROUPS}/{FIRST_GROUP_ID}"),
        Auth::Token,
        Some("{}"),
    )
    .await;
    assert_eq!(put.json()["color"]["hex"], "#fff");
    h.clear_unknown_fields();
    assert!(get(&server, USERS).await.json()["items"][0]
        .get("pronouns")
        .is_none());
}

#[tokio::test]
async fn put_replaces_only_the_fields_present() {
    let server = start(opts(50)).await;
    let h = server.handle();
    let id = FIRST_GROUP_ID + 1;
    let before = h.group(id).expect("group");
    let a = call(
        &server,
        reqwest::Method::PUT,
        &format!("{GROUPS}/{id}"),
        Auth::Token,
        Some(r#"{"workspaces":[2001,2002]}"#),
    )
    .await;
    assert_eq!(a.status, 200);
    let after = h.group(id).expect("group");
    assert_eq!(after.name, before.name);
    assert_eq!(after.members, before.members);
    assert_eq!(after.workspaces, vec![2001, 2002]);
    let a = call(
        &server,
        reqwest::Method::PUT,
        &format!("{GROUPS}/{id}"),
        Auth::Token,
        Some(r#"{"organization_users":[100004,100003]}"#),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(h.group_members(id), vec![100003, 100004]);
    let body = a.json();
    let listed: Vec<i64> = arr(&body["users"])
        .iter()
        .filter_map(|u| u["organization_user_id"].as_i64())
        .collect();
    assert_eq!(listed, vec![100003, 100004]);
    for old in before.members {
        if old != 100003 && old != 100004 {
            assert!(!h.user(old).expect("user").groups.contains(&id));
        }
    }
    assert_org_consistent(&server).await;
}

/// Users' `groups` (and their workspaces' `groups`) agree with the teams' member lists.
async fn assert_org_consistent(server: &FakeServer) {
    let users = get(server, &format!("{USERS}?per_page=200")).await.json();
    let teams = get(server, &format!("{TEAMS}&per_page=200")).await.json();
    let mut from_teams: Vec<(i64, i64)> = Vec::new();
    for t in arr(&teams["data"]) {
        let gid = t["id"].as_i64().expect("id");
        let ws: Vec<i64> = arr(&t["workspaces"])
            .iter()
            .filter_map(|w| w["workspace_id"].as_i64())
            .collect();
        for m in arr(&t["users"]) {
            from_teams.push((gid, m["organization_user_id"].as_i64().expect("member")));
        }
        // The same group seen from each member's workspaces.
        for u in arr(&users["items"]) {
            for w in arr(&u["workspaces"]) {
                let in_ws_groups = arr(&w["groups"]).iter().any(|g| g["id"] == gid);
                let wid = w["id"].as_i64().expect("workspace id");
                let member = arr(&t["users"])
                    .iter()
                    .any(|m| m["organization_user_id"] == u["id"]);
                assert_eq!(
                    in_ws_groups,
                    member && ws.contains(&wid),
                    "group {gid}, user {}, ws {wid}",
                    u["id"]
                );
            }
        }
    }
    let mut from_users: Vec<(i64, i64)> = Vec::new();
    for u in arr(&users["items"]) {
        for g in arr(&u["groups"]) {
            from_users.push((g["id"].as_i64().expect("id"), u["id"].as_i64().expect("id")));
        }
    }
    from_teams.sort_unstable();
    from_users.sort_unstable();
    assert_eq!(from_teams, from_users);
}

#[tokio::test]
async fn generated_org_is_consistent() {
    let server = start(opts(150)).await;
    assert_org_consistent(&server).await;
    let h = server.handle();
    let c = h.counts();
    assert_eq!((c.users, c.groups, c.workspaces), (150, 15, 2));
    assert!(c.roles >= 5);
    assert!(h.user(FIRST_USER_ID).expect("owner").email == "demo@example.com");
    let mine = get(&server, MY_GROUPS).await.json();
    assert_eq!(
        ids(&mine, "items"),
        h.user(FIRST_USER_ID).expect("owner").groups
    );
}

#[test]
fn large_org_generates_with_unique_ids_and_emails() {
    let h = FakeHandle::new(&opts(20_000));
    let c = h.counts();
    assert_eq!((c.users, c.groups, c.workspaces), (20_000, 2_000, 40));
    let state = h.lock();
    let mut emails: Vec<&str> = state.org.users.iter().map(|u| u.email.as_str()).collect();
    emails.sort_unstable();
    emails.dedup();
    assert_eq!(emails.len(), 20_000);
    let mut accounts: Vec<i64> = state.org.users.iter().map(|u| u.user_account_id).collect();
    accounts.dedup();
    assert_eq!(accounts.len(), 20_000, "account ids grow strictly");
    assert!(state.org.users.iter().any(|u| !u.active));
    assert!(state.org.users.iter().any(|u| u.rate.is_none()));
    assert!(
        state
            .org
            .users
            .iter()
            .any(|u| u.name.chars().any(|ch| ch as u32 > 0x1F000)),
        "some names carry emoji"
    );
    assert!(state
        .org
        .groups
        .values()
        .all(|g| g.members.len() <= 31 && !g.workspaces.is_empty()));
}

#[test]
fn background_server_serves_and_stops_on_drop() {
    let server = FakeServer::start_background(opts(5)).expect("starts");
    let addr = server.addr();
    let url = format!("{}{ROLES}", server.base_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = rt.block_on(async {
        client()
            .get(&url)
            .bearer_auth("demo-token")
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(status.ok(), Some(200));
    assert_eq!(server.handle().request_count(), 1);
    drop(server);
    let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500));
    assert!(refused.is_err(), "the listener is closed after drop");
}

/// A writer the test can read while the server still runs.
#[derive(Clone, Default)]
struct SharedOut(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn serve_cli_prints_key_value_lines_then_serves_until_stopped() {
    let out = SharedOut::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut writer = out.clone();
    let task = tokio::spawn(async move {
        let addr: SocketAddr = ANY_PORT.parse().expect("literal address");
        serve_until(addr, opts(7), &mut writer, async move {
            let _ = stopped.await;
            Ok(())
        })
        .await
    });
    let text = loop {
        let text =
            String::from_utf8_lossy(&out.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        if text.contains("profile=") {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert_eq!(
        keys,
        [
            "base_url",
            "organization_id",
            "workspace_id",
            "api_token",
            "email",
            "password",
            "users",
            "profile"
        ]
    );
    for line in [
        "organization_id=1001",
        "workspace_id=2001",
        "api_token=demo-token",
        "email=demo@example.com",
        "password=demo-password",
        "users=7",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in {text}");
    }
    let base = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("base_url="))
        .expect("base_url");
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/api"),
        "{base}"
    );
    let served = client()
        .get(format!("{base}{ROLES}"))
        .basic_auth("demo-token", Some("api_token"))
        .send()
        .await
        .expect("serving");
    assert_eq!(served.status().as_u16(), 200);
    let _ = stop.send(());
    task.await.expect("joined").expect("served");
    assert!(
        client().get(format!("{base}{ROLES}")).send().await.is_err(),
        "stopped"
    );
}

#[tokio::test]
async fn oversized_request_bodies_are_refused_and_logged() {
    let server = start(opts(5)).await;
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let a = client()
        .post(format!("{}{GROUPS}", server.base_url()))
        .basic_auth("demo-token", Some("api_token"))
        .body(big)
        .send()
        .await
        .expect("sent");
    assert_eq!(a.status().as_u16(), 413);
    assert_eq!(server.handle().requests()[0].status, 413);
}

#[tokio::test]
async fn a_soft_removed_member_stays_listed_with_deleted_at_until_added_again() {
    let server = start(opts(60)).await;
    let h = server.handle();
    let (group, user) = h
        .group_ids()
        .into_iter()
        .find_map(|g| h.group_members(g).first().map(|&u| (g, u)))
        .expect("a group with a member");
    assert!(h.soft_leave_group(group, user));
    assert!(!h.soft_leave_group(group, user), "no longer a member");
    assert!(!h.group_members(group).contains(&user));
    let listed = |teams: &Value| -> Option<Value> {
        teams["data"]
            .as_array()?
            .iter()
            .find(|t| t["id"] == group)?["users"]
            .as_array()?
            .iter()
            .find(|u| u["organization_user_id"] == user)
            .map(|u| u["deleted_at"].clone())
    };
    let teams = get(&server, &format!("{TEAMS}&per_page=200")).await.json();
    let deleted_at = listed(&teams).expect("still listed");
    assert!(
        deleted_at.as_str().is_some_and(|t| t.contains('T')),
        "{deleted_at}"
    );
    assert!(h.join_group(group, user));
    let teams = get(&server, &format!("{TEAMS}&per_page=200")).await.json();
    assert_eq!(listed(&teams), Some(Value::Null));
}

#[test]
fn the_request_log_keeps_the_newest_requests_and_counts_them_all() {
    let h = FakeHandle::new(&opts(3));
    let at = std::time::Instant::now();
    let request = |i: usize| LoggedRequest {
        at,
        method: "GET".into(),
        path: format!("/{i}"),
        query: String::new(),
        status: 200,
    };
    for i in 0..REQUEST_LOG_MAX + 10 {
        h.lock().log(request(i));
    }
    assert_eq!(h.request_count(), REQUEST_LOG_MAX + 10);
    let log = h.requests();
    assert_eq!(log.len(), REQUEST_LOG_MAX / 2 + 10);
    assert_eq!(
        log.last().map(|r| r.path.as_str()),
        Some(format!("/{}", REQUEST_LOG_MAX + 9).as_str())
    );
    h.clear_requests();
    assert_eq!(h.request_count(), 0);
}

// ---------------------------------------------------------------------------------------
// The focus profile: as Toggl's published spec says.

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

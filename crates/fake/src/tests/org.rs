//! The organization: generated consistent, changed consistently in every endpoint.

use super::*;

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

//! The feed's sentences, for every entity, op and changed field.

use serde_json::{json, Value};

use super::*;

fn row(entity: &str, op: &str, fields: &[&str], before: Value, after: Value) -> ChangeRow {
    ChangeRow {
        event_id: 1,
        sync_run_id: 2,
        run_kind: "full".into(),
        first_run: false,
        observed_at: "2026-12-01T10:30:59Z".into(),
        entity: entity.into(),
        entity_id: "100042".into(),
        op: op.into(),
        changed_fields: fields.iter().map(|f| f.to_string()).collect(),
        before: (!before.is_null()).then_some(before),
        after: (!after.is_null()).then_some(after),
        user_name: None,
        group_name: None,
        group_emoji: None,
        actor_name: None,
        changed_at: None,
    }
}

#[test]
fn the_issues_sentences() {
    let mut joined = row(
        "group_membership",
        "insert",
        &[],
        Value::Null,
        json!({"group_id": 5, "organization_user_id": 7}),
    );
    joined.entity_id = "5:7".into();
    joined.user_name = Some("Ada Lovelace".into());
    joined.group_name = Some("Data Team".into());
    joined.group_emoji = Some("📊".into());
    assert_eq!(sentences(&joined), ["Ada Lovelace joined Data Team 📊"]);
    assert_eq!(
        render(std::slice::from_ref(&joined)),
        "run 2 (full sync, 2026-12-01T10:30:59Z): 1 change\n\
         2026-12-01 10:30  Ada Lovelace joined Data Team 📊\n"
    );

    let mut rate = row(
        "user_rate",
        "update",
        &["hourly_rate", "start_at"],
        json!({"hourly_rate": 80.0, "currency": "EUR"}),
        json!({"hourly_rate": 95.0, "currency": "EUR"}),
    );
    rate.user_name = Some("Grace Hopper".into());
    assert_eq!(sentences(&rate), ["Grace Hopper's rate 80.00 → 95.00 EUR"]);

    let renamed = row(
        "group",
        "update",
        &["name", "updated_at"],
        json!({"name": "Ops", "emoji": "⚙"}),
        json!({"name": "Platform", "emoji": "⚙"}),
    );
    assert_eq!(sentences(&renamed), ["group Ops renamed to Platform"]);

    let admin = row(
        "user",
        "update",
        &["admin", "updated_at"],
        json!({"name": "Alan Turing", "admin": false}),
        json!({"name": "Alan Turing", "admin": true}),
    );
    assert_eq!(sentences(&admin), ["Alan Turing became an admin"]);
    let perms = row(
        "user",
        "update",
        &["permissions"],
        json!({"name": "Alan", "permissions": {"view_rates": false, "manage_users": true}}),
        json!({"name": "Alan", "permissions": {"view_rates": true, "manage_users": false}}),
    );
    assert_eq!(
        sentences(&perms),
        ["Alan may now view_rates", "Alan may no longer manage_users"]
    );
}

#[test]
fn every_entity_and_op_has_a_sentence() {
    let user = json!({"name": "Kai", "email": "k@x", "active": true});
    let group = json!({"name": "Ops", "emoji": null});
    let role = json!({"name": "Admin", "permissions": [{"name": "edit_rates"}]});
    let role2 = json!({"name": "Admin", "permissions": [{"name": "view_rates"}]});
    let rate = json!({"hourly_rate": 50.0, "currency": "USD"});
    let cases = [
        (
            row("user", "insert", &[], Value::Null, user.clone()),
            "Kai joined the organization",
        ),
        (
            row("user", "delete", &[], user.clone(), Value::Null),
            "Kai left the organization",
        ),
        (
            row("group", "insert", &[], Value::Null, group.clone()),
            "group Ops was created",
        ),
        (
            row("group", "delete", &[], group.clone(), Value::Null),
            "group Ops was deleted",
        ),
        (
            ChangeRow {
                entity_id: "5:7".into(),
                ..row("group_membership", "delete", &[], json!({}), Value::Null)
            },
            "user 7 left group 5",
        ),
        (
            row("user_rate", "insert", &[], Value::Null, rate.clone()),
            "user 100042's rate set to 50.00 USD",
        ),
        (
            row("user_rate", "delete", &[], rate.clone(), Value::Null),
            "user 100042's rate removed (was 50.00 USD)",
        ),
        (
            row("role", "insert", &[], Value::Null, role.clone()),
            "role Admin was added",
        ),
        (
            row("role", "delete", &[], role.clone(), Value::Null),
            "role Admin was removed",
        ),
        (
            row("role", "update", &["permissions"], role.clone(), role2),
            "role Admin gained view_rates",
        ),
    ];
    for (r, expected) in cases {
        let got = sentences(&r);
        assert_eq!(got.first().map(String::as_str), Some(expected), "{got:?}");
    }
    // Bookkeeping alone is recorded, and is no sentence.
    for entity in ["user", "group", "group_membership"] {
        let touched = row(
            entity,
            "update",
            &["updated_at"],
            user.clone(),
            user.clone(),
        );
        assert_eq!(sentences(&touched), Vec::<String>::new(), "{entity}");
    }
}

#[test]
fn a_change_with_its_actor_reads_its_real_time_and_between_runs_lines_follow_its_run() {
    let mut grant = row(
        "user",
        "update",
        &["admin", "updated_at"],
        json!({"name": "Bob Smith", "admin": false}),
        json!({"name": "Bob Smith", "admin": true}),
    );
    grant.observed_at = "2026-12-01T14:10:00Z".into();
    grant.changed_at = Some("2026-12-01T14:03:27.120000Z".into());
    grant.actor_name = Some("Alice Martin".into());
    let mut feed = Feed::new(Vec::new(), false);
    feed.between_runs(vec![
        UnobservedRow {
            sync_run_id: 1,
            created_at: "2026-11-30T09:00:00.000000Z".into(),
            entity: "group_membership".into(),
            subject_id: "5:7".into(),
            action: "create".into(),
            actor_name: None,
            new_value: None,
            subject_name: Some("Ada".into()),
        },
        UnobservedRow {
            sync_run_id: 2,
            created_at: "2026-12-01T13:00:00.000000Z".into(),
            entity: "user".into(),
            subject_id: "100042".into(),
            action: "update".into(),
            actor_name: Some("Carol".into()),
            new_value: Some(json!({"admin": true, "updated_at": "x"})),
            subject_name: Some("Bob Smith".into()),
        },
    ]);
    feed.push(grant).expect("in memory");
    let text = String::from_utf8(feed.close().expect("in memory")).expect("utf-8");
    assert_eq!(
        text,
        "run 1: no change seen, but between runs:\n\
         2026-11-30 09:00  between runs: Ada's membership of group 5 was created (no run saw it)\n\
         \n\
         run 2 (full sync, 2026-12-01T14:10:00Z): 1 change\n\
         2026-12-01 14:03  Bob Smith became an admin, by Alice Martin (seen 14:10)\n\
         2026-12-01 13:00  between runs: Bob Smith: admin → true, by Carol (no run saw it)\n"
    );
}

/// Every field an update can change, by entity: the sentences it makes, in full.
#[test]
fn every_changed_field_has_its_sentences() {
    let ann = |extra: Value| {
        let mut v = json!({"name": "Ann", "admin": false, "permissions": {"view_rates": false}});
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        v
    };
    let update = |entity: &str, fields: &[&str], before: Value, after: Value| {
        row(entity, "update", fields, before, after)
    };
    let ops = json!({"name": "Ops", "emoji": "⚙", "workspaces": [1]});
    let role = |perms: &[&str]| {
        let perms: Vec<Value> = perms.iter().map(|p| json!({"name": p})).collect();
        json!({"name": "Admin", "permissions": perms, "description": "a"})
    };
    let eur = |r: f64| json!({"hourly_rate": r, "currency": "EUR", "start_at": "x"});
    let cases: Vec<(&str, ChangeRow, Vec<&str>)> = vec![
        (
            "a user renamed",
            update(
                "user",
                &["name"],
                json!({"name": "Ann"}),
                json!({"name": "Anne"}),
            ),
            vec!["Ann is now called Anne"],
        ),
        (
            "admin taken away",
            update(
                "user",
                &["admin"],
                ann(json!({"admin": true})),
                ann(json!({})),
            ),
            vec!["Ann is no longer an admin"],
        ),
        (
            "owner given, permissions following from it",
            update(
                "user",
                &["owner", "permissions"],
                ann(json!({"owner": false})),
                ann(json!({"owner": true, "permissions": {"view_rates": true}})),
            ),
            vec!["Ann became an owner"],
        ),
        (
            "owner taken away",
            update(
                "user",
                &["owner"],
                ann(json!({"owner": true})),
                ann(json!({"owner": false})),
            ),
            vec!["Ann is no longer an owner"],
        ),
        (
            "deactivated",
            update(
                "user",
                &["active"],
                ann(json!({"active": true})),
                ann(json!({"active": false})),
            ),
            vec!["Ann was deactivated"],
        ),
        (
            "reactivated",
            update(
                "user",
                &["active"],
                ann(json!({"active": false})),
                ann(json!({"active": true})),
            ),
            vec!["Ann was reactivated"],
        ),
        (
            "the invitation accepted",
            update(
                "user",
                &["joined"],
                ann(json!({"joined": false})),
                ann(json!({"joined": true})),
            ),
            vec!["Ann accepted the invitation"],
        ),
        (
            "an email and working hours",
            update(
                "user",
                &["email", "working_hours"],
                ann(json!({"email": "a@x", "working_hours": null})),
                ann(json!({"email": "ann@x", "working_hours": 8})),
            ),
            vec!["Ann's email a@x → ann@x", "Ann's working hours none → 8"],
        ),
        (
            "an account locked",
            update(
                "user",
                &["account_locked_at"],
                ann(json!({})),
                ann(json!({"account_locked_at": "t"})),
            ),
            vec!["Ann's account was locked"],
        ),
        (
            "an account unlocked",
            update(
                "user",
                &["account_locked_at"],
                ann(json!({"account_locked_at": "t"})),
                ann(json!({})),
            ),
            vec!["Ann's account was unlocked"],
        ),
        (
            "permissions the same in other words",
            update(
                "user",
                &["permissions"],
                ann(json!({})),
                ann(json!({"permissions": {}})),
            ),
            vec!["Ann's permissions changed"],
        ),
        (
            "other fields, of a name ending in s, bookkeeping left out",
            update(
                "user",
                &["tags", "rate", "updated_at"],
                json!({"name": "Jules"}),
                json!({"name": "Jules"}),
            ),
            vec!["Jules' tags, rate changed"],
        ),
        (
            "a user without a name",
            update("user", &["tags"], json!({}), json!({"name": " "})),
            vec!["user 100042's tags changed"],
        ),
        (
            "a group's emoji and workspaces",
            update(
                "group",
                &["emoji", "workspaces"],
                ops.clone(),
                json!({"name": "Ops", "workspaces": [2]}),
            ),
            vec![
                "group Ops's emoji ⚙ → none",
                "group Ops's workspaces changed",
            ],
        ),
        (
            "a group created with an emoji",
            row("group", "insert", &[], Value::Null, ops.clone()),
            vec!["group Ops ⚙ was created"],
        ),
        (
            "a membership changed, names unknown",
            ChangeRow {
                entity_id: "5:7".into(),
                ..update("group_membership", &["track_role_id"], json!({}), json!({}))
            },
            vec!["user 7's membership of group 5 changed (track_role_id)"],
        ),
        (
            "a rate in another currency",
            update(
                "user_rate",
                &["hourly_rate", "currency"],
                eur(80.0),
                json!({"hourly_rate": 90, "currency": "USD"}),
            ),
            vec!["user 100042's rate 80.00 EUR → 90.00 USD"],
        ),
        (
            "a rate's dates only",
            update("user_rate", &["start_at"], eur(80.0), eur(80.0)),
            vec!["user 100042's rate's start_at changed"],
        ),
        (
            "a rate set where there was none",
            update(
                "user_rate",
                &["hourly_rate"],
                json!({"currency": "EUR"}),
                eur(80.0),
            ),
            vec!["user 100042's rate none → 80.00 EUR"],
        ),
        (
            "a role renamed, losing a permission, its description changed",
            update(
                "role",
                &["name", "permissions", "description"],
                json!({"name": "Boss", "permissions": [{"name": "a"}, {"name": "b"}]}),
                json!({"name": "Admin", "permissions": [{"name": "b"}], "description": "d"}),
            ),
            vec![
                "role Boss renamed to Admin",
                "role Admin lost a",
                "role Admin's description changed",
            ],
        ),
        (
            "a role's permissions reordered",
            update(
                "role",
                &["permissions"],
                role(&["a", "b"]),
                role(&["b", "a"]),
            ),
            vec!["role Admin's permissions changed"],
        ),
        (
            "an entity with no sentences of its own",
            row("workspace", "insert", &[], Value::Null, json!({})),
            vec!["workspace 100042 added"],
        ),
    ];
    for (case, row, expected) in cases {
        assert_eq!(sentences(&row), expected, "{case}");
    }
}

//! The pure pieces of group administration: a group as read back, the state an update asks
//! for, and the one-line description of a change.

use serde_json::json;

use super::*;

fn group(name: &str, emoji: Option<&str>, members: &[i64], workspaces: &[i64]) -> LiveGroup {
    LiveGroup {
        id: 5,
        name: name.to_string(),
        emoji: emoji.map(str::to_string),
        members: members.iter().copied().collect(),
        workspaces: workspaces.iter().copied().collect(),
    }
}

/// A teams row read back: rows listed as deleted (a real instant in `deleted_at`) are not
/// members, so a PUT built from it does not bring them back.
#[test]
fn a_group_read_back_leaves_out_what_is_listed_as_deleted() {
    let team: Team = serde_json::from_value(json!({
        "id": 5, "name": "Ops", "emoji": "⚙",
        "users": [
            { "organization_user_id": 1 },
            { "organization_user_id": 2, "deleted_at": "2026-01-01T00:00:00Z" },
            { "organization_user_id": 3, "deleted_at": null },
            // Not an instant, or before 1970 (a zero value): not a deletion.
            { "organization_user_id": 4, "deleted_at": "0001-01-01T00:00:00Z" },
            { "organization_user_id": 6, "deleted_at": "soon" },
            { "deleted_at": null },
        ],
        "workspaces": [
            { "workspace_id": 2001 },
            { "workspace_id": 2002, "deleted_at": "2026-01-01T00:00:00+02:00" },
        ],
    }))
    .expect("a teams row");
    let live = LiveGroup::from_team(&team).expect("has an id");
    assert_eq!(live, group("Ops", Some("⚙"), &[1, 3, 4, 6], &[2001]));
    let write = live.as_write();
    assert_eq!(write.organization_users, Some(vec![1, 3, 4, 6]));
    assert_eq!(write.workspaces, Some(vec![2001]));
    assert_eq!(
        (write.name.as_deref(), write.emoji.as_deref()),
        (Some("Ops"), Some("⚙"))
    );
    let nameless: Team = serde_json::from_value(json!({ "id": 5 })).expect("a teams row");
    assert_eq!(
        LiveGroup::from_team(&nameless),
        Some(group("", None, &[], &[]))
    );
    let without_id: Team = serde_json::from_value(json!({ "name": "x" })).expect("a teams row");
    assert_eq!(LiveGroup::from_team(&without_id), None);
}

/// The state an update asks for: a member list replaces the members, then additions, then
/// removals (a removal wins over an addition of the same user); what is not asked for stays.
#[test]
fn an_update_changes_only_what_it_names() {
    let current = group("Ops", Some("⚙"), &[1, 2, 3], &[2001]);
    type Case = (
        &'static str,
        (Option<&'static str>, Option<&'static str>),
        (&'static [i64], &'static [i64], Option<&'static [i64]>),
        Option<&'static [i64]>,
        LiveGroup,
    );
    // (case, (name, emoji), (add, remove, members), workspaces) -> the group asked for
    #[rustfmt::skip]
    let cases: [Case; 8] = [
        ("nothing", (None, None), (&[], &[], None), None, current.clone()),
        ("a rename", (Some("Platform"), None), (&[], &[], None), None, group("Platform", Some("⚙"), &[1, 2, 3], &[2001])),
        ("an emoji", (None, Some("🧪")), (&[], &[], None), None, group("Ops", Some("🧪"), &[1, 2, 3], &[2001])),
        ("add and remove", (None, None), (&[4, 1], &[2, 9], None), None, group("Ops", Some("⚙"), &[1, 3, 4], &[2001])),
        ("a removal wins", (None, None), (&[4], &[4], None), None, group("Ops", Some("⚙"), &[1, 2, 3], &[2001])),
        ("members replaced", (None, None), (&[], &[], Some(&[7, 8])), None, group("Ops", Some("⚙"), &[7, 8], &[2001])),
        ("replaced, then added and removed", (None, None), (&[9], &[7], Some(&[7, 8])), None, group("Ops", Some("⚙"), &[8, 9], &[2001])),
        ("workspaces replaced", (None, None), (&[], &[], Some(&[])), Some(&[2002, 2003]), group("Ops", Some("⚙"), &[], &[2002, 2003])),
    ];
    for (case, (name, emoji), (add, remove, members), workspaces, expected) in cases {
        let next = apply_change(&current, name, emoji, add, remove, members, workspaces);
        assert_eq!(next, expected, "{case}");
    }
}

/// What a change says, in the order name, emoji, members added, removed, workspaces added,
/// removed; ids through the labels given.
#[test]
fn a_change_is_described_field_by_field() {
    let user = |u: i64| format!("u{u}@example.com");
    let ws = |w: i64| format!("ws{w}");
    let ops = group("Ops", Some("⚙"), &[1, 2], &[2001]);
    let cases = [
        ("no change", ops.clone(), vec![]),
        (
            "a rename and an emoji taken away",
            group("Platform", None, &[1, 2], &[2001]),
            vec![r#"name "Ops" -> "Platform""#, "emoji ⚙ -> (none)"],
        ),
        (
            "members and workspaces both ways",
            group("Ops", Some("⚙"), &[2, 3, 4], &[2002]),
            vec![
                "+member u3@example.com",
                "+member u4@example.com",
                "-member u1@example.com",
                "+workspace ws2002",
                "-workspace ws2001",
            ],
        ),
    ];
    for (case, next, expected) in cases {
        assert_eq!(describe_change(&ops, &next, &user, &ws), expected, "{case}");
    }
    let bare = group("Ops", None, &[], &[]);
    let with_emoji = group("Ops", Some("🧪"), &[], &[]);
    assert_eq!(
        describe_change(&bare, &with_emoji, &user, &ws),
        ["emoji (none) -> 🧪"]
    );
}

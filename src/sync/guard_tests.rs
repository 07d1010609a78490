//! The deletion guard alone: a stored mirror, a pull, a limit, and whether the run may go on.

use super::guard_deletions;
use crate::api::models::{OrganizationUser, Team};
use crate::diff::state_of;
use crate::snapshot::OrgSnapshot;

/// An organization: user ids, and groups as `(id, member ids)`.
struct Org<'a> {
    users: &'a [i64],
    groups: &'a [(i64, &'a [i64])],
}

fn snapshot(org: &Org) -> OrgSnapshot {
    let mut s = OrgSnapshot::default();
    for &id in org.users {
        let user = OrganizationUser {
            id: Some(id),
            name: Some(format!("user {id}")),
            ..Default::default()
        };
        s.add_user(user, None).unwrap();
    }
    for &(id, members) in org.groups {
        let team: Team = serde_json::from_value(serde_json::json!({
            "id": id,
            "name": format!("group {id}"),
            "users": members.iter().map(|m| serde_json::json!({"organization_user_id": m})).collect::<Vec<_>>(),
        }))
        .unwrap();
        s.add_team(team, None).unwrap();
    }
    s
}

#[test]
fn the_guard_refuses_more_than_the_fraction_and_all_of_an_entity_and_nothing_else() {
    // (what happens, stored, pulled, max_delete_fraction, None to go on or Some(words of the refusal))
    let cases: &[(&str, Org, Org, f64, Option<&str>)] = &[
        (
            "a first sync: nothing is held, nothing can be deleted",
            Org { users: &[], groups: &[] },
            Org { users: &[1, 2], groups: &[(100, &[1])] },
            0.0,
            None,
        ),
        (
            "nothing removed",
            Org { users: &[1, 2], groups: &[(100, &[1])] },
            Org { users: &[1, 2], groups: &[(100, &[1])] },
            0.0,
            None,
        ),
        (
            "a quarter of the users, limit a half",
            Org { users: &[1, 2, 3, 4], groups: &[] },
            Org { users: &[1, 2, 3], groups: &[] },
            0.5,
            None,
        ),
        (
            "exactly the limit is allowed",
            Org { users: &[1, 2, 3, 4], groups: &[] },
            Org { users: &[1, 2], groups: &[] },
            0.5,
            None,
        ),
        (
            "more than the limit",
            Org { users: &[1, 2, 3, 4], groups: &[] },
            Org { users: &[1], groups: &[] },
            0.5,
            Some("would delete 3 of 4 users (75%), more than sync.max_delete_fraction = 0.5 allows;"),
        ),
        (
            "all of them, even when the limit allows everything",
            Org { users: &[1], groups: &[] },
            Org { users: &[], groups: &[] },
            1.0,
            Some("would delete 1 of 1 users (100%), more than sync.max_delete_fraction = 1 allows (all of them)"),
        ),
        (
            "a limit of zero refuses one deletion",
            Org { users: &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], groups: &[] },
            Org { users: &[1, 2, 3, 4, 5, 6, 7, 8, 9], groups: &[] },
            0.0,
            Some("would delete 1 of 10 users (10%)"),
        ),
        (
            "groups are counted apart from users",
            Org { users: &[1, 2], groups: &[(100, &[]), (101, &[]), (102, &[])] },
            Org { users: &[1, 2], groups: &[(100, &[])] },
            0.5,
            Some("would delete 2 of 3 groups (67%)"),
        ),
        (
            "new users do not make up for removed ones",
            Org { users: &[1, 2], groups: &[] },
            Org { users: &[1, 3, 4, 5, 6, 7], groups: &[] },
            0.4,
            Some("would delete 1 of 2 users (50%)"),
        ),
        (
            "memberships are not guarded: a group emptied of its members",
            Org { users: &[1, 2], groups: &[(100, &[1, 2])] },
            Org { users: &[1, 2], groups: &[(100, &[])] },
            0.0,
            None,
        ),
    ];
    for (what, stored, pulled, max_fraction, refusal) in cases {
        let result = guard_deletions(
            &state_of(&snapshot(stored)),
            &snapshot(pulled),
            *max_fraction,
        );
        match (refusal, result) {
            (None, Ok(())) => {}
            (Some(words), Err(e)) => {
                assert!(e.is_refusal(), "{what}: {e}");
                let message = e.to_string();
                assert!(message.contains(words), "{what}: {message}");
                assert!(
                    message.contains("orgmirror sync --allow-mass-delete"),
                    "{what}: {message}"
                );
            }
            (refusal, result) => panic!("{what}: expected {refusal:?}, got {result:?}"),
        }
    }
}

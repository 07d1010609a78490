//! The snapshot's unit tests: records normalised, a team seen twice, records missing a key field.

use super::*;

#[test]
fn reordered_lists_give_the_same_json() {
    let user = |tags: Vec<i64>| OrganizationUser {
        id: Some(7),
        tags: tags
            .into_iter()
            .map(|id| crate::api::models::Tag {
                id: Some(id),
                label: Some(format!("t{id}")),
                color: None,
            })
            .collect(),
        ..Default::default()
    };
    let mut a = OrgSnapshot::default();
    a.add_user(user(vec![3, 1, 2]), None).unwrap();
    let mut b = OrgSnapshot::default();
    b.add_user(user(vec![2, 3, 1]), None).unwrap();
    let ja: Vec<String> = a.rows().map(|r| r.value.canonical_json()).collect();
    let jb: Vec<String> = b.rows().map(|r| r.value.canonical_json()).collect();
    assert_eq!(ja, jb);
}

/// A role is named by its id once it has one, by its place in the list before.
#[test]
fn a_role_missing_a_key_names_the_role_and_the_field() {
    let role = |role_id: Option<i64>, permission_id: Option<i64>| {
        let permission = crate::api::models::Permission {
            permission_id,
            ..Default::default()
        };
        let role = Role {
            role_id,
            permissions: vec![permission],
            ..Default::default()
        };
        (role, None)
    };
    let ok = role(Some(3), Some(1));
    let without_id = role(None, Some(1));
    let err = OrgSnapshot::default()
        .add_roles(vec![ok.clone(), without_id])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad record role #2: field `role_id`: missing"
    );
    let err = OrgSnapshot::default()
        .add_roles(vec![ok, role(Some(7), None)])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad record role 7: field `permissions[].permission_id`: missing"
    );
}

#[test]
fn a_team_seen_twice_keeps_only_its_later_members() {
    let team = |members: &[i64]| Team {
        id: Some(5),
        users: members
            .iter()
            .map(|&u| crate::api::models::GroupUser {
                organization_user_id: Some(u),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut s = OrgSnapshot::default();
    s.add_team(team(&[1, 2]), None).unwrap();
    s.add_team(
        Team {
            id: Some(6),
            ..team(&[1])
        },
        None,
    )
    .unwrap();
    s.add_team(team(&[2, 3]), None).unwrap();
    let keys: Vec<(i64, i64)> = s.memberships.keys().copied().collect();
    assert_eq!(keys, vec![(5, 2), (5, 3), (6, 1)]);
    s.remove_group(5);
    assert_eq!(
        s.memberships.keys().copied().collect::<Vec<_>>(),
        vec![(6, 1)]
    );
}

#[test]
fn a_record_without_id_is_an_error() {
    let mut s = OrgSnapshot::default();
    let err = s.add_user(OrganizationUser::default(), None).unwrap_err();
    assert!(err.to_string().contains("`id`"), "{err}");
}

/// Quarantine never deletes: what the mirror holds of a user (its rate included) or of
/// a group (its memberships included) counts as seen, and copies the pull sends later
/// are not taken.
#[test]
fn a_quarantined_user_or_group_keeps_what_the_mirror_holds() {
    use crate::api::models::build::team;
    use crate::diff::{diff, state_of, Scope};
    let user = |id: i64, name: &str| crate::api::models::build::user(id, name, Some(10.0));
    let team = |members: &[i64]| team(100, "Ops", members);
    let mut held = OrgSnapshot::default();
    held.add_user(user(1, "Ann"), None).unwrap();
    held.add_user(user(2, "Bob"), None).unwrap();
    held.add_team(team(&[1, 2]), None).unwrap();
    let stored = Arc::new(state_of(&held));

    let mut s = OrgSnapshot::against(Arc::clone(&stored));
    s.quarantine(EntityKey::new(Entity::User, 1), "bad body".into());
    s.quarantine(EntityKey::new(Entity::Group, 100), "bad body".into());
    // Later copies (renamed, a member gone) are passed over, not taken as changes.
    s.add_user(user(1, "Renamed"), None).unwrap();
    s.add_team(team(&[2]), None).unwrap();
    s.add_user(user(2, "Bob"), None).unwrap();

    let quarantined: Vec<EntityKey> = s.quarantined().copied().collect();
    assert_eq!(
        quarantined,
        vec![
            EntityKey::new(Entity::Group, 100),
            EntityKey::new(Entity::User, 1)
        ]
    );
    assert!(s.is_quarantined(&EntityKey::new(Entity::User, 1)));
    assert!(!s.is_quarantined(&EntityKey::new(Entity::User, 2)));
    let d = diff(&stored, &s, &Scope::FULL);
    assert!(d.is_empty(), "{:?}", d.changes);
}

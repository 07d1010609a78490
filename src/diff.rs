//! Pure: (what the mirror holds, what a pull saw) -> the changes. No IO, no clock.
//!
//! The stored side is only a hash per entity (the canonical JSON's [`content_hash`](crate::model::content_hash)),
//! so a run never holds two full copies of the organization in memory; the pulled
//! side is the complete [`OrgSnapshot`]. A change points at the pulled record; its
//! canonical JSON (what the store writes as `after_json` and as the new history row)
//! is made again when it is written, so that a first sync does not hold a second copy
//! of the organization as text.

use std::collections::BTreeSet;

use crate::model::{hashes_of, Entity, EntityKey, RecordRef, StoredHashes, StoredState, Targets};
use crate::snapshot::OrgSnapshot;

/// What kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// Only unknown upstream fields changed: stored, but not an event (an API that
    /// adds a field has not changed the organization).
    UnknownOnly,
}

impl Op {
    /// `change_events.op`; `None` for a change that is not an event.
    pub fn event_name(self) -> Option<&'static str> {
        match self {
            Op::Insert => Some("insert"),
            Op::Update => Some("update"),
            Op::Delete => Some("delete"),
            Op::UnknownOnly => None,
        }
    }
}

/// One change to apply.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub key: EntityKey,
    pub op: Op,
    /// The pulled record (insert, update, unknown-only).
    pub after: Option<After<'a>>,
}

/// The pulled side of a change.
#[derive(Debug, Clone)]
pub struct After<'a> {
    pub record: RecordRef<'a>,
    pub unknown: Option<&'a str>,
}

impl After<'_> {
    /// The canonical JSON and the hashes the store keeps for it (made again at write
    /// time rather than held for every change of a large diff).
    pub fn json_and_hashes(&self) -> (String, StoredHashes) {
        let json = self.record.canonical_json();
        let hashes = hashes_of(&json, self.unknown);
        (json, hashes)
    }
}

/// Which stored entities a pull speaks for. A full pull speaks for all of them; a
/// targeted refresh only for the users and groups it fetched, so that what it did
/// not fetch is not taken for deleted. Rates and custom field values are left alone when
/// they were not pulled — but for the values of a user who is deleted: they go with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `None`: every user and group; `Some`: only these (and no roles, no custom fields).
    pub only: Option<Targets>,
    /// Whether the pull asked for rates (`include_rates`).
    pub rates: bool,
    /// Whether the pull read custom field values (`sync.custom_fields_workspace_id`).
    pub custom_fields: bool,
}

impl Scope {
    #[cfg(test)]
    /// A complete pull, rates and custom fields included.
    pub const FULL: Scope = Scope {
        only: None,
        rates: true,
        custom_fields: true,
    };

    /// Whether the pull is authoritative for `key`.
    pub fn covers(&self, key: &EntityKey) -> bool {
        if key.entity == Entity::UserRate && !self.rates {
            return false;
        }
        if key.entity == Entity::UserCustomField && !self.custom_fields {
            return false;
        }
        match &self.only {
            None => true,
            Some(t) => match key.entity {
                Entity::User | Entity::UserRate => t.users.contains(&key.id),
                Entity::Group | Entity::GroupMembership => t.groups.contains(&key.id),
                Entity::Role | Entity::UserCustomField => false,
            },
        }
    }
}

/// The result of a diff: the changes, in the order they are written (by entity kind,
/// then id; deletions after insertions and updates of the same kind).
#[derive(Debug, Clone, Default)]
pub struct Diff<'a> {
    pub changes: Vec<Change<'a>>,
}

impl Diff<'_> {
    #[cfg(test)]
    /// Whether nothing would be written.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Compares `pulled` with `stored`, for the entities `scope` covers.
pub fn diff<'a>(stored: &StoredState, pulled: &'a OrgSnapshot, scope: &Scope) -> Diff<'a> {
    // Every record the pull kept may be a change (a first sync: all of them), and a large
    // vector grown by doubling would hold up to twice that.
    let mut changes = Vec::with_capacity(pulled.records());
    let mut seen = 0usize;
    for row in pulled.rows() {
        if !scope.covers(&row.key) {
            continue;
        }
        let op = match stored.get(&row.key) {
            None => Op::Insert,
            Some(s) => {
                seen += 1;
                let hashes = hashes_of(&row.value.canonical_json(), row.unknown);
                if s.data != hashes.data {
                    Op::Update
                } else if s.unknown != hashes.unknown {
                    Op::UnknownOnly
                } else {
                    continue;
                }
            }
        };
        changes.push(Change {
            key: row.key,
            op,
            after: Some(After {
                record: row.value,
                unknown: row.unknown,
            }),
        });
    }
    // Entities the pull saw unchanged are stored ones, matched.
    seen += pulled.unchanged().filter(|k| scope.covers(k)).count();
    // Only look for deletions when some stored entity was not matched.
    let covered = stored.keys().filter(|k| scope.covers(k)).count();
    if covered > seen {
        let mut deletions: Vec<EntityKey> = stored
            .keys()
            .filter(|k| scope.covers(k) && !pulled.has(k))
            .copied()
            .collect();
        deletions.sort();
        changes.extend(deletions.into_iter().map(|key| Change {
            key,
            op: Op::Delete,
            after: None,
        }));
    }
    // A deleted user's custom field values go with them, pulled or not.
    let gone: BTreeSet<i64> = changes
        .iter()
        .filter(|c| c.key.entity == Entity::User && c.op == Op::Delete)
        .map(|c| c.key.id)
        .collect();
    if !gone.is_empty() {
        let orphans: Vec<EntityKey> = stored
            .keys()
            .filter(|k| {
                k.entity == Entity::UserCustomField && gone.contains(&k.id) && !scope.covers(k)
            })
            .copied()
            .collect();
        changes.extend(orphans.into_iter().map(|key| Change {
            key,
            op: Op::Delete,
            after: None,
        }));
    }
    changes.sort_by_key(|c| (c.key.entity, c.op == Op::Delete, c.key));
    Diff { changes }
}

/// Applies `diff` to `stored`: the state the store holds after committing it (what the
/// property tests hold the diff to).
#[cfg(test)]
pub fn apply(stored: &mut StoredState, diff: &Diff<'_>) {
    for c in &diff.changes {
        match (&c.op, &c.after) {
            (Op::Delete, _) => {
                stored.remove(&c.key);
            }
            (_, Some(after)) => {
                stored.insert(c.key, after.json_and_hashes().1);
            }
            (_, None) => {}
        }
    }
}

/// The top-level fields whose values differ between two JSON objects, in name order.
/// Anything that is not an object compares as a whole (`["*"]` when different).
pub fn changed_fields(before: &str, after: &str) -> Vec<String> {
    use serde_json::Value;
    let (Ok(Value::Object(b)), Ok(Value::Object(a))) = (
        serde_json::from_str::<Value>(before),
        serde_json::from_str::<Value>(after),
    ) else {
        return if before == after {
            Vec::new()
        } else {
            vec!["*".to_string()]
        };
    };
    let names: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    names
        .into_iter()
        .filter(|k| b.get(*k) != a.get(*k))
        .cloned()
        .collect()
}

/// Hashes of every entity of a snapshot: what the store holds after committing it whole.
#[cfg(test)]
pub fn state_of(snapshot: &OrgSnapshot) -> StoredState {
    snapshot
        .rows()
        .map(|row| {
            let json = row.value.canonical_json();
            (row.key, hashes_of(&json, row.unknown))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::models::build::{team, user};
    use proptest::prelude::*;

    /// A small org description: users (id, name, rate) and groups (id, name, members).
    #[derive(Debug, Clone)]
    struct Org {
        users: Vec<(i64, String, Option<f64>)>,
        groups: Vec<(i64, String, Vec<i64>)>,
    }

    fn snapshot(org: &Org) -> OrgSnapshot {
        let mut s = OrgSnapshot::default();
        for (id, name, rate) in &org.users {
            s.add_user(user(*id, name, *rate), None).unwrap();
        }
        for (id, name, members) in &org.groups {
            s.add_team(team(*id, name, members), None).unwrap();
        }
        s
    }

    fn org_strategy() -> impl Strategy<Value = Org> {
        let users = prop::collection::btree_map(
            1i64..20,
            (
                "[a-c]{1,2}",
                prop::option::of(prop::sample::select(vec![10.0, 20.0])),
            ),
            0..8,
        );
        let groups = prop::collection::btree_map(
            100i64..105,
            ("[x-z]", prop::collection::btree_set(1i64..20, 0..4)),
            0..4,
        );
        (users, groups).prop_map(|(u, g)| Org {
            users: u.into_iter().map(|(id, (n, r))| (id, n, r)).collect(),
            groups: g
                .into_iter()
                .map(|(id, (n, m))| (id, n, m.into_iter().collect()))
                .collect(),
        })
    }

    proptest! {
        /// Applying diff(a, b) to a gives b.
        #[test]
        fn applying_the_diff_gives_the_pulled_state(a in org_strategy(), b in org_strategy()) {
            let (sa, sb) = (snapshot(&a), snapshot(&b));
            let mut stored = state_of(&sa);
            let d = diff(&stored, &sb, &Scope::FULL);
            apply(&mut stored, &d);
            prop_assert_eq!(stored, state_of(&sb));
        }

        /// A snapshot built against the stored state (keeping only what differs) gives the
        /// same diff as one that keeps everything, also when rows shift between pages: the
        /// pull sees `first` (other copies of some rows) or `b` itself before `b`, and the
        /// later copy counts (a team seen again without a member takes that membership back).
        #[test]
        fn a_baseline_snapshot_gives_the_same_diff(
            a in org_strategy(),
            first in prop::option::of(org_strategy()),
            b in org_strategy(),
            twice in any::<bool>(),
        ) {
            let stored = state_of(&snapshot(&a));
            let mut full = OrgSnapshot::default();
            let mut lean = OrgSnapshot::against(std::sync::Arc::new(stored.clone()));
            let passes = first.iter().chain(twice.then_some(&b)).chain([&b]);
            for org in passes {
                for s in [&mut full, &mut lean] {
                    for (id, name, rate) in &org.users {
                        s.add_user(user(*id, name, *rate), None).unwrap();
                    }
                    for (id, name, members) in &org.groups {
                        s.add_team(team(*id, name, members), None).unwrap();
                    }
                }
            }
            let ops = |d: &Diff<'_>| d.changes.iter().map(|c| (c.key, c.op)).collect::<Vec<_>>();
            prop_assert_eq!(ops(&diff(&stored, &lean, &Scope::FULL)), ops(&diff(&stored, &full, &Scope::FULL)));
            for e in Entity::ALL {
                prop_assert_eq!(lean.count(e), full.count(e));
            }
        }

        /// A snapshot compared with itself has no changes.
        #[test]
        fn no_change_no_diff(a in org_strategy()) {
            let s = snapshot(&a);
            prop_assert!(diff(&state_of(&s), &s, &Scope::FULL).is_empty());
        }
    }

    #[test]
    fn each_kind_of_change_is_one_change() {
        let before = Org {
            users: vec![
                (1, "Ann".into(), Some(10.0)),
                (2, "Bob".into(), None),
                (3, "Cy".into(), Some(5.0)),
            ],
            groups: vec![(100, "Ops".into(), vec![1, 2])],
        };
        let after = Org {
            users: vec![
                (1, "Ann".into(), Some(12.0)),
                (2, "Bobby".into(), None),
                (4, "Di".into(), None),
            ],
            groups: vec![(100, "Ops".into(), vec![2, 4])],
        };
        let stored = state_of(&snapshot(&before));
        let pulled = snapshot(&after);
        let d = diff(&stored, &pulled, &Scope::FULL);
        let got: Vec<(Entity, String, Op)> = d
            .changes
            .iter()
            .map(|c| (c.key.entity, c.key.entity_id(), c.op))
            .collect();
        assert_eq!(
            got,
            vec![
                (Entity::User, "2".into(), Op::Update),
                (Entity::User, "4".into(), Op::Insert),
                (Entity::User, "3".into(), Op::Delete),
                (Entity::GroupMembership, "100:4".into(), Op::Insert),
                (Entity::GroupMembership, "100:1".into(), Op::Delete),
                (Entity::UserRate, "1".into(), Op::Update),
                (Entity::UserRate, "3".into(), Op::Delete),
            ]
        );
    }

    #[test]
    fn unknown_fields_alone_are_not_an_event() {
        let mut s = OrgSnapshot::default();
        s.add_user(user(1, "Ann", None), None).unwrap();
        let stored = state_of(&s);
        let mut t = OrgSnapshot::default();
        t.add_user(user(1, "Ann", None), Some("{\"new_field\":1}".into()))
            .unwrap();
        let d = diff(&stored, &t, &Scope::FULL);
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.changes[0].op, Op::UnknownOnly);
        assert_eq!(d.changes[0].op.event_name(), None);
    }

    #[test]
    fn a_targeted_scope_deletes_only_what_it_covers() {
        let before = Org {
            users: vec![(1, "Ann".into(), None), (2, "Bob".into(), None)],
            groups: vec![(100, "Ops".into(), vec![1]), (101, "Dev".into(), vec![2])],
        };
        let stored = state_of(&snapshot(&before));
        // A refresh of group 100 alone, which now has member 2 instead of 1.
        let pulled = snapshot(&Org {
            users: vec![],
            groups: vec![(100, "Ops".into(), vec![2])],
        });
        let scope = Scope {
            only: Some(Targets {
                groups: [100].into(),
                ..Targets::default()
            }),
            rates: true,
            custom_fields: false,
        };
        let d = diff(&stored, &pulled, &scope);
        let got: Vec<(String, Op)> = d
            .changes
            .iter()
            .map(|c| (c.key.entity_id(), c.op))
            .collect();
        assert_eq!(
            got,
            vec![("100:2".into(), Op::Insert), ("100:1".into(), Op::Delete)]
        );
    }

    /// A user's custom field values go with the user, in a pull that did not read them (a
    /// targeted refresh, or custom fields turned off) as in one that did.
    #[test]
    fn a_deleted_users_custom_field_values_go_with_them_whatever_the_scope() {
        use crate::api::models::{CustomFieldValue, MemberCustomFields};
        let mut held = snapshot(&Org {
            users: vec![(1, "Ann".into(), None), (2, "Bob".into(), None)],
            groups: vec![],
        });
        held.watch_custom_fields(9);
        for id in [1, 2] {
            let mut u = user(id, "x", None);
            u.workspaces = vec![crate::api::models::UserWorkspace {
                id: Some(9),
                ..Default::default()
            }];
            held.add_user(u, None).unwrap();
            let member = MemberCustomFields {
                id: Some(id),
                custom_field_values: Some(vec![CustomFieldValue {
                    custom_field_id: Some(7),
                    value: "Sales".into(),
                    ..Default::default()
                }]),
            };
            assert!(held.add_member_custom_fields(member).unwrap());
        }
        let stored = state_of(&held);
        assert_eq!(held.count(Entity::UserCustomField), 2);
        let pulled = snapshot(&Org {
            users: vec![(2, "Bob".into(), None)],
            groups: vec![],
        });
        let targeted = Scope {
            only: Some(Targets {
                users: [1, 2].into(),
                ..Targets::default()
            }),
            rates: true,
            custom_fields: false,
        };
        let without = Scope {
            custom_fields: false,
            ..Scope::FULL
        };
        for scope in [targeted, without] {
            let d = diff(&stored, &pulled, &scope);
            let deleted: Vec<String> = d
                .changes
                .iter()
                .filter(|c| c.op == Op::Delete)
                .map(|c| format!("{} {}", c.key.entity.as_str(), c.key.entity_id()))
                .collect();
            assert_eq!(deleted, ["user 1", "user_custom_field 1:7"], "{scope:?}");
        }
    }

    #[test]
    fn changed_fields_names_top_level_keys() {
        assert_eq!(
            changed_fields(
                r#"{"a":1,"b":[1,2],"c":"x"}"#,
                r#"{"a":1,"b":[2,1],"d":null}"#
            ),
            vec!["b", "c", "d"]
        );
        assert!(changed_fields(r#"{"a":1}"#, r#"{"a":1}"#).is_empty());
    }
}

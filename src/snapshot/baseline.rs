//! A snapshot's bookkeeping against what the mirror holds: which entities the pull saw
//! unchanged, and which could not be read. The records themselves stay in
//! [`OrgSnapshot`](super::OrgSnapshot); this is what it knows beside them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::model::{content_hash, Entity, EntityKey, RecordRef, StoredHashes, StoredState};

/// What a snapshot knows of the mirror's current versions. Without a stored state (a
/// snapshot built whole) nothing is known to be unchanged.
#[derive(Debug, Clone, Default)]
pub(super) struct Baseline {
    stored: Option<Arc<StoredState>>,
    /// Entities the pull saw unchanged (only with a stored state).
    unchanged: BTreeSet<EntityKey>,
    /// Users and groups whose record could not be read this run, with why: what the
    /// stored state holds of them counts as seen unchanged (see [`Baseline::quarantine`]).
    quarantined: BTreeMap<EntityKey, String>,
}

impl Baseline {
    /// Bookkeeping against `stored`.
    pub(super) fn new(stored: Arc<StoredState>) -> Baseline {
        Baseline {
            stored: Some(stored),
            ..Baseline::default()
        }
    }

    /// Whether the record is the stored version: if so it counts as seen unchanged, if not
    /// an earlier unchanged copy no longer does.
    #[inline]
    pub(super) fn matches(
        &mut self,
        key: EntityKey,
        record: RecordRef<'_>,
        unknown: Option<&str>,
    ) -> bool {
        let stored = self.stored.as_ref().and_then(|b| b.get(&key));
        let same = stored.is_some_and(|stored| {
            *stored
                == StoredHashes {
                    data: record.content_hash(),
                    unknown: unknown.map(content_hash),
                }
        });
        if same {
            self.unchanged.insert(key);
        } else {
            self.unchanged.remove(&key);
        }
        same
    }

    /// Entities seen unchanged, in key order.
    pub(super) fn unchanged(&self) -> impl Iterator<Item = &EntityKey> + '_ {
        self.unchanged.iter()
    }

    /// Whether `key` was seen unchanged.
    #[inline]
    pub(super) fn saw_unchanged(&self, key: &EntityKey) -> bool {
        self.unchanged.contains(key)
    }

    /// How many entities of `entity` were seen unchanged.
    pub(super) fn count(&self, entity: Entity) -> usize {
        self.unchanged.iter().filter(|k| k.entity == entity).count()
    }

    /// `key` is no longer seen (its record was taken back).
    #[inline]
    pub(super) fn forget(&mut self, key: &EntityKey) {
        self.unchanged.remove(key);
    }

    /// The memberships of `group_id` are no longer seen.
    pub(super) fn forget_memberships_of(&mut self, group_id: i64) {
        self.forget_between(
            EntityKey::membership(group_id, i64::MIN),
            EntityKey::membership(group_id, i64::MAX),
        );
    }

    /// No entity from `first` to `last` (both included) is seen any more.
    fn forget_between(&mut self, first: EntityKey, last: EntityKey) {
        let seen: Vec<EntityKey> = self.unchanged.range(first..=last).copied().collect();
        for k in seen {
            self.unchanged.remove(&k);
        }
    }

    /// No membership of these users is seen any more.
    pub(super) fn forget_memberships_of_users(&mut self, users: &BTreeSet<i64>) {
        self.unchanged
            .retain(|k| !(k.entity == Entity::GroupMembership && users.contains(&k.sub_id)));
    }

    /// No custom field value of this user is seen any more.
    pub(super) fn forget_custom_fields_of(&mut self, user: i64) {
        self.forget_between(
            EntityKey::custom_field(user, i64::MIN),
            EntityKey::custom_field(user, i64::MAX),
        );
    }

    /// Every custom field value the stored state holds of this user counts as seen unchanged.
    pub(super) fn keep_custom_fields_of(&mut self, user: i64) {
        if let Some(stored) = &self.stored {
            let held = stored.keys_between(
                &EntityKey::custom_field(user, i64::MIN),
                &EntityKey::custom_field(user, i64::MAX),
            );
            self.unchanged.extend(held.copied());
        }
    }

    /// The stored keys of one kind of entity (none without a stored state).
    pub(super) fn stored_keys(&self, entity: Entity) -> impl Iterator<Item = &EntityKey> + '_ {
        let bound = |id| EntityKey {
            entity,
            id,
            sub_id: id,
        };
        let (first, last) = (bound(i64::MIN), bound(i64::MAX));
        self.stored
            .iter()
            .flat_map(move |s| s.keys_between(&first, &last))
    }

    /// Quarantines a user or group (its records already taken back by the caller): what
    /// the stored state holds of it, a user's rate and a group's memberships included,
    /// counts as seen unchanged.
    pub(super) fn quarantine(&mut self, key: EntityKey, reason: String) {
        self.hold(&key);
        self.quarantined.insert(key, reason);
    }

    /// What the stored state holds of a user (its rate too) or a group (its memberships
    /// too) counts as seen unchanged.
    pub(super) fn hold(&mut self, key: &EntityKey) {
        if let Some(stored) = &self.stored {
            let held = stored.keys().filter(|k| match key.entity {
                Entity::User => {
                    k.id == key.id
                        && matches!(
                            k.entity,
                            Entity::User | Entity::UserRate | Entity::UserCustomField
                        )
                }
                _ => k.id == key.id && matches!(k.entity, Entity::Group | Entity::GroupMembership),
            });
            for k in held {
                self.unchanged.insert(*k);
            }
        }
    }

    /// Whether `key` was quarantined this run.
    #[inline]
    pub(super) fn is_quarantined(&self, key: &EntityKey) -> bool {
        self.quarantined.contains_key(key)
    }

    /// The users and groups quarantined this run, in key order.
    pub(super) fn quarantined(&self) -> impl Iterator<Item = &EntityKey> + '_ {
        self.quarantined.keys()
    }
}

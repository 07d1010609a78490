//! The mirror's vocabulary, shared by every layer: the kinds of entity and their keys
//! ([`Entity`], [`EntityKey`]), the normalised records, [`Timestamp`], the canonical JSON
//! and its [`content_hash`], what the mirror holds of each entity ([`StoredState`]), and a
//! record a run could not read ([`Quarantined`]).
//! Plain data and pure functions: no IO, nothing of the API's models, nothing of SQLite
//! (the store's `sql_types` says how these are written).

pub mod audit;
mod records;
mod stored;
mod timestamp;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use records::{
    CanonicalJson, GhostRecord, GroupRecord, GroupWorkspaceRecord, Kept, MembershipRecord,
    PermissionRecord, RateRecord, RecordRef, RoleRecord, SelectedOptionRecord, TagRecord,
    UserCustomFieldRecord, UserRecord, UserWorkspaceRecord,
};
pub use stored::{content_hash, hashes_of, StoredHashes, StoredState};
pub use timestamp::{is_soft_deleted, utc, Timestamp};

/// The kinds of entity the mirror tracks, named as `change_events.entity` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Role,
    Group,
    User,
    GroupMembership,
    UserRate,
    UserCustomField,
}

impl Entity {
    /// Every kind, in the order a run writes them.
    pub const ALL: [Entity; 6] = [
        Entity::Role,
        Entity::Group,
        Entity::User,
        Entity::GroupMembership,
        Entity::UserRate,
        Entity::UserCustomField,
    ];

    /// The name used in `change_events.entity` and the history table.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Role => "role",
            Entity::Group => "group",
            Entity::User => "user",
            Entity::GroupMembership => "group_membership",
            Entity::UserRate => "user_rate",
            Entity::UserCustomField => "user_custom_field",
        }
    }

    /// The inverse of [`Entity::as_str`].
    pub fn parse(s: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Identifies one entity: the upstream id, (group, user) for a membership, or (user, custom
/// field) for a custom field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey {
    pub entity: Entity,
    /// The upstream id; the group id for a membership; the user id for a rate or a custom
    /// field's value.
    pub id: i64,
    /// The organization user id of a membership; the custom field's id of a value; 0 otherwise.
    pub sub_id: i64,
}

impl EntityKey {
    pub fn new(entity: Entity, id: i64) -> EntityKey {
        EntityKey {
            entity,
            id,
            sub_id: 0,
        }
    }

    pub fn membership(group_id: i64, organization_user_id: i64) -> EntityKey {
        EntityKey {
            entity: Entity::GroupMembership,
            id: group_id,
            sub_id: organization_user_id,
        }
    }

    /// One member's value of one custom field.
    pub fn custom_field(organization_user_id: i64, custom_field_id: i64) -> EntityKey {
        EntityKey {
            entity: Entity::UserCustomField,
            id: organization_user_id,
            sub_id: custom_field_id,
        }
    }

    /// `change_events.entity_id`: the upstream id, `group_id:organization_user_id`, or
    /// `organization_user_id:custom_field_id`.
    pub fn entity_id(&self) -> String {
        match self.entity {
            Entity::GroupMembership | Entity::UserCustomField => {
                format!("{}:{}", self.id, self.sub_id)
            }
            _ => self.id.to_string(),
        }
    }

    #[cfg(test)]
    /// The inverse of [`EntityKey::entity_id`].
    pub fn parse(entity: Entity, entity_id: &str) -> Option<EntityKey> {
        match entity {
            Entity::GroupMembership => {
                let (g, u) = entity_id.split_once(':')?;
                Some(EntityKey::membership(g.parse().ok()?, u.parse().ok()?))
            }
            Entity::UserCustomField => {
                let (u, f) = entity_id.split_once(':')?;
                Some(EntityKey::custom_field(u.parse().ok()?, f.parse().ok()?))
            }
            _ => Some(EntityKey::new(entity, entity_id.parse().ok()?)),
        }
    }
}

/// The users and groups a targeted refresh fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub users: BTreeSet<i64>,
    pub groups: BTreeSet<i64>,
    /// Of `groups`, those the command deleted: missing from a complete pull, they are gone
    /// (any other missing group may have been skipped by the pull).
    pub deleted: BTreeSet<i64>,
}

/// A list item whose `id` could be read but whose body could not (a rate of `1e309`, a
/// `"NaN"` where a number belongs): the run keeps the record's last good version. The
/// client finds it, the store records it with the run (`sync_runs.quarantined_json`) and
/// `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quarantined {
    /// `users` or `teams`: the list it came in.
    pub list: String,
    pub id: i64,
    /// Why it could not be read (endpoint, page and item, and the decoder's words).
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_round_trip() {
        for key in [
            EntityKey::new(Entity::User, 42),
            EntityKey::membership(5, 9),
            EntityKey::custom_field(100_001, 31),
        ] {
            assert_eq!(EntityKey::parse(key.entity, &key.entity_id()), Some(key));
        }
    }
}

//! What a complete pull missed, settled before the diff: users and groups the mirror
//! holds that the pull did not list (skipped by rows shifting between pages, or gone) and
//! members a group lists whom the users pull did not, each asked for by id; then the
//! deletion guard.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};

use crate::api::{ByIds, Client};
use crate::config::Config;
use crate::model::{Entity, EntityKey, StoredState};
use crate::snapshot::OrgSnapshot;

use super::{apply_quarantine, SyncError};

/// Users and groups the mirror holds that the pull did not list may have been skipped
/// by rows shifting between pages. Ask for them by id; only those still missing are gone.
/// When the API honours no id filter, one is gone only if the previous complete pull missed
/// it too (`pending`, from the database); one missed for the first time is kept as stored.
/// Returns the absences that stay pending, for the run to record.
pub(super) async fn confirm_absences(
    client: &Client,
    config: &Config,
    stored: &StoredState,
    pending: &BTreeSet<EntityKey>,
    snapshot: &mut OrgSnapshot,
) -> Result<Vec<EntityKey>, SyncError> {
    let mut missing_users = BTreeSet::new();
    let mut missing_groups = BTreeSet::new();
    for key in stored.keys() {
        match key.entity {
            Entity::User if !snapshot.has(key) => {
                missing_users.insert(key.id);
            }
            Entity::Group if !snapshot.has(key) => {
                missing_groups.insert(key.id);
            }
            _ => {}
        }
    }
    let mut still_pending = Vec::new();
    if !missing_groups.is_empty() {
        let ids: Vec<i64> = missing_groups.into_iter().collect();
        match client.teams_by_ids(&ids).await? {
            ByIds::Found(found) => {
                apply_quarantine(client, snapshot);
                still_there(Entity::Group, ids.len(), found.len());
                for (team, unknown) in found {
                    if team.id.is_some_and(|id| ids.contains(&id)) {
                        snapshot.add_team(team, unknown)?;
                    }
                }
            }
            ByIds::Unfiltered => {
                let (_, kept) = settle_unconfirmed(Entity::Group, &ids, pending, snapshot);
                still_pending.extend(kept);
            }
        }
    }
    if !missing_users.is_empty() {
        let ids: Vec<i64> = missing_users.into_iter().collect();
        let (rates, hours) = (config.sync.include_rates, config.sync.include_working_hours);
        let gone = match client.users_by_ids(&ids, rates, hours).await? {
            ByIds::Found(found) => {
                apply_quarantine(client, snapshot);
                still_there(Entity::User, ids.len(), found.len());
                let mut gone: BTreeSet<i64> = ids.iter().copied().collect();
                for (user, unknown) in found {
                    if let Some(id) = user.id.filter(|id| ids.contains(id)) {
                        gone.remove(&id);
                        snapshot.add_user(user, unknown)?;
                    }
                }
                gone
            }
            ByIds::Unfiltered => {
                let (gone, kept) = settle_unconfirmed(Entity::User, &ids, pending, snapshot);
                still_pending.extend(kept);
                gone
            }
        };
        // The teams were read before the users: a member who left in between is still
        // listed there. Gone from the organization is gone from its groups, in this run.
        snapshot.remove_memberships_of_users(&gone);
    }
    Ok(still_pending)
}

/// Logs that `found` of the `asked` users or groups missing from the pull were still there
/// when asked for by id.
fn still_there(entity: Entity, asked: usize, found: usize) {
    if found > 0 {
        info!(
            entity = entity.as_str(),
            asked, found, "missing from the pull, and still there when asked for by id"
        );
    }
}

/// Without an id filter: of the `ids` a complete pull missed, those the previous complete
/// pull missed too are gone (left out of `snapshot`); the others are kept as stored and
/// stay pending. Returns (gone, pending).
fn settle_unconfirmed(
    entity: Entity,
    ids: &[i64],
    pending: &BTreeSet<EntityKey>,
    snapshot: &mut OrgSnapshot,
) -> (BTreeSet<i64>, Vec<EntityKey>) {
    let mut gone = BTreeSet::new();
    let mut kept = Vec::new();
    for &id in ids {
        let key = EntityKey::new(entity, id);
        if pending.contains(&key) {
            gone.insert(id);
        } else {
            snapshot.keep_stored(key);
            kept.push(key);
        }
    }
    info!(
        entity = entity.as_str(),
        gone = gone.len(),
        pending = kept.len(),
        "missing from the pull, and the API honours no id filter: gone if the previous complete pull missed them too, else confirmed by the next"
    );
    (gone, kept)
}

/// A member the pull listed in a team but not among the users (added upstream between the
/// two pulls, or a team that lists an id no user has) is asked for by id: a user who
/// exists is mirrored with the membership, and for one who does not the membership is
/// not mirrored (a member is a user: `group_members` declares the key). Returns the users
/// found, for a targeted refresh to take into its scope.
pub(super) async fn confirm_members(
    client: &Client,
    config: &Config,
    stored: &StoredState,
    snapshot: &mut OrgSnapshot,
    targeted: bool,
) -> Result<BTreeSet<i64>, SyncError> {
    // A full pull saw every user (the mirror's, confirmed by id); a targeted refresh only
    // those it read, and the mirror's others still are users.
    let is_user = |snapshot: &OrgSnapshot, id: i64| {
        let key = crate::model::EntityKey::new(Entity::User, id);
        snapshot.has(&key) || (targeted && stored.get(&key).is_some())
    };
    let members = snapshot.memberships.keys().copied().chain(
        snapshot
            .unchanged()
            .filter(|k| k.entity == Entity::GroupMembership)
            .map(|k| (k.id, k.sub_id)),
    );
    let mut orphans: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for (group, user) in members {
        if !is_user(snapshot, user) {
            orphans.entry(user).or_default().insert(group);
        }
    }
    if orphans.is_empty() {
        return Ok(BTreeSet::new());
    }
    let ids: Vec<i64> = orphans.keys().copied().collect();
    let (rates, hours) = (config.sync.include_rates, config.sync.include_working_hours);
    let mut found = BTreeSet::new();
    let asked = match client.users_by_ids(&ids, rates, hours).await? {
        ByIds::Found(asked) => asked,
        ByIds::Unfiltered => {
            // Not to be read by id: the memberships wait for a pull that lists the users.
            warn!(
                users = ?ids,
                "a group lists members who are not users of the mirror, and the API honours no id filter to ask for them; the memberships are mirrored once a complete pull lists them"
            );
            snapshot.remove_memberships_of_users(&orphans.keys().copied().collect());
            return Ok(BTreeSet::new());
        }
    };
    apply_quarantine(client, snapshot);
    for (user, unknown) in asked {
        if let Some(id) = user.id.filter(|id| orphans.contains_key(id)) {
            snapshot.add_user(user, unknown)?;
            if is_user(snapshot, id) {
                found.insert(id);
            }
        }
    }
    if !found.is_empty() {
        info!(
            users = ?found,
            "members missing from the users pull were asked for by id and are mirrored"
        );
    }
    let gone: BTreeSet<i64> = ids.into_iter().filter(|id| !found.contains(id)).collect();
    for id in &gone {
        warn!(
            organization_user_id = id,
            groups = ?orphans[id],
            "a group lists a member who is not a user of the organization (asked for by id: not found); the membership is not mirrored"
        );
    }
    snapshot.remove_memberships_of_users(&gone);
    Ok(found)
}

/// Refuses a run that would remove more than `max_fraction` of the users or of the
/// groups, or every one of them.
pub(super) fn guard_deletions(
    stored: &StoredState,
    pulled: &OrgSnapshot,
    max_fraction: f64,
) -> Result<(), SyncError> {
    for (entity, plural) in [(Entity::User, "users"), (Entity::Group, "groups")] {
        let held = stored.keys().filter(|k| k.entity == entity).count();
        if held == 0 {
            continue;
        }
        let kept = stored
            .keys()
            .filter(|k| k.entity == entity)
            .filter(|k| pulled.has(k))
            .count();
        let removed = held - kept;
        let fraction = removed as f64 / held as f64;
        if removed > 0 && (fraction > max_fraction || removed == held) {
            return Err(SyncError::Refused(format!(
                "this run would delete {removed} of {held} {plural} ({:.0}%), more than sync.max_delete_fraction = {max_fraction} allows{}; \
                 nothing was changed. If the organization really lost them, run `orgmirror sync --allow-mass-delete`",
                fraction * 100.0,
                if removed == held { " (all of them)" } else { "" }
            )));
        }
    }
    Ok(())
}

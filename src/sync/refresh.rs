//! A targeted run after a group write: only the groups and users it touched, read by id,
//! diffed within that scope and committed as a run of kind `targeted`.

use std::collections::BTreeSet;
use std::time::Instant;

use tracing::info;

use crate::api::{ByIds, Client};
use crate::config::Config;
use crate::diff::{self, Scope};
use crate::model::{Entity, Targets};
use crate::snapshot::OrgSnapshot;
use crate::store::{RunTotals, Store, StoreError};

use super::confirm::confirm_members;
use super::end::{record_end, Ending};
use super::{apply_quarantine, begin_run, prime_client, quarantined_json, totals_of, RunReport};

/// Refreshes only the given groups and users (after a group write): a targeted run with
/// its own `sync_runs` row and events. Ids that no longer exist upstream are recorded as deleted.
pub async fn refresh(
    client: &Client,
    store: &mut Store,
    config: &Config,
    mut targets: Targets,
) -> Result<RunReport, StoreError> {
    let started = Instant::now();
    let (run_id, observed_at) = begin_run(store, "targeted", config).await?;
    client.start_run();
    let result = async {
        prime_client(client, store)?;
        let mut snapshot = OrgSnapshot::default();
        let groups: Vec<i64> = targets.groups.iter().copied().collect();
        let users: Vec<i64> = targets.users.iter().copied().collect();
        if !groups.is_empty() {
            let found = match client.teams_by_ids(&groups).await? {
                ByIds::Found(found) => found,
                ByIds::Unfiltered => {
                    // No id filter: the groups come from a complete pull of the teams, where
                    // a missing one may have been skipped, so only a group the command
                    // deleted is judged gone; the others are the next syncs' to confirm.
                    let all = client.pull_teams(&mut |_| {}).await?;
                    let listed: BTreeSet<i64> = all.iter().filter_map(|(t, _)| t.id).collect();
                    targets
                        .groups
                        .retain(|g| listed.contains(g) || targets.deleted.contains(g));
                    all
                }
            };
            apply_quarantine(client, &mut snapshot);
            for (team, unknown) in found {
                snapshot.add_team(team, unknown)?;
            }
        }
        if !users.is_empty() {
            let (rates, hours) = (config.sync.include_rates, config.sync.include_working_hours);
            match client.users_by_ids(&users, rates, hours).await? {
                ByIds::Found(found) => {
                    apply_quarantine(client, &mut snapshot);
                    for (user, unknown) in found {
                        snapshot.add_user(user, unknown)?;
                    }
                }
                ByIds::Unfiltered => {
                    // Reading them would take a complete pull of the users: the next sync
                    // records what changed of them (their memberships are the groups').
                    info!(
                        users = users.len(),
                        "the API honours no id filter: the users are refreshed by the next sync"
                    );
                    targets.users.clear();
                }
            }
        }
        // Rows the filters returned beyond what was asked are not this refresh's to judge.
        snapshot.users.retain(|id, _| targets.users.contains(id));
        snapshot.rates.retain(|id, _| targets.users.contains(id));
        snapshot.groups.retain(|id, _| targets.groups.contains(id));
        snapshot
            .memberships
            .retain(|(g, _), _| targets.groups.contains(g));
        let stored = store.stored_state()?;
        let found = confirm_members(client, config, &stored, &mut snapshot, true).await?;
        targets.users.extend(found);
        // A record that could not be read is not this refresh's to judge.
        for key in snapshot.quarantined() {
            match key.entity {
                Entity::User => targets.users.remove(&key.id),
                _ => targets.groups.remove(&key.id),
            };
        }
        let scope = Scope {
            only: Some(targets),
            rates: config.sync.include_rates,
            custom_fields: false,
        };
        let d = diff::diff(&stored, &snapshot, &scope);
        let totals = RunTotals {
            quarantined: quarantined_json(client),
            ..totals_of(&client.stats())
        };
        let counts =
            store.commit_run(run_id, &d, &snapshot.workspace_names, &observed_at, &totals)?;
        Ok(counts)
    }
    .await;
    // The group commands print the report.
    let ending = Ending {
        printed: true,
        exit_status: None,
        full: false,
    };
    let report = record_end(client, store, run_id, started, result, ending)?;
    crate::replica::after_run(config, report.run_id, report.committed).await;
    Ok(report)
}

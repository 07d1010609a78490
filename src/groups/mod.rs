//! Managing groups from the mirror: `group create/update/delete/mine` and groups as code
//! (`groups plan/apply/export`, in [`file`]).
//!
//! Every write goes through the one [`Client`] (retries, quota) and is followed by a
//! targeted [`sync::refresh`] of what it touched, recorded as its own `sync_runs` row.
//! **An update never drops data it was not asked to change**: the PUT body is built
//! from a fresh read of the group right before it is sent.
//! **`--dry-run` reads but never writes**: it may GET the group to print the exact body.

mod error;
pub mod file;
mod names;
#[cfg(test)]
mod tests;

pub use error::GroupError;
pub use names::MirrorNames;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::{Args, Subcommand};

use crate::api::models::{GroupWrite, Team};
use crate::api::{ApiError, ByIds, Client};
use crate::commands::{self, Exit};
use crate::config::Config;
use crate::model::{is_soft_deleted, Targets};
use crate::store::Store;
use crate::sync;

/// `orgmirror group …`: one write (or read) of the organization's groups.
#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Create a group (POST), then refresh the mirror.
    Create {
        /// The new group's name.
        #[arg(long)]
        name: String,
        #[arg(long)]
        emoji: Option<String>,
        /// A member: organization user id or e-mail (repeatable).
        #[arg(long = "member", value_name = "ORG_USER_ID_OR_EMAIL")]
        members: Vec<String>,
        /// A workspace: id or name (repeatable; default: the configured api.workspace_id).
        #[arg(long = "workspace", value_name = "ID_OR_NAME")]
        workspaces: Vec<String>,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Update a group (PUT); what is not asked to change is sent back as it is now.
    Update {
        /// The group: id, or its exact name when unambiguous.
        group: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        emoji: Option<String>,
        /// Add a member: id or e-mail (repeatable).
        #[arg(long = "add-member", value_name = "X", conflicts_with = "members")]
        add_members: Vec<String>,
        /// Remove a member: id or e-mail (repeatable).
        #[arg(long = "remove-member", value_name = "X", conflicts_with = "members")]
        remove_members: Vec<String>,
        /// Replace the members with exactly these (comma-separated; "" for none).
        #[arg(long, value_name = "X,...", value_delimiter = ',')]
        members: Option<Vec<String>>,
        /// Replace the workspaces with exactly these ids or names (comma-separated).
        #[arg(long, value_name = "X,...", value_delimiter = ',')]
        workspaces: Option<Vec<String>>,
        #[command(flatten)]
        dry: DryRun,
    },
    /// Delete a group (DELETE, with the configured api.workspace_id).
    Delete {
        /// The group: id, or its exact name when unambiguous.
        group: String,
        #[command(flatten)]
        dry: DryRun,
    },
    /// List the groups the credentials' user belongs to (GET groups/me).
    Mine,
}

impl GroupCmd {
    /// Whether the command changes the organization (and so commits a refresh, whose
    /// alerts it delivers).
    fn writes(&self) -> bool {
        match self {
            GroupCmd::Create { dry, .. }
            | GroupCmd::Update { dry, .. }
            | GroupCmd::Delete { dry, .. } => !dry.dry_run,
            GroupCmd::Mine => false,
        }
    }
}

/// `--dry-run`: print the request that would be sent, send no write.
#[derive(Debug, Clone, Copy, Args)]
pub struct DryRun {
    /// Print the request (method, path, JSON body) instead of sending it. Reads may still happen.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs one `group` subcommand.
pub async fn run(config_path: Option<&Path>, cmd: GroupCmd) -> Result<Exit, GroupError> {
    let (_, config) = commands::load_config(config_path)?;
    let client = commands::client_for(&config)?;
    // What the API taught the mirror (page sizes, the id filter form) is not asked again.
    if let Ok(store) = Store::open_read_only(&config.database.path) {
        if let Err(e) = sync::prime_client(&client, &store) {
            tracing::debug!(error = %e, "the mirror's page sizes and id filter forms are not known");
        }
    }
    if cmd.writes() {
        // Before the write: a missing alert secret is a config error, not a lost alert.
        crate::alerts::deliver::find_secrets(&config)?;
    }
    client.start_run();
    match cmd {
        GroupCmd::Create {
            name,
            emoji,
            members,
            workspaces,
            dry,
        } => {
            create(
                &client,
                &config,
                name,
                emoji,
                &members,
                &workspaces,
                dry.dry_run,
            )
            .await
        }
        GroupCmd::Update {
            group,
            name,
            emoji,
            add_members,
            remove_members,
            members,
            workspaces,
            dry,
        } => {
            let change = UpdateRequest {
                name,
                emoji,
                add_members,
                remove_members,
                members,
                workspaces,
            };
            update(&client, &config, &group, change, dry.dry_run).await
        }
        GroupCmd::Delete { group, dry } => delete(&client, &config, &group, dry.dry_run).await,
        GroupCmd::Mine => {
            let groups = client.my_groups().await?;
            if groups.is_empty() {
                crate::outln!("you belong to no group");
            }
            for g in groups {
                let id = g.id.map(|i| i.to_string()).unwrap_or_else(|| "?".into());
                let emoji = g
                    .emoji
                    .filter(|e| !e.is_empty())
                    .map(|e| format!("{e} "))
                    .unwrap_or_default();
                crate::outln!("{id}\t{emoji}{}", g.name.unwrap_or_default());
            }
            Ok(Exit::Ok)
        }
    }
}

pub(crate) fn join_ids(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The request a write would send, for `--dry-run` and messages.
pub(crate) fn request_line(method: &str, path: &str, body: Option<&GroupWrite>) -> String {
    let mut out = format!("{method} {path}");
    if let Some(body) = body {
        let json = serde_json::to_string_pretty(body)
            .unwrap_or_else(|e| format!("<unprintable body: {e}>"));
        out.push('\n');
        out.push_str(&json);
    }
    out
}

pub(crate) fn groups_path(config: &Config) -> String {
    format!("/organizations/{}/groups", config.api.organization_id)
}

fn print_dry_run(method: &str, path: &str, body: Option<&GroupWrite>) -> Result<Exit, GroupError> {
    crate::outln!("dry run: would send\n{}", request_line(method, path, body));
    crate::outln!("dry run: nothing was written (a dry run may read, never writes)");
    Ok(Exit::Ok)
}

/// The group as the API has it now (members and workspaces as sorted ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGroup {
    pub id: i64,
    pub name: String,
    pub emoji: Option<String>,
    pub members: BTreeSet<i64>,
    pub workspaces: BTreeSet<i64>,
}

impl LiveGroup {
    /// From a teams row; `None` when it has no id.
    pub fn from_team(team: &Team) -> Option<LiveGroup> {
        Some(LiveGroup {
            id: team.id?,
            name: team.name.clone().unwrap_or_default(),
            emoji: team.emoji.clone(),
            // Rows listed as deleted are not sent back: a PUT would restore them.
            members: team
                .users
                .iter()
                .filter(|u| !is_soft_deleted(u.deleted_at.as_deref()))
                .filter_map(|u| u.organization_user_id)
                .collect(),
            workspaces: team
                .workspaces
                .iter()
                .filter(|w| !is_soft_deleted(w.deleted_at.as_deref()))
                .filter_map(|w| w.workspace_id)
                .collect(),
        })
    }

    /// The PUT body that leaves this group exactly as it is.
    pub fn as_write(&self) -> GroupWrite {
        GroupWrite {
            emoji: self.emoji.clone(),
            name: Some(self.name.clone()),
            organization_users: Some(self.members.iter().copied().collect()),
            workspaces: Some(self.workspaces.iter().copied().collect()),
        }
    }
}

/// Reads one group fresh from the API (by id, or in a pull of every team when the API
/// honours no id filter); `Ok(None)` when it does not exist.
pub async fn fetch_group(client: &Client, id: i64) -> Result<Option<LiveGroup>, ApiError> {
    let teams = match client.teams_by_ids(&[id]).await? {
        ByIds::Found(teams) => teams,
        // No id filter: the group is found in a pull of every team.
        ByIds::Unfiltered => client.pull_teams(&mut |_| {}).await?,
    };
    Ok(teams
        .iter()
        .filter_map(|(t, _)| LiveGroup::from_team(t))
        .find(|g| g.id == id))
}

fn is_not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::Status { status: 404, .. })
}

fn not_found(id: i64) -> GroupError {
    GroupError::NoSuchGroup(id)
}

/// Refreshes the mirror for `targets` after a write, prints the run and delivers its
/// alerts as `sync` does; a failed refresh is an error that says the write itself went
/// through.
pub(crate) async fn refresh_after(
    client: &Client,
    config: &Config,
    targets: Targets,
    done: &str,
) -> Result<Exit, GroupError> {
    let failed = |cause: Box<dyn std::error::Error + Send + Sync>| GroupError::NotRefreshed {
        done: done.to_string(),
        cause,
    };
    let mut store = commands::open_store(config).map_err(|e| failed(e.into()))?;
    let report = sync::refresh(client, &mut store, config, targets)
        .await
        .map_err(|e| failed(e.into()))?;
    drop(store);
    let report = report
        .into_result()
        .map_err(|run| failed(run.error.into()))?;
    commands::print_report(&report);
    // The secrets were found before the write; the alerts are queued whatever happens here.
    match crate::alerts::deliver::Deliverer::new(config) {
        Ok(alerts) => crate::alerts::deliver::after_commit(alerts).await,
        Err(e) => crate::errln!("alerts: not delivered now, they stay queued: {e}"),
    }
    Ok(Exit::Ok)
}

async fn create(
    client: &Client,
    config: &Config,
    name: String,
    emoji: Option<String>,
    members: &[String],
    workspaces: &[String],
    dry_run: bool,
) -> Result<Exit, GroupError> {
    if name.trim().is_empty() {
        return Err(GroupError::EmptyName);
    }
    let names = MirrorNames::open(config);
    let members = names.members(members)?;
    let mut workspaces = names.workspaces(workspaces)?;
    if workspaces.is_empty() {
        workspaces.push(config.api.workspace_id);
    }
    let body = GroupWrite {
        emoji,
        name: Some(name.clone()),
        organization_users: Some(members.clone()),
        workspaces: Some(workspaces),
    };
    let path = groups_path(config);
    if dry_run {
        return print_dry_run("POST", &path, Some(&body));
    }
    // Groups of the same name that exist already, should the 201 carry no body.
    let known = names.groups_named(&name)?;
    let created = client.create_group(&body).await?;
    let id = match created.and_then(|g| g.id) {
        Some(id) => id,
        None => find_created(client, &name, &known).await?,
    };
    crate::outln!("created group {id} {name:?} with {} members", members.len());
    let targets = Targets {
        groups: [id].into(),
        users: members.into_iter().collect(),
        ..Targets::default()
    };
    refresh_after(client, config, targets, &format!("group {id} was created")).await
}

/// The id of a group just created whose 201 body carried none: a fresh pull of the
/// teams, the one with this exact name that is not in `known` (ids that existed before).
pub(crate) async fn find_created(
    client: &Client,
    name: &str,
    known: &[i64],
) -> Result<i64, GroupError> {
    let teams =
        client
            .pull_teams(&mut |_| {})
            .await
            .map_err(|source| GroupError::CreatedIdLost {
                name: name.to_string(),
                source: Box::new(source),
            })?;
    let ids: Vec<i64> = teams
        .iter()
        .filter(|(t, _)| t.name.as_deref() == Some(name))
        .filter_map(|(t, _)| t.id)
        .filter(|id| !known.contains(id))
        .collect();
    match ids.as_slice() {
        [id] => Ok(*id),
        [] => Err(GroupError::CreatedNotListed(name.to_string())),
        _ => Err(GroupError::CreatedAmbiguous {
            name: name.to_string(),
            ids,
        }),
    }
}

/// What `group update` was asked to change.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub name: Option<String>,
    pub emoji: Option<String>,
    pub add_members: Vec<String>,
    pub remove_members: Vec<String>,
    pub members: Option<Vec<String>>,
    pub workspaces: Option<Vec<String>>,
}

impl UpdateRequest {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.emoji.is_none()
            && self.add_members.is_empty()
            && self.remove_members.is_empty()
            && self.members.is_none()
            && self.workspaces.is_none()
    }
}

/// The desired state of a group, given its current state and the ids asked for.
pub fn apply_change(
    current: &LiveGroup,
    name: Option<&str>,
    emoji: Option<&str>,
    add: &[i64],
    remove: &[i64],
    members: Option<&[i64]>,
    workspaces: Option<&[i64]>,
) -> LiveGroup {
    let mut next = current.clone();
    if let Some(n) = name {
        next.name = n.to_string();
    }
    if let Some(e) = emoji {
        next.emoji = Some(e.to_string());
    }
    if let Some(m) = members {
        next.members = m.iter().copied().collect();
    }
    next.members.extend(add.iter().copied());
    for r in remove {
        next.members.remove(r);
    }
    if let Some(w) = workspaces {
        next.workspaces = w.iter().copied().collect();
    }
    next
}

/// A one-line description of what changes from `a` to `b`, with labels for ids.
pub fn describe_change(
    a: &LiveGroup,
    b: &LiveGroup,
    user: &dyn Fn(i64) -> String,
    ws: &dyn Fn(i64) -> String,
) -> Vec<String> {
    let mut out = Vec::new();
    if a.name != b.name {
        out.push(format!("name {:?} -> {:?}", a.name, b.name));
    }
    if a.emoji != b.emoji {
        out.push(format!(
            "emoji {} -> {}",
            a.emoji.as_deref().unwrap_or("(none)"),
            b.emoji.as_deref().unwrap_or("(none)")
        ));
    }
    out.extend(
        b.members
            .difference(&a.members)
            .map(|u| format!("+member {}", user(*u))),
    );
    out.extend(
        a.members
            .difference(&b.members)
            .map(|u| format!("-member {}", user(*u))),
    );
    out.extend(
        b.workspaces
            .difference(&a.workspaces)
            .map(|w| format!("+workspace {}", ws(*w))),
    );
    out.extend(
        a.workspaces
            .difference(&b.workspaces)
            .map(|w| format!("-workspace {}", ws(*w))),
    );
    out
}

async fn update(
    client: &Client,
    config: &Config,
    group: &str,
    change: UpdateRequest,
    dry_run: bool,
) -> Result<Exit, GroupError> {
    if change.is_empty() {
        return Err(GroupError::NothingToUpdate);
    }
    if change.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(GroupError::EmptyName);
    }
    let names = MirrorNames::open(config);
    let id = names.group(group)?;
    let add = names.members_as_given(&change.add_members)?;
    let remove = names.members_as_given(&change.remove_members)?;
    // Removal would win silently (see `apply_change`); the command line contradicts itself.
    for (added, user) in &add {
        if let Some((removed, _)) = remove.iter().find(|(_, r)| r == user) {
            return Err(GroupError::AddedAndRemoved {
                user: *user,
                added: added.to_string(),
                removed: removed.to_string(),
            });
        }
    }
    let add: Vec<i64> = add.into_iter().map(|(_, u)| u).collect();
    let remove: Vec<i64> = remove.into_iter().map(|(_, u)| u).collect();
    let members = change
        .members
        .as_deref()
        .map(|m| names.members(m))
        .transpose()?;
    let workspaces = change
        .workspaces
        .as_deref()
        .map(|w| names.workspaces(w))
        .transpose()?;

    // The fresh read: the body sends back what is not asked to change, as it is now upstream.
    let current = fetch_group(client, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let next = apply_change(
        &current,
        change.name.as_deref(),
        change.emoji.as_deref(),
        &add,
        &remove,
        members.as_deref(),
        workspaces.as_deref(),
    );
    for r in &remove {
        if !current.members.contains(r) {
            crate::errln!("note: user {r} is not a member of group {id}; nothing to remove");
        }
    }
    let changes = describe_change(&current, &next, &|u| u.to_string(), &|w| w.to_string());
    let body = next.as_write();
    let path = format!("{}/{id}", groups_path(config));
    if dry_run {
        if changes.is_empty() {
            crate::outln!(
                "dry run: group {id} {:?} is already as asked; nothing would be sent",
                current.name
            );
            return Ok(Exit::Ok);
        }
        return print_dry_run("PUT", &path, Some(&body));
    }
    if changes.is_empty() {
        crate::outln!(
            "group {id} {:?} is already as asked; nothing was sent",
            current.name
        );
        return Ok(Exit::Ok);
    }
    client.update_group(id, &body).await.map_err(|e| {
        if is_not_found(&e) {
            not_found(id)
        } else {
            e.into()
        }
    })?;
    crate::outln!("updated group {id} {:?}: {}", next.name, changes.join(", "));
    let users = current
        .members
        .symmetric_difference(&next.members)
        .copied()
        .collect();
    let targets = Targets {
        groups: [id].into(),
        users,
        ..Targets::default()
    };
    refresh_after(client, config, targets, &format!("group {id} was updated")).await
}

async fn delete(
    client: &Client,
    config: &Config,
    group: &str,
    dry_run: bool,
) -> Result<Exit, GroupError> {
    let names = MirrorNames::open(config);
    let id = names.group(group)?;
    let path = format!(
        "{}/{id}?workspace_id={}",
        groups_path(config),
        config.api.workspace_id
    );
    // Read it first: to say what goes (a dry run too, and a group already gone is an
    // error either way), and to refresh its former members afterwards.
    let current = fetch_group(client, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if dry_run {
        crate::outln!(
            "dry run: group {id} {:?} has {} members and {} workspaces",
            current.name,
            current.members.len(),
            current.workspaces.len()
        );
        return print_dry_run("DELETE", &path, None);
    }
    client.delete_group(id).await.map_err(|e| {
        if is_not_found(&e) {
            not_found(id)
        } else {
            e.into()
        }
    })?;
    crate::outln!(
        "deleted group {id} {:?} ({} members, {} workspaces)",
        current.name,
        current.members.len(),
        current.workspaces.len()
    );
    let targets = Targets {
        groups: [id].into(),
        users: current.members.iter().copied().collect(),
        deleted: [id].into(),
    };
    refresh_after(client, config, targets, &format!("group {id} was deleted")).await
}

/// Labels for ids in messages: e-mail (or name) for users, name for workspaces.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    pub users: BTreeMap<i64, String>,
    pub workspaces: BTreeMap<i64, String>,
}

impl Labels {
    /// `ann@example.com`, or the id when unknown.
    pub fn user(&self, id: i64) -> String {
        self.users
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// `Main workspace`, or the id when unknown.
    pub fn workspace(&self, id: i64) -> String {
        self.workspaces
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }
}

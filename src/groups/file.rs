//! Groups as code: a TOML file of desired groups, planned and applied against the live
//! organization.
//!
//! **The live organization is the truth**: `plan` and `apply` pull every team and every
//! user fresh (e-mails are mapped to ids with that pull, not with the mirror). A `[[group]]`
//! is matched by its `id` when it has one (its `name` is then the desired name), otherwise by
//! exact name. A group the file does not describe is left alone unless `prune = true`.
//! Within a group, a key left out (`emoji`, `members`, `workspaces`) is left as it is.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::Deserialize;

use super::{find_created, join_ids, refresh_after, GroupError, Labels, LiveGroup};
use crate::api::models::{OrganizationUser, Team};
use crate::api::Client;
use crate::commands::{self, CommandError, Exit};
use crate::config::Config;
use crate::model::Targets;

mod plan;
#[cfg(test)]
mod tests;

pub use plan::{plan, Action, LiveOrg};

/// Why `groups plan/apply/export` could not do what the file asks.
#[derive(Debug, thiserror::Error)]
pub enum GroupsFileError {
    /// The config, the API, the alert rules.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A group's write, or the refresh after the writes.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// `groups export` over a file, without `--force`.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", .path.display())]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{}: a [[group]] has an empty name", .path.display())]
    EmptyName { path: PathBuf },
    #[error("{}: group id {id} is given twice", .path.display())]
    IdTwice { path: PathBuf, id: i64 },
    #[error("{}: group {name:?} is named twice; groups are matched by name, so give each of them its `id`", .path.display())]
    NameTwice { path: PathBuf, name: String },
    #[error("group {group:?}: member {id} is not a user of the organization")]
    NotAUser { group: String, id: i64 },
    #[error(
        "group {group:?}: unknown member e-mail {email:?}: no user of the organization has it"
    )]
    UnknownEmail { group: String, email: String },
    #[error("group {group:?}: ambiguous member e-mail {email:?}: users {} have it; give the id instead", join_ids(.ids))]
    AmbiguousEmail {
        group: String,
        email: String,
        ids: Vec<i64>,
    },
    #[error("group {group:?}: unknown workspace {name:?}")]
    UnknownWorkspace { group: String, name: String },
    #[error("group {group:?}: ambiguous workspace {name:?}: workspaces {} have that name; give the id", join_ids(.ids))]
    AmbiguousWorkspace {
        group: String,
        name: String,
        ids: Vec<i64>,
    },
    #[error("group {name:?}: id {id} is not a group of the organization")]
    UnknownId { name: String, id: i64 },
    #[error("groups {first:?} and {second:?} of the file both describe group {id} {current:?}; give its `id` to one of them only")]
    DescribedTwice {
        first: String,
        second: String,
        id: i64,
        current: String,
    },
    /// The organization, not the file, has the name twice: one of them must change first.
    #[error("the organization has {} groups named {name:?} (ids {}); give the group's `id` in the file, or rename all but one first", .ids.len(), join_ids(.ids))]
    NamedTwiceUpstream { name: String, ids: Vec<i64> },
    #[error(
        "not applying: stdin is not a terminal to confirm on; pass --yes to apply without asking"
    )]
    NoTerminal,
    #[error("declined; nothing was changed")]
    Declined,
    /// A step of the plan failed: what was applied before it stays.
    #[error("{}", stopped_text(.failed, .applied, .not_applied))]
    Stopped {
        /// The step and its error.
        failed: String,
        applied: Vec<String>,
        not_applied: Vec<String>,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

crate::commands::from_layers!(GroupsFileError);

/// What an apply that stopped did and did not do.
fn stopped_text(failed: &str, applied: &[String], not_applied: &[String]) -> String {
    let mut text = format!("failed: {failed}\n");
    text.push_str(&format!("already applied ({}):\n", applied.len()));
    for a in applied {
        text.push_str(&format!("  {a}\n"));
    }
    text.push_str(&format!("not applied ({}):\n", not_applied.len()));
    for a in not_applied {
        text.push_str(&format!("  {a}\n"));
    }
    text.trim_end().to_string()
}

/// `orgmirror groups …`.
#[derive(Debug, Subcommand)]
pub enum GroupsCmd {
    /// Show what `apply` would change to make the organization match FILE.
    Plan { file: PathBuf },
    /// Apply FILE: creates, then updates, then deletes; asks first unless --yes.
    Apply {
        file: PathBuf,
        /// Apply without asking (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Write the organization's current groups to FILE in the same format.
    Export {
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// The file: `prune` and the `[[group]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsFile {
    /// Delete groups of the organization not named in the file.
    #[serde(default)]
    pub prune: bool,
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupSpec>,
}

/// One desired group.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The group of this id (then `name` is its desired name); without it, the group of this name.
    pub id: Option<i64>,
    pub name: String,
    pub emoji: Option<String>,
    /// E-mails (strings) or organization user ids (integers).
    pub members: Option<Vec<Ref>>,
    /// Workspace names (strings) or ids (integers).
    pub workspaces: Option<Vec<Ref>>,
}

/// An id or a name in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Ref {
    Id(i64),
    Name(String),
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Id(i) => write!(f, "{i}"),
            Ref::Name(n) => write!(f, "{n:?}"),
        }
    }
}

impl GroupsFile {
    /// Parses and checks a groups file; errors name the file and what is wrong.
    pub fn parse(text: &str, origin: &Path) -> Result<GroupsFile, GroupsFileError> {
        let path = || origin.to_path_buf();
        let file: GroupsFile = toml::from_str(text).map_err(|source| GroupsFileError::Parse {
            path: path(),
            source,
        })?;
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for g in &file.groups {
            if g.name.trim().is_empty() {
                return Err(GroupsFileError::EmptyName { path: path() });
            }
            *names.entry(g.name.as_str()).or_default() += 1;
            if let Some(id) = g.id {
                if !ids.insert(id) {
                    return Err(GroupsFileError::IdTwice { path: path(), id });
                }
            }
        }
        // A name may repeat only where every group of that name carries its id.
        let ambiguous = file
            .groups
            .iter()
            .find(|g| g.id.is_none() && names[g.name.as_str()] > 1);
        if let Some(g) = ambiguous {
            return Err(GroupsFileError::NameTwice {
                path: path(),
                name: g.name.clone(),
            });
        }
        Ok(file)
    }
}

/// Runs one `groups` subcommand.
pub async fn run(config_path: Option<&Path>, cmd: GroupsCmd) -> Result<Exit, GroupsFileError> {
    let (_, config) = commands::load_config(config_path)?;
    let client = commands::client_for(&config)?;
    if matches!(cmd, GroupsCmd::Apply { .. }) {
        // Before the write: a missing alert secret is a config error, not a lost alert.
        crate::alerts::deliver::find_secrets(&config)?;
    }
    client.start_run();
    match cmd {
        GroupsCmd::Plan { file } => {
            let desired = read_file(&file)?;
            let org = pull_live(&client).await?;
            let actions = plan(&desired, &org, config.api.workspace_id)?;
            print_plan(&actions, &org.labels, &file);
            Ok(Exit::Ok)
        }
        GroupsCmd::Apply { file, yes } => apply(&client, &config, &file, yes).await,
        GroupsCmd::Export { file, force } => {
            if file.exists() && !force {
                return Err(crate::export::exists(&file, "it").into());
            }
            let org = pull_live(&client).await?;
            let text = export_text(&org);
            write_atomically(&file, &text, force)?;
            crate::outln!("wrote {} groups to {}", org.groups.len(), file.display());
            Ok(Exit::Ok)
        }
    }
}

fn read_file(path: &Path) -> Result<GroupsFile, GroupsFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| GroupsFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    GroupsFile::parse(&text, path)
}

async fn pull_live(client: &Client) -> Result<LiveOrg, GroupsFileError> {
    let teams = client.pull_teams(&mut |_| {}).await?;
    let users = client.pull_users(false, false, &mut |_| {}).await?;
    let teams: Vec<Team> = teams.into_iter().map(|(t, _)| t).collect();
    let users: Vec<OrganizationUser> = users.into_iter().map(|(u, _)| u).collect();
    Ok(LiveOrg::new(&teams, &users))
}

fn print_plan(actions: &[Action], labels: &Labels, file: &Path) {
    if actions.is_empty() {
        crate::outln!(
            "no changes: the organization's groups match {}",
            file.display()
        );
        return;
    }
    for a in actions {
        crate::outln!("{}", a.line(labels));
    }
    let count = |o: u8| actions.iter().filter(|a| a.order() == o).count();
    crate::outln!(
        "plan: {} to create, {} to update, {} to delete",
        count(0),
        count(1),
        count(2)
    );
}

async fn apply(
    client: &Client,
    config: &Config,
    file: &Path,
    yes: bool,
) -> Result<Exit, GroupsFileError> {
    let desired = read_file(file)?;
    let org = pull_live(client).await?;
    let actions = plan(&desired, &org, config.api.workspace_id)?;
    print_plan(&actions, &org.labels, file);
    if actions.is_empty() {
        return Ok(Exit::Ok);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(GroupsFileError::NoTerminal);
        }
        let _ = write!(
            std::io::stderr(),
            "apply these {} changes? [y/N] ",
            actions.len()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
            crate::outln!("not applied; nothing was changed");
            return Err(GroupsFileError::Declined);
        }
    }
    // An update reads its group fresh before it writes: two requests.
    let updates = actions
        .iter()
        .filter(|a| matches!(a, Action::Update { .. }))
        .count();
    client
        .ensure_quota(u32::try_from(actions.len() + updates).unwrap_or(u32::MAX))
        .await?;

    let known: Vec<i64> = org.groups.iter().map(|g| g.id).collect();
    let mut targets = Targets::default();
    let mut applied: Vec<String> = Vec::new();
    let mut failure: Option<(usize, String)> = None;
    for (i, action) in actions.iter().enumerate() {
        let line = action.line(&org.labels);
        let result: Result<(), GroupsFileError> = match action {
            Action::Create {
                name,
                body,
                members,
            } => match client.create_group(body).await {
                Ok(created) => {
                    let id = match created.and_then(|g| g.id) {
                        Some(id) => Ok(id),
                        None => find_created(client, name, &known).await.map_err(Into::into),
                    };
                    id.map(|id| {
                        targets.groups.insert(id);
                        targets.users.extend(members.iter().copied());
                    })
                }
                Err(e) => Err(e.into()),
            },
            Action::Update { before, after } => {
                update_onto_fresh(client, before, after).await.map(|moved| {
                    targets.groups.insert(before.id);
                    targets.users.extend(moved);
                })
            }
            Action::Delete { group } => match client.delete_group(group.id).await {
                Ok(()) => {
                    targets.groups.insert(group.id);
                    targets.users.extend(group.members.iter().copied());
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
        };
        match result {
            Ok(()) => {
                crate::outln!("applied: {line}");
                applied.push(line);
            }
            Err(e) => {
                failure = Some((i, format!("{line}: {e}")));
                break;
            }
        }
    }
    let refreshed = if targets.groups.is_empty() {
        Ok(Exit::Ok)
    } else {
        let done = format!("{} changes were applied", applied.len());
        refresh_after(client, config, targets, &done)
            .await
            .map_err(GroupsFileError::from)
    };
    match failure {
        None => {
            crate::outln!("applied all {} changes", applied.len());
            refreshed
        }
        Some((i, error)) => {
            if let Err(e) = refreshed {
                crate::errln!("orgmirror: {e}");
            }
            Err(GroupsFileError::Stopped {
                failed: error,
                applied,
                not_applied: actions[i..].iter().map(|a| a.line(&org.labels)).collect(),
            })
        }
    }
}

/// A planned update written onto the group as it is now, not as the plan read it (the
/// prompt may have waited): what the plan changes, and upstream's latest for the rest.
/// Returns the users whose membership it changed.
async fn update_onto_fresh(
    client: &Client,
    before: &LiveGroup,
    after: &LiveGroup,
) -> Result<BTreeSet<i64>, GroupsFileError> {
    let fresh = super::fetch_group(client, before.id)
        .await?
        .ok_or(GroupError::Gone(before.id))?;
    let next = rebase(before, after, &fresh);
    client.update_group(before.id, &next.as_write()).await?;
    Ok(fresh
        .members
        .symmetric_difference(&next.members)
        .copied()
        .collect())
}

/// `fresh` with what the plan changed from `before` to `after`: each of name, emoji, members
/// and workspaces is the plan's where the plan changed it, and upstream's latest elsewhere.
fn rebase(before: &LiveGroup, after: &LiveGroup, fresh: &LiveGroup) -> LiveGroup {
    fn pick<T: PartialEq + Clone>(before: &T, after: &T, fresh: &T) -> T {
        if after == before {
            fresh.clone()
        } else {
            after.clone()
        }
    }
    LiveGroup {
        id: fresh.id,
        name: pick(&before.name, &after.name, &fresh.name),
        emoji: pick(&before.emoji, &after.emoji, &fresh.emoji),
        members: pick(&before.members, &after.members, &fresh.members),
        workspaces: pick(&before.workspaces, &after.workspaces, &fresh.workspaces),
    }
}

/// The file that describes `org`'s groups exactly: each group's `id` (so that a name
/// edited in the file plans a rename of that group, not a new group and, with `prune`, the
/// old one's deletion), members by e-mail (by id when a member has no e-mail or shares it),
/// workspaces by name (by id when the name is unknown or shared).
pub fn export_text(org: &LiveOrg) -> String {
    let mut out = String::from(
        "# Groups of the organization, as `orgmirror groups export` saw them.\n\
         # Edit, then `orgmirror groups plan FILE` / `orgmirror groups apply FILE`.\n\
         prune = false\n",
    );
    for g in &org.groups {
        out.push_str("\n[[group]]\n");
        out.push_str(&format!("id = {}\n", g.id));
        out.push_str(&format!("name = {}\n", toml_string(&g.name)));
        if let Some(e) = &g.emoji {
            out.push_str(&format!("emoji = {}\n", toml_string(e)));
        }
        let mut members: Vec<String> = g
            .members
            .iter()
            .map(|id| match org.labels.users.get(id) {
                Some(email)
                    if org
                        .emails
                        .get(&email.to_lowercase())
                        .is_some_and(|ids| ids.len() == 1) =>
                {
                    toml_string(email)
                }
                _ => id.to_string(),
            })
            .collect();
        members.sort();
        out.push_str(&format!("members = [{}]\n", members.join(", ")));
        let workspaces: Vec<String> = g
            .workspaces
            .iter()
            .map(|id| match org.labels.workspaces.get(id) {
                Some(name)
                    if org
                        .workspace_names
                        .get(name)
                        .is_some_and(|ids| ids.len() == 1) =>
                {
                    toml_string(name)
                }
                _ => id.to_string(),
            })
            .collect();
        out.push_str(&format!("workspaces = [{}]\n", workspaces.join(", ")));
    }
    out
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `text` to `path` through a temporary file; without `force`, refuses (atomically)
/// a `path` that exists.
fn write_atomically(path: &Path, text: &str, force: bool) -> Result<(), GroupsFileError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |source| GroupsFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    let persisted = if force {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            crate::export::exists(path, "it").into()
        } else {
            fail(e.error)
        }
    })?;
    Ok(())
}

//! What `groups plan` shows and `groups apply` does: the file's groups matched to the
//! organization's, and the steps that make the organization match, in a safe order. Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::{GroupsFile, GroupsFileError, Ref};
use crate::api::models::{GroupWrite, OrganizationUser, Team};
use crate::groups::{describe_change, Labels, LiveGroup};

/// The organization as one fresh pull sees it, with what maps names to ids.
#[derive(Debug, Clone, Default)]
pub struct LiveOrg {
    pub groups: Vec<LiveGroup>,
    /// Lower-cased e-mail -> users with it.
    pub emails: BTreeMap<String, Vec<i64>>,
    pub user_ids: BTreeSet<i64>,
    pub labels: Labels,
    /// Workspace name -> ids with it.
    pub workspace_names: BTreeMap<String, BTreeSet<i64>>,
}

impl LiveOrg {
    /// Builds it from pulled teams and users.
    pub fn new(teams: &[Team], users: &[OrganizationUser]) -> LiveOrg {
        let mut org = LiveOrg {
            groups: teams.iter().filter_map(LiveGroup::from_team).collect(),
            ..LiveOrg::default()
        };
        org.groups
            .sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        let mut workspaces: BTreeMap<i64, String> = BTreeMap::new();
        for u in users {
            let Some(id) = u.id else { continue };
            org.user_ids.insert(id);
            if let Some(email) = u.email.as_deref().filter(|e| !e.is_empty()) {
                org.emails.entry(email.to_lowercase()).or_default().push(id);
                org.labels.users.insert(id, email.to_string());
            }
            for w in &u.workspaces {
                if let (Some(wid), Some(name)) = (w.id, &w.name) {
                    workspaces.insert(wid, name.clone());
                }
            }
        }
        for t in teams {
            for w in &t.workspaces {
                if let (Some(wid), Some(name)) = (w.workspace_id, &w.name) {
                    workspaces.insert(wid, name.clone());
                }
            }
        }
        for (id, name) in &workspaces {
            org.workspace_names
                .entry(name.clone())
                .or_default()
                .insert(*id);
        }
        org.labels.workspaces = workspaces;
        org
    }

    fn member(&self, group: &str, r: &Ref) -> Result<i64, GroupsFileError> {
        let group = group.to_string();
        match r {
            Ref::Id(id) if self.user_ids.contains(id) => Ok(*id),
            Ref::Id(id) => Err(GroupsFileError::NotAUser { group, id: *id }),
            Ref::Name(email) => {
                let email = email.clone();
                match self
                    .emails
                    .get(&email.trim().to_lowercase())
                    .map(Vec::as_slice)
                {
                    Some([id]) => Ok(*id),
                    None | Some([]) => Err(GroupsFileError::UnknownEmail { group, email }),
                    Some(many) => Err(GroupsFileError::AmbiguousEmail {
                        group,
                        email,
                        ids: many.to_vec(),
                    }),
                }
            }
        }
    }

    fn workspace(&self, group: &str, r: &Ref) -> Result<i64, GroupsFileError> {
        match r {
            Ref::Id(id) => Ok(*id),
            Ref::Name(name) => {
                let ids: Vec<i64> = self
                    .workspace_names
                    .get(name)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                let (group, name) = (group.to_string(), name.clone());
                match ids.as_slice() {
                    [id] => Ok(*id),
                    [] => Err(GroupsFileError::UnknownWorkspace { group, name }),
                    _ => Err(GroupsFileError::AmbiguousWorkspace { group, name, ids }),
                }
            }
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create {
        name: String,
        body: GroupWrite,
        members: Vec<i64>,
    },
    Update {
        before: LiveGroup,
        after: LiveGroup,
    },
    Delete {
        group: LiveGroup,
    },
}

impl Action {
    /// The reviewable diff line: `+ create "X" …`, `~ update "Y": …`, `- delete "Z"`.
    pub fn line(&self, labels: &Labels) -> String {
        match self {
            Action::Create { name, body, .. } => {
                let mut parts = Vec::new();
                if let Some(e) = &body.emoji {
                    parts.push(format!("emoji: {e}"));
                }
                let members: Vec<String> = body
                    .organization_users
                    .iter()
                    .flatten()
                    .map(|u| labels.user(*u))
                    .collect();
                parts.push(format!(
                    "members: {}",
                    if members.is_empty() {
                        "(none)".into()
                    } else {
                        members.join(", ")
                    }
                ));
                let ws: Vec<String> = body
                    .workspaces
                    .iter()
                    .flatten()
                    .map(|w| labels.workspace(*w))
                    .collect();
                parts.push(format!(
                    "workspaces: {}",
                    if ws.is_empty() {
                        "(none)".into()
                    } else {
                        ws.join(", ")
                    }
                ));
                format!("+ create {name:?} {}", parts.join("; "))
            }
            Action::Update { before, after } => {
                let changes =
                    describe_change(before, after, &|u| labels.user(u), &|w| labels.workspace(w));
                format!(
                    "~ update {:?} (id {}): {}",
                    before.name,
                    before.id,
                    changes.join(", ")
                )
            }
            Action::Delete { group } => format!(
                "- delete {:?} (id {}, {} members)",
                group.name,
                group.id,
                group.members.len()
            ),
        }
    }

    pub(super) fn order(&self) -> u8 {
        match self {
            Action::Create { .. } => 0,
            Action::Update { .. } => 1,
            Action::Delete { .. } => 2,
        }
    }
}

/// Pure: what to do to make `org` match `file`, in the safe order (creates, updates, deletes).
pub fn plan(
    file: &GroupsFile,
    org: &LiveOrg,
    default_workspace: i64,
) -> Result<Vec<Action>, GroupsFileError> {
    let mut by_name: BTreeMap<&str, Vec<&LiveGroup>> = BTreeMap::new();
    for g in &org.groups {
        by_name.entry(g.name.as_str()).or_default().push(g);
    }
    // Live group id -> the name of the [[group]] that describes it.
    let mut described: BTreeMap<i64, &str> = BTreeMap::new();
    let mut actions = Vec::new();
    for spec in &file.groups {
        let members = spec
            .members
            .as_ref()
            .map(|m| {
                m.iter()
                    .map(|r| org.member(&spec.name, r))
                    .collect::<Result<BTreeSet<i64>, _>>()
            })
            .transpose()?;
        let workspaces = spec
            .workspaces
            .as_ref()
            .map(|w| {
                w.iter()
                    .map(|r| org.workspace(&spec.name, r))
                    .collect::<Result<BTreeSet<i64>, _>>()
            })
            .transpose()?;
        let current: Option<&LiveGroup> = match spec.id {
            Some(id) => Some(org.groups.iter().find(|g| g.id == id).ok_or_else(|| {
                GroupsFileError::UnknownId {
                    name: spec.name.clone(),
                    id,
                }
            })?),
            None => match by_name.get(spec.name.as_str()).map(Vec::as_slice) {
                None | Some([]) => None,
                Some([current]) => Some(*current),
                Some(many) => {
                    return Err(GroupsFileError::NamedTwiceUpstream {
                        name: spec.name.clone(),
                        ids: many.iter().map(|g| g.id).collect(),
                    });
                }
            },
        };
        match current {
            None => {
                let members: Vec<i64> = members.unwrap_or_default().into_iter().collect();
                let workspaces: Vec<i64> = match workspaces {
                    Some(w) => w.into_iter().collect(),
                    None => vec![default_workspace],
                };
                actions.push(Action::Create {
                    name: spec.name.clone(),
                    body: GroupWrite {
                        emoji: spec.emoji.clone(),
                        name: Some(spec.name.clone()),
                        organization_users: Some(members.clone()),
                        workspaces: Some(workspaces),
                    },
                    members,
                });
            }
            Some(current) => {
                if let Some(other) = described.insert(current.id, spec.name.as_str()) {
                    return Err(GroupsFileError::DescribedTwice {
                        first: other.to_string(),
                        second: spec.name.clone(),
                        id: current.id,
                        current: current.name.clone(),
                    });
                }
                let mut after = current.clone();
                // The same name, unless an `id` picked the group: then a rename.
                after.name = spec.name.clone();
                if let Some(e) = &spec.emoji {
                    after.emoji = Some(e.clone());
                }
                if let Some(m) = members {
                    after.members = m;
                }
                if let Some(w) = workspaces {
                    after.workspaces = w;
                }
                if after != *current {
                    actions.push(Action::Update {
                        before: current.clone(),
                        after,
                    });
                }
            }
        }
    }
    if file.prune {
        for g in &org.groups {
            if !described.contains_key(&g.id) {
                actions.push(Action::Delete { group: g.clone() });
            }
        }
    }
    actions.sort_by_key(Action::order);
    Ok(actions)
}

//! Names on the command line (e-mails, workspace and group names) resolved to ids through
//! the mirror database, opened read-only.

use std::path::PathBuf;
use std::sync::Arc;

use super::GroupError;
use crate::config::Config;
use crate::store::{QueryError, Store, StoreError};

/// A lookup of the mirror: the ids a name (or e-mail) matches.
type Lookup = fn(&Store, &str) -> Result<Vec<i64>, QueryError>;

/// The groups of one exact name, by id.
const GROUPS_NAMED: Lookup = Store::groups_named;

/// Resolves e-mails, workspace names and group names to ids through the mirror database.
pub struct MirrorNames {
    mirror: MirrorState,
    path: PathBuf,
}

/// The mirror as `MirrorNames` found it.
enum MirrorState {
    Open(Store),
    Missing,
    /// The file exists but cannot be used; the error says why.
    Unusable(Arc<StoreError>),
}

impl MirrorNames {
    /// Opens the mirror read-only if it exists; a missing or unusable mirror only matters
    /// once a name needs it.
    pub fn open(config: &Config) -> MirrorNames {
        let path = config.database.path.clone();
        let mirror = if path.exists() {
            match Store::open_read_only(&path) {
                Ok(store) => MirrorState::Open(store),
                Err(e) => MirrorState::Unusable(Arc::new(e)),
            }
        } else {
            MirrorState::Missing
        };
        MirrorNames { mirror, path }
    }

    fn ids(&self, what: &'static str, value: &str, lookup: Lookup) -> Result<Vec<i64>, GroupError> {
        let value = value.to_string();
        let store = match &self.mirror {
            MirrorState::Open(store) => store,
            MirrorState::Missing => {
                return Err(GroupError::NoMirror {
                    what,
                    value,
                    path: self.path.clone(),
                })
            }
            MirrorState::Unusable(e) => {
                return Err(GroupError::MirrorUnusable {
                    what,
                    value,
                    source: Arc::clone(e),
                })
            }
        };
        lookup(store, &value).map_err(|source| GroupError::Lookup {
            what,
            value,
            source,
        })
    }

    fn one(&self, what: &'static str, value: &str, lookup: Lookup) -> Result<i64, GroupError> {
        let ids = self.ids(what, value, lookup)?;
        let value = value.to_string();
        match ids.as_slice() {
            [id] => Ok(*id),
            [] => Err(GroupError::Unknown { what, value }),
            _ => Err(GroupError::Ambiguous { what, value, ids }),
        }
    }

    /// An organization user id, or the user with this e-mail (case-insensitive).
    pub fn member(&self, value: &str) -> Result<i64, GroupError> {
        let value = value.trim();
        if let Ok(id) = value.parse::<i64>() {
            return Ok(id);
        }
        if !value.contains('@') {
            return Err(GroupError::NotAMember(value.to_string()));
        }
        self.one("member e-mail", value, Store::users_with_email)
    }

    /// A workspace id, or the workspace with this exact name.
    pub fn workspace(&self, value: &str) -> Result<i64, GroupError> {
        let value = value.trim();
        if let Ok(id) = value.parse::<i64>() {
            return Ok(id);
        }
        self.one("workspace", value, Store::workspaces_named)
    }

    /// A group id, or the group with this exact name (spaces around it included when a
    /// group is named so; else without them).
    pub fn group(&self, value: &str) -> Result<i64, GroupError> {
        if let Ok(id) = value.trim().parse::<i64>() {
            return Ok(id);
        }
        if value != value.trim() && !self.ids("group", value, GROUPS_NAMED)?.is_empty() {
            return self.one("group", value, GROUPS_NAMED);
        }
        self.one("group", value.trim(), GROUPS_NAMED)
    }

    /// The ids of the groups the mirror knows by exactly this name (none without a usable
    /// mirror: this only helps find a created group, and `find_created` refuses to guess).
    pub(super) fn groups_named(&self, name: &str) -> Result<Vec<i64>, GroupError> {
        if !matches!(self.mirror, MirrorState::Open(_)) {
            return Ok(Vec::new());
        }
        self.ids("group", name, GROUPS_NAMED)
    }

    pub(super) fn members(&self, values: &[String]) -> Result<Vec<i64>, GroupError> {
        let mut ids: Vec<i64> = Vec::new();
        for (_, id) in self.members_as_given(values)? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Each non-empty value with the user id it names, in order (not deduplicated).
    pub(super) fn members_as_given<'v>(
        &self,
        values: &'v [String],
    ) -> Result<Vec<(&'v str, i64)>, GroupError> {
        values
            .iter()
            .filter(|v| !v.trim().is_empty())
            .map(|v| Ok((v.as_str(), self.member(v)?)))
            .collect()
    }

    pub(super) fn workspaces(&self, values: &[String]) -> Result<Vec<i64>, GroupError> {
        let mut ids: Vec<i64> = Vec::new();
        for v in values.iter().filter(|v| !v.trim().is_empty()) {
            let id = self.workspace(v)?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

//! Why a `group` command, or a write of `groups apply`, could not do what it was asked.

use std::path::PathBuf;
use std::sync::Arc;

use super::join_ids;
use crate::api::ApiError;
use crate::commands::CommandError;
use crate::store::{QueryError, StoreError};

/// Why a `group` command (or the write of `groups apply`) could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The config, the API, the mirror, the alert rules.
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("--name must not be empty")]
    EmptyName,
    #[error("nothing to update: give --name, --emoji, --add-member, --remove-member, --members or --workspaces")]
    NothingToUpdate,
    /// Removal would win silently (see `apply_change`): the command line contradicts itself.
    #[error("user {user} is both added and removed (--add-member {added:?}, --remove-member {removed:?}); keep only one of the two")]
    AddedAndRemoved {
        user: i64,
        added: String,
        removed: String,
    },
    #[error("member {0:?} is neither an organization user id nor an e-mail address")]
    NotAMember(String),
    /// A name to look up, and no mirror to look it up in.
    #[error("cannot look up {what} {value:?}: the mirror database {} does not exist yet; run `orgmirror sync` first or give the id", .path.display())]
    NoMirror {
        what: &'static str,
        value: String,
        path: PathBuf,
    },
    /// The mirror exists but cannot be read (the error names its path).
    #[error("cannot look up {what} {value:?} in the mirror: {source}")]
    MirrorUnusable {
        what: &'static str,
        value: String,
        source: Arc<StoreError>,
    },
    #[error("looking up {what} {value:?} in the mirror: {source}")]
    Lookup {
        what: &'static str,
        value: String,
        source: QueryError,
    },
    #[error("unknown {what} {value:?}: no such {what} in the mirror (run `orgmirror sync` if it is new, or give the id)")]
    Unknown { what: &'static str, value: String },
    #[error("ambiguous {what} {value:?}: it matches ids {}; give the id instead", join_ids(.ids))]
    Ambiguous {
        what: &'static str,
        value: String,
        ids: Vec<i64>,
    },
    /// The group is not there upstream (deleted meanwhile, or never was).
    #[error("group {0} does not exist")]
    NoSuchGroup(i64),
    /// A group a plan read is gone by the time its update is sent.
    #[error("group {0} no longer exists")]
    Gone(i64),
    /// The 201 of a create carried no id, and the pull that looks for it failed.
    #[error("group {name:?} was created, but finding its id failed: {source}")]
    CreatedIdLost { name: String, source: Box<ApiError> },
    #[error("group {0:?} was created, but no group of that name is listed; run `orgmirror sync`")]
    CreatedNotListed(String),
    #[error("group {name:?} was created, but groups {} all have that name, so its id is unknown; run `orgmirror sync`", join_ids(.ids))]
    CreatedAmbiguous { name: String, ids: Vec<i64> },
    /// The write went through; the mirror will have it after the next sync.
    #[error("{done}, but the mirror was not refreshed: {cause}; the next `orgmirror sync` will record the change")]
    NotRefreshed {
        done: String,
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

crate::commands::from_layers!(GroupError);

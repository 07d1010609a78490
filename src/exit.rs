//! The one place an error becomes an exit status (the README's table: 0 ok, 1 may pass
//! by itself, 2 a person must fix, 3 the deletion guard refused). `main` prints an
//! error once and exits with [`status`] of it; no other module picks a status for an
//! error (a command returns [`Exit::Ok`] or [`Exit::Refused`] only as its outcome).

use crate::alerts::AlertsError;
use crate::api::ApiError;
use crate::changes::ChangesError;
use crate::commands::{CommandError, Exit};
use crate::replica::ReplicaError;
use crate::store::{AsOfError, StoreError};
use crate::sync::SyncError;

/// Every error a command ends with, each carrying its layer's type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Alerts(#[from] AlertsError),
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(transparent)]
    Changes(#[from] ChangesError),
}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Self {
        Error::Command(e.into())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Command(e.into())
    }
}

/// The exit status `e` means.
pub fn status(e: &Error) -> Exit {
    match e {
        Error::Command(e) => command(e),
        Error::Alerts(e) => alerts(e),
        Error::Replica(e) => replica(e),
        Error::Changes(e) => changes(e),
    }
}

/// The exit status of a command's error (also what `check --json` reports).
pub fn command(e: &CommandError) -> Exit {
    match e {
        CommandError::Config(_) | CommandError::Usage(_) | CommandError::Unreadable(_) => {
            Exit::Config
        }
        CommandError::Api(e) => api(e),
        CommandError::Store(e) => store(e),
        CommandError::Run(run) => sync(&run.error),
        CommandError::AsOf(AsOfError::Store(e)) => store(e),
        // Before the first sync, or before its history starts: the time asked is wrong.
        CommandError::AsOf(_) => Exit::Config,
        CommandError::Alerts(e) => alerts(e),
        CommandError::Failed(_) => Exit::Failed,
    }
}

/// Credentials or ids the API refused, and features the plan lacks, are the
/// configuration's to fix; anything else may pass.
fn api(e: &ApiError) -> Exit {
    match e {
        ApiError::Auth { .. } | ApiError::PlanLacks { .. } => Exit::Config,
        _ => Exit::Failed,
    }
}

/// Setup mistakes (a missing directory, files the service cannot write, a foreign or
/// newer or damaged file) exit 2, which systemd does not restart on; a busy lock 1.
fn store(e: &StoreError) -> Exit {
    if e.is_setup() {
        Exit::Config
    } else {
        Exit::Failed
    }
}

/// The exit status of a run's error, as a number: what `sync` records with a failed run
/// (`sync_runs.exit_status`), handed to it by `main` as `sync::ExitStatusOf`.
pub fn of_run(e: &SyncError) -> i64 {
    sync(e) as i64
}

/// A run that did not commit. Its store errors come from a database the run had opened
/// and locked, so they are failures of that run (1), as they always were.
fn sync(e: &SyncError) -> Exit {
    match e {
        SyncError::Refused(_) => Exit::Refused,
        SyncError::Api(e) => api(e),
        SyncError::Credentials(_) => Exit::Config,
        SyncError::Store(_) | SyncError::Record(_) => Exit::Failed,
    }
}

/// Its arguments and `$PAGER` are a person's to fix.
fn changes(e: &ChangesError) -> Exit {
    match e {
        ChangesError::Command(e) => command(e),
        ChangesError::Store(e) => store(e),
        ChangesError::Since(_)
        | ChangesError::Until(_)
        | ChangesError::UnknownEntity { .. }
        | ChangesError::Pager => Exit::Config,
    }
}

fn alerts(e: &AlertsError) -> Exit {
    match e {
        AlertsError::Config(_)
        | AlertsError::UnknownRule { .. }
        | AlertsError::NoRules
        | AlertsError::HealthReplay { .. }
        | AlertsError::Since(_) => Exit::Config,
        AlertsError::Store(e) => store(e),
        AlertsError::Client(_) | AlertsError::NotAccepted { .. } => Exit::Failed,
    }
}

/// The replica's config, or a replica holding another mirror's runs, are a person's to
/// fix; anything else (PostgreSQL away, the mirror busy, views that differ) may pass.
fn replica(e: &ReplicaError) -> Exit {
    match e {
        ReplicaError::Config(_) | ReplicaError::Foreign(_) | ReplicaError::NotConfigured => {
            Exit::Config
        }
        ReplicaError::Connect { .. }
        | ReplicaError::Postgres { .. }
        | ReplicaError::Store(_)
        | ReplicaError::Diverged(_)
        | ReplicaError::Mirror(_)
        | ReplicaError::Progress(_)
        | ReplicaError::Differs(_) => Exit::Failed,
    }
}

#[cfg(test)]
mod tests;

//! The one place an error becomes an exit status (the README's table: 0 ok, 1 may pass
//! by itself, 2 a person must fix, 3 the deletion guard refused). `main` prints an
//! error once and exits with [`status`] of it; no other module picks a status for an
//! error (a command returns [`Exit::Ok`] or [`Exit::Refused`] only as its outcome). Each
//! command's error type carries the layers' ([`CommandError`]) for what is not its own.

use crate::alerts::AlertsError;
use crate::api::ApiError;
use crate::changes::ChangesError;
use crate::check::CheckError;
use crate::commands::{CommandError, Exit};
use crate::daemon::DaemonError;
use crate::demo::DemoError;
use crate::erase::EraseCommandError;
use crate::export::ExportError;
use crate::groups::file::GroupsFileError;
use crate::groups::GroupError;
use crate::metrics::MetricsError;
use crate::replica::ReplicaError;
use crate::status::StatusError;
use crate::store::{AsOfError, EraseError, StoreError};
use crate::sync::SyncError;

/// Every error a command ends with, each carrying its command's or its layer's type.
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
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    GroupsFile(#[from] GroupsFileError),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Demo(#[from] DemoError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Erase(#[from] EraseCommandError),
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
        Error::Export(e) => export(e),
        Error::Group(e) => group(e),
        Error::GroupsFile(e) => groups_file(e),
        Error::Check(e) => check(e),
        Error::Daemon(e) => daemon(e),
        Error::Demo(e) => demo(e),
        Error::Status(e) => status_of(e),
        Error::Erase(e) => erase(e),
    }
}

/// A refused erasure (a present member, an unknown id, a reason that names them) is a
/// person's to fix; a reader that kept the WAL, or an e-mail address another row holds,
/// may pass or needs a look, and the erasure itself is committed.
fn erase(e: &EraseCommandError) -> Exit {
    match e {
        EraseCommandError::Command(e) => command(e),
        EraseCommandError::NoReason
        | EraseCommandError::Refused(
            EraseError::Present { .. } | EraseError::Unknown { .. } | EraseError::ReasonNamesThem,
        ) => Exit::Config,
        EraseCommandError::Refused(EraseError::Store(e)) => store(e),
        EraseCommandError::WalKept { .. } | EraseCommandError::EmailRemains { .. } => Exit::Failed,
    }
}

/// The exit status of a layer's error, whichever command met it.
fn command(e: &CommandError) -> Exit {
    match e {
        CommandError::Config(_) => Exit::Config,
        CommandError::Api(e) => api(e),
        CommandError::Store(e) => store(e),
        CommandError::Run(run) => sync(&run.error),
        CommandError::AsOf(AsOfError::Store(e)) => store(e),
        // Before the first sync, or before its history starts: the time asked is wrong.
        CommandError::AsOf(_) => Exit::Config,
        CommandError::Alerts(e) => alerts(e),
        CommandError::Capture(_) | CommandError::Replay(_) => Exit::Config,
        CommandError::FakeApi(_) | CommandError::Runtime(_) | CommandError::Json { .. } => {
            Exit::Failed
        }
    }
}

/// What the command line asked for (`--out`, `--csv`, `--force`) is a person's to fix;
/// reading the mirror and writing files may pass by itself.
fn export(e: &ExportError) -> Exit {
    match e {
        ExportError::Command(e) => command(e),
        ExportError::NothingAsked
        | ExportError::OntoMirror { .. }
        | ExportError::Exists { .. }
        | ExportError::CsvNotADirectory { .. }
        | ExportError::CsvForeignFiles { .. } => Exit::Config,
        ExportError::NotUtf8 { .. }
        | ExportError::Io { .. }
        | ExportError::Copy { .. }
        | ExportError::Read { .. }
        | ExportError::ReadView { .. } => Exit::Failed,
    }
}

/// A command line that contradicts itself or names what the mirror does not know is a
/// person's to fix; the mirror unreadable, a group gone upstream meanwhile, a write whose
/// aftermath failed may pass.
fn group(e: &GroupError) -> Exit {
    match e {
        GroupError::Command(e) => command(e),
        GroupError::EmptyName
        | GroupError::NothingToUpdate
        | GroupError::AddedAndRemoved { .. }
        | GroupError::NotAMember(_)
        | GroupError::NoMirror { .. }
        | GroupError::Unknown { .. }
        | GroupError::Ambiguous { .. } => Exit::Config,
        GroupError::MirrorUnusable { .. }
        | GroupError::Lookup { .. }
        | GroupError::NoSuchGroup(_)
        | GroupError::Gone(_)
        | GroupError::CreatedIdLost { .. }
        | GroupError::CreatedNotListed(_)
        | GroupError::CreatedAmbiguous { .. }
        | GroupError::NotRefreshed { .. } => Exit::Failed,
    }
}

/// The file and what it names are a person's to fix; what the organization holds, a
/// declined or stopped apply and a file that cannot be written may pass.
fn groups_file(e: &GroupsFileError) -> Exit {
    match e {
        GroupsFileError::Command(e) => command(e),
        GroupsFileError::Group(e) => group(e),
        GroupsFileError::Export(e) => export(e),
        GroupsFileError::Read { .. }
        | GroupsFileError::Parse { .. }
        | GroupsFileError::EmptyName { .. }
        | GroupsFileError::IdTwice { .. }
        | GroupsFileError::NameTwice { .. }
        | GroupsFileError::NotAUser { .. }
        | GroupsFileError::UnknownEmail { .. }
        | GroupsFileError::AmbiguousEmail { .. }
        | GroupsFileError::UnknownWorkspace { .. }
        | GroupsFileError::AmbiguousWorkspace { .. }
        | GroupsFileError::UnknownId { .. }
        | GroupsFileError::DescribedTwice { .. }
        | GroupsFileError::NoTerminal => Exit::Config,
        GroupsFileError::NamedTwiceUpstream { .. }
        | GroupsFileError::Declined
        | GroupsFileError::Stopped { .. }
        | GroupsFileError::Write { .. } => Exit::Failed,
    }
}

/// The exit status of a check's error (also what `check --json` reports). Config,
/// credentials, damage and what the API refuses are a person's to fix; the database's
/// files, a server out of reach, a spent quota may pass.
pub fn check(e: &CheckError) -> Exit {
    match e {
        CheckError::Command(e) => command(e),
        CheckError::Config(_)
        | CheckError::Credentials(_)
        | CheckError::AlertSecret(_)
        | CheckError::Client(_)
        | CheckError::Damaged { .. }
        | CheckError::CredentialsRefused { .. }
        | CheckError::OrganizationRefused { .. }
        | CheckError::RolesRefused { .. }
        | CheckError::WorkspaceRefused { .. }
        | CheckError::UsersRefused { .. }
        | CheckError::UnknownOrganization { .. }
        | CheckError::Redirects { .. }
        | CheckError::PlanLacks { .. } => Exit::Config,
        CheckError::LockNotAFile { .. }
        | CheckError::NotWritable { .. }
        | CheckError::NotAMirror(_)
        | CheckError::NoDirectory { .. }
        | CheckError::DirectoryNotWritable { .. }
        | CheckError::Unreachable { .. }
        | CheckError::QuotaSpent { .. }
        | CheckError::Unusable { .. } => Exit::Failed,
    }
}

/// An abandoned run is worth another, which systemd restarts the service for.
fn daemon(e: &DaemonError) -> Exit {
    match e {
        DaemonError::Command(e) => command(e),
        DaemonError::Metrics(e) => metrics(e),
        DaemonError::Signals(_) | DaemonError::Schedule { .. } | DaemonError::Abandoned => {
            Exit::Failed
        }
    }
}

/// `metrics.listen` is the config's.
fn metrics(e: &MetricsError) -> Exit {
    match e {
        MetricsError::NotAnAddress { .. } | MetricsError::Bind { .. } => Exit::Config,
    }
}

/// `--users` is the command line's; the rest may pass.
fn demo(e: &DemoError) -> Exit {
    match e {
        DemoError::Command(e) => command(e),
        DemoError::TooFewUsers { .. } => Exit::Config,
        DemoError::FakeStart(_)
        | DemoError::NotADatabase { .. }
        | DemoError::NotADemo { .. }
        | DemoError::Remove { .. }
        | DemoError::Query(_) => Exit::Failed,
    }
}

/// A mirror `status --check` cannot read is a person's to look at.
fn status_of(e: &StatusError) -> Exit {
    match e {
        StatusError::Command(e) => command(e),
        StatusError::Unreadable(_) => Exit::Config,
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
/// and locked, so they are failures of that run (1).
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
        ChangesError::Config(_) => Exit::Config,
        ChangesError::Store(e) => store(e),
        ChangesError::UnknownEntity { .. } | ChangesError::Pager => Exit::Config,
    }
}

fn alerts(e: &AlertsError) -> Exit {
    match e {
        AlertsError::Config(_)
        | AlertsError::UnknownRule { .. }
        | AlertsError::NoRules
        | AlertsError::HealthReplay { .. } => Exit::Config,
        AlertsError::Store(e) => store(e),
        AlertsError::Client(_) | AlertsError::NotAccepted { .. } => Exit::Failed,
    }
}

/// The replica's config, or a replica holding another mirror's runs, are a person's to
/// fix; anything else (PostgreSQL away, the mirror busy, views that differ) may pass.
fn replica(e: &ReplicaError) -> Exit {
    match e {
        ReplicaError::Config(_)
        | ReplicaError::CaFile { .. }
        | ReplicaError::Tls(_)
        | ReplicaError::Credential { .. }
        | ReplicaError::NewerSchema { .. }
        | ReplicaError::Foreign { .. }
        | ReplicaError::NotConfigured => Exit::Config,
        ReplicaError::Connect { .. }
        | ReplicaError::Postgres { .. }
        | ReplicaError::Store(_)
        | ReplicaError::CopiedRows { .. }
        | ReplicaError::ClosedIntervals { .. }
        | ReplicaError::MirrorClosed
        | ReplicaError::MirrorTask { .. }
        | ReplicaError::KeptMoving
        | ReplicaError::MirrorMovedOn { .. }
        | ReplicaError::NothingReplicated(_)
        | ReplicaError::Differs(_) => Exit::Failed,
    }
}

#[cfg(test)]
mod tests;

//! Every kind of error against the exit status the README documents for it.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::api::Endpoint;
use crate::config::{ConfigError, SentAs};
use crate::daemon::DaemonError;
use crate::demo::DemoError;
use crate::snapshot::RecordError;
use crate::sync::RunFailed;

fn endpoint() -> Endpoint {
    Endpoint {
        method: "GET",
        path: "/organizations/1/users".into(),
        page: Some(1),
    }
}

fn auth() -> ApiError {
    ApiError::Auth {
        endpoint: endpoint(),
        status: 401,
        body: String::new(),
        trace_id: None,
        sent_as: SentAs::Bearer,
        focus_key: true,
    }
}

fn timeout() -> ApiError {
    ApiError::Timeout {
        endpoint: endpoint(),
        after: Duration::from_secs(30),
    }
}

fn setup() -> StoreError {
    StoreError::NoDirectory {
        path: PathBuf::from("/var/lib/orgmirror/orgmirror.sqlite"),
        dir: PathBuf::from("/var/lib/orgmirror"),
    }
}

fn locked() -> StoreError {
    StoreError::Locked {
        path: PathBuf::from("m.sqlite"),
        lock: PathBuf::from("m.sqlite.lock"),
    }
}

fn run(error: SyncError) -> Error {
    CommandError::from(Box::new(RunFailed {
        run_id: 7,
        duration: Duration::from_millis(1500),
        requests: 4,
        quota_remaining: Some(96),
        error,
    }))
    .into()
}

fn record() -> RecordError {
    RecordError {
        entity: "user",
        position: "123".into(),
        field: "rate",
    }
}

fn io() -> std::io::Error {
    std::io::Error::other("disk full")
}

fn query() -> crate::store::QueryError {
    rusqlite::Error::QueryReturnedNoRows.into()
}

fn join_error() -> tokio::task::JoinError {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        task.await.unwrap_err()
    })
}

fn path() -> PathBuf {
    PathBuf::from("/srv/x")
}

fn capture() -> crate::api::capture::CaptureError {
    crate::api::capture::CaptureError::Directory {
        dir: path(),
        message: "not empty".into(),
    }
}

fn json_error() -> serde_json::Error {
    serde_json::from_str::<i32>("x").unwrap_err()
}

fn check(e: CheckError) -> Error {
    e.into()
}

fn group(e: GroupError) -> Error {
    e.into()
}

fn file(e: GroupsFileError) -> Error {
    e.into()
}

fn export(e: ExportError) -> Error {
    e.into()
}

fn demo(e: DemoError) -> Error {
    e.into()
}

fn refused(body: &str) -> (String, i64, u16, String) {
    ("http://api".into(), 1001, 403, body.into())
}

/// Every error `exit::status` tells apart, with the status the README documents for it.
fn table() -> Vec<(&'static str, Error, Exit)> {
    use Exit::{Config, Failed, Refused};
    let (base_url, organization, status, body) = refused("no");
    vec![
        ("no config file", ConfigError::NotFound.into(), Config),
        ("no credentials", ConfigError::NoCredentials.into(), Config),
        (
            "status --check cannot read the mirror",
            StatusError::Unreadable(crate::status::Unreadable::NotUpgraded { path: path() }).into(),
            Config,
        ),
        (
            "status on a busy mirror",
            StatusError::from(locked()).into(),
            Failed,
        ),
        (
            "credentials refused",
            CommandError::Api(auth()).into(),
            Config,
        ),
        ("a timeout", CommandError::Api(timeout()).into(), Failed),
        (
            "a feature the plan lacks",
            run(SyncError::Api(ApiError::PlanLacks {
                endpoint: endpoint(),
                body: "rates feature not available on the plan".into(),
                json: None,
                settings: vec!["sync.include_rates = false"],
            })),
            Config,
        ),
        ("a setup mistake", setup().into(), Config),
        ("another writer", locked().into(), Failed),
        // the store, each kind of error it opens or locks a database with
        (
            "the database file not writable",
            StoreError::NotWritable {
                path: path(),
                source: io(),
                fix: "chown".into(),
            }
            .into(),
            Config,
        ),
        (
            "SQLite refused for want of permission",
            StoreError::SqliteNotWritable {
                path: path(),
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                    None,
                ),
                fix: "chown".into(),
            }
            .into(),
            Config,
        ),
        (
            "the lock file not writable",
            StoreError::LockFileNotWritable {
                path: path(),
                source: io(),
                fix: "chown".into(),
            }
            .into(),
            Config,
        ),
        (
            "a reader that cannot create -shm",
            StoreError::DirectoryNotWritable {
                path: path(),
                opening: Box::new(setup()),
                dir: path(),
                shm: path(),
                wal: path(),
            }
            .into(),
            Config,
        ),
        (
            "a newer mirror",
            StoreError::TooNew {
                path: path(),
                found: 99,
                supported: 26,
            }
            .into(),
            Config,
        ),
        (
            "not a mirror",
            StoreError::Foreign {
                path: path(),
                found: 1,
            }
            .into(),
            Config,
        ),
        (
            "a damaged mirror",
            StoreError::Damaged {
                path: path(),
                problems: "x".into(),
            }
            .into(),
            Config,
        ),
        (
            "SQLite failed otherwise",
            StoreError::Sqlite {
                path: path(),
                source: rusqlite::Error::QueryReturnedNoRows,
            }
            .into(),
            Failed,
        ),
        (
            "the database not opened",
            StoreError::CannotOpen {
                path: path(),
                source: io(),
            }
            .into(),
            Failed,
        ),
        (
            "its mode not set",
            StoreError::FileMode {
                path: path(),
                mode: 0o600,
                source: io(),
            }
            .into(),
            Failed,
        ),
        (
            "no mirror to read",
            StoreError::Missing { path: path() }.into(),
            Failed,
        ),
        (
            "an empty mirror to read",
            StoreError::Empty { path: path() }.into(),
            Failed,
        ),
        (
            "no WAL",
            StoreError::NoWal {
                path: path(),
                mode: "delete".into(),
            }
            .into(),
            Failed,
        ),
        (
            "the -wal not kept",
            StoreError::PersistWal {
                path: path(),
                code: 1,
            }
            .into(),
            Failed,
        ),
        (
            "a migration failed",
            StoreError::Migration {
                path: path(),
                name: "26",
                source: rusqlite::Error::QueryReturnedNoRows,
            }
            .into(),
            Failed,
        ),
        (
            "a lock not taken",
            StoreError::Lock {
                lock: path(),
                what: "the writer lock",
                source: io(),
            }
            .into(),
            Failed,
        ),
        (
            "the lock file not opened",
            StoreError::LockFile {
                lock: path(),
                source: io(),
            }
            .into(),
            Failed,
        ),
        (
            "a second daemon",
            StoreError::DaemonRunning {
                path: path(),
                lock: path(),
            }
            .into(),
            Failed,
        ),
        (
            "the deletion guard",
            run(SyncError::Refused(crate::sync::MassDelete {
                removed: 8,
                held: 10,
                plural: "users",
                max_fraction: 0.5,
            })),
            Refused,
        ),
        ("a run refused access", run(SyncError::Api(auth())), Config),
        (
            "a run that timed out",
            run(SyncError::Api(timeout())),
            Failed,
        ),
        ("a bad record", run(SyncError::Record(record())), Failed),
        (
            "a tick's key file unreadable",
            run(SyncError::Credentials(ConfigError::CredentialFile {
                path: PathBuf::from("/etc/orgmirror/toggl_api_token"),
                problem: "it is empty; write the API key in it",
            })),
            Config,
        ),
        ("a writer's error", run(SyncError::Store(locked())), Failed),
        (
            "a writer's setup error",
            run(SyncError::Store(setup())),
            Failed,
        ),
        (
            "asof before the first sync",
            CommandError::AsOf(AsOfError::NoHistory).into(),
            Config,
        ),
        (
            "asof on a missing mirror",
            CommandError::AsOf(AsOfError::Store(setup())).into(),
            Config,
        ),
        (
            "sync --capture into a full directory",
            CommandError::Capture(capture()).into(),
            Config,
        ),
        (
            "fake-api --replay of no recording",
            CommandError::Replay(capture()).into(),
            Config,
        ),
        (
            "the fake API stopped",
            CommandError::FakeApi(io().into()).into(),
            Failed,
        ),
        (
            "no async runtime",
            CommandError::Runtime(io()).into(),
            Failed,
        ),
        (
            "a report not encoded",
            CommandError::Json {
                what: "the status",
                source: json_error(),
            }
            .into(),
            Failed,
        ),
        // export and asof
        (
            "export without a config",
            export(ConfigError::NotFound.into()),
            Config,
        ),
        (
            "asof on a busy mirror",
            export(AsOfError::Store(locked()).into()),
            Failed,
        ),
        (
            "export of nothing",
            export(ExportError::NothingAsked),
            Config,
        ),
        (
            "export onto the mirror",
            export(ExportError::OntoMirror {
                out: path(),
                file: "the mirror's database",
            }),
            Config,
        ),
        (
            "export over a file",
            export(ExportError::Exists {
                path: path(),
                what: "it",
            }),
            Config,
        ),
        (
            "--csv a file",
            export(ExportError::CsvNotADirectory { dir: path() }),
            Config,
        ),
        (
            "--csv a directory of others",
            export(ExportError::CsvForeignFiles {
                dir: path(),
                files: vec!["x".into()],
            }),
            Config,
        ),
        (
            "an export path not UTF-8",
            export(ExportError::NotUtf8 { path: path() }),
            Failed,
        ),
        (
            "an export's disk full",
            export(ExportError::Io {
                doing: "write",
                path: path(),
                source: io(),
            }),
            Failed,
        ),
        (
            "an export's copy",
            export(ExportError::Copy {
                what: "m".into(),
                out: path(),
                source: query(),
            }),
            Failed,
        ),
        (
            "an export's read",
            export(ExportError::Read {
                what: "m".into(),
                source: query(),
            }),
            Failed,
        ),
        (
            "an export's view",
            export(ExportError::ReadView {
                view: "v".into(),
                what: "m".into(),
                source: query(),
            }),
            Failed,
        ),
        // group
        ("group refused by the API", group(auth().into()), Config),
        ("group --name empty", group(GroupError::EmptyName), Config),
        (
            "group update of nothing",
            group(GroupError::NothingToUpdate),
            Config,
        ),
        (
            "a member added and removed",
            group(GroupError::AddedAndRemoved {
                user: 1,
                added: "a".into(),
                removed: "b".into(),
            }),
            Config,
        ),
        (
            "a member neither id nor e-mail",
            group(GroupError::NotAMember("x".into())),
            Config,
        ),
        (
            "a name and no mirror",
            group(GroupError::NoMirror {
                what: "group",
                value: "x".into(),
                path: path(),
            }),
            Config,
        ),
        (
            "a name in an unusable mirror",
            group(GroupError::MirrorUnusable {
                what: "group",
                value: "x".into(),
                source: std::sync::Arc::new(setup()),
            }),
            Failed,
        ),
        (
            "a name's lookup",
            group(GroupError::Lookup {
                what: "group",
                value: "x".into(),
                source: query(),
            }),
            Failed,
        ),
        (
            "an unknown name",
            group(GroupError::Unknown {
                what: "group",
                value: "x".into(),
            }),
            Config,
        ),
        (
            "an ambiguous name",
            group(GroupError::Ambiguous {
                what: "group",
                value: "x".into(),
                ids: vec![1, 2],
            }),
            Config,
        ),
        (
            "no such group upstream",
            group(GroupError::NoSuchGroup(5)),
            Failed,
        ),
        ("a group gone meanwhile", group(GroupError::Gone(5)), Failed),
        (
            "a created group's id lost",
            group(GroupError::CreatedIdLost {
                name: "x".into(),
                source: Box::new(timeout()),
            }),
            Failed,
        ),
        (
            "a created group not listed",
            group(GroupError::CreatedNotListed("x".into())),
            Failed,
        ),
        (
            "a created group's name shared",
            group(GroupError::CreatedAmbiguous {
                name: "x".into(),
                ids: vec![1, 2],
            }),
            Failed,
        ),
        (
            "a write not refreshed",
            group(GroupError::NotRefreshed {
                done: "group 5 was created".into(),
                cause: io().into(),
            }),
            Failed,
        ),
        // groups as code
        (
            "groups apply refused by the API",
            file(auth().into()),
            Config,
        ),
        (
            "groups apply of a group gone",
            file(GroupError::Gone(5).into()),
            Failed,
        ),
        (
            "groups export over a file",
            file(
                ExportError::Exists {
                    path: path(),
                    what: "it",
                }
                .into(),
            ),
            Config,
        ),
        (
            "a groups file unreadable",
            file(GroupsFileError::Read {
                path: path(),
                source: io(),
            }),
            Config,
        ),
        (
            "a groups file not TOML",
            file(GroupsFileError::Parse {
                path: path(),
                source: toml::from_str::<toml::Table>("x =").unwrap_err(),
            }),
            Config,
        ),
        (
            "a group without a name",
            file(GroupsFileError::EmptyName { path: path() }),
            Config,
        ),
        (
            "a group id twice",
            file(GroupsFileError::IdTwice {
                path: path(),
                id: 1,
            }),
            Config,
        ),
        (
            "a group name twice",
            file(GroupsFileError::NameTwice {
                path: path(),
                name: "x".into(),
            }),
            Config,
        ),
        (
            "a member not a user",
            file(GroupsFileError::NotAUser {
                group: "x".into(),
                id: 1,
            }),
            Config,
        ),
        (
            "a member e-mail unknown",
            file(GroupsFileError::UnknownEmail {
                group: "x".into(),
                email: "a@b".into(),
            }),
            Config,
        ),
        (
            "a member e-mail shared",
            file(GroupsFileError::AmbiguousEmail {
                group: "x".into(),
                email: "a@b".into(),
                ids: vec![1, 2],
            }),
            Config,
        ),
        (
            "a workspace unknown",
            file(GroupsFileError::UnknownWorkspace {
                group: "x".into(),
                name: "w".into(),
            }),
            Config,
        ),
        (
            "a workspace name shared",
            file(GroupsFileError::AmbiguousWorkspace {
                group: "x".into(),
                name: "w".into(),
                ids: vec![1, 2],
            }),
            Config,
        ),
        (
            "a group id unknown",
            file(GroupsFileError::UnknownId {
                name: "x".into(),
                id: 1,
            }),
            Config,
        ),
        (
            "a group described twice",
            file(GroupsFileError::DescribedTwice {
                first: "a".into(),
                second: "b".into(),
                id: 1,
                current: "c".into(),
            }),
            Config,
        ),
        (
            "a name twice upstream",
            file(GroupsFileError::NamedTwiceUpstream {
                name: "x".into(),
                ids: vec![1, 2],
            }),
            Failed,
        ),
        (
            "apply without a terminal",
            file(GroupsFileError::NoTerminal),
            Config,
        ),
        ("apply declined", file(GroupsFileError::Declined), Failed),
        (
            "apply stopped",
            file(GroupsFileError::Stopped {
                failed: "x".into(),
                applied: vec![],
                not_applied: vec![],
            }),
            Failed,
        ),
        (
            "export not written",
            file(GroupsFileError::Write {
                path: path(),
                source: io(),
            }),
            Failed,
        ),
        // check
        (
            "check: an alert rule on a busy mirror",
            check(AlertsError::Store(locked()).into()),
            Failed,
        ),
        (
            "check: config",
            check(CheckError::Config(ConfigError::NotFound)),
            Config,
        ),
        (
            "check: credentials",
            check(CheckError::Credentials(ConfigError::NoCredentials)),
            Config,
        ),
        (
            "check: an alert secret",
            check(CheckError::AlertSecret(ConfigError::NoCredentials)),
            Config,
        ),
        (
            "check: the client",
            check(CheckError::Client(timeout())),
            Config,
        ),
        (
            "check: the lock not a file",
            check(CheckError::LockNotAFile { lock: path() }),
            Failed,
        ),
        (
            "check: the database not writable",
            check(CheckError::NotWritable {
                path: path(),
                source: io(),
            }),
            Failed,
        ),
        (
            "check: not a mirror",
            check(CheckError::NotAMirror(locked())),
            Failed,
        ),
        (
            "check: no directory",
            check(CheckError::NoDirectory { dir: path() }),
            Failed,
        ),
        (
            "check: the directory not writable",
            check(CheckError::DirectoryNotWritable {
                dir: path(),
                source: io(),
            }),
            Failed,
        ),
        (
            "check: damage",
            check(CheckError::Damaged {
                path: path(),
                problems: vec!["x".into()],
            }),
            Config,
        ),
        (
            "check: 401",
            check(CheckError::CredentialsRefused {
                base_url: base_url.clone(),
                error: Box::new(auth()),
            }),
            Config,
        ),
        (
            "check: the organization refused",
            check(CheckError::OrganizationRefused {
                base_url: base_url.clone(),
                organization,
                status,
                credential: "API token",
                body: body.clone(),
            }),
            Config,
        ),
        (
            "check: the roles refused",
            check(CheckError::RolesRefused {
                organization,
                status,
                body: body.clone(),
            }),
            Config,
        ),
        (
            "check: the workspace refused",
            check(CheckError::WorkspaceRefused {
                workspace: 2,
                organization,
                status,
                body: body.clone(),
                users_workspaces: None,
            }),
            Config,
        ),
        (
            "check: the users refused",
            check(CheckError::UsersRefused {
                organization,
                status,
                body: body.clone(),
            }),
            Config,
        ),
        (
            "check: no such organization",
            check(CheckError::UnknownOrganization {
                base_url: base_url.clone(),
                organization,
                body,
            }),
            Config,
        ),
        (
            "check: a redirect",
            check(CheckError::Redirects {
                base_url: base_url.clone(),
                error: Box::new(timeout()),
            }),
            Config,
        ),
        (
            "check: a plan's 402",
            check(CheckError::PlanLacks {
                base_url: base_url.clone(),
                error: Box::new(timeout()),
            }),
            Config,
        ),
        (
            "check: out of reach",
            check(CheckError::Unreachable {
                base_url: base_url.clone(),
                error: Box::new(timeout()),
            }),
            Failed,
        ),
        (
            "check: a quota spent",
            check(CheckError::QuotaSpent {
                resets_in: Duration::from_secs(60),
            }),
            Failed,
        ),
        (
            "check: an unusable answer",
            check(CheckError::Unusable {
                base_url,
                error: Box::new(timeout()),
            }),
            Failed,
        ),
        // the daemon, metrics, demo
        (
            "no signal handlers",
            DaemonError::Signals(io()).into(),
            Failed,
        ),
        (
            "the daemon's database set up wrong",
            DaemonError::from(setup()).into(),
            Config,
        ),
        (
            "no schedule",
            DaemonError::Schedule {
                doing: "start",
                source: tokio_cron_scheduler::JobSchedulerError::CantInit,
            }
            .into(),
            Failed,
        ),
        (
            "a run abandoned by a second signal",
            DaemonError::Abandoned.into(),
            Failed,
        ),
        (
            "metrics.listen not an address",
            Error::from(DaemonError::Metrics(MetricsError::NotAnAddress {
                listen: "x".into(),
            })),
            Config,
        ),
        (
            "metrics.listen taken",
            DaemonError::Metrics(MetricsError::Bind {
                addr: ([127, 0, 0, 1], 9464).into(),
                source: io(),
            })
            .into(),
            Config,
        ),
        (
            "demo's run failed",
            demo(DemoError::from(Box::new(RunFailed {
                run_id: 1,
                duration: Duration::ZERO,
                requests: 0,
                quota_remaining: None,
                error: SyncError::Api(timeout()),
            }))),
            Failed,
        ),
        (
            "demo --users 3",
            demo(DemoError::TooFewUsers { users: 3 }),
            Config,
        ),
        ("the demo's fake", demo(DemoError::FakeStart(io())), Failed),
        (
            "demo --db not a database",
            demo(DemoError::NotADatabase { db: path() }),
            Failed,
        ),
        (
            "demo --db a mirror",
            demo(DemoError::NotADemo { db: path() }),
            Failed,
        ),
        (
            "demo --db not removed",
            demo(DemoError::Remove {
                path: path(),
                source: io(),
            }),
            Failed,
        ),
        ("the demo's query", demo(DemoError::Query(query())), Failed),
        // alerts
        (
            "no such alert rule",
            AlertsError::UnknownRule {
                name: "x".into(),
                known: vec![],
            }
            .into(),
            Config,
        ),
        (
            "alerts replay without rules",
            AlertsError::NoRules.into(),
            Config,
        ),
        (
            "alerts replay of a health rule",
            AlertsError::HealthReplay {
                name: "mirror down".into(),
            }
            .into(),
            Config,
        ),
        (
            "an alert's secret",
            AlertsError::Config(ConfigError::NoCredentials).into(),
            Config,
        ),
        (
            "no webhook client",
            AlertsError::Client(reqwest::Client::new().get("no url").build().unwrap_err()).into(),
            Failed,
        ),
        (
            "a sample not accepted",
            AlertsError::NotAccepted {
                name: "x".into(),
                reason: crate::alerts::deliver::SendError::NoTarget,
            }
            .into(),
            Failed,
        ),
        (
            "alerts on a busy mirror",
            AlertsError::Store(locked()).into(),
            Failed,
        ),
        (
            "alerts on a missing mirror",
            AlertsError::Store(setup()).into(),
            Config,
        ),
        (
            "alerts through check",
            CommandError::Alerts(AlertsError::NoRules).into(),
            Config,
        ),
        // changes
        (
            "changes --entity",
            ChangesError::UnknownEntity {
                name: "person".into(),
                known: "user, group".into(),
            }
            .into(),
            Config,
        ),
        ("changes with no pager", ChangesError::Pager.into(), Config),
        (
            "changes without a config",
            ChangesError::Config(ConfigError::NotFound).into(),
            Config,
        ),
        (
            "changes on a busy mirror",
            ChangesError::Store(locked()).into(),
            Failed,
        ),
        (
            "changes on a missing mirror",
            ChangesError::Store(setup()).into(),
            Config,
        ),
        // replicate
        (
            "no replica configured",
            ReplicaError::NotConfigured.into(),
            Config,
        ),
        (
            "a replica's bad config",
            ReplicaError::Config(ConfigError::Invalid {
                field: "replica.postgres.url",
                message: "x".into(),
            })
            .into(),
            Config,
        ),
        (
            "a replica's CA file",
            ReplicaError::CaFile {
                path: path(),
                source: io().into(),
            }
            .into(),
            Config,
        ),
        (
            "a replica's TLS",
            ReplicaError::Tls(rustls::Error::General("x".into())).into(),
            Config,
        ),
        (
            "a replica's password file",
            ReplicaError::Credential {
                path: path(),
                source: io(),
            }
            .into(),
            Config,
        ),
        (
            "a replica of a newer orgmirror",
            ReplicaError::NewerSchema {
                schema: "s".into(),
                version: 9,
            }
            .into(),
            Config,
        ),
        (
            "another mirror's replica",
            ReplicaError::Foreign {
                target: "pg".into(),
                schema: "s".into(),
                organization: 1,
                run: 2,
                replica_started_at: None,
                mirror_started_at: None,
            }
            .into(),
            Config,
        ),
        (
            "PostgreSQL away",
            ReplicaError::Connect {
                target: "pg".into(),
                message: "refused".into(),
            }
            .into(),
            Failed,
        ),
        (
            "PostgreSQL refused a statement",
            ReplicaError::Postgres {
                target: "pg".into(),
                context: "COPY".into(),
                message: "x".into(),
            }
            .into(),
            Failed,
        ),
        (
            "the replica's mirror busy",
            ReplicaError::Store(setup()).into(),
            Failed,
        ),
        (
            "rows lost in a copy",
            ReplicaError::CopiedRows {
                part: crate::store::ReplicaPart::Events,
                copied: 1,
                rows: 2,
            }
            .into(),
            Failed,
        ),
        (
            "intervals not open",
            ReplicaError::ClosedIntervals { rows: 2, closed: 1 }.into(),
            Failed,
        ),
        (
            "the mirror not open",
            ReplicaError::MirrorClosed.into(),
            Failed,
        ),
        (
            "the mirror's reader stopped",
            ReplicaError::MirrorTask {
                doing: "the reader stopped",
                source: join_error(),
            }
            .into(),
            Failed,
        ),
        (
            "another replicator",
            ReplicaError::KeptMoving.into(),
            Failed,
        ),
        (
            "a mirror that moved on during verify",
            ReplicaError::MirrorMovedOn {
                path: path(),
                at: 3,
            }
            .into(),
            Failed,
        ),
        (
            "verify before any replication",
            ReplicaError::NothingReplicated(1).into(),
            Failed,
        ),
        ("views that differ", ReplicaError::Differs(2).into(), Failed),
        (
            "erase a present member",
            EraseCommandError::Refused(EraseError::Present { user: 1 }).into(),
            Config,
        ),
        (
            "erase an unknown id",
            EraseCommandError::Refused(EraseError::Unknown { user: 1 }).into(),
            Config,
        ),
        (
            "erase with a reason naming them",
            EraseCommandError::Refused(EraseError::ReasonNamesThem).into(),
            Config,
        ),
        (
            "erase without a reason",
            EraseCommandError::NoReason.into(),
            Config,
        ),
        (
            "erase while another process writes",
            EraseCommandError::Refused(EraseError::Store(locked())).into(),
            Failed,
        ),
        (
            "erase on a damaged mirror",
            EraseCommandError::Command(setup().into()).into(),
            Config,
        ),
        (
            "erased, a reader kept the WAL",
            EraseCommandError::WalKept {
                user: 1,
                wal: path(),
            }
            .into(),
            Failed,
        ),
        (
            "erased, another row holds the e-mail",
            EraseCommandError::EmailRemains {
                user: 1,
                files: vec![path()],
            }
            .into(),
            Failed,
        ),
        (
            "asof before the retention cutoff",
            CommandError::AsOf(crate::store::AsOfError::NotKept {
                at: "2020-01-01T00:00:00Z".into(),
                kept_from: "2023-01-01T00:00:00Z".into(),
            })
            .into(),
            Config,
        ),
    ]
}

#[test]
fn each_kind_of_error_exits_with_the_status_the_readme_documents() {
    for (what, error, want) in table() {
        assert_eq!(status(&error), want, "{what}: {error}");
    }
}

/// Every variant `status` names has its row in the table: a variant added to a match
/// without a row fails here.
#[test]
fn the_table_has_a_row_for_every_variant_status_tells_apart() {
    let rows: Vec<String> = table().iter().map(|(_, e, _)| format!("{e:?}")).collect();
    let named = |variant: &str| {
        rows.iter().any(|row| {
            row.match_indices(variant).any(|(at, _)| {
                let before = row[..at].chars().next_back();
                let after = row[at + variant.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
    };
    let source = include_str!("../exit.rs");
    let source = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
    let mut missing = Vec::new();
    let mut checked = 0;
    for (at, _) in source.match_indices("::") {
        let enum_name: String = source[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let variant: String = source[at + 2..]
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect();
        let is_error = enum_name.ends_with("Error") || enum_name == "Error";
        if !is_error || !variant.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        checked += 1;
        if !named(&variant) {
            missing.push(format!("{enum_name}::{variant}"));
        }
    }
    assert!(checked > 100, "{checked} variants read from exit.rs");
    assert!(missing.is_empty(), "no row for {missing:?}");
}

#[test]
fn a_failed_run_says_its_figures_and_why_in_one_line() {
    let e = run(SyncError::Record(record()));
    assert_eq!(
        e.to_string(),
        "run 7 failed after 1.5s (4 requests, 96 requests left this hour); the mirror is unchanged: bad record user 123: field `rate`: missing"
    );
}

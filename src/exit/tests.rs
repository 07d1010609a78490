//! Every kind of error against the exit status the README documents for it.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::api::Endpoint;
use crate::config::{ConfigError, SentAs};
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
    StoreError::Setup {
        path: PathBuf::from("/var/lib/orgmirror/orgmirror.sqlite"),
        message: "the directory does not exist".into(),
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
        message: "field `rate`: missing".into(),
    }
}

#[test]
fn each_kind_of_error_exits_with_the_status_the_readme_documents() {
    use Exit::{Config, Failed, Refused};
    let table: Vec<(&str, Error, Exit)> = vec![
        ("no config file", ConfigError::NotFound.into(), Config),
        ("no credentials", ConfigError::NoCredentials.into(), Config),
        (
            "status --check cannot read the mirror",
            CommandError::Unreadable("does not exist".into()).into(),
            Config,
        ),
        (
            "a bad argument",
            CommandError::usage("--users 3").into(),
            Config,
        ),
        (
            "a failure",
            CommandError::failed("disk full").into(),
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
        (
            "the deletion guard",
            run(SyncError::Refused("8 of 10 users".into())),
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
            "no such alert rule",
            AlertsError::UnknownRule {
                name: "x".into(),
                known: vec![],
            }
            .into(),
            Config,
        ),
        (
            "alerts --since",
            AlertsError::Since("--since `y`".into()).into(),
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
            "a sample not accepted",
            AlertsError::NotAccepted {
                name: "x".into(),
                reason: "HTTP 500".into(),
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
        (
            "changes --since",
            ChangesError::Since("`yesterday`".into()).into(),
            Config,
        ),
        (
            "changes --until",
            ChangesError::Until("`soon`".into()).into(),
            Config,
        ),
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
            ChangesError::Command(ConfigError::NotFound.into()).into(),
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
        (
            "no replica configured",
            ReplicaError::NotConfigured.into(),
            Config,
        ),
        (
            "a replica's bad config",
            ReplicaError::Config("url".into()).into(),
            Config,
        ),
        (
            "another mirror's replica",
            ReplicaError::Foreign("org 1".into()).into(),
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
        ("views that differ", ReplicaError::Differs(2).into(), Failed),
        (
            "the replica's mirror busy",
            ReplicaError::Store(setup()).into(),
            Failed,
        ),
    ];
    for (what, error, want) in table {
        assert_eq!(status(&error), want, "{what}: {error}");
    }
}

#[test]
fn a_failed_run_says_its_figures_and_why_in_one_line() {
    let e = run(SyncError::Record(record()));
    assert_eq!(
        e.to_string(),
        "run 7 failed after 1.5s (4 requests, 96 requests left this hour); the mirror is unchanged: bad record user 123: field `rate`: missing"
    );
}

//! What each CLI command does, as library functions returning an [`Exit`] status.
//! `main.rs` only parses arguments and calls these.

use std::path::{Path, PathBuf};

use crate::api::Client;
use crate::config::{Config, ConfigError, Credentials};
use crate::store::{Store, StoreError, StoreOptions};
use crate::sync::{self, RunReport, SyncOptions};

/// Process exit statuses, documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// The run (or command) failed; the database is as it was.
    Failed = 1,
    /// The configuration or the command line is wrong.
    Config = 2,
    /// The deletion guard refused the run; nothing changed.
    Refused = 3,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// Why a command could not start or finish, in the layers every command goes through
/// (the config, the API, the store, a run, the alerts) and at `main`'s edge. A command's
/// own failures are its module's error type, which carries this one for the rest; which
/// exit status each means is decided in one place only, `exit::status` (beside `main`).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A run that did not commit: failed, or refused by the deletion guard.
    #[error(transparent)]
    Run(#[from] Box<sync::RunFailed>),
    #[error(transparent)]
    AsOf(#[from] crate::store::AsOfError),
    #[error(transparent)]
    Alerts(#[from] crate::alerts::AlertsError),
    /// `sync --capture DIR` cannot record into DIR.
    #[error("--capture: {0}")]
    Capture(#[source] crate::api::capture::CaptureError),
    /// `fake-api --replay DIR` cannot read the recording in DIR.
    #[error("fake-api --replay: {0}")]
    Replay(#[source] crate::api::capture::CaptureError),
    /// The fake API's server stopped (it could not listen, say).
    #[error("{0}")]
    FakeApi(Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A report that could not be written as JSON.
    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// `From` each layer's error for a command's own error type `$error`, through its
/// `Command` variant (so that `?` works on them as on a [`CommandError`]).
macro_rules! from_layers {
    ($error:ty) => {
        $crate::commands::from_layers!($error:
            $crate::config::ConfigError,
            $crate::api::ApiError,
            $crate::store::StoreError,
            Box<$crate::sync::RunFailed>,
            $crate::alerts::AlertsError
        );
    };
    ($error:ty: $($layer:ty),+) => {
        $(
            impl From<$layer> for $error {
                fn from(e: $layer) -> Self {
                    <$error>::Command(e.into())
                }
            }
        )+
    };
}
pub(crate) use from_layers;

/// Loads the config from `--config`, `$ORGMIRROR_CONFIG` or the default paths, and
/// installs logging as it says.
pub fn load_config(explicit: Option<&Path>) -> Result<(PathBuf, Config), ConfigError> {
    let path = Config::locate(explicit)?;
    let config = Config::load(&path)?;
    crate::logging::init(config.log.format, &config.log.level);
    Ok((path, config))
}

/// The client for `config`, with credentials from the environment or `api.token_file`.
pub fn client_for(config: &Config) -> Result<Client, CommandError> {
    let credentials = Credentials::load(&config.api)?;
    Ok(Client::new(&config.api, &credentials)?)
}

/// Opens the database for writing, with the alert rules every run through it queues its
/// matches by (with its events, in its commit).
pub fn open_store(config: &Config) -> Result<Store, StoreError> {
    let mut store = Store::open(
        &config.database.path,
        &StoreOptions::from_config(&config.database),
    )?;
    store.set_outbox_rules(crate::alerts::outbox_rules(config));
    store.set_retention(config.retention.history);
    Ok(store)
}

/// `orgmirror sync`.
/// With `capture`, every answer the run receives is also recorded into that directory
/// ([`crate::api::capture`]). A failed run is recorded with the exit status `exit_status`
/// gives its error (`exit`'s mapping, which this layer cannot name).
pub async fn sync(
    config_path: Option<&Path>,
    allow_mass_delete: bool,
    capture: Option<&Path>,
    exit_status: sync::ExitStatusOf,
) -> Result<Exit, CommandError> {
    let (_, config) = load_config(config_path)?;
    let mut client = client_for(&config)?;
    let recorder = match capture {
        Some(dir) => {
            let recorder =
                crate::api::capture::Recorder::to_dir(dir).map_err(CommandError::Capture)?;
            client.record_with(recorder.clone());
            Some(recorder)
        }
        None => None,
    };
    let mut store = open_store(&config)?;
    // Before the run (after the store's migrations): a missing alert secret is a config
    // error, not a lost alert.
    let alerts = crate::alerts::deliver::Deliverer::new(&config)?;
    let options = SyncOptions {
        allow_mass_delete,
        progress: true,
        prints_report: true,
        exit_status: Some(exit_status),
    };
    let report = sync::run_once(&client, &mut store, &config, &options).await?;
    print_report(&report);
    if let Some(recorder) = recorder {
        report_capture(&recorder);
    }
    drop(store);
    crate::alerts::deliver::after_commit(alerts).await;
    report.into_result()?;
    Ok(Exit::Ok)
}

/// Where the capture went, or why it stopped (the run's outcome does not depend on it).
fn report_capture(recorder: &crate::api::capture::Recorder) {
    let dir = recorder
        .dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    match recorder.failure() {
        None => crate::errln!("captured {} answers in {dir}", recorder.written()),
        Some(e) => crate::errln!(
            "the capture in {dir} is incomplete ({} answers written): {e}",
            recorder.written()
        ),
    }
}

/// One line on stdout for a committed run. A run that did not commit is its caller's
/// error ([`RunReport::into_result`]), printed once by `main`.
pub fn print_report(report: &RunReport) {
    if report.committed {
        crate::outln!(
            "run {} succeeded in {:.1}s: {} requests{}; {} events ({})",
            report.run_id,
            report.duration.as_secs_f64(),
            report.requests,
            sync::quota_left(report.quota_remaining),
            report.events_written(),
            report.events_line()
        );
    }
}

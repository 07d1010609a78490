//! What each CLI command does, as library functions returning an [`Exit`] status.
//! `main.rs` only parses arguments and calls these.

use std::path::{Path, PathBuf};

use crate::api::Client;
use crate::config::{Config, ConfigError, Credentials};
use crate::store::Store;
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

/// Why a command could not start or finish: the commands' layer, carrying the error of
/// the layer it came from. Which exit status each means is decided in one place only,
/// `exit::status` (beside `main`).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A run that did not commit: failed, or refused by the deletion guard.
    #[error(transparent)]
    Run(#[from] Box<sync::RunFailed>),
    #[error(transparent)]
    AsOf(#[from] crate::store::AsOfError),
    #[error(transparent)]
    Alerts(#[from] crate::alerts::AlertsError),
    /// What a person must fix: the command line, a file named on it, what the mirror
    /// or the organization holds that the command cannot act on.
    #[error("{0}")]
    Usage(String),
    /// A failure that may pass by itself (the network, the disk, a race upstream).
    #[error("{0}")]
    Failed(String),
    /// `status --check` could not read the mirror (missing, unreadable, not upgraded yet):
    /// what a probe reports as unknown, and a person must look at.
    #[error("cannot read the mirror: {0}")]
    Unreadable(String),
}

impl CommandError {
    /// A failure that may pass by itself.
    pub fn failed(message: impl std::fmt::Display) -> CommandError {
        CommandError::Failed(message.to_string())
    }

    /// Something a person must fix (the command line, a file, the config's meaning).
    pub fn usage(message: impl std::fmt::Display) -> CommandError {
        CommandError::Usage(message.to_string())
    }
}

/// Loads the config from `--config`, `$ORGMIRROR_CONFIG` or the default paths, and
/// installs logging as it says.
pub fn load_config(explicit: Option<&Path>) -> Result<(PathBuf, Config), CommandError> {
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

/// Opens the database for writing.
pub fn open_store(config: &Config) -> Result<Store, CommandError> {
    // Every run through this store queues its alerts with its events.
    Ok(sync::open_store(config)?)
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
            let recorder = crate::api::capture::Recorder::to_dir(dir)
                .map_err(|e| CommandError::usage(format!("--capture: {e}")))?;
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

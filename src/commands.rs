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

/// A command that could not start or finish, with the status it exits with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub exit: Exit,
    pub message: String,
}

impl CommandError {
    /// A failure (exit 1).
    pub fn failed(message: impl std::fmt::Display) -> CommandError {
        CommandError {
            exit: Exit::Failed,
            message: message.to_string(),
        }
    }
}

impl From<ConfigError> for CommandError {
    fn from(e: ConfigError) -> Self {
        CommandError {
            exit: Exit::Config,
            message: e.to_string(),
        }
    }
}

impl From<crate::store::StoreError> for CommandError {
    fn from(e: crate::store::StoreError) -> Self {
        // What a person must fix exits 2, which systemd does not restart on.
        let exit = if e.is_setup() {
            Exit::Config
        } else {
            Exit::Failed
        };
        CommandError {
            exit,
            message: e.to_string(),
        }
    }
}

impl From<crate::api::ApiError> for CommandError {
    fn from(e: crate::api::ApiError) -> Self {
        CommandError {
            exit: exit_for(&e),
            message: e.to_string(),
        }
    }
}

/// The exit status an API error means: credentials or ids the API refused are the
/// configuration's to fix (2); anything else is a failure (1).
pub fn exit_for(e: &crate::api::ApiError) -> Exit {
    match e {
        crate::api::ApiError::Auth { .. } => Exit::Config,
        _ => Exit::Failed,
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

/// The client for `config`, with credentials from the environment.
pub fn client_for(config: &Config) -> Result<Client, CommandError> {
    let credentials = Credentials::from_env()?;
    Ok(Client::new(&config.api, &credentials)?)
}

/// Opens the database for writing.
pub fn open_store(config: &Config) -> Result<Store, CommandError> {
    // Every run through this store queues its alerts with its events.
    Ok(sync::open_store(config)?)
}

/// `orgmirror sync`.
/// With `capture`, every answer the run receives is also recorded into that directory
/// ([`crate::api::capture`]).
pub async fn sync(
    config_path: Option<&Path>,
    allow_mass_delete: bool,
    capture: Option<&Path>,
) -> Result<Exit, CommandError> {
    let (_, config) = load_config(config_path)?;
    let mut client = client_for(&config)?;
    let recorder = match capture {
        Some(dir) => {
            let recorder =
                crate::api::capture::Recorder::to_dir(dir).map_err(|e| CommandError {
                    exit: Exit::Config,
                    message: format!("--capture: {e}"),
                })?;
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
    };
    let report = sync::run_once(&client, &mut store, &config, &options).await?;
    print_report(&report);
    if let Some(recorder) = recorder {
        report_capture(&recorder);
    }
    drop(store);
    crate::alerts::deliver::after_commit(alerts).await;
    Ok(exit_of(&report))
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

/// The exit status a run's report implies.
pub fn exit_of(report: &RunReport) -> Exit {
    if report.committed {
        Exit::Ok
    } else if report.refused {
        Exit::Refused
    } else if report.access_denied {
        Exit::Config
    } else {
        Exit::Failed
    }
}

/// One line on stdout for a committed run, the error on stderr for a failed one.
pub fn print_report(report: &RunReport) {
    let quota = report
        .quota_remaining
        .map(|q| format!(", {q} requests left this hour"))
        .unwrap_or_default();
    if report.committed {
        crate::outln!(
            "run {} succeeded in {:.1}s: {} requests{quota}; {} events ({})",
            report.run_id,
            report.duration.as_secs_f64(),
            report.requests,
            report.events_written(),
            report.events_line()
        );
    } else {
        crate::errln!(
            "run {} failed after {:.1}s ({} requests{quota}); the mirror is unchanged: {}",
            report.run_id,
            report.duration.as_secs_f64(),
            report.requests,
            report.error.as_deref().unwrap_or("unknown error")
        );
    }
}

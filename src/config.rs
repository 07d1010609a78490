//! The configuration tree: defaults, the TOML file, validation, and credentials.
//!
//! Order of precedence: built-in defaults, then the file; validation errors name the
//! field (`api.per_page`), unknown keys are rejected by serde with the key's name.
//! Credentials never come from the file (see [`Credentials::load`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod alerts;
mod credentials;
pub mod replica;
mod retention;
mod seconds;
#[cfg(test)]
mod tests;
mod validate;

pub use alerts::AlertRule;
pub use credentials::{BadCredentials, Credentials, SentAs};
pub use replica::{PostgresReplicaConfig, ReplicaConfig};
pub use retention::{HistoryPeriod, RetentionConfig};
pub use seconds::{Days, Seconds};
pub use validate::{next_run, validate_base_url};

/// Where the config is looked for when `--config` is not given, after `$ORGMIRROR_CONFIG`.
pub const DEFAULT_CONFIG_PATHS: &[&str] = &["./orgmirror.toml", "/etc/orgmirror/orgmirror.toml"];

/// Everything the file can say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub api: ApiConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// `[[alert]]` rules (see `crate::alerts`).
    #[serde(default)]
    pub alert: Vec<AlertRule>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub replica: ReplicaConfig,
    /// `[retention]`: how long ended history is kept (forever unless set).
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// `[metrics]`: the Prometheus endpoint of `orgmirror run`; off unless `listen` is written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` for `/metrics` and `/healthz`, e.g. `127.0.0.1:9464`.
    pub listen: Option<String>,
}

/// `[api]`: where the upstream is and how to talk to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub base_url: String,
    pub organization_id: i64,
    /// Sent where the API asks for one for its permission check (teams, delete group).
    pub workspace_id: i64,
    /// Asked for; never relied upon. A size the API refuses is adapted to (and remembered).
    pub per_page: u32,
    pub auth_scheme: AuthScheme,
    /// Requests sent per second at most, retries included (0 = no pacing).
    pub max_requests_per_second: f64,
    pub connect_timeout: Seconds,
    /// For one whole request, body included.
    pub request_timeout: Seconds,
    /// Attempts per request for connection errors, timeouts, 5xx and 429.
    pub max_attempts: u32,
    pub initial_backoff: Seconds,
    pub max_backoff: Seconds,
    /// The longest a run may spend waiting out retries (not quota) in total.
    pub max_retry_time: Seconds,
    /// The longest a run may wait in total for the request quota to reset.
    pub max_quota_wait: Seconds,
    /// A response body larger than this fails the request.
    pub max_body_bytes: u64,
    /// A paged pull that needs more pages than this is treated as a server that never ends.
    pub max_pages: u32,
    /// Requests per hour the account may make; unset: learnt from the `X-Toggl-Quota-*`
    /// headers (for `schedule.cron = "auto"`).
    pub hourly_quota: Option<u32>,
    /// A file holding the API key, read at every run (a key replaced in it is used without
    /// a restart); `TOGGL_API_TOKEN` wins over it. Relative to the config file's directory.
    pub token_file: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            base_url: "https://focus.toggl.com/api".to_string(),
            organization_id: 0,
            workspace_id: 0,
            per_page: 100,
            auth_scheme: AuthScheme::Auto,
            max_requests_per_second: 1.0,
            connect_timeout: Seconds(10.0),
            request_timeout: Seconds(120.0),
            max_attempts: 5,
            initial_backoff: Seconds(1.0),
            max_backoff: Seconds(60.0),
            max_retry_time: Seconds(600.0),
            max_quota_wait: Seconds(3900.0),
            max_body_bytes: 64 * 1024 * 1024,
            max_pages: 10_000,
            hourly_quota: None,
            token_file: None,
        }
    }
}

/// How the credentials are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    /// A Focus API key (`toggl_sk_…`) as Bearer, any other token as Basic
    /// `<token>:api_token`, e-mail and password as Basic.
    Auto,
    /// `Authorization: Basic` with `<email>:<password>` (as the seed shows) or `<token>:api_token`
    /// (Toggl's convention for API tokens, as the interface promises).
    Basic,
    /// `Authorization: Bearer <token>`.
    Bearer,
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub path: PathBuf,
    /// 0640 instead of 0600, so BI users in the service's group can read the files.
    pub group_readable: bool,
    pub busy_timeout: Seconds,
    /// The `-wal` file is truncated to this after a checkpoint.
    pub journal_size_limit: u64,
    /// `status` warns when the `-wal` file is larger than this.
    pub wal_warn_bytes: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: PathBuf::from("/var/lib/orgmirror/org.sqlite"),
            group_readable: false,
            busy_timeout: Seconds(10.0),
            journal_size_limit: 64 * 1024 * 1024,
            wal_warn_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The `schedule.cron` value that picks the interval from the quota (`crate::cadence`).
pub const AUTO_CRON: &str = "auto";

/// `[schedule]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Six fields, seconds first, UTC.
    pub cron: String,
    /// Sync once as soon as the daemon starts.
    pub run_at_start: bool,
    /// How long a stop waits for a run in progress before abandoning it.
    pub shutdown_timeout: Seconds,
    /// With `cron = "auto"`: the share of the hourly quota left to the user's other tools.
    pub quota_share: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            cron: "0 */30 * * * *".to_string(),
            run_at_start: true,
            shutdown_timeout: Seconds(30.0),
            quota_share: 0.5,
        }
    }
}

/// `[sync]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    pub include_rates: bool,
    pub include_working_hours: bool,
    /// Refuse a run that would remove more than this share of users or of groups.
    pub max_delete_fraction: f64,
    /// Mirror the custom field values of this workspace's members (one more paged pull of
    /// them per run); `None` (the default): custom fields are not read.
    pub custom_fields_workspace_id: Option<i64>,
    /// Mirror the organization's audit log: who made each change, and when.
    pub audit_log: bool,
    /// How far back the first run reaches into the audit log (fetched over the runs
    /// that follow, newest first).
    pub audit_log_backfill: Days,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            include_rates: true,
            include_working_hours: true,
            max_delete_fraction: 0.5,
            custom_fields_workspace_id: None,
            audit_log: true,
            audit_log_backfill: Days(90),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter; `RUST_LOG` wins over it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

/// Human lines or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A config that could not be used; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no config file: pass --config PATH, set ORGMIRROR_CONFIG, or create ./orgmirror.toml or /etc/orgmirror/orgmirror.toml")]
    NotFound,
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("invalid config: [[alert]] {rule:?}: {key}: {message}")]
    InvalidAlert {
        rule: String,
        key: &'static str,
        message: String,
    },
    #[error("no credentials: set TOGGL_API_TOKEN, or TOGGL_EMAIL and TOGGL_PASSWORD, or provide $CREDENTIALS_DIRECTORY/toggl_api_token (systemd LoadCredential=)")]
    NoCredentials,
    #[error("cannot read credential {path}: {source}")]
    Credential {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid credentials: {0}")]
    BadCredentials(#[from] BadCredentials),
    /// A key file that holds no usable key (never its contents).
    #[error("credential file {path}: {problem}")]
    CredentialFile {
        path: PathBuf,
        problem: &'static str,
    },
}

impl Config {
    /// Finds the file: the explicit path, `$ORGMIRROR_CONFIG`, then [`DEFAULT_CONFIG_PATHS`].
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        if let Some(p) = std::env::var_os("ORGMIRROR_CONFIG").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(p));
        }
        DEFAULT_CONFIG_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or(ConfigError::NotFound)
    }

    /// Reads, parses and validates the file at `path`. Relative paths in it are relative
    /// to the file's directory, not to the working directory: the same config names the
    /// same mirror from wherever it is run.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        let dir = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        if config.database.path.is_relative() {
            config.database.path = dir.join(&config.database.path);
        }
        if let Some(file) = config.api.token_file.as_mut().filter(|f| f.is_relative()) {
            *file = dir.join(&*file);
        }
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }
}

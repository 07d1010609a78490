//! The configuration tree: defaults, the TOML file, validation, and credentials.
//!
//! Order of precedence: built-in defaults, then the file; validation errors name the
//! field (`api.per_page`), unknown keys are rejected by serde with the key's name.
//! Credentials never come from the file (see [`Credentials::from_env`]).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub mod alerts;
pub mod replica;

pub use alerts::AlertRule;
pub use replica::{PostgresReplicaConfig, ReplicaConfig};

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
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            include_rates: true,
            include_working_hours: true,
            max_delete_fraction: 0.5,
            custom_fields_workspace_id: None,
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

/// A duration in the file: a number of seconds (`30`, `0.5`) or a string with a unit
/// (`"500ms"`, `"30s"`, `"5m"`, `"1h"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub f64);

/// The longest duration a config key takes: a year and a day.
const MAX_DURATION_SECS: f64 = 366.0 * 24.0 * 3600.0;

impl Seconds {
    /// As a `Duration` (the file's values are checked to fit; a value built in code that
    /// does not saturates).
    pub fn duration(self) -> Duration {
        Duration::try_from_secs_f64(self.0.max(0.0)).unwrap_or(Duration::MAX)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: a number of seconds or a string such as \"30s\", \"5m\", \"500ms\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<f64, E> {
                parse_duration(v).map_err(E::custom)
            }
        }
        let secs = d.deserialize_any(Visitor)?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(serde::de::Error::custom(format!(
                "a duration must be a non-negative number of seconds, not {secs}"
            )));
        }
        if secs > MAX_DURATION_SECS {
            return Err(serde::de::Error::custom(format!(
                "a duration must be at most 366 days ({MAX_DURATION_SECS} s), not {secs} s"
            )));
        }
        Ok(Seconds(secs))
    }
}

/// Parses `"500ms"`, `"30s"`, `"5m"`, `"1h"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try \"30s\", \"5m\", \"500ms\")"))?;
    let factor = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}` (use ms, s, m or h)"
            ))
        }
    };
    Ok(n * factor)
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
    BadCredentials(String),
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

    /// Checks every field that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                field,
                message: message.into(),
            }
        }
        validate_base_url(&self.api.base_url).map_err(|m| invalid("api.base_url", m))?;
        if self.api.organization_id <= 0 {
            return Err(invalid(
                "api.organization_id",
                "must be set to the organization's id (a positive integer)",
            ));
        }
        if self.api.workspace_id <= 0 {
            return Err(invalid(
                "api.workspace_id",
                "must be set to a workspace id of the organization (the teams endpoint needs it for its permission check)",
            ));
        }
        if !(1..=1000).contains(&self.api.per_page) {
            return Err(invalid(
                "api.per_page",
                format!("must be between 1 and 1000, not {}", self.api.per_page),
            ));
        }
        let rate = self.api.max_requests_per_second;
        if !rate.is_finite() || !(0.0..=1000.0).contains(&rate) || (rate > 0.0 && rate < 0.001) {
            return Err(invalid(
                "api.max_requests_per_second",
                format!("must be 0 (no pacing) or between 0.001 and 1000, not {rate}"),
            ));
        }
        if self.api.max_attempts == 0 {
            return Err(invalid("api.max_attempts", "must be at least 1"));
        }
        if self.api.request_timeout.0 <= 0.0 {
            return Err(invalid("api.request_timeout", "must be greater than zero"));
        }
        if self.api.connect_timeout.0 <= 0.0 {
            return Err(invalid("api.connect_timeout", "must be greater than zero"));
        }
        if self.api.max_body_bytes < 1024 {
            return Err(invalid("api.max_body_bytes", "must be at least 1024"));
        }
        if self.api.max_pages == 0 {
            return Err(invalid("api.max_pages", "must be at least 1"));
        }
        if self.database.path.as_os_str().is_empty() {
            return Err(invalid("database.path", "must not be empty"));
        }
        if self
            .api
            .token_file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            return Err(invalid(
                "api.token_file",
                "must be a file's path (or left out)",
            ));
        }
        // SQLite takes it in milliseconds, as a 32-bit int.
        if self.database.busy_timeout.0 * 1000.0 > f64::from(i32::MAX) {
            return Err(invalid(
                "database.busy_timeout",
                format!(
                    "must be at most 24 days (\"576h\"), not {} s",
                    self.database.busy_timeout.0
                ),
            ));
        }
        let f = self.sync.max_delete_fraction;
        if !(0.0..=1.0).contains(&f) {
            return Err(invalid(
                "sync.max_delete_fraction",
                format!("must be between 0 and 1, not {f}"),
            ));
        }
        if let Some(id) = self.sync.custom_fields_workspace_id.filter(|id| *id < 1) {
            return Err(invalid(
                "sync.custom_fields_workspace_id",
                format!("must be a workspace id (at least 1), not {id}; leave it out to not mirror custom fields"),
            ));
        }
        if self.schedule.cron != AUTO_CRON {
            validate_cron(&self.schedule.cron).map_err(|m| invalid("schedule.cron", m))?;
        }
        let share = self.schedule.quota_share;
        if !(0.0..1.0).contains(&share) {
            return Err(invalid(
                "schedule.quota_share",
                format!("must be at least 0 and less than 1, not {share}"),
            ));
        }
        if self.api.hourly_quota == Some(0) {
            return Err(invalid("api.hourly_quota", "must be at least 1"));
        }
        if let Some(listen) = &self.metrics.listen {
            listen.parse::<std::net::SocketAddr>().map_err(|_| {
                invalid(
                    "metrics.listen",
                    format!("`{listen}` is not an address and port (e.g. \"127.0.0.1:9464\")"),
                )
            })?;
        }
        alerts::validate_rules(&self.alert)?;
        if let Some(pg) = &self.replica.postgres {
            replica::validate(pg).map_err(|(field, m)| invalid(field, m))?;
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level",
                format!(
                    "`{}` is not a log filter (try \"info\" or \"orgmirror=debug\")",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }
}

/// `https://…`, or `http://…` only when the host is loopback.
pub fn validate_base_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                None => false,
            };
            if !loopback {
                return Err(format!(
                    "`{text}` uses plain http to a remote host; credentials would travel in clear text. Use https (plain http is allowed only for loopback hosts)"
                ));
            }
        }
        other => return Err(format!("`{text}` has scheme `{other}`; use https")),
    }
    if url.host().is_none() {
        return Err(format!("`{text}` has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{text}` must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials must not be written in the URL; use TOGGL_API_TOKEN".to_string());
    }
    Ok(url)
}

/// Six whitespace-separated fields, seconds first (what tokio-cron-scheduler parses).
pub fn validate_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "`{expr}` has {fields} fields; six are needed, seconds first (e.g. \"0 */30 * * * *\")"
        ));
    }
    croner_check(expr)
}

fn croner_check(expr: &str) -> Result<(), String> {
    tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| format!("`{expr}` is not a valid cron expression: {e}"))?;
    // A schedule that never fires ("0 0 0 31 2 *") would leave the daemon idle for good.
    next_run(expr, Utc::now()).map(|_| ())
}

/// The first time after `after` that `cron` (six fields, seconds first, UTC) fires;
/// the same parser settings as the scheduler's.
pub fn next_run(cron: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let parsed = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(cron)
        .map_err(|e| format!("`{cron}` is not a valid cron expression: {e}"))?;
    parsed
        .find_next_occurrence(&after, false)
        .map_err(|e| format!("`{cron}` never fires after {after}: {e}"))
}

/// The API credentials; never printed, never logged.
#[derive(Clone)]
pub enum Credentials {
    /// `TOGGL_API_TOKEN` or the systemd credential.
    Token(SecretString),
    /// `TOGGL_EMAIL` + `TOGGL_PASSWORD`.
    Login {
        email: String,
        password: SecretString,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token([redacted])"),
            Credentials::Login { .. } => f.write_str("Credentials::Login([redacted])"),
        }
    }
}

impl Credentials {
    /// From the process environment and `api.token_file`, in the documented order of
    /// precedence. Read afresh at every call: a run reads the key as it is now.
    pub fn load(api: &ApiConfig) -> Result<Credentials, ConfigError> {
        Credentials::from_lookup(|k| std::env::var(k).ok(), api.token_file.as_deref())
    }

    /// The same, reading variables through `var` (testable without touching the
    /// environment): `TOGGL_API_TOKEN`, then `token_file`, then `TOGGL_EMAIL` and
    /// `TOGGL_PASSWORD`, then `$CREDENTIALS_DIRECTORY/toggl_api_token`.
    pub fn from_lookup(
        var: impl Fn(&str) -> Option<String>,
        token_file: Option<&Path>,
    ) -> Result<Credentials, ConfigError> {
        let nonempty = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        if let Some(token) = nonempty("TOGGL_API_TOKEN") {
            return Credentials::token(token);
        }
        if let Some(path) = token_file {
            return Credentials::token_in(path);
        }
        match (nonempty("TOGGL_EMAIL"), nonempty("TOGGL_PASSWORD")) {
            (Some(email), Some(password)) => {
                if email.contains(':') {
                    return Err(ConfigError::BadCredentials(
                        "TOGGL_EMAIL must not contain ':'".into(),
                    ));
                }
                return Ok(Credentials::Login {
                    email: email.trim().to_string(),
                    password: SecretString::from(password),
                });
            }
            (Some(_), None) => {
                return Err(ConfigError::BadCredentials(
                    "TOGGL_EMAIL is set but TOGGL_PASSWORD is not".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::BadCredentials(
                    "TOGGL_PASSWORD is set but TOGGL_EMAIL is not".into(),
                ))
            }
            (None, None) => {}
        }
        if let Some(dir) = nonempty("CREDENTIALS_DIRECTORY") {
            let path = Path::new(&dir).join("toggl_api_token");
            if path.exists() {
                return Credentials::token_in(&path);
            }
        }
        Err(ConfigError::NoCredentials)
    }

    /// The key in a file (surrounding whitespace ignored); an error names the file, never
    /// what it holds.
    fn token_in(path: &Path) -> Result<Credentials, ConfigError> {
        let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::Credential {
            path: path.to_path_buf(),
            source,
        })?;
        let token = raw.trim();
        let problem = if token.is_empty() {
            Some("it is empty; write the API key in it")
        } else if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            Some("it holds more than one word; write only the API key in it")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(ConfigError::CredentialFile {
                path: path.to_path_buf(),
                problem,
            }),
            None => Ok(Credentials::Token(SecretString::from(token.to_string()))),
        }
    }

    fn token(raw: String) -> Result<Credentials, ConfigError> {
        let token = raw.trim();
        if token.is_empty() || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ConfigError::BadCredentials(
                "the API token is empty or contains whitespace or control characters".into(),
            ));
        }
        Ok(Credentials::Token(SecretString::from(token.to_string())))
    }

    /// How these credentials go out under `scheme` (`auto` resolved).
    pub fn sent_as(&self, scheme: AuthScheme) -> SentAs {
        match (self, scheme) {
            (Credentials::Login { .. }, _) => SentAs::BasicLogin,
            (Credentials::Token(_), AuthScheme::Bearer) => SentAs::Bearer,
            (Credentials::Token(_), AuthScheme::Basic) => SentAs::BasicToken,
            (Credentials::Token(t), AuthScheme::Auto) => {
                if t.expose_secret().starts_with(FOCUS_KEY_PREFIX) {
                    SentAs::Bearer
                } else {
                    SentAs::BasicToken
                }
            }
        }
    }

    /// Whether the token looks like a Focus API key (`toggl_sk_…`).
    pub fn is_focus_key(&self) -> bool {
        matches!(self, Credentials::Token(t) if t.expose_secret().starts_with(FOCUS_KEY_PREFIX))
    }

    /// The `Authorization` header value for `scheme`.
    pub fn authorization(&self, scheme: AuthScheme) -> SecretString {
        use base64::Engine as _;
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let value = match (self, self.sent_as(scheme)) {
            (Credentials::Token(t), SentAs::Bearer) => format!("Bearer {}", t.expose_secret()),
            (Credentials::Token(t), _) => {
                format!(
                    "Basic {}",
                    encode(&format!("{}:api_token", t.expose_secret()))
                )
            }
            (Credentials::Login { email, password }, _) => {
                format!(
                    "Basic {}",
                    encode(&format!("{email}:{}", password.expose_secret()))
                )
            }
        };
        SecretString::from(value)
    }
}

/// How a Focus API key starts.
pub const FOCUS_KEY_PREFIX: &str = "toggl_sk_";

/// How the credentials went out, for messages about a refusal (never the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentAs {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `Authorization: Basic <token>:api_token`.
    BasicToken,
    /// `Authorization: Basic <email>:<password>`.
    BasicLogin,
}

impl fmt::Display for SentAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SentAs::Bearer => "Bearer",
            SentAs::BasicToken => "Basic <token>:api_token",
            SentAs::BasicLogin => "Basic e-mail:password",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[api]\norganization_id = 1\nworkspace_id = 2\n";

    #[test]
    fn example_config_parses() {
        let text = include_str!("../config/orgmirror.example.toml");
        let c = Config::parse(text).expect("example config parses");
        assert_eq!(c.api.per_page, 100);
        assert_eq!(c.api.auth_scheme, AuthScheme::Auto);
        assert_eq!(c.api.max_requests_per_second, 1.0);
        assert_eq!(c.schedule.cron, "0 */30 * * * *");
        // Every value it shows is the default (the README says it lists every key with its
        // default), but the ids, which have none.
        let defaults =
            Config::parse("[api]\norganization_id = 4242\nworkspace_id = 900\n").expect("parses");
        assert_eq!(format!("{c:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn defaults_fill_everything_but_the_ids() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.api.base_url, "https://focus.toggl.com/api");
        assert!(c.sync.include_rates);
        assert_eq!(c.sync.max_delete_fraction, 0.5);
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse(&format!("{MINIMAL}per_pages = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("per_pages"), "{err}");
        let err = Config::parse(&format!("{MINIMAL}[sync]\nmax_delete = 0.2\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_delete"), "{err}");
    }

    #[test]
    fn invalid_fields_are_named() {
        let cases = [
            ("[api]\norganization_id = 1\nworkspace_id = 2\nbase_url = \"http://focus.example.com/api\"\n", "api.base_url"),
            ("[api]\norganization_id = 0\nworkspace_id = 2\n", "api.organization_id"),
            ("[api]\norganization_id = 1\n", "api.workspace_id"),
            ("[api]\norganization_id = 1\nworkspace_id = 2\nper_page = 0\n", "api.per_page"),
            (&format!("{MINIMAL}[sync]\nmax_delete_fraction = 1.5\n"), "sync.max_delete_fraction"),
            (&format!("{MINIMAL}[sync]\ncustom_fields_workspace_id = 0\n"), "sync.custom_fields_workspace_id"),
            (&format!("{MINIMAL}[schedule]\ncron = \"*/5 * * * *\"\n"), "schedule.cron"),
            (&format!("{MINIMAL}[log]\nlevel = \"=[\"\n"), "log.level"),
            (&format!("{MINIMAL}[database]\nbusy_timeout = \"600h\"\n"), "database.busy_timeout"),
            // February 31st: a valid expression that never fires.
            (&format!("{MINIMAL}[schedule]\ncron = \"0 0 0 31 2 *\"\n"), "schedule.cron"),
            (&format!("{MINIMAL}[schedule]\nquota_share = 1\n"), "schedule.quota_share"),
            (&format!("{MINIMAL}hourly_quota = 0\n"), "api.hourly_quota"),
            (&format!("{MINIMAL}[metrics]\nlisten = \"localhost\"\n"), "metrics.listen"),
        ];
        for (text, field) in cases {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback() {
        assert!(validate_base_url("http://127.0.0.1:8080/api").is_ok());
        assert!(validate_base_url("http://localhost/api").is_ok());
        assert!(validate_base_url("http://[::1]:9/api").is_ok());
        assert!(validate_base_url("http://10.0.0.1/api").is_err());
        assert!(validate_base_url("ftp://example.com").is_err());
        assert!(validate_base_url("https://user:pw@example.com").is_err());
    }

    #[test]
    fn durations_too_long_for_any_timer_are_refused_where_they_are_written() {
        for (key, value) in [
            ("request_timeout", "1e20"),
            ("max_quota_wait", "\"99999999999999999999h\""),
            ("initial_backoff", "31622401"),
        ] {
            let err = Config::parse(&format!("{MINIMAL}{key} = {value}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(key) && err.contains("at most 366 days"),
                "{err}"
            );
        }
        let c = Config::parse(&format!("{MINIMAL}max_quota_wait = \"366d\"\n"));
        assert!(c.is_err(), "no day unit");
        assert!(Config::parse(&format!("{MINIMAL}max_quota_wait = \"8784h\"\n")).is_ok());
        assert_eq!(Seconds(f64::MAX).duration(), Duration::MAX);
        let err = Config::parse(&format!("{MINIMAL}request_timeout = true\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("request_timeout") && err.contains("\"30s\""),
            "{err}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), 0.5);
        assert_eq!(parse_duration("5m").unwrap(), 300.0);
        assert_eq!(parse_duration("2").unwrap(), 2.0);
        assert!(parse_duration("5 weeks").is_err());
    }

    #[test]
    fn credentials_precedence_and_headers() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Credentials::from_lookup(
            env(&[("TOGGL_API_TOKEN", "tok"), ("TOGGL_EMAIL", "a@b")]),
            None,
        )
        .unwrap();
        assert_eq!(
            c.authorization(AuthScheme::Basic).expose_secret(),
            "Basic dG9rOmFwaV90b2tlbg=="
        );
        assert_eq!(
            c.authorization(AuthScheme::Bearer).expose_secret(),
            "Bearer tok"
        );
        // auto: an older token as Basic, a Focus key as Bearer, a login as Basic.
        assert_eq!(
            c.authorization(AuthScheme::Auto).expose_secret(),
            "Basic dG9rOmFwaV90b2tlbg=="
        );
        let key =
            Credentials::from_lookup(env(&[("TOGGL_API_TOKEN", "toggl_sk_abc")]), None).unwrap();
        assert_eq!(
            key.authorization(AuthScheme::Auto).expose_secret(),
            "Bearer toggl_sk_abc"
        );
        assert_eq!(key.sent_as(AuthScheme::Basic), SentAs::BasicToken);
        let c = Credentials::from_lookup(
            env(&[("TOGGL_EMAIL", "a@b.c"), ("TOGGL_PASSWORD", "pw")]),
            None,
        )
        .unwrap();
        assert_eq!(
            c.authorization(AuthScheme::Basic).expose_secret(),
            "Basic YUBiLmM6cHc="
        );
        assert_eq!(
            c.authorization(AuthScheme::Auto).expose_secret(),
            "Basic YUBiLmM6cHc="
        );
        assert!(matches!(
            Credentials::from_lookup(env(&[("TOGGL_EMAIL", "a@b.c")]), None),
            Err(ConfigError::BadCredentials(_))
        ));
        assert!(matches!(
            Credentials::from_lookup(env(&[]), None),
            Err(ConfigError::NoCredentials)
        ));
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn credentials_from_systemd_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("toggl_api_token"), "secret-token\n").unwrap();
        let d = dir.path().to_string_lossy().to_string();
        let c = Credentials::from_lookup(
            move |k| (k == "CREDENTIALS_DIRECTORY").then(|| d.clone()),
            None,
        )
        .unwrap();
        assert_eq!(
            c.authorization(AuthScheme::Bearer).expose_secret(),
            "Bearer secret-token"
        );
    }

    #[test]
    fn a_token_file_is_read_at_each_call_after_the_environments_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        let systemd = dir.path().join("creds");
        std::fs::create_dir(&systemd).unwrap();
        std::fs::write(systemd.join("toggl_api_token"), "from-systemd").unwrap();
        let systemd = systemd.to_string_lossy().to_string();
        let env = |pairs: Vec<(&'static str, String)>| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let bearer = |c: Result<Credentials, ConfigError>| {
            c.map(|c| {
                c.authorization(AuthScheme::Bearer)
                    .expose_secret()
                    .to_string()
            })
        };
        std::fs::write(&file, "toggl_sk_first\n").unwrap();
        let login = vec![
            ("TOGGL_EMAIL", "a@b.c".to_string()),
            ("TOGGL_PASSWORD", "pw".to_string()),
            ("CREDENTIALS_DIRECTORY", systemd.clone()),
        ];
        // The file wins over a login and over the systemd credential…
        assert_eq!(
            bearer(Credentials::from_lookup(env(login.clone()), Some(&file))).unwrap(),
            "Bearer toggl_sk_first"
        );
        // …and is read again at every call: a replaced key is the one used.
        std::fs::write(&file, "toggl_sk_second").unwrap();
        assert_eq!(
            bearer(Credentials::from_lookup(env(login), Some(&file))).unwrap(),
            "Bearer toggl_sk_second"
        );
        // TOGGL_API_TOKEN wins over it.
        let token = vec![("TOGGL_API_TOKEN", "from-env".to_string())];
        assert_eq!(
            bearer(Credentials::from_lookup(env(token), Some(&file))).unwrap(),
            "Bearer from-env"
        );
        // A missing, empty or many-worded file is an error naming the file, never its text.
        let missing = dir.path().join("absent");
        let cases: [(&Path, &str, &str); 3] = [
            (&missing, "", "cannot read credential"),
            (&file, " \n", "it is empty"),
            (&file, "toggl_sk_secret more", "more than one word"),
        ];
        for (path, content, says) in cases {
            if path == file.as_path() {
                std::fs::write(path, content).unwrap();
            }
            let e = Credentials::from_lookup(env(vec![]), Some(path)).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains(says) && text.contains(&path.display().to_string()),
                "{text}"
            );
            assert!(!text.contains("secret"), "{text}");
        }
    }

    #[test]
    fn a_relative_token_file_is_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("orgmirror.toml");
        std::fs::write(&config, format!("{MINIMAL}token_file = \"keys/toggl\"\n")).unwrap();
        let loaded = Config::load(&config).unwrap();
        let dir = std::path::absolute(dir.path()).unwrap();
        assert_eq!(loaded.api.token_file, Some(dir.join("keys/toggl")));
        let empty = format!("{MINIMAL}token_file = \"\"\n");
        assert!(Config::parse(&empty)
            .unwrap_err()
            .to_string()
            .contains("api.token_file"));
    }

    #[test]
    fn every_duration_unit_and_what_is_not_a_duration() {
        let seconds = [
            ("500ms", 0.5),
            (" 30s ", 30.0),
            ("1.5h", 5400.0),
            ("5min", 300.0),
            ("5 m", 300.0),
            ("2", 2.0),
            ("0.25", 0.25),
        ];
        for (text, want) in seconds {
            assert_eq!(parse_duration(text), Ok(want), "{text:?}");
        }
        let refused = [
            ("", "`` is not a duration"),
            ("ms", "`ms` is not a duration"),
            ("-5s", "`-5s` is not a duration"),
            ("1.2.3s", "`1.2.3s` is not a duration"),
            (
                "5 weeks",
                "unknown duration unit `weeks` in `5 weeks` (use ms, s, m or h)",
            ),
            ("366d", "unknown duration unit `d`"),
        ];
        for (text, words) in refused {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(words), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_base_url_is_https_or_loopback_http_with_nothing_secret_or_extra() {
        let accepted = [
            "https://focus.toggl.com/api",
            "http://127.0.0.1:8080/api",
            "http://127.8.9.1/api",
            "http://LocalHost/api",
            "http://[::1]:9/api",
        ];
        for url in accepted {
            assert!(
                validate_base_url(url).is_ok(),
                "{url}: {:?}",
                validate_base_url(url)
            );
        }
        let remote = "uses plain http to a remote host";
        let refused = [
            ("http://10.0.0.1/api", remote),
            ("http://localhost.example.com/api", remote),
            ("http://[::2]/api", remote),
            ("ftp://example.com", "has scheme `ftp`; use https"),
            ("focus.toggl.com/api", "is not a URL"),
            (
                "https://user:pw@example.com",
                "credentials must not be written in the URL",
            ),
            (
                "https://token@example.com",
                "credentials must not be written in the URL",
            ),
            (
                "https://example.com/api?x=1",
                "must not have a query or fragment",
            ),
            (
                "https://example.com/api#top",
                "must not have a query or fragment",
            ),
        ];
        for (url, words) in refused {
            let err = validate_base_url(url).unwrap_err();
            assert!(err.contains(words), "{url}: {err}");
        }
    }
}

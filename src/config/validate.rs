//! What serde cannot check of the config: ranges, URLs, schedules, the rules' and the
//! replica's keys. Every error names its field.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::{alerts, replica, Config, ConfigError, AUTO_CRON};

impl Config {
    /// Checks every field that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                field,
                message: message.into(),
            }
        }
        validate_base_url(&self.api.base_url)
            .map_err(|e| invalid("api.base_url", e.to_string()))?;
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
            validate_cron(&self.schedule.cron)
                .map_err(|e| invalid("schedule.cron", e.to_string()))?;
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
            replica::validate(pg)?;
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

/// Why a URL is refused as `api.base_url` or a webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    #[error("`{text}` is not a URL: {source}")]
    NotAUrl {
        text: String,
        source: url::ParseError,
    },
    #[error("`{0}` uses plain http to a remote host; credentials would travel in clear text. Use https (plain http is allowed only for loopback hosts)")]
    PlainHttp(String),
    #[error("`{text}` has scheme `{scheme}`; use https")]
    Scheme { text: String, scheme: String },
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("`{0}` must not have a query or fragment")]
    QueryOrFragment(String),
    #[error("credentials must not be written in the URL; use TOGGL_API_TOKEN")]
    Credentials,
}

/// `https://…`, or `http://…` only when the host is loopback.
pub fn validate_base_url(text: &str) -> Result<url::Url, BaseUrlError> {
    let url = url::Url::parse(text).map_err(|source| BaseUrlError::NotAUrl {
        text: text.to_string(),
        source,
    })?;
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
                return Err(BaseUrlError::PlainHttp(text.to_string()));
            }
        }
        other => {
            return Err(BaseUrlError::Scheme {
                text: text.to_string(),
                scheme: other.to_string(),
            })
        }
    }
    if url.host().is_none() {
        return Err(BaseUrlError::NoHost(text.to_string()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(BaseUrlError::QueryOrFragment(text.to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BaseUrlError::Credentials);
    }
    Ok(url)
}

/// Why a text is not a schedule.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    #[error(
        "`{cron}` has {fields} fields; six are needed, seconds first (e.g. \"0 */30 * * * *\")"
    )]
    Fields { cron: String, fields: usize },
    /// The scheduler's parser refuses it.
    #[error("`{cron}` is not a valid cron expression: {source}")]
    Scheduler {
        cron: String,
        source: tokio_cron_scheduler::JobSchedulerError,
    },
    #[error("`{cron}` is not a valid cron expression: {source}")]
    Invalid {
        cron: String,
        source: croner::errors::CronError,
    },
    /// A schedule that never fires ("0 0 0 31 2 *") would leave the daemon idle for good.
    #[error("`{cron}` never fires after {after}: {source}")]
    NeverFires {
        cron: String,
        after: DateTime<Utc>,
        source: croner::errors::CronError,
    },
}

/// Six whitespace-separated fields, seconds first (what tokio-cron-scheduler parses), that
/// fire at least once.
pub fn validate_cron(cron: &str) -> Result<(), CronError> {
    let fields = cron.split_whitespace().count();
    if fields != 6 {
        return Err(CronError::Fields {
            cron: cron.to_string(),
            fields,
        });
    }
    tokio_cron_scheduler::Job::new_async(cron, |_, _| Box::pin(async {})).map_err(|source| {
        CronError::Scheduler {
            cron: cron.to_string(),
            source,
        }
    })?;
    next_run(cron, Utc::now()).map(drop)
}

/// The first time after `after` that `cron` (six fields, seconds first, UTC) fires;
/// the same parser settings as the scheduler's.
pub fn next_run(cron: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, CronError> {
    let parsed = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(cron)
        .map_err(|source| CronError::Invalid {
            cron: cron.to_string(),
            source,
        })?;
    parsed
        .find_next_occurrence(&after, false)
        .map_err(|source| CronError::NeverFires {
            cron: cron.to_string(),
            after,
            source,
        })
}

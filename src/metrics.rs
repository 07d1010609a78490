//! `[metrics] listen`: `/metrics` (Prometheus text format, or OpenMetrics when the request's
//! `Accept` asks for it) and `/healthz` for `orgmirror run`. Every figure is read from the
//! database at scrape time, so the counters are the mirror's own history: they survive
//! restarts and move only with runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

use crate::config::{next_run, Config};
use crate::store::{ScrapeFigures, Store, StoreError};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What one scrape reports.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub db: ScrapeFigures,
    pub database_bytes: u64,
    pub wal_bytes: u64,
}

struct Server {
    config: Config,
}

/// Why `/metrics` cannot be served (the daemon does not start).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid config: metrics.listen: `{listen}` is not an address and port")]
    NotAnAddress { listen: String },
    #[error("metrics.listen: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Why one scrape found no figures (a 503).
#[derive(Debug, thiserror::Error)]
enum ScrapeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the scrape failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Why `/healthz` answers 503.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Unhealthy {
    #[error("unhealthy: no successful run yet{}", last_run_text(.last_run))]
    NoSuccess { last_run: Option<LastRun> },
    #[error("unhealthy: the last success time `{success}` cannot be read")]
    UnreadableSuccess { success: String },
    #[error(
        "unhealthy: the last successful run finished at {success}, {age_s}s ago, more than two schedule intervals ({limit_s}s){}",
        last_run_text(.last_run)
    )]
    TooOld {
        success: String,
        age_s: u64,
        limit_s: u64,
        last_run: Option<LastRun>,
    },
}

/// The newest run, as `/healthz` tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub status: String,
    pub started_at: String,
    pub error: Option<String>,
}

/// `; the last run (started …) failed: …`, or nothing.
fn last_run_text(run: &Option<LastRun>) -> String {
    run.as_ref().map_or_else(String::new, |run| {
        format!(
            "; the last run (started {}) {}{}",
            run.started_at,
            run.status,
            run.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )
    })
}

/// Binds `[metrics] listen` (when set) and serves on a task of its own; returns the bound
/// address (logged as `metrics listening`).
pub async fn spawn(config: &Config) -> Result<Option<SocketAddr>, MetricsError> {
    let Some(listen) = &config.metrics.listen else {
        return Ok(None);
    };
    let addr: SocketAddr = listen.parse().map_err(|_| MetricsError::NotAnAddress {
        listen: listen.clone(),
    })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    if !bound.ip().is_loopback() {
        warn!(addr = %bound, "metrics are served beyond this host (metrics.listen is not a loopback address)");
    }
    let state = Arc::new(Server {
        config: config.clone(),
    });
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state);
    info!(addr = %bound, "metrics listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "the metrics server stopped");
        }
    });
    Ok(Some(bound))
}

/// Reads the figures (blocking SQLite, off the async workers).
async fn read(config: &Config) -> Result<Figures, ScrapeError> {
    let path: PathBuf = config.database.path.clone();
    tokio::task::spawn_blocking(move || {
        let mut figures = Figures {
            database_bytes: crate::status::file_size(&path),
            wal_bytes: crate::status::file_size(&crate::status::suffixed(&path, "-wal")),
            ..Figures::default()
        };
        if path.exists() {
            let mut store = Store::open_read_only(&path)?;
            figures.db = store.scrape_figures()?;
        }
        Ok(figures)
    })
    .await?
}

async fn metrics(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let figures = match read(&server.config).await {
        Ok(f) => f,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let text = render(&figures, Utc::now());
    if openmetrics {
        ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
            prometheus_text(&text),
        )
            .into_response()
    }
}

async fn healthz(State(server): State<Arc<Server>>) -> Response {
    let figures = match read(&server.config).await {
        Ok(f) => f,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    };
    let interval = schedule_interval(&server.config);
    match health(&figures.db, interval, Utc::now()) {
        Ok(ok) => (StatusCode::OK, format!("{ok}\n")).into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

/// The time between two runs: the auto cadence's interval, or the gap between the
/// cron's next two firings.
pub fn schedule_interval(config: &Config) -> Duration {
    if config.schedule.cron == crate::cadence::AUTO {
        let c = crate::cadence::plan_at(config, &config.database.path);
        return Duration::from_secs(c.interval_seconds);
    }
    let now = Utc::now();
    next_run(&config.schedule.cron, now)
        .and_then(|a| {
            next_run(&config.schedule.cron, a).map(|b| (b - a).to_std().unwrap_or_default())
        })
        .unwrap_or(Duration::from_secs(crate::cadence::FALLBACK_INTERVAL_S))
}

/// 200 while the newest successful run finished less than two schedule intervals ago;
/// otherwise the reason for a 503.
pub fn health(
    db: &ScrapeFigures,
    interval: Duration,
    now: DateTime<Utc>,
) -> Result<String, Unhealthy> {
    let last_run = db
        .last_run
        .as_ref()
        .map(|(status, started, _, error)| LastRun {
            status: status.clone(),
            started_at: started.clone(),
            error: error.clone(),
        });
    let Some(success) = &db.last_success else {
        return Err(Unhealthy::NoSuccess { last_run });
    };
    let at = DateTime::parse_from_rfc3339(success)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Unhealthy::UnreadableSuccess {
            success: success.clone(),
        })?;
    let age = (now - at).to_std().unwrap_or_default();
    let limit = interval.saturating_mul(2);
    if age > limit {
        return Err(Unhealthy::TooOld {
            success: success.clone(),
            age_s: age.as_secs(),
            limit_s: limit.as_secs(),
            last_run,
        });
    }
    Ok(format!("ok: the last successful run finished at {success}"))
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(value);
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let c = Counter::<u64>::default();
    c.inc_by(u64::try_from(value).unwrap_or(0));
    registry.register(name, help, c);
}

/// The OpenMetrics text of `figures`.
pub fn render(f: &Figures, now: DateTime<Utc>) -> String {
    let mut r = Registry::with_prefix("orgmirror");
    let runs = Family::<Labels, Counter>::default();
    for status in ["succeeded", "failed"] {
        let _ = runs.get_or_create(&labels(&[("status", status)]));
    }
    for (status, n) in &f.db.runs {
        if status != "running" {
            runs.get_or_create(&labels(&[("status", status)]))
                .inc_by(u64::try_from(*n).unwrap_or(0));
        }
    }
    r.register("runs", "Sync runs finished, by status", runs);
    counter(
        &mut r,
        "requests",
        "API requests sent by every run",
        f.db.requests,
    );
    let events = Family::<Labels, Counter>::default();
    for (entity, op, n) in &f.db.events {
        events
            .get_or_create(&labels(&[("entity", entity), ("op", op)]))
            .inc_by(u64::try_from(*n).unwrap_or(0));
    }
    r.register(
        "events",
        "Change events committed, by entity and op",
        events,
    );
    let time = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    if let Some(at) = f.db.last_success.as_deref().and_then(time) {
        gauge(
            &mut r,
            "last_success_timestamp_seconds",
            "When the newest successful run finished (Unix time)",
            at.timestamp() as f64,
        );
    }
    if let Some(fresh) = &f.db.freshness {
        gauge(
            &mut r,
            "consecutive_failures",
            "Full runs that failed in a row since the last success",
            fresh.consecutive_failures as f64,
        );
        if let Some(at) = fresh.last_attempt_at.as_deref().and_then(time) {
            gauge(
                &mut r,
                "last_attempt_timestamp_seconds",
                "When the newest full run began, whatever became of it (Unix time)",
                at.timestamp() as f64,
            );
        }
    }
    if let Some((_, started, Some(finished), _)) = &f.db.last_run {
        if let (Some(s), Some(e)) = (time(started), time(finished)) {
            gauge(
                &mut r,
                "last_run_duration_seconds",
                "How long the newest finished run took (whole seconds)",
                (e - s).num_seconds().max(0) as f64,
            );
        }
    }
    if let Some((remaining, resets_at)) = &f.db.quota {
        gauge(
            &mut r,
            "quota_remaining",
            "API requests left in the quota window, as last seen",
            *remaining as f64,
        );
        if let Some(at) = resets_at.as_deref().and_then(time) {
            gauge(
                &mut r,
                "quota_resets_in_seconds",
                "Seconds until the quota window resets, from the last time seen",
                (at - now).num_seconds().max(0) as f64,
            );
        }
    }
    gauge(
        &mut r,
        "quarantined_records",
        "Records held back as unreadable (quarantine)",
        f.db.quarantined as f64,
    );
    let backlog = Family::<Labels, Gauge>::default();
    let failures = Family::<Labels, Counter>::default();
    for b in &f.db.alerts {
        backlog
            .get_or_create(&labels(&[("rule", &b.rule)]))
            .set(b.pending);
        failures
            .get_or_create(&labels(&[("rule", &b.rule)]))
            .inc_by(u64::try_from(b.failures).unwrap_or(0));
    }
    r.register(
        "alert_backlog",
        "Alerts queued and not accepted yet, by rule",
        backlog,
    );
    r.register(
        "alert_delivery_failures",
        "Alert delivery attempts that failed, by rule",
        failures,
    );
    gauge(
        &mut r,
        "database_bytes",
        "Size of the database file",
        f.database_bytes as f64,
    );
    gauge(
        &mut r,
        "wal_bytes",
        "Size of the database's -wal file",
        f.wal_bytes as f64,
    );
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

/// OpenMetrics text as the Prometheus text format (0.0.4): no `# EOF` or `# UNIT`, and a
/// counter's `# HELP`/`# TYPE` named as its `_total` samples.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RuleBacklog;

    fn figures() -> Figures {
        Figures {
            db: ScrapeFigures {
                runs: vec![("failed".into(), 1), ("succeeded".into(), 3)],
                requests: 12,
                last_success: Some("2026-11-28T12:00:00Z".into()),
                last_run: Some((
                    "succeeded".into(),
                    "2026-11-28T11:59:58Z".into(),
                    Some("2026-11-28T12:00:00Z".into()),
                    None,
                )),
                events: vec![("user".into(), "insert".into(), 30)],
                quarantined: 2,
                quota: Some((20, Some("2026-11-28T12:30:00Z".into()))),
                alerts: vec![RuleBacklog {
                    rule: "new admin".into(),
                    pending: 2,
                    delivered: 1,
                    failures: 3,
                    last_error: None,
                    last_error_at: None,
                    oldest_pending_at: None,
                }],
                freshness: Some(crate::store::Freshness {
                    consecutive_failures: 2,
                    last_attempt_at: Some("2026-11-28T12:05:00Z".into()),
                    ..Default::default()
                }),
            },
            database_bytes: 4096,
            wal_bytes: 0,
        }
    }

    #[test]
    fn both_formats_name_the_series_by_convention() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T12:10:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let om = render(&figures(), now);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(om.contains("# TYPE orgmirror_runs counter"), "{om}");
        assert!(
            om.contains("orgmirror_runs_total{status=\"succeeded\"} 3"),
            "{om}"
        );
        assert!(
            om.contains("orgmirror_quota_resets_in_seconds 1200"),
            "{om}"
        );
        assert!(
            om.contains("orgmirror_alert_backlog{rule=\"new admin\"} 2"),
            "{om}"
        );
        assert!(om.contains("orgmirror_quarantined_records 2"), "{om}");
        assert!(om.contains("orgmirror_consecutive_failures 2"), "{om}");
        assert!(
            om.contains("orgmirror_last_attempt_timestamp_seconds 1795867500"),
            "{om}"
        );
        let text = prometheus_text(&om);
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("# TYPE orgmirror_runs_total counter"),
            "{text}"
        );
        assert!(text.contains("# HELP orgmirror_events_total "), "{text}");
        assert!(
            text.contains("# TYPE orgmirror_database_bytes gauge"),
            "{text}"
        );
    }

    #[test]
    fn health_turns_at_two_intervals_and_says_why() {
        let f = figures();
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        let half_hour = Duration::from_secs(1800);
        assert!(health(&f.db, half_hour, at("2026-11-28T12:59:00Z")).is_ok());
        let err = health(&f.db, half_hour, at("2026-11-28T13:01:00Z"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("two schedule intervals"), "{err}");
        let mut none = f.db.clone();
        none.last_success = None;
        none.last_run = Some(("failed".into(), "x".into(), None, Some("HTTP 500".into())));
        let err = health(&none, half_hour, at("2026-11-28T12:01:00Z"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no successful run") && err.contains("HTTP 500"),
            "{err}"
        );
    }
}

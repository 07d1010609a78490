//! `orgmirror alerts test NAME` and `orgmirror alerts replay NAME --since TIME`.

use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use super::deliver::{after_commit, http_client, unix_ms, Deliverer, Target};
use super::health::{self, Origin};
use super::{AlertsError, Rules};
use crate::clock::now_utc;
use crate::config::{AlertRule, Config};
use crate::store::{EventRow, Freshness, Outage};

/// `orgmirror alerts …`.
#[derive(Debug, Subcommand)]
pub enum AlertsCmd {
    /// Send a sample event (for a health rule, a sample of its first kind) to rule NAME's
    /// target now (not queued; nothing is recorded).
    Test {
        /// The rule's `name`.
        name: String,
    },
    /// Queue the past events rule NAME (or every rule on changes) matches, observed at or
    /// after --since, that are not queued for it yet, then deliver what can be delivered now.
    Replay {
        /// The rule's `name`; without it, every rule.
        name: Option<String>,
        /// RFC 3339 time (`2026-11-01T00:00:00Z`), a UTC date (`2026-11-01`), or a span back
        /// from now (`7d`).
        #[arg(long, value_name = "TIME", value_parser = crate::clock::parse_moment)]
        since: chrono::DateTime<chrono::Utc>,
    },
}

/// Runs an `alerts` command on `config`; the mirror is opened only when the command needs
/// it, after its arguments are checked.
pub async fn run(config: &Config, cmd: AlertsCmd) -> Result<(), AlertsError> {
    match cmd {
        AlertsCmd::Test { name } => test(config, &name).await,
        AlertsCmd::Replay { name, since } => replay(config, name.as_deref(), since).await,
    }
}

fn unknown_rule(config: &Config, name: &str) -> AlertsError {
    AlertsError::UnknownRule {
        name: name.to_string(),
        known: config.alert.iter().map(|r| r.name.clone()).collect(),
    }
}

async fn test(config: &Config, name: &str) -> Result<(), AlertsError> {
    let rule = config
        .alert
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| unknown_rule(config, name))?;
    let target = Target::new(rule, http_client()?)?;
    let mut body = if rule.is_health() {
        health_sample(config, rule)
    } else {
        let sample = EventRow {
            event_id: 0,
            sync_run_id: 0,
            observed_at: now_utc(),
            entity: rule.entity.clone().unwrap_or_default(),
            entity_id: "0".into(),
            op: rule.op.first().cloned().unwrap_or_else(|| "update".into()),
            changed_fields: rule.fields.clone(),
            before: None,
            after: Some(json!(rule.after)),
            people: Vec::new(),
            groups: Vec::new(),
            actor: None,
            changed_at: None,
        };
        super::payload(name, &sample)
    };
    body["test"] = json!(true);
    let key = format!("test-{}", unix_ms());
    let limit = rule.timeout.duration() + Duration::from_secs(1);
    match target.send(&key, &body.to_string(), limit).await {
        Ok(()) => {
            crate::outln!("alert {name:?}: the sample event ({key}) was accepted");
            Ok(())
        }
        Err(reason) => Err(AlertsError::NotAccepted {
            name: name.to_string(),
            reason,
        }),
    }
}

/// A health rule's sample: its first kind, with made-up facts of the shape a real one has.
fn health_sample(config: &Config, rule: &AlertRule) -> serde_json::Value {
    let now = now_utc();
    let origin = Origin::new(&config.database.path, config.api.organization_id);
    let failures = i64::from(rule.failing_after());
    let sample = Freshness {
        last_success_at: Some(now.clone()),
        last_attempt_at: Some(now.clone()),
        last_status: Some("failed".into()),
        last_error: Some("a sample error: this is `orgmirror alerts test`".into()),
        consecutive_failures: failures,
        failing_since: Some(now.clone()),
        hint: Some("nothing to do: this is a test".into()),
        reason: Some("a sample reason".into()),
        exit_status: Some(2),
        ..Freshness::default()
    };
    match rule.on.first().map(String::as_str) {
        Some("stale") => {
            let threshold = rule.stale_after.map_or(5400, |s| s.0.round() as i64);
            health::stale(rule, &sample, threshold + 1, threshold, &now, &origin)
        }
        Some("recovered") => {
            let outage = Outage {
                since: Some(now.clone()),
                failed_runs: failures,
                ended_at: Some(now.clone()),
                ..Outage::default()
            };
            health::recovered(rule, &outage, &now, &origin)
        }
        _ => health::failing(rule, &sample, &now, &origin),
    }
}

async fn replay(
    config: &Config,
    name: Option<&str>,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<(), AlertsError> {
    let changes: Vec<&AlertRule> = config.alert.iter().filter(|r| !r.is_health()).collect();
    let names: Vec<&str> = match name {
        Some(name) => match config.alert.iter().find(|r| r.name == name) {
            None => return Err(unknown_rule(config, name)),
            Some(r) if r.is_health() => {
                return Err(AlertsError::HealthReplay {
                    name: name.to_string(),
                })
            }
            Some(_) => vec![name],
        },
        None if changes.is_empty() => return Err(AlertsError::NoRules),
        None => changes.iter().map(|r| r.name.as_str()).collect(),
    };
    // As the mirror writes times, so that text order is time order.
    let since = crate::clock::format_utc(since);
    let mut store = crate::commands::open_store(config)?;
    let deliverer = Deliverer::new(config)?;
    store.lock_writer()?;
    let rules = Rules::of(config);
    for name in names {
        let (queued, matched) = store.replay_alerts(name, &since, &rules, &now_utc())?;
        crate::outln!(
            "alert {name:?}: {queued} events queued ({matched} matched since {since}; {} were already queued)",
            matched - queued
        );
    }
    store.release_writer();
    drop(store);
    after_commit(deliverer).await;
    Ok(())
}

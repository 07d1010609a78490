//! Health rules (`on = ["failing", "stale", "recovered"]`): which health alerts the
//! mirror's state calls for, and the JSON a target gets. The state is the store's
//! (`store::HealthState`, read from `sync_runs` and the outbox), so deciding is pure.
//!
//! - `failing` once per outage, when that many full runs in a row failed (`failing_after`);
//! - `stale` once per outage, when the last success (before any, the first attempt) is
//!   older than `stale_after` (default: the threshold each run records);
//! - `recovered` once when a success ends an outage the rule sent `failing` or `stale` for.
//!
//! An outage is named by the last successful full run before it, so "once" survives
//! restarts and holds across processes (the outbox keeps one row per rule, kind, outage).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::AlertRule;
use crate::store::{Freshness, HealthAlert, HealthState, Outage};

/// Where a health alert comes from: the mirror and the host it runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub mirror: PathBuf,
    pub organization_id: i64,
    pub host: String,
}

impl Origin {
    /// The mirror at `mirror` of `organization_id`, on this host.
    pub fn new(mirror: &Path, organization_id: i64) -> Origin {
        Origin {
            mirror: mirror.to_path_buf(),
            organization_id,
            host: host_name(),
        }
    }
}

/// This host's name (`gethostname`), or `unknown`.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Seconds from `from` to `to`, when both read as times.
fn seconds_between(from: Option<&str>, to: &str) -> Option<i64> {
    Some((time(to)? - time(from?)?).num_seconds())
}

/// The health alerts `rules` call for in `state` that are not queued yet.
pub fn due(rules: &[AlertRule], state: &HealthState, origin: &Origin) -> Vec<HealthAlert> {
    let f = &state.freshness;
    let outage = f.last_success_run;
    let queued = |rule: &str, kind: &str, after_run: i64| {
        state
            .queued
            .iter()
            .any(|q| q.rule == rule && q.kind == kind && q.after_run == after_run)
    };
    let mut alerts = Vec::new();
    for rule in rules.iter().filter(|r| r.is_health()) {
        let on = |kind: &str| rule.on.iter().any(|k| k == kind);
        let mut add = |kind: &'static str, after_run: i64, body: Value| {
            if !queued(&rule.name, kind, after_run) {
                alerts.push(HealthAlert {
                    rule: rule.name.clone(),
                    kind,
                    after_run,
                    payload: body.to_string(),
                });
            }
        };
        if on("failing") && f.consecutive_failures >= i64::from(rule.failing_after()) {
            add("failing", outage, failing(rule, f, &state.now, origin));
        }
        if on("stale") {
            let threshold = rule
                .stale_after
                .map(|s| s.0.round() as i64)
                .or(f.stale_after_seconds);
            let reference = f
                .last_success_at
                .as_deref()
                .or(f.first_attempt_at.as_deref());
            let age = seconds_between(reference, &state.now);
            if let (Some(threshold), Some(age)) = (threshold, age) {
                if age > threshold {
                    add(
                        "stale",
                        outage,
                        stale(rule, f, age, threshold, &state.now, origin),
                    );
                }
            }
        }
        if on("recovered") {
            for (name, ended) in &state.ended {
                if *name == rule.name {
                    add(
                        "recovered",
                        ended.after_run,
                        recovered(rule, ended, &state.now, origin),
                    );
                }
            }
        }
    }
    alerts
}

/// What every health alert says: which, where, and the outage it belongs to.
fn base(rule: &AlertRule, kind: &str, since: Option<&str>, now: &str, origin: &Origin) -> Value {
    json!({
        "rule": rule.name,
        "kind": kind,
        "at": now,
        "since": since,
        "mirror": origin.mirror.display().to_string(),
        "host": origin.host,
        "organization_id": origin.organization_id,
    })
}

fn extend(mut body: Value, more: Value) -> Value {
    if let (Some(b), Value::Object(m)) = (body.as_object_mut(), more) {
        b.extend(m);
    }
    body
}

/// `failing`: the runs in a row that failed, the newest one's error and what to do.
pub fn failing(rule: &AlertRule, f: &Freshness, now: &str, origin: &Origin) -> Value {
    extend(
        base(rule, "failing", f.last_success_at.as_deref(), now, origin),
        json!({
            "failed_runs": f.consecutive_failures,
            "failing_since": f.failing_since,
            "last_attempt_at": f.last_attempt_at,
            "last_error": f.last_error,
            "reason": f.reason,
            "exit_status": f.exit_status,
            "hint": f.hint,
        }),
    )
}

/// `stale`: how old the last success is, and why no run has succeeded since.
pub fn stale(
    rule: &AlertRule,
    f: &Freshness,
    age: i64,
    threshold: i64,
    now: &str,
    origin: &Origin,
) -> Value {
    let hint = match (f.last_status.as_deref(), &f.hint) {
        (Some("running"), _) => format!(
            "a run has been going since {} without finishing: it may wait on the request quota \
             (api.max_quota_wait), or the API stalls (each request gives up after api.request_timeout, \
             retries after api.max_retry_time); see the journal (`journalctl -u orgmirror`)",
            f.last_attempt_at.as_deref().unwrap_or("?")
        ),
        (Some("failed"), Some(hint)) => hint.clone(),
        _ => format!(
            "no run has started since {}: is the daemon running (`systemctl status orgmirror`), and \
             does schedule.cron fire when you expect?",
            f.last_attempt_at.as_deref().unwrap_or("it was set up")
        ),
    };
    extend(
        base(rule, "stale", f.last_success_at.as_deref(), now, origin),
        json!({
            "age_seconds": age,
            "stale_after_seconds": threshold,
            "failed_runs": f.consecutive_failures,
            "last_attempt_at": f.last_attempt_at,
            "last_status": f.last_status,
            "last_error": f.last_error,
            "reason": f.reason,
            "exit_status": f.exit_status,
            "hint": hint,
        }),
    )
}

/// `recovered`: the outage a success ended, how long it lasted and what failed meanwhile.
pub fn recovered(rule: &AlertRule, o: &Outage, now: &str, origin: &Origin) -> Value {
    let lasted = o
        .ended_at
        .as_deref()
        .and_then(|end| seconds_between(o.since.as_deref().or(o.failing_since.as_deref()), end));
    extend(
        base(rule, "recovered", o.since.as_deref(), now, origin),
        json!({
            "recovered_at": o.ended_at,
            "outage_seconds": lasted,
            "failed_runs": o.failed_runs,
            "failing_since": o.failing_since,
            "last_error": o.last_error,
            "reason": o.reason,
            "exit_status": o.exit_status,
            "hint": "nothing to do: the mirror is current again",
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerts::tests::rule;
    use crate::store::QueuedHealth;

    fn origin() -> Origin {
        Origin {
            mirror: PathBuf::from("/var/lib/orgmirror/org.sqlite"),
            organization_id: 1001,
            host: "mirror-host".into(),
        }
    }

    fn rules(extra: &str) -> Vec<AlertRule> {
        rule(&format!(
            "[[alert]]\nname = \"down\"\non = [\"failing\", \"stale\", \"recovered\"]\n\
             webhook = \"https://x.example\"\n{extra}\n"
        ))
        .unwrap()
    }

    fn failing_for(n: i64) -> Freshness {
        Freshness {
            last_success_at: Some("2026-11-28T08:00:00Z".into()),
            last_attempt_at: Some("2026-11-28T10:00:00Z".into()),
            last_status: Some("failed".into()),
            last_error: Some("GET /organizations/1001/roles: HTTP 401 …".into()),
            consecutive_failures: n,
            stale_after_seconds: Some(6 * 3600),
            failing_since: Some("2026-11-28T09:00:00Z".into()),
            hint: Some("make a new Focus API key".into()),
            reason: Some("API key expired (401)".into()),
            exit_status: Some(2),
            last_success_run: 41,
            first_attempt_at: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        }
    }

    fn state(f: Freshness, now: &str, queued: &[(&str, i64)]) -> HealthState {
        HealthState {
            now: now.into(),
            freshness: f,
            queued: queued
                .iter()
                .map(|(kind, after_run)| QueuedHealth {
                    rule: "down".into(),
                    kind: kind.to_string(),
                    after_run: *after_run,
                })
                .collect(),
            ended: Vec::new(),
        }
    }

    fn kinds(alerts: &[HealthAlert]) -> Vec<(&'static str, i64)> {
        alerts.iter().map(|a| (a.kind, a.after_run)).collect()
    }

    #[test]
    fn failing_is_due_once_when_the_failures_reach_failing_after() {
        let r = rules("");
        let now = "2026-11-28T10:05:00Z";
        // (failures, queued already) -> due
        type Kinds = Vec<(&'static str, i64)>;
        let table: [(i64, Kinds, Kinds); 5] = [
            (2, vec![], vec![]),
            (3, vec![], vec![("failing", 41)]),
            (4, vec![("failing", 41)], vec![]),
            // A new outage (after run 41) is not the old one (after run 7).
            (3, vec![("failing", 7)], vec![("failing", 41)]),
            (30, vec![("failing", 41)], vec![]),
        ];
        for (n, queued, want) in table {
            let due = due(&r, &state(failing_for(n), now, &queued), &origin());
            assert_eq!(kinds(&due), want, "{n} failures, queued {queued:?}");
        }
        let r = rules("failing_after = 1");
        assert_eq!(
            kinds(&due(&r, &state(failing_for(1), now, &[]), &origin())),
            [("failing", 41)]
        );
    }

    #[test]
    fn a_failing_alert_says_the_reason_the_exit_status_and_what_to_do_and_no_more() {
        let r = rules("");
        let alerts = due(
            &r,
            &state(failing_for(3), "2026-11-28T10:05:00Z", &[]),
            &origin(),
        );
        let body: Value = serde_json::from_str(&alerts[0].payload).unwrap();
        assert_eq!(
            body,
            json!({
                "rule": "down", "kind": "failing", "at": "2026-11-28T10:05:00Z",
                "since": "2026-11-28T08:00:00Z", "failed_runs": 3,
                "failing_since": "2026-11-28T09:00:00Z",
                "last_attempt_at": "2026-11-28T10:00:00Z",
                "last_error": "GET /organizations/1001/roles: HTTP 401 …",
                "reason": "API key expired (401)", "exit_status": 2,
                "hint": "make a new Focus API key",
                "mirror": "/var/lib/orgmirror/org.sqlite", "host": "mirror-host",
                "organization_id": 1001,
            })
        );
    }

    #[test]
    fn stale_is_due_once_past_the_threshold_counted_from_the_last_success_or_first_attempt() {
        let fresh = |last_success: Option<&str>, status: &str| Freshness {
            last_success_at: last_success.map(str::to_string),
            last_attempt_at: Some("2026-11-28T08:30:00Z".into()),
            last_status: Some(status.into()),
            stale_after_seconds: Some(5400),
            last_success_run: i64::from(last_success.is_some()) * 41,
            first_attempt_at: Some("2026-11-28T08:00:00Z".into()),
            ..Default::default()
        };
        let r = rules("");
        let at = |now: &str, f: Freshness, queued: &[(&str, i64)]| {
            kinds(&due(&r, &state(f, now, queued), &origin()))
        };
        let success = Some("2026-11-28T08:00:00Z");
        assert!(at("2026-11-28T09:30:00Z", fresh(success, "running"), &[]).is_empty());
        assert_eq!(
            at("2026-11-28T09:30:01Z", fresh(success, "running"), &[]),
            [("stale", 41)]
        );
        assert!(at(
            "2026-11-28T12:00:00Z",
            fresh(success, "running"),
            &[("stale", 41)]
        )
        .is_empty());
        // Before any success: from the first attempt, in the outage after run 0.
        assert_eq!(
            at("2026-11-28T09:30:01Z", fresh(None, "running"), &[]),
            [("stale", 0)]
        );
        // The rule's own stale_after wins over the recorded threshold.
        let r = rules("stale_after = \"10m\"");
        let due = due(
            &r,
            &state(fresh(success, "running"), "2026-11-28T08:10:01Z", &[]),
            &origin(),
        );
        let body: Value = serde_json::from_str(&due[0].payload).unwrap();
        assert_eq!(body["stale_after_seconds"], 600);
        assert_eq!(body["age_seconds"], 601);
        assert!(
            body["hint"]
                .as_str()
                .unwrap()
                .contains("a run has been going since 2026-11-28T08:30:00Z"),
            "{body}"
        );
    }

    #[test]
    fn recovered_is_due_once_for_an_outage_the_rule_was_told_of() {
        let r = rules("");
        let ended = Outage {
            after_run: 7,
            since: Some("2026-11-28T08:00:00Z".into()),
            failed_runs: 4,
            failing_since: Some("2026-11-28T08:30:00Z".into()),
            last_error: Some("HTTP 401".into()),
            reason: Some("API key expired (401)".into()),
            exit_status: Some(2),
            ended_by_run: 12,
            ended_at: Some("2026-11-28T10:00:00Z".into()),
        };
        let mut s = state(
            Freshness {
                last_success_run: 12,
                ..Default::default()
            },
            "2026-11-28T10:00:05Z",
            &[("failing", 7)],
        );
        s.ended = vec![("down".into(), ended)];
        let alerts = due(&r, &s, &origin());
        assert_eq!(kinds(&alerts), [("recovered", 7)]);
        let body: Value = serde_json::from_str(&alerts[0].payload).unwrap();
        assert_eq!(body["outage_seconds"], 7200);
        assert_eq!(body["failed_runs"], 4);
        assert_eq!(body["since"], "2026-11-28T08:00:00Z");
        assert_eq!(body["recovered_at"], "2026-11-28T10:00:00Z");
        s.queued.push(QueuedHealth {
            rule: "down".into(),
            kind: "recovered".into(),
            after_run: 7,
        });
        assert!(due(&r, &s, &origin()).is_empty());
        // A rule that is not on "recovered" is not told.
        let quiet = rule(
            "[[alert]]\nname = \"down\"\non = [\"failing\"]\nwebhook = \"https://x.example\"\n",
        )
        .unwrap();
        s.queued.pop();
        assert!(due(&quiet, &s, &origin()).is_empty());
    }

    #[test]
    fn the_host_name_is_this_hosts() {
        let name = host_name();
        assert!(!name.is_empty() && name != "unknown", "{name}");
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            assert_eq!(name, h.trim());
        }
    }
}

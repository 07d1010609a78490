//! Delivering the alert outbox, after the run's commit: each rule's alerts in event order
//! on a task of its own (a dead or hanging target holds up only its own rule, never a
//! sync), each attempt bounded by the rule's `timeout`, a failure retried after a capped,
//! jittered backoff that is stored in the outbox (so it goes on across restarts), and an
//! accepted alert (2xx, exit 0) recorded at once and never sent again.
//!
//! One process delivers at a time (`Store::lock_delivery`): the daemon holds the lock for
//! its life, so a `sync` next to it leaves delivery to it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};

use super::{AlertRule, AlertsError};
use crate::clock::now_utc;
use crate::config::{Config, ConfigError};
use crate::store::{OutboxRow, Store, StoreError, StoreOptions};

/// Alerts of one rule a task takes (the next task takes the rest).
const PER_RULE: usize = 200;
/// How often an idle daemon looks for alerts queued by other processes.
const IDLE_POLL: Duration = Duration::from_secs(10);
/// The most a one-shot command (`sync`, `alerts replay`) spends delivering after its commit.
pub const ONE_SHOT_LIMIT: Duration = Duration::from_secs(30);
/// The longest a one-shot command waits for a retry to fall due: a target that is down
/// must not keep a cron-driven `sync` from exiting.
const ONE_SHOT_RETRY_WAIT: Duration = Duration::from_secs(5);
/// How long recording an outcome waits for a database another writer holds (a run's
/// transaction) before giving up; the alert is then sent again later (at least once).
const RECORD_PATIENCE: Duration = Duration::from_secs(120);
/// The longest error text kept in the outbox.
const MAX_ERROR: usize = 500;

/// Why a target did not accept an alert (kept, cut short, as the outbox's `last_error`).
/// A webhook is named by its origin only: its path often is its secret (Slack's).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("HTTP {status} from {origin}")]
    Status {
        status: reqwest::StatusCode,
        origin: String,
    },
    #[error("no answer from {origin} within {:.1}s", .after.as_secs_f64())]
    Timeout { origin: String, after: Duration },
    #[error("{origin}: {}", error_chain(.source))]
    Request {
        origin: String,
        source: reqwest::Error,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program}: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} exited with {status}: {stderr}")]
    Exited {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{program} did not finish within {:.1}s (killed)", .after.as_secs_f64())]
    Killed { program: String, after: Duration },
    #[error("the rule has neither webhook nor command")]
    NoTarget,
}

/// Where one rule's alerts go, with its secret.
pub struct Target {
    pub rule: AlertRule,
    secret: Option<SecretString>,
    http: reqwest::Client,
}

impl Target {
    /// `rule`'s target, its secret read from the environment (see [`read_secret`]).
    pub fn new(rule: &AlertRule, http: reqwest::Client) -> Result<Target, ConfigError> {
        let secret = match &rule.secret_credential {
            Some(name) => Some(read_secret(rule, name, |k| std::env::var(k).ok())?),
            None => None,
        };
        Ok(Target {
            rule: rule.clone(),
            secret,
            http,
        })
    }

    /// Sends `body` once; `Ok` when the target accepted it (2xx, exit 0).
    pub async fn send(&self, key: &str, body: &str, limit: Duration) -> Result<(), SendError> {
        let timeout = self.rule.timeout.duration().min(limit);
        let signature = self.secret.as_ref().map(|s| sign(s, body));
        if let Some(url) = &self.rule.webhook {
            // Errors name the origin only: a webhook's path often is its secret (Slack's).
            let origin = url::Url::parse(url)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_else(|_| "the webhook".to_string());
            let mut request = self
                .http
                .post(url)
                .timeout(timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("Idempotency-Key", key)
                .header("X-Orgmirror-Event", key)
                .header("X-Orgmirror-Rule", header_safe(&self.rule.name));
            if let Some(sig) = &signature {
                request = request.header("X-Orgmirror-Signature", sig);
            }
            match request.body(body.to_string()).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(SendError::Status {
                    status: r.status(),
                    origin,
                }),
                Err(e) if e.is_timeout() => Err(SendError::Timeout {
                    origin,
                    after: timeout,
                }),
                Err(e) => Err(SendError::Request {
                    origin,
                    source: e.without_url(),
                }),
            }
        } else if let Some(argv) = &self.rule.command {
            let program = || argv[0].clone();
            let run = async {
                let mut cmd = tokio::process::Command::new(&argv[0]);
                cmd.args(&argv[1..])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .env("ORGMIRROR_EVENT_ID", key)
                    .env("ORGMIRROR_RULE", &self.rule.name)
                    .kill_on_drop(true);
                if let Some(sig) = &signature {
                    cmd.env("ORGMIRROR_SIGNATURE", sig);
                }
                let mut child = cmd.spawn().map_err(|source| SendError::Spawn {
                    program: program(),
                    source,
                })?;
                if let Some(mut stdin) = child.stdin.take() {
                    // A program that does not read its input may close it: not an error.
                    let _ = stdin.write_all(body.as_bytes()).await;
                }
                let out = child
                    .wait_with_output()
                    .await
                    .map_err(|source| SendError::Wait {
                        program: program(),
                        source,
                    })?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(SendError::Exited {
                        program: program(),
                        status: out.status,
                        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    })
                }
            };
            match tokio::time::timeout(timeout, run).await {
                Ok(result) => result,
                Err(_) => Err(SendError::Killed {
                    program: program(),
                    after: timeout,
                }),
            }
        } else {
            Err(SendError::NoTarget)
        }
    }

    /// When to try again after `attempts` failed attempts: `initial_backoff` doubled per
    /// attempt, at most `max_backoff`, then jittered down by up to half (so that many
    /// alerts failing together do not come back together).
    pub fn backoff(&self, attempts: i64) -> Duration {
        backoff(
            self.rule.initial_backoff.duration(),
            self.rule.max_backoff.duration(),
            attempts,
            fastrand::f64(),
        )
    }
}

/// The backoff after `attempts` failures, `jitter` in [0, 1).
pub fn backoff(initial: Duration, max: Duration, attempts: i64, jitter: f64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 40) - 1).unwrap_or(0);
    let full = initial
        .saturating_mul(2u32.saturating_pow(exp.min(31)))
        .min(max);
    full.mul_f64(1.0 - 0.5 * jitter.clamp(0.0, 1.0))
}

/// `sha256=<hex HMAC-SHA256 of body>`.
pub fn sign(secret: &SecretString, body: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// The environment variable a secret named `name` is read from.
pub fn secret_variable(name: &str) -> String {
    format!(
        "ORGMIRROR_SECRET_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// The HMAC secret named `name`: `ORGMIRROR_SECRET_<NAME>`, else
/// `$CREDENTIALS_DIRECTORY/<name>` (systemd `LoadCredential=`); never the config file.
pub fn read_secret(
    rule: &AlertRule,
    name: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Result<SecretString, ConfigError> {
    let variable = secret_variable(name);
    let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    if let Some(v) = nonempty(var(&variable)) {
        return Ok(SecretString::from(v.trim().to_string()));
    }
    if let Some(dir) = nonempty(var("CREDENTIALS_DIRECTORY")) {
        let path = PathBuf::from(dir).join(name);
        if path.exists() {
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Credential {
                    path: path.clone(),
                    source,
                })?;
            if let Some(v) = nonempty(Some(text)) {
                return Ok(SecretString::from(v.trim().to_string()));
            }
        }
    }
    Err(ConfigError::InvalidAlert {
        rule: rule.name.clone(),
        key: "secret_credential",
        message: format!(
            "no secret `{name}`: set {variable} or provide $CREDENTIALS_DIRECTORY/{name} (systemd LoadCredential=)"
        ),
    })
}

fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// The HTTP client webhooks are sent with (no redirects: a 3xx is not an acceptance).
pub fn http_client() -> Result<reqwest::Client, AlertsError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("orgmirror/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(AlertsError::Client)
}

/// What a one-shot command's delivery did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub failed: usize,
    /// Another process holds the delivery lock: it delivers.
    pub locked_out: bool,
    /// Alerts still waiting.
    pub pending: usize,
    /// When the earliest of them is due (Unix ms), if any.
    pub next_due_ms: Option<i64>,
}

/// The target of every rule of `config`, by name, each rule's secret read: a missing one
/// is an error (exit 2).
fn targets(config: &Config) -> Result<BTreeMap<String, Arc<Target>>, AlertsError> {
    let http = http_client()?;
    let mut targets = BTreeMap::new();
    for rule in &config.alert {
        targets.insert(
            rule.name.clone(),
            Arc::new(Target::new(rule, http.clone())?),
        );
    }
    Ok(targets)
}

/// Reads every rule's secret, as a run's delivery will: a command that commits changes
/// (and so queues alerts) calls this before it changes anything, so that a missing secret
/// stops it with nothing done. Returns how many rules there are.
pub fn find_secrets(config: &Config) -> Result<usize, AlertsError> {
    if config.alert.is_empty() {
        return Ok(0);
    }
    Ok(targets(config)?.len())
}

/// Delivers the outbox of one database.
pub struct Deliverer {
    store: Store,
    targets: BTreeMap<String, Arc<Target>>,
}

impl Deliverer {
    /// The deliverer of `config`'s rules, `None` without any. A missing secret is an error
    /// (exit 2), before any run.
    pub fn new(config: &Config) -> Result<Option<Deliverer>, AlertsError> {
        if config.alert.is_empty() {
            return Ok(None);
        }
        let targets = targets(config)?;
        // Its own connection (opened after the caller's, which migrated the schema), quick
        // to give up on a busy database: recording waits asleep.
        let options = StoreOptions {
            busy_timeout: Duration::from_millis(200),
            ..StoreOptions::from_config(&config.database)
        };
        let store = Store::open(&config.database.path, &options)?;
        Ok(Some(Deliverer { store, targets }))
    }

    /// The rules whose oldest pending alert is due, with their alerts in event order,
    /// leaving out those in `busy`; and when the earliest of the others is due (Unix ms).
    fn due(&self, busy: &BTreeSet<String>) -> Result<(Vec<Batch>, Option<i64>), StoreError> {
        let now_ms = unix_ms();
        let mut by_rule: BTreeMap<String, Vec<OutboxRow>> = BTreeMap::new();
        for row in self.store.pending_alerts(PER_RULE)? {
            by_rule.entry(row.rule.clone()).or_default().push(row);
        }
        let mut batches = Vec::new();
        let mut next_due = None;
        for (rule, rows) in by_rule {
            // A rule removed from the config: its alerts wait (status shows them).
            let Some(target) = self.targets.get(&rule).cloned() else {
                continue;
            };
            if busy.contains(&rule) {
                continue;
            }
            // In event order: the oldest alert of a rule goes first, or none does.
            if rows[0].next_attempt_ms > now_ms {
                next_due = min_some(next_due, rows[0].next_attempt_ms);
                continue;
            }
            batches.push((target, rows));
        }
        Ok((batches, next_due))
    }

    /// Records one outcome; returns when to try a failed alert again (Unix ms).
    async fn settle(
        &mut self,
        row: OutboxRow,
        result: Result<(), SendError>,
    ) -> Result<Option<i64>, StoreError> {
        let at = now_utc();
        match result {
            Ok(()) => {
                debug!(rule = %row.rule, key = %row.key, "alert delivered");
                self.record(|s| s.alert_delivered(row.outbox_id, &at))
                    .await?;
                Ok(None)
            }
            Err(error) => {
                let delay = self
                    .targets
                    .get(&row.rule)
                    .map(|t| t.backoff(row.attempts + 1))
                    .unwrap_or(IDLE_POLL);
                let next = unix_ms() + delay.as_millis() as i64;
                warn!(
                    rule = %row.rule,
                    key = %row.key,
                    attempts = row.attempts + 1,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %error,
                    "alert not delivered; will retry"
                );
                let error: String = error.to_string().chars().take(MAX_ERROR).collect();
                self.record(|s| s.alert_failed(row.outbox_id, &at, &error, next))
                    .await?;
                Ok(Some(next))
            }
        }
    }

    /// Records an outcome, waiting asleep while a run's transaction holds the database.
    async fn record(
        &mut self,
        write: impl Fn(&Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // Held as `&mut` (a `Store` is `Send`, not `Sync`) across the sleeps.
        let store = &mut self.store;
        crate::store::retry_while_busy(RECORD_PATIENCE, move || write(store), |_| {}).await
    }

    /// Delivers until nothing is due soon or `limit` is spent (a one-shot command after
    /// its commit); leaves delivery to the process that holds the delivery lock, if any.
    pub async fn deliver_for(&mut self, limit: Duration) -> Result<DeliveryReport, StoreError> {
        let Some(_lock) = self.store.lock_delivery()? else {
            return Ok(DeliveryReport {
                locked_out: true,
                ..DeliveryReport::default()
            });
        };
        self.deliver(&Until::Deadline(Instant::now() + limit)).await
    }

    /// The daemon's delivery: holds the delivery lock for the daemon's life (waiting while
    /// a one-shot command delivers), then delivers as [`Deliverer::deliver`] says, woken
    /// after each run (`wake`). Never returns; the daemon drops it on shutdown (an attempt
    /// cut short is sent again later).
    pub async fn run(mut self, wake: Arc<Notify>) {
        let _lock = loop {
            match self.store.lock_delivery() {
                Ok(Some(lock)) => break lock,
                Ok(None) => debug!("another process is delivering alerts; waiting"),
                Err(e) => {
                    warn!(error = %e, "cannot take the alert delivery lock; trying again later")
                }
            }
            tokio::time::sleep(IDLE_POLL).await;
        };
        info!(rules = self.targets.len(), "alert delivery started");
        let _ = self.deliver(&Until::Forever(wake)).await;
    }

    /// The delivery loop, the daemon's and a one-shot command's: starts each rule whose
    /// oldest alert is due and that has no task going (a rule whose target hangs holds up
    /// only itself), records every outcome as it comes, and looks again when a task ends,
    /// when a retry falls due, and every [`IDLE_POLL`] for alerts other processes queued.
    /// The daemon's goes on for good, logging what it cannot read or record; a one-shot
    /// command's returns such an error, and stops once no task is going and nothing falls
    /// due within [`ONE_SHOT_RETRY_WAIT`] before its deadline.
    async fn deliver(&mut self, until: &Until) -> Result<DeliveryReport, StoreError> {
        let deadline = match until {
            Until::Deadline(deadline) => Some(*deadline),
            Until::Forever(_) => None,
        };
        let mut report = DeliveryReport::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut going: BTreeSet<String> = BTreeSet::new();
        loop {
            let next_due = match self.due(&going) {
                Ok((batches, next_due)) => {
                    for (target, rows) in batches {
                        going.insert(target.rule.name.clone());
                        spawn_rule(target, rows, deadline, tx.clone());
                    }
                    next_due
                }
                Err(e) if deadline.is_some() => return Err(e),
                Err(e) => {
                    warn!(error = %e, "cannot read the alert outbox; trying again later");
                    None
                }
            };
            let wait = next_due
                .map(|due| Duration::from_millis(u64::try_from(due - unix_ms()).unwrap_or(0)));
            if let Some(deadline) = deadline {
                let soon = wait.is_some_and(|wait| {
                    wait <= ONE_SHOT_RETRY_WAIT && Instant::now() + wait < deadline
                });
                if going.is_empty() && !soon {
                    break;
                }
            }
            let wait = wait
                .unwrap_or(IDLE_POLL)
                .clamp(Duration::from_millis(20), IDLE_POLL);
            let woken = async {
                match until {
                    Until::Forever(wake) => wake.notified().await,
                    Until::Deadline(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(outcome) = rx.recv() => match outcome {
                    Outcome::Sent(row, result) => match self.settle(row, result).await {
                        Ok(None) => report.delivered += 1,
                        Ok(Some(_)) => report.failed += 1,
                        Err(e) if deadline.is_some() => return Err(e),
                        Err(e) => {
                            warn!(error = %e, "cannot record an alert's delivery; it will be sent again")
                        }
                    },
                    Outcome::Done(rule) => {
                        going.remove(&rule);
                    }
                },
                () = woken => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        report.pending = self
            .store
            .alert_backlog()?
            .iter()
            .filter(|b| self.targets.contains_key(&b.rule))
            .map(|b| usize::try_from(b.pending).unwrap_or(0))
            .sum();
        for row in &self.store.pending_alerts(1)? {
            if self.targets.contains_key(&row.rule) {
                report.next_due_ms = min_some(report.next_due_ms, row.next_attempt_ms);
            }
        }
        Ok(report)
    }
}

/// How long [`Deliverer::deliver`] goes on.
enum Until {
    /// For the daemon's life, woken after each of its runs.
    Forever(Arc<Notify>),
    /// Until nothing is due soon, or this deadline (a one-shot command).
    Deadline(Instant),
}

/// One rule's target and its alerts to send, in event order.
type Batch = (Arc<Target>, Vec<OutboxRow>);

/// What a rule's task reports.
enum Outcome {
    /// One attempt and how it went.
    Sent(OutboxRow, Result<(), SendError>),
    /// The task is done (after its last `Sent`).
    Done(String),
}

/// Sends `rows` (one rule's, in event order) on a task of its own, stopping at the first
/// failure (the rest wait for its retry) or at `deadline`.
fn spawn_rule(
    target: Arc<Target>,
    rows: Vec<OutboxRow>,
    deadline: Option<Instant>,
    tx: mpsc::UnboundedSender<Outcome>,
) {
    tokio::spawn(async move {
        for row in rows {
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => break,
                },
                None => Duration::MAX,
            };
            let result = target.send(&row.key, &row.payload_json, left).await;
            let failed = result.is_err();
            if tx.send(Outcome::Sent(row, result)).is_err() || failed {
                break;
            }
        }
        let _ = tx.send(Outcome::Done(target.rule.name.clone()));
    });
}

fn min_some(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// After a one-shot command's commit: delivers what it can within [`ONE_SHOT_LIMIT`] and
/// says on stderr what is left (the daemon, or the next command, delivers the rest).
pub async fn after_commit(deliverer: Option<Deliverer>) {
    let Some(mut deliverer) = deliverer else {
        return;
    };
    match deliverer.deliver_for(ONE_SHOT_LIMIT).await {
        Ok(r) if r.locked_out => crate::errln!(
            "alerts: another orgmirror process (the daemon) is delivering; it sends this run's alerts"
        ),
        Ok(r) if r.delivered + r.failed + r.pending > 0 => crate::errln!(
            "alerts: {} delivered, {} pending{}",
            r.delivered,
            r.pending,
            if r.pending > 0 {
                " (retried by the daemon or the next sync; `orgmirror status` shows the last error)"
            } else {
                ""
            }
        ),
        Ok(_) => {}
        Err(e) => crate::errln!("alerts: delivery failed, the alerts stay queued: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_at_most_half() {
        let (i, m) = (Duration::from_secs(30), Duration::from_secs(3600));
        assert_eq!(backoff(i, m, 1, 0.0), Duration::from_secs(30));
        assert_eq!(backoff(i, m, 2, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(i, m, 3, 0.0), Duration::from_secs(120));
        assert_eq!(backoff(i, m, 30, 0.0), m);
        assert_eq!(
            backoff(i, m, 1000, 0.999_999),
            m.mul_f64(1.0 - 0.5 * 0.999_999)
        );
        assert_eq!(backoff(i, m, 1, 1.0), Duration::from_secs(15));
    }

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        let sig = sign(
            &SecretString::from("Jefe".to_string()),
            "what do ya want for nothing?",
        );
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secrets_come_from_the_environment_or_the_credentials_directory() {
        let rule: AlertRule = toml::from_str(
            "name = \"r\"\nentity = \"user\"\ncommand = [\"/x\"]\nsecret_credential = \"hooks-key\"",
        )
        .unwrap();
        let s = read_secret(&rule, "hooks-key", |k| {
            (k == "ORGMIRROR_SECRET_HOOKS_KEY").then(|| "abc\n".to_string())
        })
        .unwrap();
        assert_eq!(s.expose_secret(), "abc");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hooks-key"), "from-file\n").unwrap();
        let d = dir.path().to_string_lossy().to_string();
        let s = read_secret(&rule, "hooks-key", |k| {
            (k == "CREDENTIALS_DIRECTORY").then(|| d.clone())
        })
        .unwrap();
        assert_eq!(s.expose_secret(), "from-file");
        let err = read_secret(&rule, "hooks-key", |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ORGMIRROR_SECRET_HOOKS_KEY") && err.contains("secret_credential"),
            "{err}"
        );
    }
}

//! The daemon's health check on a timer: a mirror whose runs hang, or whose schedule stopped
//! firing, goes stale without any run finishing to say so. On its own connection, so it
//! reads and queues while a run is going (a run holds SQLite's write lock only from its
//! first write to its commit).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use crate::clock::{now_utc, span};
use crate::config::Config;
use crate::store::{Store, StoreError, StoreOptions};

/// The longest time between two checks.
const MAX_PERIOD: Duration = Duration::from_secs(60);
/// The shortest.
const MIN_PERIOD: Duration = Duration::from_secs(1);

/// The health check of one mirror.
pub struct Watcher {
    store: Store,
    period: Duration,
    /// The outage (last successful run) whose staleness the journal has told.
    told_stale: Option<i64>,
}

impl Watcher {
    /// The check of `config`'s mirror, every tenth of the shortest stale threshold (of the
    /// schedule's and the health rules'), at least every second and at most every minute.
    pub fn new(config: &Config) -> Result<Watcher, StoreError> {
        let options = StoreOptions {
            busy_timeout: Duration::from_millis(200),
            ..StoreOptions::from_config(&config.database)
        };
        let mut store = Store::open(&config.database.path, &options)?;
        store.set_outbox_rules(super::outbox_rules(config));
        let shortest = config
            .alert
            .iter()
            .filter_map(|r| r.stale_after.map(|s| s.duration()))
            .chain([crate::cadence::stale_after(config, Some(&store))])
            .min()
            .unwrap_or(MAX_PERIOD);
        Ok(Watcher {
            store,
            period: (shortest / 10).clamp(MIN_PERIOD, MAX_PERIOD),
            told_stale: None,
        })
    }

    /// How often it checks.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// One check: says once per outage in the journal that the mirror is stale, and queues
    /// the health alerts due (waking `delivery` when it queued any). A database another
    /// writer holds is left for the next check.
    pub fn check(&mut self, delivery: &Notify) {
        match self.store.freshness() {
            Ok(Some(f)) if f.stale == Some(true) && self.told_stale != Some(f.last_success_run) => {
                self.told_stale = Some(f.last_success_run);
                // How long ago the last success was, when there was one.
                let last_success_ago = f
                    .age_seconds
                    .filter(|_| f.last_success_at.is_some())
                    .map(span);
                error!(
                    last_success_at = f.last_success_at.as_deref(),
                    last_success_ago = last_success_ago.as_deref(),
                    age_seconds = f.age_seconds,
                    stale_after_seconds = f.stale_after_seconds,
                    last_status = f.last_status.as_deref(),
                    last_attempt_at = f.last_attempt_at.as_deref(),
                    consecutive_failures = f.consecutive_failures,
                    "the mirror is stale"
                );
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot read the mirror's freshness"),
        }
        match self.store.queue_health_alerts(&now_utc()) {
            Ok(0) => {}
            Ok(n) => {
                info!(alerts = n, "health alerts queued");
                delivery.notify_one();
            }
            Err(e) if e.is_busy() => {
                debug!("the database is busy; the health alerts are queued at the next check")
            }
            Err(e) => {
                warn!(error = %e, "cannot queue the health alerts; trying again at the next check")
            }
        }
    }

    /// Checks every [`Watcher::period`], the first time one period after it starts (a
    /// daemon that was down a while gets its first run a chance). Never returns.
    pub async fn run(mut self, delivery: Arc<Notify>) {
        let mut ticks = tokio::time::interval(self.period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.check(&delivery);
        }
    }
}

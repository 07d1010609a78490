//! `orgmirror run`: the daemon. Syncs on `schedule.cron` until SIGTERM or SIGINT, never
//! two runs at once, every run through [`sync::run_once`] (the path `sync` takes), and
//! tells systemd how it is doing (`Type=notify`: READY, STATUS, WATCHDOG, STOPPING).
//!
//! How it fits together:
//! - The schedule (tokio-cron-scheduler: the job of `schedule.cron`, or with `"auto"` a
//!   one-shot job per interval the cadence chooses, each arming the next) only *asks* for a
//!   run: it flips `pending` from false to true and sends a tick to the loop. **A tick that finds `pending` already true (a run queued or going) is
//!   skipped and logged**, so runs never overlap and never pile up.
//! - The loop owns the `Store` and the `Client` and runs one sync at a time; a failed run
//!   is recorded by `run_once` (which also queues the health alerts its outcome calls
//!   for) and the daemon carries on. Each run reads the credentials afresh
//!   (`TOGGL_API_TOKEN`, `api.token_file`, the systemd credential): a key replaced in its
//!   file is used from the next tick on, and a refused key is never kept.
//! - A health check on a timer (`alerts::watch`, its own connection) tells the journal, and
//!   the health rules, when the mirror goes stale, also while a run hangs.
//! - The first stop signal stops the schedule. A run in progress gets
//!   `schedule.shutdown_timeout` to finish; after that its future is dropped (it can only be
//!   parked at an HTTP await; dropping it rolls back the run's one transaction, so nothing
//!   is ever half-written) and its `sync_runs` row is marked failed with [`SHUTDOWN_REASON`]. The
//!   database is closed and the process exits 0.
//! - A second signal while waiting for the run abandons it at once, marks it failed with
//!   [`SECOND_SIGNAL_REASON`] and exits 1.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tracing::{debug, error, info, warn};

use crate::cadence;
use crate::clock::now_utc;
use crate::commands::{client_for, load_config, open_store, CommandError, Exit};
use crate::config::{Config, ConfigError};
use crate::store::{Store, StoreError};
use crate::sync::{self, RunReport, SyncOptions};

/// The `sync_runs.error` of a run abandoned because it outlived `schedule.shutdown_timeout`.
pub const SHUTDOWN_REASON: &str =
    "interrupted: shutdown (the run did not finish within schedule.shutdown_timeout)";
/// The `sync_runs.error` of a run abandoned by a second stop signal.
pub const SECOND_SIGNAL_REASON: &str = "interrupted: shutdown (a second stop signal)";

/// Why the daemon could not start, or stopped other than cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config, the credentials, the database, the alert rules.
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot {doing} the schedule: {source}")]
    Schedule {
        doing: &'static str,
        source: JobSchedulerError,
    },
    /// A second stop signal abandoned the run in progress (it is worth another, which
    /// systemd restarts the service for).
    #[error("the run in progress was abandoned: {SECOND_SIGNAL_REASON}")]
    Abandoned,
}

crate::commands::from_layers!(DaemonError);

/// How soon a run that could not start (the database held by another writer past
/// `database.busy_timeout`) is asked for again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a run was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// `schedule.run_at_start`.
    Start,
    /// A cron tick.
    Schedule,
    /// A run that could not start (another process held the database past
    /// `database.busy_timeout`), asked for again shortly after.
    Retry,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Schedule => "schedule",
            Trigger::Retry => "retry",
        }
    }
}

/// Asks the loop for a run unless one is queued or going; the single gate against overlap.
#[derive(Clone)]
struct RunGate {
    pending: Arc<AtomicBool>,
    ticks: mpsc::Sender<Trigger>,
}

impl RunGate {
    fn request(&self, trigger: Trigger) {
        if self
            .pending
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            warn!(
                trigger = trigger.as_str(),
                "tick skipped: the previous run is still going"
            );
            return;
        }
        if self.ticks.try_send(trigger).is_err() {
            // The loop has stopped taking ticks: the daemon is shutting down.
            self.pending.store(false, Ordering::Release);
            debug!(trigger = trigger.as_str(), "tick dropped: shutting down");
        }
    }

    fn done(&self) {
        self.pending.store(false, Ordering::Release);
    }
}

/// SIGTERM and SIGINT.
struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the next stop signal.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// `WATCHDOG=1` at half of `WATCHDOG_USEC`, when systemd asks for it.
struct Watchdog(Option<tokio::time::Interval>);

impl Watchdog {
    fn from_env() -> Watchdog {
        // For this process only (`WATCHDOG_PID`): a child the service runs does not ping.
        let usec = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok());
        let ours = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            == Some(std::process::id());
        if let (Some(usec @ 1..), true) = (usec, ours) {
            let period = Duration::from_micros(usec / 2).max(Duration::from_millis(100));
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            info!(
                period_ms = period.as_millis() as u64,
                "systemd watchdog enabled"
            );
            Watchdog(Some(interval))
        } else {
            Watchdog(None)
        }
    }

    /// Waits for the next ping time and pings; never returns when there is no watchdog.
    async fn tick(&mut self) {
        match &mut self.0 {
            Some(interval) => {
                interval.tick().await;
                notify(&["WATCHDOG=1"]);
            }
            None => std::future::pending().await,
        }
    }
}

/// Sends `states` (`READY=1`, `STATUS=…`) to systemd's notify socket, `$NOTIFY_SOCKET` (a
/// path, or `@name` in the abstract namespace); a no-op outside systemd.
fn notify(states: &[&str]) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = states.join("\n") + "\n";
    let sent =
        UnixDatagram::unbound().and_then(|datagram| match socket.as_bytes().strip_prefix(b"@") {
            Some(name) => {
                datagram.send_to_addr(message.as_bytes(), &SocketAddr::from_abstract_name(name)?)
            }
            None => datagram.send_to(message.as_bytes(), &socket),
        });
    if let Err(e) = sent {
        debug!(error = %e, "sd_notify failed");
    }
}

/// How a run the loop started ended.
enum RunFate {
    /// It finished (committed, failed or refused: `run_once` recorded it).
    Finished(Result<RunReport, StoreError>),
    /// It finished after a stop signal arrived: record it, then stop.
    FinishedThenStop(Result<RunReport, StoreError>),
    /// It outlived `schedule.shutdown_timeout` after a stop signal and was dropped.
    Abandoned,
    /// A second stop signal arrived while waiting for it; it was dropped.
    Killed,
}

/// `orgmirror run`. A failed run is recorded with the exit status `exit_status` gives its
/// error (`exit`'s mapping).
pub async fn run(
    config_path: Option<&Path>,
    exit_status: sync::ExitStatusOf,
) -> Result<Exit, DaemonError> {
    // First, so that a signal during start-up is handled as a stop, not as death.
    let mut signals = StopSignals::install().map_err(DaemonError::Signals)?;
    let (config_file, config) = load_config(config_path)?;
    let client = client_for(&config)?;
    // One daemon per database, for its whole life (the writer lock is only held by runs).
    let mut store = open_store(&config)?;
    store.lock_daemon()?;
    // Alerts are delivered on a task of their own (a dead target never holds up a run),
    // woken after each run; metrics are served on another.
    let alert_wake = Arc::new(tokio::sync::Notify::new());
    if let Some(deliverer) = crate::alerts::deliver::Deliverer::new(&config)? {
        tokio::spawn(deliverer.run(Arc::clone(&alert_wake)));
    }
    // The health check on a timer: a run that hangs, or a schedule that stopped firing,
    // makes the mirror stale without a run finishing to say so.
    let watcher = crate::alerts::watch::Watcher::new(&config)?;
    debug!(
        period_ms = watcher.period().as_millis() as u64,
        "health check armed"
    );
    tokio::spawn(watcher.run(Arc::clone(&alert_wake)));
    crate::metrics::spawn(&config).await?;

    let (ticks_tx, mut ticks) = mpsc::channel::<Trigger>(1);
    let gate = RunGate {
        pending: Arc::new(AtomicBool::new(false)),
        ticks: ticks_tx,
    };
    let mut scheduler = arm_schedule(&config, gate.clone()).await?;
    let cron = config.schedule.cron.as_str();
    let shutdown_timeout = config.schedule.shutdown_timeout.duration();
    info!(
        config = %config_file.display(),
        database = %config.database.path.display(),
        cron,
        run_at_start = config.schedule.run_at_start,
        shutdown_timeout_s = shutdown_timeout.as_secs_f64(),
        "daemon started"
    );
    notify(&[
        "READY=1",
        &format!("STATUS=waiting for the first run (schedule \"{cron}\" UTC)"),
    ]);
    if config.schedule.run_at_start {
        gate.request(Trigger::Start);
    }

    let mut watchdog = Watchdog::from_env();
    let options = SyncOptions {
        allow_mass_delete: false,
        progress: false,
        prints_report: false,
        exit_status: Some(exit_status),
    };
    let outcome: Result<(), DaemonError> = loop {
        let trigger = tokio::select! {
            signal = signals.recv() => {
                info!(signal, "stop signal received; no run in progress");
                break Ok(());
            }
            _ = watchdog.tick() => continue,
            trigger = ticks.recv() => match trigger {
                Some(t) => t,
                None => break Ok(()),
            },
        };
        debug!(trigger = trigger.as_str(), "run starting");
        let end = {
            let run = sync::run_with_fresh_credentials(&client, &mut store, &config, &options);
            tokio::pin!(run);
            loop {
                tokio::select! {
                    result = &mut run => break RunFate::Finished(result),
                    _ = watchdog.tick() => {}
                    signal = signals.recv() => {
                        info!(
                            signal,
                            shutdown_timeout_s = shutdown_timeout.as_secs_f64(),
                            "stop signal received; letting the run in progress finish"
                        );
                        stop_schedule(&mut scheduler).await;
                        notify(&[
                            "STOPPING=1",
                            "STATUS=stopping: waiting for the run in progress",
                        ]);
                        break finish_or_abandon(run.as_mut(), &mut signals, &mut watchdog, shutdown_timeout).await;
                    }
                }
            }
        };
        gate.done();
        alert_wake.notify_one();
        match end {
            RunFate::Finished(Err(e)) if e.is_locked() || e.is_busy() => {
                // Not lost: another writer held the database all along; try again soon.
                warn!(error = %e, retry_in_s = RETRY_AFTER.as_secs(), "the run could not start; retrying shortly");
                let gate = gate.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RETRY_AFTER).await;
                    gate.request(Trigger::Retry);
                });
            }
            RunFate::Finished(result) => report_run(result),
            RunFate::FinishedThenStop(result) => {
                report_run(result);
                break Ok(());
            }
            RunFate::Abandoned => {
                mark_abandoned(&mut store, SHUTDOWN_REASON);
                break Ok(());
            }
            RunFate::Killed => {
                mark_abandoned(&mut store, SECOND_SIGNAL_REASON);
                // Exits 1: the abandoned run is worth another, which systemd restarts for.
                break Err(DaemonError::Abandoned);
            }
        }
    };

    stop_schedule(&mut scheduler).await;
    notify(&["STOPPING=1", "STATUS=stopped"]);
    drop(store);
    info!(
        stopped_cleanly = outcome.is_ok(),
        "daemon stopped; database closed"
    );
    outcome.map(|()| Exit::Ok)
}

/// Waits up to `timeout` for the run to finish; a second signal gives up at once.
async fn finish_or_abandon<F>(
    mut run: Pin<&mut F>,
    signals: &mut StopSignals,
    watchdog: &mut Watchdog,
    timeout: Duration,
) -> RunFate
where
    F: Future<Output = Result<RunReport, StoreError>>,
{
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            result = &mut run => return RunFate::FinishedThenStop(result),
            _ = &mut deadline => {
                warn!(
                    shutdown_timeout_s = timeout.as_secs_f64(),
                    "the run in progress did not finish within schedule.shutdown_timeout; abandoning it"
                );
                return RunFate::Abandoned;
            }
            signal = signals.recv() => {
                warn!(signal, "second stop signal; abandoning the run in progress and exiting now");
                return RunFate::Killed;
            }
            _ = watchdog.tick() => {}
        }
    }
}

/// Logs what the loop needs to know of a run and tells systemd (the run's own summary
/// event is logged by `sync`).
fn report_run(result: Result<RunReport, StoreError>) {
    match result {
        Ok(report) => {
            let status = if report.committed {
                format!(
                    "last run {} succeeded at {}: {} events ({})",
                    report.run_id,
                    now_utc(),
                    report.events_written(),
                    report.events_line()
                )
            } else {
                let outcome = if report.refused() {
                    "was refused"
                } else {
                    "failed"
                };
                format!(
                    "last run {} {outcome} at {}: {}",
                    report.run_id,
                    now_utc(),
                    report
                        .error
                        .as_ref()
                        .map_or_else(|| "unknown error".to_string(), |e| e.to_string())
                )
            };
            notify(&[&format!("STATUS={status}")]);
        }
        Err(e) => {
            error!(error = %e, "the run could not be recorded in the database; the daemon carries on");
            notify(&[&format!(
                "STATUS=last run could not be recorded at {}: {e}",
                now_utc()
            )]);
        }
    }
}

/// Marks the abandoned run's `sync_runs` row failed.
fn mark_abandoned(store: &mut Store, reason: &str) {
    match store.abandon_running(reason, &now_utc()) {
        Ok(rows) => warn!(rows, reason, "abandoned run marked failed"),
        Err(e) => error!(
            error = %e,
            "cannot mark the abandoned run failed; the next run will mark it interrupted"
        ),
    }
}

/// Starts the schedule (UTC), each tick going through `gate`: the job of `schedule.cron`,
/// or with `cron = "auto"` the first of [`auto_job`]'s one-shot jobs.
async fn arm_schedule(config: &Config, gate: RunGate) -> Result<JobScheduler, DaemonError> {
    let scheduler_error = |doing: &'static str, source| DaemonError::Schedule { doing, source };
    let scheduler = JobScheduler::new()
        .await
        .map_err(|e| scheduler_error("create", e))?;
    let cron = config.schedule.cron.as_str();
    let job = if cron == cadence::AUTO {
        auto_job(Arc::new(config.clone()), gate).map_err(|e| scheduler_error("arm", e))?
    } else {
        Job::new_async(cron, move |_id, _scheduler| {
            let gate = gate.clone();
            Box::pin(async move { gate.request(Trigger::Schedule) })
        })
        .map_err(|e| ConfigError::Invalid {
            field: "schedule.cron",
            message: format!("`{cron}` is not a valid cron expression: {e}"),
        })?
    };
    scheduler
        .add(job)
        .await
        .map_err(|e| scheduler_error("arm", e))?;
    scheduler
        .start()
        .await
        .map_err(|e| scheduler_error("start", e))?;
    Ok(scheduler)
}

/// `cron = "auto"`: a run after each interval the cadence chooses, chosen again before each
/// (a run changes what a sync costs).
fn auto_job(config: Arc<Config>, gate: RunGate) -> Result<Job, JobSchedulerError> {
    let interval = move || {
        let cadence = cadence::plan_at(&config, &config.database.path);
        info!(
            interval_s = cadence.interval_seconds,
            planned_requests_per_hour = cadence.planned_requests_per_hour,
            reason = %cadence.reason,
            "auto schedule: the next run after this interval"
        );
        Duration::from_secs(cadence.interval_seconds)
    };
    chosen_intervals(
        Arc::new(interval),
        Arc::new(move || gate.request(Trigger::Schedule)),
    )
}

/// A one-shot job after `interval()` that calls `tick` and adds the next such job to the
/// scheduler that ran it.
fn chosen_intervals(
    interval: Arc<dyn Fn() -> Duration + Send + Sync>,
    tick: Arc<dyn Fn() + Send + Sync>,
) -> Result<Job, JobSchedulerError> {
    Job::new_one_shot_async(interval(), move |_id, scheduler| {
        let (interval, tick) = (Arc::clone(&interval), Arc::clone(&tick));
        Box::pin(async move {
            tick();
            let next = match chosen_intervals(interval, tick) {
                Ok(job) => scheduler.add(job).await.map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = next {
                error!(error = %e, "the schedule cannot arm its next run; restart the daemon");
            }
        })
    })
}

/// Stops taking ticks.
async fn stop_schedule(scheduler: &mut JobScheduler) {
    if let Err(e) = scheduler.shutdown().await {
        warn!(error = %e, "the schedule did not stop cleanly");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn an_interval_chosen_again_before_each_tick_keeps_the_schedule_going() {
        let chosen = Arc::new(AtomicUsize::new(0));
        let ticks = Arc::new(AtomicUsize::new(0));
        let interval = {
            let chosen = Arc::clone(&chosen);
            move || {
                chosen.fetch_add(1, Ordering::SeqCst);
                Duration::from_millis(200)
            }
        };
        let tick = {
            let ticks = Arc::clone(&ticks);
            move || {
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        };
        let mut scheduler = JobScheduler::new().await.unwrap();
        let job = chosen_intervals(Arc::new(interval), Arc::new(tick)).unwrap();
        scheduler.add(job).await.unwrap();
        scheduler.start().await.unwrap();
        let started = std::time::Instant::now();
        while ticks.load(Ordering::SeqCst) < 3 && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        scheduler.shutdown().await.unwrap();
        let ticks = ticks.load(Ordering::SeqCst);
        assert!(ticks >= 3, "{ticks} ticks");
        // One interval chosen before each tick (the first job's, then each successor's as
        // its predecessor ticks), and perhaps the next one's.
        let chosen = chosen.load(Ordering::SeqCst);
        assert!(
            (ticks..=ticks + 1).contains(&chosen),
            "{chosen} chosen, {ticks} ticks"
        );
    }
}

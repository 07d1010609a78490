//! Writing a full run while it still pulls: a thread with its own connection opens the
//! run's one transaction at its first write, inserts the entities new to the mirror as
//! pages hand them over, and gives the connection back (the transaction open) for the
//! final diff and the commit. Nothing is visible to readers before that commit; a run
//! that fails or is refused rolls back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::write::{self, Counts, RunEnd, RunTotals};
use super::{sqlite_error, OutboxRules, StoreError};
use crate::diff::Diff;
use crate::model::{EntityKey, NewRow, StoredHashes};

/// Batches in flight between the pull and the writer: the pull waits when the writer
/// is this far behind, so a slow disk bounds memory instead of growing it.
const QUEUE: usize = 4;

/// The connection back, the inserts counted, and whether the run's transaction began.
type Outcome = rusqlite::Result<(Connection, Counts, bool)>;

/// The writing side of a full run (see the module docs).
pub struct EarlyWriter {
    sender: Option<SyncSender<Vec<NewRow>>>,
    /// Batches the writer is done with, handed back to be freed by the thread that
    /// allocated them: glibc frees another thread's allocations slowly, under its
    /// arena's lock (a first sync took 5% longer freeing them on the writer).
    returned: Receiver<Vec<NewRow>>,
    thread: Option<JoinHandle<Outcome>>,
    path: PathBuf,
    run_id: i64,
    observed_at: String,
    outbox: Option<Arc<dyn OutboxRules>>,
}

impl EarlyWriter {
    /// Starts the writer on `conn` (a connection of its own) for run `run_id`, whose
    /// history rows and events carry `observed_at`.
    pub(super) fn start(
        conn: Connection,
        path: PathBuf,
        run_id: i64,
        observed_at: String,
        outbox: Option<Arc<dyn OutboxRules>>,
    ) -> Result<EarlyWriter, StoreError> {
        let (sender, batches) = sync_channel::<Vec<NewRow>>(QUEUE);
        let (give_back, returned) = channel::<Vec<NewRow>>();
        let at = observed_at.clone();
        let thread = std::thread::Builder::new()
            .name("orgmirror-writer".into())
            .spawn(move || {
                let mut counts = Counts::new();
                // The run's transaction begins with its first write, not with the run: a
                // run that pulls for long (paced, waiting on the quota, or hung) without
                // anything new to write leaves the database to the alert outbox meanwhile.
                let mut next_history_id = None;
                for batch in batches {
                    let next = match next_history_id.as_mut() {
                        Some(next) => next,
                        None => next_history_id.insert(begin(&conn)?),
                    };
                    if let Err(e) = write::insert_new(&conn, run_id, &at, &batch, next) {
                        let _ = conn.execute_batch("ROLLBACK");
                        return Err(e);
                    }
                    for row in &batch {
                        *counts.entry((row.key.entity, "insert")).or_default() += 1;
                    }
                    let _ = give_back.send(batch);
                }
                Ok((conn, counts, next_history_id.is_some()))
            })
            .map_err(|e| StoreError::Io {
                path: path.clone(),
                message: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(EarlyWriter {
            sender: Some(sender),
            returned,
            thread: Some(thread),
            path,
            run_id,
            observed_at,
            outbox,
        })
    }

    /// When the run's history rows and events say it observed the organization.
    pub fn observed_at(&self) -> &str {
        &self.observed_at
    }

    /// Queues entities new to the mirror for insertion, after freeing the batches the
    /// writer gave back. Waits while the writer is [`QUEUE`] batches behind. Fails when
    /// the writer stopped; [`EarlyWriter::finish`] or [`EarlyWriter::error`] then says why.
    pub fn send(&self, rows: Vec<NewRow>) -> Result<(), WriterStopped> {
        if rows.is_empty() {
            return Ok(());
        }
        while let Ok(written) = self.returned.try_recv() {
            drop(written);
        }
        match &self.sender {
            Some(sender) => sender.send(rows).map_err(|_| WriterStopped),
            None => Err(WriterStopped),
        }
    }

    /// Why the writer stopped, if it did. Either way the run's transaction is rolled back.
    pub fn error(mut self) -> Option<StoreError> {
        match self.join() {
            Ok((conn, _, begun)) => {
                if begun {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                None
            }
            Err(e) => Some(e),
        }
    }

    /// Writes the final diff (its changes to entities in `written` revise what the
    /// writer inserted), marks the run succeeded, and commits everything at once.
    pub fn finish(
        mut self,
        diff: &Diff<'_>,
        written: &BTreeMap<EntityKey, StoredHashes>,
        workspace_names: &BTreeMap<i64, String>,
        totals: &RunTotals,
    ) -> Result<Counts, StoreError> {
        let started = std::time::Instant::now();
        let (conn, counts, begun) = self.join()?;
        if !begun {
            begin(&conn).map_err(sqlite_error(&self.path))?;
        }
        let drained = started.elapsed();
        let end = RunEnd {
            run_id: self.run_id,
            observed_at: &self.observed_at,
            workspace_names,
            totals,
            outbox: self.outbox.as_deref(),
        };
        let result = write::finish(&conn, &end, diff, written, counts).and_then(|counts| {
            let written = started.elapsed();
            conn.execute_batch("COMMIT")?;
            tracing::debug!(
                run_id = self.run_id,
                drain_ms = drained.as_millis() as u64,
                final_changes_ms = (written - drained).as_millis() as u64,
                commit_ms = (started.elapsed() - written).as_millis() as u64,
                "run written"
            );
            Ok(counts)
        });
        if result.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        result.map_err(sqlite_error(&self.path))
    }

    /// Stops the writer and takes its connection back, the transaction (if begun) still open.
    fn join(&mut self) -> Result<(Connection, Counts, bool), StoreError> {
        self.sender = None;
        let thread = self.thread.take().ok_or_else(|| StoreError::Io {
            path: self.path.clone(),
            message: "the writer thread was already stopped".to_string(),
        })?;
        match thread.join() {
            Ok(outcome) => outcome.map_err(sqlite_error(&self.path)),
            Err(_) => Err(StoreError::Io {
                path: self.path.clone(),
                message: "the writer thread panicked; nothing was committed".to_string(),
            }),
        }
    }
}

/// Opens the run's transaction (holding the write lock until its commit or rollback) and
/// returns the first history id the run numbers its rows from.
fn begin(conn: &Connection) -> rusqlite::Result<i64> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    // The writer numbers the history rows it inserts itself, so that their events can
    // point at them from the same multi-row statements; it holds the write lock.
    conn.query_row(
        "SELECT coalesce(max(history_id), 0) + 1 FROM entity_history",
        [],
        |r| r.get(0),
    )
    .inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })
}

impl Drop for EarlyWriter {
    /// A run that ends without [`EarlyWriter::finish`] leaves no trace: roll back.
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Ok((conn, _, true)) = self.join() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
}

/// The writer thread is no longer taking rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the database writer stopped")]
pub struct WriterStopped;

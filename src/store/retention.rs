//! `[retention] history`: at the end of each successful run, in its transaction, every
//! version that ended before the cutoff goes, with the events that ended with it (the one
//! that opened it, or the deletion that closed it); an event that opened a version still
//! kept loses only its `before_history`. A current version is never dropped, however old.
//! A person whose every version ended before the cutoff (a leaver long gone) is erased
//! first (`store::erase`), with a receipt whose reason is `retention`. The run records the
//! cutoff, so that `asof` refuses a time before it and a replica drops the same rows.

use rusqlite::{params, Connection};

use super::erase::{erase_in, needles_of, write_receipt, EraseRequest};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retained {
    pub versions: usize,
    pub events: usize,
    /// People long gone, erased by this pass.
    pub erased: usize,
}

/// The pass for run `run_id` with `cutoff` (RFC 3339 UTC), inside its transaction.
pub(super) fn retain(
    tx: &Connection,
    run_id: i64,
    cutoff: &str,
    at: &str,
    erased_by: &str,
) -> rusqlite::Result<Retained> {
    let mut done = Retained::default();
    let leavers: Vec<i64> = tx
        .prepare(
            "SELECT DISTINCT h.id FROM entity_history h
             WHERE h.valid_to IS NOT NULL AND h.valid_to < ?1 AND h.entity = 'user'
               AND NOT EXISTS (SELECT 1 FROM entity_history c
                               WHERE c.entity = 'user' AND c.id = h.id
                                 AND (c.valid_to IS NULL OR c.valid_to >= ?1))",
        )?
        .query_map([cutoff], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for user in leavers {
        let mut needles = needles_of(tx, user, false)?;
        // Many at once: the audit events naming them as actor or subject, by index.
        let counts = erase_in(tx, run_id, user, false, false, &mut needles)?;
        if counts.values().sum::<i64>() > 0 {
            let request = EraseRequest {
                user,
                reason: "retention",
                erased_by,
                history_only: false,
                dry_run: false,
            };
            write_receipt(tx, run_id, &request, &counts, at)?;
            done.erased += 1;
        }
    }
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS retention_expired (
             history_id INTEGER PRIMARY KEY, entity TEXT NOT NULL, entity_id TEXT NOT NULL);
         CREATE TEMP TABLE IF NOT EXISTS retention_events (event_id INTEGER PRIMARY KEY);
         DELETE FROM temp.retention_expired;
         DELETE FROM temp.retention_events;",
    )?;
    done.versions = tx.execute(
        "INSERT INTO temp.retention_expired
         SELECT history_id, entity, entity_id FROM entity_history
         WHERE valid_to IS NOT NULL AND valid_to < ?1",
        [cutoff],
    )?;
    if done.versions > 0 {
        done.events = tx.execute(
            "INSERT OR IGNORE INTO temp.retention_events
             SELECT e.event_id FROM temp.retention_expired x
             JOIN change_log e ON e.entity = x.entity AND e.entity_id = x.entity_id
             WHERE e.after_history = x.history_id
                OR (e.after_history IS NULL AND e.before_history = x.history_id)",
            [],
        )?;
        tx.execute_batch(
            "DELETE FROM alert_outbox WHERE event_id IN (SELECT event_id FROM temp.retention_events);
             DELETE FROM change_log WHERE event_id IN (SELECT event_id FROM temp.retention_events);
             UPDATE change_log SET before_history = NULL
             WHERE event_id IN (SELECT e.event_id FROM temp.retention_expired x
                                JOIN change_log e ON e.entity = x.entity AND e.entity_id = x.entity_id
                                WHERE e.before_history = x.history_id);
             DELETE FROM entity_history WHERE history_id IN (SELECT history_id FROM temp.retention_expired);",
        )?;
    }
    tx.execute_batch("DELETE FROM temp.retention_expired; DELETE FROM temp.retention_events;")?;
    tx.execute(
        "UPDATE sync_runs SET retention_cutoff = ?2 WHERE sync_run_id = ?1",
        params![run_id, cutoff],
    )?;
    Ok(done)
}

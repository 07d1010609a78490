//! The audit log's copies of an erased person (`audit_actors`, `audit_events`), and who
//! the log must not bring back.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, Connection};

use super::{erased_name, Needles};

/// The account ids (`user_account_id`) of the people erased whole who are not members now
/// (no current version), with their `organization_user_id`: what the audit log says of
/// them later — a summary, an event backfilled — is stored tombstoned. A re-hired person
/// is a member again, and theirs are stored as anyone's.
pub(in crate::store) fn erased_accounts(conn: &Connection) -> rusqlite::Result<BTreeMap<i64, i64>> {
    let mut stmt = conn.prepare_cached(ERASED_ACCOUNTS)?;
    let ids = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
    ids.collect()
}

/// [`erased_accounts`]'s query. Every run with the audit log on asks it, so it reads the
/// erasures first (`CROSS JOIN` keeps that order): the planner otherwise read every user's
/// history to find none, 45 ms a run at 10k users.
pub(super) const ERASED_ACCOUNTS: &str = "
    SELECT DISTINCT json_extract(h.data_json, '$.user_account_id'), e.organization_user_id
    FROM erasures e
    CROSS JOIN entity_history h ON h.entity = 'user' AND h.id = e.organization_user_id
    WHERE NOT e.history_only
      AND json_extract(h.data_json, '$.user_account_id') IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM entity_history c
                      WHERE c.entity = 'user' AND c.id = e.organization_user_id
                        AND c.valid_to IS NULL)";

/// The audit log's copies of `user`: their `audit_actors` row (found by the account id every
/// version keeps, or by one of their e-mail addresses) tombstoned like a version, and their
/// names and e-mail addresses — the mirror's and the log's own — replaced in every audit
/// event that holds one (`raw_json`, `old_value`, `new_value`, `meta_data`). The events keep
/// their times, types, actions, ids and de-duplication keys: one pulled again is the row
/// already held, and stays as it is. With `history_only` the actor row (the current name)
/// stays, and only the names the history held go from the events.
/// The audit actors of person ?1 (an organization user id), by the account id their versions
/// keep or by one of the e-mail addresses in ?2 (a JSON array). Both searches use an index
/// (`audit_actors_by_account`, `audit_actors_by_email`): without one, every actor is read once
/// per person a retention pass erases (65 s against 3 s for a year's pass at 100k users).
pub(super) const ACTORS_OF_PERSON: &str = "
    SELECT user_id, name, email FROM audit_actors
    WHERE user_account_id IN (SELECT json_extract(data_json, '$.user_account_id')
                              FROM entity_history WHERE entity = 'user' AND id = ?1)
    UNION
    SELECT user_id, name, email FROM audit_actors
    WHERE email IN (SELECT value FROM json_each(?2))";

pub(super) fn erase_audit(
    tx: &Connection,
    run_id: i64,
    user: i64,
    history_only: bool,
    every_event: bool,
    needles: &mut Needles,
) -> rusqlite::Result<(usize, usize)> {
    let tomb = erased_name(user);
    let mut texts: BTreeSet<String> = needles.each().into_iter().map(|(t, _)| t).collect();
    let mut actors = 0;
    let mut actor_ids = Vec::new();
    if !history_only {
        let mut stmt = tx.prepare_cached(ACTORS_OF_PERSON)?;
        let emails = serde_json::to_string(&needles.emails).unwrap_or_else(|_| "[]".into());
        let found: Vec<(i64, Option<String>, Option<String>)> = stmt
            .query_map(params![user, emails], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (actor, name, email) in found {
            actor_ids.push(actor);
            // The log's own spelling is looked for afterwards too.
            if let Some(name) = name.filter(|n| n.trim().len() >= 3 && *n != tomb) {
                needles.names.insert(name.clone());
                texts.insert(name);
            }
            if let Some(email) = email.filter(|e| !e.trim().is_empty()) {
                needles.emails.insert(email.clone());
                texts.insert(email);
            }
            // Written by this run: a replica upserts it with the run.
            actors += tx.execute(
                "UPDATE audit_actors SET name = ?2, email = NULL, sync_run_id = ?3
                 WHERE user_id = ?1 AND (name IS NOT ?2 OR email IS NOT NULL)",
                params![actor, tomb, run_id],
            )?;
        }
    }
    let actor_ids = serde_json::to_string(&actor_ids).unwrap_or_else(|_| "[]".into());
    let mut events = BTreeSet::new();
    if every_event {
        // Every event holding one of their texts, whoever it is about.
        for text in &texts {
            let mut stmt = tx.prepare_cached(
                "UPDATE audit_events SET raw_json = replace(raw_json, ?1, ?2),
                     old_value = replace(old_value, ?1, ?2), new_value = replace(new_value, ?1, ?2),
                     meta_data = replace(meta_data, ?1, ?2), erased_by = ?3
                 WHERE instr(raw_json, ?1) OR instr(old_value, ?1) OR instr(new_value, ?1)
                    OR instr(meta_data, ?1)
                 RETURNING audit_event_id",
            )?;
            for id in stmt.query_map(params![text, tomb, run_id], |r| r.get::<_, i64>(0))? {
                events.insert(id?);
            }
        }
        return Ok((actors, events.len()));
    }
    // Retention's many people long gone at once: the events naming them as actor or as the
    // user they are about, found through the indexes, never a scan of the whole log.
    let ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT audit_event_id FROM audit_events
             WHERE actor_user_id IN (SELECT value FROM json_each(?1))
             UNION
             SELECT audit_event_id FROM audit_events
             WHERE subject_entity = 'user' AND subject_id = ?2",
        )?
        .query_map(params![actor_ids, user.to_string()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = tx.prepare_cached(
        "UPDATE audit_events SET raw_json = replace(raw_json, ?1, ?2),
             old_value = replace(old_value, ?1, ?2), new_value = replace(new_value, ?1, ?2),
             meta_data = replace(meta_data, ?1, ?2), erased_by = ?3
         WHERE audit_event_id = ?4
           AND (instr(raw_json, ?1) OR instr(old_value, ?1) OR instr(new_value, ?1)
                OR instr(meta_data, ?1))",
    )?;
    for id in ids {
        for text in &texts {
            if stmt.execute(params![text, tomb, run_id, id])? > 0 {
                events.insert(id);
            }
        }
    }
    Ok((actors, events.len()))
}

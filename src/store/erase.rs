//! Forgetting a person (`orgmirror erase`): every version of them, the current rows, the
//! alert payloads and the free texts that name them are rewritten or deleted in one
//! transaction, recorded as a run of kind `erasure` with a receipt in `erasures`. What
//! stays is a tombstone with the organization's shape: ids, validity intervals,
//! memberships. Then the bytes: `secure_delete` (set on every writable connection) zeroes
//! what the transaction freed, a `TRUNCATE` checkpoint empties the WAL, and a mirror whose
//! free space predates `secure_delete` is vacuumed once ([`Store::finish_erasure`]).
//!
//! A membership's JSON holds ids only (group, user, account, roles) and a group's none of
//! its members, so they keep their versions; an alert payload names the people an event is
//! about, so every payload of an event about the person is rewritten.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use audit_log::erase_audit;
pub(super) use audit_log::erased_accounts;

use super::{clock, sqlite_error, Store, StoreError, INTERRUPTED};
use crate::model::{content_hash, RateRecord, UserCustomFieldRecord, UserRecord};

/// The name a tombstoned version carries.
pub fn erased_name(user: i64) -> String {
    format!("erased person {user}")
}

/// Rows changed, by table.
pub type EraseCounts = BTreeMap<&'static str, i64>;

/// What to erase.
#[derive(Debug, Clone)]
pub struct EraseRequest<'a> {
    pub user: i64,
    pub reason: &'a str,
    /// Who asked: the OS user (or `retention`).
    pub erased_by: &'a str,
    /// Every version but the current one (a present member).
    pub history_only: bool,
    /// Count what would change and change nothing.
    pub dry_run: bool,
}

/// What an erasure did (or, for a dry run, would do).
#[derive(Debug, Clone, Default)]
pub struct Erasure {
    /// The erasure's run; `None` for a dry run or when nothing was left to erase.
    pub run_id: Option<i64>,
    pub counts: EraseCounts,
    /// The texts whose bytes must be gone afterwards (their names and e-mail addresses,
    /// for a history-only erasure those the current version does not hold). Never shown.
    pub needles: Needles,
}

impl Erasure {
    /// Rows changed in all.
    pub fn total(&self) -> i64 {
        self.counts.values().sum()
    }
}

/// A person's names and e-mail addresses, looked for in the files after an erasure.
#[derive(Debug, Clone, Default)]
pub struct Needles {
    pub emails: BTreeSet<String>,
    pub names: BTreeSet<String>,
}

impl Needles {
    /// Every text (the JSON-escaped form too, where it differs), with whether it is an
    /// e-mail address.
    fn each(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for (set, email) in [(&self.emails, true), (&self.names, false)] {
            for text in set {
                out.push((text.clone(), email));
                let escaped = serde_json::to_string(text).unwrap_or_default();
                let escaped = escaped.trim_matches('"');
                if escaped != text {
                    out.push((escaped.to_string(), email));
                }
            }
        }
        out
    }

    /// Whether `text` contains any of them (case-insensitive).
    pub fn found_in(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        self.emails
            .iter()
            .chain(&self.names)
            .any(|n| text.contains(&n.to_lowercase()))
    }

    fn is_empty(&self) -> bool {
        self.emails.is_empty() && self.names.is_empty()
    }
}

/// Why an erasure was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("user {user} is not in the mirror: nothing to erase (the id is organization_user_id, as in users_current and user_history)")]
    Unknown { user: i64 },
    #[error("user {user} is still a member of the organization, and the next sync would bring their data back: remove them from the organization first, or use --history-only to erase every version but the current one")]
    Present { user: i64 },
    #[error("--reason must not name the person (it is kept in the receipt): give one without their name or e-mail address, such as a ticket number")]
    ReasonNamesThem,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a person's bytes were still found after an erasure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traces {
    /// Files (the database, its `-wal`) holding one of their e-mail addresses.
    pub email_in: Vec<PathBuf>,
    /// Files holding one of their names (which another row may hold too: a namesake).
    pub name_in: Vec<PathBuf>,
}

/// How the bytes were made to go ([`Store::finish_erasure`]).
#[derive(Debug, Clone, Default)]
pub struct BytesGone {
    /// The WAL was emptied (no reader held it).
    pub wal_truncated: bool,
    /// The file was vacuumed (its free space predated `secure_delete`, or held their e-mail).
    pub vacuumed: bool,
    /// What the final search found.
    pub traces: Traces,
    /// Bytes read by the search, and how long it took.
    pub searched_bytes: u64,
    pub search_time: Duration,
}

/// Current tables keyed by `organization_user_id`.
const CURRENT_TABLES: [&str; 6] = [
    "users",
    "user_workspaces",
    "user_tags",
    "user_rates",
    "user_custom_fields",
    "group_members",
];

impl Store {
    /// Erases one person in one transaction recorded as a run of kind `erasure` (or, with
    /// `dry_run`, counts what would change and rolls back). Takes the writer lock, waiting
    /// up to the busy timeout for a run to end.
    pub fn erase(&mut self, request: &EraseRequest<'_>) -> Result<Erasure, EraseError> {
        self.lock_writer_waiting()?;
        let path = self.path.clone();
        let sql = sqlite_error(&path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sql)?;
        let user = request.user;
        let (known, present): (i64, i64) = tx
            .query_row(
                "SELECT count(*), count(*) FILTER (WHERE valid_to IS NULL)
                 FROM entity_history WHERE entity = 'user' AND id = ?1",
                [user],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(&sql)?;
        let in_users: i64 = tx
            .query_row(
                "SELECT count(*) FROM users WHERE organization_user_id = ?1",
                [user],
                |r| r.get(0),
            )
            .map_err(&sql)?;
        if known == 0 && in_users == 0 {
            return Err(EraseError::Unknown { user });
        }
        if (present > 0 || in_users > 0) && !request.history_only {
            return Err(EraseError::Present { user });
        }
        let mut needles = needles_of(&tx, user, request.history_only).map_err(&sql)?;
        if needles.found_in(request.reason) {
            return Err(EraseError::ReasonNamesThem);
        }
        let wall_clock = crate::clock::now_utc();
        let run_id = insert_erasure_run(&tx, &wall_clock).map_err(&sql)?;
        let counts =
            erase_in(&tx, run_id, user, request.history_only, true, &mut needles).map_err(&sql)?;
        let total: i64 = counts.values().sum();
        if request.dry_run || total == 0 {
            // Nothing to keep: a dry run's counts, or a person erased already.
            drop(tx);
            return Ok(Erasure {
                run_id: None,
                counts,
                needles,
            });
        }
        write_receipt(&tx, run_id, request, &counts, &wall_clock).map_err(&sql)?;
        tx.execute(
            "UPDATE sync_runs SET status = 'succeeded', finished_at = ?2 WHERE sync_run_id = ?1",
            params![run_id, crate::clock::now_utc()],
        )
        .and_then(|_| tx.commit())
        .map_err(&sql)?;
        Ok(Erasure {
            run_id: Some(run_id),
            counts,
            needles,
        })
    }

    /// Takes the writer lock, waiting for a run that holds it (up to the busy timeout).
    fn lock_writer_waiting(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        loop {
            match self.lock_writer() {
                Err(e) if e.is_locked() && started.elapsed() < self.busy_timeout() => {
                    std::thread::sleep(super::BUSY_PAUSE);
                }
                done => return done,
            }
        }
    }

    /// After an erasure (or a retention pass that erased): empties the WAL, vacuums when
    /// the file's free space predates `secure_delete` or still holds one of `needles`'
    /// e-mail addresses, and searches the database file and its WAL for them.
    pub fn finish_erasure(&mut self, needles: &Needles) -> Result<BytesGone, StoreError> {
        let mut done = BytesGone {
            wal_truncated: self.checkpoint_waiting()?,
            ..BytesGone::default()
        };
        let old_free_space: bool = self.sql(self.conn.query_row(
            "SELECT coalesce(max(may_hold_old_bytes), 0) FROM free_space",
            [],
            |r| r.get(0),
        ))?;
        let mut traces = self.traces(needles, &mut done)?;
        // With secure_delete, what this build freed is zeroes: a name found then is a live
        // row's (a namesake's), which VACUUM would keep. An e-mail address is one person's.
        if old_free_space || !traces.email_in.is_empty() {
            // VACUUM rewrites every page from the live rows: free pages and the free
            // blocks inside pages, written before secure_delete, are gone with it.
            self.sql(self.conn.execute_batch("VACUUM"))?;
            self.sql(
                self.conn
                    .execute("UPDATE free_space SET may_hold_old_bytes = 0", []),
            )?;
            done.vacuumed = true;
            done.wal_truncated = self.checkpoint_waiting()?;
            done.searched_bytes = 0;
            done.search_time = Duration::ZERO;
            traces = self.traces(needles, &mut done)?;
        }
        done.traces = traces;
        Ok(done)
    }

    /// After a run with `[retention]` on: a mirror whose free space predates `secure_delete`
    /// is vacuumed once, so that what retention erased is not left there. Returns whether
    /// it was.
    pub fn vacuum_old_free_space(&mut self) -> Result<bool, StoreError> {
        if self.retention.is_none() || !self.has_table("free_space")? {
            return Ok(false);
        }
        let old: bool = self.sql(self.conn.query_row(
            "SELECT coalesce(max(may_hold_old_bytes), 0) FROM free_space",
            [],
            |r| r.get(0),
        ))?;
        if !old {
            return Ok(false);
        }
        self.sql(
            self.conn
                .execute_batch("VACUUM; UPDATE free_space SET may_hold_old_bytes = 0;"),
        )?;
        self.checkpoint()?;
        Ok(true)
    }

    /// A `TRUNCATE` checkpoint, waiting up to the busy timeout for readers to let go.
    fn checkpoint_waiting(&self) -> Result<bool, StoreError> {
        let started = Instant::now();
        loop {
            if self.checkpoint()? {
                return Ok(true);
            }
            if started.elapsed() >= self.busy_timeout() {
                return Ok(false);
            }
            std::thread::sleep(super::BUSY_PAUSE);
        }
    }

    /// Where `needles` occur in the database file and its `-wal`.
    fn traces(&self, needles: &Needles, done: &mut BytesGone) -> Result<Traces, StoreError> {
        let started = Instant::now();
        let mut traces = Traces::default();
        if needles.is_empty() {
            return Ok(traces);
        }
        let each = needles.each();
        for file in [self.path.clone(), wal_path(&self.path)] {
            let (found, read) =
                search_file(&file, &each).map_err(|source| StoreError::Unsearchable {
                    path: file.clone(),
                    source,
                })?;
            done.searched_bytes += read;
            if found.iter().any(|&(_, email)| email) {
                traces.email_in.push(file.clone());
            }
            if found.iter().any(|&(_, email)| !email) {
                traces.name_in.push(file);
            }
        }
        done.search_time += started.elapsed();
        Ok(traces)
    }

    /// The receipts, newest first.
    pub fn erasures(&self, limit: usize) -> Result<Vec<ErasureReceipt>, StoreError> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT erased_at, organization_user_id, reason, erased_by, history_only, counts, sync_run_id
             FROM erasures ORDER BY erasure_id DESC LIMIT ?1",
        ))?;
        let rows = self.sql(stmt.query_map([limit as i64], |r| {
            Ok(ErasureReceipt {
                erased_at: r.get(0)?,
                organization_user_id: r.get(1)?,
                reason: r.get(2)?,
                erased_by: r.get(3)?,
                history_only: r.get(4)?,
                counts: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                sync_run_id: r.get(6)?,
            })
        }))?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// How many receipts there are.
    pub fn erasure_count(&self) -> Result<i64, StoreError> {
        if !self.has_table("erasures")? {
            return Ok(0);
        }
        self.sql(
            self.conn
                .query_row("SELECT count(*) FROM erasures", [], |r| r.get(0)),
        )
    }

    /// The cutoff of the newest retention pass: history before it is not kept.
    pub fn history_kept_from(&self) -> Result<Option<String>, StoreError> {
        if !self.has_column("sync_runs", "retention_cutoff")? {
            return Ok(None);
        }
        self.sql(
            self.conn
                .query_row(
                    "SELECT retention_cutoff FROM sync_runs
             WHERE status = 'succeeded' AND retention_cutoff IS NOT NULL
             ORDER BY sync_run_id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional(),
        )
        .map(Option::flatten)
    }

    fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        self.sql(self.conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        ))
    }
}

/// One row of `erasures`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ErasureReceipt {
    pub erased_at: String,
    pub organization_user_id: i64,
    pub reason: String,
    pub erased_by: String,
    pub history_only: bool,
    pub counts: BTreeMap<String, i64>,
    pub sync_run_id: i64,
}

/// Records the erasure's run (`running` until its transaction marks it succeeded), after
/// marking runs of dead processes interrupted (the writer lock is held).
fn insert_erasure_run(tx: &Connection, wall_clock: &str) -> rusqlite::Result<i64> {
    tx.execute(
        "UPDATE sync_runs SET status = 'failed', error = ?1, finished_at = ?2 WHERE status = 'running'",
        params![INTERRUPTED, wall_clock],
    )?;
    let started_at = clock::run_time(tx, wall_clock)?;
    tx.execute(
        "INSERT INTO sync_runs (kind, started_at, wall_clock_at, status, pid)
         VALUES ('erasure', ?1, ?2, 'running', ?3)",
        params![started_at, wall_clock, i64::from(std::process::id())],
    )?;
    Ok(tx.last_insert_rowid())
}

pub(super) fn write_receipt(
    tx: &Connection,
    run_id: i64,
    request: &EraseRequest<'_>,
    counts: &EraseCounts,
    at: &str,
) -> rusqlite::Result<()> {
    let counts = serde_json::to_string(counts).unwrap_or_else(|_| "{}".to_string());
    tx.execute(
        "INSERT INTO erasures (sync_run_id, erased_at, organization_user_id, reason, erased_by,
                               history_only, counts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            run_id,
            at,
            request.user,
            request.reason,
            request.erased_by,
            request.history_only,
            counts
        ],
    )?;
    Ok(())
}

/// The names and e-mail addresses of `user` that the erasure removes: every version's
/// (for a history-only erasure, those the current version does not hold).
pub(super) fn needles_of(
    conn: &Connection,
    user: i64,
    history_only: bool,
) -> rusqlite::Result<Needles> {
    let mut needles = Needles::default();
    let mut stmt = conn.prepare_cached(
        "SELECT json_extract(data_json, '$.name'), json_extract(data_json, '$.email'),
                valid_to IS NULL
         FROM entity_history WHERE entity = 'user' AND id = ?1
         UNION ALL
         SELECT name, email, 1 FROM users WHERE organization_user_id = ?1",
    )?;
    let mut kept = Needles::default();
    let rows = stmt.query_map([user], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, bool>(2)?,
        ))
    })?;
    for row in rows {
        let (name, email, current) = row?;
        let into = if current && history_only {
            &mut kept
        } else {
            &mut needles
        };
        into.names.extend(name.filter(|n| n.trim().len() >= 3));
        into.emails.extend(email.filter(|e| !e.trim().is_empty()));
    }
    let tomb = erased_name(user);
    needles
        .names
        .retain(|n| !kept.names.contains(n) && *n != tomb);
    needles.emails.retain(|e| !kept.emails.contains(e));
    Ok(needles)
}

/// Erases `user` inside `tx` for run `run_id`: their versions tombstoned (but the current
/// ones with `history_only`), their current rows deleted (unless `history_only`), the alert
/// payloads of events about them rewritten, `needles` replaced in free texts.
pub(super) fn erase_in(
    tx: &Connection,
    run_id: i64,
    user: i64,
    history_only: bool,
    every_event: bool,
    needles: &mut Needles,
) -> rusqlite::Result<EraseCounts> {
    let mut counts = EraseCounts::new();
    // Versions.
    let mut changed = 0;
    {
        let mut select = tx.prepare_cached(
            "SELECT history_id, entity, data_json, valid_to IS NULL FROM entity_history
             WHERE entity IN ('user', 'user_rate', 'user_custom_field') AND id = ?1",
        )?;
        let mut update = tx.prepare_cached(
            "UPDATE entity_history SET data_json = ?2, data_hash = ?3, unknown_hash = NULL,
                 erased_by = ?4
             WHERE history_id = ?1",
        )?;
        let rows: Vec<(i64, String, String, bool)> = select
            .query_map([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (history_id, entity, json, current) in rows {
            if current && history_only {
                continue;
            }
            let tomb = tombstone(&entity, &json, user);
            if tomb != json {
                update.execute(params![history_id, tomb, content_hash(&tomb), run_id])?;
                changed += 1;
            }
        }
    }
    counts.insert("entity_history", changed);
    if !history_only {
        for table in CURRENT_TABLES {
            // The names are this module's constants.
            let n = tx.execute(
                &format!("DELETE FROM {table} WHERE organization_user_id = ?1"),
                [user],
            )?;
            counts.insert(table, n as i64);
        }
    }
    // First the audit log: the spellings it holds join the texts replaced below.
    let (actors, events) = erase_audit(tx, run_id, user, history_only, every_event, needles)?;
    counts.insert("audit_actors", actors as i64);
    counts.insert("audit_events", events as i64);
    let mut outbox = rewrite_payloads(tx, user)?;
    let (runs, more) = scrub_texts(tx, user, needles)?;
    outbox.extend(more);
    counts.insert("alert_outbox", outbox.len() as i64);
    counts.insert("sync_runs", runs.len() as i64);
    Ok(counts)
}

/// The JSON of a version of `entity` with the person's data gone: a user's name is
/// "erased person N", their e-mail, working hours, tags and permissions null or empty; a
/// rate's amount and currency null; a custom field's value and options null or empty. Ids,
/// flags, workspaces and times stay: the organization's shape.
pub(super) fn tombstone(entity: &str, json: &str, user: i64) -> String {
    let typed = match entity {
        "user" => serde_json::from_str::<UserRecord>(json).ok().map(|mut r| {
            r.name = Some(erased_name(user));
            r.email = None;
            r.working_hours = None;
            r.permissions = None;
            r.tags = Vec::new();
            serde_json::to_string(&r)
        }),
        "user_rate" => serde_json::from_str::<RateRecord>(json).ok().map(|mut r| {
            r.hourly_rate = None;
            r.currency = None;
            serde_json::to_string(&r)
        }),
        "user_custom_field" => serde_json::from_str::<UserCustomFieldRecord>(json)
            .ok()
            .map(|mut r| {
                r.value = None;
                r.selected_options = Vec::new();
                serde_json::to_string(&r)
            }),
        _ => return json.to_string(),
    };
    if let Some(Ok(text)) = typed {
        return text;
    }
    // A version this build cannot read as its record: the same fields, by name.
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(json) else {
        return "{}".to_string();
    };
    let (blank, emptied): (&[&str], &[&str]) = match entity {
        "user" => (&["email", "working_hours", "permissions"], &["tags"]),
        "user_rate" => (&["hourly_rate", "currency"], &[]),
        _ => (&["value"], &["selected_options"]),
    };
    for key in blank {
        if map.contains_key(*key) {
            map.insert((*key).to_string(), Value::Null);
        }
    }
    for key in emptied {
        if map.contains_key(*key) {
            map.insert((*key).to_string(), Value::Array(Vec::new()));
        }
    }
    if entity == "user" {
        map.insert("name".to_string(), Value::String(erased_name(user)));
    }
    Value::Object(map).to_string()
}

/// Rewrites the payload of every queued or delivered alert about `user`: the versions as
/// they now read, and the person's name as their newest version has it.
fn rewrite_payloads(tx: &Connection, user: i64) -> rusqlite::Result<BTreeSet<i64>> {
    let name: Option<String> = tx
        .query_row(
            "SELECT json_extract(data_json, '$.name') FROM entity_history
             WHERE entity = 'user' AND id = ?1 ORDER BY history_id DESC LIMIT 1",
            [user],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let mut stmt = tx.prepare_cached(
        "WITH keys AS (
             SELECT entity, entity_id FROM entity_history
             WHERE entity IN ('user', 'user_rate', 'user_custom_field') AND id = ?1
             UNION
             SELECT entity, entity_id FROM entity_history
             WHERE entity = 'group_membership' AND sub_id = ?1)
         SELECT o.outbox_id, o.payload_json, b.data_json, a.data_json
         FROM alert_outbox o
         JOIN change_log e ON e.event_id = o.event_id
         LEFT JOIN entity_history b ON b.history_id = e.before_history
         LEFT JOIN entity_history a ON a.history_id = e.after_history
         WHERE o.event_id IN (SELECT c.event_id FROM keys k
                              JOIN change_log c ON c.entity = k.entity AND c.entity_id = k.entity_id)",
    )?;
    let rows: Vec<(i64, String, Option<String>, Option<String>)> = stmt
        .query_map([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rewritten = BTreeSet::new();
    for (outbox_id, payload, before, after) in rows {
        let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&payload) else {
            continue;
        };
        let version = |j: Option<String>| {
            j.and_then(|j| serde_json::from_str::<Value>(&j).ok())
                .unwrap_or(Value::Null)
        };
        if map.contains_key("before") {
            map.insert("before".to_string(), version(before));
        }
        if map.contains_key("after") {
            map.insert("after".to_string(), version(after));
        }
        if let Some(Value::Array(people)) = map.get_mut("people") {
            for person in people {
                if person.get("organization_user_id").and_then(Value::as_i64) == Some(user) {
                    person["name"] = name.clone().map_or(Value::Null, Value::String);
                }
            }
        }
        let text = Value::Object(map).to_string();
        if text != payload {
            tx.prepare_cached("UPDATE alert_outbox SET payload_json = ?2 WHERE outbox_id = ?1")?
                .execute(params![outbox_id, text])?;
            rewritten.insert(outbox_id);
        }
    }
    Ok(rewritten)
}

/// Replaces `needles` in the texts a run or a delivery wrote about what went wrong (an
/// error may quote a bad record's value) — `sync_runs.error`, `reason`, `hint`,
/// `quarantined_json`, `alert_outbox.last_error` — and in any alert payload that still holds
/// one (a change they made, say, names them as its actor). Returns the runs and the outbox
/// rows changed.
fn scrub_texts(
    tx: &Connection,
    user: i64,
    needles: &Needles,
) -> rusqlite::Result<(BTreeSet<i64>, BTreeSet<i64>)> {
    let tomb = erased_name(user);
    let (mut runs, mut outbox) = (BTreeSet::new(), BTreeSet::new());
    for (needle, _) in needles.each() {
        let mut stmt = tx.prepare_cached(
            "UPDATE sync_runs SET error = replace(error, ?1, ?2), reason = replace(reason, ?1, ?2),
                 hint = replace(hint, ?1, ?2), quarantined_json = replace(quarantined_json, ?1, ?2)
             WHERE instr(error, ?1) OR instr(reason, ?1) OR instr(hint, ?1)
                OR instr(quarantined_json, ?1)
             RETURNING sync_run_id",
        )?;
        for id in stmt.query_map(params![needle, tomb], |r| r.get::<_, i64>(0))? {
            runs.insert(id?);
        }
        let mut stmt = tx.prepare_cached(
            "UPDATE alert_outbox SET last_error = replace(last_error, ?1, ?2),
                 payload_json = replace(payload_json, ?1, ?2)
             WHERE instr(last_error, ?1) OR instr(payload_json, ?1)
             RETURNING outbox_id",
        )?;
        for id in stmt.query_map(params![needle, tomb], |r| r.get::<_, i64>(0))? {
            outbox.insert(id?);
        }
    }
    Ok((runs, outbox))
}

/// `<db>-wal`.
fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// Searches `file` for each needle; returns those found and the bytes read (a missing
/// file holds nothing).
fn search_file(
    file: &Path,
    needles: &[(String, bool)],
) -> std::io::Result<(Vec<(usize, bool)>, u64)> {
    let mut f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let finders: Vec<memchr::memmem::Finder<'_>> = needles
        .iter()
        .map(|(n, _)| memchr::memmem::Finder::new(n.as_bytes()))
        .collect();
    let overlap = needles.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut found = vec![false; needles.len()];
    let mut buf = vec![0u8; 8 << 20];
    let mut kept = 0;
    let mut read_total = 0u64;
    loop {
        let n = f.read(&mut buf[kept..])?;
        if n == 0 {
            break;
        }
        read_total += n as u64;
        let window = &buf[..kept + n];
        for (i, finder) in finders.iter().enumerate() {
            if !found[i] && finder.find(window).is_some() {
                found[i] = true;
            }
        }
        // Keep the tail, so that a text across two reads is still found.
        let tail = overlap.min(window.len());
        let start = window.len() - tail;
        buf.copy_within(start..start + tail, 0);
        kept = tail;
    }
    let hits = found
        .iter()
        .enumerate()
        .filter(|(_, f)| **f)
        .map(|(i, _)| (i, needles[i].1))
        .collect();
    Ok((hits, read_total))
}

/// The OS user this process runs as (its name, or `uid N` when it has none).
pub fn os_user() -> String {
    // SAFETY: getuid cannot fail; getpwuid_r writes only into the buffers given, and the
    // name is copied out before they go.
    unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
            if let Ok(name) = std::ffi::CStr::from_ptr(pwd.pw_name).to_str() {
                return name.to_string();
            }
        }
        format!("uid {uid}")
    }
}

mod audit_log;
#[cfg(test)]
mod tests;

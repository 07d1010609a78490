//! Committing a run: one transaction for current tables, history, events and the run row.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, ToSql};

use crate::diff::{changed_fields, After, Change, Diff, Op};
use crate::model::{Entity, EntityKey, RecordRef, StoredHashes, UserCustomFieldRecord};

/// The request accounting a run row records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTotals {
    pub requests: i64,
    pub quota_remaining: Option<i64>,
    pub quota_resets_at: Option<String>,
    /// The records the run quarantined, as JSON (`sync_runs.quarantined_json`).
    pub quarantined: Option<String>,
    /// Time spent waiting for the request pacing.
    pub pacing_wait_ms: i64,
    /// A complete pull's users and groups missed and not confirmed gone (the API honours no
    /// id filter): they replace the pending absences. `None` leaves them (targeted runs).
    pub pending_absences: Option<Vec<EntityKey>>,
    /// What the run pulled of the audit log (None: the log was not asked).
    pub audit: Option<Box<super::audit::AuditWrite>>,
}

/// Events by (entity, op).
pub(super) type Counts = BTreeMap<(Entity, &'static str), usize>;

/// Replaces the pending absences with a complete pull's, in its run's transaction: one
/// seen again, or confirmed gone by this pull, is no longer pending.
fn write_pending_absences(
    conn: &Connection,
    run_id: i64,
    pending: &[EntityKey],
) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM pending_absences", [])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO pending_absences (entity, entity_id, missed_by) VALUES (?1, ?2, ?3)",
    )?;
    for key in pending {
        insert.execute(params![key.entity.as_str(), key.id, run_id])?;
    }
    Ok(())
}

/// What a run's transaction does after its changes: queue the alerts its events match,
/// and drop the history that ended before the retention cutoff.
pub(super) struct AfterChanges<'a> {
    pub outbox: Option<&'a dyn super::OutboxRules>,
    /// RFC 3339 UTC; `None`: `[retention]` is off.
    pub retention_cutoff: Option<&'a str>,
}

/// Inserts written per batch of multi-row statements: each batch's canonical JSON is made,
/// written and dropped before the next, so a first sync never holds the organization as text.
const INSERTS_PER_BATCH: usize = 256;

/// Writes `diff` and marks the run succeeded, all in one transaction: the inserts first, in
/// batches of multi-row statements (a first sync is all inserts), then every other change,
/// then the run's workspace names, pending absences, alerts and `sync_runs` row.
pub(super) fn commit(
    conn: &mut Connection,
    run_id: i64,
    diff: &Diff<'_>,
    workspace_names: &BTreeMap<i64, String>,
    observed_at: &str,
    totals: &RunTotals,
    after: &AfterChanges<'_>,
) -> rusqlite::Result<Counts> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut counts = Counts::new();
    // The inserts number their history rows themselves, so that their events can point at
    // them from the same multi-row statements; the run holds the write lock.
    let mut next_history_id: i64 = tx.query_row(
        "SELECT coalesce(max(history_id), 0) + 1 FROM entity_history",
        [],
        |r| r.get(0),
    )?;
    let mut batch = Vec::with_capacity(INSERTS_PER_BATCH);
    for change in &diff.changes {
        if let (Op::Insert, Some(after)) = (change.op, &change.after) {
            batch.push((change.key, after));
            if batch.len() == INSERTS_PER_BATCH {
                insert_new(&tx, run_id, observed_at, &batch, &mut next_history_id)?;
                batch.clear();
            }
        }
    }
    if !batch.is_empty() {
        insert_new(&tx, run_id, observed_at, &batch, &mut next_history_id)?;
    }
    for change in &diff.changes {
        if change.op != Op::Insert {
            apply_change(&tx, run_id, observed_at, change)?;
        }
        if let Some(op) = change.op.event_name() {
            *counts.entry((change.key.entity, op)).or_default() += 1;
        }
    }
    write_workspace_names(&tx, workspace_names)?;
    if let Some(pending) = &totals.pending_absences {
        write_pending_absences(&tx, run_id, pending)?;
    }
    if let Some(audit) = &totals.audit {
        super::audit::write(&tx, run_id, audit)?;
    }
    // In the run's transaction: an event is committed with its alerts or not at all.
    if let Some(rules) = after.outbox {
        super::outbox::queue_run(&tx, run_id, rules, &crate::clock::now_utc())?;
    }
    if let Some(cutoff) = after.retention_cutoff {
        let erased_by = super::erase::os_user();
        let started = std::time::Instant::now();
        let done = super::retention::retain(&tx, run_id, cutoff, observed_at, &erased_by)?;
        tracing::info!(
            run_id,
            cutoff,
            versions = done.versions,
            events = done.events,
            erased = done.erased,
            duration_ms = started.elapsed().as_millis() as u64,
            "retention: dropped the history that ended before the cutoff"
        );
    }
    mark_succeeded(&tx, run_id, totals, &counts)?;
    tx.commit()?;
    Ok(counts)
}

/// Marks the run succeeded with its figures, inside its transaction.
fn mark_succeeded(
    conn: &Connection,
    run_id: i64,
    totals: &RunTotals,
    counts: &Counts,
) -> rusqlite::Result<()> {
    let events: usize = counts.values().sum();
    let mut summary: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for ((entity, op), n) in counts {
        summary.entry(entity.as_str()).or_default().insert(op, *n);
    }
    let summary = serde_json::to_string(&summary).unwrap_or_else(|_| "{}".to_string());
    // Now, not the run's `observed_at` (when its pull began): `status` shows the difference.
    let finished_at = crate::clock::now_utc();
    conn.execute(
        "UPDATE sync_runs SET status = 'succeeded', finished_at = ?2, requests = ?3, events_written = ?4,
             quota_remaining = ?5, quota_resets_at = ?6, summary_json = ?7, error = NULL,
             pacing_wait_ms = ?8
         WHERE sync_run_id = ?1",
        params![
            run_id,
            finished_at,
            totals.requests,
            events as i64,
            totals.quota_remaining,
            totals.quota_resets_at,
            summary,
            totals.pacing_wait_ms
        ],
    )?;
    if let Some(quarantined) = &totals.quarantined {
        conn.execute(
            "UPDATE sync_runs SET quarantined_json = ?2 WHERE sync_run_id = ?1",
            params![run_id, quarantined],
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn event(
    conn: &Connection,
    run_id: i64,
    at: &str,
    key: &EntityKey,
    entity_id: &str,
    op: &str,
    fields: Option<&str>,
    before: Option<i64>,
    after: Option<i64>,
) -> rusqlite::Result<()> {
    insert_rows(
        conn,
        EVENT_COLUMNS,
        &[[
            &run_id,
            &at,
            &key.entity,
            &entity_id,
            &op,
            &fields,
            &before,
            &after,
        ]],
    )
}

/// Writes one update, deletion or change of unknown fields: its history interval closed
/// and/or opened, its current rows replaced, its event.
fn apply_change(
    tx: &Connection,
    run_id: i64,
    at: &str,
    change: &Change<'_>,
) -> rusqlite::Result<()> {
    let key = change.key;
    let entity_id = key.entity_id();
    let event = |op: &str, fields: Option<&str>, before: Option<i64>, after: Option<i64>| {
        event(tx, run_id, at, &key, &entity_id, op, fields, before, after)
    };
    match (change.op, &change.after) {
        (Op::Update, Some(after)) => {
            let (json, hashes) = after.json_and_hashes();
            let before = close_interval(tx, run_id, at, &key, &entity_id)?;
            let opened = open_interval(tx, run_id, at, &key, &entity_id, &json, &hashes)?;
            delete_current(tx, &key)?;
            write_current(tx, after.record, &after.unknown)?;
            let fields = before
                .as_ref()
                .map(|(_, b)| changed_fields(b, &json))
                .unwrap_or_default();
            let fields = serde_json::to_string(&fields).unwrap_or_else(|_| "[]".to_string());
            event(
                "update",
                Some(&fields),
                before.map(|(id, _)| id),
                Some(opened),
            )
        }
        (Op::Delete, _) => {
            let before = close_interval(tx, run_id, at, &key, &entity_id)?;
            delete_current(tx, &key)?;
            event("delete", None, before.map(|(id, _)| id), None)
        }
        (Op::UnknownOnly, Some(after)) => {
            tx.prepare_cached(
                "UPDATE entity_history SET unknown_hash = ?3 WHERE entity = ?1 AND entity_id = ?2 AND valid_to IS NULL",
            )?
            .execute(params![key.entity.as_str(), entity_id, after.json_and_hashes().1.unknown])?;
            let table = match key.entity {
                Entity::User => {
                    "UPDATE users SET unknown_json = ?2 WHERE organization_user_id = ?1"
                }
                Entity::Group => "UPDATE groups SET unknown_json = ?2 WHERE group_id = ?1",
                Entity::Role => "UPDATE roles SET unknown_json = ?2 WHERE role_id = ?1",
                Entity::GroupMembership | Entity::UserRate | Entity::UserCustomField => {
                    return Ok(())
                }
            };
            tx.prepare_cached(table)?
                .execute(params![key.id, after.unknown])?;
            Ok(())
        }
        // Inserts go in batches ([`insert_new`]).
        (Op::Insert, _) | (_, None) => Ok(()),
    }
}

/// Opens a new current interval; returns its `history_id`.
fn open_interval(
    tx: &Connection,
    run_id: i64,
    at: &str,
    key: &EntityKey,
    entity_id: &str,
    json: &str,
    hashes: &StoredHashes,
) -> rusqlite::Result<i64> {
    // A NULL history_id: SQLite numbers it.
    insert_rows(
        tx,
        HISTORY_COLUMNS,
        &[[
            &NO_ID,
            &key.entity,
            &entity_id,
            &key.id,
            &key.sub_id,
            &at,
            &json,
            &hashes.data,
            &hashes.unknown,
            &run_id,
        ]],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Closes the current interval; returns its `history_id` and JSON (the `before` of the change).
fn close_interval(
    tx: &Connection,
    run_id: i64,
    at: &str,
    key: &EntityKey,
    entity_id: &str,
) -> rusqlite::Result<Option<(i64, String)>> {
    let mut stmt = tx.prepare_cached(
        "UPDATE entity_history SET valid_to = ?3, closed_by = ?4
         WHERE entity = ?1 AND entity_id = ?2 AND valid_to IS NULL
         RETURNING history_id, data_json",
    )?;
    let mut rows = stmt.query(params![key.entity.as_str(), entity_id, at, run_id])?;
    match rows.next()? {
        Some(row) => Ok(Some((row.get(0)?, row.get(1)?))),
        None => Ok(None),
    }
}

fn delete_current(tx: &Connection, key: &EntityKey) -> rusqlite::Result<()> {
    let statements: &[&str] = match key.entity {
        Entity::User => &[
            "DELETE FROM users WHERE organization_user_id = ?1",
            "DELETE FROM user_workspaces WHERE organization_user_id = ?1",
            "DELETE FROM user_tags WHERE organization_user_id = ?1",
        ],
        Entity::Group => &[
            "DELETE FROM groups WHERE group_id = ?1",
            "DELETE FROM group_workspaces WHERE group_id = ?1",
            "DELETE FROM group_ghosts WHERE group_id = ?1",
        ],
        Entity::Role => &[
            "DELETE FROM roles WHERE role_id = ?1",
            "DELETE FROM role_permissions WHERE role_id = ?1",
        ],
        Entity::UserRate => &["DELETE FROM user_rates WHERE organization_user_id = ?1"],
        Entity::GroupMembership | Entity::UserCustomField => {
            let sql = if key.entity == Entity::GroupMembership {
                "DELETE FROM group_members WHERE group_id = ?1 AND organization_user_id = ?2"
            } else {
                "DELETE FROM user_custom_fields WHERE organization_user_id = ?1 AND custom_field_id = ?2"
            };
            tx.prepare_cached(sql)?
                .execute(params![key.id, key.sub_id])?;
            return Ok(());
        }
    };
    for sql in statements {
        tx.prepare_cached(sql)?.execute([key.id])?;
    }
    Ok(())
}

fn write_current(
    conn: &Connection,
    record: RecordRef<'_>,
    unknown: &Option<&str>,
) -> rusqlite::Result<()> {
    let mut rows = CurrentRows::default();
    rows.add(record, unknown);
    rows.write(conn)
}

/// A value to bind.
type Value<'a> = &'a dyn ToSql;

const NO_ID: Option<i64> = None;

const HISTORY_COLUMNS: &str =
    "entity_history (history_id, entity, entity_id, id, sub_id, valid_from,
    data_json, data_hash, unknown_hash, opened_by)";
const EVENT_COLUMNS: &str = "change_log (sync_run_id, observed_at, entity, entity_id, op,
    changed_fields, before_history, after_history)";
const NO_TEXT: Option<&str> = None;

/// The current-table rows of some records, gathered to be written a table at a time.
#[derive(Default)]
struct CurrentRows<'a> {
    users: Vec<[Value<'a>; 20]>,
    user_workspaces: Vec<[Value<'a>; 7]>,
    user_tags: Vec<[Value<'a>; 4]>,
    user_rates: Vec<[Value<'a>; 8]>,
    groups: Vec<[Value<'a>; 8]>,
    group_workspaces: Vec<[Value<'a>; 6]>,
    group_ghosts: Vec<[Value<'a>; 3]>,
    group_members: Vec<[Value<'a>; 10]>,
    roles: Vec<[Value<'a>; 11]>,
    role_permissions: Vec<[Value<'a>; 8]>,
    /// Written by [`CurrentRows::write`], which makes their option lists' JSON.
    custom_fields: Vec<&'a UserCustomFieldRecord>,
}

impl<'a> CurrentRows<'a> {
    fn add(&mut self, record: RecordRef<'a>, unknown: Value<'a>) {
        match record {
            RecordRef::User(u) => {
                self.users.push([
                    &u.id,
                    &u.user_account_id,
                    &u.user_id,
                    &u.name,
                    &u.email,
                    &u.active,
                    &u.admin,
                    &u.owner,
                    &u.joined,
                    &u.invite_sent,
                    &u.two_fa_enabled,
                    &u.can_edit_personal_details,
                    &u.account_locked_at,
                    &u.created_at,
                    &u.updated_at,
                    &u.deleted_at,
                    &u.organization_id,
                    &u.working_hours,
                    &u.permissions,
                    unknown,
                ]);
                for w in &u.workspaces {
                    self.user_workspaces.push([
                        &u.id,
                        &w.id,
                        &w.workspace_user_id,
                        &w.focus_role_id,
                        &w.track_role_id,
                        &w.work_role_id,
                        &w.toggl_products,
                    ]);
                }
                for t in &u.tags {
                    self.user_tags.push([&u.id, &t.id, &t.label, &t.color]);
                }
            }
            RecordRef::Rate(r) => self.user_rates.push([
                &r.organization_user_id,
                &r.hourly_rate,
                &r.currency,
                &r.start_at,
                &r.end_at,
                &r.workspace_id,
                &r.workspace_rate_id,
                &r.workspace_user_rate_id,
            ]),
            RecordRef::Group(g) => {
                self.groups.push([
                    &g.id,
                    &g.name,
                    &g.emoji,
                    &g.organization_id,
                    &g.created_at,
                    &g.updated_at,
                    &g.deleted_at,
                    unknown,
                ]);
                for w in &g.workspaces {
                    self.group_workspaces.push([
                        &g.id,
                        &w.workspace_id,
                        &w.workspace_group_id,
                        &w.created_at,
                        &w.updated_at,
                        &w.deleted_at,
                    ]);
                }
                for gh in &g.ghosts {
                    self.group_ghosts.push([&g.id, &gh.id, &gh.name]);
                }
            }
            RecordRef::Membership(m) => self.group_members.push([
                &m.group_id,
                &m.organization_user_id,
                &m.user_group_id,
                &m.user_account_id,
                &m.focus_role_id,
                &m.track_role_id,
                &m.work_role_id,
                &m.created_at,
                &m.updated_at,
                &m.deleted_at,
            ]),
            RecordRef::Role(r) => {
                self.roles.push([
                    &r.role_id,
                    &r.code,
                    &r.name,
                    &r.kind,
                    &r.privilege_level,
                    &r.entity,
                    &r.description,
                    &r.organization_id,
                    unknown,
                    &r.require_group,
                    &r.default_for_levels,
                ]);
                for p in &r.permissions {
                    self.role_permissions.push([
                        &r.role_id,
                        &p.permission_id,
                        &p.name,
                        &p.entity,
                        &p.condition,
                        &p.description,
                        &p.category_id,
                        &p.category_name,
                    ]);
                }
            }
            RecordRef::CustomField(v) => self.custom_fields.push(v),
        }
    }

    fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        insert_rows(
            conn,
            "users (organization_user_id, user_account_id, user_id, name, email, active, admin, owner,
                 joined, invite_sent, two_fa_enabled, can_edit_personal_details, account_locked_at, created_at,
                 updated_at, deleted_at, organization_id, working_hours, permissions_json, unknown_json)",
            &self.users,
        )?;
        insert_rows(
            conn,
            "user_workspaces (organization_user_id, workspace_id, workspace_user_id, focus_role_id,
                 track_role_id, work_role_id, toggl_products_json)",
            &self.user_workspaces,
        )?;
        insert_rows(
            conn,
            "user_tags (organization_user_id, tag_id, label, color)",
            &self.user_tags,
        )?;
        insert_rows(
            conn,
            "user_rates (organization_user_id, hourly_rate, currency, start_at, end_at, workspace_id,
                 workspace_rate_id, workspace_user_rate_id)",
            &self.user_rates,
        )?;
        insert_rows(
            conn,
            "groups (group_id, name, emoji, organization_id, created_at, updated_at, deleted_at, unknown_json)",
            &self.groups,
        )?;
        insert_rows(
            conn,
            "group_workspaces (group_id, workspace_id, workspace_group_id, created_at, updated_at, deleted_at)",
            &self.group_workspaces,
        )?;
        insert_rows(
            conn,
            "group_ghosts (group_id, ghost_id, name)",
            &self.group_ghosts,
        )?;
        insert_rows(
            conn,
            "group_members (group_id, organization_user_id, user_group_id, user_account_id, focus_role_id,
                 track_role_id, work_role_id, created_at, updated_at, deleted_at)",
            &self.group_members,
        )?;
        insert_rows(
            conn,
            "roles (role_id, code, name, type, privilege_level, entity, description, organization_id, unknown_json,
                 require_group, default_for_levels_json)",
            &self.roles,
        )?;
        insert_rows(
            conn,
            "role_permissions (role_id, permission_id, name, entity, condition, description, category_id,
                 category_name)",
            &self.role_permissions,
        )?;
        let options: Vec<(String, String)> =
            self.custom_fields.iter().map(|v| option_lists(v)).collect();
        let rows: Vec<[Value<'_>; 7]> = self
            .custom_fields
            .iter()
            .zip(&options)
            .map(|(v, (ids, names))| -> [Value<'_>; 7] {
                [
                    &v.organization_user_id,
                    &v.custom_field_id,
                    &v.custom_field_name,
                    &v.field_type,
                    &v.value,
                    ids,
                    names,
                ]
            })
            .collect();
        insert_rows(
            conn,
            "user_custom_fields (organization_user_id, custom_field_id, custom_field_name, field_type, value,
                 option_ids_json, option_names_json)",
            &rows,
        )
    }
}

/// A value's selected options as two JSON arrays, in option id order: their ids, their names.
fn option_lists(v: &UserCustomFieldRecord) -> (String, String) {
    let ids: Vec<i64> = v.selected_options.iter().map(|o| o.option_id).collect();
    let names: Vec<Option<&str>> = v
        .selected_options
        .iter()
        .map(|o| o.option_name.as_deref())
        .collect();
    // Integers and strings always serialize.
    (
        serde_json::to_string(&ids).unwrap_or_else(|_| "[]".to_string()),
        serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_string()),
    )
}

/// Rows per multi-row `INSERT`: each statement execution costs about as much as
/// inserting several rows, so a page of new entities goes in by the dozen.
const ROWS_PER_INSERT: usize = 32;

/// `INSERT INTO <table> VALUES` all of `rows`, [`ROWS_PER_INSERT`] to a statement.
fn insert_rows<const N: usize>(
    conn: &Connection,
    table: &str,
    rows: &[[Value<'_>; N]],
) -> rusqlite::Result<()> {
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    let write = |chunk: &[[Value<'_>; N]]| -> rusqlite::Result<()> {
        let row = format!("({})", vec!["?"; N].join(","));
        // OR FAIL: a failing row ends the statement without undoing the rows before it, so
        // SQLite keeps no statement journal (the caller rolls the whole run back anyway).
        let sql = format!(
            "INSERT OR FAIL INTO {table} VALUES {}",
            vec![row; chunk.len()].join(",")
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        for (i, value) in chunk.iter().flatten().enumerate() {
            stmt.raw_bind_parameter(i + 1, value)?;
        }
        stmt.raw_execute().map(|_| ())
    };
    for chunk in &mut chunks {
        write(chunk)?;
    }
    for row in chunks.remainder() {
        write(std::slice::from_ref(row))?;
    }
    Ok(())
}

/// Writes a batch of inserts: their history rows (ids from `next_history_id` on), current
/// rows and insert events, each table in multi-row statements.
fn insert_new(
    conn: &Connection,
    run_id: i64,
    at: &str,
    batch: &[(EntityKey, &After<'_>)],
    next_history_id: &mut i64,
) -> rusqlite::Result<()> {
    let first = *next_history_id;
    let ids: Vec<i64> = (first..).take(batch.len()).collect();
    *next_history_id = first + batch.len() as i64;
    let entity_ids: Vec<String> = batch.iter().map(|(key, _)| key.entity_id()).collect();
    let written: Vec<(String, StoredHashes)> = batch
        .iter()
        .map(|(_, after)| after.json_and_hashes())
        .collect();
    let mut history: Vec<[Value<'_>; 10]> = Vec::with_capacity(batch.len());
    let mut events: Vec<[Value<'_>; 8]> = Vec::with_capacity(batch.len());
    let mut current = CurrentRows::default();
    for ((((key, after), (json, hashes)), id), entity_id) in
        batch.iter().zip(&written).zip(&ids).zip(&entity_ids)
    {
        history.push([
            id,
            &key.entity,
            entity_id,
            &key.id,
            &key.sub_id,
            &at,
            json,
            &hashes.data,
            &hashes.unknown,
            &run_id,
        ]);
        events.push([
            &run_id,
            &at,
            &key.entity,
            entity_id,
            &"insert",
            &NO_TEXT,
            &NO_ID,
            id,
        ]);
        current.add(after.record, &after.unknown);
    }
    insert_rows(conn, HISTORY_COLUMNS, &history)?;
    insert_rows(conn, EVENT_COLUMNS, &events)?;
    current.write(conn)
}

/// Upserts workspace names; unchanged names write nothing.
fn write_workspace_names(tx: &Connection, names: &BTreeMap<i64, String>) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO workspaces (workspace_id, name) VALUES (?1, ?2)
         ON CONFLICT (workspace_id) DO UPDATE SET name = excluded.name WHERE name IS NOT excluded.name",
    )?;
    for (id, name) in names {
        stmt.execute(params![id, name])?;
    }
    Ok(())
}

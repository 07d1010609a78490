//! Committing a run: one transaction for current tables, history, events and the run row.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, Transaction};

use crate::diff::{changed_fields, Change, Diff, Op, StoredHashes};
use crate::snapshot::{Entity, EntityKey, RecordRef};

/// The request accounting a run row records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTotals {
    pub requests: i64,
    pub quota_remaining: Option<i64>,
    pub quota_resets_at: Option<String>,
}

/// Writes `diff` and marks the run succeeded, all in one transaction.
pub(super) fn commit(
    conn: &mut Connection,
    run_id: i64,
    diff: &Diff<'_>,
    workspace_names: &BTreeMap<i64, String>,
    observed_at: &str,
    totals: &RunTotals,
) -> rusqlite::Result<BTreeMap<(Entity, &'static str), usize>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut counts: BTreeMap<(Entity, &'static str), usize> = BTreeMap::new();
    for change in &diff.changes {
        apply_change(&tx, run_id, observed_at, change)?;
        if let Some(op) = change.op.event_name() {
            *counts.entry((change.key.entity, op)).or_default() += 1;
        }
    }
    write_workspace_names(&tx, workspace_names)?;
    let events: usize = counts.values().sum();
    let mut summary: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for ((entity, op), n) in &counts {
        summary.entry(entity.as_str()).or_default().insert(op, *n);
    }
    let summary = serde_json::to_string(&summary).unwrap_or_else(|_| "{}".to_string());
    tx.execute(
        "UPDATE sync_runs SET status = 'succeeded', finished_at = ?2, requests = ?3, events_written = ?4,
             quota_remaining = ?5, quota_resets_at = ?6, summary_json = ?7, error = NULL
         WHERE sync_run_id = ?1",
        params![
            run_id,
            observed_at,
            totals.requests,
            events as i64,
            totals.quota_remaining,
            totals.quota_resets_at,
            summary
        ],
    )?;
    tx.commit()?;
    Ok(counts)
}

fn apply_change(
    tx: &Transaction<'_>,
    run_id: i64,
    at: &str,
    change: &Change<'_>,
) -> rusqlite::Result<()> {
    let key = change.key;
    let entity_id = key.entity_id();
    let event = |op: &str, fields: Option<&str>, before: Option<i64>, after: Option<i64>| {
        tx.prepare_cached(
            "INSERT INTO change_log (sync_run_id, observed_at, entity, entity_id, op, changed_fields, before_history, after_history)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![run_id, at, key.entity.as_str(), entity_id, op, fields, before, after])
        .map(|_| ())
    };
    match (change.op, &change.after) {
        (Op::Insert, Some(after)) => {
            let (json, hashes) = after.json_and_hashes();
            let opened = open_interval(tx, run_id, at, &key, &entity_id, &json, &hashes)?;
            write_current(tx, after.record, after.unknown)?;
            event("insert", None, None, Some(opened))
        }
        (Op::Update, Some(after)) => {
            let (json, hashes) = after.json_and_hashes();
            let before = close_interval(tx, run_id, at, &key, &entity_id)?;
            let opened = open_interval(tx, run_id, at, &key, &entity_id, &json, &hashes)?;
            delete_current(tx, &key)?;
            write_current(tx, after.record, after.unknown)?;
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
                Entity::GroupMembership | Entity::UserRate => return Ok(()),
            };
            tx.prepare_cached(table)?
                .execute(params![key.id, after.unknown])?;
            Ok(())
        }
        (_, None) => Ok(()),
    }
}

/// Opens a new current interval; returns its `history_id`.
fn open_interval(
    tx: &Transaction<'_>,
    run_id: i64,
    at: &str,
    key: &EntityKey,
    entity_id: &str,
    json: &str,
    hashes: &StoredHashes,
) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO entity_history (entity, entity_id, id, sub_id, valid_from, data_json, data_hash, unknown_hash, opened_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        key.entity.as_str(),
        entity_id,
        key.id,
        key.sub_id,
        at,
        json,
        hashes.data,
        hashes.unknown,
        run_id
    ])?;
    Ok(tx.last_insert_rowid())
}

/// Closes the current interval; returns its `history_id` and JSON (the `before` of the change).
fn close_interval(
    tx: &Transaction<'_>,
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

fn delete_current(tx: &Transaction<'_>, key: &EntityKey) -> rusqlite::Result<()> {
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
        Entity::GroupMembership => {
            tx.prepare_cached(
                "DELETE FROM group_members WHERE group_id = ?1 AND organization_user_id = ?2",
            )?
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
    tx: &Transaction<'_>,
    record: RecordRef<'_>,
    unknown: Option<&str>,
) -> rusqlite::Result<()> {
    match record {
        RecordRef::User(u) => {
            tx.prepare_cached(
                "INSERT INTO users (organization_user_id, user_account_id, user_id, name, email, active, admin, owner,
                     joined, invite_sent, two_fa_enabled, can_edit_personal_details, account_locked_at, created_at,
                     updated_at, deleted_at, organization_id, working_hours, permissions_json, unknown_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            )?
            .execute(params![
                u.id,
                u.user_account_id,
                u.user_id,
                u.name,
                u.email,
                u.active,
                u.admin,
                u.owner,
                u.joined,
                u.invite_sent,
                u.two_fa_enabled,
                u.can_edit_personal_details,
                u.account_locked_at,
                u.created_at,
                u.updated_at,
                u.deleted_at,
                u.organization_id,
                u.working_hours,
                u.permissions.as_ref().map(|p| p.as_str()),
                unknown
            ])?;
            let mut ws = tx.prepare_cached(
                "INSERT INTO user_workspaces (organization_user_id, workspace_id, workspace_user_id, focus_role_id,
                     track_role_id, work_role_id, toggl_products_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for w in &u.workspaces {
                let products = w.toggl_products.as_str();
                ws.execute(params![
                    u.id,
                    w.id,
                    w.workspace_user_id,
                    w.focus_role_id,
                    w.track_role_id,
                    w.work_role_id,
                    products
                ])?;
            }
            let mut tags =
                tx.prepare_cached("INSERT INTO user_tags (organization_user_id, tag_id, label, color) VALUES (?1, ?2, ?3, ?4)")?;
            for t in &u.tags {
                tags.execute(params![u.id, t.id, t.label, t.color])?;
            }
        }
        RecordRef::Rate(r) => {
            tx.prepare_cached(
                "INSERT INTO user_rates (organization_user_id, hourly_rate, currency, start_at, end_at, workspace_id,
                     workspace_rate_id, workspace_user_rate_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                r.organization_user_id,
                r.hourly_rate,
                r.currency,
                r.start_at,
                r.end_at,
                r.workspace_id,
                r.workspace_rate_id,
                r.workspace_user_rate_id
            ])?;
        }
        RecordRef::Group(g) => {
            tx.prepare_cached(
                "INSERT INTO groups (group_id, name, emoji, organization_id, created_at, updated_at, deleted_at, unknown_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                g.id,
                g.name,
                g.emoji,
                g.organization_id,
                g.created_at,
                g.updated_at,
                g.deleted_at,
                unknown
            ])?;
            let mut ws = tx.prepare_cached(
                "INSERT INTO group_workspaces (group_id, workspace_id, workspace_group_id, created_at, updated_at, deleted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for w in &g.workspaces {
                ws.execute(params![
                    g.id,
                    w.workspace_id,
                    w.workspace_group_id,
                    w.created_at,
                    w.updated_at,
                    w.deleted_at
                ])?;
            }
            let mut ghosts = tx.prepare_cached(
                "INSERT INTO group_ghosts (group_id, ghost_id, name) VALUES (?1, ?2, ?3)",
            )?;
            for gh in &g.ghosts {
                ghosts.execute(params![g.id, gh.id, gh.name])?;
            }
        }
        RecordRef::Membership(m) => {
            tx.prepare_cached(
                "INSERT INTO group_members (group_id, organization_user_id, user_group_id, user_account_id, focus_role_id,
                     track_role_id, work_role_id, created_at, updated_at, deleted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                m.group_id,
                m.organization_user_id,
                m.user_group_id,
                m.user_account_id,
                m.focus_role_id,
                m.track_role_id,
                m.work_role_id,
                m.created_at,
                m.updated_at,
                m.deleted_at
            ])?;
        }
        RecordRef::Role(r) => {
            tx.prepare_cached(
                "INSERT INTO roles (role_id, code, name, type, privilege_level, entity, description, organization_id, unknown_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                r.role_id,
                r.code,
                r.name,
                r.kind,
                r.privilege_level,
                r.entity,
                r.description,
                r.organization_id,
                unknown
            ])?;
            let mut perms = tx.prepare_cached(
                "INSERT INTO role_permissions (role_id, permission_id, name, entity, condition, description)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for p in &r.permissions {
                perms.execute(params![
                    r.role_id,
                    p.permission_id,
                    p.name,
                    p.entity,
                    p.condition,
                    p.description
                ])?;
            }
        }
    }
    Ok(())
}

/// Upserts workspace names; unchanged names write nothing.
fn write_workspace_names(
    tx: &Transaction<'_>,
    names: &BTreeMap<i64, String>,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO workspaces (workspace_id, name) VALUES (?1, ?2)
         ON CONFLICT (workspace_id) DO UPDATE SET name = excluded.name WHERE name IS NOT excluded.name",
    )?;
    for (id, name) in names {
        stmt.execute(params![id, name])?;
    }
    Ok(())
}

//! Moving rows from the mirror into PostgreSQL with `COPY … FROM STDIN` (text format),
//! streamed: a blocking thread reads SQLite and encodes chunks while the async side sends
//! the previous ones, through a bounded channel, so neither side holds a run whole.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use tokio::sync::mpsc;

use super::{ReplicaError, Target};
use crate::store::{Cell, ReplicaPart, ReplicaSlice, Store, StoreError};

/// Bytes per chunk sent to the server.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the reader and the sender.
pub(super) const QUEUE: usize = 8;

/// What the reader hands the sender.
pub(super) enum Piece {
    Begin(ReplicaPart),
    Data(Bytes),
    /// The part is complete, with the number of rows the reader sent.
    End(ReplicaPart, u64),
}

/// The `COPY` of each part (the closings go into a temporary table, then one UPDATE).
fn copy_sql(part: ReplicaPart) -> &'static str {
    match part {
        ReplicaPart::SyncRuns => {
            "COPY sync_runs (organization_id, sync_run_id, kind, started_at, finished_at, status,
                 error, requests, events_written, quota_remaining, quota_resets_at, summary_json)
             FROM STDIN"
        }
        ReplicaPart::Closings => {
            "COPY replica_closing (history_id, valid_to, closed_by) FROM STDIN"
        }
        ReplicaPart::History => {
            "COPY entity_history (organization_id, history_id, entity, entity_id, id, sub_id,
                 valid_from, valid_to, data, opened_by, closed_by) FROM STDIN"
        }
        ReplicaPart::Events => {
            "COPY change_log (organization_id, event_id, sync_run_id, observed_at, entity,
                 entity_id, op, changed_fields, before_history, after_history, actor_user_id,
                 changed_at, attribution, audit_event_id) FROM STDIN"
        }
        ReplicaPart::AuditActors => {
            "COPY replica_actor (user_id, name, email, user_account_id) FROM STDIN"
        }
        ReplicaPart::AuditEvents => {
            "COPY audit_events (organization_id, audit_event_id, created_at, entity_type,
                 entity_id, action, actor_user_id, workspace_id, old_value, new_value, meta_data,
                 sync_run_id, subject_entity, subject_id, window_run_id) FROM STDIN"
        }
        ReplicaPart::Attributions => {
            "COPY replica_attribution (event_id, actor_user_id, changed_at, attribution,
                 audit_event_id) FROM STDIN"
        }
        ReplicaPart::Rewrites => "COPY replica_rewrite (history_id, data) FROM STDIN",
        ReplicaPart::AuditRewrites => {
            "COPY replica_audit_rewrite (audit_event_id, old_value, new_value, meta_data) FROM STDIN"
        }
        ReplicaPart::Retention => "COPY replica_retention (cutoff) FROM STDIN",
        ReplicaPart::Erasures => {
            "COPY erasures (organization_id, sync_run_id, erased_at, organization_user_id, reason,
                 erased_by, history_only, counts) FROM STDIN"
        }
    }
}

/// The temporary table a staged part is copied into, and the statement that applies it
/// (`$1` the organization; empty for the closings and the retention, applied below); None
/// for the parts copied straight into their tables.
fn staging(part: ReplicaPart) -> Option<(&'static str, &'static str)> {
    match part {
        ReplicaPart::Closings => Some((
            "CREATE TEMPORARY TABLE replica_closing (
                 history_id bigint PRIMARY KEY, valid_to timestamptz NOT NULL,
                 closed_by bigint NOT NULL) ON COMMIT DROP",
            "",
        )),
        ReplicaPart::AuditActors => Some((
            "CREATE TEMPORARY TABLE replica_actor (
                 user_id bigint PRIMARY KEY, name text, email text, user_account_id bigint)
                 ON COMMIT DROP",
            "INSERT INTO audit_actors (organization_id, user_id, name, email, user_account_id)
             SELECT $1, user_id, name, email, user_account_id FROM replica_actor
             ON CONFLICT (organization_id, user_id) DO UPDATE SET name = excluded.name,
                 email = excluded.email, user_account_id = excluded.user_account_id",
        )),
        ReplicaPart::Attributions => Some((
            "CREATE TEMPORARY TABLE replica_attribution (
                 event_id bigint PRIMARY KEY, actor_user_id bigint, changed_at timestamptz,
                 attribution text, audit_event_id bigint) ON COMMIT DROP",
            "UPDATE change_log e SET actor_user_id = a.actor_user_id, changed_at = a.changed_at,
                 attribution = a.attribution, audit_event_id = a.audit_event_id
             FROM replica_attribution a
             WHERE e.organization_id = $1 AND e.event_id = a.event_id",
        )),
        ReplicaPart::Rewrites => Some((
            "CREATE TEMPORARY TABLE replica_rewrite (
                 history_id bigint PRIMARY KEY, data jsonb NOT NULL) ON COMMIT DROP",
            "UPDATE entity_history h SET data = r.data FROM replica_rewrite r
             WHERE h.organization_id = $1 AND h.history_id = r.history_id",
        )),
        ReplicaPart::AuditRewrites => Some((
            "CREATE TEMPORARY TABLE replica_audit_rewrite (
                 audit_event_id bigint PRIMARY KEY, old_value jsonb, new_value jsonb,
                 meta_data jsonb) ON COMMIT DROP",
            "UPDATE audit_events e SET old_value = r.old_value, new_value = r.new_value,
                 meta_data = r.meta_data
             FROM replica_audit_rewrite r
             WHERE e.organization_id = $1 AND e.audit_event_id = r.audit_event_id",
        )),
        ReplicaPart::Retention => Some((
            "CREATE TEMPORARY TABLE replica_retention (cutoff timestamptz NOT NULL) ON COMMIT DROP",
            "",
        )),
        _ => None,
    }
}

/// Reads `parts` of `slice` from the mirror in one read transaction and sends them as COPY
/// text, each row led by `organization` (but the closings). Runs on a blocking thread;
/// stops early, without error, when the sender has gone away.
pub(super) fn read(
    store: &mut Store,
    organization: i64,
    slice: ReplicaSlice,
    parts: &[ReplicaPart],
    out: &mpsc::Sender<Piece>,
) -> Result<(), StoreError> {
    store.read_consistent(|store| {
        for &part in parts {
            if out.blocking_send(Piece::Begin(part)).is_err() {
                return Ok(());
            }
            let mut buf = BytesMut::with_capacity(CHUNK + 4096);
            let mut open = true;
            let with_org = !part.staged();
            let rows = store.replica_rows(part, slice, &mut |cells| {
                if with_org {
                    buf.put_slice(organization.to_string().as_bytes());
                    buf.put_u8(b'\t');
                }
                encode_row(&mut buf, cells);
                if buf.len() >= CHUNK {
                    open = out.blocking_send(Piece::Data(buf.split().freeze())).is_ok();
                }
                open
            })?;
            if !open {
                return Ok(());
            }
            if !buf.is_empty() && out.blocking_send(Piece::Data(buf.freeze())).is_err() {
                return Ok(());
            }
            if out.blocking_send(Piece::End(part, rows)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    })
}

/// One row in COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn encode_row(buf: &mut BytesMut, cells: &[Cell<'_>]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b'\t');
        }
        match cell {
            Cell::Null => buf.put_slice(b"\\N"),
            Cell::Int(v) => buf.put_slice(v.to_string().as_bytes()),
            Cell::Real(v) => buf.put_slice(v.to_string().as_bytes()),
            Cell::Text(t) => escape_text(buf, t),
        }
    }
    buf.put_u8(b'\n');
}

/// COPY text escaping. PostgreSQL text cannot hold NUL, nor jsonb the escape `\u0000`: both
/// become U+FFFD (a difference `replicate --verify` would show).
fn escape_text(buf: &mut BytesMut, text: &str) {
    let text: std::borrow::Cow<'_, str> = if text.contains('\0') || text.contains("\\u0000") {
        text.replace('\0', "\u{fffd}")
            .replace("\\u0000", "\\ufffd")
            .into()
    } else {
        text.into()
    };
    for &b in text.as_bytes() {
        match b {
            b'\\' => buf.put_slice(b"\\\\"),
            b'\t' => buf.put_slice(b"\\t"),
            b'\n' => buf.put_slice(b"\\n"),
            b'\r' => buf.put_slice(b"\\r"),
            _ => buf.put_u8(b),
        }
    }
}

/// Sends what the reader produces into `tx`, part by part; returns the rows copied. A part
/// whose row count the server reports differently from the reader's fails the transaction.
pub(super) async fn send(
    target: &Target,
    tx: &tokio_postgres::Transaction<'_>,
    organization: i64,
    pieces: &mut mpsc::Receiver<Piece>,
) -> Result<u64, ReplicaError> {
    let mut total = 0;
    let mut sink = None;
    let mut part_started = std::time::Instant::now();
    while let Some(piece) = pieces.recv().await {
        match piece {
            Piece::Begin(part) => {
                part_started = std::time::Instant::now();
                if let Some((create, _)) = staging(part) {
                    tx.batch_execute(create)
                        .await
                        .map_err(|e| target.error(&format!("cannot stage {part:?}"), e))?;
                }
                let s = tx
                    .copy_in::<_, Bytes>(copy_sql(part))
                    .await
                    .map_err(|e| target.error(&format!("cannot start COPY of {part:?}"), e))?;
                sink = Some(Box::pin(s));
            }
            Piece::Data(bytes) => {
                if let Some(s) = sink.as_mut() {
                    s.send(bytes)
                        .await
                        .map_err(|e| target.error("COPY failed", e))?;
                }
            }
            Piece::End(part, rows) => {
                let Some(mut s) = sink.take() else { continue };
                let copied = s
                    .as_mut()
                    .finish()
                    .await
                    .map_err(|e| target.error(&format!("COPY of {part:?} failed"), e))?;
                if copied != rows {
                    return Err(ReplicaError::CopiedRows { part, copied, rows });
                }
                if part == ReplicaPart::Closings {
                    // Fresh statistics, so that the join below looks the few rows up by key
                    // instead of scanning the whole history.
                    tx.batch_execute("ANALYZE replica_closing")
                        .await
                        .map_err(|e| target.error("cannot analyze the closed intervals", e))?;
                    let closed = tx
                        .execute(
                            "UPDATE entity_history h SET valid_to = c.valid_to, closed_by = c.closed_by
                             FROM replica_closing c
                             WHERE h.organization_id = $1 AND h.history_id = c.history_id
                               AND h.valid_to IS NULL",
                            &[&organization],
                        )
                        .await
                        .map_err(|e| target.error("cannot close intervals", e))?;
                    if closed != rows {
                        return Err(ReplicaError::ClosedIntervals { rows, closed });
                    }
                }
                if let Some((_, apply)) = staging(part).filter(|(_, apply)| !apply.is_empty()) {
                    let applied = tx
                        .execute(apply, &[&organization])
                        .await
                        .map_err(|e| target.error(&format!("cannot apply {part:?}"), e))?;
                    // A rewrite names rows the replica holds: one missing is a replica
                    // changed by hand.
                    if matches!(part, ReplicaPart::Rewrites | ReplicaPart::AuditRewrites)
                        && applied != rows
                    {
                        return Err(ReplicaError::CopiedRows {
                            part,
                            copied: applied,
                            rows,
                        });
                    }
                }
                if part == ReplicaPart::Retention && rows > 0 {
                    drop_expired(target, tx, organization).await?;
                }
                total += rows;
                tracing::debug!(
                    part = ?part,
                    rows,
                    ms = part_started.elapsed().as_millis() as u64,
                    "replica part copied"
                );
            }
        }
    }
    Ok(total)
}

/// Drops what a run's retention pass dropped in the mirror, by the same rule: the versions
/// that ended before the cutoff (`replica_retention`), the events that ended with them, and
/// the `before_history` of the events that opened a version still kept.
async fn drop_expired(
    target: &Target,
    tx: &tokio_postgres::Transaction<'_>,
    organization: i64,
) -> Result<(), ReplicaError> {
    tx.batch_execute(
        "CREATE TEMPORARY TABLE replica_expired (
             history_id bigint PRIMARY KEY, entity text NOT NULL, entity_id text NOT NULL)
         ON COMMIT DROP",
    )
    .await
    .map_err(|e| target.error("cannot stage the expired history", e))?;
    let statements = [
        "INSERT INTO replica_expired
         SELECT history_id, entity, entity_id FROM entity_history
         WHERE organization_id = $1 AND valid_to IS NOT NULL
           AND valid_to < (SELECT max(cutoff) FROM replica_retention)",
        "DELETE FROM change_log e USING replica_expired x
         WHERE e.organization_id = $1 AND e.entity = x.entity AND e.entity_id = x.entity_id
           AND (e.after_history = x.history_id
                OR (e.after_history IS NULL AND e.before_history = x.history_id))",
        "UPDATE change_log e SET before_history = NULL FROM replica_expired x
         WHERE e.organization_id = $1 AND e.entity = x.entity AND e.entity_id = x.entity_id
           AND e.before_history = x.history_id",
        "DELETE FROM entity_history h USING replica_expired x
         WHERE h.organization_id = $1 AND h.history_id = x.history_id",
    ];
    for sql in statements {
        tx.execute(sql, &[&organization])
            .await
            .map_err(|e| target.error("cannot drop the expired history", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_escaped_for_copy_text() {
        let mut buf = BytesMut::new();
        encode_row(
            &mut buf,
            &[
                Cell::Int(-4),
                Cell::Null,
                Cell::Real(150.5),
                Cell::Text("a\tb\\c\nd\re"),
                Cell::Text("{\"n\":\"x\\u0000y\"}"),
                Cell::Text("nul\0here"),
            ],
        );
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            "-4\t\\N\t150.5\ta\\tb\\\\c\\nd\\re\t{\"n\":\"x\\\\ufffdy\"}\tnul\u{fffd}here\n"
        );
    }
}

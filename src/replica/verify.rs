//! `orgmirror replicate --verify`: every contract view read on both sides, each row brought
//! to one canonical text (instants in UTC to the microsecond, booleans 0/1, numbers as f64,
//! JSON with sorted keys), then counted and hashed. The content hash is the sum of the rows'
//! hashes, so the order rows come in does not matter; rows found on one side only are named.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::StreamExt;

use super::{open_mirror, with_store, ReplicaError, Target};
use crate::config::{Config, PostgresReplicaConfig};
use crate::store::{Cell, ColumnKind, ContractView, StoreError, CONTRACT_VIEWS};

/// Rows named per side when a view differs.
const EXAMPLES: usize = 3;

/// One view compared.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewCheck {
    pub view: &'static str,
    pub mirror_rows: u64,
    pub replica_rows: u64,
    pub mirror_hash: u64,
    pub replica_hash: u64,
    /// Rows (canonical, `|`-separated) only the mirror has, at most a few.
    pub only_in_mirror: Vec<String>,
    /// Rows only the replica has, at most a few.
    pub only_in_replica: Vec<String>,
}

impl ViewCheck {
    pub fn same(&self) -> bool {
        self.mirror_rows == self.replica_rows
            && self.mirror_hash == self.replica_hash
            && self.only_in_mirror.is_empty()
            && self.only_in_replica.is_empty()
    }

    /// `users_current  1000 rows  hash 1a2b… = 1a2b…  same`, and the rows that differ.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{:<26} rows {:>8} / {:<8} hash {:016x} / {:016x}  {}",
            self.view,
            self.mirror_rows,
            self.replica_rows,
            self.mirror_hash,
            self.replica_hash,
            if self.same() { "same" } else { "DIFFERENT" }
        );
        for row in &self.only_in_mirror {
            line.push_str(&format!("\n    only in the mirror:  {row}"));
        }
        for row in &self.only_in_replica {
            line.push_str(&format!("\n    only in the replica: {row}"));
        }
        line
    }
}

/// Compares every contract view of this organization between the mirror and the replica,
/// at the run the replica is at (the mirror must not be ahead: catch up first).
pub async fn verify(
    config: &Config,
    pg: &PostgresReplicaConfig,
) -> Result<Vec<ViewCheck>, ReplicaError> {
    let target = Target::from_config(pg)?;
    let mut client = target.connect().await?;
    super::ensure_schema(&target, &mut client).await?;
    let organization = config.api.organization_id;
    let Some((at, _)) = super::progress_of(&target, &client, organization).await? else {
        return Err(ReplicaError::NothingReplicated(organization));
    };
    let mut store = Some(open_mirror(&config.database.path).await?);
    let mut checks = Vec::new();
    for view in CONTRACT_VIEWS {
        let replica = replica_side(&target, &client, view, organization, at, None).await?;
        let mut check = ViewCheck {
            view: view.name,
            mirror_rows: 0,
            replica_rows: replica.rows,
            mirror_hash: 0,
            replica_hash: replica.hash,
            only_in_mirror: Vec::new(),
            only_in_replica: Vec::new(),
        };
        let view_copy = *view;
        let (s, mirror) = with_store(store.take(), move |s| {
            s.read_consistent(|s| {
                // `None`: the mirror moved on past the replica meanwhile.
                if !s.committed_runs_after(at)?.is_empty() {
                    return Ok(None);
                }
                mirror_side(s, &view_copy, organization, at, replica.multiset).map(Some)
            })
        })
        .await?;
        let path = s.path().to_path_buf();
        store = Some(s);
        let Some((left, rows, hash, only_mirror)) = mirror? else {
            return Err(ReplicaError::MirrorMovedOn { path, at });
        };
        check.mirror_rows = rows;
        check.mirror_hash = hash;
        check.only_in_mirror = only_mirror;
        // Rows of the replica the mirror did not match: read them again to name them.
        let wanted: HashMap<u64, i64> = left.into_iter().filter(|(_, n)| *n > 0).collect();
        if !wanted.is_empty() {
            let named =
                replica_side(&target, &client, view, organization, at, Some(&wanted)).await?;
            check.only_in_replica = named.named;
            if check.only_in_replica.is_empty() {
                check.only_in_replica.push("(rows not matched)".to_string());
            }
        }
        checks.push(check);
    }
    Ok(checks)
}

/// The replica's rows of a view: a multiset of their hashes, or (when asked for some
/// hashes) the text of those rows.
#[derive(Default)]
struct ReplicaRows {
    /// Row hash -> how many rows have it.
    multiset: HashMap<u64, i64>,
    hash: u64,
    rows: u64,
    named: Vec<String>,
}

/// Reads the replica's rows of `view` (streamed with `COPY … TO STDOUT`). With `name`, keeps
/// the text of a few rows whose hash is in it instead of the multiset.
async fn replica_side(
    target: &Target,
    client: &tokio_postgres::Client,
    view: &ContractView,
    organization: i64,
    at: i64,
    name: Option<&HashMap<u64, i64>>,
) -> Result<ReplicaRows, ReplicaError> {
    let columns: Vec<&str> = view.columns.iter().map(|(c, _)| *c).collect();
    let runs = if view.name == "sync_runs" {
        format!(" AND sync_run_id <= {at}")
    } else {
        String::new()
    };
    // Names are the contract's constants and the ids integers: nothing here is input.
    let sql = format!(
        "COPY (SELECT {} FROM {} WHERE organization_id = {organization}{runs}) TO STDOUT",
        columns.join(", "),
        view.name
    );
    let stream = client
        .copy_out(&sql)
        .await
        .map_err(|e| target.error(&format!("cannot read view {}", view.name), e))?;
    futures_util::pin_mut!(stream);
    let mut out = ReplicaRows::default();
    let mut handle = |line: &[u8]| {
        let fields = split_copy_line(line);
        let canon = canonical_row(view, fields.iter().map(|f| f.as_deref()), None);
        let h = row_hash(&canon);
        out.rows += 1;
        out.hash = out.hash.wrapping_add(h);
        match name {
            None => *out.multiset.entry(h).or_insert(0) += 1,
            Some(wanted) if wanted.contains_key(&h) && out.named.len() < EXAMPLES => {
                out.named.push(canon.replace('\u{1f}', " | "));
            }
            Some(_) => {}
        }
    };
    let mut carry: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes =
            chunk.map_err(|e| target.error(&format!("cannot read view {}", view.name), e))?;
        carry.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(pos) = carry[start..].iter().position(|b| *b == b'\n') {
            handle(&carry[start..start + pos]);
            start += pos + 1;
        }
        carry.drain(..start);
    }
    Ok(out)
}

/// Takes the mirror's rows of `view` off the replica's multiset; returns what is left of
/// it, the mirror's row count and hash, and a few rows only the mirror has.
#[allow(clippy::type_complexity)]
fn mirror_side(
    store: &crate::store::Store,
    view: &ContractView,
    organization: i64,
    at: i64,
    mut replica: HashMap<u64, i64>,
) -> Result<(HashMap<u64, i64>, u64, u64, Vec<String>), StoreError> {
    let mut hash = 0u64;
    let mut only = Vec::new();
    let rows = store.contract_rows(view, at, &mut |cells| {
        let texts = cells.iter().map(cell_text);
        let canon = canonical_row(
            view,
            texts.collect::<Vec<_>>().iter().map(|c| c.as_deref()),
            Some(organization),
        );
        let h = row_hash(&canon);
        hash = hash.wrapping_add(h);
        match replica.get_mut(&h) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                if only.len() < EXAMPLES {
                    only.push(canon.replace('\u{1f}', " | "));
                }
            }
        }
    })?;
    Ok((replica, rows, hash, only))
}

fn cell_text(cell: &Cell<'_>) -> Option<String> {
    match cell {
        Cell::Null => None,
        Cell::Int(i) => Some(i.to_string()),
        Cell::Real(f) => Some(f.to_string()),
        Cell::Text(t) => Some((*t).to_string()),
    }
}

/// One row as canonical text: fields by kind, joined by U+001F. `organization` (the mirror
/// side) stands for the columns of kind [`ColumnKind::Organization`].
fn canonical_row<'a>(
    view: &ContractView,
    fields: impl Iterator<Item = Option<&'a str>>,
    organization: Option<i64>,
) -> String {
    let mut out = String::new();
    for (i, ((_, kind), value)) in view.columns.iter().zip(fields).enumerate() {
        if i > 0 {
            out.push('\u{1f}');
        }
        let org;
        let value = match (kind, organization) {
            (ColumnKind::Organization, Some(o)) => {
                org = o.to_string();
                Some(org.as_str())
            }
            _ => value,
        };
        match value.and_then(|v| canonical_value(*kind, v)) {
            Some(v) => out.push_str(&v),
            None => out.push_str("\u{0}NULL"),
        }
    }
    out
}

fn canonical_value(kind: ColumnKind, v: &str) -> Option<String> {
    match kind {
        ColumnKind::Int | ColumnKind::Text | ColumnKind::Organization => Some(v.to_string()),
        ColumnKind::Bool => Some(
            match v {
                "t" | "true" | "1" => "1",
                "f" | "false" | "0" => "0",
                other => other,
            }
            .to_string(),
        ),
        ColumnKind::Instant => {
            use chrono::SubsecRound;
            let parsed = chrono::DateTime::parse_from_rfc3339(v)
                .or_else(|_| chrono::DateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f%#z"))
                .ok()?;
            Some(crate::clock::format_utc(
                parsed.with_timezone(&chrono::Utc).round_subsecs(6),
            ))
        }
        ColumnKind::Number => Some(match v.parse::<f64>() {
            Ok(f) => f.to_string(),
            Err(_) => v.to_string(),
        }),
        ColumnKind::Json => Some(match serde_json::from_str::<serde_json::Value>(v) {
            Ok(value) => sorted(value).to_string(),
            Err(_) => v.to_string(),
        }),
    }
}

/// JSON with every object's keys in order (whatever serde_json's map keeps).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

fn row_hash(canon: &str) -> u64 {
    twox_hash::XxHash3_64::oneshot(canon.as_bytes())
}

/// The fields of one line of `COPY … TO STDOUT` text: `\N` is NULL, backslash escapes undone.
fn split_copy_line(line: &[u8]) -> Vec<Option<String>> {
    line.split(|b| *b == b'\t')
        .map(|field| {
            if field == b"\\N" {
                return None;
            }
            let mut out = Vec::with_capacity(field.len());
            let mut bytes = field.iter();
            while let Some(&b) = bytes.next() {
                if b != b'\\' {
                    out.push(b);
                    continue;
                }
                match bytes.next() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'b') => out.push(8),
                    Some(b'f') => out.push(12),
                    Some(b'v') => out.push(11),
                    Some(&other) => out.push(other),
                    None => {}
                }
            }
            Some(String::from_utf8_lossy(&out).into_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_render_alike() {
        let view = ContractView {
            name: "t",
            columns: &[
                ("a", ColumnKind::Instant),
                ("b", ColumnKind::Bool),
                ("c", ColumnKind::Number),
                ("d", ColumnKind::Json),
                ("e", ColumnKind::Instant),
            ],
        };
        let mirror = canonical_row(
            &view,
            [
                Some("2026-11-28T12:00:00Z"),
                Some("1"),
                Some("150.5"),
                Some("{\"b\":1,\"a\":[true,null]}"),
                Some("not a time"),
            ]
            .into_iter(),
            None,
        );
        let replica = canonical_row(
            &view,
            [
                Some("2026-11-28 12:00:00+00"),
                Some("t"),
                Some("150.50"),
                Some("{\"a\": [true, null], \"b\": 1}"),
                None,
            ]
            .into_iter(),
            None,
        );
        assert_eq!(mirror, replica);
        assert_eq!(
            split_copy_line(b"1\t\\N\ta\\tb\\\\c"),
            vec![Some("1".into()), None, Some("a\tb\\c".into())]
        );
    }
}

//! The change feed's reads: the events of a time range with the names of the people and
//! groups they concern, each as it was when the event was observed (a renamed or deleted
//! entity keeps the name it had then).

use super::{Store, StoreError};

/// Which events to read: `[since, until)` by `observed_at`, of some entities (all when empty).
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub entities: Vec<String>,
}

/// One event with the names it needs, as of the moment it was observed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRow {
    pub event_id: i64,
    pub sync_run_id: i64,
    /// `full` or `targeted`.
    pub run_kind: String,
    /// Whether the run is the mirror's first, whose events are the organization as found.
    pub first_run: bool,
    pub observed_at: String,
    pub entity: String,
    pub entity_id: String,
    pub op: String,
    pub changed_fields: Vec<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// The user a rate, membership or custom field event concerns: their name then.
    pub user_name: Option<String>,
    /// The group a group or membership event concerns: its name and emoji then.
    pub group_name: Option<String>,
    pub group_emoji: Option<String>,
}

/// The newest version of entity `(kind, id)` observed at or before `e.observed_at`: the
/// one in force after the event's run (a version that ended in that run included).
macro_rules! version_then {
    ($kind:literal, $id:literal, $field:literal) => {
        concat!(
            "(SELECT json_extract(h.data_json, '$.",
            $field,
            "') FROM entity_history h WHERE h.entity = '",
            $kind,
            "' AND h.id = ",
            $id,
            " AND h.sub_id = 0 AND h.valid_from <= e.observed_at
              ORDER BY h.valid_from DESC LIMIT 1)"
        )
    };
}

const CHANGES_SQL: &str = concat!(
    "SELECT e.event_id, e.sync_run_id, r.kind,
            e.sync_run_id = (SELECT min(sync_run_id) FROM change_log),
            e.observed_at, e.entity, e.entity_id, e.op, e.changed_fields,
            b.data_json, a.data_json,
            CASE e.entity
                WHEN 'user' THEN NULL
                WHEN 'user_rate' THEN ",
    version_then!("user", "coalesce(a.id, b.id)", "name"),
    " WHEN 'user_custom_field' THEN ",
    version_then!("user", "coalesce(a.id, b.id)", "name"),
    " WHEN 'group_membership' THEN ",
    version_then!("user", "coalesce(a.sub_id, b.sub_id)", "name"),
    " END,
            CASE WHEN e.entity = 'group_membership' THEN ",
    version_then!("group", "coalesce(a.id, b.id)", "name"),
    " END,
            CASE WHEN e.entity = 'group_membership' THEN ",
    version_then!("group", "coalesce(a.id, b.id)", "emoji"),
    " END
     FROM change_log e
     JOIN sync_runs r ON r.sync_run_id = e.sync_run_id
     LEFT JOIN entity_history b ON b.history_id = e.before_history
     LEFT JOIN entity_history a ON a.history_id = e.after_history
     WHERE (?1 IS NULL OR e.observed_at >= ?1)
       AND (?2 IS NULL OR e.observed_at < ?2)
       AND (?3 IS NULL OR e.entity IN (SELECT value FROM json_each(?3)))
     ORDER BY e.event_id"
);

impl Store {
    /// Hands `each` the events `filter` selects, oldest first, with names as of each one,
    /// until it returns false.
    pub fn changes(
        &self,
        filter: &ChangeFilter,
        mut each: impl FnMut(ChangeRow) -> bool,
    ) -> Result<(), StoreError> {
        let entities = (!filter.entities.is_empty())
            .then(|| serde_json::Value::from(filter.entities.clone()).to_string());
        let mut stmt = self.sql(self.conn.prepare(CHANGES_SQL))?;
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        let rows = self.sql(stmt.query_map(
            rusqlite::params![filter.since, filter.until, entities],
            |r| {
                let fields: Option<String> = r.get(8)?;
                Ok(ChangeRow {
                    event_id: r.get(0)?,
                    sync_run_id: r.get(1)?,
                    run_kind: r.get(2)?,
                    first_run: r.get(3)?,
                    observed_at: r.get(4)?,
                    entity: r.get(5)?,
                    entity_id: r.get(6)?,
                    op: r.get(7)?,
                    changed_fields: fields
                        .and_then(|f| serde_json::from_str(&f).ok())
                        .unwrap_or_default(),
                    before: json(r.get(9)?),
                    after: json(r.get(10)?),
                    user_name: r.get(11)?,
                    group_name: r.get(12)?,
                    group_emoji: r.get(13)?,
                })
            },
        ))?;
        for row in rows {
            if !each(self.sql(row)?) {
                break;
            }
        }
        Ok(())
    }
}

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
    /// Only changes this person made (a part of their name, or their e-mail, in the audit
    /// log; any case).
    pub actor: Option<String>,
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
    /// Who made it and when, by the audit log.
    pub actor_name: Option<String>,
    pub changed_at: Option<String>,
}

/// An audit event about an entity the mirror tracks that no change event explains (a
/// change made and undone between two runs), with the names it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct UnobservedRow {
    /// The run whose window held it.
    pub sync_run_id: i64,
    pub created_at: String,
    pub entity: String,
    pub subject_id: String,
    pub action: String,
    pub actor_name: Option<String>,
    pub new_value: Option<serde_json::Value>,
    /// The user or group it is about, by their newest name.
    pub subject_name: Option<String>,
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
    " END, p.name, e.changed_at
     FROM change_log e
     JOIN sync_runs r ON r.sync_run_id = e.sync_run_id
     LEFT JOIN entity_history b ON b.history_id = e.before_history
     LEFT JOIN entity_history a ON a.history_id = e.after_history
     LEFT JOIN audit_actors p ON p.user_id = e.actor_user_id
     WHERE (?1 IS NULL OR e.observed_at >= ?1)
       AND (?2 IS NULL OR e.observed_at < ?2)
       AND (?3 IS NULL OR e.entity IN (SELECT value FROM json_each(?3)))
       AND (?4 IS NULL OR p.name LIKE '%' || ?4 || '%' OR p.email LIKE ?4)
     ORDER BY e.event_id"
);

/// The audit events no change explains (as the view `unobserved_changes` has them), by the
/// observed time of the run whose window held them, with the newest name of the user or
/// group they are about. Read from the tables, through the runs: the backlog before the
/// mirror's first run (most of the log) is never read.
const UNOBSERVED_SQL: &str = "SELECT e.window_run_id, e.created_at, e.subject_entity, e.subject_id,
        e.action, p.name, e.new_value,
        (SELECT json_extract(h.data_json, '$.name') FROM entity_history h
         WHERE h.entity = CASE WHEN e.subject_entity = 'group' THEN 'group' ELSE 'user' END
           AND h.id = CAST(CASE WHEN e.subject_entity = 'group_membership'
                                THEN substr(e.subject_id, instr(e.subject_id, ':') + 1)
                                WHEN e.subject_entity = 'user_custom_field'
                                THEN substr(e.subject_id, 1, instr(e.subject_id, ':') - 1)
                                ELSE e.subject_id END AS INTEGER)
           AND h.sub_id = 0
         ORDER BY h.history_id DESC LIMIT 1)
 FROM sync_runs r
 JOIN audit_events e ON e.window_run_id = r.sync_run_id
 LEFT JOIN audit_actors p ON p.user_id = e.actor_user_id
 WHERE e.subject_entity IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM change_log c WHERE c.audit_event_id = e.audit_event_id)
   AND (?1 IS NULL OR r.started_at >= ?1)
   AND (?2 IS NULL OR r.started_at < ?2)
   AND (?3 IS NULL OR e.subject_entity IN (SELECT value FROM json_each(?3)))
   AND (?4 IS NULL OR p.name LIKE '%' || ?4 || '%' OR p.email LIKE ?4)
 ORDER BY e.window_run_id, e.created_at";

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
        // A mirror no run of this version has written yet knows no actors.
        let sql = if self.has_column("change_log", "changed_at")? {
            CHANGES_SQL.to_string()
        } else {
            CHANGES_SQL
                .replace(" p.name, e.changed_at", " NULL, NULL")
                .replace(
                    "LEFT JOIN audit_actors p ON p.user_id = e.actor_user_id",
                    "",
                )
                .replace(
                    "(?4 IS NULL OR p.name LIKE '%' || ?4 || '%' OR p.email LIKE ?4)",
                    "?4 IS NULL",
                )
        };
        let mut stmt = self.sql(self.conn.prepare(&sql))?;
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        let rows = self.sql(stmt.query_map(
            rusqlite::params![filter.since, filter.until, entities, filter.actor],
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
                    actor_name: r.get(14)?,
                    changed_at: r.get(15)?,
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

impl Store {
    /// The changes no run saw that `filter` selects (by the time of the run whose window
    /// held them), oldest run first.
    pub fn unobserved(&self, filter: &ChangeFilter) -> Result<Vec<UnobservedRow>, StoreError> {
        if !self.has_column("audit_events", "window_run_id")? {
            return Ok(Vec::new());
        }
        let entities = (!filter.entities.is_empty())
            .then(|| serde_json::Value::from(filter.entities.clone()).to_string());
        let mut stmt = self.sql(self.conn.prepare(UNOBSERVED_SQL))?;
        let rows = self.sql(stmt.query_map(
            rusqlite::params![filter.since, filter.until, entities, filter.actor],
            |r| {
                Ok(UnobservedRow {
                    sync_run_id: r.get(0)?,
                    created_at: r.get(1)?,
                    entity: r.get(2)?,
                    subject_id: r.get(3)?,
                    action: r.get(4)?,
                    actor_name: r.get(5)?,
                    new_value: r
                        .get::<_, Option<String>>(6)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                    subject_name: r.get(7)?,
                })
            },
        ))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(self.sql(row)?);
        }
        Ok(out)
    }
}

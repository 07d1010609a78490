//! What a replica reads from the mirror: the runs SQLite committed, and for each the rows
//! it wrote — its `sync_runs` row, the history rows it opened, the intervals it closed and
//! its events — or, to bootstrap, all of that up to a run. Also every contract view's rows,
//! for `replicate --verify`. The replica (`crate::replica`) never sees SQL of the mirror.

use rusqlite::types::ValueRef;
use rusqlite::OptionalExtension;

use super::{Store, StoreError};

/// One part of what a replica copies, in the order it applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaPart {
    /// `sync_runs` rows that are finished (a failed run's row goes with the next committed one).
    SyncRuns,
    /// `(history_id, valid_to, closed_by)` of the intervals a run closed (never at bootstrap).
    Closings,
    /// `entity_history` rows, with the interval closed only if the closing run is included.
    History,
    /// `change_log` rows.
    Events,
    /// `audit_actors` rows a run wrote (every row at bootstrap), upserted.
    AuditActors,
    /// `audit_events` rows a run pulled.
    AuditEvents,
    /// `(event_id, actor_user_id, changed_at, attribution, audit_event_id)` of the earlier
    /// runs' events a run matched with the audit log (never at bootstrap).
    Attributions,
    /// `(history_id, data_json)` of the versions an erasure run rewrote (never at bootstrap,
    /// which copies the versions as they read now).
    Rewrites,
    /// The cutoff a run's retention pass dropped history before (never at bootstrap).
    Retention,
    /// `(audit_event_id, old_value, new_value, meta_data)` of the audit events an erasure
    /// rewrote (never at bootstrap).
    AuditRewrites,
    /// `erasures` receipts.
    Erasures,
}

impl ReplicaPart {
    /// Whether the part is staged in a temporary table (its rows carry no organization).
    pub fn staged(self) -> bool {
        matches!(
            self,
            ReplicaPart::Closings
                | ReplicaPart::AuditActors
                | ReplicaPart::Attributions
                | ReplicaPart::Rewrites
                | ReplicaPart::AuditRewrites
                | ReplicaPart::Retention
        )
    }
}

/// Which runs a read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaSlice {
    /// Everything committed up to and including this run (a bootstrap).
    UpTo(i64),
    /// What run `run` wrote, and the finished runs after `after` up to it.
    Run { after: i64, run: i64 },
}

/// A value of a row read for a replica, borrowed from SQLite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
}

impl<'a> From<ValueRef<'a>> for Cell<'a> {
    fn from(v: ValueRef<'a>) -> Cell<'a> {
        match v {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Int(i),
            ValueRef::Real(f) => Cell::Real(f),
            // Text the mirror wrote is UTF-8; anything else is shown lossily rather than dropped.
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                Cell::Text(std::str::from_utf8(t).unwrap_or("\u{fffd}"))
            }
        }
    }
}

/// The most columns a row read here has (users_current has 22).
const MAX_COLUMNS: usize = 24;

/// How a contract view's column is compared between SQLite and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Text,
    /// 0/1 in SQLite, `boolean` in PostgreSQL.
    Bool,
    /// RFC 3339 text in SQLite (text that is not an instant is NULL in PostgreSQL), `timestamptz`.
    Instant,
    /// REAL in SQLite, `numeric` or `double precision` in PostgreSQL.
    Number,
    /// JSON text in SQLite, `jsonb` in PostgreSQL.
    Json,
    /// The upstream's `organization_id` in SQLite; the mirror's organization in PostgreSQL
    /// (the same organization: every row of a mirror is of the one it mirrors).
    Organization,
}

/// A view of the SQL contract, as both sides have it.
#[derive(Debug, Clone, Copy)]
pub struct ContractView {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColumnKind)],
}

use ColumnKind::{Bool, Instant, Int, Json, Number, Organization, Text};

/// Every view of the contract (README, "The SQL contract") with every column SQLite gives it.
pub const CONTRACT_VIEWS: &[ContractView] = &[
    ContractView {
        name: "users_current",
        columns: &[
            ("organization_user_id", Int),
            ("user_account_id", Int),
            ("user_id", Text),
            ("name", Text),
            ("email", Text),
            ("active", Bool),
            ("admin", Bool),
            ("owner", Bool),
            ("joined", Bool),
            ("invite_sent", Bool),
            ("two_fa_enabled", Bool),
            ("can_edit_personal_details", Bool),
            ("account_locked_at", Instant),
            ("created_at", Instant),
            ("updated_at", Instant),
            ("deleted_at", Instant),
            ("organization_id", Organization),
            ("working_hours", Number),
            ("hourly_rate", Number),
            ("currency", Text),
            ("rate_start_at", Instant),
            ("rate_workspace_id", Int),
        ],
    },
    ContractView {
        name: "groups_current",
        columns: &[
            ("group_id", Int),
            ("name", Text),
            ("emoji", Text),
            ("organization_id", Organization),
            ("created_at", Instant),
            ("updated_at", Instant),
            ("deleted_at", Instant),
        ],
    },
    ContractView {
        name: "group_members_current",
        columns: &[
            ("group_id", Int),
            ("organization_user_id", Int),
            ("user_group_id", Int),
            ("user_account_id", Int),
            ("created_at", Instant),
        ],
    },
    ContractView {
        name: "roles_current",
        columns: &[
            ("role_id", Int),
            ("code", Text),
            ("name", Text),
            ("type", Text),
            ("privilege_level", Int),
            ("entity", Text),
            ("description", Text),
            ("organization_id", Organization),
            ("require_group", Bool),
            ("default_for_levels", Json),
        ],
    },
    ContractView {
        name: "role_permissions_current",
        columns: &[
            ("role_id", Int),
            ("permission_id", Int),
            ("name", Text),
            ("entity", Text),
            ("condition", Text),
            ("description", Text),
            ("category_id", Int),
            ("category_name", Text),
        ],
    },
    ContractView {
        name: "user_custom_fields_current",
        columns: &[
            ("organization_user_id", Int),
            ("custom_field_id", Int),
            ("custom_field_name", Text),
            ("field_type", Text),
            ("value", Text),
            ("option_ids", Json),
            ("option_names", Json),
        ],
    },
    ContractView {
        name: "group_membership_history",
        columns: &[
            ("group_id", Int),
            ("organization_user_id", Int),
            ("valid_from", Instant),
            ("valid_to", Instant),
            ("changed_at", Instant),
        ],
    },
    ContractView {
        name: "rate_history",
        columns: &[
            ("organization_user_id", Int),
            ("hourly_rate", Number),
            ("currency", Text),
            ("start_at", Instant),
            ("valid_from", Instant),
            ("valid_to", Instant),
            ("changed_at", Instant),
        ],
    },
    ContractView {
        name: "change_events",
        columns: &[
            ("event_id", Int),
            ("sync_run_id", Int),
            ("observed_at", Instant),
            ("entity", Text),
            ("entity_id", Text),
            ("op", Text),
            ("changed_fields", Json),
            ("before_json", Json),
            ("after_json", Json),
            ("actor_user_id", Int),
            ("actor_name", Text),
            ("changed_at", Instant),
            ("attribution", Text),
        ],
    },
    ContractView {
        name: "sync_runs",
        columns: &[
            ("sync_run_id", Int),
            ("kind", Text),
            ("started_at", Instant),
            ("finished_at", Instant),
            ("status", Text),
            ("error", Text),
            ("requests", Int),
            ("events_written", Int),
            ("quota_remaining", Int),
            ("quota_resets_at", Instant),
            ("summary_json", Json),
        ],
    },
    ContractView {
        name: "user_history",
        columns: &[
            ("organization_user_id", Int),
            ("name", Text),
            ("email", Text),
            ("active", Bool),
            ("valid_from", Instant),
            ("valid_to", Instant),
            ("data_json", Json),
            ("changed_at", Instant),
        ],
    },
    ContractView {
        name: "user_custom_field_history",
        columns: &[
            ("organization_user_id", Int),
            ("custom_field_id", Int),
            ("custom_field_name", Text),
            ("field_type", Text),
            ("value", Text),
            ("option_ids", Json),
            ("option_names", Json),
            ("valid_from", Instant),
            ("valid_to", Instant),
            ("data_json", Json),
            ("changed_at", Instant),
        ],
    },
    ContractView {
        name: "erasures",
        columns: &[
            ("sync_run_id", Int),
            ("erased_at", Instant),
            ("organization_user_id", Int),
            ("reason", Text),
            ("erased_by", Text),
            ("history_only", Bool),
            ("counts", Json),
        ],
    },
    ContractView {
        name: "group_history",
        columns: &[
            ("group_id", Int),
            ("name", Text),
            ("emoji", Text),
            ("valid_from", Instant),
            ("valid_to", Instant),
            ("data_json", Json),
            ("changed_at", Instant),
        ],
    },
    ContractView {
        name: "audit_log",
        columns: &[
            ("created_at", Instant),
            ("entity_type", Text),
            ("entity_id", Text),
            ("action", Text),
            ("actor_user_id", Int),
            ("actor_name", Text),
            ("actor_email", Text),
            ("workspace_id", Int),
            ("old_value", Json),
            ("new_value", Json),
            ("meta_data", Json),
        ],
    },
    ContractView {
        name: "unobserved_changes",
        columns: &[
            ("created_at", Instant),
            ("entity_type", Text),
            ("entity_id", Text),
            ("action", Text),
            ("entity", Text),
            ("subject_id", Text),
            ("actor_user_id", Int),
            ("actor_name", Text),
            ("old_value", Json),
            ("new_value", Json),
            ("sync_run_id", Int),
        ],
    },
];

impl Store {
    /// The committed (succeeded) runs after `after`, in order.
    pub fn committed_runs_after(&self, after: i64) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT sync_run_id FROM sync_runs WHERE status = 'succeeded' AND sync_run_id > ?1
             ORDER BY sync_run_id",
        ))?;
        let ids = self.sql(stmt.query_map([after], |r| r.get(0)))?;
        ids.map(|r| self.sql(r)).collect()
    }

    /// When run `run` started, if the mirror has it: what a replica checks to know that
    /// the runs it holds are this mirror's.
    pub fn run_started_at(&self, run: i64) -> Result<Option<String>, StoreError> {
        self.sql(
            self.conn
                .query_row(
                    "SELECT started_at FROM sync_runs WHERE sync_run_id = ?1",
                    [run],
                    |r| r.get(0),
                )
                .optional(),
        )
    }

    /// Runs `f` inside one read transaction, so that everything it reads is one state of
    /// the mirror even while a run commits.
    pub fn read_consistent<T>(
        &mut self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.sql(self.conn.execute_batch("BEGIN DEFERRED"))?;
        let result = f(self);
        let ended = self.sql(self.conn.execute_batch("COMMIT"));
        result.and_then(|t| ended.map(|()| t))
    }

    /// Calls `f` with every row of `part` in `slice`, in the columns the replica's table
    /// has; returns how many. `f` returning false stops the read (the receiver went away).
    pub fn replica_rows(
        &self,
        part: ReplicaPart,
        slice: ReplicaSlice,
        f: &mut dyn FnMut(&[Cell<'_>]) -> bool,
    ) -> Result<u64, StoreError> {
        let (sql, values) = replica_sql(part, slice);
        let mut stmt = self.sql(self.conn.prepare(sql))?;
        let n = stmt.column_count();
        let mut rows = self.sql(stmt.query(rusqlite::params_from_iter(values)))?;
        let mut count = 0;
        while let Some(row) = self.sql(rows.next())? {
            let mut cells = [Cell::Null; MAX_COLUMNS];
            for (i, cell) in cells.iter_mut().enumerate().take(n) {
                *cell = Cell::from(self.sql(row.get_ref(i))?);
            }
            count += 1;
            if !f(&cells[..n]) {
                break;
            }
        }
        Ok(count)
    }

    /// Calls `f` with every row of a contract view (its columns in [`ContractView`]
    /// order); `sync_runs` only up to run `upto` and without a run still going.
    pub fn contract_rows(
        &self,
        view: &ContractView,
        upto: i64,
        f: &mut dyn FnMut(&[Cell<'_>]),
    ) -> Result<u64, StoreError> {
        let columns: Vec<&str> = view.columns.iter().map(|(c, _)| *c).collect();
        // The names are this module's constants, not input.
        let sync_runs = view.name == "sync_runs";
        let filter = if sync_runs {
            "WHERE sync_run_id <= ?1 AND status <> 'running'"
        } else {
            ""
        };
        let sql = format!("SELECT {} FROM {} {filter}", columns.join(", "), view.name);
        let mut stmt = self.sql(self.conn.prepare(&sql))?;
        let mut rows = self.sql(if sync_runs {
            stmt.query([upto])
        } else {
            stmt.query([])
        })?;
        let n = columns.len().min(MAX_COLUMNS);
        let mut count = 0;
        while let Some(row) = self.sql(rows.next())? {
            let mut cells = [Cell::Null; MAX_COLUMNS];
            for (i, cell) in cells.iter_mut().enumerate().take(n) {
                *cell = Cell::from(self.sql(row.get_ref(i))?);
            }
            f(&cells[..n]);
            count += 1;
        }
        Ok(count)
    }
}

/// The query for one part of a slice, with its parameters.
fn replica_sql(part: ReplicaPart, slice: ReplicaSlice) -> (&'static str, Vec<i64>) {
    // A run's rows are found through its events (indexed by run): every history row a run
    // opened is an event's `after_history`, every one it closed an event's `before_history`.
    match (part, slice) {
        (ReplicaPart::SyncRuns, ReplicaSlice::UpTo(upto)) => (
            "SELECT sync_run_id, kind, started_at, finished_at, status, error, requests,
                    events_written, quota_remaining, quota_resets_at, summary_json
             FROM sync_runs WHERE sync_run_id <= ?1 AND status <> 'running'
             ORDER BY sync_run_id",
            vec![upto],
        ),
        (ReplicaPart::SyncRuns, ReplicaSlice::Run { after, run }) => (
            "SELECT sync_run_id, kind, started_at, finished_at, status, error, requests,
                    events_written, quota_remaining, quota_resets_at, summary_json
             FROM sync_runs WHERE sync_run_id > ?1 AND sync_run_id <= ?2 AND status <> 'running'
             ORDER BY sync_run_id",
            vec![after, run],
        ),
        (ReplicaPart::Closings, ReplicaSlice::UpTo(upto)) => {
            ("SELECT 0, 0, 0 WHERE ?1 IS NULL", vec![upto])
        }
        (ReplicaPart::Closings, ReplicaSlice::Run { run, .. }) => (
            "SELECT h.history_id, h.valid_to, h.closed_by
             FROM change_log e JOIN entity_history h ON h.history_id = e.before_history
             WHERE e.sync_run_id = ?1 AND h.closed_by = ?1",
            vec![run],
        ),
        (ReplicaPart::History, ReplicaSlice::UpTo(upto)) => (
            "SELECT history_id, entity, entity_id, id, sub_id, valid_from,
                    CASE WHEN closed_by <= ?1 THEN valid_to END, data_json, opened_by,
                    CASE WHEN closed_by <= ?1 THEN closed_by END
             FROM entity_history WHERE opened_by <= ?1",
            vec![upto],
        ),
        (ReplicaPart::History, ReplicaSlice::Run { run, .. }) => (
            "SELECT h.history_id, h.entity, h.entity_id, h.id, h.sub_id, h.valid_from,
                    CASE WHEN h.closed_by <= ?1 THEN h.valid_to END, h.data_json, h.opened_by,
                    CASE WHEN h.closed_by <= ?1 THEN h.closed_by END
             FROM change_log e JOIN entity_history h ON h.history_id = e.after_history
             WHERE e.sync_run_id = ?1 AND h.opened_by = ?1",
            vec![run],
        ),
        // An attribution made by a run not yet copied is left to that run's Attributions.
        (ReplicaPart::Events, ReplicaSlice::UpTo(upto)) => (
            "SELECT event_id, sync_run_id, observed_at, entity, entity_id, op, changed_fields,
                    before_history, after_history,
                    CASE WHEN attributed_by <= ?1 THEN actor_user_id END,
                    CASE WHEN attributed_by <= ?1 THEN changed_at END,
                    CASE WHEN attributed_by <= ?1 THEN attribution END,
                    CASE WHEN attributed_by <= ?1 THEN audit_event_id END
             FROM change_log WHERE sync_run_id <= ?1",
            vec![upto],
        ),
        (ReplicaPart::Events, ReplicaSlice::Run { run, .. }) => (
            "SELECT event_id, sync_run_id, observed_at, entity, entity_id, op, changed_fields,
                    before_history, after_history,
                    CASE WHEN attributed_by <= ?1 THEN actor_user_id END,
                    CASE WHEN attributed_by <= ?1 THEN changed_at END,
                    CASE WHEN attributed_by <= ?1 THEN attribution END,
                    CASE WHEN attributed_by <= ?1 THEN audit_event_id END
             FROM change_log WHERE sync_run_id = ?1",
            vec![run],
        ),
        (ReplicaPart::AuditActors, ReplicaSlice::UpTo(upto)) => (
            "SELECT user_id, name, email, user_account_id FROM audit_actors
             WHERE ?1 IS NOT NULL",
            vec![upto],
        ),
        (ReplicaPart::AuditActors, ReplicaSlice::Run { run, .. }) => (
            "SELECT user_id, name, email, user_account_id FROM audit_actors
             WHERE sync_run_id = ?1",
            vec![run],
        ),
        (ReplicaPart::AuditEvents, ReplicaSlice::UpTo(upto)) => (
            "SELECT audit_event_id, created_at, entity_type, entity_id, action, actor_user_id,
                    workspace_id, old_value, new_value, meta_data, sync_run_id, subject_entity,
                    subject_id, window_run_id
             FROM audit_events WHERE sync_run_id <= ?1",
            vec![upto],
        ),
        (ReplicaPart::AuditEvents, ReplicaSlice::Run { run, .. }) => (
            "SELECT audit_event_id, created_at, entity_type, entity_id, action, actor_user_id,
                    workspace_id, old_value, new_value, meta_data, sync_run_id, subject_entity,
                    subject_id, window_run_id
             FROM audit_events WHERE sync_run_id = ?1",
            vec![run],
        ),
        (ReplicaPart::Attributions, ReplicaSlice::UpTo(upto)) => {
            ("SELECT 0, 0, 0, 0, 0 WHERE ?1 IS NULL", vec![upto])
        }
        (ReplicaPart::Attributions, ReplicaSlice::Run { run, .. }) => (
            "SELECT event_id, actor_user_id, changed_at, attribution, audit_event_id
             FROM change_log WHERE attributed_by = ?1 AND sync_run_id < ?1",
            vec![run],
        ),
        (ReplicaPart::Rewrites | ReplicaPart::Retention, ReplicaSlice::UpTo(upto)) => {
            ("SELECT 0, 0 WHERE ?1 IS NULL", vec![upto])
        }
        (ReplicaPart::AuditRewrites, ReplicaSlice::UpTo(upto)) => {
            ("SELECT 0, 0, 0, 0 WHERE ?1 IS NULL", vec![upto])
        }
        (ReplicaPart::AuditRewrites, ReplicaSlice::Run { run, .. }) => (
            "SELECT audit_event_id, old_value, new_value, meta_data FROM audit_events
             WHERE erased_by = ?1",
            vec![run],
        ),
        (ReplicaPart::Rewrites, ReplicaSlice::Run { run, .. }) => (
            "SELECT history_id, data_json FROM entity_history WHERE erased_by = ?1",
            vec![run],
        ),
        (ReplicaPart::Retention, ReplicaSlice::Run { run, .. }) => (
            "SELECT retention_cutoff FROM sync_runs
             WHERE sync_run_id = ?1 AND retention_cutoff IS NOT NULL",
            vec![run],
        ),
        (ReplicaPart::Erasures, ReplicaSlice::UpTo(upto)) => (
            "SELECT sync_run_id, erased_at, organization_user_id, reason, erased_by, history_only,
                    counts
             FROM erasures WHERE sync_run_id <= ?1",
            vec![upto],
        ),
        (ReplicaPart::Erasures, ReplicaSlice::Run { run, .. }) => (
            "SELECT sync_run_id, erased_at, organization_user_id, reason, erased_by, history_only,
                    counts
             FROM erasures WHERE sync_run_id = ?1",
            vec![run],
        ),
    }
}

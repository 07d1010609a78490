//! The organization as it stood at a past moment, rebuilt from `entity_history`: the six
//! current views of the contract, with the same columns, as tables of a new in-memory
//! database (which `orgmirror asof` writes out like `export`).
//!
//! A version is the one in force at `at` when `valid_from <= at < valid_to` (`valid_to`
//! NULL while current): the half-open intervals of the contract. Every table is read in
//! one read transaction of the mirror, so the copy is one committed state.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{sqlite_error, Store, StoreError};

/// The tables of an as-of copy, in the order they are written: the contract's current views.
pub const ASOF_TABLES: &[&str] = &[
    "users_current",
    "groups_current",
    "group_members_current",
    "roles_current",
    "role_permissions_current",
    "user_custom_fields_current",
];

/// The tables, with the columns (and order) of the views in `schema.sql`, typed as the
/// tables behind them; plus `as_of`, one row saying which moment the file shows.
const CREATE_TABLES: &str = "
CREATE TABLE users_current (
    organization_user_id      INTEGER PRIMARY KEY,
    user_account_id           INTEGER,
    user_id                   TEXT,
    name                      TEXT,
    email                     TEXT,
    active                    INTEGER,
    admin                     INTEGER,
    owner                     INTEGER,
    joined                    INTEGER,
    invite_sent               INTEGER,
    two_fa_enabled            INTEGER,
    can_edit_personal_details INTEGER,
    account_locked_at         TEXT,
    created_at                TEXT,
    updated_at                TEXT,
    deleted_at                TEXT,
    organization_id           INTEGER,
    working_hours             REAL,
    hourly_rate               REAL,
    currency                  TEXT,
    rate_start_at             TEXT,
    rate_workspace_id         INTEGER
);
CREATE TABLE groups_current (
    group_id        INTEGER PRIMARY KEY,
    name            TEXT,
    emoji           TEXT,
    organization_id INTEGER,
    created_at      TEXT,
    updated_at      TEXT,
    deleted_at      TEXT
);
CREATE TABLE group_members_current (
    group_id             INTEGER NOT NULL,
    organization_user_id INTEGER NOT NULL,
    user_group_id        INTEGER,
    user_account_id      INTEGER,
    created_at           TEXT,
    PRIMARY KEY (group_id, organization_user_id)
);
CREATE INDEX group_members_current_by_user ON group_members_current (organization_user_id);
CREATE TABLE roles_current (
    role_id         INTEGER PRIMARY KEY,
    code            TEXT,
    name            TEXT,
    type            TEXT,
    privilege_level INTEGER,
    entity          TEXT,
    description     TEXT,
    organization_id INTEGER,
    require_group   INTEGER,
    default_for_levels TEXT
);
CREATE TABLE role_permissions_current (
    role_id       INTEGER NOT NULL,
    permission_id INTEGER NOT NULL,
    name          TEXT,
    entity        TEXT,
    condition     TEXT,
    description   TEXT,
    category_id   INTEGER,
    category_name TEXT,
    PRIMARY KEY (role_id, permission_id)
);
CREATE TABLE user_custom_fields_current (
    organization_user_id INTEGER NOT NULL,
    custom_field_id      INTEGER NOT NULL,
    custom_field_name    TEXT,
    field_type           TEXT,
    value                TEXT,
    option_ids           TEXT NOT NULL,
    option_names         TEXT NOT NULL,
    PRIMARY KEY (organization_user_id, custom_field_id)
);
CREATE TABLE as_of (
    as_of          TEXT NOT NULL,
    first_sync_at  TEXT NOT NULL,
    -- The newest successful run begun by then, and when it began.
    last_run_id    INTEGER,
    last_run_at    TEXT
);
";

/// `?1` is the moment; `h` a version in force then.
macro_rules! in_force {
    ($h:literal) => {
        concat!(
            $h,
            ".valid_from <= ?1 AND (",
            $h,
            ".valid_to IS NULL OR ",
            $h,
            ".valid_to > ?1)"
        )
    };
}

/// One `INSERT … SELECT` per table, reading the versions in force at `?1`.
const FILL_TABLES: &[&str] = &[
    concat!(
        "INSERT INTO users_current
         SELECT u.id,
                json_extract(u.data_json, '$.user_account_id'),
                json_extract(u.data_json, '$.user_id'),
                json_extract(u.data_json, '$.name'),
                json_extract(u.data_json, '$.email'),
                json_extract(u.data_json, '$.active'),
                json_extract(u.data_json, '$.admin'),
                json_extract(u.data_json, '$.owner'),
                json_extract(u.data_json, '$.joined'),
                json_extract(u.data_json, '$.invite_sent'),
                json_extract(u.data_json, '$.\"2fa_enabled\"'),
                json_extract(u.data_json, '$.can_edit_personal_details'),
                json_extract(u.data_json, '$.account_locked_at'),
                json_extract(u.data_json, '$.created_at'),
                json_extract(u.data_json, '$.updated_at'),
                json_extract(u.data_json, '$.deleted_at'),
                json_extract(u.data_json, '$.organization_id'),
                json_extract(u.data_json, '$.working_hours'),
                json_extract(r.data_json, '$.hourly_rate'),
                json_extract(r.data_json, '$.currency'),
                json_extract(r.data_json, '$.start_at'),
                json_extract(r.data_json, '$.workspace_id')
         FROM src.entity_history u
         LEFT JOIN src.entity_history r
                ON r.entity = 'user_rate' AND r.id = u.id AND r.sub_id = 0 AND ",
        in_force!("r"),
        "
         WHERE u.entity = 'user' AND ",
        in_force!("u")
    ),
    concat!(
        "INSERT INTO groups_current
         SELECT g.id,
                json_extract(g.data_json, '$.name'),
                json_extract(g.data_json, '$.emoji'),
                json_extract(g.data_json, '$.organization_id'),
                json_extract(g.data_json, '$.created_at'),
                json_extract(g.data_json, '$.updated_at'),
                json_extract(g.data_json, '$.deleted_at')
         FROM src.entity_history g
         WHERE g.entity = 'group' AND ",
        in_force!("g")
    ),
    concat!(
        "INSERT INTO group_members_current
         SELECT m.id, m.sub_id,
                json_extract(m.data_json, '$.user_group_id'),
                json_extract(m.data_json, '$.user_account_id'),
                json_extract(m.data_json, '$.created_at')
         FROM src.entity_history m
         WHERE m.entity = 'group_membership' AND ",
        in_force!("m")
    ),
    concat!(
        "INSERT INTO roles_current
         SELECT r.id,
                json_extract(r.data_json, '$.code'),
                json_extract(r.data_json, '$.name'),
                json_extract(r.data_json, '$.type'),
                json_extract(r.data_json, '$.privilege_level'),
                json_extract(r.data_json, '$.entity'),
                json_extract(r.data_json, '$.description'),
                json_extract(r.data_json, '$.organization_id'),
                json_extract(r.data_json, '$.require_group'),
                json_extract(r.data_json, '$.default_for_levels')
         FROM src.entity_history r
         WHERE r.entity = 'role' AND ",
        in_force!("r")
    ),
    concat!(
        "INSERT INTO role_permissions_current
         SELECT r.id,
                json_extract(p.value, '$.permission_id'),
                json_extract(p.value, '$.name'),
                json_extract(p.value, '$.entity'),
                json_extract(p.value, '$.condition'),
                json_extract(p.value, '$.description'),
                json_extract(p.value, '$.category_id'),
                json_extract(p.value, '$.category_name')
         FROM src.entity_history r, json_each(r.data_json, '$.permissions') p
         WHERE r.entity = 'role' AND ",
        in_force!("r")
    ),
    concat!(
        "INSERT INTO user_custom_fields_current
         SELECT v.id, v.sub_id,
                json_extract(v.data_json, '$.custom_field_name'),
                json_extract(v.data_json, '$.field_type'),
                json_extract(v.data_json, '$.value'),
                (SELECT json_group_array(json_extract(o.value, '$.option_id') ORDER BY o.key)
                 FROM json_each(v.data_json, '$.selected_options') o),
                (SELECT json_group_array(json_extract(o.value, '$.option_name') ORDER BY o.key)
                 FROM json_each(v.data_json, '$.selected_options') o)
         FROM src.entity_history v
         WHERE v.entity = 'user_custom_field' AND ",
        in_force!("v")
    ),
];

/// The organization at one moment, held in an in-memory database of [`ASOF_TABLES`].
pub struct AsOfState {
    conn: Connection,
}

impl AsOfState {
    /// The in-memory database (its tables are [`ASOF_TABLES`] and `as_of`).
    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// An as-of read that could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum AsOfError {
    #[error("the mirror has no successful sync yet; run `orgmirror sync` first")]
    NoHistory,
    #[error("{at} is before the mirror's first sync ({first_sync_at}); its history starts there")]
    BeforeHistory { at: String, first_sync_at: String },
    /// `[retention] history` dropped what ended before `kept_from`.
    #[error("the history was not kept that far: {at} is before {kept_from}, and [retention] history dropped what ended before that; ask for {kept_from} or later")]
    NotKept { at: String, kept_from: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// The six current views as they stood at `at` (RFC 3339 UTC, whole seconds, `Z`),
    /// from the history, read in one transaction.
    pub fn as_of(&self, at: &str) -> Result<AsOfState, AsOfError> {
        let sql = sqlite_error(&self.path);
        let conn = Connection::open_with_flags(
            ":memory:",
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(&sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&sql)?;
        conn.execute("ATTACH DATABASE ?1 AS src", [read_only_uri(&self.path)])
            .map_err(&sql)?;
        // One read transaction over the mirror for every table: one committed state.
        conn.execute_batch("BEGIN").map_err(&sql)?;
        // The history starts with the first run's events; a mirror of an empty
        // organization has none, and then its first successful run is the start.
        let first_sync_at: Option<String> = conn
            .query_row(
                "SELECT coalesce(
                     (SELECT observed_at FROM src.change_log ORDER BY event_id LIMIT 1),
                     (SELECT started_at FROM src.sync_runs WHERE status = 'succeeded'
                      ORDER BY sync_run_id LIMIT 1))",
                [],
                |r| r.get(0),
            )
            .map_err(&sql)?;
        let mut first_sync_at = first_sync_at.ok_or(AsOfError::NoHistory)?;
        // After a retention pass the oldest events left are not where the history began:
        // what ended before the cutoff is gone, what was valid at or after it is whole.
        // A mirror no newer orgmirror has written yet has no retention.
        let has_cutoffs: bool = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('sync_runs', 'src') WHERE name = 'retention_cutoff'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
            .map_err(&sql)?;
        let kept_from: Option<String> = if !has_cutoffs {
            None
        } else {
            conn.query_row(
                "SELECT retention_cutoff FROM src.sync_runs
                 WHERE status = 'succeeded' AND retention_cutoff IS NOT NULL
                 ORDER BY sync_run_id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(&sql)?
            .flatten()
        };
        if let Some(kept_from) = kept_from {
            if at < kept_from.as_str() {
                return Err(AsOfError::NotKept {
                    at: at.to_string(),
                    kept_from,
                });
            }
            let first_run: Option<String> = conn
                .query_row(
                    "SELECT min(started_at) FROM src.sync_runs WHERE status = 'succeeded' AND kind = 'full'",
                    [],
                    |r| r.get(0),
                )
                .map_err(&sql)?;
            first_sync_at = first_run.unwrap_or(first_sync_at).max(kept_from);
        }
        if at < first_sync_at.as_str() {
            return Err(AsOfError::BeforeHistory {
                at: at.to_string(),
                first_sync_at,
            });
        }
        conn.execute_batch(CREATE_TABLES).map_err(&sql)?;
        for fill in FILL_TABLES {
            conn.execute(fill, [at]).map_err(&sql)?;
        }
        conn.execute(
            "INSERT INTO as_of VALUES (?1, ?2,
                 (SELECT sync_run_id FROM src.sync_runs WHERE status = 'succeeded'
                  AND started_at <= ?1 ORDER BY sync_run_id DESC LIMIT 1),
                 (SELECT started_at FROM src.sync_runs WHERE status = 'succeeded'
                  AND started_at <= ?1 ORDER BY sync_run_id DESC LIMIT 1))",
            [at, first_sync_at.as_str()],
        )
        .map_err(&sql)?;
        conn.execute_batch("COMMIT; DETACH DATABASE src")
            .map_err(&sql)?;
        Ok(AsOfState { conn })
    }
}

/// `file:PATH?mode=ro`, with the characters a URI path cannot hold escaped.
fn read_only_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' => uri.push_str(&format!("%{b:02X}")),
            _ if b.is_ascii() && !b.is_ascii_control() => uri.push(char::from(*b)),
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

-- orgmirror schema. Applied by the binary (embedded with include_str!) to a new database;
-- the version is PRAGMA user_version, set by the binary after this script ran.
--
-- Three layers:
--   * current tables: the organization as the last successful run saw it, normalised;
--   * entity_history: SCD-2 intervals [valid_from, valid_to) of every entity's canonical JSON;
--   * change_events and sync_runs: what each run observed and how it went.
-- Consumers read the contract views (users_current, groups_current, ...) and the tables
-- change_events and sync_runs. Timestamps are RFC 3339 UTC text with a Z; booleans 0/1.

-- One row per run: full pulls, and targeted refreshes after a group write.
CREATE TABLE sync_runs (
    sync_run_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL DEFAULT 'full' CHECK (kind IN ('full', 'targeted')),
    started_at      TEXT    NOT NULL,
    finished_at     TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    error           TEXT,
    requests        INTEGER NOT NULL DEFAULT 0,
    events_written  INTEGER NOT NULL DEFAULT 0,
    -- The request quota the last response of the run announced.
    quota_remaining INTEGER,
    quota_resets_at TEXT,
    -- Events by entity and op, e.g. {"user":{"insert":3}}.
    summary_json    TEXT,
    pid             INTEGER
);
CREATE INDEX sync_runs_by_status ON sync_runs (status, sync_run_id);

-- Every change every run observed (read it through the view change_events). The JSON of the
-- versions before and after lives once, in entity_history; an event points at those rows.
-- Replaying the events in event_id order rebuilds the current state.
CREATE TABLE change_log (
    event_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    sync_run_id    INTEGER NOT NULL REFERENCES sync_runs (sync_run_id),
    observed_at    TEXT    NOT NULL,
    entity         TEXT    NOT NULL,
    entity_id      TEXT    NOT NULL,
    op             TEXT    NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    changed_fields TEXT,
    before_history INTEGER REFERENCES entity_history (history_id),
    after_history  INTEGER REFERENCES entity_history (history_id)
);
CREATE INDEX change_log_by_run ON change_log (sync_run_id);
CREATE INDEX change_log_by_entity ON change_log (entity, entity_id, event_id);
CREATE INDEX change_log_by_time ON change_log (observed_at);

-- SCD-2 history of every entity: one row per version, half-open [valid_from, valid_to).
-- `id` is the upstream id (the group id for a membership), `sub_id` the member's
-- organization user id for a membership and 0 otherwise. A closed interval is never
-- reopened: an entity that comes back opens a new row.
CREATE TABLE entity_history (
    -- Explicit, so that VACUUM (and export's VACUUM INTO) keep the ids change_log points at.
    history_id   INTEGER PRIMARY KEY,
    entity       TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    id           INTEGER NOT NULL,
    sub_id       INTEGER NOT NULL DEFAULT 0,
    valid_from   TEXT    NOT NULL,
    valid_to     TEXT,
    data_json    TEXT    NOT NULL,
    -- XXH3-64 of data_json, and of the unknown upstream fields (kept in the current tables).
    data_hash    INTEGER NOT NULL,
    unknown_hash INTEGER,
    opened_by    INTEGER NOT NULL REFERENCES sync_runs (sync_run_id),
    closed_by    INTEGER REFERENCES sync_runs (sync_run_id),
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
-- Never more than one current row per entity.
CREATE UNIQUE INDEX entity_history_one_current ON entity_history (entity, entity_id) WHERE valid_to IS NULL;
-- What a run diffs against, read from the index alone.
CREATE INDEX entity_history_current_hashes ON entity_history (entity, id, sub_id, data_hash, unknown_hash)
    WHERE valid_to IS NULL;
-- "as of" queries by entity and id.
CREATE INDEX entity_history_by_id ON entity_history (entity, id, sub_id, valid_from);
CREATE INDEX entity_history_memberships_by_user ON entity_history (sub_id, valid_from)
    WHERE entity = 'group_membership';

-- Current state, normalised.
CREATE TABLE users (
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
    permissions_json          TEXT,
    -- Top-level fields the API sent that orgmirror does not know, as a JSON object.
    unknown_json              TEXT
);
CREATE INDEX users_by_email ON users (email);

CREATE TABLE user_workspaces (
    organization_user_id INTEGER NOT NULL,
    workspace_id         INTEGER NOT NULL,
    workspace_user_id    INTEGER,
    focus_role_id        INTEGER,
    track_role_id        INTEGER,
    work_role_id         INTEGER,
    toggl_products_json  TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (organization_user_id, workspace_id)
) WITHOUT ROWID;

CREATE TABLE user_tags (
    organization_user_id INTEGER NOT NULL,
    tag_id               INTEGER NOT NULL,
    label                TEXT,
    color                TEXT,
    PRIMARY KEY (organization_user_id, tag_id)
) WITHOUT ROWID;

CREATE TABLE user_rates (
    organization_user_id   INTEGER PRIMARY KEY,
    hourly_rate            REAL,
    currency               TEXT,
    start_at               TEXT,
    end_at                 TEXT,
    workspace_id           INTEGER,
    workspace_rate_id      INTEGER,
    workspace_user_rate_id INTEGER
);

CREATE TABLE groups (
    group_id        INTEGER PRIMARY KEY,
    name            TEXT,
    emoji           TEXT,
    organization_id INTEGER,
    created_at      TEXT,
    updated_at      TEXT,
    deleted_at      TEXT,
    unknown_json    TEXT
);
CREATE INDEX groups_by_name ON groups (name);

CREATE TABLE group_workspaces (
    group_id           INTEGER NOT NULL,
    workspace_id       INTEGER NOT NULL,
    workspace_group_id INTEGER,
    created_at         TEXT,
    updated_at         TEXT,
    deleted_at         TEXT,
    PRIMARY KEY (group_id, workspace_id)
) WITHOUT ROWID;

CREATE TABLE group_ghosts (
    group_id INTEGER NOT NULL,
    ghost_id INTEGER NOT NULL,
    name     TEXT,
    PRIMARY KEY (group_id, ghost_id)
) WITHOUT ROWID;

CREATE TABLE group_members (
    group_id             INTEGER NOT NULL,
    organization_user_id INTEGER NOT NULL,
    user_group_id        INTEGER,
    user_account_id      INTEGER,
    focus_role_id        INTEGER,
    track_role_id        INTEGER,
    work_role_id         INTEGER,
    created_at           TEXT,
    updated_at           TEXT,
    deleted_at           TEXT,
    PRIMARY KEY (group_id, organization_user_id)
);
CREATE INDEX group_members_by_user ON group_members (organization_user_id);

CREATE TABLE roles (
    role_id         INTEGER PRIMARY KEY,
    code            TEXT,
    name            TEXT,
    type            TEXT,
    privilege_level INTEGER,
    entity          TEXT,
    description     TEXT,
    organization_id INTEGER,
    unknown_json    TEXT
);

CREATE TABLE role_permissions (
    role_id       INTEGER NOT NULL,
    permission_id INTEGER NOT NULL,
    name          TEXT,
    entity        TEXT,
    condition     TEXT,
    description   TEXT,
    PRIMARY KEY (role_id, permission_id)
);

-- Names of the workspaces seen in users and groups (not history-tracked).
CREATE TABLE workspaces (
    workspace_id INTEGER PRIMARY KEY,
    name         TEXT
);

-- The SQL contract. This file is schema version 1; src/store/migrations/ holds the later ones
-- (24_published_roles_and_custom_fields.sql gives roles_current `require_group` and
-- `default_for_levels`, role_permissions_current `category_id` and `category_name`, and adds
-- user_custom_fields_current and user_custom_field_history).
CREATE VIEW change_events AS
SELECT e.event_id, e.sync_run_id, e.observed_at, e.entity, e.entity_id, e.op, e.changed_fields,
       b.data_json AS before_json, a.data_json AS after_json
FROM change_log e
LEFT JOIN entity_history b ON b.history_id = e.before_history
LEFT JOIN entity_history a ON a.history_id = e.after_history;

CREATE VIEW users_current AS
SELECT u.organization_user_id, u.user_account_id, u.user_id, u.name, u.email, u.active, u.admin,
       u.owner, u.joined, u.invite_sent, u.two_fa_enabled, u.can_edit_personal_details,
       u.account_locked_at, u.created_at, u.updated_at, u.deleted_at, u.organization_id,
       u.working_hours, r.hourly_rate, r.currency, r.start_at AS rate_start_at,
       r.workspace_id AS rate_workspace_id
FROM users u
LEFT JOIN user_rates r ON r.organization_user_id = u.organization_user_id;

CREATE VIEW groups_current AS
SELECT group_id, name, emoji, organization_id, created_at, updated_at, deleted_at
FROM groups;

CREATE VIEW group_members_current AS
SELECT group_id, organization_user_id, user_group_id, user_account_id, created_at
FROM group_members;

CREATE VIEW roles_current AS
SELECT role_id, code, name, type, privilege_level, entity, description, organization_id
FROM roles;

CREATE VIEW role_permissions_current AS
SELECT role_id, permission_id, name, entity, condition, description
FROM role_permissions;

CREATE VIEW group_membership_history AS
SELECT id AS group_id, sub_id AS organization_user_id, valid_from, valid_to
FROM entity_history
WHERE entity = 'group_membership';

CREATE VIEW rate_history AS
SELECT id AS organization_user_id,
       json_extract(data_json, '$.hourly_rate') AS hourly_rate,
       json_extract(data_json, '$.currency') AS currency,
       json_extract(data_json, '$.start_at') AS start_at,
       valid_from, valid_to
FROM entity_history
WHERE entity = 'user_rate';

-- Every entity's versions, for questions the narrower views do not answer.
CREATE VIEW user_history AS
SELECT id AS organization_user_id,
       json_extract(data_json, '$.name') AS name,
       json_extract(data_json, '$.email') AS email,
       json_extract(data_json, '$.active') AS active,
       valid_from, valid_to, data_json
FROM entity_history
WHERE entity = 'user';

CREATE VIEW group_history AS
SELECT id AS group_id,
       json_extract(data_json, '$.name') AS name,
       json_extract(data_json, '$.emoji') AS emoji,
       valid_from, valid_to, data_json
FROM entity_history
WHERE entity = 'group';

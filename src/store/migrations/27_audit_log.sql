-- The organization's audit log, kept after the API forgets it, and who made each change and
-- when it happened.
--
-- audit_events: one row per event the API returned, whatever its type, never deleted.
-- `created_at` is RFC 3339 UTC with six fractional digits (so that text order is time order);
-- `dedup_key` is the SHA-256 of the event's canonical JSON (its time in that form), so an
-- event pulled twice (the overlap with the previous pull, a window asked again after a
-- failure) is stored once. `subject_entity`/`subject_id` name the mirror's entity the event
-- is about, in `change_events` terms (NULL for a type the mirror does not track).
-- `window_run_id` is the run whose matching window held the event (NULL for the backlog
-- before the mirror's first run); `change_log.audit_event_id` points at the event that
-- explains a change. Names and e-mails: `raw_json`, `old_value`, `new_value` and `meta_data`
-- may name people (the API's own text); `audit_actors` holds `name` and `email`.
CREATE TABLE audit_events (
    audit_event_id INTEGER PRIMARY KEY,
    created_at     TEXT    NOT NULL,
    entity_type    TEXT    NOT NULL,
    entity_id      TEXT,
    action         TEXT    NOT NULL,
    actor_user_id  INTEGER,
    workspace_id   INTEGER,
    old_value      TEXT,
    new_value      TEXT,
    meta_data      TEXT,
    raw_json       TEXT    NOT NULL,
    dedup_key      TEXT    NOT NULL UNIQUE,
    sync_run_id    INTEGER NOT NULL REFERENCES sync_runs (sync_run_id),
    subject_entity TEXT,
    subject_id     TEXT,
    window_run_id  INTEGER REFERENCES sync_runs (sync_run_id)
);
CREATE INDEX audit_events_by_time ON audit_events (created_at);
CREATE INDEX audit_events_by_subject ON audit_events (subject_entity, subject_id, created_at)
    WHERE subject_entity IS NOT NULL;
CREATE INDEX audit_events_by_actor ON audit_events (actor_user_id, created_at);

-- The people the log names (`user_summaries`), by the log's own `user_id`, as last seen.
-- `user_account_id` joins users_current: the log's ids are in a space of their own.
CREATE TABLE audit_actors (
    user_id         INTEGER PRIMARY KEY,
    name            TEXT,
    email           TEXT,
    user_account_id INTEGER,
    seen_at         TEXT    NOT NULL,
    -- The run that last wrote the row (what a replica copies with that run).
    sync_run_id     INTEGER NOT NULL REFERENCES sync_runs (sync_run_id)
);
CREATE INDEX audit_actors_by_account ON audit_actors (user_account_id);
CREATE INDEX audit_actors_by_run ON audit_actors (sync_run_id);
CREATE INDEX audit_events_by_run ON audit_events (sync_run_id);
CREATE INDEX audit_events_by_window ON audit_events (window_run_id, created_at)
    WHERE window_run_id IS NOT NULL;

-- How far the mirrored log reaches, and what it still has to fetch (one row).
-- [reached_from, reached_to] is held, but for the backlog [backlog_from, backlog_to) still
-- to fetch (newest first, `backlog_page` within it). `refused_at` is the last 403 (the
-- permission is asked again a day later); `failed_at`/`failure` the last other failure.
CREATE TABLE audit_state (
    one           INTEGER PRIMARY KEY CHECK (one = 1),
    reached_from  TEXT,
    reached_to    TEXT,
    backlog_from  TEXT,
    backlog_to    TEXT,
    backlog_page  INTEGER NOT NULL DEFAULT 1,
    refused_at    TEXT,
    refusal       TEXT,
    failed_at     TEXT,
    failure       TEXT
);

-- A change's actor and real time, from the audit event that explains it (`attribution`
-- 'audit'), NULL when none does. Names are not copied here: change_events joins
-- audit_actors.
ALTER TABLE change_log ADD COLUMN actor_user_id INTEGER;
ALTER TABLE change_log ADD COLUMN changed_at TEXT;
ALTER TABLE change_log ADD COLUMN attribution TEXT CHECK (attribution IN ('audit'));
ALTER TABLE change_log ADD COLUMN audit_event_id INTEGER REFERENCES audit_events (audit_event_id);
-- The run that matched it (a later one than its own when the log had a gap then).
ALTER TABLE change_log ADD COLUMN attributed_by INTEGER REFERENCES sync_runs (sync_run_id);
CREATE INDEX change_log_attributed ON change_log (after_history) WHERE changed_at IS NOT NULL;
CREATE INDEX change_log_by_attributing_run ON change_log (attributed_by)
    WHERE attributed_by IS NOT NULL;
CREATE INDEX change_log_by_audit_event ON change_log (audit_event_id)
    WHERE audit_event_id IS NOT NULL;

-- Requests a run spent on the audit backlog: counted in `requests` and the quota, left out
-- of the cost of a sync that `cron = "auto"` plans with (the backlog only spends what the
-- share leaves).
ALTER TABLE sync_runs ADD COLUMN audit_backlog_requests INTEGER NOT NULL DEFAULT 0;

DROP VIEW change_events;
CREATE VIEW change_events AS
SELECT e.event_id, e.sync_run_id, e.observed_at, e.entity, e.entity_id, e.op, e.changed_fields,
       b.data_json AS before_json, a.data_json AS after_json,
       e.actor_user_id, p.name AS actor_name, e.changed_at, e.attribution
FROM change_log e
LEFT JOIN entity_history b ON b.history_id = e.before_history
LEFT JOIN entity_history a ON a.history_id = e.after_history
LEFT JOIN audit_actors p ON p.user_id = e.actor_user_id;

CREATE VIEW audit_log AS
SELECT e.created_at, e.entity_type, e.entity_id, e.action, e.actor_user_id,
       p.name AS actor_name, p.email AS actor_email, e.workspace_id, e.old_value, e.new_value,
       e.meta_data
FROM audit_events e
LEFT JOIN audit_actors p ON p.user_id = e.actor_user_id;

-- Audit events about entities the mirror tracks, inside a run's window, that no change
-- event explains: a change made and undone between two runs (or a step between two states
-- the runs saw).
CREATE VIEW unobserved_changes AS
SELECT e.created_at, e.entity_type, e.entity_id, e.action, e.subject_entity AS entity,
       e.subject_id, e.actor_user_id, p.name AS actor_name, e.old_value, e.new_value,
       e.window_run_id AS sync_run_id
FROM audit_events e
LEFT JOIN audit_actors p ON p.user_id = e.actor_user_id
WHERE e.subject_entity IS NOT NULL AND e.window_run_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM change_log c WHERE c.audit_event_id = e.audit_event_id);

-- The history views: `changed_at` (the audit log's time of the change that opened the
-- version) beside `valid_from` (when a run saw it).
DROP VIEW group_membership_history;
CREATE VIEW group_membership_history AS
SELECT h.id AS group_id, h.sub_id AS organization_user_id, h.valid_from, h.valid_to,
       (SELECT c.changed_at FROM change_log c
        WHERE c.after_history = h.history_id AND c.changed_at IS NOT NULL) AS changed_at
FROM entity_history h
WHERE h.entity = 'group_membership';

DROP VIEW rate_history;
CREATE VIEW rate_history AS
SELECT h.id AS organization_user_id,
       json_extract(h.data_json, '$.hourly_rate') AS hourly_rate,
       json_extract(h.data_json, '$.currency') AS currency,
       json_extract(h.data_json, '$.start_at') AS start_at,
       h.valid_from, h.valid_to,
       (SELECT c.changed_at FROM change_log c
        WHERE c.after_history = h.history_id AND c.changed_at IS NOT NULL) AS changed_at
FROM entity_history h
WHERE h.entity = 'user_rate';

DROP VIEW user_history;
CREATE VIEW user_history AS
SELECT h.id AS organization_user_id,
       json_extract(h.data_json, '$.name') AS name,
       json_extract(h.data_json, '$.email') AS email,
       json_extract(h.data_json, '$.active') AS active,
       h.valid_from, h.valid_to, h.data_json,
       (SELECT c.changed_at FROM change_log c
        WHERE c.after_history = h.history_id AND c.changed_at IS NOT NULL) AS changed_at
FROM entity_history h
WHERE h.entity = 'user';

DROP VIEW group_history;
CREATE VIEW group_history AS
SELECT h.id AS group_id,
       json_extract(h.data_json, '$.name') AS name,
       json_extract(h.data_json, '$.emoji') AS emoji,
       h.valid_from, h.valid_to, h.data_json,
       (SELECT c.changed_at FROM change_log c
        WHERE c.after_history = h.history_id AND c.changed_at IS NOT NULL) AS changed_at
FROM entity_history h
WHERE h.entity = 'group';

DROP VIEW user_custom_field_history;
CREATE VIEW user_custom_field_history AS
SELECT h.id AS organization_user_id,
       h.sub_id AS custom_field_id,
       json_extract(h.data_json, '$.custom_field_name') AS custom_field_name,
       json_extract(h.data_json, '$.field_type') AS field_type,
       json_extract(h.data_json, '$.value') AS value,
       (SELECT json_group_array(json_extract(o.value, '$.option_id'))
        FROM json_each(h.data_json, '$.selected_options') o) AS option_ids,
       (SELECT json_group_array(json_extract(o.value, '$.option_name'))
        FROM json_each(h.data_json, '$.selected_options') o) AS option_names,
       h.valid_from, h.valid_to, h.data_json,
       (SELECT c.changed_at FROM change_log c
        WHERE c.after_history = h.history_id AND c.changed_at IS NOT NULL) AS changed_at
FROM entity_history h
WHERE h.entity = 'user_custom_field';

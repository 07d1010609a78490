-- The PostgreSQL replica of orgmirror's mirror: the same SQL contract as the SQLite file,
-- every row carrying the organization_id of the mirror it came from, so that several
-- orgmirror instances (one per organization) share one schema. Run with search_path set to
-- the replica's schema (`replica.postgres.schema`); `crate::replica::schema` applies it when
-- the schema's version (replica_schema) is older than this one, under an advisory lock.
--
-- What is replicated is what a run writes: its sync_runs row, the history rows it opened,
-- the intervals it closed and its events. The current state is the open intervals, so a
-- replica is always at one whole run of the mirror. Types are PostgreSQL's own: timestamptz,
-- boolean, jsonb, numeric for rates.

CREATE TABLE IF NOT EXISTS replica_schema (
    version integer NOT NULL
);

-- How far each organization's mirror is replicated: the last run whose rows are all here.
-- Each run is replicated in one transaction that also moves this row.
CREATE TABLE IF NOT EXISTS replica_progress (
    organization_id bigint PRIMARY KEY,
    sync_run_id     bigint NOT NULL,
    replicated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sync_runs (
    organization_id bigint      NOT NULL,
    sync_run_id     bigint      NOT NULL,
    kind            text        NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    status          text        NOT NULL,
    error           text,
    requests        bigint      NOT NULL,
    events_written  bigint      NOT NULL,
    quota_remaining bigint,
    quota_resets_at timestamptz,
    summary_json    jsonb,
    PRIMARY KEY (organization_id, sync_run_id)
);
CREATE INDEX IF NOT EXISTS sync_runs_by_status ON sync_runs (status, sync_run_id);

-- Every version of every entity, [valid_from, valid_to); `data` is the version's canonical
-- JSON (the SQLite mirror's entity_history.data_json).
CREATE TABLE IF NOT EXISTS entity_history (
    organization_id bigint      NOT NULL,
    history_id      bigint      NOT NULL,
    entity          text        NOT NULL,
    entity_id       text        NOT NULL,
    id              bigint      NOT NULL,
    sub_id          bigint      NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz,
    data            jsonb       NOT NULL,
    opened_by       bigint      NOT NULL,
    closed_by       bigint,
    PRIMARY KEY (organization_id, history_id)
);
-- Never more than one current version per entity and organization.
CREATE UNIQUE INDEX IF NOT EXISTS entity_history_one_current
    ON entity_history (organization_id, entity, entity_id) WHERE valid_to IS NULL;
-- The current views, looked up by id (a group's members, a user's rate).
CREATE INDEX IF NOT EXISTS entity_history_current_by_id
    ON entity_history (entity, id, sub_id) WHERE valid_to IS NULL;
-- "As of" questions and rate histories by entity and id.
CREATE INDEX IF NOT EXISTS entity_history_by_id
    ON entity_history (entity, id, sub_id, valid_from);
CREATE INDEX IF NOT EXISTS entity_history_memberships_by_user
    ON entity_history (sub_id, valid_from) WHERE entity = 'group_membership';

CREATE TABLE IF NOT EXISTS change_log (
    organization_id bigint      NOT NULL,
    event_id        bigint      NOT NULL,
    sync_run_id     bigint      NOT NULL,
    observed_at     timestamptz NOT NULL,
    entity          text        NOT NULL,
    entity_id       text        NOT NULL,
    op              text        NOT NULL,
    changed_fields  jsonb,
    before_history  bigint,
    after_history   bigint,
    PRIMARY KEY (organization_id, event_id)
);
CREATE INDEX IF NOT EXISTS change_log_by_run ON change_log (sync_run_id, organization_id);
CREATE INDEX IF NOT EXISTS change_log_by_entity ON change_log (entity, entity_id, event_id);
-- "Who left this month": by kind of change and time.
CREATE INDEX IF NOT EXISTS change_log_by_kind_and_time ON change_log (entity, op, observed_at);
CREATE INDEX IF NOT EXISTS change_log_by_time ON change_log (observed_at);

-- The organization's audit log (the mirror's migration 27): who made each change and when.
-- A change's actor and time come over with it, or later with the run that matched it.
ALTER TABLE change_log ADD COLUMN IF NOT EXISTS actor_user_id bigint;
ALTER TABLE change_log ADD COLUMN IF NOT EXISTS changed_at timestamptz;
ALTER TABLE change_log ADD COLUMN IF NOT EXISTS attribution text;
ALTER TABLE change_log ADD COLUMN IF NOT EXISTS audit_event_id bigint;
CREATE INDEX IF NOT EXISTS change_log_attributed
    ON change_log (organization_id, after_history) WHERE changed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS change_log_by_audit_event
    ON change_log (organization_id, audit_event_id) WHERE audit_event_id IS NOT NULL;
-- Every audit event, kept; names and e-mails are in old_value/new_value/meta_data as the
-- API wrote them, and in audit_actors.
CREATE TABLE IF NOT EXISTS audit_events (
    organization_id bigint      NOT NULL,
    audit_event_id  bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    entity_type     text        NOT NULL,
    entity_id       text,
    action          text        NOT NULL,
    actor_user_id   bigint,
    workspace_id    bigint,
    old_value       jsonb,
    new_value       jsonb,
    meta_data       jsonb,
    sync_run_id     bigint      NOT NULL,
    subject_entity  text,
    subject_id      text,
    window_run_id   bigint,
    PRIMARY KEY (organization_id, audit_event_id)
);
CREATE INDEX IF NOT EXISTS audit_events_by_time ON audit_events (created_at);
CREATE TABLE IF NOT EXISTS audit_actors (
    organization_id bigint NOT NULL,
    user_id         bigint NOT NULL,
    name            text,
    email           text,
    user_account_id bigint,
    PRIMARY KEY (organization_id, user_id)
);

-- An upstream timestamp as timestamptz. The mirror keeps one that is not an RFC 3339 instant
-- as the text the API sent (it stays in the version's jsonb); here it is NULL, never an error.
CREATE OR REPLACE FUNCTION instant(t text) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN t ~ '^(?!0000)\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?Z$'
        THEN CASE
            WHEN substr(t, 9, 2)::int <= extract(day FROM make_date(substr(t, 1, 4)::int, substr(t, 6, 2)::int, 1)
                                                     + interval '1 month - 1 day')
            THEN t::timestamptz
        END
    END
$$;

-- The SQL contract: the SQLite mirror's views, same names and columns, plus organization_id.

CREATE OR REPLACE VIEW change_events AS
SELECT e.organization_id, e.event_id, e.sync_run_id, e.observed_at, e.entity, e.entity_id, e.op,
       e.changed_fields, b.data AS before_json, a.data AS after_json,
       e.actor_user_id, p.name AS actor_name, e.changed_at, e.attribution
FROM change_log e
LEFT JOIN entity_history b ON b.organization_id = e.organization_id AND b.history_id = e.before_history
LEFT JOIN entity_history a ON a.organization_id = e.organization_id AND a.history_id = e.after_history
LEFT JOIN audit_actors p ON p.organization_id = e.organization_id AND p.user_id = e.actor_user_id;

-- organization_id is the mirror's organization here (the upstream's own value, the same
-- organization, is in the version's jsonb).
CREATE OR REPLACE VIEW users_current AS
SELECT u.id AS organization_user_id,
       (u.data->>'user_account_id')::bigint AS user_account_id,
       u.data->>'user_id' AS user_id,
       u.data->>'name' AS name,
       u.data->>'email' AS email,
       (u.data->>'active')::boolean AS active,
       (u.data->>'admin')::boolean AS admin,
       (u.data->>'owner')::boolean AS owner,
       (u.data->>'joined')::boolean AS joined,
       (u.data->>'invite_sent')::boolean AS invite_sent,
       (u.data->>'2fa_enabled')::boolean AS two_fa_enabled,
       (u.data->>'can_edit_personal_details')::boolean AS can_edit_personal_details,
       instant(u.data->>'account_locked_at') AS account_locked_at,
       instant(u.data->>'created_at') AS created_at,
       instant(u.data->>'updated_at') AS updated_at,
       instant(u.data->>'deleted_at') AS deleted_at,
       u.organization_id,
       (u.data->>'working_hours')::double precision AS working_hours,
       (r.data->>'hourly_rate')::numeric AS hourly_rate,
       r.data->>'currency' AS currency,
       instant(r.data->>'start_at') AS rate_start_at,
       (r.data->>'workspace_id')::bigint AS rate_workspace_id
FROM entity_history u
LEFT JOIN entity_history r
       ON r.entity = 'user_rate' AND r.id = u.id AND r.sub_id = 0 AND r.valid_to IS NULL
      AND r.organization_id = u.organization_id
WHERE u.entity = 'user' AND u.valid_to IS NULL;

CREATE OR REPLACE VIEW groups_current AS
SELECT g.id AS group_id,
       g.data->>'name' AS name,
       g.data->>'emoji' AS emoji,
       g.organization_id,
       instant(g.data->>'created_at') AS created_at,
       instant(g.data->>'updated_at') AS updated_at,
       instant(g.data->>'deleted_at') AS deleted_at
FROM entity_history g
WHERE g.entity = 'group' AND g.valid_to IS NULL;

CREATE OR REPLACE VIEW group_members_current AS
SELECT m.organization_id,
       m.id AS group_id,
       m.sub_id AS organization_user_id,
       (m.data->>'user_group_id')::bigint AS user_group_id,
       (m.data->>'user_account_id')::bigint AS user_account_id,
       instant(m.data->>'created_at') AS created_at
FROM entity_history m
WHERE m.entity = 'group_membership' AND m.valid_to IS NULL;

CREATE OR REPLACE VIEW roles_current AS
SELECT r.id AS role_id,
       r.data->>'code' AS code,
       r.data->>'name' AS name,
       r.data->>'type' AS type,
       (r.data->>'privilege_level')::bigint AS privilege_level,
       r.data->>'entity' AS entity,
       r.data->>'description' AS description,
       r.organization_id,
       (r.data->>'require_group')::boolean AS require_group,
       r.data->'default_for_levels' AS default_for_levels
FROM entity_history r
WHERE r.entity = 'role' AND r.valid_to IS NULL;

CREATE OR REPLACE VIEW role_permissions_current AS
SELECT r.organization_id,
       r.id AS role_id,
       (p->>'permission_id')::bigint AS permission_id,
       p->>'name' AS name,
       p->>'entity' AS entity,
       p->>'condition' AS condition,
       p->>'description' AS description,
       (p->>'category_id')::bigint AS category_id,
       p->>'category_name' AS category_name
FROM entity_history r
CROSS JOIN LATERAL jsonb_array_elements(coalesce(r.data->'permissions', '[]'::jsonb)) AS p
WHERE r.entity = 'role' AND r.valid_to IS NULL;

CREATE OR REPLACE VIEW group_membership_history AS
SELECT h.organization_id, h.id AS group_id, h.sub_id AS organization_user_id, h.valid_from,
       h.valid_to,
       (SELECT c.changed_at FROM change_log c
        WHERE c.organization_id = h.organization_id AND c.after_history = h.history_id
          AND c.changed_at IS NOT NULL) AS changed_at
FROM entity_history h
WHERE h.entity = 'group_membership';

CREATE OR REPLACE VIEW rate_history AS
SELECT organization_id,
       id AS organization_user_id,
       (data->>'hourly_rate')::numeric AS hourly_rate,
       data->>'currency' AS currency,
       instant(data->>'start_at') AS start_at,
       valid_from, valid_to,
       (SELECT c.changed_at FROM change_log c
        WHERE c.organization_id = h.organization_id AND c.after_history = h.history_id
          AND c.changed_at IS NOT NULL) AS changed_at
FROM entity_history h
WHERE entity = 'user_rate';

CREATE OR REPLACE VIEW user_history AS
SELECT organization_id,
       id AS organization_user_id,
       data->>'name' AS name,
       data->>'email' AS email,
       (data->>'active')::boolean AS active,
       valid_from, valid_to, data AS data_json,
       (SELECT c.changed_at FROM change_log c
        WHERE c.organization_id = h.organization_id AND c.after_history = h.history_id
          AND c.changed_at IS NOT NULL) AS changed_at
FROM entity_history h
WHERE entity = 'user';

CREATE OR REPLACE VIEW group_history AS
SELECT organization_id,
       id AS group_id,
       data->>'name' AS name,
       data->>'emoji' AS emoji,
       valid_from, valid_to, data AS data_json,
       (SELECT c.changed_at FROM change_log c
        WHERE c.organization_id = h.organization_id AND c.after_history = h.history_id
          AND c.changed_at IS NOT NULL) AS changed_at
FROM entity_history h
WHERE entity = 'group';

-- A custom field value's selected options, in option id order (the version's order): their
-- ids or their names as a JSON array.
CREATE OR REPLACE FUNCTION option_list(data jsonb, part text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_agg(o.option -> part ORDER BY o.n), '[]'::jsonb)
    FROM jsonb_array_elements(coalesce(data -> 'selected_options', '[]'::jsonb))
         WITH ORDINALITY AS o(option, n)
$$;

CREATE OR REPLACE VIEW user_custom_fields_current AS
SELECT v.organization_id,
       v.id AS organization_user_id,
       v.sub_id AS custom_field_id,
       v.data->>'custom_field_name' AS custom_field_name,
       v.data->>'field_type' AS field_type,
       v.data->>'value' AS value,
       option_list(v.data, 'option_id') AS option_ids,
       option_list(v.data, 'option_name') AS option_names
FROM entity_history v
WHERE v.entity = 'user_custom_field' AND v.valid_to IS NULL;

CREATE OR REPLACE VIEW user_custom_field_history AS
SELECT organization_id,
       id AS organization_user_id,
       sub_id AS custom_field_id,
       data->>'custom_field_name' AS custom_field_name,
       data->>'field_type' AS field_type,
       data->>'value' AS value,
       option_list(data, 'option_id') AS option_ids,
       option_list(data, 'option_name') AS option_names,
       valid_from, valid_to, data AS data_json,
       (SELECT c.changed_at FROM change_log c
        WHERE c.organization_id = h.organization_id AND c.after_history = h.history_id
          AND c.changed_at IS NOT NULL) AS changed_at
FROM entity_history h
WHERE entity = 'user_custom_field';

-- Whether each organization's mirror is current: the facts of its mirror_freshness view, as
-- they stood after its newest run (full or failed: a failed run's own row comes over with
-- the next committed one, its health at once). The view below computes the age when read,
-- so a mirror that stopped goes stale here on time too.
CREATE TABLE IF NOT EXISTS mirror_health (
    organization_id      bigint PRIMARY KEY,
    last_success_at      timestamptz,
    last_attempt_at      timestamptz,
    last_status          text,
    last_error           text,
    consecutive_failures bigint      NOT NULL,
    stale_after_seconds  bigint,
    failing_since        timestamptz,
    hint                 text,
    -- What `stale` counts from before any success.
    first_attempt_at     timestamptz,
    recorded_at          timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE VIEW mirror_freshness AS
SELECT organization_id, last_success_at, last_attempt_at, last_status, last_error,
       consecutive_failures,
       floor(extract(epoch FROM now() - last_success_at))::bigint AS age_seconds,
       CASE WHEN stale_after_seconds IS NULL OR coalesce(last_success_at, first_attempt_at) IS NULL
            THEN NULL
            ELSE floor(extract(epoch FROM now() - coalesce(last_success_at, first_attempt_at)))
                 > stale_after_seconds
       END AS stale,
       stale_after_seconds, failing_since, hint
FROM mirror_health;

-- The organization's audit log, and the audit events no change explains.
CREATE OR REPLACE VIEW audit_log AS
SELECT e.organization_id, e.created_at, e.entity_type, e.entity_id, e.action, e.actor_user_id,
       p.name AS actor_name, p.email AS actor_email, e.workspace_id, e.old_value, e.new_value,
       e.meta_data
FROM audit_events e
LEFT JOIN audit_actors p ON p.organization_id = e.organization_id AND p.user_id = e.actor_user_id;

CREATE OR REPLACE VIEW unobserved_changes AS
SELECT e.organization_id, e.created_at, e.entity_type, e.entity_id, e.action,
       e.subject_entity AS entity, e.subject_id, e.actor_user_id, p.name AS actor_name,
       e.old_value, e.new_value, e.window_run_id AS sync_run_id
FROM audit_events e
LEFT JOIN audit_actors p ON p.organization_id = e.organization_id AND p.user_id = e.actor_user_id
WHERE e.subject_entity IS NOT NULL AND e.window_run_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM change_log c
                  WHERE c.organization_id = e.organization_id
                    AND c.audit_event_id = e.audit_event_id);

-- Erasure receipts (`orgmirror erase`, and retention's erasures of people long gone): when,
-- whom (the id only), why, who ran it and how many rows of each table changed — never the
-- erased data. An erasure is a run (kind 'erasure'): its versions' new JSON is applied to
-- entity_history in that run's transaction, as a retention pass's drops are.
CREATE TABLE IF NOT EXISTS erasures (
    organization_id      bigint      NOT NULL,
    sync_run_id          bigint      NOT NULL,
    erased_at            timestamptz NOT NULL,
    organization_user_id bigint      NOT NULL,
    reason               text        NOT NULL,
    erased_by            text        NOT NULL,
    history_only         boolean     NOT NULL,
    counts               jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS erasures_by_run ON erasures (organization_id, sync_run_id);
-- What retention drops, found by the end of the versions.
CREATE INDEX IF NOT EXISTS entity_history_closed
    ON entity_history (organization_id, valid_to) WHERE valid_to IS NOT NULL;

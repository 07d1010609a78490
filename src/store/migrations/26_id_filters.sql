-- The id filter form each list honours (`org_user_ids=1,2` as the published spec writes it,
-- `org_user_ids[]=1` as the reference page does, or neither), so that finding it costs at
-- most one request per list over a mirror's life; and the users and groups a complete pull
-- missed while the API honours neither form: one missed again by the next complete pull is
-- gone, one seen again is cleared.
CREATE TABLE api_filter_forms (
    list       TEXT PRIMARY KEY CHECK (list IN ('users', 'teams')),
    form       TEXT NOT NULL CHECK (form IN ('comma', 'brackets', 'none')),
    learned_at TEXT NOT NULL
);
CREATE TABLE pending_absences (
    entity    TEXT    NOT NULL CHECK (entity IN ('user', 'group')),
    entity_id INTEGER NOT NULL,
    missed_by INTEGER NOT NULL REFERENCES sync_runs (sync_run_id),
    PRIMARY KEY (entity, entity_id)
);

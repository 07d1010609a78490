-- Forgetting a person (`orgmirror erase`) and keeping history only as long as
-- `[retention] history` says.

-- The run an erasure rewrote a version in (its JSON tombstoned): what a replica applies
-- for that run. Only erased versions have one.
ALTER TABLE entity_history ADD COLUMN erased_by INTEGER REFERENCES sync_runs (sync_run_id);
CREATE INDEX entity_history_erased ON entity_history (erased_by) WHERE erased_by IS NOT NULL;
-- The erasure that last rewrote an audit event's texts (what a replica applies with it).
ALTER TABLE audit_events ADD COLUMN erased_by INTEGER REFERENCES sync_runs (sync_run_id);
CREATE INDEX audit_events_erased ON audit_events (erased_by) WHERE erased_by IS NOT NULL;
-- What retention drops: the versions that ended before its cutoff, found by their end.
CREATE INDEX entity_history_closed ON entity_history (valid_to) WHERE valid_to IS NOT NULL;

-- The cutoff a run's retention pass dropped history before (NULL: retention was off):
-- `asof` before the newest one is refused, and a replica drops the same rows.
ALTER TABLE sync_runs ADD COLUMN retention_cutoff TEXT;

-- One receipt per erasure: when, whom (the id only), why, who ran it (the OS user, or
-- `retention`) and how many rows of each table it changed (a JSON object) — never the
-- erased data. `sync_run_id` is the erasure's own run (kind 'erasure'), or the run whose
-- retention pass erased a person long gone.
CREATE TABLE erasures (
    erasure_id           INTEGER PRIMARY KEY,
    sync_run_id          INTEGER NOT NULL REFERENCES sync_runs (sync_run_id),
    erased_at            TEXT    NOT NULL,
    organization_user_id INTEGER NOT NULL,
    reason               TEXT    NOT NULL,
    erased_by            TEXT    NOT NULL,
    -- 1: every version but the current one (a present member).
    history_only         INTEGER NOT NULL,
    counts               TEXT    NOT NULL
);
CREATE INDEX erasures_by_user ON erasures (organization_user_id);
-- An erasure finds the person's audit actors by account or by e-mail.
CREATE INDEX audit_actors_by_email ON audit_actors (email);

-- Whether the file's free space may still hold bytes written before secure_delete was on
-- (a mirror made by an older orgmirror): the next erasure vacuums it, once.
CREATE TABLE free_space (may_hold_old_bytes INTEGER NOT NULL);
INSERT INTO free_space SELECT EXISTS (SELECT 1 FROM sync_runs);

-- An erasure is a run of its own kind ('erasure'), so that a replica applies it in order,
-- in one transaction. SQLite cannot alter a CHECK constraint; widening one changes no
-- stored row, so the table's definition is edited in place as SQLite's ALTER TABLE
-- documentation describes (the binary then bumps the schema cookie). Last: a later ALTER
-- in this script would read the old definition's offsets.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, 'CHECK (kind IN (''full'', ''targeted''))',
                       'CHECK (kind IN (''full'', ''targeted'', ''erasure''))')
WHERE type = 'table' AND name = 'sync_runs';
PRAGMA writable_schema = OFF;

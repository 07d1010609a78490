-- Issue 15: history that survives clocks, races and bad records.

-- The wall clock a run saw when it began. `started_at` is the run's time, the one its
-- history rows and events carry: never earlier than, nor equal to, the last committed
-- run's, so a clock stepped back cannot make intervals overlap or be empty.
ALTER TABLE sync_runs ADD COLUMN wall_clock_at TEXT;
-- Records the run could not read (their id, readable; their body, not), as a JSON array of
-- {"entity", "id", "reason"}: each kept its last good version.
ALTER TABLE sync_runs ADD COLUMN quarantined_json TEXT;

-- A member is a user: group_members gets a foreign key to users. SQLite cannot add one to an
-- existing table, so the table is rebuilt (the binary runs migrations with foreign keys
-- off, as SQLite's documented procedure asks). Deferred: a run deletes and writes current
-- rows in diff order, and the keys need only hold at commit.
DROP VIEW group_members_current;
CREATE TABLE group_members_rebuilt (
    group_id             INTEGER NOT NULL,
    organization_user_id INTEGER NOT NULL
        REFERENCES users (organization_user_id) DEFERRABLE INITIALLY DEFERRED,
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
INSERT INTO group_members_rebuilt SELECT group_id, organization_user_id, user_group_id,
    user_account_id, focus_role_id, track_role_id, work_role_id, created_at, updated_at,
    deleted_at FROM group_members;
DROP TABLE group_members;
-- Legacy rename: views of other migrations that read group_members are neither checked nor
-- rewritten while the name is briefly gone; after the rename they read the new table.
PRAGMA legacy_alter_table = ON;
ALTER TABLE group_members_rebuilt RENAME TO group_members;
PRAGMA legacy_alter_table = OFF;
CREATE INDEX group_members_by_user ON group_members (organization_user_id);
CREATE VIEW group_members_current AS
SELECT group_id, organization_user_id, user_group_id, user_account_id, created_at
FROM group_members;

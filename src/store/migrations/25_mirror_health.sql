-- The mirror's own health. What a failed run means is kept with its row (written by the run
-- itself, so a failed run still changes nothing but its sync_runs row): the exit status it
-- maps to, a short reason and what to do. Each run also records the threshold after which
-- the mirror counts as stale (three schedule intervals: the schedule lives in the config,
-- the view below needs it in the database).
ALTER TABLE sync_runs ADD COLUMN exit_status INTEGER;
ALTER TABLE sync_runs ADD COLUMN reason TEXT;
ALTER TABLE sync_runs ADD COLUMN hint TEXT;
ALTER TABLE sync_runs ADD COLUMN stale_after_seconds INTEGER;

-- The outbox carries health alerts too: a row is either a change event's (event_id) or a
-- health alert's (health_kind, and the outage it belongs to: the last successful full run
-- before it, 0 before any). At most one alert of a kind per rule and outage.
CREATE TABLE alert_outbox_new (
    outbox_id        INTEGER PRIMARY KEY,
    rule             TEXT    NOT NULL,
    event_id         INTEGER REFERENCES change_log (event_id),
    health_kind      TEXT    CHECK (health_kind IN ('failing', 'stale', 'recovered')),
    health_after_run INTEGER,
    queued_at        TEXT    NOT NULL,
    payload_json     TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL DEFAULT 0,
    last_attempt_at  TEXT,
    last_error       TEXT,
    last_error_at    TEXT,
    delivered_at     TEXT,
    CHECK ((event_id IS NULL) = (health_kind IS NOT NULL)),
    CHECK ((health_kind IS NULL) = (health_after_run IS NULL)),
    UNIQUE (rule, event_id)
);
INSERT INTO alert_outbox_new (outbox_id, rule, event_id, queued_at, payload_json, attempts,
                              next_attempt_ms, last_attempt_at, last_error, last_error_at, delivered_at)
SELECT outbox_id, rule, event_id, queued_at, payload_json, attempts, next_attempt_ms,
       last_attempt_at, last_error, last_error_at, delivered_at
FROM alert_outbox;
DROP TABLE alert_outbox;
ALTER TABLE alert_outbox_new RENAME TO alert_outbox;
CREATE INDEX alert_outbox_pending ON alert_outbox (rule, event_id) WHERE delivered_at IS NULL;
CREATE UNIQUE INDEX alert_outbox_health_once ON alert_outbox (rule, health_kind, health_after_run)
    WHERE health_kind IS NOT NULL;

-- One row: is the data current? Full runs only (a group command's targeted refresh reads a
-- few groups, not the organization). `age_seconds` is computed when read; `stale` is 1 once
-- the last success (before any, the first attempt) is older than the threshold the newest
-- run recorded. `last_error` and `hint` are the newest failed run's since the last success.
CREATE VIEW mirror_freshness AS
WITH full_runs AS (
    SELECT * FROM sync_runs WHERE kind = 'full'
), last_success AS (
    SELECT sync_run_id, finished_at FROM full_runs WHERE status = 'succeeded'
    ORDER BY sync_run_id DESC LIMIT 1
), failed AS (
    SELECT * FROM full_runs
    WHERE status = 'failed' AND sync_run_id > coalesce((SELECT sync_run_id FROM last_success), 0)
), last_failed AS (
    SELECT * FROM failed ORDER BY sync_run_id DESC LIMIT 1
), newest AS (
    SELECT * FROM full_runs ORDER BY sync_run_id DESC LIMIT 1
), facts AS (
    SELECT (SELECT finished_at FROM last_success) AS last_success_at,
           (SELECT coalesce(wall_clock_at, started_at) FROM newest) AS last_attempt_at,
           (SELECT status FROM newest) AS last_status,
           (SELECT error FROM last_failed) AS last_error,
           (SELECT count(*) FROM failed) AS consecutive_failures,
           (SELECT min(coalesce(wall_clock_at, started_at)) FROM failed) AS failing_since,
           (SELECT hint FROM last_failed) AS hint,
           (SELECT stale_after_seconds FROM sync_runs WHERE stale_after_seconds IS NOT NULL
            ORDER BY sync_run_id DESC LIMIT 1) AS stale_after_seconds,
           (SELECT min(coalesce(wall_clock_at, started_at)) FROM full_runs) AS first_attempt_at,
           CAST(strftime('%s', 'now') AS INTEGER) AS now_s
)
SELECT last_success_at, last_attempt_at, last_status, last_error, consecutive_failures,
       now_s - CAST(strftime('%s', last_success_at) AS INTEGER) AS age_seconds,
       CASE WHEN stale_after_seconds IS NULL OR coalesce(last_success_at, first_attempt_at) IS NULL
            THEN NULL
            ELSE now_s - CAST(strftime('%s', coalesce(last_success_at, first_attempt_at)) AS INTEGER)
                 > stale_after_seconds
       END AS stale,
       stale_after_seconds, failing_since, hint
FROM facts;

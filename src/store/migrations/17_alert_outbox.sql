-- Issue 17: the alert outbox. A row per (rule, event) that an [[alert]] rule matched, written
-- in the same transaction as the run's events, so a committed change is never without its
-- alert. A row is done when `delivered_at` is set (a 2xx or exit 0), and is then never sent
-- again; until then the deliverer retries it at `next_attempt_ms` (Unix milliseconds).
CREATE TABLE alert_outbox (
    outbox_id       INTEGER PRIMARY KEY,
    rule            TEXT    NOT NULL,
    event_id        INTEGER NOT NULL REFERENCES change_log (event_id),
    queued_at       TEXT    NOT NULL,
    -- The body sent, fixed when queued: every attempt sends the same bytes.
    payload_json    TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error      TEXT,
    last_error_at   TEXT,
    delivered_at    TEXT,
    UNIQUE (rule, event_id)
);
CREATE INDEX alert_outbox_pending ON alert_outbox (rule, event_id) WHERE delivered_at IS NULL;

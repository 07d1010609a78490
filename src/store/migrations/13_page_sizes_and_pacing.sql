-- Issue 13: the page size the API accepted after refusing a larger one, per list, so that
-- a refused size is asked at most once over a mirror's life; and the time each run spent
-- waiting for its request pacing (api.max_requests_per_second).
CREATE TABLE api_page_sizes (
    list       TEXT    PRIMARY KEY CHECK (list IN ('users', 'teams')),
    per_page   INTEGER NOT NULL CHECK (per_page > 0),
    learned_at TEXT    NOT NULL
);
ALTER TABLE sync_runs ADD COLUMN pacing_wait_ms INTEGER NOT NULL DEFAULT 0;

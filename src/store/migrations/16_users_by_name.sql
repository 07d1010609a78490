-- Issue 16: people are looked up by name (Datasette's canned query "rate history of a
-- person"); without it that lookup reads every current user (EXPLAIN QUERY PLAN: SCAN users).
CREATE INDEX users_by_name ON users (name);

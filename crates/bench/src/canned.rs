//! The canned queries of `datasette/metadata.yml`, word for word (a test compares them
//! with what Datasette serves, reading this file as a module of its own), so that the
//! benchmark times the queries people run.
//! Parameters are named: `:group` (an id, or a current name), `:day` (`YYYY-MM-DD`,
//! UTC), `:person` (an id, or a current name or email).

/// `(name, SQL)` of every canned query, in the order of the metadata.
pub const CANNED_QUERIES: &[(&str, &str)] = &[
    (
        "is_this_data_current",
        r#"SELECT CASE WHEN last_status IS NULL THEN 'no: no sync has run yet'
            WHEN stale = 1 AND last_success_at IS NULL THEN 'no: no sync has succeeded yet'
            WHEN stale = 1 THEN 'no: the last successful sync is older than ' || (stale_after_seconds / 60) || ' min'
            WHEN consecutive_failures > 0 THEN 'yes, but the last ' || consecutive_failures || ' sync(s) failed'
            WHEN last_success_at IS NULL THEN 'not yet: the first sync is running'
            ELSE 'yes' END AS current,
       last_success_at, age_seconds / 60 AS minutes_since_success,
       last_attempt_at, last_status, consecutive_failures, failing_since, last_error, hint
FROM mirror_freshness"#,
    ),
    (
        "members_on_a_date",
        r#"SELECT m.organization_user_id,
       (SELECT u.name FROM user_history u
        WHERE u.organization_user_id = m.organization_user_id AND date(u.valid_from) <= :day
        ORDER BY u.valid_from DESC LIMIT 1) AS name,
       m.valid_from AS member_since,
       m.valid_to AS member_until
FROM group_membership_history m
WHERE m.group_id IN (SELECT id FROM entity_history WHERE entity = 'group' AND id = :group
                     UNION SELECT group_id FROM groups WHERE name = :group)
  AND date(m.valid_from) <= :day
  AND (m.valid_to IS NULL OR date(m.valid_to) > :day)
ORDER BY name"#,
    ),
    (
        "rate_history_of_a_person",
        r#"SELECT r.organization_user_id,
       (SELECT u.name FROM user_history u WHERE u.organization_user_id = r.organization_user_id
        ORDER BY u.valid_from DESC LIMIT 1) AS name,
       r.hourly_rate, r.currency, r.start_at, r.valid_from, r.valid_to
FROM rate_history r
WHERE r.organization_user_id IN (
    SELECT id FROM entity_history WHERE entity = 'user' AND id = :person
    UNION SELECT organization_user_id FROM users WHERE email = :person
    UNION SELECT organization_user_id FROM users WHERE name = :person)
ORDER BY r.organization_user_id, r.valid_from"#,
    ),
    (
        "changes_of_the_last_run",
        r#"SELECT e.event_id, e.observed_at, e.entity, e.entity_id, e.op, e.changed_fields,
       CASE WHEN e.entity IN ('user', 'group', 'role')
            THEN coalesce(json_extract(e.after_json, '$.name'), json_extract(e.before_json, '$.name'))
            ELSE (SELECT u.name FROM user_history u
                  WHERE u.organization_user_id = coalesce(json_extract(e.after_json, '$.organization_user_id'),
                                                          json_extract(e.before_json, '$.organization_user_id'))
                    AND u.valid_from <= e.observed_at
                  ORDER BY u.valid_from DESC LIMIT 1) END AS name,
       CASE WHEN e.entity = 'group_membership'
            THEN (SELECT g.name FROM group_history g
                  WHERE g.group_id = coalesce(json_extract(e.after_json, '$.group_id'),
                                              json_extract(e.before_json, '$.group_id'))
                    AND g.valid_from <= e.observed_at
                  ORDER BY g.valid_from DESC LIMIT 1) END AS group_name
FROM change_events e
WHERE e.sync_run_id = (SELECT max(sync_run_id) FROM change_events)
ORDER BY e.event_id"#,
    ),
    (
        "headcount_per_month",
        r#"SELECT substr(h.day, 1, 7) AS month, h.group_id,
       (SELECT g.name FROM group_history g WHERE g.group_id = h.group_id
        ORDER BY g.valid_from DESC LIMIT 1) AS group_name,
       h.members
FROM group_headcount_daily h
WHERE h.day >= date('now', 'start of month', '-11 months')
  AND (h.day = date(h.day, 'start of month', '+1 month', '-1 day') OR h.day = date('now'))
ORDER BY month, group_name"#,
    ),
    (
        "new_admins_last_90_days",
        r#"SELECT e.observed_at, e.entity_id AS organization_user_id,
       json_extract(e.after_json, '$.name') AS name,
       json_extract(e.after_json, '$.email') AS email
FROM change_events e
-- "+": read by time (the index on observed_at), not every user event there was
WHERE +e.entity = 'user'
  AND e.observed_at >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-90 days')
  AND (e.op = 'insert' OR e.changed_fields LIKE '%"admin"%')
  AND json_extract(e.after_json, '$.admin') = 1
  AND ((e.op = 'update' AND coalesce(json_extract(e.before_json, '$.admin'), 0) = 0)
       OR (e.op = 'insert' AND e.sync_run_id > (SELECT min(sync_run_id) FROM change_events)))
ORDER BY e.observed_at DESC"#,
    ),
    (
        "people_in_no_group",
        r#"SELECT u.organization_user_id, u.name, u.email, u.active, u.admin
FROM users_current u
WHERE NOT EXISTS (SELECT 1 FROM group_members_current m
                  WHERE m.organization_user_id = u.organization_user_id)
ORDER BY u.name"#,
    ),
    (
        "who_changed_what_last_30_days",
        r#"SELECT coalesce(e.changed_at, e.observed_at) AS changed_at,
       coalesce(e.actor_name, '(unknown)') AS actor,
       e.entity, e.entity_id, e.op, e.changed_fields,
       coalesce(json_extract(e.after_json, '$.name'), json_extract(e.before_json, '$.name'),
                (SELECT u.name FROM user_history u
                 WHERE u.organization_user_id = coalesce(json_extract(e.after_json, '$.organization_user_id'),
                                                         json_extract(e.before_json, '$.organization_user_id'))
                 ORDER BY u.valid_from DESC LIMIT 1)) AS name,
       e.observed_at
FROM change_events e
WHERE e.observed_at >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-30 days')
  AND e.sync_run_id > (SELECT min(sync_run_id) FROM change_events)
  AND NOT (e.op = 'update' AND e.changed_fields = '["updated_at"]')
ORDER BY coalesce(e.changed_at, e.observed_at) DESC, e.event_id DESC"#,
    ),
];

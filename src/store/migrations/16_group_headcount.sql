-- Issue 16: headcount over time, from the membership intervals.
--
-- group_headcount_daily: one row per group and day, from the day the mirror first saw the
-- group to the day it last saw it (today while it exists), with the group's members at the
-- end of that day (for today: now). Days before the mirror's first sync have no rows: the
-- history starts there. Computed from the intervals' ends: +1 on the day a membership began,
-- -1 on the day it ended, summed into the members after each day with a change (`changes`,
-- a row per group and such day); a day takes the members of its group's last change on or
-- before it. The last SELECT is a plain join, so a filter on `day` reaches the days before
-- the join and only the rows asked for are made:
--   SELECT * FROM group_headcount_daily WHERE day BETWEEN '2026-01-01' AND '2026-03-31';
CREATE VIEW group_headcount_daily AS
WITH RECURSIVE
    groups_seen AS (
        SELECT id AS group_id,
               date(min(valid_from)) AS first_day,
               CASE WHEN count(*) > count(valid_to) THEN date('now')
                    ELSE date(max(valid_to)) END AS last_day
        FROM entity_history
        WHERE entity = 'group'
        GROUP BY id),
    days (day) AS (
        SELECT min(first_day) FROM groups_seen
        UNION ALL
        SELECT date(day, '+1 day') FROM days
        WHERE day < (SELECT max(last_day) FROM groups_seen)),
    deltas AS (
        SELECT group_id, day, sum(delta) AS delta
        FROM (SELECT id AS group_id, date(valid_from) AS day, 1 AS delta
              FROM entity_history WHERE entity = 'group_membership'
              UNION ALL
              SELECT id, date(valid_to), -1
              FROM entity_history WHERE entity = 'group_membership' AND valid_to IS NOT NULL)
        GROUP BY group_id, day),
    changes AS (
        SELECT group_id, day,
               sum(delta) OVER (PARTITION BY group_id ORDER BY day) AS members,
               lead(day) OVER (PARTITION BY group_id ORDER BY day) AS next_day
        FROM deltas)
SELECT g.group_id, d.day, coalesce(c.members, 0) AS members
FROM groups_seen g
JOIN days d ON d.day BETWEEN g.first_day AND g.last_day
LEFT JOIN changes c
       ON c.group_id = g.group_id AND c.day <= d.day AND (c.next_day IS NULL OR c.next_day > d.day);

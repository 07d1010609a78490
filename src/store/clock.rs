//! A run's time: monotone over committed runs, whatever the wall clock does.
//!
//! History intervals are `[valid_from, valid_to)` in whole seconds, each end a run's time.
//! A clock stepped back (NTP, a VM restored from a snapshot) would give a run a time before
//! the last one's, and intervals that overlap or end before they begin; two runs in the
//! same second would leave an empty interval no "as of" query sees. So a run's time is the
//! wall clock, or one second after the last committed run's time if the clock is not past it.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension};

use crate::clock::format_utc;

/// The time for a run starting at `wall_clock` (RFC 3339 UTC, whole seconds).
pub(super) fn run_time(conn: &Connection, wall_clock: &str) -> rusqlite::Result<String> {
    let Some(last) = last_committed_time(conn)? else {
        return Ok(wall_clock.to_string());
    };
    let (Some(wall), Some(last_at)) = (parse(wall_clock), parse(&last)) else {
        return Ok(wall_clock.to_string());
    };
    if wall > last_at {
        return Ok(wall_clock.to_string());
    }
    Ok(format_utc(last_at + Duration::seconds(1)))
}

/// Whether `wall_clock` is behind `last_wall_clock`, the clock the last committed run saw:
/// the clock stepped back. A run clamped only because another committed in the same
/// second (or because the clock has not caught up with a step back already seen) is not.
pub(super) fn went_back(wall_clock: &str, last_wall_clock: Option<&str>) -> bool {
    match (parse(wall_clock), last_wall_clock.and_then(parse)) {
        (Some(now), Some(last)) => now < last,
        _ => false,
    }
}

/// The newest time any committed run wrote: its `started_at`, or (from a build that took
/// the events' time apart from it) the newest event's.
fn last_committed_time(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let run: Option<String> = conn
        .query_row(
            "SELECT max(started_at) FROM sync_runs WHERE status = 'succeeded'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let event: Option<String> = conn
        .query_row("SELECT max(observed_at) FROM change_log", [], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(match (run, event) {
        (Some(a), Some(b)) => Some(if parse(&a) >= parse(&b) { a } else { b }),
        (a, b) => a.or(b),
    })
}

fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(runs: &[&str]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::SCHEMA_SQL).unwrap();
        for at in runs {
            conn.execute(
                "INSERT INTO sync_runs (started_at, status) VALUES (?1, 'succeeded')",
                [at],
            )
            .unwrap();
        }
        conn
    }

    #[test]
    fn a_run_is_never_at_or_before_the_last_committed_one() {
        let conn = db(&["2030-06-10T00:00:00Z"]);
        assert_eq!(
            run_time(&conn, "2030-06-05T00:00:00Z").unwrap(),
            "2030-06-10T00:00:01Z"
        );
        assert_eq!(
            run_time(&conn, "2030-06-10T00:00:00Z").unwrap(),
            "2030-06-10T00:00:01Z"
        );
        assert_eq!(
            run_time(&conn, "2030-06-11T00:00:00Z").unwrap(),
            "2030-06-11T00:00:00Z"
        );
        assert_eq!(
            run_time(&db(&[]), "2030-06-05T00:00:00Z").unwrap(),
            "2030-06-05T00:00:00Z"
        );
    }

    /// A clock behind the last run's clock went back; the same second, or a clock that
    /// moved on but is still behind the (clamped) history, did not.
    #[test]
    fn the_clock_went_back_only_when_behind_the_last_runs_clock() {
        // (case, wall clock, the last committed run's, went back)
        let cases = [
            (
                "two runs in one second",
                "2030-06-10T00:00:00Z",
                Some("2030-06-10T00:00:00Z"),
                false,
            ),
            (
                "a later second",
                "2030-06-10T00:00:01Z",
                Some("2030-06-10T00:00:00Z"),
                false,
            ),
            (
                "stepped back",
                "2030-06-05T00:00:00Z",
                Some("2030-06-10T00:00:00Z"),
                true,
            ),
            (
                "one second back",
                "2030-06-09T23:59:59Z",
                Some("2030-06-10T00:00:00Z"),
                true,
            ),
            ("no run before", "2030-06-05T00:00:00Z", None, false),
            (
                "a clock that does not parse",
                "not a time",
                Some("2030-06-10T00:00:00Z"),
                false,
            ),
        ];
        for (case, wall, last, want) in cases {
            assert_eq!(went_back(wall, last), want, "{case}");
        }
    }

    /// Where the last committed time comes from (a run's start or, from an older build,
    /// an event's time), and a wall clock that does not parse, which is kept as it is.
    #[test]
    fn the_last_committed_time_is_the_newest_of_runs_and_events() {
        // (case, succeeded runs, a failed run, events' times, wall clock, the run's time)
        type Case = (
            &'static str,
            &'static [&'static str],
            Option<&'static str>,
            &'static [&'static str],
            &'static str,
            &'static str,
        );
        #[rustfmt::skip]
        let cases: [Case; 6] = [
            ("an event after the last run", &["2030-06-10T00:00:00Z"], None, &["2030-06-12T00:00:00Z"],
                "2030-06-11T00:00:00Z", "2030-06-12T00:00:01Z"),
            ("an event before the last run", &["2030-06-10T00:00:00Z"], None, &["2030-06-09T00:00:00Z"],
                "2030-06-05T00:00:00Z", "2030-06-10T00:00:01Z"),
            ("events only", &[], None, &["2030-06-10T00:00:00Z"],
                "2030-06-10T00:00:00Z", "2030-06-10T00:00:01Z"),
            ("a failed run does not count", &["2030-06-10T00:00:00Z"], Some("2030-06-20T00:00:00Z"), &[],
                "2030-06-11T00:00:00Z", "2030-06-11T00:00:00Z"),
            ("the newest of several runs", &["2030-06-10T00:00:00Z", "2030-06-12T00:00:00Z"], None, &[],
                "2030-06-11T00:00:00Z", "2030-06-12T00:00:01Z"),
            ("a wall clock that does not parse", &["2030-06-10T00:00:00Z"], None, &[],
                "not a time", "not a time"),
        ];
        for (case, runs, failed, events, wall, want) in cases {
            let conn = db(runs);
            if let Some(at) = failed {
                conn.execute(
                    "INSERT INTO sync_runs (started_at, status) VALUES (?1, 'failed')",
                    [at],
                )
                .unwrap();
            }
            for at in events {
                conn.execute(
                    "INSERT INTO sync_runs (started_at, status) VALUES ('2000-01-01T00:00:00Z', 'running')",
                    [],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO change_log (sync_run_id, observed_at, entity, entity_id, op)
                     VALUES (last_insert_rowid(), ?1, 'user', '1', 'insert')",
                    [at],
                )
                .unwrap();
            }
            assert_eq!(run_time(&conn, wall).unwrap(), want, "{case}");
        }
    }
}

//! The verdict, the schedule, the sizes and the lines `status` prints.

use super::*;

#[test]
fn next_run_follows_the_six_field_cron_in_utc() {
    let at = DateTime::parse_from_rfc3339("2026-11-28T12:10:05Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        format_utc(next_run("0 */30 * * * *", at).unwrap()),
        "2026-11-28T12:30:00Z"
    );
    assert_eq!(
        format_utc(next_run("*/2 * * * * *", at).unwrap()),
        "2026-11-28T12:10:06Z"
    );
    assert!(next_run("*/5 * * * *", at).is_err());
}

#[test]
fn the_verdict_says_failing_first_then_stale_then_ok() {
    let now = DateTime::parse_from_rfc3339("2026-11-28T12:10:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let base = Freshness {
        last_success_at: Some("2026-11-28T11:58:00Z".into()),
        last_attempt_at: Some("2026-11-28T11:58:00Z".into()),
        last_status: Some("succeeded".into()),
        stale: Some(false),
        ..Freshness::default()
    };
    let failing = Freshness {
        last_status: Some("failed".into()),
        consecutive_failures: 4,
        failing_since: Some("2026-11-28T09:00:00Z".into()),
        reason: Some("API key expired (401)".into()),
        hint: Some("make a new key".into()),
        ..base.clone()
    };
    let cases = [
        ("fresh", Some(base.clone()), State::Ok, "ok: last success 12 min ago"),
        (
            "a run in progress",
            Some(Freshness {
                last_status: Some("running".into()),
                last_attempt_at: Some("2026-11-28T12:09:00Z".into()),
                ..base.clone()
            }),
            State::Ok,
            "ok: last success 12 min ago; a run has been going since 12:09 UTC",
        ),
        (
            "failing",
            Some(failing.clone()),
            State::Failing,
            "FAILING: 4 runs since 09:00 UTC, API key expired (401) — make a new key",
        ),
        (
            "failing for long",
            Some(Freshness {
                consecutive_failures: 1,
                failing_since: Some("2026-11-27T09:00:00Z".into()),
                last_success_at: Some("2026-11-27T05:00:00Z".into()),
                stale: Some(true),
                ..failing.clone()
            }),
            State::Failing,
            "FAILING: 1 run since 2026-11-27 09:00 UTC, API key expired (401) — make a new key (last success 31 h ago)",
        ),
        (
            "stale",
            Some(Freshness {
                last_success_at: Some("2026-11-28T05:00:00Z".into()),
                stale: Some(true),
                ..base.clone()
            }),
            State::Stale,
            "STALE: last success 7 h ago",
        ),
        (
            "stale before any success",
            Some(Freshness {
                last_success_at: None,
                first_attempt_at: Some("2026-11-28T10:00:00Z".into()),
                last_status: Some("running".into()),
                last_attempt_at: Some("2026-11-28T10:00:00Z".into()),
                stale: Some(true),
                ..base.clone()
            }),
            State::Stale,
            "STALE: no successful run yet; the first run began 2 h ago; a run has been going since 10:00 UTC",
        ),
        ("no runs", None, State::Stale, "STALE: no sync has run yet"),
    ];
    for (case, f, state, line) in cases {
        assert_eq!(
            verdict(f.as_ref(), now),
            Verdict {
                state,
                line: line.to_string()
            },
            "{case}"
        );
    }
}

#[test]
fn human_sizes() {
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
}

#[test]
fn sizes_change_unit_at_1024_and_stop_at_tib() {
    for (bytes, shown) in [
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1024 * 1024 - 1, "1024.0 KiB"),
        (5 * 1024 * 1024 * 1024, "5.0 GiB"),
        (u64::MAX, "16777216.0 TiB"),
    ] {
        assert_eq!(human_bytes(bytes), shown, "{bytes}");
    }
}

#[test]
fn a_replica_line_says_where_it_is_and_how_far_behind() {
    let replica = |run: Option<i64>, behind: Option<i64>, error: Option<&str>| {
        crate::replica::ReplicaStatus {
            url: "postgres://u@h/db".into(),
            schema: "orgmirror".into(),
            replicated_run: run,
            replicated_at: run.map(|_| "2026-12-01T10:00:00Z".to_string()),
            runs_behind: behind,
            error: error.map(str::to_string),
        }
    };
    let at = "postgres://u@h/db (schema orgmirror)";
    let cases = [
        ("up to date", replica(Some(41), Some(0), None),
            format!("{at}: at run 41 (replicated at 2026-12-01T10:00:00Z), up to date")),
        ("one behind", replica(Some(41), Some(1), None),
            format!("{at}: at run 41 (replicated at 2026-12-01T10:00:00Z), 1 committed run behind")),
        ("several behind", replica(Some(41), Some(3), None),
            format!("{at}: at run 41 (replicated at 2026-12-01T10:00:00Z), 3 committed runs behind")),
        ("not bootstrapped", replica(None, Some(2), None),
            format!("{at}: nothing replicated yet, 2 committed runs behind")),
        ("the mirror unreadable", replica(Some(41), None, None),
            format!("{at}: at run 41 (replicated at 2026-12-01T10:00:00Z), the mirror could not be read")),
        ("unreachable", replica(Some(41), Some(0), Some("connection refused")),
            format!("{at}: unreachable: connection refused")),
    ];
    for (case, status, line) in cases {
        assert_eq!(replica_line(&status), line, "{case}");
    }
}

#[test]
fn a_runs_events_are_one_line_or_no_changes() {
    let events = |pairs: &[(&str, &str, i64)]| {
        let mut map: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for (entity, op, n) in pairs {
            map.entry(entity.to_string())
                .or_default()
                .insert(op.to_string(), *n);
        }
        map
    };
    let cases = [
        ("none", events(&[]), "no changes"),
        ("only zeros", events(&[("user", "insert", 0)]), "no changes"),
        (
            "entities and ops in order",
            events(&[
                ("user", "update", 2),
                ("group", "insert", 1),
                ("user", "delete", 0),
            ]),
            "group: 1 insert; user: 0 delete, 2 update",
        ),
    ];
    for (case, map, line) in cases {
        assert_eq!(events_line(&map), line, "{case}");
    }
}

#[test]
fn only_a_process_that_exists_is_alive() {
    assert!(process_exists(i64::from(std::process::id())));
    for pid in [0, -1, i64::MAX, i64::from(i32::MAX)] {
        assert!(!process_exists(pid), "{pid}");
    }
}

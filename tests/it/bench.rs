//! `orgmirror-bench --quick`: the benchmark runs end to end against this build's
//! `orgmirror`, and its JSON says what it must.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::support::{bin, text};

/// The `orgmirror-bench` binary `cargo test` builds beside `orgmirror` (a workspace member
/// with tests of its own, so built with every `cargo test` of the workspace).
fn bench_bin() -> PathBuf {
    let path = std::path::Path::new(bin()).with_file_name("orgmirror-bench");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test` at the workspace root, which builds it",
        path.display()
    );
    path
}

/// `orgmirror-bench ARGS --out FILE` measuring this build's `orgmirror` (with `token` as
/// TOGGL_API_TOKEN when given), which must succeed: the JSON it wrote.
fn bench(args: &[&str], token: Option<&str>) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bench.json");
    let mut command = std::process::Command::new(bench_bin());
    command
        .args(["--orgmirror", bin()])
        .args(args)
        .arg("--out")
        .arg(&out);
    if let Some(token) = token {
        command.env("TOGGL_API_TOKEN", token);
    }
    let run = command.output().expect("binary runs");
    assert!(
        run.status.success(),
        "bench failed: {}\n{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&out).expect("json written")).expect("valid JSON")
}

#[test]
fn quick_bench_writes_every_scenario_and_an_unchanged_sync_writes_nothing() {
    let doc = bench(&["--quick", "--paced-rps", "5"], Some("demo-token"));
    assert!(doc["machine"]["nproc"].as_u64().is_some_and(|n| n >= 1));
    let results = doc["results"].as_array().expect("results");
    let seen: BTreeSet<(u64, String)> = results
        .iter()
        .map(|r| {
            (
                r["size"].as_u64().unwrap_or(0),
                r["scenario"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for size in [200, 1000] {
        for scenario in [
            "floor",
            "store",
            "initial",
            "unchanged",
            "churn",
            "latency",
            "paced",
        ] {
            assert!(
                seen.contains(&(size, scenario.to_string())),
                "{size} {scenario} missing from {seen:?}"
            );
        }
    }
    for r in results.iter().filter(|r| r["scenario"] != "store") {
        let (requests, min) = (r["requests"].as_u64(), r["min_requests"].as_u64());
        assert!(
            requests >= min && min >= Some(3),
            "requests below the minimum: {r}"
        );
        assert!(r["peak_rss_kib"].as_u64().is_some_and(|k| k > 0), "{r}");
        assert!(r["wall_ms"].as_f64().is_some_and(|w| w > 0.0), "{r}");
        match r["scenario"].as_str() {
            Some("unchanged") | Some("latency") => {
                assert_eq!(r["rows_written"], 0, "an unchanged sync wrote rows: {r}");
                assert_eq!(r["row_count_delta"], 0, "{r}");
            }
            Some("paced") => {
                assert_eq!(r["rows_written"], 0, "{r}");
                // Requests × 1/5 s, the first one not waited for.
                let (wall, bound) = (r["wall_ms"].as_f64(), r["pacing_bound_ms"].as_f64());
                let spaced = (r["requests"].as_f64().unwrap_or(0.0) - 1.0) * 200.0;
                assert!(wall.is_some_and(|w| w >= spaced * 0.95), "{r}");
                assert!(bound.is_some_and(|b| b >= spaced), "{r}");
            }
            Some("initial") | Some("churn") => {
                assert!(r["rows_written"].as_i64().is_some_and(|n| n > 0), "{r}");
                assert!(r["wall_vs_floor"].as_f64().is_some(), "{r}");
            }
            _ => {}
        }
    }
    // The query scenario: every canned query, asof, changes, erase and retention, timed on a year of churn
    // (4 runs with --quick), the canned ones with their plans.
    let queries = doc["queries"].as_array().expect("queries");
    let names: BTreeSet<&str> = queries.iter().filter_map(|q| q["query"].as_str()).collect();
    for (name, _) in crate::canned::CANNED_QUERIES {
        assert!(names.contains(name), "{name} not timed: {names:?}");
    }
    for q in queries {
        assert_eq!(q["size"], 1000, "{q}");
        let query = q["query"].as_str().unwrap_or_default();
        // A pass or a search over a small file may take under the figure's resolution.
        let least = if query.starts_with("retention") || query.ends_with("check") {
            0.0
        } else {
            f64::MIN_POSITIVE
        };
        assert!(q["median_ms"].as_f64().is_some_and(|t| t >= least), "{q}");
        match q["query"].as_str() {
            Some("asof (whole organization)") => assert!(
                q["rows"].as_u64().is_some_and(|n| n > 900),
                "asof copied too few people: {q}"
            ),
            Some("changes --since 7d") => {
                assert!(q["rows"].as_u64().is_some_and(|n| n > 1), "{q}")
            }
            // A year of versions dropped: those a churn run closed.
            Some("retention pass: a year of versions") => {
                assert!(q["rows"].as_u64().is_some_and(|n| n > 0), "{q}")
            }
            Some(name) if name.starts_with("erase") || name.starts_with("retention") => {}
            _ => assert!(q["plan"].as_array().is_some_and(|p| !p.is_empty()), "{q}"),
        }
    }
    assert_eq!(names.len(), crate::canned::CANNED_QUERIES.len() + COMMANDS);
    assert_eq!(doc["query_builds"][0]["churn_runs"], 4);

    // The store floor copied exactly what the initial sync stored, and took time doing it.
    for size in [200, 1000] {
        let row = |scenario: &str| {
            results
                .iter()
                .find(|r| r["size"] == size && r["scenario"] == scenario)
                .cloned()
                .unwrap_or_default()
        };
        let (store, initial) = (row("store"), row("initial"));
        assert!(initial["row_count_delta"]
            .as_i64()
            .is_some_and(|n| n > size));
        assert_eq!(
            store["row_count_delta"], initial["row_count_delta"],
            "{store}"
        );
        assert!(
            store["wall_ms"].as_f64().is_some_and(|w| w > 0.0),
            "{store}"
        );
        assert!(
            initial["wall_vs_store_floor"].as_f64().is_some(),
            "{initial}"
        );
    }
}

/// What the query scenario times besides the canned queries: `asof`, `changes`, `erase`, its
/// byte search, an erasure with `VACUUM`, and two retention passes.
const COMMANDS: usize = 7;

/// The README's `orgmirror-bench --queries-only` (here small): only the query scenario, at the sizes and
/// churn runs asked for.
#[test]
fn bench_queries_only_times_the_questions_and_no_sync_scenario() {
    let doc = bench(
        &[
            "--queries-only",
            "--query-sizes",
            "300",
            "--churn-runs",
            "2",
        ],
        None,
    );
    assert_eq!(doc["results"].as_array().map(Vec::len), Some(0), "{doc}");
    let queries = doc["queries"].as_array().expect("queries");
    assert_eq!(
        queries.len(),
        crate::canned::CANNED_QUERIES.len() + COMMANDS,
        "{queries:?}"
    );
    assert!(queries.iter().all(|q| q["size"] == 300), "{queries:?}");
    assert_eq!(doc["query_builds"][0]["churn_runs"], 2);
}

/// The README's `orgmirror-bench --audit` (here small): the backlog comes over runs that
/// each stay within the quota share, every event once, and the three figures are reported.
#[test]
fn bench_audit_fetches_the_backlog_within_the_share_and_reports_its_figures() {
    let doc = bench(
        &["--audit", "--audit-users", "300", "--audit-events", "6500"],
        None,
    );
    let runs = doc["runs"].as_array().expect("runs");
    // 6,500 events: one page the first run, five the second, the last 500 the third.
    let audit: Vec<u64> = runs
        .iter()
        .map(|r| r["audit_requests"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(audit, vec![1, 6, 2], "{doc}");
    assert!(doc["audit_events_held"].as_u64().is_some_and(|n| n >= 6500));
    assert!(doc["busiest_run_requests"].as_u64() <= doc["run_share_cap"].as_u64());
    assert!(doc["local_time_overhead"].as_f64().is_some());
    // The parts of it, read from the runs' own debug lines.
    assert!(doc["storing_ms"].as_f64().is_some_and(|t| t > 0.0), "{doc}");
    for mirror in ["quick_check_ms", "quick_check_ms_without_audit"] {
        assert!(doc[mirror].as_f64().is_some_and(|t| t > 0.0), "{doc}");
    }
    assert!(doc["file_mib"].as_f64() > doc["file_mib_without_audit"].as_f64());
    assert!(doc["changes_actor_ms"].as_f64().is_some_and(|t| t > 0.0));
    assert!(doc["changes_actor_lines"].as_u64().is_some_and(|n| n > 1));
}

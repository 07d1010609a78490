//! `orgmirror-bench`'s refusals: what a person must fix is said in one line, with exit 2,
//! before anything is measured.

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orgmirror-bench"))
        .args(args)
        .output()
        .expect("the benchmark runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_orgmirror_that_is_not_there_is_named_with_the_flag_that_gives_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("orgmirror");
    let out = bench(&[
        "--orgmirror",
        missing.to_str().expect("utf-8 path"),
        "--quick",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.starts_with("orgmirror-bench: ")
            && said.contains(&missing.display().to_string())
            && said.contains("--orgmirror PATH")
            && said.lines().count() == 1,
        "{said}"
    );
    assert!(!dir.path().join("bench-results").exists());
}

#[test]
fn sizes_outside_what_the_fake_holds_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Any existing file passes for the binary: the sizes are refused first.
    let orgmirror = env!("CARGO_BIN_EXE_orgmirror-bench");
    let out_path = dir.path().join("bench.json");
    let out_arg = out_path.to_str().expect("utf-8 path");
    for (flag, value) in [
        ("--sizes", "0"),
        ("--sizes", "1000001"),
        ("--query-sizes", "0"),
    ] {
        let out = bench(&["--orgmirror", orgmirror, flag, value, "--out", out_arg]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flag} {value}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(flag),
            "{flag} {value}: {}",
            stderr(&out)
        );
    }
    let out = bench(&[
        "--orgmirror",
        orgmirror,
        "--paced-rps",
        "0",
        "--out",
        out_arg,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--paced-rps"), "{}", stderr(&out));
    assert!(!out_path.exists(), "nothing was measured, nothing written");
}

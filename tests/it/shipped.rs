//! What the `orgmirror` binary people build holds: the fake that `demo` and `fake-api`
//! serve, without the control surface the tests drive, and no benchmark (a workspace
//! member of its own, `orgmirror-bench`).

use std::process::Command;

/// `cargo tree -p orgmirror -e EDGES` with features: the crates and features a build of
/// the `orgmirror` package compiles (`normal`: its library and binary, as `cargo build`
/// makes them; with `dev`, its tests too).
fn tree(edges: &str) -> String {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "--prefix", "none"])
        .args(["-p", "orgmirror", "-e", edges])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_shipped_binary_has_the_plain_fake_and_no_control_surface_nor_benchmark() {
    let control = "orgmirror-fake feature \"control\"";
    let shipped = tree("normal,features");
    assert!(
        shipped.contains("orgmirror-fake feature \"default\""),
        "{shipped}"
    );
    assert!(!shipped.contains(control), "{shipped}");
    assert!(!shipped.contains("orgmirror-bench"), "{shipped}");
    // The tests' build turns the control surface on: the line looked for above is the one.
    assert!(tree("normal,dev,features").contains(control));
}

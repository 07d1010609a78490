//! One integration-test binary: the real `orgmirror` binary driven end to end against
//! the built-in fake Focus API on 127.0.0.1, with real SQLite files.

mod answers;
mod audit;
mod bench;
/// The canned queries the benchmark times (its own source file).
#[path = "../../crates/bench/src/canned.rs"]
mod canned;
mod capture;
mod check;
mod cli;
mod connecting;
mod datasette;
mod erase;
mod first_contact;
mod groups;
mod history;
mod litestream;
mod mirror;
mod replica;
mod roles_and_custom_fields;
mod service;
mod shipped;
mod support;
mod tidy;
mod trust;

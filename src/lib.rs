//! orgmirror: mirrors a Toggl Focus organization into SQLite and keeps the history of
//! every change. See ARCHITECTURE.md for the map of this crate.
//!
//! Every module is private: `pub` marks only what crosses the crate's boundary, re-exported
//! below, so the compiler reports whatever nothing uses.

mod alerts;
mod api;
mod asof;
mod cadence;
mod changes;
mod check;
mod cli;
mod clock;
mod commands;
mod config;
mod daemon;
mod demo;
mod diff;
mod erase;
mod exit;
mod export;
mod groups;
mod lockfile;
mod logging;
mod metrics;
mod model;
mod replica;
mod snapshot;
mod status;
mod store;
mod sync;

/// The command line: the binary (`src/main.rs`) is this one call.
pub use cli::main;

// What the benchmark (`crates/bench`) uses: the API's models its fetch-and-parse floor
// decodes into, the mirror's time format its respacing writes, and the replica schemas it
// drops when done.
pub use api::models::{OrganizationUser, Role, Team, TeamsPage};
pub use clock::{format_utc, now_utc};
pub use replica::drop_schema;
// What the integration tests check the documentation against: the views `export --csv` writes.
pub use export::CSV_VIEWS;

/// `println!` that does not panic when stdout is gone (a closed pipe, a full disk): what a
/// command did is in the database and the log, and losing its report must not abort it
/// half-way (a `groups apply | head` would stop between two writes).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` that does not panic when stdout is gone (see [`outln!`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that does not panic when stderr is gone (see [`outln!`]).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

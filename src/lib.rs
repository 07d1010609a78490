//! orgmirror: mirrors a Toggl Focus organization into SQLite and keeps the history of
//! every change. See ARCHITECTURE.md for the map of this crate.

pub mod alerts;
pub mod api;
#[cfg(test)]
mod arrows;
pub mod asof;
pub mod cadence;
pub mod changes;
pub mod check;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod diff;
pub mod exit;
pub mod export;
pub mod groups;
pub(crate) mod lockfile;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod quarantine;
pub mod replica;
pub mod snapshot;
#[cfg(test)]
mod sql_owner;
pub mod status;
pub mod store;
pub mod sync;

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

//! orgmirror: mirrors a Toggl Focus organization into SQLite and keeps the history of
//! every change. See ARCHITECTURE.md for the map of this crate.

pub mod api;
pub mod check;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod diff;
pub mod export;
pub mod fake;
pub mod groups;
pub mod logging;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod sync;

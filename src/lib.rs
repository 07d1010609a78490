//! orgmirror: mirrors a Toggl Focus organization into SQLite and keeps the history of
//! every change. See ARCHITECTURE.md for the map of this crate.

pub mod api;
pub mod commands;
pub mod config;
pub mod demo;
pub mod diff;
pub mod fake;
pub mod groups;
pub mod logging;
pub mod snapshot;
pub mod store;
pub mod sync;

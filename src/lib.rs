//! orgmirror: mirrors a Toggl Focus organization into SQLite and keeps the history of
//! every change. See ARCHITECTURE.md for the map of this crate.

pub mod api;
pub mod config;
pub mod fake;
pub mod snapshot;
pub mod diff;
pub mod store;
pub mod commands;
pub mod demo;
pub mod logging;
pub mod sync;
pub mod groups;

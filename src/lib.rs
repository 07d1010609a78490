//! orgmirror: mirrors a Toggl Focus organization into SQLite and keeps the history of
//! every change. See ARCHITECTURE.md for the map of this crate.

pub mod api;
pub mod config;
pub mod fake;
pub mod snapshot;

//! A record the run could not read: part of the domain, not of the client, because the
//! store records it (`sync_runs.quarantined_json`) and `status` shows it, and neither may
//! depend on `api` (ARCHITECTURE.md, "Dependencies"). The client produces it and
//! re-exports it as `api::Quarantined`.

/// A list item whose `id` could be read but whose body could not (a rate of `1e309`, a
/// `"NaN"` where a number belongs): the run keeps the record's last good version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quarantined {
    /// `users` or `teams`: the list it came in.
    pub list: String,
    pub id: i64,
    /// Why it could not be read (endpoint, page and item, and the decoder's words).
    pub reason: String,
}

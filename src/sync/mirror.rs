//! The mirror as the daemon holds it: the store opened, its alert rules set and the daemon
//! lock taken for the daemon's life. The daemon works only through `sync` (ARCHITECTURE.md,
//! "Dependencies"), so what it does with the database between runs — marking a run it
//! abandoned at shutdown failed — is here, beside the runs themselves.

use crate::api::Client;
use crate::clock::now_utc;
use crate::config::Config;
use crate::store::{Store, StoreError, StoreOptions};

use super::{RunReport, SyncOptions};

/// Opens the database for writing, with the alert rules every run through it queues its
/// matches by.
pub fn open_store(config: &Config) -> Result<Store, StoreError> {
    let mut store = Store::open(
        &config.database.path,
        &StoreOptions::from_config(&config.database),
    )?;
    store.set_outbox_rules(crate::alerts::outbox_rules(config));
    store.set_retention(config.retention.history);
    Ok(store)
}

/// The daemon's database: one daemon per database while this is held.
pub struct DaemonStore {
    store: Store,
}

impl DaemonStore {
    /// Opens the database and takes the daemon lock (the writer lock is only held by runs).
    pub fn open_for_daemon(config: &Config) -> Result<Self, StoreError> {
        let mut store = open_store(config)?;
        store.lock_daemon()?;
        Ok(Self { store })
    }

    /// One full run with the credentials read afresh
    /// ([`super::run_with_fresh_credentials`]).
    pub async fn run_once(
        &mut self,
        client: &Client,
        config: &Config,
        options: &SyncOptions,
    ) -> Result<RunReport, StoreError> {
        super::run_with_fresh_credentials(client, &mut self.store, config, options).await
    }

    /// Marks every `running` row failed with `reason`: a run dropped at shutdown (its
    /// commit is one transaction, so nothing of it was half-written). Returns the rows
    /// marked.
    pub fn abandon_running(&mut self, reason: &str) -> Result<usize, StoreError> {
        self.store.abandon_running(reason, &now_utc())
    }
}

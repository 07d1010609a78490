//! `orgmirror asof TIME --out FILE [--csv DIR] [--force]`: the organization as it stood at
//! TIME, rebuilt from the history — the six current views of the contract as tables of a
//! self-contained SQLite file, written atomically like `export` (and with its code).

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::commands::{load_config, Exit};
use crate::export::ExportError;
use crate::store::{Store, StoreOptions, ASOF_TABLES};

/// `orgmirror asof`.
pub fn run(
    config_path: Option<&Path>,
    at: DateTime<Utc>,
    out: &Path,
    csv: Option<&Path>,
    force: bool,
) -> Result<Exit, ExportError> {
    let at = crate::clock::format_utc(at);
    let (_, config) = load_config(config_path)?;
    // Refused before the history is read (a whole organization takes a while).
    if !force {
        if out.exists() {
            return Err(crate::export::exists(out, "it"));
        }
        if let Some(dir) = csv {
            crate::export::refuse_existing_csv_of(dir, ASOF_TABLES)?;
        }
    }
    let mirror = Store::open_read_only(&config.database.path)?;
    // A time before the history is the command line's to fix (`exit::status`).
    let state = mirror.as_of(&at)?;
    let mode = StoreOptions::from_config(&config.database).mode();
    let what = format!("the state at {at}");
    crate::export::write_database(state.source(), &what, mirror.path(), out, force, mode)?;
    drop(mirror);
    crate::outln!("wrote the organization as of {at} to {}", out.display());
    if let Some(dir) = csv {
        let written =
            crate::export::write_csv(state.source(), &what, ASOF_TABLES, dir, force, mode)?;
        crate::outln!("wrote {} CSV files to {}", written.len(), dir.display());
    }
    Ok(Exit::Ok)
}

//! `orgmirror asof TIME --out FILE [--csv DIR] [--force]`: the organization as it stood at
//! TIME, rebuilt from the history — the six current views of the contract as tables of a
//! self-contained SQLite file, written atomically like `export` (and with its code).

use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use crate::commands::{load_config, CommandError, Exit};
use crate::store::{Store, StoreOptions, ASOF_TABLES};

/// `orgmirror asof`.
pub fn run(
    config_path: Option<&Path>,
    time: &str,
    out: &Path,
    csv: Option<&Path>,
    force: bool,
) -> Result<Exit, CommandError> {
    let at = parse_time(time).map_err(|message| CommandError::usage(format!("TIME: {message}")))?;
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

/// A moment on the command line: RFC 3339 (`2026-03-01T09:00:00+01:00`), or a date
/// (`2026-03-01`), which means its start in UTC. Fractions of a second are dropped (the
/// mirror records whole seconds, so nothing lies between).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    let parsed = DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN).and_utc())
        })
        .map_err(|_| {
            format!(
                "`{text}` is not a time: give RFC 3339 (2026-03-01T09:00:00Z) or a date (2026-03-01)"
            )
        })?;
    DateTime::from_timestamp(parsed.timestamp(), 0)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_date_in_utc() {
        let utc = |t: &str| parse_time(t).map(crate::clock::format_utc);
        assert_eq!(utc("2026-03-01").as_deref(), Ok("2026-03-01T00:00:00Z"));
        assert_eq!(
            utc("2026-03-01T09:30:00+01:00").as_deref(),
            Ok("2026-03-01T08:30:00Z")
        );
        assert_eq!(
            utc(" 2026-03-01T09:30:00.999Z").as_deref(),
            Ok("2026-03-01T09:30:00Z")
        );
        for bad in ["yesterday", "2026-13-01", "2026-03-01 09:30", ""] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }
}

//! `orgmirror erase --user ID --reason TEXT [--history-only] [--dry-run]`: forget one
//! person (`store::erase`), make sure their bytes are gone from the database file and its
//! WAL, and name the copies under the mirror's directory that only a person can delete.

use std::path::{Path, PathBuf};

use crate::commands::{load_config, CommandError, Exit};
use crate::store::{EraseError, EraseRequest, Erasure};

/// Why `erase` did not (wholly) do its work.
#[derive(Debug, thiserror::Error)]
pub enum EraseCommandError {
    #[error(transparent)]
    Command(#[from] CommandError),
    /// Refused: nothing changed.
    #[error(transparent)]
    Refused(EraseError),
    #[error("--reason is empty: say why, without naming the person (a ticket number, say)")]
    NoReason,
    /// Committed, but a reader kept the WAL from being emptied: it still holds old pages.
    #[error("user {user} is erased, but a reader (Datasette, a BI tool) kept the WAL {wal} from being emptied, and it still holds the old pages: close it and run the same command again")]
    WalKept { user: i64, wal: PathBuf },
    /// Committed, vacuumed, and their e-mail address is still in the file.
    #[error("user {user} is erased, but their e-mail address still occurs in {}: another row holds it (another person's?); look with `sqlite3`, then run the same command again", .files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" and "))]
    EmailRemains { user: i64, files: Vec<PathBuf> },
}

crate::commands::from_layers!(EraseCommandError);

impl From<EraseError> for EraseCommandError {
    fn from(e: EraseError) -> Self {
        match e {
            EraseError::Store(e) => EraseCommandError::Command(e.into()),
            refused => EraseCommandError::Refused(refused),
        }
    }
}

/// What to erase, from the command line.
pub struct EraseArgs<'a> {
    pub user: i64,
    pub reason: &'a str,
    pub history_only: bool,
    pub dry_run: bool,
}

/// `orgmirror erase`.
pub async fn run(
    config_path: Option<&Path>,
    args: &EraseArgs<'_>,
) -> Result<Exit, EraseCommandError> {
    let reason = args.reason.trim();
    if reason.is_empty() {
        return Err(EraseCommandError::NoReason);
    }
    let (_, config) = load_config(config_path)?;
    let mut store = crate::commands::open_store(&config)?;
    let erased_by = crate::store::os_user();
    let request = EraseRequest {
        user: args.user,
        reason,
        erased_by: &erased_by,
        history_only: args.history_only,
        dry_run: args.dry_run,
    };
    let erasure = store.erase(&request)?;
    let what = if args.history_only {
        "every version but the current one of user"
    } else {
        "user"
    };
    if args.dry_run {
        crate::outln!(
            "dry run: erasing {what} {} would change {} rows; nothing was changed",
            args.user,
            erasure.total()
        );
        print_counts(&erasure);
        return Ok(Exit::Ok);
    }
    match erasure.run_id {
        Some(run) => {
            crate::outln!(
                "erased {what} {} in run {run}: {} rows changed; the receipt is in `erasures` (by {erased_by})",
                args.user,
                erasure.total()
            );
            print_counts(&erasure);
        }
        None => crate::outln!(
            "user {} holds nothing left to erase (see `erasures`)",
            args.user
        ),
    }
    let bytes = store.finish_erasure(&erasure.needles)?;
    if !bytes.wal_truncated {
        return Err(EraseCommandError::WalKept {
            user: args.user,
            wal: wal_of(store.path()),
        });
    }
    if bytes.vacuumed {
        crate::outln!(
            "vacuumed the database: its free space predated secure_delete, or held their e-mail address"
        );
    }
    if !bytes.traces.email_in.is_empty() {
        return Err(EraseCommandError::EmailRemains {
            user: args.user,
            files: bytes.traces.email_in,
        });
    }
    let searched = format!(
        "{} read in {:.3}s",
        crate::status::human_bytes(bytes.searched_bytes),
        bytes.search_time.as_secs_f64()
    );
    if erasure.needles.names.is_empty() && erasure.needles.emails.is_empty() {
        crate::outln!("the WAL is emptied");
    } else if bytes.traces.name_in.is_empty() {
        crate::outln!(
            "checked: neither their e-mail address nor their name occurs in the database file or its WAL ({searched})"
        );
    } else {
        crate::outln!(
            "checked: their e-mail address occurs nowhere in the database file or its WAL; their name still does, held by another row: a namesake, or a group or tag with that text ({searched})"
        );
    }
    let copies = copies_under(store.path());
    if !copies.is_empty() {
        crate::outln!(
            "these files under the mirror's directory may still hold them; delete or regenerate them:"
        );
        for (path, kind) in copies {
            crate::outln!("  {} ({kind})", path.display());
        }
    }
    drop(store);
    if let Some(run) = erasure.run_id {
        // The erasure is a run: a replica applies it like any other, in one transaction.
        crate::replica::after_run(&config, run, true).await;
    }
    Ok(Exit::Ok)
}

fn print_counts(erasure: &Erasure) {
    for (table, n) in &erasure.counts {
        if *n > 0 {
            crate::outln!("  {table:<20} {n:>8}");
        }
    }
}

fn wal_of(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// The most directory entries looked at under the mirror's directory.
const MOST_ENTRIES: usize = 20_000;

/// Copies of the mirror's data under its directory (three levels down): SQLite files other
/// than the mirror (exports, `asof` files), CSV files of the contract's views, and captures
/// (`sync --capture` directories).
fn copies_under(db: &Path) -> Vec<(PathBuf, &'static str)> {
    let Some(dir) = db.parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    }) else {
        return Vec::new();
    };
    let mine: Vec<PathBuf> = ["", "-wal", "-shm", ".lock"]
        .iter()
        .map(|s| {
            let mut p = db.as_os_str().to_owned();
            p.push(s);
            PathBuf::from(p)
        })
        .collect();
    let mut found = Vec::new();
    let mut seen = 0;
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut capture = false;
        let mut csv = false;
        for entry in entries.flatten() {
            seen += 1;
            if seen > MOST_ENTRIES {
                return found;
            }
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if depth < 3 {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            if mine.iter().any(|m| same_file(m, &path)) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".body") && name[..name.len() - 5].chars().all(|c| c.is_ascii_digit())
            {
                capture = true;
            } else if name.ends_with(".csv") {
                csv = true;
            } else if is_sqlite(&path) {
                found.push((path, "a SQLite copy: an export or an asof file"));
            }
        }
        if capture {
            found.push((d.clone(), "a capture of the API's answers"));
        }
        if csv {
            found.push((d, "CSV files"));
        }
    }
    found.sort();
    found
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn is_sqlite(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"SQLite format 3\0"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copies_under_the_mirrors_directory_are_found_and_the_mirror_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let sqlite = |p: &Path| std::fs::write(p, b"SQLite format 3\0 and the rest").unwrap();
        let db = root.join("org.sqlite");
        sqlite(&db);
        sqlite(&root.join("org.sqlite-wal"));
        std::fs::write(root.join("org.sqlite.lock"), b"").unwrap();
        std::fs::write(root.join("orgmirror.toml"), b"[api]").unwrap();
        sqlite(&root.join("export.sqlite"));
        std::fs::create_dir_all(root.join("reports/2030/asof")).unwrap();
        sqlite(&root.join("reports/2030/asof/march.db"));
        std::fs::create_dir(root.join("capture")).unwrap();
        std::fs::write(root.join("capture/0001.json"), b"{}").unwrap();
        std::fs::write(root.join("capture/0001.body"), b"[]").unwrap();
        std::fs::create_dir(root.join("csv")).unwrap();
        std::fs::write(root.join("csv/users_current.csv"), b"a,b").unwrap();
        let found: Vec<(PathBuf, &str)> = copies_under(&db);
        let names: Vec<String> = found
            .iter()
            .map(|(p, _)| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "capture",
                "csv",
                "export.sqlite",
                "reports/2030/asof/march.db"
            ]
        );
    }
}

//! `orgmirror export --out PATH [--csv DIR] [--force]`: a consistent, self-contained copy of
//! the mirror for BI tools, safe while the daemon writes.
//!
//! **The copy is one committed state**: `VACUUM INTO` reads inside one read transaction of
//! a read-only connection. It is written to a temporary file beside PATH, fsynced, and
//! renamed over PATH, so PATH is never half-written. The copy is in rollback-journal mode
//! (no `-wal` beside it) and has the mirror's mode: 0600, or 0640 with
//! `database.group_readable`. The CSV files are written from the copy, so they
//! show the same state.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::info;

use crate::commands::{load_config, CommandError, Exit};
use crate::store::{Field, QueryError, Source, Store, StoreOptions};

#[path = "export_staging.rs"]
mod staging;

/// The contract views and tables `--csv` writes, one `<name>.csv` each (not `mirror_freshness`,
/// whose age is computed when read: the copy `--out` writes has the view).
pub const CSV_VIEWS: &[&str] = &[
    "users_current",
    "groups_current",
    "group_members_current",
    "roles_current",
    "role_permissions_current",
    "user_custom_fields_current",
    "group_membership_history",
    "rate_history",
    "change_events",
    "sync_runs",
];

/// Why an export (or `asof`'s copy) was not written. A person fixes the command line
/// (`--out`, `--csv`, `--force`); the rest may pass by itself.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The config, the mirror, the state `asof` rebuilt.
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("export needs --out PATH, --csv DIR, or both")]
    NothingAsked,
    /// `--out` names one of the mirror's own files (`file` says which).
    #[error("--out {} is {file}; write the copy elsewhere", .out.display())]
    OntoMirror { out: PathBuf, file: &'static str },
    /// A file in the way without `--force`.
    #[error("{} already exists; pass --force to replace {what}", .path.display())]
    Exists { path: PathBuf, what: &'static str },
    #[error("--csv {} is not a directory", .dir.display())]
    CsvNotADirectory { dir: PathBuf },
    /// The CSV set replaces its directory whole: files of others would go with it.
    #[error(
        "--csv {} holds files export did not write ({}); the CSV set replaces the \
         directory whole, so give --csv a directory of its own",
        .dir.display(),
        .files.join(", ")
    )]
    CsvForeignFiles { dir: PathBuf, files: Vec<String> },
    /// SQLite takes the copy's name as text.
    #[error("the export path {} is not valid UTF-8", .path.display())]
    NotUtf8 { path: PathBuf },
    /// Writing, moving or syncing a file or directory failed.
    #[error("cannot {doing} {}: {source}", .path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// `VACUUM INTO` failed.
    #[error("cannot copy {what} into {}: {source}", .out.display())]
    Copy {
        what: String,
        out: PathBuf,
        source: QueryError,
    },
    /// The one read transaction the CSV files are read in.
    #[error("cannot read {what}: {source}")]
    Read { what: String, source: QueryError },
    #[error("cannot read {view} from {what}: {source}")]
    ReadView {
        view: String,
        what: String,
        source: QueryError,
    },
}

crate::commands::from_layers!(ExportError:
    crate::config::ConfigError,
    crate::store::StoreError,
    crate::store::AsOfError
);

impl ExportError {
    fn io(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = path.to_path_buf();
        move |source| ExportError::Io {
            doing,
            path,
            source,
        }
    }
}

/// `orgmirror export`: the copy at `out`, the CSV set in `csv`, or both (then the CSV
/// files are read from the copy). Without `out` the CSV files are read from the mirror
/// in one read transaction: one committed state either way.
pub fn run(
    config_path: Option<&Path>,
    out: Option<&Path>,
    csv: Option<&Path>,
    force: bool,
) -> Result<Exit, ExportError> {
    let (_, config) = load_config(config_path)?;
    if out.is_none() && csv.is_none() {
        return Err(ExportError::NothingAsked);
    }
    // Refused before anything is written, so that a refusal leaves no half of an export.
    if let (Some(dir), false) = (csv, force) {
        refuse_existing_csv(&csv_targets(dir, CSV_VIEWS))?;
    }
    let source = Store::open_read_only(&config.database.path)?;
    // The mirror's own mode: 0640 when its group (BI readers) may read it, else 0600.
    let mode = StoreOptions::from_config(&config.database).mode();
    let Some(out) = out else {
        let dir = csv.unwrap_or(Path::new("."));
        let written = export_csv(&source, dir, force, mode)?;
        crate::outln!("wrote {} CSV files to {}", written.len(), dir.display());
        return Ok(Exit::Ok);
    };
    export_database(&source, out, force, mode)?;
    drop(source);
    crate::outln!(
        "exported {} to {}",
        config.database.path.display(),
        out.display()
    );
    if let Some(dir) = csv {
        let copy = Store::open_read_only(out)?;
        let written = export_csv(&copy, dir, force, mode)?;
        crate::outln!("wrote {} CSV files to {}", written.len(), dir.display());
    }
    Ok(Exit::Ok)
}

/// Copies the database behind `source` to `out` atomically (see the module docs), in
/// file mode `mode`.
pub fn export_database(
    source: &Store,
    out: &Path,
    force: bool,
    mode: u32,
) -> Result<(), ExportError> {
    write_database(
        source.source(),
        &source.path().display().to_string(),
        source.path(),
        out,
        force,
        mode,
    )?;
    info!(source = %source.path().display(), out = %out.display(), "database exported");
    Ok(())
}

/// Writes the `main` database of `source` (`what` names it in errors) to `out` atomically
/// with `VACUUM INTO` (see the module docs), in file mode `mode`; never over one of the
/// files of the mirror at `mirror`.
pub fn write_database(
    source: Source<'_>,
    what: &str,
    mirror: &Path,
    out: &Path,
    force: bool,
    mode: u32,
) -> Result<(), ExportError> {
    if let Some(file) = mirror_file_at(mirror, out) {
        return Err(ExportError::OntoMirror {
            out: out.to_path_buf(),
            file,
        });
    }
    if out.exists() && !force {
        return Err(exists(out, "it"));
    }
    let dir = parent_dir(out);
    staging::remove_stale(&dir);
    let tmp = tempfile::Builder::new()
        .prefix(staging::PREFIX)
        .suffix(staging::SUFFIX)
        .tempfile_in(&dir)
        .and_then(|tmp| staging::hold(tmp.as_file()).map(|()| tmp))
        .map_err(ExportError::io("create a temporary file in", &dir))?;
    if tmp.path().to_str().is_none() {
        return Err(ExportError::NotUtf8 {
            path: out.to_path_buf(),
        });
    }
    source
        .export_to(tmp.path())
        .map_err(|source| ExportError::Copy {
            what: what.to_string(),
            out: out.to_path_buf(),
            source,
        })?;
    let file = tmp.as_file();
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| file.sync_all())
        .map_err(ExportError::io("write", tmp.path()))?;
    let persisted = if force {
        tmp.persist(out)
    } else {
        // Refuses atomically if PATH appeared meanwhile.
        tmp.persist_noclobber(out)
    };
    persisted.map_err(|e| ExportError::io("move the copy to", out)(e.error))?;
    sync_dir(&dir)
}

/// Which of the mirror's own files (the database at `db`, its `-wal`, `-shm`, `-journal`
/// or `.lock`) `out` names, if any: replacing one under a running daemon corrupts the
/// mirror or breaks its writer lock.
fn mirror_file_at(db: &Path, out: &Path) -> Option<&'static str> {
    let resolve = |p: &Path| -> Option<PathBuf> {
        let name = p.file_name()?;
        let parent = parent_dir(p).canonicalize().ok()?;
        Some(parent.join(name))
    };
    let inode = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let db = db.canonicalize().ok().or_else(|| resolve(db))?;
    let out_path = resolve(out)?;
    let out_inode = inode(out);
    for (suffix, what) in [
        ("", "the mirror's database"),
        ("-wal", "the mirror's -wal file"),
        ("-shm", "the mirror's -shm file"),
        ("-journal", "the mirror's -journal file"),
        (".lock", "the mirror's writer lock"),
    ] {
        let mut own = db.clone().into_os_string();
        own.push(suffix);
        let own = PathBuf::from(own);
        let same_inode = out_inode.is_some() && out_inode == inode(&own);
        if own == out_path || same_inode {
            return Some(what);
        }
    }
    None
}

fn csv_targets(dir: &Path, views: &[&str]) -> Vec<PathBuf> {
    views.iter().map(|v| dir.join(format!("{v}.csv"))).collect()
}

pub(crate) fn refuse_existing_csv_of(dir: &Path, views: &[&str]) -> Result<(), ExportError> {
    refuse_existing_csv(&csv_targets(dir, views))
}

fn refuse_existing_csv(targets: &[PathBuf]) -> Result<(), ExportError> {
    match targets.iter().find(|p| p.exists()) {
        Some(existing) => Err(exists(existing, "the CSV files")),
        None => Ok(()),
    }
}

/// A file in the way without `--force`: the command line's to fix (exit 2).
pub(crate) fn exists(path: &Path, what: &'static str) -> ExportError {
    ExportError::Exists {
        path: path.to_path_buf(),
        what,
    }
}

/// Writes one CSV per [`CSV_VIEWS`] entry of the mirror behind `store` (see [`write_csv`]).
pub fn export_csv(
    store: &Store,
    dir: &Path,
    force: bool,
    mode: u32,
) -> Result<Vec<PathBuf>, ExportError> {
    let what = store.path().display().to_string();
    write_csv(store.source(), &what, CSV_VIEWS, dir, force, mode)
}

/// Writes one `<view>.csv` per name in `views`, all read from `source` (`what` names it in
/// errors) in one read transaction, into a staging directory beside `dir`, then puts that
/// directory at `dir` in one step (see [`staging::StagedDir::swap_into`]): a reader of
/// `dir`, or an export killed half-way, never leaves a mix of two states. Files in mode
/// `mode`. Returns the files written.
pub fn write_csv(
    source: Source<'_>,
    what: &str,
    views: &[&str],
    dir: &Path,
    force: bool,
    mode: u32,
) -> Result<Vec<PathBuf>, ExportError> {
    let targets = csv_targets(dir, views);
    if !force {
        refuse_existing_csv(&targets)?;
    }
    let parent = parent_dir(dir);
    if !parent.is_dir() {
        std::fs::create_dir_all(&parent)
            .map_err(ExportError::io("create the directory", &parent))?;
    }
    staging::remove_stale(&parent);
    // Also inside `dir`, where an older orgmirror wrote its temporary CSV files.
    staging::remove_stale(dir);
    // Directories: the files' read bits and search.
    let staged = staging::StagedDir::new(&parent, mode | ((mode & 0o444) >> 2))?;
    let written = source
        .in_one_read(|| write_csv_set(source, what, views, staged.path(), mode))
        .map_err(|source| ExportError::Read {
            what: what.to_string(),
            source,
        })?;
    written?;
    sync_dir(staged.path())?;
    let ours: Vec<String> = views.iter().map(|v| format!("{v}.csv")).collect();
    staged.swap_into(dir, &ours)?;
    sync_dir(&parent)?;
    Ok(targets)
}

/// Every CSV of `views` into `dir`, each fsynced.
fn write_csv_set(
    source: Source<'_>,
    what: &str,
    views: &[&str],
    dir: &Path,
    mode: u32,
) -> Result<(), ExportError> {
    use std::os::unix::fs::OpenOptionsExt;
    for view in views {
        let target = dir.join(format!("{view}.csv"));
        let io_error = |e: std::io::Error| ExportError::io("write", &target)(e);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)
            .map_err(io_error)?;
        let mut writer = BufWriter::new(&file);
        write_view_csv(source, what, view, &mut writer)?;
        writer.flush().map_err(io_error)?;
        drop(writer);
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .and_then(|()| file.sync_all())
            .map_err(io_error)?;
    }
    Ok(())
}

fn write_view_csv(
    source: Source<'_>,
    what: &str,
    view: &str,
    out: &mut impl Write,
) -> Result<(), ExportError> {
    let sql_error = |source: QueryError| ExportError::ReadView {
        view: view.to_string(),
        what: what.to_string(),
        source,
    };
    let csv = PathBuf::from(format!("{view}.csv"));
    let io_error = |e: std::io::Error| ExportError::io("write", &csv)(e);
    let mut rows = source.view_rows(view).map_err(sql_error)?;
    let width = rows.columns().len();
    write_record(out, rows.columns().iter().map(|c| c.as_str().into())).map_err(io_error)?;
    rows.for_each(sql_error, |row| {
        let mut fields = Vec::with_capacity(width);
        for i in 0..width {
            fields.push(csv_field(row.get(i).map_err(sql_error)?));
        }
        write_record(out, fields.into_iter()).map_err(io_error)
    })
}

/// A SQL value as CSV text: NULL is an empty field, blobs are hex.
fn csv_field(value: Field<'_>) -> std::borrow::Cow<'_, str> {
    match value {
        Field::Null => "".into(),
        Field::Integer(i) => i.to_string().into(),
        Field::Real(f) => f.to_string().into(),
        Field::Text(t) => String::from_utf8_lossy(t),
        Field::Blob(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
    }
}

/// One RFC 4180 record: fields quoted when they hold a comma, quote, CR or LF (quotes
/// doubled), CRLF at the end.
pub fn write_record<'a>(
    out: &mut impl Write,
    fields: impl Iterator<Item = std::borrow::Cow<'a, str>>,
) -> std::io::Result<()> {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.write_all(b"\"")?;
            out.write_all(field.replace('"', "\"\"").as_bytes())?;
            out.write_all(b"\"")?;
        } else {
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes the renames durable.
fn sync_dir(dir: &Path) -> Result<(), ExportError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ExportError::io("sync the directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&str]) -> String {
        let mut out = Vec::new();
        write_record(&mut out, fields.iter().map(|f| (*f).into())).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc4180_quoting() {
        assert_eq!(record(&["a", "b"]), "a,b\r\n");
        assert_eq!(
            record(&["a,b", "say \"hi\"", ""]),
            "\"a,b\",\"say \"\"hi\"\"\",\r\n"
        );
        assert_eq!(record(&["two\nlines"]), "\"two\nlines\"\r\n");
    }
}

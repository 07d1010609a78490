//! The only module that touches SQLite: open (with file modes, pragmas and the schema),
//! read what a run diffs against, and commit a run in one transaction.

mod asof;
mod audit;
mod changes;
mod clock;
mod demo;
mod erase;
mod export;
mod figures;
mod health;
mod integrity;
mod lookup;
mod outbox;
mod read_only;
mod replica;
mod retention;
mod rows;
mod runs;
mod setup;
mod sql_types;
mod write;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use asof::{AsOfError, AsOfState, ASOF_TABLES};
pub use audit::{AuditState, AuditWrite};
pub use changes::{ChangeFilter, ChangeRow, UnobservedRow};
pub use demo::{demo_questions, DemoQuestion};
pub use erase::{os_user, EraseError, EraseRequest, Erasure, ErasureReceipt};
pub use export::Source;
pub use figures::ScrapeFigures;
#[cfg(test)]
pub use health::QueuedHealth;
pub use health::{Freshness, HealthAlert, HealthState, Outage};
pub use integrity::RECOVERY;
#[cfg(test)]
pub use outbox::Actor;
pub use outbox::{EventRow, OutboxRow, OutboxRules, RuleBacklog};
pub use replica::{Cell, ColumnKind, ContractView, ReplicaPart, ReplicaSlice, CONTRACT_VIEWS};
pub use rows::{Field, QueryError};
pub use runs::{RunFailure, RunTimes, SyncRunRow};
pub use write::RunTotals;

/// The schema of version 1, which a new database gets before the [`MIGRATIONS`].
pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");
/// Every schema change after version 1, in order: `MIGRATIONS[i]` takes a database from
/// version `i + 1` to `i + 2`. A change is a new file in `src/store/migrations/` appended
/// here; `schema.sql` stays version 1, so an old mirror and a new one end the same.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "13_page_sizes_and_pacing",
        include_str!("migrations/13_page_sizes_and_pacing.sql"),
    ),
    (
        "15_history_trust",
        include_str!("migrations/15_history_trust.sql"),
    ),
    (
        "16_group_headcount",
        include_str!("migrations/16_group_headcount.sql"),
    ),
    (
        "16_users_by_name",
        include_str!("migrations/16_users_by_name.sql"),
    ),
    (
        "17_alert_outbox",
        include_str!("migrations/17_alert_outbox.sql"),
    ),
    (
        "24_published_roles_and_custom_fields",
        include_str!("migrations/24_published_roles_and_custom_fields.sql"),
    ),
    (
        "25_mirror_health",
        include_str!("migrations/25_mirror_health.sql"),
    ),
    (
        "26_id_filters",
        include_str!("migrations/26_id_filters.sql"),
    ),
    ("27_audit_log", include_str!("migrations/27_audit_log.sql")),
    (
        "28_erasure_and_retention",
        include_str!("migrations/28_erasure_and_retention.sql"),
    ),
    (
        "29_audit_events_by_time",
        include_str!("migrations/29_audit_events_by_time.sql"),
    ),
];
/// `PRAGMA user_version` of a database with every migration applied.
pub const SCHEMA_VERSION: i64 = 1 + MIGRATIONS.len() as i64;
/// `PRAGMA application_id`: "OMIR".
pub const APPLICATION_ID: i64 = 0x4F4D_4952;

/// The reason written for a run whose process died.
pub const INTERRUPTED: &str = "interrupted: the process stopped before the run finished";

/// A database that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The file cannot be created or opened (not for want of permission).
    #[error("database {path}: cannot create or open: {source}")]
    CannotOpen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path}: cannot set file mode {mode:o}: {source}")]
    FileMode {
        path: PathBuf,
        mode: u32,
        source: std::io::Error,
    },
    /// A reader asked for a mirror that is not there.
    #[error("database {path}: does not exist (has a sync run yet?)")]
    Missing { path: PathBuf },
    /// A reader asked for a mirror no run has written yet.
    #[error("database {path}: is an empty database, not a mirror yet (has a sync run?)")]
    Empty { path: PathBuf },
    #[error("database {path}: cannot switch to WAL mode (got {mode}); is the file on a network filesystem?")]
    NoWal { path: PathBuf, mode: String },
    #[error("database {path}: cannot keep the -wal file between runs (SQLite code {code})")]
    PersistWal { path: PathBuf, code: i32 },
    #[error("database {path}: schema migration {name} failed: {source}")]
    Migration {
        path: PathBuf,
        name: &'static str,
        source: rusqlite::Error,
    },
    /// `lock` could not be locked (not because another process holds it).
    #[error("database {lock}: cannot take {what}: {source}")]
    Lock {
        lock: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    /// `lock` could not be opened (not for want of permission).
    #[error("database {lock}: cannot open the lock file: {source}")]
    LockFile {
        lock: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path} was written by a newer orgmirror (schema version {found}; this one knows up to {supported}); upgrade orgmirror")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path} is not an orgmirror database (application_id {found:#x})")]
    Foreign { path: PathBuf, found: i64 },
    #[error("database {path} is being written by another orgmirror process (lock {lock}); wait for it to finish")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("another orgmirror daemon (`orgmirror run`) already serves database {path} (lock {lock}); stop it first")]
    DaemonRunning { path: PathBuf, lock: PathBuf },
    /// The file or its `-wal` could not be read back after an erasure, to check the
    /// person's bytes are gone (the erasure is committed).
    #[error("database {path}: cannot read it to check the erased bytes are gone: {source}")]
    Unsearchable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// SQLite's `quick_check` found damage: nothing was written (exit 2).
    #[error("database {path} is damaged ({problems}); nothing was written: {RECOVERY}")]
    Damaged { path: PathBuf, problems: String },
    /// The database's directory does not exist (exit 2).
    #[error("database {path}: directory {dir} does not exist; create it for the user orgmirror runs as (`install -d -o orgmirror -g orgmirror -m 0750 {dir}`; the unit's StateDirectory= does this for /var/lib/orgmirror) or set database.path")]
    NoDirectory { path: PathBuf, dir: PathBuf },
    /// This user may not create or write the file (exit 2); `fix` names owner, mode and
    /// the command that lets the service write.
    #[error("database {path}: cannot create or open it for writing ({source}): {fix}")]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
        fix: String,
    },
    /// SQLite could not open or write the files for want of permission (exit 2).
    #[error("database {path}: {source}: {fix}")]
    SqliteNotWritable {
        path: PathBuf,
        source: rusqlite::Error,
        fix: String,
    },
    /// This user may not open the lock file beside the database (exit 2).
    #[error("database {path}: cannot open the lock file ({source}): {fix}")]
    LockFileNotWritable {
        path: PathBuf,
        source: std::io::Error,
        fix: String,
    },
    /// A reader could not open the mirror, whose `-wal` holds changes, because it may not
    /// create the `-shm` file in the directory (exit 2).
    #[error("database {path}: {opening}; the directory {dir}, not the file, is the problem: SQLite must create {shm} there to read the changes in {wal}, and this user cannot. Read it as the service's user, let this user write the directory, or read it after the next run (which empties the -wal file)")]
    DirectoryNotWritable {
        path: PathBuf,
        opening: Box<StoreError>,
        dir: PathBuf,
        shm: PathBuf,
        wal: PathBuf,
    },
}

impl StoreError {
    /// Whether a person must fix it (exit 2; systemd does not restart the service for
    /// it): a missing directory, files the service cannot write, a file that is not a
    /// mirror or is newer than this build, damage. (A second daemon is not: the first may
    /// be on its way out, as during a restart.)
    pub fn is_setup(&self) -> bool {
        match self {
            StoreError::NoDirectory { .. }
            | StoreError::NotWritable { .. }
            | StoreError::SqliteNotWritable { .. }
            | StoreError::LockFileNotWritable { .. }
            | StoreError::DirectoryNotWritable { .. }
            | StoreError::Damaged { .. }
            | StoreError::Foreign { .. }
            | StoreError::TooNew { .. } => true,
            StoreError::Sqlite { source, .. } => StoreError::is_setup_code(source),
            _ => false,
        }
    }

    /// The same error, with the fix spelled out when it is a setup mistake SQLite
    /// reported (read-only files, a directory it cannot create `-wal` in).
    fn explained(self) -> StoreError {
        match self {
            StoreError::Sqlite { path, source } if StoreError::is_setup_code(&source) => {
                let fix = setup::diagnose(&path);
                StoreError::SqliteNotWritable { path, source, fix }
            }
            other => other,
        }
    }

    fn is_setup_code_of(e: &StoreError) -> bool {
        matches!(e, StoreError::Sqlite { source, .. } if StoreError::is_setup_code(source))
    }

    fn is_setup_code(source: &rusqlite::Error) -> bool {
        matches!(
            source.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::PermissionDenied
            )
        )
    }

    /// Whether another orgmirror process holds the writer lock.
    pub fn is_locked(&self) -> bool {
        matches!(self, StoreError::Locked { .. })
    }

    /// Whether SQLite said another connection holds the lock this one needed.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite { source, .. }
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
        )
    }
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// 0640 instead of 0600.
    pub group_readable: bool,
    pub busy_timeout: Duration,
    pub journal_size_limit: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            group_readable: false,
            busy_timeout: Duration::from_secs(10),
            journal_size_limit: 64 * 1024 * 1024,
        }
    }
}

impl StoreOptions {
    /// From the `[database]` config.
    pub fn from_config(db: &crate::config::DatabaseConfig) -> StoreOptions {
        StoreOptions {
            group_readable: db.group_readable,
            busy_timeout: db.busy_timeout.duration(),
            journal_size_limit: db.journal_size_limit,
        }
    }

    pub fn mode(&self) -> u32 {
        if self.group_readable {
            0o640
        } else {
            0o600
        }
    }
}

/// An open mirror database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
    /// Held while this process is the writer (see [`Store::lock_writer`]).
    writer_lock: Option<File>,
    /// Held for a daemon's life (see [`Store::lock_daemon`]).
    daemon_lock: Option<File>,
    /// The alert rules whose matches a run queues with its events (see [`OutboxRules`]).
    outbox_rules: Option<std::sync::Arc<dyn OutboxRules>>,
    /// `[retention] history`: what every run committed through this store keeps.
    retention: Option<crate::config::HistoryPeriod>,
}

impl Store {
    /// Opens (creating when missing) the database at `path` for writing: file modes,
    /// WAL, `synchronous=FULL`, busy timeout, and the schema.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        Store::open_writable(path, options).map_err(StoreError::explained)
    }

    fn open_writable(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let mode = options.mode();
        let file_mode = |source| StoreError::FileMode {
            path: path.to_path_buf(),
            mode,
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(StoreError::NoDirectory {
                    path: path.to_path_buf(),
                    dir: dir.to_path_buf(),
                });
            }
        }
        // Create the file ourselves so that it never exists with a wider mode, whatever the
        // umask. An existing file is never opened beside SQLite, only asked about: closing any
        // descriptor of it drops every POSIX lock this process holds on it, SQLite's included
        // (another store of this process, the daemon's), and a client elsewhere closing the
        // file would then take itself for the last one and remove the -wal under ours.
        let usable = if path.exists() {
            setup::writable(path)
        } else {
            OpenOptions::new()
                .create_new(true)
                .append(true)
                .mode(mode)
                .open(path)
                .map(drop)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => setup::writable(path),
                    _ => Err(e),
                })
        };
        usable.map_err(|source| match setup::not_writable(path, source.kind()) {
            Some(fix) => StoreError::NotWritable {
                path: path.to_path_buf(),
                source,
                fix,
            },
            None => StoreError::CannotOpen {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite_error(path))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            options: options.clone(),
            writer_lock: None,
            daemon_lock: None,
            outbox_rules: None,
            retention: None,
        };
        // Before any mode, pragma or schema is changed: a file that is not ours stays as it was.
        store.check_identity()?;
        restrict_modes(path, mode).map_err(file_mode)?;
        store.configure()?;
        store.migrate()?;
        restrict_modes(path, mode).map_err(file_mode)?;
        Ok(store)
    }

    /// Opens an existing database read-only (status, export, queries).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let store = match Store::open_reading(path, false) {
            Err(e) if StoreError::is_setup_code_of(&e) => {
                read_only::without_shared_memory(path, e)?;
                Store::open_reading(path, true)?
            }
            opened => opened?,
        };
        if store.check_identity()? == 0 {
            return Err(StoreError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(store)
    }

    /// Opens `path` read-only and reads its identity. `immutable`: without the `-wal` and
    /// `-shm` files and without locks (see `read_only`).
    fn open_reading(path: &Path, immutable: bool) -> Result<Store, StoreError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            flags |= OpenFlags::SQLITE_OPEN_URI;
            Connection::open_with_flags(read_only::immutable_uri(path), flags)
        } else {
            Connection::open_with_flags(path, flags)
        }
        .map_err(sqlite_error(path))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            options: StoreOptions::default(),
            writer_lock: None,
            daemon_lock: None,
            outbox_rules: None,
            retention: None,
        };
        store.sql(store.conn.busy_timeout(Duration::from_secs(10)))?;
        store.check_identity()?;
        Ok(store)
    }

    /// Has every run committed through this store queue the events `rules` match in the
    /// alert outbox, in the run's own transaction.
    pub fn set_outbox_rules(&mut self, rules: Option<std::sync::Arc<dyn OutboxRules>>) {
        self.outbox_rules = rules;
    }

    /// Has every run committed through this store drop the history that ended longer
    /// than `period` before it (`[retention] history`).
    pub fn set_retention(&mut self, period: Option<crate::config::HistoryPeriod>) {
        self.retention = period;
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for the store's own tests (every other module calls a named method).
    #[cfg(test)]
    fn connection(&self) -> &Connection {
        &self.conn
    }

    fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T, StoreError> {
        r.map_err(sqlite_error(&self.path))
    }

    fn configure(&self) -> Result<(), StoreError> {
        self.sql(self.conn.busy_timeout(self.busy_timeout()))?;
        // Room for every statement a run writes with, so none is prepared twice.
        self.conn.set_prepared_statement_cache_capacity(64);
        let mode: String = self.sql(
            self.conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)),
        )?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal {
                path: self.path.clone(),
                mode,
            });
        }
        // Keep `-wal` and `-shm` when the last connection closes (the WAL truncated): a
        // reader that may read them but not create files in the directory — a BI user in
        // the service's group, `StateDirectoryMode=0750` — can then open the mirror
        // read-only while no orgmirror process runs.
        let mut persist: std::ffi::c_int = 1;
        // SAFETY: the handle is this connection's own and open; PERSIST_WAL reads and
        // writes the one int behind the pointer, which outlives the call.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_file_control(
                self.conn.handle(),
                c"main".as_ptr(),
                rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
                (&raw mut persist).cast(),
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            return Err(StoreError::PersistWal {
                path: self.path.clone(),
                code: rc,
            });
        }
        let limit = i64::try_from(self.options.journal_size_limit).unwrap_or(i64::MAX);
        // A 16 MiB page cache: a first sync commits while it holds the organization in
        // memory, and a larger cache made that commit no faster (docs/performance.md).
        // secure_delete: what a deletion or an erasure frees is overwritten with zeros, so
        // that an erased person's bytes do not stay in free space (`store::erase`).
        self.sql(self.conn.execute_batch(&format!(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384; PRAGMA journal_size_limit={limit}; PRAGMA secure_delete=ON;"
        )))
    }

    fn check_identity(&self) -> Result<i64, StoreError> {
        let app: i64 = self.sql(
            self.conn
                .query_row("PRAGMA application_id", [], |r| r.get(0)),
        )?;
        let version: i64 =
            self.sql(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)))?;
        // application_id 0 and user_version 0 is a new, empty database — or another
        // program's that sets neither: only one without tables is ours to fill.
        let empty = || -> Result<bool, StoreError> {
            let tables: i64 = self.sql(self.conn.query_row(
                "SELECT count(*) FROM sqlite_schema",
                [],
                |r| r.get(0),
            ))?;
            Ok(tables == 0)
        };
        if app != APPLICATION_ID && !(app == 0 && version == 0 && empty()?) {
            return Err(StoreError::Foreign {
                path: self.path.clone(),
                found: app,
            });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(version)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version = self.check_identity()?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        // A migration may rebuild a table to declare a foreign key (SQLite's documented
        // procedure): keys are not enforced while it runs, and are again after.
        self.sql(self.conn.execute_batch("PRAGMA foreign_keys=OFF"))?;
        let migrated = self.migrate_from(version);
        self.sql(self.conn.execute_batch("PRAGMA foreign_keys=ON"))?;
        migrated
    }

    fn migrate_from(&mut self, version: i64) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(sqlite_error(&path))?;
        let first = if version == 0 {
            tx.execute_batch(SCHEMA_SQL).map_err(sqlite_error(&path))?;
            1
        } else {
            version
        };
        // Versions count from 1, so this starts at the migration that leaves `first`.
        for (name, sql) in MIGRATIONS
            .iter()
            .skip(usize::try_from(first - 1).unwrap_or(0))
        {
            tx.execute_batch(sql)
                .map_err(|source| StoreError::Migration {
                    path: path.clone(),
                    name,
                    source,
                })?;
        }
        // A migration may edit a definition in `sqlite_schema` (as SQLite's ALTER TABLE
        // documents for a widened CHECK): a new schema cookie has every connection, this
        // one included, read the schema again.
        let cookie: i64 = tx
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .map_err(sqlite_error(&path))?;
        tx.execute_batch(&format!(
            "PRAGMA schema_version={}; PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version={SCHEMA_VERSION};",
            cookie + 1
        ))
        .and_then(|_| tx.commit())
        .map_err(sqlite_error(&path))
    }

    /// Takes the writer lock (`<path>.lock`, flock): one writing process per database.
    /// While held, any `running` row in `sync_runs` belongs to a process that died.
    pub fn lock_writer(&mut self) -> Result<(), StoreError> {
        if self.writer_lock.is_some() {
            return Ok(());
        }
        let Some(file) = self.take_lock("the writer lock", crate::lockfile::flock)? else {
            return Err(StoreError::Locked {
                path: self.path.clone(),
                lock: lock_path(&self.path),
            });
        };
        self.writer_lock = Some(file);
        Ok(())
    }

    /// Opens `<path>.lock` and takes a lock on it with `take` (`what` names it in errors);
    /// `None` when another process holds it.
    fn take_lock(
        &self,
        what: &'static str,
        take: impl FnOnce(&File) -> std::io::Result<bool>,
    ) -> Result<Option<File>, StoreError> {
        let lock_path = lock_path(&self.path);
        let file = self.open_lock_file(&lock_path)?;
        match take(&file) {
            Ok(true) => Ok(Some(file)),
            Ok(false) => Ok(None),
            Err(source) => Err(StoreError::Lock {
                lock: lock_path,
                what,
                source,
            }),
        }
    }

    fn open_lock_file(&self, lock_path: &Path) -> Result<File, StoreError> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(self.options.mode())
            .open(lock_path)
            .map_err(
                |source| match setup::not_writable(lock_path, source.kind()) {
                    Some(fix) => StoreError::LockFileNotWritable {
                        path: self.path.clone(),
                        source,
                        fix,
                    },
                    None => StoreError::LockFile {
                        lock: lock_path.to_path_buf(),
                        source,
                    },
                },
            )
    }

    /// Takes the daemon lock for as long as this store lives: one `orgmirror run` per
    /// database. It is an open-file-description lock on byte 1 of `<path>.lock`, apart from
    /// the writer lock (a `flock` of the same file, released between runs), so a manual
    /// `sync` still runs between the daemon's runs while a second daemon is refused.
    pub fn lock_daemon(&mut self) -> Result<(), StoreError> {
        if self.daemon_lock.is_some() {
            return Ok(());
        }
        let take = |file: &File| crate::lockfile::lock_byte(file, DAEMON_LOCK_BYTE);
        let Some(file) = self.take_lock("the daemon lock", take)? else {
            return Err(StoreError::DaemonRunning {
                path: self.path.clone(),
                lock: lock_path(&self.path),
            });
        };
        self.daemon_lock = Some(file);
        Ok(())
    }

    /// Lets go of the writer lock (after a run), so that other writers — a manual `sync`,
    /// a group command's refresh — can run between the daemon's runs.
    pub fn release_writer(&mut self) {
        self.writer_lock = None;
    }

    /// The configured busy timeout (rusqlite refuses, panicking, more milliseconds than an
    /// i32 holds).
    fn busy_timeout(&self) -> Duration {
        self.options
            .busy_timeout
            .min(Duration::from_millis(i32::MAX as u64))
    }

    /// Runs `f` with SQLite waiting at most `wait` for another connection's lock, then
    /// puts the configured busy timeout back.
    fn with_busy_timeout<T>(
        &mut self,
        wait: Duration,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.sql(self.conn.busy_timeout(wait))?;
        let result = f(self);
        let restored = self.sql(self.conn.busy_timeout(self.busy_timeout()));
        result.and_then(|t| restored.map(|()| t))
    }

    fn has_column(&self, table: &str, column: &str) -> Result<bool, StoreError> {
        self.sql(self.conn.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        ))
    }
}

/// Wraps a SQLite error with the database's path.
fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// How long [`retry_while_busy`] sleeps between two tries.
const BUSY_PAUSE: Duration = Duration::from_millis(50);

/// Calls `attempt` until it does not fail for another writer (SQLite's write lock held by
/// another connection, or the writer lock by another process) or `patience` is spent,
/// sleeping between tries: asleep, not in SQLite's busy handler, so that an async caller
/// (the daemon's loop) goes on pinging the watchdog and hearing stop signals meanwhile.
/// `waiting` hears the first such error, when the wait begins.
pub async fn retry_while_busy<T>(
    patience: Duration,
    mut attempt: impl FnMut() -> Result<T, StoreError>,
    waiting: impl FnOnce(&StoreError),
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let mut waiting = Some(waiting);
    loop {
        match attempt() {
            Err(e) if (e.is_busy() || e.is_locked()) && started.elapsed() < patience => {
                if let Some(waiting) = waiting.take() {
                    waiting(&e);
                }
                tokio::time::sleep(BUSY_PAUSE).await;
            }
            done => return done,
        }
    }
}

/// The byte of `<path>.lock` the daemon lock is on (`Store::lock_daemon`).
const DAEMON_LOCK_BYTE: i64 = 1;
/// The byte of `<path>.lock` the alert delivery lock is on (`Store::lock_delivery`).
const DELIVERY_LOCK_BYTE: i64 = 2;

/// `<db>.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Sets `mode` on the database and its `-wal`/`-shm` files, where they exist.
fn restrict_modes(db: &Path, mode: u32) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        match std::fs::metadata(&p) {
            Ok(meta) if meta.permissions().mode() & 0o777 != mode => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

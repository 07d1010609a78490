//! What `export` and `asof` read to write their files: a database copied whole with
//! `VACUUM INTO`, and a view's rows for CSV, inside one read transaction. Where the
//! files go (temporary files, the atomic rename, the staging directory) is `export`'s.

use std::path::Path;

use rusqlite::Connection;

use super::rows::{QueryError, Rows};
use super::{AsOfState, Store};

/// A database `export` writes out: the mirror ([`Store::source`]) or the organization
/// at a moment ([`AsOfState::source`]).
#[derive(Clone, Copy)]
pub struct Source<'c> {
    conn: &'c Connection,
}

impl Store {
    /// The mirror, as a database to export.
    pub fn source(&self) -> Source<'_> {
        Source { conn: &self.conn }
    }
}

impl AsOfState {
    /// The in-memory database of the moment, as a database to export.
    pub fn source(&self) -> Source<'_> {
        Source {
            conn: self.connection(),
        }
    }
}

impl<'c> Source<'c> {
    /// Copies the `main` database to a new file at `path` (`VACUUM INTO`: one committed
    /// state, in rollback-journal mode, compacted).
    pub fn export_to(&self, path: &Path) -> Result<(), QueryError> {
        // SQLite takes the file name as text; the caller has checked it is UTF-8.
        let name = path.to_string_lossy();
        self.conn.execute("VACUUM INTO ?1", [name.as_ref()])?;
        Ok(())
    }

    /// Runs `f` inside one read transaction, so that every view it reads shows one
    /// state. An error beginning or ending it wins over `f`'s result.
    pub fn in_one_read<T>(&self, f: impl FnOnce() -> T) -> Result<T, QueryError> {
        self.conn.execute_batch("BEGIN")?;
        let result = f();
        self.conn.execute_batch("COMMIT")?;
        Ok(result)
    }

    /// Every row of `view` (a name from our own lists, never user input), ordered by its
    /// first two columns so that exports diff cleanly.
    pub fn view_rows(&self, view: &str) -> Result<Rows<'c>, QueryError> {
        let stmt = self
            .conn
            .prepare(&format!("SELECT * FROM {view} ORDER BY 1, 2"))?;
        Ok(Rows::new(stmt))
    }
}

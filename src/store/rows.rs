//! Rows read for other modules to render (a CSV file, the demo's tables): a prepared
//! query's column names, then each row's values as SQLite gave them, streamed, so a
//! large view is never held in memory. What the values become is the caller's business.

use rusqlite::types::ValueRef;
use rusqlite::Statement;

/// A query of the mirror that failed; shows SQLite's own message, so the caller's
/// context (which view, which file) comes first.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct QueryError(#[from] rusqlite::Error);

/// One value of a row, borrowed from SQLite, as it stores it (text and blobs as bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl<'a> From<ValueRef<'a>> for Field<'a> {
    fn from(v: ValueRef<'a>) -> Field<'a> {
        match v {
            ValueRef::Null => Field::Null,
            ValueRef::Integer(i) => Field::Integer(i),
            ValueRef::Real(f) => Field::Real(f),
            ValueRef::Text(t) => Field::Text(t),
            ValueRef::Blob(b) => Field::Blob(b),
        }
    }
}

/// A prepared query, not yet run: its column names, then its rows one at a time.
pub struct Rows<'c> {
    stmt: Statement<'c>,
    columns: Vec<String>,
}

/// One row of [`Rows`].
pub struct Row<'r, 's> {
    row: &'r rusqlite::Row<'s>,
}

impl<'c> Rows<'c> {
    pub(super) fn new(stmt: Statement<'c>) -> Rows<'c> {
        let columns = stmt
            .column_names()
            .into_iter()
            .map(str::to_string)
            .collect();
        Rows { stmt, columns }
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Runs the query and calls `f` with each row in turn; stops at the first error,
    /// SQLite's (through `sql_error`) or `f`'s.
    pub fn for_each<E>(
        &mut self,
        sql_error: impl Fn(QueryError) -> E,
        mut f: impl FnMut(&Row<'_, '_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rows = self.stmt.query([]).map_err(|e| sql_error(QueryError(e)))?;
        while let Some(row) = rows.next().map_err(|e| sql_error(QueryError(e)))? {
            f(&Row { row })?;
        }
        Ok(())
    }
}

impl Row<'_, '_> {
    /// The value of column `i` (from 0).
    pub fn get(&self, i: usize) -> Result<Field<'_>, QueryError> {
        Ok(Field::from(self.row.get_ref(i)?))
    }
}

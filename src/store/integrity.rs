//! Damage: SQLite's own checks of the file. `check` runs the full `integrity_check`
//! (every b-tree, and every index against its table); every run starts with a
//! `quick_check` of the whole file (the same minus the index-to-table comparison: 1.6 s
//! wall, 0.4 s CPU at 100k users, see README "Trust") and writes nothing on top of damage.

use super::{Store, StoreError};

/// At most this many problems are reported (SQLite's own default is 100).
const PROBLEMS_SHOWN: i64 = 10;

/// How to recover, said with every report of damage.
pub const RECOVERY: &str = "recover by restoring the newest `orgmirror export` copy to \
     database.path, or by moving the file aside and syncing into a new one (`orgmirror sync` \
     rebuilds the current state; the history starts anew), keeping the damaged file for what \
     can still be read (`sqlite3 FILE .recover`)";

impl Store {
    /// SQLite's `integrity_check` (`full`) or `quick_check`: the problems found, none when
    /// the file is sound. A check that cannot even read the file is a problem too.
    pub fn integrity_problems(&self, full: bool) -> Result<Vec<String>, StoreError> {
        let pragma = if full {
            "integrity_check"
        } else {
            "quick_check"
        };
        let mut stmt = match self
            .conn
            .prepare(&format!("PRAGMA {pragma}({PROBLEMS_SHOWN})"))
        {
            Ok(stmt) => stmt,
            Err(e) => return Ok(vec![e.to_string()]),
        };
        let rows = stmt.query_map([], |r| r.get::<_, String>(0));
        let mut problems = Vec::new();
        match rows {
            Ok(rows) => {
                for row in rows {
                    match row {
                        Ok(line) if line == "ok" => {}
                        Ok(line) => problems.push(line),
                        Err(e) => problems.push(e.to_string()),
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
        Ok(problems)
    }

    /// Refuses to write on top of damage: a run calls this before it writes anything.
    pub fn refuse_damage(&self) -> Result<(), StoreError> {
        let problems = self.integrity_problems(false)?;
        if problems.is_empty() {
            return Ok(());
        }
        Err(StoreError::Damaged {
            path: self.path.clone(),
            problems: problems.join("; "),
        })
    }
}

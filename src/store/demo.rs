//! What `orgmirror demo` asks of its mirror: whether a database is a demo's (so it may be
//! replaced), a run's events, and the three questions it answers offline, shown to the
//! reader as SQL before their answers.

use super::rows::{QueryError, Rows};
use super::Store;

/// One of the demo's questions and the SQL that answers it (shown as it runs).
pub struct DemoQuestion {
    pub question: &'static str,
    sql: String,
}

impl DemoQuestion {
    /// The SQL, with its values written in, as the reader could paste it into `sqlite3`.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// One event of a run: `(entity, entity_id, op, changed_fields)`.
pub type DemoEvent = (String, String, String, Option<String>);

/// The demo's three questions about the group it renamed and the person whose rate
/// changed, `as_of_first` being the time of the first sync.
pub fn demo_questions(group: i64, as_of_first: &str, rate_user: i64) -> [DemoQuestion; 3] {
    [
        DemoQuestion {
            question: "Who is in the renamed group now?",
            sql: format!(
                "SELECT g.name AS group_name, u.name, u.email
             FROM group_members_current m
             JOIN groups_current g USING (group_id)
             JOIN users_current u USING (organization_user_id)
             WHERE m.group_id = {group} ORDER BY u.name LIMIT 8"
            ),
        },
        DemoQuestion {
            question: "Who was in it as of the first sync?",
            sql: format!(
                "SELECT h.organization_user_id, u.name
             FROM group_membership_history h LEFT JOIN users_current u USING (organization_user_id)
             WHERE h.group_id = {group}
               AND h.valid_from <= '{as_of_first}' AND (h.valid_to IS NULL OR h.valid_to > '{as_of_first}')
             ORDER BY h.organization_user_id LIMIT 8"
            ),
        },
        DemoQuestion {
            question: "How did one person's rate change?",
            sql: format!(
                "SELECT organization_user_id, hourly_rate, currency, valid_from, valid_to
             FROM rate_history WHERE organization_user_id = {rate_user} ORDER BY valid_from"
            ),
        },
    ]
}

impl Store {
    /// Whether this is a demo's database: no users yet, or the fake organization's first
    /// user (`user_id` with `email`), which a real organization does not have.
    pub fn is_demo_database(&self, user_id: i64, email: &str) -> Result<bool, QueryError> {
        Ok(self.conn.query_row(
            include_str!("queries/is_demo_database.sql").trim_end(),
            rusqlite::params![user_id, email],
            |r| r.get(0),
        )?)
    }

    /// The events of run `run_id`, in order.
    pub fn demo_events(&self, run_id: i64) -> Result<Vec<DemoEvent>, QueryError> {
        let mut stmt = self
            .conn
            .prepare(include_str!("queries/demo_events.sql").trim_end())?;
        let rows = stmt.query_map([run_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The rows that answer `question`.
    pub fn answer(&self, question: &DemoQuestion) -> Result<Rows<'_>, QueryError> {
        Ok(Rows::new(self.conn.prepare(&question.sql)?))
    }
}

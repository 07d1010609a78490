//! Names to ids, as the group commands resolve what a person typed: a member's e-mail,
//! a workspace's name, a group's name. Each returns every id that matches, in order, so
//! the caller can tell none from one from several.

use super::rows::QueryError;
use super::Store;

impl Store {
    /// The current users with this e-mail, compared case-insensitively.
    pub fn users_with_email(&self, email: &str) -> Result<Vec<i64>, QueryError> {
        self.ids_of(
            "SELECT organization_user_id FROM users_current WHERE lower(email) = lower(?1) ORDER BY 1",
            email,
        )
    }

    /// The workspaces of exactly this name.
    pub fn workspaces_named(&self, name: &str) -> Result<Vec<i64>, QueryError> {
        self.ids_of(
            "SELECT workspace_id FROM workspaces WHERE name = ?1 ORDER BY 1",
            name,
        )
    }

    /// The current groups of exactly this name.
    pub fn groups_named(&self, name: &str) -> Result<Vec<i64>, QueryError> {
        self.ids_of(
            "SELECT group_id FROM groups_current WHERE name = ?1 ORDER BY 1",
            name,
        )
    }

    fn ids_of(&self, sql: &str, value: &str) -> Result<Vec<i64>, QueryError> {
        let mut stmt = self.conn.prepare(sql)?;
        let ids = stmt
            .query_map([value], |r| r.get::<_, i64>(0))
            .and_then(|rows| rows.collect::<Result<Vec<i64>, _>>())?;
        Ok(ids)
    }
}

//! The organization's audit log as the mirror keeps it: what the client reads from the
//! API and the store writes (defined here, so that `store` need not depend on the client).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Entity, EntityKey};

/// One event, as the mirror stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub created_at: DateTime<Utc>,
    pub entity_type: String,
    /// As text: the spec gives a number, but nothing is lost if it is not one.
    pub entity_id: Option<String>,
    pub action: String,
    /// The actor, in the log's own id space.
    pub user_id: Option<i64>,
    pub workspace_id: Option<i64>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    /// String values by key.
    pub meta_data: Option<String>,
    pub meta: Map<String, Value>,
    /// The event as received, canonical JSON, its time in the mirror's form.
    pub raw_json: String,
    /// SHA-256 of `raw_json`: the same event pulled twice is stored once.
    pub dedup_key: String,
}

/// A person the log names.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditActor {
    pub user_id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub user_account_id: Option<i64>,
}

/// An audit time as the mirror stores it: UTC, six fractional digits, `Z`, so that text
/// order is time order.
pub fn audit_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl AuditEvent {
    /// The mirror's entity the event is about, as `change_events.entity_id` names it; None
    /// for a type the mirror does not track. The spec enumerates no types: these are the
    /// names the log is known to use for the entities the mirror tracks.
    pub fn subject(&self) -> Option<(Entity, String)> {
        let id = || self.entity_id.as_deref()?.trim().parse::<i64>().ok();
        let meta = |key: &str| -> Option<i64> {
            match self.meta.get(key)? {
                Value::String(s) => s.trim().parse().ok(),
                v => v.as_i64(),
            }
        };
        let key = match self.entity_type.as_str() {
            "organization_user" | "organization_users" | "user" => {
                EntityKey::new(Entity::User, id()?)
            }
            "group" | "groups" | "team" => EntityKey::new(Entity::Group, id()?),
            "role" | "roles" => EntityKey::new(Entity::Role, id()?),
            "group_user" | "user_group" | "group_member" => {
                EntityKey::membership(meta("group_id")?, meta("organization_user_id")?)
            }
            "workspace_user_rate" | "user_rate" | "rate" => {
                EntityKey::new(Entity::UserRate, meta("organization_user_id")?)
            }
            "custom_field_value" => EntityKey::custom_field(
                meta("organization_user_id")?,
                meta("custom_field_id").or_else(id)?,
            ),
            _ => return None,
        };
        Some((key.entity, key.entity_id()))
    }
}

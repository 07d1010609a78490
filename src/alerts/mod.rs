//! Alert rules (`[[alert]]`): which change events matter, and the JSON a target gets.
//!
//! A run queues the events its rules match in the alert outbox in its own transaction
//! (`store::OutboxRules`, implemented here by [`Rules`]); [`deliver`] sends them after the
//! commit, at least once, and never again once a target accepted one. `cli` holds the
//! `alerts test` and `alerts replay` commands.

pub mod cli;
pub mod deliver;
mod error;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{validate_base_url, Config, ConfigError, Seconds};
use crate::snapshot::Entity;
use crate::store::{EventRow, OutboxRules};

pub use cli::AlertsCmd;
pub use error::AlertsError;

/// One `[[alert]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Unique; names the rule in the outbox, `status` and the commands.
    pub name: String,
    /// `user`, `group`, `group_membership`, `role` or `user_rate`.
    pub entity: String,
    /// `insert`, `update`, `delete`; empty: any.
    #[serde(default)]
    pub op: Vec<String>,
    /// Any of these fields changed (an insert or a delete changes every field it has).
    #[serde(default)]
    pub fields: Vec<String>,
    /// Equality on the new version's fields.
    #[serde(default)]
    pub after: BTreeMap<String, Value>,
    /// |after - before| / |before| at least this, per numeric field (updates only).
    #[serde(default)]
    pub min_relative_change: BTreeMap<String, f64>,
    /// POST the event here (`https://`, plain `http://` only to loopback).
    pub webhook: Option<String>,
    /// Or run this program with the event on stdin.
    pub command: Option<Vec<String>>,
    /// The name of the HMAC secret, never the secret: read from
    /// `ORGMIRROR_SECRET_<NAME>` (upper case, `-` as `_`) or `$CREDENTIALS_DIRECTORY/<name>`.
    pub secret_credential: Option<String>,
    /// The longest one attempt may take.
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    /// The first retry's delay; doubled per failed attempt, with jitter, up to `max_backoff`.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: Seconds,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Seconds,
}

fn default_timeout() -> Seconds {
    Seconds(10.0)
}
fn default_initial_backoff() -> Seconds {
    Seconds(30.0)
}
fn default_max_backoff() -> Seconds {
    Seconds(3600.0)
}

const OPS: [&str; 3] = ["insert", "update", "delete"];

/// The top-level fields of each entity's JSON (`before`/`after`), as `entity_history`
/// stores them (checked against the records by a test).
pub fn entity_fields(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::User => &[
            "id",
            "user_account_id",
            "user_id",
            "name",
            "email",
            "active",
            "admin",
            "owner",
            "joined",
            "invite_sent",
            "2fa_enabled",
            "can_edit_personal_details",
            "account_locked_at",
            "created_at",
            "updated_at",
            "deleted_at",
            "organization_id",
            "working_hours",
            "permissions",
            "tags",
            "workspaces",
        ],
        Entity::UserRate => &[
            "organization_user_id",
            "hourly_rate",
            "currency",
            "start_at",
            "end_at",
            "workspace_id",
            "workspace_rate_id",
            "workspace_user_rate_id",
        ],
        Entity::Group => &[
            "id",
            "name",
            "emoji",
            "organization_id",
            "created_at",
            "updated_at",
            "deleted_at",
            "workspaces",
            "ghosts",
        ],
        Entity::GroupMembership => &[
            "group_id",
            "organization_user_id",
            "user_group_id",
            "user_account_id",
            "focus_role_id",
            "track_role_id",
            "work_role_id",
            "created_at",
            "updated_at",
            "deleted_at",
        ],
        Entity::Role => &[
            "role_id",
            "code",
            "name",
            "type",
            "privilege_level",
            "entity",
            "description",
            "organization_id",
            "permissions",
        ],
    }
}

/// Checks every rule; the error names the rule and the key.
pub fn validate_rules(rules: &[AlertRule]) -> Result<(), ConfigError> {
    let mut names = BTreeSet::new();
    for rule in rules {
        let bad = |key: &'static str, message: String| ConfigError::InvalidAlert {
            rule: rule.name.clone(),
            key,
            message,
        };
        if rule.name.trim().is_empty() || rule.name.chars().any(char::is_control) {
            return Err(bad(
                "name",
                "must be set, without control characters".into(),
            ));
        }
        if !names.insert(rule.name.as_str()) {
            return Err(bad("name", "another [[alert]] has this name".into()));
        }
        let Some(entity) = Entity::parse(&rule.entity) else {
            return Err(bad(
                "entity",
                format!(
                    "`{}` is not one of user, group, group_membership, role, user_rate",
                    rule.entity
                ),
            ));
        };
        if let Some(op) = rule.op.iter().find(|op| !OPS.contains(&op.as_str())) {
            return Err(bad(
                "op",
                format!("`{op}` is not one of insert, update, delete"),
            ));
        }
        let known = entity_fields(entity);
        let unknown = |keys: Vec<&String>| {
            keys.into_iter()
                .find(|k| !known.contains(&k.as_str()))
                .cloned()
        };
        let field_list = || known.join(", ");
        for (key, found) in [
            ("fields", unknown(rule.fields.iter().collect())),
            ("after", unknown(rule.after.keys().collect())),
            (
                "min_relative_change",
                unknown(rule.min_relative_change.keys().collect()),
            ),
        ] {
            if let Some(f) = found {
                return Err(bad(
                    key,
                    format!(
                        "`{f}` is not a field of {} (fields: {})",
                        rule.entity,
                        field_list()
                    ),
                ));
            }
        }
        if let Some((f, v)) = rule
            .min_relative_change
            .iter()
            .find(|(_, v)| !(v.is_finite() && **v > 0.0))
        {
            return Err(bad(
                "min_relative_change",
                format!("{f} = {v}: must be a positive share, e.g. 0.2 for 20%"),
            ));
        }
        match (&rule.webhook, &rule.command) {
            (Some(url), None) => {
                validate_base_url(url).map_err(|m| bad("webhook", m))?;
            }
            (None, Some(cmd)) => {
                if cmd.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err(bad(
                        "command",
                        "must name a program, e.g. [\"/usr/local/bin/notify\", \"--x\"]".into(),
                    ));
                }
            }
            (Some(_), Some(_)) => {
                return Err(bad(
                    "webhook",
                    "set either webhook or command, not both".into(),
                ))
            }
            (None, None) => {
                return Err(bad(
                    "webhook",
                    "set a webhook URL or a command to deliver to".into(),
                ))
            }
        }
        if let Some(name) = &rule.secret_credential {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(bad(
                    "secret_credential",
                    format!("`{name}` must be a credential name (letters, digits, '_', '-'; at most 64), not the secret itself"),
                ));
            }
        }
        if rule.timeout.0 <= 0.0 {
            return Err(bad("timeout", "must be greater than zero".into()));
        }
        if rule.initial_backoff.0 <= 0.0 {
            return Err(bad("initial_backoff", "must be greater than zero".into()));
        }
        if rule.max_backoff.0 < rule.initial_backoff.0 {
            return Err(bad(
                "max_backoff",
                "must be at least initial_backoff".into(),
            ));
        }
    }
    Ok(())
}

impl AlertRule {
    /// Whether `event` is one this rule alerts on.
    pub fn matches(&self, event: &EventRow) -> bool {
        if event.entity != self.entity {
            return false;
        }
        if !self.op.is_empty() && !self.op.contains(&event.op) {
            return false;
        }
        let field = |version: &Option<Value>, f: &str| {
            version
                .as_ref()
                .and_then(|v| v.get(f))
                .filter(|v| !v.is_null())
                .cloned()
        };
        if !self.fields.is_empty() {
            let changed = |f: &String| match event.op.as_str() {
                "update" => event.changed_fields.contains(f),
                "insert" => field(&event.after, f).is_some(),
                _ => field(&event.before, f).is_some(),
            };
            if !self.fields.iter().any(changed) {
                return false;
            }
        }
        for (f, want) in &self.after {
            match field(&event.after, f) {
                Some(got) if same_value(&got, want) => {}
                _ => return false,
            }
        }
        for (f, min) in &self.min_relative_change {
            let number = |v: &Option<Value>| field(v, f).and_then(|x| x.as_f64());
            let (Some(before), Some(after)) = (number(&event.before), number(&event.after)) else {
                return false;
            };
            if relative_change(before, after) < *min {
                return false;
            }
        }
        true
    }
}

/// Equal JSON values, numbers compared as numbers (`1` is `1.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// |after - before| / |before|; any change from 0 is infinite.
pub fn relative_change(before: f64, after: f64) -> f64 {
    if before == after {
        0.0
    } else if before == 0.0 {
        f64::INFINITY
    } else {
        ((after - before) / before).abs()
    }
}

/// The configured rules, as the store's outbox sees them.
#[derive(Debug, Clone)]
pub struct Rules(pub Vec<AlertRule>);

/// The rules of `config` for [`crate::store::Store::set_outbox_rules`]; `None` without any.
pub fn outbox_rules(config: &Config) -> Option<Arc<dyn OutboxRules>> {
    (!config.alert.is_empty())
        .then(|| Arc::new(Rules(config.alert.clone())) as Arc<dyn OutboxRules>)
}

impl OutboxRules for Rules {
    fn entities(&self) -> Vec<&'static str> {
        let set: BTreeSet<&'static str> = self
            .0
            .iter()
            .filter_map(|r| Entity::parse(&r.entity).map(Entity::as_str))
            .collect();
        set.into_iter().collect()
    }

    fn matching(&self, event: &EventRow) -> Vec<String> {
        self.0
            .iter()
            .filter(|r| r.matches(event))
            .map(|r| r.name.clone())
            .collect()
    }

    fn payload(&self, rule: &str, event: &EventRow) -> String {
        payload(rule, event).to_string()
    }
}

/// The JSON a target gets for `event` under `rule` (README, "Alerts").
pub fn payload(rule: &str, event: &EventRow) -> Value {
    json!({
        "event_id": event.event_id,
        "rule": rule,
        "sync_run_id": event.sync_run_id,
        "observed_at": event.observed_at,
        "entity": event.entity,
        "entity_id": event.entity_id,
        "op": event.op,
        "changed_fields": event.changed_fields,
        "before": event.before,
        "after": event.after,
        "people": event.people.iter().map(|(id, name)| json!({"organization_user_id": id, "name": name})).collect::<Vec<_>>(),
        "groups": event.groups.iter().map(|(id, name)| json!({"group_id": id, "name": name})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{GroupRecord, MembershipRecord, RateRecord, RoleRecord, UserRecord};

    fn rule(toml_text: &str) -> Result<Vec<AlertRule>, String> {
        let text = format!("[api]\norganization_id = 1\nworkspace_id = 2\n{toml_text}");
        Config::parse(&text)
            .map(|c| c.alert)
            .map_err(|e| e.to_string())
    }

    fn event(entity: &str, op: &str, before: Value, after: Value, changed: &[&str]) -> EventRow {
        EventRow {
            event_id: 7,
            entity: entity.into(),
            entity_id: "1".into(),
            op: op.into(),
            changed_fields: changed.iter().map(|s| s.to_string()).collect(),
            before: (!before.is_null()).then_some(before),
            after: (!after.is_null()).then_some(after),
            ..Default::default()
        }
    }

    #[test]
    fn the_issues_rules_match_what_they_say() {
        let rules = rule(
            r#"
[[alert]]
name = "new admin"
entity = "user"
op = ["update", "insert"]
fields = ["admin", "owner"]
after = { admin = true }
webhook = "https://hooks.example.com/orgmirror"

[[alert]]
name = "rate moved"
entity = "user_rate"
min_relative_change = { hourly_rate = 0.2 }
command = ["/usr/local/bin/page-finance"]
"#,
        )
        .unwrap();
        let (admin, rate) = (&rules[0], &rules[1]);
        let made_admin = event(
            "user",
            "update",
            json!({"admin": false}),
            json!({"admin": true}),
            &["admin"],
        );
        assert!(admin.matches(&made_admin));
        let unmade = event(
            "user",
            "update",
            json!({"admin": true}),
            json!({"admin": false}),
            &["admin"],
        );
        assert!(!admin.matches(&unmade));
        let renamed = event(
            "user",
            "update",
            json!({"admin": true, "name": "a"}),
            json!({"admin": true, "name": "b"}),
            &["name"],
        );
        assert!(!admin.matches(&renamed), "admin did not change");
        let new_admin = event("user", "insert", Value::Null, json!({"admin": true}), &[]);
        assert!(admin.matches(&new_admin));
        let gone = event("user", "delete", json!({"admin": true}), Value::Null, &[]);
        assert!(!admin.matches(&gone), "op");

        let cut = |b: f64, a: f64| {
            event(
                "user_rate",
                "update",
                json!({"hourly_rate": b}),
                json!({"hourly_rate": a}),
                &["hourly_rate"],
            )
        };
        assert!(rate.matches(&cut(90.0, 60.0)), "cut by a third");
        assert!(rate.matches(&cut(100.0, 120.0)), "exactly 20%");
        assert!(!rate.matches(&cut(100.0, 110.0)));
        assert!(rate.matches(&cut(0.0, 10.0)));
        assert!(!rate.matches(&event(
            "user_rate",
            "insert",
            Value::Null,
            json!({"hourly_rate": 5}),
            &[]
        )));
        assert!(!rate.matches(&made_admin), "entity");
    }

    #[test]
    fn bad_rules_are_named_with_their_key() {
        let cases = [
            ("entity = \"person\"\nwebhook = \"https://x.example\"", "entity"),
            ("entity = \"user\"\nop = [\"upsert\"]\nwebhook = \"https://x.example\"", "op"),
            ("entity = \"user\"\nfields = [\"admn\"]\nwebhook = \"https://x.example\"", "fields"),
            ("entity = \"user\"\nafter = { admn = true }\nwebhook = \"https://x.example\"", "after"),
            ("entity = \"user_rate\"\nmin_relative_change = { hourly_rate = -1 }\ncommand = [\"/x\"]", "min_relative_change"),
            ("entity = \"user\"\nwebhook = \"http://hooks.example.com/x\"", "webhook"),
            ("entity = \"user\"", "webhook"),
            ("entity = \"user\"\nwebhook = \"https://x.example\"\ncommand = [\"/x\"]", "webhook"),
            ("entity = \"user\"\ncommand = []", "command"),
            ("entity = \"user\"\ncommand = [\"/x\"]\nsecret_credential = \"s3cr3t value!\"", "secret_credential"),
            ("entity = \"user\"\ncommand = [\"/x\"]\ntimeout = 0", "timeout"),
            ("entity = \"user\"\ncommand = [\"/x\"]\ninitial_backoff = \"1m\"\nmax_backoff = \"1s\"", "max_backoff"),
        ];
        for (body, key) in cases {
            let err = rule(&format!("[[alert]]\nname = \"r1\"\n{body}\n")).unwrap_err();
            assert!(
                err.contains("\"r1\"") && err.contains(&format!(": {key}:")),
                "{key}: {err}"
            );
        }
        let twice = "[[alert]]\nname = \"a\"\nentity = \"user\"\ncommand = [\"/x\"]\n";
        let err = rule(&format!("{twice}{twice}")).unwrap_err();
        assert!(err.contains("another [[alert]]"), "{err}");
        let err =
            rule("[[alert]]\nname = \"a\"\nentity = \"user\"\ncommand = [\"/x\"]\nwhen = 1\n")
                .unwrap_err();
        assert!(err.contains("when"), "{err}");
        assert!(rule(
            "[[alert]]\nname = \"a\"\nentity = \"user\"\nwebhook = \"http://127.0.0.1:9/h\"\n"
        )
        .is_ok());
    }

    #[test]
    fn the_example_configs_rules_parse_once_uncommented() {
        let example = include_str!("../../config/orgmirror.example.toml");
        let start = example
            .find("# [[alert]]")
            .expect("the example shows [[alert]]");
        // The alert tables, up to the next table of another kind.
        let rules: String = example[start..]
            .lines()
            .take_while(|l| !l.starts_with("# [") || l.starts_with("# [[alert]]"))
            .map(|l| {
                l.strip_prefix("# ")
                    .or_else(|| l.strip_prefix('#'))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = rule(&rules).unwrap_or_else(|e| panic!("{e}\n{rules}"));
        let names: Vec<&str> = parsed.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["new admin", "rate moved"]);
        assert_eq!(parsed[0].secret_credential.as_deref(), Some("alert_hook"));
    }

    #[test]
    fn the_field_lists_are_those_the_records_store() {
        let keys = |v: Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let sorted = |e: Entity| {
            let mut k: Vec<String> = entity_fields(e).iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        };
        let user: UserRecord =
            serde_json::from_value(json!({"id": 1, "tags": [], "workspaces": []})).unwrap();
        assert_eq!(
            keys(serde_json::to_value(user).unwrap()),
            sorted(Entity::User)
        );
        let rate: RateRecord = serde_json::from_value(json!({"organization_user_id": 1})).unwrap();
        assert_eq!(
            keys(serde_json::to_value(rate).unwrap()),
            sorted(Entity::UserRate)
        );
        let group: GroupRecord =
            serde_json::from_value(json!({"id": 1, "workspaces": [], "ghosts": []})).unwrap();
        assert_eq!(
            keys(serde_json::to_value(group).unwrap()),
            sorted(Entity::Group)
        );
        let m: MembershipRecord =
            serde_json::from_value(json!({"group_id": 1, "organization_user_id": 2})).unwrap();
        assert_eq!(
            keys(serde_json::to_value(m).unwrap()),
            sorted(Entity::GroupMembership)
        );
        let role: RoleRecord =
            serde_json::from_value(json!({"role_id": 1, "permissions": []})).unwrap();
        assert_eq!(
            keys(serde_json::to_value(role).unwrap()),
            sorted(Entity::Role)
        );
    }
}

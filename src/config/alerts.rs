//! `[[alert]]` rules as the file writes them, and their validation (each error names the
//! rule and the key). A rule watches changes (`entity`) or the mirror's own health (`on`),
//! never both. Matching events and delivering them is `crate::alerts`'s.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use super::{validate_base_url, ConfigError, Seconds};

/// One `[[alert]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Unique; names the rule in the outbox, `status` and the commands.
    pub name: String,
    /// `user`, `group`, `group_membership`, `role`, `user_rate` or `user_custom_field`: a change rule.
    pub entity: Option<String>,
    /// `failing`, `stale`, `recovered`: a health rule (instead of `entity`).
    #[serde(default)]
    pub on: Vec<String>,
    /// A health rule's `failing`: sent when this many full runs in a row failed.
    pub failing_after: Option<u32>,
    /// A health rule's `stale`: sent when the last success is older than this (default:
    /// the threshold the mirror records with each run, three schedule intervals).
    pub stale_after: Option<Seconds>,
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
    /// Not a change these people made (their name or e-mail in the audit log): a team's
    /// own automation does not page it.
    #[serde(default)]
    pub actor_not: Vec<String>,
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

/// What a health rule may be `on`.
pub const HEALTH_KINDS: [&str; 3] = ["failing", "stale", "recovered"];

/// `failing_after` when a health rule does not set it.
pub const DEFAULT_FAILING_AFTER: u32 = 3;

impl AlertRule {
    /// Whether it watches the mirror's health (`on`) rather than changes (`entity`).
    pub fn is_health(&self) -> bool {
        !self.on.is_empty()
    }

    /// How many failed runs in a row make it send `failing`.
    pub fn failing_after(&self) -> u32 {
        self.failing_after.unwrap_or(DEFAULT_FAILING_AFTER)
    }
}

/// The top-level fields of each entity's JSON (`before`/`after`), as `entity_history`
/// stores them, by the entity's name in `change_events.entity`; `None` for a name that is
/// no entity's (checked against the records and `Entity::as_str` by a test).
pub fn entity_fields(entity: &str) -> Option<&'static [&'static str]> {
    match entity {
        "user" => Some(&[
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
        ]),
        "user_rate" => Some(&[
            "organization_user_id",
            "hourly_rate",
            "currency",
            "start_at",
            "end_at",
            "workspace_id",
            "workspace_rate_id",
            "workspace_user_rate_id",
        ]),
        "group" => Some(&[
            "id",
            "name",
            "emoji",
            "organization_id",
            "created_at",
            "updated_at",
            "deleted_at",
            "workspaces",
            "ghosts",
        ]),
        "group_membership" => Some(&[
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
        ]),
        "role" => Some(&[
            "role_id",
            "code",
            "name",
            "type",
            "privilege_level",
            "entity",
            "description",
            "organization_id",
            "permissions",
            "require_group",
            "default_for_levels",
        ]),
        "user_custom_field" => Some(&[
            "organization_user_id",
            "custom_field_id",
            "custom_field_name",
            "field_type",
            "value",
            "selected_options",
        ]),
        _ => None,
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
        let entity = match (&rule.entity, rule.on.is_empty()) {
            (Some(_), false) => {
                return Err(bad(
                    "on",
                    "set either entity (an alert on changes) or on (an alert on the mirror's health), not both".into(),
                ))
            }
            (None, true) => {
                return Err(bad(
                    "entity",
                    "set entity (an alert on changes: user, group, group_membership, role, user_rate) \
                     or on (an alert on the mirror's health: failing, stale, recovered)"
                        .into(),
                ))
            }
            (Some(entity), true) => entity,
            (None, false) => {
                validate_health(rule, &bad)?;
                validate_target(rule, &bad)?;
                continue;
            }
        };
        if rule.failing_after.is_some() || rule.stale_after.is_some() {
            let key = if rule.failing_after.is_some() {
                "failing_after"
            } else {
                "stale_after"
            };
            return Err(bad(
                key,
                "only a health rule (on = [...]) has it; a rule on changes (entity) does not"
                    .into(),
            ));
        }
        let Some(known) = entity_fields(entity) else {
            return Err(bad(
                "entity",
                format!(
                    "`{entity}` is not one of user, group, group_membership, role, user_rate, user_custom_field"
                ),
            ));
        };
        if let Some(op) = rule.op.iter().find(|op| !OPS.contains(&op.as_str())) {
            return Err(bad(
                "op",
                format!("`{op}` is not one of insert, update, delete"),
            ));
        }
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
                        "`{f}` is not a field of {entity} (fields: {})",
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
        validate_target(rule, &bad)?;
    }
    Ok(())
}

type Bad<'a> = dyn Fn(&'static str, String) -> ConfigError + 'a;

/// A health rule's keys: `on` from [`HEALTH_KINDS`], no change filters, bounds that can fire.
fn validate_health(rule: &AlertRule, bad: &Bad<'_>) -> Result<(), ConfigError> {
    let mut seen = BTreeSet::new();
    for kind in &rule.on {
        if !HEALTH_KINDS.contains(&kind.as_str()) {
            return Err(bad(
                "on",
                format!("`{kind}` is not one of failing, stale, recovered"),
            ));
        }
        if !seen.insert(kind.as_str()) {
            return Err(bad("on", format!("`{kind}` is listed twice")));
        }
    }
    if seen.contains("recovered") && !seen.contains("failing") && !seen.contains("stale") {
        return Err(bad(
            "on",
            "`recovered` says that what a `failing` or `stale` alert of the rule reported has ended: add one of them".into(),
        ));
    }
    for (key, set) in [
        ("op", !rule.op.is_empty()),
        ("fields", !rule.fields.is_empty()),
        ("after", !rule.after.is_empty()),
        ("min_relative_change", !rule.min_relative_change.is_empty()),
        ("actor_not", !rule.actor_not.is_empty()),
    ] {
        if set {
            return Err(bad(
                key,
                "a health rule (on = [...]) has no change filters; put them in a rule with entity"
                    .into(),
            ));
        }
    }
    if rule.failing_after == Some(0) {
        return Err(bad("failing_after", "must be at least 1".into()));
    }
    if rule.stale_after.is_some_and(|s| s.0 < 1.0) {
        return Err(bad("stale_after", "must be at least 1 second".into()));
    }
    Ok(())
}

/// Where the rule's alerts go, and how each attempt is bounded.
fn validate_target(rule: &AlertRule, bad: &Bad<'_>) -> Result<(), ConfigError> {
    match (&rule.webhook, &rule.command) {
        (Some(url), None) => {
            validate_base_url(url).map_err(|e| bad("webhook", e.to_string()))?;
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
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::{
        Entity, GroupRecord, MembershipRecord, RateRecord, RoleRecord, UserCustomFieldRecord,
        UserRecord,
    };
    use serde_json::json;

    /// `[[alert]]` tables parsed and validated in a config of their own.
    pub(crate) fn rule(toml_text: &str) -> Result<Vec<AlertRule>, String> {
        let text = format!("[api]\norganization_id = 1\nworkspace_id = 2\n{toml_text}");
        Config::parse(&text)
            .map(|c| c.alert)
            .map_err(|e| e.to_string())
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
    fn a_rule_watches_changes_or_health_and_each_error_names_the_rule_and_key() {
        let hook = "webhook = \"https://x.example\"";
        let cases = [
            (
                format!("entity = \"user\"\non = [\"failing\"]\n{hook}"),
                "on",
                "not both",
            ),
            (hook.to_string(), "entity", "or on"),
            (
                format!("on = [\"down\"]\n{hook}"),
                "on",
                "`down` is not one of failing, stale, recovered",
            ),
            (
                format!("on = [\"stale\", \"stale\"]\n{hook}"),
                "on",
                "listed twice",
            ),
            (
                format!("on = [\"recovered\"]\n{hook}"),
                "on",
                "add one of them",
            ),
            (
                format!("on = [\"failing\"]\nfields = [\"admin\"]\n{hook}"),
                "fields",
                "no change filters",
            ),
            (
                format!("on = [\"failing\"]\nop = [\"update\"]\n{hook}"),
                "op",
                "no change filters",
            ),
            (
                format!("on = [\"failing\"]\nfailing_after = 0\n{hook}"),
                "failing_after",
                "at least 1",
            ),
            (
                format!("on = [\"stale\"]\nstale_after = \"500ms\"\n{hook}"),
                "stale_after",
                "at least 1 second",
            ),
            (
                format!("entity = \"user\"\nfailing_after = 3\n{hook}"),
                "failing_after",
                "only a health rule",
            ),
            (
                format!("entity = \"user\"\nstale_after = \"6h\"\n{hook}"),
                "stale_after",
                "only a health rule",
            ),
            (
                "on = [\"failing\"]".to_string(),
                "webhook",
                "set a webhook URL or a command",
            ),
        ];
        for (body, key, words) in cases {
            let err = rule(&format!("[[alert]]\nname = \"mirror down\"\n{body}\n")).unwrap_err();
            assert!(
                err.contains("[[alert]] \"mirror down\"")
                    && err.contains(&format!(": {key}: "))
                    && err.contains(words),
                "{key}: {err}"
            );
        }
        let ok = rule(&format!(
            "[[alert]]\nname = \"mirror down\"\non = [\"failing\", \"stale\", \"recovered\"]\nstale_after = \"6h\"\n{hook}\n"
        ))
        .unwrap();
        assert!(ok[0].is_health());
        assert_eq!(ok[0].failing_after(), DEFAULT_FAILING_AFTER);
        assert_eq!(ok[0].stale_after.map(|s| s.0), Some(6.0 * 3600.0));
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
        assert_eq!(names, ["new admin", "rate moved", "mirror down"]);
        assert!(parsed[2].is_health() && parsed[2].failing_after() == 3);
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
            // Every entity has its list under its `change_events.entity` name.
            let fields = entity_fields(e.as_str()).expect("a field list per entity");
            let mut k: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
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
        // With the published fields, which a version leaves out when the API did not send them.
        let role: RoleRecord = serde_json::from_value(json!({"role_id": 1, "permissions": [],
            "require_group": true, "default_for_levels": ["workspace"]}))
        .unwrap();
        assert_eq!(
            keys(serde_json::to_value(role).unwrap()),
            sorted(Entity::Role)
        );
        let value: UserCustomFieldRecord = serde_json::from_value(
            json!({"organization_user_id": 1, "custom_field_id": 2, "selected_options": []}),
        )
        .unwrap();
        assert_eq!(
            keys(serde_json::to_value(value).unwrap()),
            sorted(Entity::UserCustomField)
        );
        assert_eq!(entity_fields("person"), None);
    }
}

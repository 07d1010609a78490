//! Alert rules (`[[alert]]`, the type and its validation in `config::alerts`): which change
//! events a rule matches, and the JSON a target gets; [`health`] for the rules on the
//! mirror's own health.
//!
//! A run queues the events its rules match in the alert outbox in its own transaction
//! (`store::OutboxRules`, implemented here by [`Rules`]), and the health check the health
//! alerts the mirror's state calls for; [`deliver`] sends them after the commit, at least
//! once, and never again once a target accepted one. `cli` holds the `alerts test` and
//! `alerts replay` commands.

pub mod cli;
pub mod deliver;
mod error;
pub mod health;
pub mod watch;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::config::{AlertRule, Config};
use crate::model::Entity;
use crate::store::{EventRow, HealthAlert, HealthState, OutboxRules};

pub use cli::AlertsCmd;
pub use error::AlertsError;

impl AlertRule {
    /// Whether `event` is one this rule alerts on.
    pub fn matches(&self, event: &EventRow) -> bool {
        if self.entity.as_deref() != Some(event.entity.as_str()) {
            return false;
        }
        if !self.op.is_empty() && !self.op.contains(&event.op) {
            return false;
        }
        // An update of bookkeeping alone matches only a rule that names it.
        let bookkeeping = |f: &String| f == "updated_at";
        if event.op == "update"
            && event.changed_fields.iter().all(bookkeeping)
            && !self.fields.iter().any(bookkeeping)
        {
            return false;
        }
        if let Some(actor) = &event.actor {
            let is = |who: &String| {
                [&actor.name, &actor.email]
                    .into_iter()
                    .flatten()
                    .any(|known| known.trim().eq_ignore_ascii_case(who.trim()))
            };
            if self.actor_not.iter().any(is) {
                return false;
            }
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

/// The configured rules, as the store's outbox sees them, with where health alerts come from.
#[derive(Debug, Clone)]
pub struct Rules {
    pub rules: Vec<AlertRule>,
    pub origin: health::Origin,
}

impl Rules {
    /// The rules of `config`.
    pub fn of(config: &Config) -> Rules {
        Rules {
            rules: config.alert.clone(),
            origin: health::Origin::new(&config.database.path, config.api.organization_id),
        }
    }
}

/// The rules of `config` for [`crate::store::Store::set_outbox_rules`]; `None` without any.
pub fn outbox_rules(config: &Config) -> Option<Arc<dyn OutboxRules>> {
    (!config.alert.is_empty()).then(|| Arc::new(Rules::of(config)) as Arc<dyn OutboxRules>)
}

impl OutboxRules for Rules {
    fn entities(&self) -> Vec<&'static str> {
        let set: BTreeSet<&'static str> = self
            .rules
            .iter()
            .filter_map(|r| Entity::parse(r.entity.as_deref()?).map(Entity::as_str))
            .collect();
        set.into_iter().collect()
    }

    fn matching(&self, event: &EventRow) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.matches(event))
            .map(|r| r.name.clone())
            .collect()
    }

    fn payload(&self, rule: &str, event: &EventRow) -> String {
        payload(rule, event).to_string()
    }

    fn watches_health(&self) -> bool {
        self.rules.iter().any(AlertRule::is_health)
    }

    fn health_due(&self, state: &HealthState) -> Vec<HealthAlert> {
        health::due(&self.rules, state, &self.origin)
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
        "actor": event.actor.as_ref().map(|a| json!({"user_id": a.user_id, "name": a.name, "email": a.email})),
        "changed_at": event.changed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerts::tests::rule;

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
    fn bookkeeping_alone_matches_only_a_rule_naming_it_and_actor_not_spares_automation() {
        let rules = rule(
            r#"
[[alert]]
name = "any user update"
entity = "user"
actor_not = ["ops-bot@example.com", "Deploy Bot"]
command = ["/x"]

[[alert]]
name = "bookkeeping"
entity = "user"
fields = ["updated_at"]
command = ["/x"]
"#,
        )
        .unwrap();
        let (any, named) = (&rules[0], &rules[1]);
        let touched = event(
            "user",
            "update",
            json!({"updated_at": "a"}),
            json!({"updated_at": "b"}),
            &["updated_at"],
        );
        assert!(!any.matches(&touched));
        assert!(named.matches(&touched));
        let mut renamed = event(
            "user",
            "update",
            json!({"name": "a"}),
            json!({"name": "b"}),
            &["name", "updated_at"],
        );
        assert!(any.matches(&renamed), "no actor known");
        for (name, email, matches) in [
            (Some("Alice"), Some("alice@example.com"), true),
            (Some("Ops"), Some("OPS-BOT@example.com"), false),
            (Some("deploy bot"), None, false),
        ] {
            renamed.actor = Some(crate::store::Actor {
                user_id: 9,
                name: name.map(str::to_string),
                email: email.map(str::to_string),
            });
            assert_eq!(any.matches(&renamed), matches, "{name:?} {email:?}");
        }
        let body = payload("any user update", &renamed);
        assert_eq!(body["actor"]["user_id"], 9);
        assert_eq!(body["changed_at"], Value::Null);
        assert!(rule("[[alert]]\nname = \"h\"\non = [\"failing\"]\nactor_not = [\"x\"]\ncommand = [\"/x\"]\n").is_err());
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
}

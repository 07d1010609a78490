//! Why an `alerts` command, or the delivery it sets up, could not start or finish.

use super::deliver::SendError;
use crate::config::ConfigError;
use crate::store::StoreError;

/// The alerts' own failures, and those of the layers below them.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// A rule that cannot be delivered as written (a missing secret, say).
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client webhooks are sent with could not be built.
    #[error("cannot build the webhook client: {0}")]
    Client(#[source] reqwest::Error),
    /// A rule the command names is not in the config.
    #[error("no [[alert]] rule named {name:?}{}", known_rules(.known))]
    UnknownRule { name: String, known: Vec<String> },
    /// `alerts replay` without a name and without rules on changes.
    #[error("the config has no [[alert]] rules on changes (entity) to replay")]
    NoRules,
    /// `alerts replay` of a health rule: there are no past events for it.
    #[error("alert {name:?} is on the mirror's health (on = [...]): replay queues past change events, which only a rule with entity matches")]
    HealthReplay { name: String },
    /// The target did not accept `alerts test`'s sample event.
    #[error("alert {name:?}: the sample event was not accepted: {reason}")]
    NotAccepted { name: String, reason: SendError },
}

fn known_rules(known: &[String]) -> String {
    if known.is_empty() {
        ": the config has no [[alert]] rules".to_string()
    } else {
        format!(" (the config has: {})", known.join(", "))
    }
}

//! The sentences a person reads for one change event: `Ada Lovelace joined Data Team 📊`,
//! `Grace Hopper's rate 80.00 → 95.00 EUR`, with names as they were when it was observed.

use serde_json::Value;

use crate::store::ChangeRow;

/// Fields every update of a record changes along with the ones that matter.
const BOOKKEEPING: &[&str] = &["updated_at"];

/// The sentences that say what one event changed.
pub fn sentences(row: &ChangeRow) -> Vec<String> {
    // An update of bookkeeping alone is recorded, and is no sentence.
    if row.op == "update"
        && !row.changed_fields.is_empty()
        && row
            .changed_fields
            .iter()
            .all(|f| BOOKKEEPING.contains(&f.as_str()))
    {
        return Vec::new();
    }
    match row.entity.as_str() {
        "user" => user_sentences(row),
        "group" => group_sentences(row),
        "group_membership" => membership_sentences(row),
        "user_rate" => rate_sentences(row),
        "user_custom_field" => custom_field_sentences(row),
        "role" => role_sentences(row),
        other => vec![format!("{other} {} {}", row.entity_id, past(&row.op))],
    }
}

fn past(op: &str) -> &str {
    match op {
        "insert" => "added",
        "delete" => "removed",
        _ => "changed",
    }
}

pub(super) fn text_of(v: Option<&Value>, key: &str) -> Option<String> {
    match v?.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The version that speaks for the entity: the new one, or the last one for a delete.
pub(super) fn latest(row: &ChangeRow) -> Option<&Value> {
    row.after.as_ref().or(row.before.as_ref())
}

/// A person by name, or by id when the name is unknown.
fn person(name: Option<String>, id: &str) -> String {
    name.filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("user {id}"))
}

fn possessive(name: &str) -> String {
    if name.ends_with('s') {
        format!("{name}'")
    } else {
        format!("{name}'s")
    }
}

/// Changed fields that say something, bookkeeping left out (unless it is all there is).
fn meaningful(row: &ChangeRow) -> Vec<&str> {
    let fields: Vec<&str> = row.changed_fields.iter().map(String::as_str).collect();
    let kept: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| !BOOKKEEPING.contains(f))
        .collect();
    if kept.is_empty() {
        fields
    } else {
        kept
    }
}

fn flag(v: Option<&Value>, key: &str) -> Option<bool> {
    v?.get(key)?.as_bool()
}

fn user_sentences(row: &ChangeRow) -> Vec<String> {
    let id = &row.entity_id;
    let (before, after) = (row.before.as_ref(), row.after.as_ref());
    let name = person(text_of(latest(row), "name"), id);
    match row.op.as_str() {
        "insert" => return vec![format!("{name} joined the organization")],
        "delete" => return vec![format!("{name} left the organization")],
        _ => {}
    }
    let old_name = person(text_of(before, "name"), id);
    let fields = meaningful(row);
    // A user's permissions follow from being an admin or an owner: that change says it.
    let role_changed = fields.iter().any(|f| matches!(*f, "admin" | "owner"));
    let mut out = Vec::new();
    let mut other = Vec::new();
    for field in fields {
        let now = flag(after, field);
        match field {
            "name" => out.push(format!("{old_name} is now called {name}")),
            "admin" if now == Some(true) => out.push(format!("{name} became an admin")),
            "admin" => out.push(format!("{name} is no longer an admin")),
            "owner" if now == Some(true) => out.push(format!("{name} became an owner")),
            "owner" => out.push(format!("{name} is no longer an owner")),
            "active" if now == Some(false) => out.push(format!("{name} was deactivated")),
            "active" => out.push(format!("{name} was reactivated")),
            "joined" if now == Some(true) => out.push(format!("{name} accepted the invitation")),
            "email" | "working_hours" => {
                let label = if field == "email" {
                    "email"
                } else {
                    "working hours"
                };
                let show = |v| text_of(v, field).unwrap_or_else(|| "none".to_string());
                out.push(format!(
                    "{} {label} {} → {}",
                    possessive(&name),
                    show(before),
                    show(after)
                ));
            }
            "account_locked_at" if text_of(after, field).is_some() => {
                out.push(format!("{name}'s account was locked"))
            }
            "account_locked_at" => out.push(format!("{name}'s account was unlocked")),
            "permissions" if role_changed => {}
            "permissions" => out.extend(permission_changes(&name, before, after)),
            other_field => other.push(other_field),
        }
    }
    if !other.is_empty() {
        out.push(format!(
            "{} {} changed",
            possessive(&name),
            other.join(", ")
        ));
    }
    out
}

/// A user's `permissions` object (`{"view_rates": true, …}`) before and after: what they
/// can do now and no longer.
fn permission_changes(name: &str, before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let granted = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v.get("permissions"))
            .and_then(|p| p.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let mut keys: Vec<&String> = [before, after]
        .iter()
        .filter_map(|v| v.and_then(|v| v.get("permissions"))?.as_object())
        .flat_map(|o| o.keys())
        .collect();
    keys.sort();
    keys.dedup();
    let (mut gained, mut lost) = (Vec::new(), Vec::new());
    for key in keys {
        match (granted(before, key), granted(after, key)) {
            (false, true) => gained.push(key.as_str()),
            (true, false) => lost.push(key.as_str()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if !gained.is_empty() {
        out.push(format!("{name} may now {}", gained.join(", ")));
    }
    if !lost.is_empty() {
        out.push(format!("{name} may no longer {}", lost.join(", ")));
    }
    if out.is_empty() {
        out.push(format!("{}'s permissions changed", name));
    }
    out
}

/// A group as people know it: its name, then its emoji.
fn group_label(name: Option<String>, emoji: Option<String>, id: &str) -> String {
    let name = name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("group {id}"));
    match emoji.filter(|e| !e.trim().is_empty()) {
        Some(e) => format!("{name} {e}"),
        None => name,
    }
}

fn group_sentences(row: &ChangeRow) -> Vec<String> {
    let id = &row.entity_id;
    let (before, after) = (row.before.as_ref(), row.after.as_ref());
    let name = text_of(latest(row), "name").unwrap_or_else(|| id.clone());
    let label = group_label(
        text_of(latest(row), "name"),
        text_of(latest(row), "emoji"),
        id,
    );
    match row.op.as_str() {
        "insert" => return vec![format!("group {label} was created")],
        "delete" => return vec![format!("group {label} was deleted")],
        _ => {}
    }
    let old_name = text_of(before, "name").unwrap_or_else(|| id.clone());
    let mut out = Vec::new();
    let mut other = Vec::new();
    for field in meaningful(row) {
        match field {
            "name" => out.push(format!("group {old_name} renamed to {name}")),
            "emoji" => {
                let show = |v| text_of(v, "emoji").unwrap_or_else(|| "none".to_string());
                out.push(format!(
                    "group {name}'s emoji {} → {}",
                    show(before),
                    show(after)
                ));
            }
            other_field => other.push(other_field),
        }
    }
    if !other.is_empty() {
        out.push(format!("group {name}'s {} changed", other.join(", ")));
    }
    out
}

fn membership_sentences(row: &ChangeRow) -> Vec<String> {
    let (group_id, user_id) = row
        .entity_id
        .split_once(':')
        .unwrap_or((row.entity_id.as_str(), ""));
    let who = person(row.user_name.clone(), user_id);
    let group = group_label(row.group_name.clone(), row.group_emoji.clone(), group_id);
    match row.op.as_str() {
        "insert" => vec![format!("{who} joined {group}")],
        "delete" => vec![format!("{who} left {group}")],
        _ => vec![format!(
            "{} membership of {group} changed ({})",
            possessive(&who),
            meaningful(row).join(", ")
        )],
    }
}

/// `80.00 EUR`, or `none`.
fn rate_text(v: Option<&Value>) -> (String, Option<String>) {
    let rate = v
        .and_then(|v| v.get("hourly_rate"))
        .and_then(Value::as_f64)
        .map_or_else(|| "none".to_string(), |r| format!("{r:.2}"));
    (rate, text_of(v, "currency"))
}

fn rate_sentences(row: &ChangeRow) -> Vec<String> {
    let who = possessive(&person(row.user_name.clone(), &row.entity_id));
    let (before, after) = (row.before.as_ref(), row.after.as_ref());
    let with_currency = |(rate, currency): (String, Option<String>)| match currency {
        Some(c) if rate != "none" => format!("{rate} {c}"),
        _ => rate,
    };
    match row.op.as_str() {
        "insert" => vec![format!(
            "{who} rate set to {}",
            with_currency(rate_text(after))
        )],
        "delete" => vec![format!(
            "{who} rate removed (was {})",
            with_currency(rate_text(before))
        )],
        _ => {
            let fields = meaningful(row);
            if !fields.contains(&"hourly_rate") && !fields.contains(&"currency") {
                return vec![format!("{who} rate's {} changed", fields.join(", "))];
            }
            let (old, new) = (rate_text(before), rate_text(after));
            if old.1 == new.1 {
                let currency = new.1.map(|c| format!(" {c}")).unwrap_or_default();
                vec![format!("{who} rate {} → {}{currency}", old.0, new.0)]
            } else {
                vec![format!(
                    "{who} rate {} → {}",
                    with_currency(old),
                    with_currency(new)
                )]
            }
        }
    }
}

/// A custom field value as a person reads it: the names of the options selected, else the
/// value, else `none`.
fn custom_field_value_text(v: Option<&Value>) -> String {
    let options: Vec<String> = v
        .and_then(|v| v.get("selected_options"))
        .and_then(Value::as_array)
        .map(|os| {
            os.iter()
                .filter_map(|o| text_of(Some(o), "option_name"))
                .collect()
        })
        .unwrap_or_default();
    if !options.is_empty() {
        return options.join(", ");
    }
    text_of(v, "value").unwrap_or_else(|| "none".to_string())
}

fn custom_field_sentences(row: &ChangeRow) -> Vec<String> {
    let (user_id, field_id) = row
        .entity_id
        .split_once(':')
        .unwrap_or((row.entity_id.as_str(), ""));
    let who = possessive(&person(row.user_name.clone(), user_id));
    let (before, after) = (row.before.as_ref(), row.after.as_ref());
    let field = text_of(latest(row), "custom_field_name")
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("custom field {field_id}"));
    match row.op.as_str() {
        "insert" => {
            return vec![format!(
                "{who} {field} set to {}",
                custom_field_value_text(after)
            )]
        }
        "delete" => {
            return vec![format!(
                "{who} {field} cleared (was {})",
                custom_field_value_text(before)
            )]
        }
        _ => {}
    }
    let mut out = Vec::new();
    let mut other = Vec::new();
    let fields = meaningful(row);
    if fields.contains(&"custom_field_name") {
        let old = text_of(before, "custom_field_name").unwrap_or_else(|| field_id.to_string());
        out.push(format!("{who} custom field {old} is now called {field}"));
    }
    let (old, new) = (
        custom_field_value_text(before),
        custom_field_value_text(after),
    );
    if old != new {
        out.push(format!("{who} {field} changed from {old} to {new}"));
    }
    for f in fields {
        match f {
            "custom_field_name" | "value" | "selected_options" => {}
            other_field => other.push(other_field),
        }
    }
    if !other.is_empty() || out.is_empty() {
        let what = if other.is_empty() {
            "value".to_string()
        } else {
            other.join(", ")
        };
        out.push(format!("{who} {field}'s {what} changed"));
    }
    out
}

/// Whether the API began (`Some(true)`) or stopped (`Some(false)`) sending `field`: the
/// mirror leaves out of a version the fields the API did not send.
fn sent_change(before: Option<&Value>, after: Option<&Value>, field: &str) -> Option<bool> {
    let has = |v: Option<&Value>| v.and_then(|v| v.get(field)).is_some();
    match (has(before), has(after)) {
        (false, true) => Some(true),
        (true, false) => Some(false),
        _ => None,
    }
}

/// The `category_id`s of a role's permissions, `None` for a permission without one.
fn permission_categories(v: Option<&Value>) -> Vec<Option<Value>> {
    v.and_then(|v| v.get("permissions"))
        .and_then(Value::as_array)
        .map(|ps| ps.iter().map(|p| p.get("category_id").cloned()).collect())
        .unwrap_or_default()
}

fn permission_names(v: Option<&Value>) -> Vec<String> {
    v.and_then(|v| v.get("permissions"))
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(|p| text_of(Some(p), "name")).collect())
        .unwrap_or_default()
}

fn role_sentences(row: &ChangeRow) -> Vec<String> {
    let id = &row.entity_id;
    let (before, after) = (row.before.as_ref(), row.after.as_ref());
    let name = text_of(latest(row), "name").unwrap_or_else(|| id.clone());
    match row.op.as_str() {
        "insert" => return vec![format!("role {name} was added")],
        "delete" => return vec![format!("role {name} was removed")],
        _ => {}
    }
    let mut out = Vec::new();
    let mut other = Vec::new();
    let (mut now_sent, mut no_longer_sent) = (Vec::new(), Vec::new());
    for field in meaningful(row) {
        // Only these are left out of a version when the API does not send them.
        let optional = matches!(field, "require_group" | "default_for_levels");
        match sent_change(before, after, field).filter(|_| optional) {
            Some(true) => {
                now_sent.push(field);
                continue;
            }
            Some(false) => {
                no_longer_sent.push(field);
                continue;
            }
            None => {}
        }
        match field {
            "name" => out.push(format!(
                "role {} renamed to {name}",
                text_of(before, "name").unwrap_or_else(|| id.clone())
            )),
            "require_group" if flag(after, field) == Some(true) => {
                out.push(format!("role {name} is now conferred only through a group"))
            }
            "require_group" => out.push(format!(
                "role {name} is no longer conferred only through a group"
            )),
            "default_for_levels" => {
                match after.and_then(|a| a.get(field)).and_then(Value::as_array) {
                    Some(levels) if !levels.is_empty() => {
                        let levels: Vec<String> = levels
                            .iter()
                            .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_string))
                            .collect();
                        out.push(format!(
                            "role {name} is now the default at {}",
                            levels.join(", ")
                        ))
                    }
                    _ => out.push(format!("role {name} is no longer a default role")),
                }
            }
            "permissions" => {
                let (old, new) = (permission_names(before), permission_names(after));
                let gained: Vec<&str> = new
                    .iter()
                    .filter(|p| !old.contains(p))
                    .map(String::as_str)
                    .collect();
                let lost: Vec<&str> = old
                    .iter()
                    .filter(|p| !new.contains(p))
                    .map(String::as_str)
                    .collect();
                if !gained.is_empty() {
                    out.push(format!("role {name} gained {}", gained.join(", ")));
                }
                if !lost.is_empty() {
                    out.push(format!("role {name} lost {}", lost.join(", ")));
                }
                let (old_categories, new_categories) =
                    (permission_categories(before), permission_categories(after));
                if gained.is_empty() && lost.is_empty() {
                    if old_categories.iter().all(Option::is_none)
                        && new_categories.iter().any(Option::is_some)
                    {
                        out.push(format!(
                            "role {name}: the API now sends its permissions' categories"
                        ));
                    } else if old_categories != new_categories {
                        out.push(format!("role {name}'s permission categories changed"));
                    } else {
                        out.push(format!("role {name}'s permissions changed"));
                    }
                }
            }
            other_field => other.push(other_field),
        }
    }
    if !other.is_empty() {
        out.push(format!("role {name}'s {} changed", other.join(", ")));
    }
    if !now_sent.is_empty() {
        out.push(format!(
            "role {name}: the API now sends {}",
            now_sent.join(", ")
        ));
    }
    if !no_longer_sent.is_empty() {
        out.push(format!(
            "role {name}: the API no longer sends {}",
            no_longer_sent.join(", ")
        ));
    }
    out
}

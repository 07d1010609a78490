//! `orgmirror changes [--since 7d|TIME] [--until TIME] [--entity user,group,...] [--json]`:
//! the change feed as sentences a person reads, grouped by run, newest last, with names as
//! they were when each change was observed; `--json` is one object per event for scripts.

use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::clock::format_utc;
use crate::commands::{load_config, Exit};
use crate::config::ConfigError;
use crate::model::Entity;
use crate::store::{ChangeFilter, ChangeRow, Store, StoreError};

/// Fields every update of a record changes along with the ones that matter.
const BOOKKEEPING: &[&str] = &["updated_at"];

/// Why `changes` could not show the feed.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// The config (loaded as every command loads it).
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("--entity: unknown entity `{name}` (give some of {known})")]
    UnknownEntity { name: String, known: String },
    /// The shell found no such pager: the feed went nowhere.
    #[error("the pager ($PAGER) could not be run; fix PAGER, or pipe the output (`orgmirror changes | cat`)")]
    Pager,
}

/// `orgmirror changes`.
pub fn run(
    config_path: Option<&Path>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    entities: &[String],
    json_lines: bool,
) -> Result<Exit, ChangesError> {
    let mut known = Vec::new();
    for name in entities.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        if Entity::parse(name).is_none() {
            let all: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
            return Err(ChangesError::UnknownEntity {
                name: name.to_string(),
                known: all.join(", "),
            });
        }
        known.push(name.to_string());
    }
    let (_, config) = load_config(config_path)?;
    let store = Store::open_read_only(&config.database.path)?;
    let filter = ChangeFilter {
        since: since.map(format_utc),
        until: until.map(format_utc),
        entities: known,
    };
    let (sink, pager) = output();
    let mut feed = Feed::new(sink, json_lines);
    let mut written = Ok(());
    let read = store.changes(&filter, |row| {
        written = feed.push(row);
        written.is_ok()
    });
    drop(store);
    // A reader gone (a pager quit, a closed pipe) is not a failure of the command. The
    // feed is closed either way, so that the pager ends before this process does.
    let _ = written.and_then(|()| feed.finish().map(drop));
    if let Some(mut pager) = pager {
        match pager.wait() {
            // 127/126: the shell found no such pager (the feed went nowhere): say so.
            Ok(status) if matches!(status.code(), Some(126 | 127)) => {
                return Err(ChangesError::Pager);
            }
            _ => {}
        }
    }
    read?;
    Ok(Exit::Ok)
}

/// The feed as text: a header per run, then a line per sentence, `YYYY-MM-DD HH:MM  …`.
pub fn render(rows: &[ChangeRow]) -> String {
    let mut feed = Feed::new(Vec::new(), false);
    for row in rows {
        // Writing to memory does not fail.
        let _ = feed.push(row.clone());
    }
    feed.finish()
        .map(|out| String::from_utf8_lossy(&out).into_owned())
        .unwrap_or_default()
}

/// The feed written as the events arrive: a run at a time for text (its sentences are
/// ordered within it; the first run only counted), an event at a time for `--json`.
pub struct Feed<W: Write> {
    out: W,
    json: bool,
    run: Option<RunBlock>,
    wrote: bool,
}

/// The events of one run so far.
struct RunBlock {
    head: ChangeRow,
    events: usize,
    /// Every event but those of the first run (which is told as counts).
    rows: Vec<ChangeRow>,
    counts: BTreeMap<String, usize>,
}

impl<W: Write> Feed<W> {
    pub fn new(out: W, json: bool) -> Feed<W> {
        Feed {
            out,
            json,
            run: None,
            wrote: false,
        }
    }

    /// Takes the next event (in `event_id` order).
    pub fn push(&mut self, row: ChangeRow) -> std::io::Result<()> {
        if self.json {
            self.wrote = true;
            return writeln!(self.out, "{}", json_line(&row));
        }
        if self
            .run
            .as_ref()
            .is_some_and(|r| r.head.sync_run_id != row.sync_run_id)
        {
            self.flush_run()?;
        }
        let block = self.run.get_or_insert_with(|| RunBlock {
            head: row.clone(),
            events: 0,
            rows: Vec::new(),
            counts: BTreeMap::new(),
        });
        block.events += 1;
        if row.first_run {
            *block.counts.entry(row.entity.clone()).or_default() += 1;
        } else {
            block.rows.push(row);
        }
        Ok(())
    }

    fn flush_run(&mut self) -> std::io::Result<()> {
        let Some(mut block) = self.run.take() else {
            return Ok(());
        };
        if self.wrote {
            writeln!(self.out)?;
        }
        self.wrote = true;
        let head = &block.head;
        let plural = if block.events == 1 { "" } else { "s" };
        writeln!(
            self.out,
            "run {} ({} sync, {}): {} change{plural}",
            head.sync_run_id, head.run_kind, head.observed_at, block.events
        )?;
        let at = minute(&head.observed_at);
        if head.first_run {
            writeln!(self.out, "{at}  {}", first_sync_summary(&block.counts))?;
        }
        // People first, then groups, memberships, rates, custom fields and roles; each in
        // event order.
        block
            .rows
            .sort_by_key(|r| (entity_rank(&r.entity), r.event_id));
        for row in &block.rows {
            for sentence in sentences(row) {
                writeln!(self.out, "{at}  {sentence}")?;
            }
        }
        Ok(())
    }

    /// Writes what is left; returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.flush_run()?;
        if !self.wrote && !self.json {
            writeln!(self.out, "no changes in that range")?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn entity_rank(entity: &str) -> u8 {
    match entity {
        "user" => 0,
        "group" => 1,
        "group_membership" => 2,
        "user_rate" => 3,
        "user_custom_field" => 4,
        _ => 5,
    }
}

/// `2026-12-01T10:30:59Z` as `2026-12-01 10:30`.
fn minute(observed_at: &str) -> String {
    match (observed_at.get(..10), observed_at.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time}"),
        _ => observed_at.to_string(),
    }
}

/// The first run found the organization: one line of counts rather than one per entity.
fn first_sync_summary(counts: &BTreeMap<String, usize>) -> String {
    let count = |entity: &str| counts.get(entity).copied().unwrap_or(0);
    let parts: Vec<String> = [
        ("user", "people"),
        ("group", "groups"),
        ("group_membership", "memberships"),
        ("user_rate", "rates"),
        ("user_custom_field", "custom field values"),
        ("role", "roles"),
    ]
    .iter()
    .filter(|(entity, _)| count(entity) > 0)
    .map(|(entity, label)| format!("{} {label}", count(entity)))
    .collect();
    format!(
        "first sync: the organization as found, {}",
        parts.join(", ")
    )
}

/// The sentences that say what one event changed.
pub fn sentences(row: &ChangeRow) -> Vec<String> {
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

fn text_of(v: Option<&Value>, key: &str) -> Option<String> {
    match v?.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The version that speaks for the entity: the new one, or the last one for a delete.
fn latest(row: &ChangeRow) -> Option<&Value> {
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

/// One JSON object: the event, the names resolved as of it, and its sentences.
pub fn json_line(row: &ChangeRow) -> String {
    json!({
        "event_id": row.event_id,
        "sync_run_id": row.sync_run_id,
        "run_kind": row.run_kind,
        "first_run": row.first_run,
        "observed_at": row.observed_at,
        "entity": row.entity,
        "entity_id": row.entity_id,
        "op": row.op,
        "changed_fields": row.changed_fields,
        "user_name": row.user_name.clone().or_else(|| {
            (row.entity == "user").then(|| text_of(latest(row), "name")).flatten()
        }),
        "group_name": row.group_name.clone().or_else(|| {
            (row.entity == "group").then(|| text_of(latest(row), "name")).flatten()
        }),
        "group_emoji": row.group_emoji.clone().or_else(|| {
            (row.entity == "group").then(|| text_of(latest(row), "emoji")).flatten()
        }),
        "sentences": sentences(row),
        "before": row.before,
        "after": row.after,
    })
    .to_string()
}

/// Where the feed goes: the stdin of `$PAGER` (else `less`, if there is one) when stdout is a
/// terminal, else stdout; and the pager to wait for.
fn output() -> (Box<dyn Write>, Option<Child>) {
    if std::io::stdout().is_terminal() {
        let pager = std::env::var("PAGER")
            .ok()
            .filter(|p| !p.trim().is_empty())
            .or_else(|| on_path("less").then(|| "less".to_string()));
        let Some(pager) = pager else {
            return (Box::new(BufWriter::new(std::io::stdout())), None);
        };
        let spawned = Command::new("sh")
            .args(["-c", &pager])
            .env(
                "LESS",
                std::env::var("LESS").unwrap_or_else(|_| "FRX".into()),
            )
            .stdin(Stdio::piped())
            .spawn();
        if let Ok(mut child) = spawned {
            if let Some(input) = child.stdin.take() {
                return (Box::new(BufWriter::new(input)), Some(child));
            }
        }
    }
    (Box::new(BufWriter::new(std::io::stdout())), None)
}

/// Whether `program` is a file in one of `$PATH`'s directories.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(entity: &str, op: &str, fields: &[&str], before: Value, after: Value) -> ChangeRow {
        ChangeRow {
            event_id: 1,
            sync_run_id: 2,
            run_kind: "full".into(),
            first_run: false,
            observed_at: "2026-12-01T10:30:59Z".into(),
            entity: entity.into(),
            entity_id: "100042".into(),
            op: op.into(),
            changed_fields: fields.iter().map(|f| f.to_string()).collect(),
            before: (!before.is_null()).then_some(before),
            after: (!after.is_null()).then_some(after),
            user_name: None,
            group_name: None,
            group_emoji: None,
        }
    }

    #[test]
    fn the_issues_sentences() {
        let mut joined = row(
            "group_membership",
            "insert",
            &[],
            Value::Null,
            json!({"group_id": 5, "organization_user_id": 7}),
        );
        joined.entity_id = "5:7".into();
        joined.user_name = Some("Ada Lovelace".into());
        joined.group_name = Some("Data Team".into());
        joined.group_emoji = Some("📊".into());
        assert_eq!(sentences(&joined), ["Ada Lovelace joined Data Team 📊"]);
        assert_eq!(
            render(std::slice::from_ref(&joined)),
            "run 2 (full sync, 2026-12-01T10:30:59Z): 1 change\n\
             2026-12-01 10:30  Ada Lovelace joined Data Team 📊\n"
        );

        let mut rate = row(
            "user_rate",
            "update",
            &["hourly_rate", "start_at"],
            json!({"hourly_rate": 80.0, "currency": "EUR"}),
            json!({"hourly_rate": 95.0, "currency": "EUR"}),
        );
        rate.user_name = Some("Grace Hopper".into());
        assert_eq!(sentences(&rate), ["Grace Hopper's rate 80.00 → 95.00 EUR"]);

        let renamed = row(
            "group",
            "update",
            &["name", "updated_at"],
            json!({"name": "Ops", "emoji": "⚙"}),
            json!({"name": "Platform", "emoji": "⚙"}),
        );
        assert_eq!(sentences(&renamed), ["group Ops renamed to Platform"]);

        let admin = row(
            "user",
            "update",
            &["admin", "updated_at"],
            json!({"name": "Alan Turing", "admin": false}),
            json!({"name": "Alan Turing", "admin": true}),
        );
        assert_eq!(sentences(&admin), ["Alan Turing became an admin"]);
        let perms = row(
            "user",
            "update",
            &["permissions"],
            json!({"name": "Alan", "permissions": {"view_rates": false, "manage_users": true}}),
            json!({"name": "Alan", "permissions": {"view_rates": true, "manage_users": false}}),
        );
        assert_eq!(
            sentences(&perms),
            ["Alan may now view_rates", "Alan may no longer manage_users"]
        );
    }

    #[test]
    fn every_entity_and_op_has_a_sentence() {
        let user = json!({"name": "Kai", "email": "k@x", "active": true});
        let group = json!({"name": "Ops", "emoji": null});
        let role = json!({"name": "Admin", "permissions": [{"name": "edit_rates"}]});
        let role2 = json!({"name": "Admin", "permissions": [{"name": "view_rates"}]});
        let rate = json!({"hourly_rate": 50.0, "currency": "USD"});
        let cases = [
            (
                row("user", "insert", &[], Value::Null, user.clone()),
                "Kai joined the organization",
            ),
            (
                row("user", "delete", &[], user.clone(), Value::Null),
                "Kai left the organization",
            ),
            (
                row(
                    "user",
                    "update",
                    &["updated_at"],
                    user.clone(),
                    user.clone(),
                ),
                "Kai's updated_at changed",
            ),
            (
                row("group", "insert", &[], Value::Null, group.clone()),
                "group Ops was created",
            ),
            (
                row("group", "delete", &[], group.clone(), Value::Null),
                "group Ops was deleted",
            ),
            (
                ChangeRow {
                    entity_id: "5:7".into(),
                    ..row("group_membership", "delete", &[], json!({}), Value::Null)
                },
                "user 7 left group 5",
            ),
            (
                row("user_rate", "insert", &[], Value::Null, rate.clone()),
                "user 100042's rate set to 50.00 USD",
            ),
            (
                row("user_rate", "delete", &[], rate.clone(), Value::Null),
                "user 100042's rate removed (was 50.00 USD)",
            ),
            (
                row("role", "insert", &[], Value::Null, role.clone()),
                "role Admin was added",
            ),
            (
                row("role", "delete", &[], role.clone(), Value::Null),
                "role Admin was removed",
            ),
            (
                row("role", "update", &["permissions"], role.clone(), role2),
                "role Admin gained view_rates",
            ),
        ];
        for (r, expected) in cases {
            let got = sentences(&r);
            assert_eq!(got.first().map(String::as_str), Some(expected), "{got:?}");
        }
    }

    /// Every field an update can change, by entity: the sentences it makes, in full.
    #[test]
    fn every_changed_field_has_its_sentences() {
        let ann = |extra: Value| {
            let mut v =
                json!({"name": "Ann", "admin": false, "permissions": {"view_rates": false}});
            if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
                v.extend(extra.clone());
            }
            v
        };
        let update = |entity: &str, fields: &[&str], before: Value, after: Value| {
            row(entity, "update", fields, before, after)
        };
        let ops = json!({"name": "Ops", "emoji": "⚙", "workspaces": [1]});
        let role = |perms: &[&str]| {
            let perms: Vec<Value> = perms.iter().map(|p| json!({"name": p})).collect();
            json!({"name": "Admin", "permissions": perms, "description": "a"})
        };
        let eur = |r: f64| json!({"hourly_rate": r, "currency": "EUR", "start_at": "x"});
        let cases: Vec<(&str, ChangeRow, Vec<&str>)> = vec![
            (
                "a user renamed",
                update(
                    "user",
                    &["name"],
                    json!({"name": "Ann"}),
                    json!({"name": "Anne"}),
                ),
                vec!["Ann is now called Anne"],
            ),
            (
                "admin taken away",
                update(
                    "user",
                    &["admin"],
                    ann(json!({"admin": true})),
                    ann(json!({})),
                ),
                vec!["Ann is no longer an admin"],
            ),
            (
                "owner given, permissions following from it",
                update(
                    "user",
                    &["owner", "permissions"],
                    ann(json!({"owner": false})),
                    ann(json!({"owner": true, "permissions": {"view_rates": true}})),
                ),
                vec!["Ann became an owner"],
            ),
            (
                "owner taken away",
                update(
                    "user",
                    &["owner"],
                    ann(json!({"owner": true})),
                    ann(json!({"owner": false})),
                ),
                vec!["Ann is no longer an owner"],
            ),
            (
                "deactivated",
                update(
                    "user",
                    &["active"],
                    ann(json!({"active": true})),
                    ann(json!({"active": false})),
                ),
                vec!["Ann was deactivated"],
            ),
            (
                "reactivated",
                update(
                    "user",
                    &["active"],
                    ann(json!({"active": false})),
                    ann(json!({"active": true})),
                ),
                vec!["Ann was reactivated"],
            ),
            (
                "the invitation accepted",
                update(
                    "user",
                    &["joined"],
                    ann(json!({"joined": false})),
                    ann(json!({"joined": true})),
                ),
                vec!["Ann accepted the invitation"],
            ),
            (
                "an email and working hours",
                update(
                    "user",
                    &["email", "working_hours"],
                    ann(json!({"email": "a@x", "working_hours": null})),
                    ann(json!({"email": "ann@x", "working_hours": 8})),
                ),
                vec!["Ann's email a@x → ann@x", "Ann's working hours none → 8"],
            ),
            (
                "an account locked",
                update(
                    "user",
                    &["account_locked_at"],
                    ann(json!({})),
                    ann(json!({"account_locked_at": "t"})),
                ),
                vec!["Ann's account was locked"],
            ),
            (
                "an account unlocked",
                update(
                    "user",
                    &["account_locked_at"],
                    ann(json!({"account_locked_at": "t"})),
                    ann(json!({})),
                ),
                vec!["Ann's account was unlocked"],
            ),
            (
                "permissions the same in other words",
                update(
                    "user",
                    &["permissions"],
                    ann(json!({})),
                    ann(json!({"permissions": {}})),
                ),
                vec!["Ann's permissions changed"],
            ),
            (
                "other fields, of a name ending in s, bookkeeping left out",
                update(
                    "user",
                    &["tags", "rate", "updated_at"],
                    json!({"name": "Jules"}),
                    json!({"name": "Jules"}),
                ),
                vec!["Jules' tags, rate changed"],
            ),
            (
                "a user without a name",
                update("user", &["tags"], json!({}), json!({"name": " "})),
                vec!["user 100042's tags changed"],
            ),
            (
                "a group's emoji and workspaces",
                update(
                    "group",
                    &["emoji", "workspaces"],
                    ops.clone(),
                    json!({"name": "Ops", "workspaces": [2]}),
                ),
                vec![
                    "group Ops's emoji ⚙ → none",
                    "group Ops's workspaces changed",
                ],
            ),
            (
                "a group created with an emoji",
                row("group", "insert", &[], Value::Null, ops.clone()),
                vec!["group Ops ⚙ was created"],
            ),
            (
                "a membership changed, names unknown",
                ChangeRow {
                    entity_id: "5:7".into(),
                    ..update("group_membership", &["track_role_id"], json!({}), json!({}))
                },
                vec!["user 7's membership of group 5 changed (track_role_id)"],
            ),
            (
                "a rate in another currency",
                update(
                    "user_rate",
                    &["hourly_rate", "currency"],
                    eur(80.0),
                    json!({"hourly_rate": 90, "currency": "USD"}),
                ),
                vec!["user 100042's rate 80.00 EUR → 90.00 USD"],
            ),
            (
                "a rate's dates only",
                update("user_rate", &["start_at"], eur(80.0), eur(80.0)),
                vec!["user 100042's rate's start_at changed"],
            ),
            (
                "a rate set where there was none",
                update(
                    "user_rate",
                    &["hourly_rate"],
                    json!({"currency": "EUR"}),
                    eur(80.0),
                ),
                vec!["user 100042's rate none → 80.00 EUR"],
            ),
            (
                "a role renamed, losing a permission, its description changed",
                update(
                    "role",
                    &["name", "permissions", "description"],
                    json!({"name": "Boss", "permissions": [{"name": "a"}, {"name": "b"}]}),
                    json!({"name": "Admin", "permissions": [{"name": "b"}], "description": "d"}),
                ),
                vec![
                    "role Boss renamed to Admin",
                    "role Admin lost a",
                    "role Admin's description changed",
                ],
            ),
            (
                "a role's permissions reordered",
                update(
                    "role",
                    &["permissions"],
                    role(&["a", "b"]),
                    role(&["b", "a"]),
                ),
                vec!["role Admin's permissions changed"],
            ),
            (
                "an entity with no sentences of its own",
                row("workspace", "insert", &[], Value::Null, json!({})),
                vec!["workspace 100042 added"],
            ),
        ];
        for (case, row, expected) in cases {
            assert_eq!(sentences(&row), expected, "{case}");
        }
    }
}

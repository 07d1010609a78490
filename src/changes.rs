//! `orgmirror changes [--since 7d|TIME] [--until TIME] [--entity user,group,...] [--json]`:
//! the change feed as sentences a person reads, grouped by run, newest last, with names as
//! they were when each change was observed; `--json` is one object per event for scripts.

use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::clock::format_utc;
use crate::commands::{load_config, Exit};
use crate::config::ConfigError;
use crate::model::Entity;
use crate::store::{ChangeFilter, ChangeRow, Store, StoreError, UnobservedRow};

mod sentences;
#[cfg(test)]
mod tests;

pub use sentences::sentences;
use sentences::{latest, text_of};

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
    actor: Option<&str>,
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
        actor: actor
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string),
    };
    let unobserved = if json_lines {
        Vec::new()
    } else {
        store.unobserved(&filter)?
    };
    let (sink, pager) = output();
    let mut feed = Feed::new(sink, json_lines);
    feed.between_runs(unobserved);
    let mut written = Ok(());
    let read = store.changes(&filter, |row| {
        written = feed.push(row);
        written.is_ok()
    });
    drop(store);
    // A reader gone (a pager quit, a closed pipe) is not a failure of the command. The
    // feed is closed either way, so that the pager ends before this process does.
    let _ = written.and_then(|()| feed.close().map(drop));
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

#[cfg(test)]
/// The feed as text: a header per run, then a line per sentence, `YYYY-MM-DD HH:MM  …`.
pub fn render(rows: &[ChangeRow]) -> String {
    let mut feed = Feed::new(Vec::new(), false);
    for row in rows {
        // Writing to memory does not fail.
        let _ = feed.push(row.clone());
    }
    feed.close()
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
    /// Changes no run saw, by the run whose window held them, oldest run first.
    unobserved: std::collections::VecDeque<UnobservedRow>,
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
            unobserved: Default::default(),
        }
    }

    /// The changes no run saw, told with the run whose window held them (oldest run first).
    pub fn between_runs(&mut self, rows: Vec<UnobservedRow>) {
        self.unobserved = rows.into();
    }

    /// Tells the changes no run saw of the runs before `run` that wrote no event.
    fn unobserved_before(&mut self, run: Option<i64>) -> std::io::Result<()> {
        while let Some(first) = self.unobserved.front() {
            if run.is_some_and(|r| first.sync_run_id >= r) {
                break;
            }
            let id = first.sync_run_id;
            if self.wrote {
                writeln!(self.out)?;
            }
            self.wrote = true;
            writeln!(self.out, "run {id}: no change seen, but between runs:")?;
            self.unobserved_of(id)?;
        }
        Ok(())
    }

    /// The "between runs" lines of run `run`.
    fn unobserved_of(&mut self, run: i64) -> std::io::Result<()> {
        while self
            .unobserved
            .front()
            .is_some_and(|u| u.sync_run_id == run)
        {
            if let Some(u) = self.unobserved.pop_front() {
                writeln!(
                    self.out,
                    "{}  between runs: {}",
                    minute(&u.created_at),
                    between_runs_sentence(&u)
                )?;
            }
        }
        Ok(())
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
        if self.run.is_none() {
            self.unobserved_before(Some(row.sync_run_id))?;
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
                match &row.changed_at {
                    // When it happened, who did it, and when a run saw it.
                    Some(when) => writeln!(
                        self.out,
                        "{}  {sentence}{} (seen {})",
                        minute(when),
                        row.actor_name
                            .as_deref()
                            .map(|a| format!(", by {a}"))
                            .unwrap_or_default(),
                        at.get(11..).unwrap_or(&at)
                    )?,
                    None => writeln!(self.out, "{at}  {sentence}")?,
                }
            }
        }
        let run = block.head.sync_run_id;
        self.unobserved_of(run)
    }

    /// Writes what is left and flushes; returns the writer.
    pub fn close(mut self) -> std::io::Result<W> {
        self.flush_run()?;
        self.unobserved_before(None)?;
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

/// `Bob Smith's admin → true, by Alice Martin (no run saw it)`.
fn between_runs_sentence(u: &UnobservedRow) -> String {
    let id = |i: usize| u.subject_id.split(':').nth(i).unwrap_or(&u.subject_id);
    let name = u.subject_name.clone();
    let label = match u.entity.as_str() {
        "user" => name.unwrap_or_else(|| format!("user {}", u.subject_id)),
        "group" => format!("group {}", name.unwrap_or_else(|| u.subject_id.clone())),
        "group_membership" => format!(
            "{}'s membership of group {}",
            name.unwrap_or_else(|| format!("user {}", id(1))),
            id(0)
        ),
        "user_rate" => format!(
            "{}'s rate",
            name.unwrap_or_else(|| format!("user {}", u.subject_id))
        ),
        "user_custom_field" => format!(
            "{}'s custom field {}",
            name.unwrap_or_else(|| format!("user {}", id(0))),
            id(1)
        ),
        other => format!("{other} {}", u.subject_id),
    };
    let what = match u.action.as_str() {
        "create" => format!("{label} was created"),
        "delete" => format!("{label} was deleted"),
        _ => {
            let fields: Vec<String> = u
                .new_value
                .as_ref()
                .and_then(|v| v.as_object())
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| k.as_str() != "updated_at")
                        .map(|(k, v)| match v {
                            serde_json::Value::String(s) => format!("{k} → {s}"),
                            other => format!("{k} → {other}"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            if fields.is_empty() {
                format!("{label} changed")
            } else {
                format!("{label}: {}", fields.join(", "))
            }
        }
    };
    let by = u
        .actor_name
        .as_deref()
        .map(|a| format!(", by {a}"))
        .unwrap_or_default();
    format!("{what}{by} (no run saw it)")
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
        "actor_name": row.actor_name,
        "changed_at": row.changed_at,
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

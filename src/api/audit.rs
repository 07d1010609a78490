//! `GET /organizations/{id}/audit-log/{from}/{to}`: one page of the organization's audit log,
//! newest first. The published spec enumerates neither entity types nor actions and does
//! not say which id space an event's `user_id` is in, so every event is kept as received
//! (its canonical JSON), whatever its type, and people are known only through
//! `user_summaries`. An event without a readable `created_at` is the only one passed over.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::model::audit::{audit_time, AuditActor, AuditEvent};

use super::transport::Query;
use super::{ApiError, Client};

/// Events asked per page: the most the API serves.
pub const AUDIT_PAGE_SIZE: usize = 1000;

/// One page of the log.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The people the page names (`user_summaries`).
    pub actors: Vec<AuditActor>,
    /// Events in the answer, readable or not: a page is full when this is the page size.
    pub received: usize,
    /// Events passed over for want of a readable `created_at`.
    pub unreadable: usize,
}

impl Client {
    /// Page `page` (from 1) of the events in `[from, to]`, [`AUDIT_PAGE_SIZE`] a page.
    /// The times go out in whole seconds: `from` rounded down, `to` up.
    pub async fn audit_page(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: u32,
    ) -> Result<AuditPage, ApiError> {
        let second = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let to_up = if to.timestamp_subsec_nanos() > 0 {
            to + chrono::Duration::seconds(1)
        } else {
            to
        };
        let mut query = Query::default();
        query
            .push("page_size", AUDIT_PAGE_SIZE)
            .push("page_number", page);
        let suffix = format!("/audit-log/{}/{}", second(from), second(to_up));
        let req = self.request(Method::GET, "GET", &suffix, query, Some(page));
        let answer = self.send(&req).await?;
        decode(&answer.body).map_err(|e| ApiError::Decode {
            endpoint: req.endpoint(),
            message: e.to_string(),
        })
    }
}

/// Why an audit-log page could not be read at all (an unreadable event is only counted).
#[derive(Debug, thiserror::Error)]
enum AuditDecodeError {
    #[error("{0}")]
    NotJson(#[from] serde_json::Error),
    #[error("the audit log answer is not a JSON object")]
    NotAnObject,
    #[error("`events` is not an array")]
    EventsNotAnArray,
}

fn decode(body: &[u8]) -> Result<AuditPage, AuditDecodeError> {
    let value: Value = serde_json::from_slice(body)?;
    let Value::Object(mut top) = value else {
        return Err(AuditDecodeError::NotAnObject);
    };
    let events = match top.remove("events") {
        Some(Value::Array(events)) => events,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(AuditDecodeError::EventsNotAnArray),
    };
    let mut page = AuditPage {
        received: events.len(),
        ..AuditPage::default()
    };
    for e in events {
        match event(e) {
            Some(e) => page.events.push(e),
            None => page.unreadable += 1,
        }
    }
    if let Some(Value::Object(people)) = top.get("user_summaries") {
        for (key, p) in people {
            let id = p
                .get("id")
                .and_then(int)
                .or_else(|| key.parse::<i64>().ok());
            if let Some(user_id) = id {
                page.actors.push(AuditActor {
                    user_id,
                    name: p.get("name").and_then(Value::as_str).map(str::to_string),
                    email: p.get("email").and_then(Value::as_str).map(str::to_string),
                    user_account_id: p.get("user_account_id").and_then(int),
                });
            }
        }
    }
    Ok(page)
}

/// An integer sent as a number or as text.
fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A JSON value as stored: objects and arrays as canonical JSON, null as NULL.
fn json_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn event(e: Value) -> Option<AuditEvent> {
    let Value::Object(mut fields) = e else {
        return None;
    };
    let created_at = DateTime::parse_from_rfc3339(fields.get("created_at")?.as_str()?)
        .ok()?
        .with_timezone(&Utc);
    let meta = match fields.get("meta_data") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let mut event = AuditEvent {
        created_at,
        entity_type: text(fields.get("entity_type")).unwrap_or_default(),
        entity_id: text(fields.get("entity_id")),
        action: text(fields.get("action")).unwrap_or_default(),
        user_id: fields.get("user_id").and_then(int),
        workspace_id: fields.get("workspace_id").and_then(int),
        old_value: json_text(fields.get("old_value")),
        new_value: json_text(fields.get("new_value")),
        meta_data: json_text(fields.get("meta_data")),
        meta,
        raw_json: String::new(),
        dedup_key: String::with_capacity(64),
    };
    fields.insert("created_at".to_string(), audit_time(created_at).into());
    // serde_json's maps are ordered by key: this is the canonical form.
    event.raw_json = Value::Object(fields).to_string();
    for b in Sha256::digest(event.raw_json.as_bytes()) {
        let _ = write!(event.dedup_key, "{b:02x}");
    }
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_any_shape_are_kept_and_only_a_time_is_required() {
        let body = br#"{"events": [
            {"action": "approve", "created_at": "2026-03-01T10:00:00.5+01:00",
             "entity_type": "time_off_request", "entity_id": "abc", "user_id": 7,
             "meta_data": {"k": "v"}, "new_value": {"x": 1}, "surprise": [1]},
            {"action": "update", "created_at": "yesterday", "entity_type": "group"},
            {"created_at": "2026-03-01T09:00:00Z"}, 3],
            "user_summaries": {"7": {"id": 7, "name": "Al", "email": "al@example.com",
                                     "user_account_id": 70}, "8": {"name": "No id"}}}"#;
        let page = decode(body).expect("decoded");
        assert_eq!(
            (page.received, page.unreadable, page.events.len()),
            (4, 2, 2)
        );
        let e = &page.events[0];
        assert_eq!(audit_time(e.created_at), "2026-03-01T09:00:00.500000Z");
        assert_eq!(e.entity_id.as_deref(), Some("abc"));
        assert_eq!(e.meta["k"], "v");
        assert!(e.raw_json.contains(r#""surprise":[1]"#), "{}", e.raw_json);
        assert!(e.raw_json.contains("2026-03-01T09:00:00.500000Z"));
        assert_eq!(page.events[1].entity_type, "");
        let mut ids: Vec<i64> = page.actors.iter().map(|a| a.user_id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![7, 8]);
        // The same event in another offset is the same event.
        let again = decode(
            br#"{"events": [{"action": "approve", "created_at": "2026-03-01T09:00:00.500Z",
             "entity_type": "time_off_request", "entity_id": "abc", "user_id": 7,
             "meta_data": {"k": "v"}, "new_value": {"x": 1}, "surprise": [1]}]}"#,
        )
        .expect("decoded");
        assert_eq!(again.events[0].dedup_key, e.dedup_key);
        assert!(decode(b"[]").is_err());
        assert!(decode(br#"{"events": 3}"#).is_err());
        assert_eq!(decode(b"{}").expect("empty").events, vec![]);
    }

    /// The key an event is stored under is its canonical JSON's SHA-256, keys in order,
    /// its time in UTC with six digits: a mirror holds the keys earlier versions wrote, so
    /// an event pulled again must hash the same.
    #[test]
    fn the_deduplication_key_is_the_hash_of_the_canonical_json() {
        let page = decode(
            br#"{"events": [{"user_id": 7, "entity_type": "organization_user", "entity_id": 5,
             "created_at": "2026-03-01T10:00:00+01:00", "action": "update"}]}"#,
        )
        .expect("decoded");
        let e = &page.events[0];
        assert_eq!(
            e.raw_json,
            r#"{"action":"update","created_at":"2026-03-01T09:00:00.000000Z","entity_id":5,"entity_type":"organization_user","user_id":7}"#
        );
        assert_eq!(
            e.dedup_key,
            "e2d68508ab2c09364ee06e6a78637322a6cb2b20ef23ecd1c6e258a28c30320d"
        );
    }
}

//! `GET …/audit-log/{from}/{to}`: the organization's audit log in `[from, to]`, newest
//! first, paged by `page_size` (default 50, capped at [`AUDIT_PAGE_SIZE_MAX`]) and
//! `page_number` (capped at [`AUDIT_PAGE_NUMBER_MAX`]: a larger one is answered as that
//! page), with the published spec's filters (`workspace_id`; `entity_type`, `action` and
//! `user_id` comma-separated, `workspace_logs` every type but `time_entry`; `entity_id`;
//! `export=true`, every event unpaged, only with `workspace_id`) and the summaries of the
//! people, groups and workspaces its events name. The answer carries no total: a page
//! shorter than `page_size` is the last.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};

use super::request::{BadParam, Params};
use super::{bad, Handled, Reply};
use crate::handle::FakeState;
use crate::options::{ArrayFilters, AuditLogMode};
use crate::org::audit::{audit_user_id, group_of, subjects, AuditFilter};
use crate::org::{FakeAuditEvent, AUDIT_USER_ID_OFFSET};
use crate::wire::{
    AuditEvent, AuditGroupSummary, AuditLogPage, AuditUserSummary, AuditWorkspaceSummary,
};

/// The most events a page holds, whatever `page_size` asks.
pub const AUDIT_PAGE_SIZE_MAX: usize = 1000;
/// The last page number served; a larger one is answered as this one.
pub const AUDIT_PAGE_NUMBER_MAX: usize = 10_000;
const DEFAULT_PAGE_SIZE: i64 = 50;

/// The 403 of a caller without `view_audit_log` on the organization.
pub const AUDIT_FORBIDDEN: &str = "User does not have access to the organization audit log";
/// The 503 the published spec names.
pub const AUDIT_UNAVAILABLE: &str = "Authorization service unavailable";

fn moment(text: &str, name: &str) -> Result<DateTime<Utc>, (StatusCode, String)> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad(format!("invalid {name}: {text:?} is not an RFC 3339 time")))
}

/// A comma-separated filter (the published spec's form for every list of this endpoint).
fn listed(params: &Params, key: &str) -> Vec<String> {
    params.array(ArrayFilters::Comma, key)
}

/// A positive integer parameter, capped.
fn bounded(params: &Params, key: &str, default: i64, cap: usize) -> Result<usize, BadParam> {
    let n = params.int(key)?.unwrap_or(default);
    if n < 1 {
        return Err(BadParam::BelowOne {
            key: key.to_string(),
            value: n,
        });
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX).min(cap))
}

fn filter_of(params: &Params) -> Result<AuditFilter, BadParam> {
    let mut entity_types = listed(params, "entity_type");
    let workspace_logs = entity_types.iter().any(|t| t == "workspace_logs");
    entity_types.retain(|t| t != "workspace_logs");
    let user_ids = params.array_ints(ArrayFilters::Comma, "user_id")?;
    Ok(AuditFilter {
        workspace_id: params.int("workspace_id")?,
        entity_types,
        workspace_logs,
        entity_id: params.int("entity_id")?,
        actions: listed(params, "action"),
        user_ids,
    })
}

pub(super) fn events(s: &FakeState, from: &str, to: &str, params: &Params) -> Handled {
    match s.audit_log {
        AuditLogMode::Forbidden => return Err((StatusCode::FORBIDDEN, AUDIT_FORBIDDEN.into())),
        AuditLogMode::Unavailable => {
            return Err((StatusCode::SERVICE_UNAVAILABLE, AUDIT_UNAVAILABLE.into()))
        }
        AuditLogMode::On | AuditLogMode::Off => {}
    }
    let (from, to) = (moment(from, "from")?, moment(to, "to")?);
    if from > to {
        return Err(bad("invalid range: from is after to".to_string()));
    }
    let page_size =
        bounded(params, "page_size", DEFAULT_PAGE_SIZE, AUDIT_PAGE_SIZE_MAX).map_err(bad)?;
    let page_number = bounded(params, "page_number", 1, AUDIT_PAGE_NUMBER_MAX).map_err(bad)?;
    let filter = filter_of(params).map_err(bad)?;
    if let Some(w) = filter.workspace_id {
        if s.org.workspace_name(w).is_none() {
            return Err((
                StatusCode::FORBIDDEN,
                "User does not have access to workspace".to_string(),
            ));
        }
    }
    let (skip, limit) = if params.bool("export").map_err(bad)? {
        if filter.workspace_id.is_none() {
            return Err(bad("export requires workspace_id".to_string()));
        }
        (0, usize::MAX)
    } else {
        ((page_number - 1) * page_size, page_size)
    };
    let events = s.org.audit.select(from, to, &filter, skip, limit);
    Ok(Reply::json(StatusCode::OK, &page(s, &events)))
}

/// The answer: the events and the summaries of everyone and everything they name.
fn page(s: &FakeState, events: &[FakeAuditEvent]) -> AuditLogPage {
    let org = &s.org;
    let mut out = AuditLogPage::default();
    let mut actors: BTreeMap<i64, Option<AuditUserSummary>> = BTreeMap::new();
    for e in events {
        let actor = actors.entry(e.user_id).or_insert_with(|| {
            let account = e.user_id - AUDIT_USER_ID_OFFSET;
            match org.users.iter().find(|u| u.user_account_id == account) {
                Some(u) => Some(summary(
                    audit_user_id(u),
                    &u.name,
                    &u.email,
                    u.user_account_id,
                )),
                None => org
                    .audit
                    .person(e.user_id)
                    .map(|p| summary(e.user_id, &p.name, &p.email, p.user_account_id)),
            }
        });
        if let Some(a) = actor {
            out.user_summaries.insert(a.id.to_string(), a.clone());
        }
        for subject in subjects(e) {
            let known = match org.user(subject) {
                Some(u) => Some(summary(
                    audit_user_id(u),
                    &u.name,
                    &u.email,
                    u.user_account_id,
                )),
                None => org.audit.audit_id_of(subject).and_then(|id| {
                    org.audit
                        .person(id)
                        .map(|p| summary(id, &p.name, &p.email, p.user_account_id))
                }),
            };
            if let Some(k) = known {
                out.user_summaries.insert(k.id.to_string(), k);
            }
        }
        if let Some(g) = group_of(e).and_then(|id| org.groups.get(&id)) {
            out.group_summaries
                .entry(g.id.to_string())
                .or_insert_with(|| AuditGroupSummary {
                    group_id: g.id,
                    name: g.name.clone(),
                    user_ids: g
                        .members
                        .keys()
                        .filter_map(|id| org.user(*id))
                        .map(audit_user_id)
                        .collect(),
                });
        }
        if let Some(name) = org.workspace_name(e.workspace_id) {
            out.workspace_summaries
                .entry(e.workspace_id.to_string())
                .or_insert_with(|| AuditWorkspaceSummary {
                    id: e.workspace_id,
                    name: name.to_string(),
                });
        }
    }
    out.events = events
        .iter()
        .map(|e| AuditEvent {
            action: e.action.clone(),
            created_at: render_instant(e.created_at, s),
            entity_id: e.entity_id,
            entity_type: e.entity_type.clone(),
            meta_data: e.meta_data.clone(),
            new_value: e.new_value.clone(),
            old_value: e.old_value.clone(),
            organization_id: org.organization_id,
            product_id: 0,
            project_id: e.project_id,
            user_id: e.user_id,
            workspace_id: e.workspace_id,
        })
        .collect();
    out
}

fn summary(id: i64, name: &str, email: &str, user_account_id: i64) -> AuditUserSummary {
    AuditUserSummary {
        email: email.to_string(),
        id,
        name: name.to_string(),
        user_account_id,
    }
}

/// An event's time with its fraction of a second, in the offset the control surface set.
fn render_instant(at: DateTime<Utc>, s: &FakeState) -> String {
    match s.utc_offset {
        Some(off) => at
            .with_timezone(&off)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

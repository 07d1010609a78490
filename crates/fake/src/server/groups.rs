//! The group writes: create, update (only the fields present) and delete.

use axum::http::StatusCode;
use serde_json::Value;

use super::lists::workspace_param;
use super::reply::TEXT;
use super::request::Params;
use super::{bad, Handled, Reply};
use crate::handle::FakeState;
use crate::org::WithExtra;
use crate::wire::GroupWriteBody;

fn parse_group_write(body: &[u8]) -> Result<GroupWriteBody, (StatusCode, String)> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("invalid request body: not JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad(
            "invalid request body: expected a JSON object".to_string()
        ));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("invalid request body: {e}")))
}

/// Checks the ids a group write refers to.
fn check_refs(s: &FakeState, write: &GroupWriteBody) -> Result<(), (StatusCode, String)> {
    if let Some(name) = &write.name {
        if name.trim().is_empty() {
            return Err(bad("name must not be empty".to_string()));
        }
    }
    for id in write.organization_users.iter().flatten() {
        if s.org.user(*id).is_none() {
            return Err(bad(format!("unknown organization user {id}")));
        }
    }
    for id in write.workspaces.iter().flatten() {
        if s.org.workspace_name(*id).is_none() {
            return Err(bad(format!("unknown workspace {id}")));
        }
    }
    Ok(())
}

fn group_reply(s: &FakeState, status: StatusCode, id: i64) -> Reply {
    match s.org.groups.get(&id) {
        Some(g) => Reply::json(
            status,
            &WithExtra {
                inner: s.org.render_group(g, s.utc_offset),
                extra: s.org.extra_for("group"),
            },
        ),
        None => Reply::error(s.profile, StatusCode::NOT_FOUND, "Group not found"),
    }
}

pub(super) fn create(s: &mut FakeState, body: &[u8]) -> Handled {
    let write = parse_group_write(body)?;
    if write.name.is_none() {
        return Ok(Reply::error_with_values(
            s.profile,
            StatusCode::BAD_REQUEST,
            "required_fields_missing",
            "name is required",
            serde_json::json!({ "fields": ["name"], "is_deletion": false }),
        ));
    }
    check_refs(s, &write)?;
    let name = write.name.as_deref().unwrap_or_default();
    let id = s.org.as_owner(|o| {
        o.create_group(
            name,
            write.emoji.as_deref(),
            write.organization_users.as_deref().unwrap_or_default(),
            write.workspaces.as_deref().unwrap_or_default(),
        )
    });
    Ok(group_reply(s, StatusCode::CREATED, id))
}

fn group_id(s: &FakeState, id: &str) -> Result<i64, (StatusCode, String)> {
    id.parse::<i64>()
        .ok()
        .filter(|id| s.org.groups.contains_key(id))
        .ok_or_else(|| (StatusCode::NOT_FOUND, "Group not found".to_string()))
}

pub(super) fn update(s: &mut FakeState, id: &str, body: &[u8]) -> Handled {
    let id = group_id(s, id)?;
    let write = parse_group_write(body)?;
    check_refs(s, &write)?;
    s.org.as_owner(|o| {
        o.edit_group(id, |o| {
            if let Some(g) = o.groups.get_mut(&id) {
                if let Some(name) = &write.name {
                    g.name = name.clone();
                }
                if let Some(emoji) = &write.emoji {
                    g.emoji = Some(emoji.clone());
                }
            }
            if let Some(members) = &write.organization_users {
                o.set_group_members(id, members);
            }
            if let Some(workspaces) = &write.workspaces {
                o.set_group_workspaces(id, workspaces);
            }
        })
    });
    Ok(group_reply(s, StatusCode::OK, id))
}

pub(super) fn delete(s: &mut FakeState, id: &str, params: &Params) -> Handled {
    workspace_param(s, params, "User does not have access to workspace")?;
    let id = group_id(s, id)?;
    s.org.as_owner(|o| o.remove_group(id));
    Ok(Reply {
        status: StatusCode::OK,
        content_type: TEXT,
        body: Vec::new(),
        headers: Vec::new(),
    })
}

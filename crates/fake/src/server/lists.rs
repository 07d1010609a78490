//! The lists: users (with their filters), teams, roles and the login's groups.

use axum::http::StatusCode;

use super::reply::list_reply;
use super::request::{BadParam, Paging, Params};
use super::{bad, Handled, Reply};
use crate::handle::FakeState;
use crate::options::FakeProfile;
use crate::org::{FakeGroup, WithExtra};
use crate::wire::{GroupRef, OrganizationUser, PageFacts, Team};

/// The workspace whose custom fields the users list includes: `include_custom_fields=true`
/// (the published spec's, so the focus profile's only) needs `workspaces` to name exactly one.
fn custom_fields_of(
    profile: FakeProfile,
    params: &Params,
    workspaces: &[i64],
) -> Result<Option<i64>, BadParam> {
    if profile == FakeProfile::Seed || !params.bool("include_custom_fields")? {
        return Ok(None);
    }
    match workspaces {
        [one] => Ok(Some(*one)),
        _ => Err(BadParam::CustomFieldsWorkspaces(workspaces.len())),
    }
}

pub(super) fn users(s: &FakeState, params: &Params, never_ends: bool) -> Handled {
    plan_allows(s, params)?;
    let paging = Paging::from(params, s.per_page_cap, s.per_page_max).map_err(bad)?;
    let rates = params.bool("include_rates").map_err(bad)?;
    let hours = params.bool("include_working_hours").map_err(bad)?;
    let form = s.array_filters;
    let ids = params.array_ints(form, "org_user_ids").map_err(bad)?;
    let accounts = params.array_ints(form, "user_account_ids").map_err(bad)?;
    let workspaces = params.array_ints(form, "workspaces").map_err(bad)?;
    let custom_fields = custom_fields_of(s.profile, params, &workspaces).map_err(bad)?;
    let groups = params.array_ints(form, "groups").map_err(bad)?;
    let tags = params.array_ints(form, "tag_ids").map_err(bad)?;
    let roles = params.array_ints(form, "roles").map_err(bad)?;
    let products = params.array(form, "toggl_products");
    let products: Vec<&str> = products.iter().map(String::as_str).collect();
    let statuses = params.array(form, "active_status");
    for st in &statuses {
        if !matches!(st.as_str(), "active" | "inactive" | "invited") {
            return Err(bad(format!(
                "invalid active_status: {st:?} (active, inactive or invited)"
            )));
        }
    }
    let only_admins = params.bool("only_admins").map_err(bad)?;
    let filter = params
        .first("filter")
        .filter(|f| !f.is_empty())
        .map(str::to_lowercase);
    let org = &s.org;
    let offset = s.utc_offset;
    let extra = org.extra_for("user");

    let (items, total): (Vec<OrganizationUser>, usize) = if never_ends {
        let made_up = made_up_users(s, paging, rates, hours);
        (
            made_up,
            paging
                .page
                .saturating_add(1)
                .saturating_mul(paging.per_page),
        )
    } else {
        let filtered = !(ids.is_empty()
            && accounts.is_empty()
            && workspaces.is_empty()
            && groups.is_empty()
            && tags.is_empty()
            && roles.is_empty()
            && products.is_empty()
            && statuses.is_empty()
            && !only_admins
            && filter.is_none());
        let render = |u| org.render_user(u, rates, hours, custom_fields, offset);
        if filtered {
            let matching: Vec<_> = org
                .users
                .iter()
                .filter(|u| ids.is_empty() || ids.contains(&u.id))
                .filter(|u| accounts.is_empty() || accounts.contains(&u.user_account_id))
                .filter(|u| {
                    workspaces.is_empty()
                        || u.workspaces
                            .iter()
                            .any(|w| workspaces.contains(&w.workspace_id))
                })
                .filter(|u| groups.is_empty() || groups.iter().any(|g| u.groups.contains(g)))
                .filter(|u| tags.is_empty() || u.tags.iter().any(|t| tags.contains(&t.id)))
                .filter(|u| {
                    roles.is_empty()
                        || u.workspaces.iter().any(|w| {
                            [w.focus_role_id, w.track_role_id, w.work_role_id]
                                .iter()
                                .any(|r| roles.contains(r))
                        })
                })
                .filter(|u| {
                    products.is_empty()
                        || u.workspaces.iter().any(|w| {
                            w.toggl_products
                                .iter()
                                .any(|p| products.contains(&p.as_str()))
                        })
                })
                .filter(|u| {
                    statuses.is_empty()
                        || statuses.iter().any(|st| match st.as_str() {
                            "active" => u.active,
                            "inactive" => !u.active,
                            _ => !u.joined,
                        })
                })
                .filter(|u| !only_admins || u.admin)
                .filter(|u| {
                    filter.as_ref().is_none_or(|f| {
                        u.name.to_lowercase().contains(f) || u.email.to_lowercase().contains(f)
                    })
                })
                .collect();
            let page = paging
                .positions(matching.len())
                .map(|i| render(matching[i]))
                .collect();
            (page, matching.len())
        } else {
            let page = paging
                .positions(org.users.len())
                .map(|i| render(&org.users[i]))
                .collect();
            (page, org.users.len())
        }
    };
    let items: Vec<WithExtra<OrganizationUser>> = items
        .into_iter()
        .map(|inner| WithExtra { inner, extra })
        .collect();
    Ok(list_reply(s, s.shapes.users, &items, paging.facts(total)))
}

/// A 402 for a feature the plan lacks that the request asks for (as the published spec
/// words it: `<feature> feature not available on the plan`).
fn plan_allows(s: &FakeState, params: &Params) -> Result<(), (StatusCode, String)> {
    for feature in &s.plan_lacks {
        if params.bool(feature.parameter()).unwrap_or(false) {
            return Err((
                StatusCode::PAYMENT_REQUIRED,
                format!("{} feature not available on the plan", feature.name()),
            ));
        }
    }
    Ok(())
}

/// Ids far above the real ones, unique per page, so a client sees only new rows.
const MADE_UP_BASE: i64 = 900_000_000;

fn made_up_users(s: &FakeState, paging: Paging, rates: bool, hours: bool) -> Vec<OrganizationUser> {
    let Some(template) = s.org.users.first() else {
        return Vec::new();
    };
    let template = s
        .org
        .render_user(template, rates, hours, None, s.utc_offset);
    let first = (paging.page as i64 - 1).saturating_mul(paging.per_page as i64);
    (0..paging.per_page as i64)
        .map(|i| {
            let id = MADE_UP_BASE.saturating_add(first).saturating_add(i);
            let mut u = template.clone();
            u.id = Some(id);
            u.user_account_id = Some(id);
            u.user_id = Some(format!("{id:016x}"));
            u.email = Some(format!("made-up.{id}@example.com"));
            u.name = Some(format!("Made Up {id}"));
            u.owner = Some(false);
            u
        })
        .collect()
}

/// The required `workspace_id` of a request, refused with 403 and `refusal` (followed by
/// the id) when the organization has no such workspace.
pub(super) fn workspace_param(
    s: &FakeState,
    params: &Params,
    refusal: &str,
) -> Result<i64, (StatusCode, String)> {
    let workspace = params
        .int("workspace_id")
        .map_err(bad)?
        .ok_or_else(|| bad("workspace_id is required".to_string()))?;
    if s.org.workspace_name(workspace).is_none() {
        return Err((StatusCode::FORBIDDEN, format!("{refusal} {workspace}")));
    }
    Ok(workspace)
}

pub(super) fn teams(s: &FakeState, params: &Params, never_ends: bool) -> Handled {
    workspace_param(
        s,
        params,
        "User does not have permission to view groups in workspace",
    )?;
    let paging = Paging::from(params, s.per_page_cap, s.per_page_max).map_err(bad)?;
    let filter = params
        .first("filter")
        .filter(|f| !f.is_empty())
        .map(str::to_lowercase);
    let member = params.int("organization_user_id").map_err(bad)?;
    let ids = params
        .array_ints(s.array_filters, "group_ids")
        .map_err(bad)?;
    let org = &s.org;
    let offset = s.utc_offset;
    let extra = org.extra_for("group");

    let (data, total): (Vec<Team>, usize) = if never_ends {
        let template = match org.groups.values().next() {
            Some(g) => org.render_team(g, offset, s.profile),
            None => Team::default(),
        };
        let first = (paging.page as i64 - 1).saturating_mul(paging.per_page as i64);
        let data = (0..paging.per_page as i64)
            .map(|i| {
                let id = MADE_UP_BASE.saturating_add(first).saturating_add(i);
                let mut t = template.clone();
                t.id = Some(id);
                t.name = Some(format!("Made Up Team {id}"));
                t
            })
            .collect();
        (
            data,
            paging
                .page
                .saturating_add(1)
                .saturating_mul(paging.per_page),
        )
    } else {
        let matching: Vec<&FakeGroup> = org
            .groups
            .values()
            .filter(|g| ids.is_empty() || ids.contains(&g.id))
            .filter(|g| member.is_none_or(|m| g.members.contains_key(&m)))
            .filter(|g| {
                filter
                    .as_ref()
                    .is_none_or(|f| g.name.to_lowercase().contains(f))
            })
            .collect();
        let data = paging
            .positions(matching.len())
            .map(|i| org.render_team(matching[i], offset, s.profile))
            .collect();
        (data, matching.len())
    };
    let data: Vec<WithExtra<Team>> = data
        .into_iter()
        .map(|inner| WithExtra { inner, extra })
        .collect();
    Ok(list_reply(s, s.shapes.teams, &data, paging.facts(total)))
}

pub(super) fn roles(s: &FakeState) -> Reply {
    let extra = s.org.extra_for("role");
    let items: Vec<_> = s
        .org
        .roles
        .iter()
        .map(|r| WithExtra {
            inner: s.org.render_role(r, s.profile),
            extra,
        })
        .collect();
    list_reply(s, s.shapes.roles, &items, whole_list(items.len()))
}

/// A list served whole (roles, groups/me): one page of all its rows.
fn whole_list(n: usize) -> PageFacts {
    PageFacts {
        page: 1,
        per_page: n.max(1),
        total: n,
    }
}

pub(super) fn my_groups(s: &FakeState) -> Reply {
    let org = &s.org;
    // The login's user; for token auth (or a login that is no user) the owner.
    let me = org
        .users
        .iter()
        .find(|u| u.email.eq_ignore_ascii_case(&s.email))
        .or_else(|| org.users.iter().find(|u| u.owner));
    let items: Vec<GroupRef> = me
        .map(|u| {
            u.groups
                .iter()
                .filter_map(|g| org.groups.get(g))
                .map(|g| GroupRef {
                    emoji: g.emoji.clone(),
                    id: Some(g.id),
                    name: Some(g.name.clone()),
                })
                .collect()
        })
        .unwrap_or_default();
    list_reply(s, s.shapes.my_groups, &items, whole_list(items.len()))
}

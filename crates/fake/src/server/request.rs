//! What a request asks for: its endpoint, its query parameters, its page.

use std::fmt;

use axum::http::Method;

use crate::options::ArrayFilters;
use crate::wire::{PageFacts, PER_PAGE_REFUSAL};

/// A query parameter the fake answers 400 for, worded as the API words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadParam {
    NotAnInteger {
        key: String,
        value: String,
    },
    NotABoolean {
        key: String,
        value: String,
    },
    PageBelowOne(i64),
    PerPageBelowOne(i64),
    /// A count (the audit log's `page_size`, `page_number`) below 1.
    BelowOne {
        key: String,
        value: i64,
    },
    /// Above the largest `per_page` the profile accepts.
    PerPageAboveMax,
    SortDir(String),
    /// `include_custom_fields=true` with `workspaces` naming this many, not one.
    CustomFieldsWorkspaces(usize),
}

impl fmt::Display for BadParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadParam::NotAnInteger { key, value } => {
                write!(f, "invalid {key}: {value:?} is not an integer")
            }
            BadParam::NotABoolean { key, value } => {
                write!(f, "invalid {key}: {value:?} is not a boolean")
            }
            BadParam::PageBelowOne(page) => write!(f, "invalid page: {page} (pages start at 1)"),
            BadParam::PerPageBelowOne(n) => write!(f, "invalid per_page: {n} (at least 1)"),
            BadParam::BelowOne { key, value } => write!(f, "invalid {key}: {value} (at least 1)"),
            BadParam::PerPageAboveMax => f.write_str(PER_PAGE_REFUSAL),
            BadParam::SortDir(d) => write!(f, "invalid sort_dir: {d:?} (asc or desc)"),
            BadParam::CustomFieldsWorkspaces(n) => write!(
                f,
                "include_custom_fields requires workspaces to name exactly one workspace (got {n})"
            ),
        }
    }
}

/// Which endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Any,
    Users,
    Teams,
    Roles,
    MyGroups,
    CreateGroup,
    UpdateGroup,
    DeleteGroup,
    /// `GET …/audit-log/{from}/{to}`.
    AuditLog,
}

/// The endpoints of the seed, as recognised from the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Users,
    Teams,
    Roles,
    MyGroups,
    /// `…/groups` (create).
    Groups,
    /// `…/groups/{group_id}`, the id as written.
    Group(String),
    /// `…/audit-log/{from}/{to}`, each percent-decoded.
    AuditLog {
        from: String,
        to: String,
    },
}

/// The organization segment and endpoint of a path below `/api/organizations/`.
pub(super) fn parse_path(path: &str) -> Option<(String, Endpoint)> {
    let rest = path.strip_prefix("/api/organizations/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let endpoint = match parts.as_slice() {
        [_, "users"] => Endpoint::Users,
        [_, "teams"] => Endpoint::Teams,
        [_, "roles"] => Endpoint::Roles,
        [_, "groups"] => Endpoint::Groups,
        [_, "groups", "me"] => Endpoint::MyGroups,
        [_, "groups", id] if !id.is_empty() => Endpoint::Group(id.to_string()),
        [_, "audit-log", from, to] => Endpoint::AuditLog {
            from: percent_decoded(from),
            to: percent_decoded(to),
        },
        _ => return None,
    };
    Some((parts[0].to_string(), endpoint))
}

pub(super) fn route_of(method: &Method, endpoint: &Endpoint) -> Option<Route> {
    Some(match (method.as_str(), endpoint) {
        ("GET", Endpoint::Users) => Route::Users,
        ("GET", Endpoint::Teams) => Route::Teams,
        ("GET", Endpoint::Roles) => Route::Roles,
        ("GET", Endpoint::MyGroups) => Route::MyGroups,
        ("POST", Endpoint::Groups) => Route::CreateGroup,
        ("PUT", Endpoint::Group(_)) => Route::UpdateGroup,
        ("DELETE", Endpoint::Group(_)) => Route::DeleteGroup,
        ("GET", Endpoint::AuditLog { .. }) => Route::AuditLog,
        _ => return None,
    })
}

/// A path segment with its `%XX` escapes decoded (`+` stays a plus: this is a path).
fn percent_decoded(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded query string; repeated keys (`ids[]=1&ids[]=2`) are kept in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(query: &str) -> Params {
        Params(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[cfg(feature = "control")]
    pub(crate) fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_string(), value));
    }

    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, BadParam> {
        match self.first(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| BadParam::NotAnInteger {
                    key: key.to_string(),
                    value: v.to_string(),
                }),
        }
    }

    /// The values of a filter that takes several, written as `form` says (`name=1,2`, or
    /// `name[]=1&name[]=2`); the other form is an unknown parameter, so ignored.
    pub(crate) fn array(&self, form: ArrayFilters, name: &str) -> Vec<String> {
        match form {
            ArrayFilters::Comma => self
                .first(name)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            ArrayFilters::Brackets => {
                let key = format!("{name}[]");
                self.all(&key).map(str::to_string).collect()
            }
            ArrayFilters::Ignored => Vec::new(),
        }
    }

    /// [`Params::array`] of integers.
    pub(crate) fn array_ints(&self, form: ArrayFilters, name: &str) -> Result<Vec<i64>, BadParam> {
        let shown = match form {
            ArrayFilters::Brackets => format!("{name}[]"),
            _ => name.to_string(),
        };
        self.array(form, name)
            .iter()
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| BadParam::NotAnInteger {
                    key: shown.clone(),
                    value: v.clone(),
                })
            })
            .collect()
    }

    pub(crate) fn bool(&self, key: &str) -> Result<bool, BadParam> {
        match self.first(key) {
            None => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") | Some("") => Ok(false),
            Some(v) => Err(BadParam::NotABoolean {
                key: key.to_string(),
                value: v.to_string(),
            }),
        }
    }

    /// The page a request asks for, for fault matching (1 when absent or unreadable).
    #[cfg(feature = "control")]
    pub(crate) fn page_for_faults(&self) -> u32 {
        self.first("page")
            .and_then(|p| p.trim().parse::<u32>().ok())
            .unwrap_or(1)
    }
}

/// `page`, `per_page` and `sort_dir`, validated and capped.
#[derive(Debug, Clone, Copy)]
pub(super) struct Paging {
    pub(super) page: usize,
    pub(super) per_page: usize,
    desc: bool,
}

impl Paging {
    pub(crate) fn from(
        params: &Params,
        cap: usize,
        max: Option<usize>,
    ) -> Result<Paging, BadParam> {
        let page = params.int("page")?.unwrap_or(1);
        if page < 1 {
            return Err(BadParam::PageBelowOne(page));
        }
        let per_page = params.int("per_page")?.unwrap_or(50);
        if per_page < 1 {
            return Err(BadParam::PerPageBelowOne(per_page));
        }
        if max.is_some_and(|max| usize::try_from(per_page).unwrap_or(usize::MAX) > max) {
            return Err(BadParam::PerPageAboveMax);
        }
        let desc = match params.first("sort_dir") {
            None | Some("") => false,
            Some(d) if d.eq_ignore_ascii_case("asc") => false,
            Some(d) if d.eq_ignore_ascii_case("desc") => true,
            Some(d) => return Err(BadParam::SortDir(d.to_string())),
        };
        Ok(Paging {
            page: usize::try_from(page).unwrap_or(usize::MAX),
            per_page: usize::try_from(per_page).unwrap_or(usize::MAX).min(cap),
            desc,
        })
    }

    /// Positions (in sort order) of this page's rows in a list of `n`.
    pub(crate) fn positions(&self, n: usize) -> impl Iterator<Item = usize> {
        let start = (self.page - 1).saturating_mul(self.per_page).min(n);
        let end = start.saturating_add(self.per_page).min(n);
        let desc = self.desc;
        (start..end).map(move |i| if desc { n - 1 - i } else { i })
    }

    /// What a page of a list of `total` rows announces.
    pub(crate) fn facts(&self, total: usize) -> PageFacts {
        PageFacts {
            page: self.page,
            per_page: self.per_page,
            total,
        }
    }
}

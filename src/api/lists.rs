//! Paged lists: roles, every page of the teams, the users and the custom fields' members,
//! each page handed to the caller as it arrives, ended by the stop rules of [`paging`](super::paging)
//! at the minimum of requests wherever the answer announces a total, and a page size the
//! server refuses asked again smaller (and remembered).

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::models::{KnownFields, MemberCustomFields, OrganizationUser, Role, Team};
use super::paging::{Announced, HasId, Next, PageError, Pager};
use super::transport::{Answer, Query, Request};
use super::{ApiError, Client, DecodedPage, WithUnknown};

/// What a paged pull reports after each page (for progress lines).
#[derive(Debug, Clone, PartialEq)]
pub struct PageProgress {
    /// `users` or `teams`.
    pub entity: &'static str,
    /// The page just received (from 1).
    pub page: u32,
    /// Distinct rows collected so far, this page included.
    pub rows: usize,
    /// Requests sent in this run so far.
    pub requests: u32,
    /// The quota left as the last answer announced it.
    pub quota_remaining: Option<i64>,
    /// Time this run has waited for its request pacing so far.
    pub pacing_wait: Duration,
}

impl Client {
    /// `GET /organizations/{id}/roles`.
    pub async fn roles(&self) -> Result<Vec<WithUnknown<Role>>, ApiError> {
        let req = self.request(Method::GET, "GET", "/roles", Query::default(), None);
        let answer = self.send(&req).await?;
        self.decode_list::<Role>(&req, &answer.body)
            .map(|p| p.items)
    }

    /// Every team (group) of the organization: `GET …/teams?workspace_id=…`, paged, and
    /// ended by the announced `total` where possible.
    pub async fn pull_teams(
        &self,
        progress: &mut dyn FnMut(&PageProgress),
    ) -> Result<Vec<WithUnknown<Team>>, ApiError> {
        let mut rows = Distinct::default();
        self.pull_teams_each(progress, &mut |page| {
            rows.extend(page);
            Ok(())
        })
        .await?;
        Ok(rows.rows)
    }

    /// Every team, handed to `each` a page at a time, so that a pull never holds the
    /// raw rows of the whole list. A team seen on two pages comes twice; the later copy
    /// is the fresher. An error from `each` fails the pull as it is (a bad record stays
    /// the caller's record error); the pull's own errors come out through
    /// `E: From<ApiError>`.
    pub async fn pull_teams_each<E: From<ApiError>>(
        &self,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<Team>>) -> Result<(), E>,
    ) -> Result<(), E> {
        let spec = self.teams_spec();
        let mut pager = Pager::streaming();
        self.pull(
            &spec,
            self.page_size_for("teams"),
            &mut pager,
            progress,
            each,
        )
        .await?;
        self.with_state(|s| s.teams.learn(&pager));
        Ok(())
    }

    /// Every user of the organization: `GET …/users`, paged.
    pub async fn pull_users(
        &self,
        include_rates: bool,
        include_working_hours: bool,
        progress: &mut dyn FnMut(&PageProgress),
    ) -> Result<Vec<WithUnknown<OrganizationUser>>, ApiError> {
        let mut rows = Distinct::default();
        self.pull_users_each(
            include_rates,
            include_working_hours,
            progress,
            &mut |page| {
                rows.extend(page);
                Ok(())
            },
        )
        .await?;
        Ok(rows.rows)
    }

    /// Every user, handed to `each` a page at a time (see [`Client::pull_teams_each`]).
    pub async fn pull_users_each<E: From<ApiError>>(
        &self,
        include_rates: bool,
        include_working_hours: bool,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<OrganizationUser>>) -> Result<(), E>,
    ) -> Result<(), E> {
        let spec = self.users_spec(Query::default(), include_rates, include_working_hours);
        let mut pager = Pager::streaming();
        self.pull(
            &spec,
            self.page_size_for("users"),
            &mut pager,
            progress,
            each,
        )
        .await?;
        self.with_state(|s| s.users.learn(&pager));
        Ok(())
    }

    /// The members of workspace `workspace_id` with their custom field values (`GET …/users?
    /// workspaces=N&include_custom_fields=true`: the spec accepts the flag only with one
    /// workspace), paged like the users list and with its page size, without rates or working
    /// hours, handed to `each` a page at a time. A row whose body cannot be read comes as a
    /// stand-in without values (its member's values are not spoken for) and is listed in
    /// [`Client::quarantined`] under [`CUSTOM_FIELDS_LIST`], not as a user.
    pub async fn pull_custom_fields_each<E: From<ApiError>>(
        &self,
        workspace_id: i64,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<MemberCustomFields>>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut query = Query::default();
        push_workspace_filter(&mut query, workspace_id);
        query.push("include_custom_fields", "true");
        let spec = ListSpec {
            entity: "users",
            path: "/users",
            query,
        };
        let quarantined_before = self.with_state(|s| s.quarantined.len());
        let mut pager = Pager::streaming();
        let pulled = self
            .pull(
                &spec,
                self.page_size_for("users"),
                &mut pager,
                progress,
                each,
            )
            .await;
        self.with_state(|s| {
            for q in s.quarantined.iter_mut().skip(quarantined_before) {
                q.list = CUSTOM_FIELDS_LIST.to_string();
            }
        });
        pulled
    }

    pub(super) fn users_spec(
        &self,
        mut query: Query,
        rates: bool,
        working_hours: bool,
    ) -> ListSpec {
        if rates {
            query.push("include_rates", "true");
        }
        if working_hours {
            query.push("include_working_hours", "true");
        }
        ListSpec {
            entity: "users",
            path: "/users",
            query,
        }
    }

    pub(super) fn teams_spec(&self) -> ListSpec {
        let mut query = Query::default();
        query.push("workspace_id", self.workspace_id);
        ListSpec {
            entity: "teams",
            path: "/teams",
            query,
        }
    }

    /// Pages through one list until the pager's stop rules say done.
    pub(super) async fn pull<T, E>(
        &self,
        spec: &ListSpec,
        per_page: u32,
        pager: &mut Pager<T>,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<T>>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        T: DeserializeOwned + KnownFields + HasId + Send,
        E: From<ApiError>,
    {
        let mut current = self.send_page(spec, per_page, 1).await?;
        loop {
            let PageAnswer {
                req,
                answer,
                page,
                size,
            } = current;
            let decoded = self.decode_list::<T>(&req, &answer.body)?;
            let announced = announced(&decoded, &answer);
            let next = pager
                .accept_announced(page, decoded.items, announced)
                .map_err(|e| match e {
                    PageError::Decode(message) => ApiError::Decode {
                        endpoint: req.endpoint(),
                        message,
                    },
                    PageError::Paging(message) => ApiError::Paging {
                        endpoint: req.endpoint(),
                        message,
                    },
                    PageError::FilterIgnored => ApiError::FilterIgnored {
                        endpoint: req.endpoint(),
                        filter: spec.id_filter(),
                    },
                })?;
            if next == Next::Done {
                return self.hand_over(spec, page, pager, progress, each);
            }
            self.hand_over(spec, page, pager, progress, each)?;
            current = self.send_page(spec, size, page + 1).await?;
            if current.size != size {
                // Pages of another size: the next one says nothing about the end.
                pager.page_size_changed();
            }
        }
    }

    /// Sends page `page` of a list at `size` rows. A 400 that refuses the page size is
    /// not a failure: the same rows are asked again at the largest size that can pass
    /// (100, then halving), the size accepted is used from then on (this run and, through
    /// [`Client::page_sizes`], the next ones), and one warning says so.
    pub(super) async fn send_page(
        &self,
        spec: &ListSpec,
        size: u32,
        page: u32,
    ) -> Result<PageAnswer, ApiError> {
        let (asked, mut size, mut page) = (size, size, page);
        loop {
            let req = self.page_request(spec, size, page)?;
            match self.send(&req).await {
                Ok(answer) => {
                    if size != asked && self.warns_of_page_sizes {
                        warn!(
                            endpoint = %req.endpoint(),
                            refused = asked,
                            accepted = size,
                            "the API refused the page size; asking {size} rows a page from now on (remembered in the database)"
                        );
                    }
                    return Ok(PageAnswer {
                        req,
                        answer,
                        page,
                        size,
                    });
                }
                Err(e) if refuses_page_size(&e) => {
                    let offset = u64::from(page - 1) * u64::from(size);
                    let Some(smaller) = smaller_page_size(size, offset) else {
                        return Err(e);
                    };
                    page = u32::try_from(offset / u64::from(smaller) + 1).map_err(|_| e)?;
                    size = smaller;
                    self.with_state(|s| {
                        let known = s.page_size.entry(spec.entity).or_insert(size);
                        *known = (*known).min(size);
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The request for page `page` of a list; refused beyond `api.max_pages`.
    pub(super) fn page_request(
        &self,
        spec: &ListSpec,
        per_page: u32,
        page: u32,
    ) -> Result<Request, ApiError> {
        let mut query = spec.query.clone();
        query.push("page", page).push("per_page", per_page);
        let mut req = self.request(Method::GET, "GET", spec.path, query, Some(page));
        if page > self.max_pages {
            req.page = None;
            return Err(ApiError::Paging {
                endpoint: req.endpoint(),
                message: format!(
                    "still not at the end after {} pages (api.max_pages): the server never ends",
                    self.max_pages
                ),
            });
        }
        Ok(req)
    }

    /// Gives a streaming pull's page to `each` and reports progress.
    fn hand_over<T: HasId, E>(
        &self,
        spec: &ListSpec,
        page: u32,
        pager: &mut Pager<T>,
        progress: &mut dyn FnMut(&PageProgress),
        each: &mut dyn FnMut(Vec<WithUnknown<T>>) -> Result<(), E>,
    ) -> Result<(), E> {
        if pager.is_streaming() {
            each(pager.take_page())?;
        }
        let stats = self.stats();
        progress(&PageProgress {
            entity: spec.entity,
            page,
            rows: pager.collected(),
            requests: stats.requests,
            quota_remaining: stats.quota.and_then(|q| q.remaining),
            pacing_wait: stats.pacing_wait,
        });
        Ok(())
    }
}

/// The list a row quarantined by [`Client::pull_custom_fields_each`] is recorded under.
pub const CUSTOM_FIELDS_LIST: &str = "custom_fields";

/// The users list's filter to one workspace, in the published form (`workspaces=N`; the
/// reference page's is `workspaces[]=N`). The one place the custom fields pull sets it: where
/// the client learns which id-filter form the users list honours, that form goes here.
fn push_workspace_filter(query: &mut Query, workspace_id: i64) {
    query.push("workspaces", workspace_id);
}

/// A paged list endpoint with its fixed query.
pub(super) struct ListSpec {
    pub(super) entity: &'static str,
    pub(super) path: &'static str,
    pub(super) query: Query,
}

impl ListSpec {
    /// The id filter a by-id read of this list sends, for messages.
    pub(super) fn id_filter(&self) -> &'static str {
        match self.entity {
            "users" => "org_user_ids",
            _ => "group_ids",
        }
    }
}

/// The Track v9 paging headers: the rows of the whole list, and its pages.
const X_RECORDS: &str = "x-records";

const X_PAGES: &str = "x-pages";

/// A count in a header (`X-Records: 1234`), when it is one.
fn header_count(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
}

/// What a page's answer announces about the whole list: `total` in the body, else
/// `X-Records`; `X-Pages`.
fn announced<T>(decoded: &DecodedPage<T>, answer: &Answer) -> Announced {
    Announced {
        total: decoded
            .total
            .or_else(|| header_count(&answer.headers, X_RECORDS)),
        pages: header_count(&answer.headers, X_PAGES),
    }
}

/// Whether a 400 is the server refusing the page size (the Go validator names
/// `Pagination.PerPage`; other servers say `per_page` or `page size`).
fn refuses_page_size(error: &ApiError) -> bool {
    let ApiError::Status {
        status: 400, body, ..
    } = error
    else {
        return false;
    };
    let squeezed: String = body
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    squeezed.contains("perpage") || squeezed.contains("pagesize")
}

/// The largest page size that can pass after `size` was refused: 100, then halving; it
/// must divide `offset` (the rows before the page asked for), so that the same rows
/// follow. `None` when there is nothing smaller to ask.
fn smaller_page_size(size: u32, offset: u64) -> Option<u32> {
    let mut candidate = if size > 100 { 100 } else { size / 2 };
    while candidate > 0 && offset % u64::from(candidate) != 0 {
        candidate -= 1;
    }
    (candidate > 0).then_some(candidate)
}

/// A page's answer with the page number and size it was asked at (a page-size refusal
/// may have changed both).
pub(super) struct PageAnswer {
    pub(super) req: Request,
    pub(super) answer: Answer,
    pub(super) page: u32,
    pub(super) size: u32,
}

/// Rows of a streamed pull, one per id in first-seen order; a later copy replaces an
/// earlier one (rows shift while paging, and the later copy is the fresher).
struct Distinct<T> {
    rows: Vec<WithUnknown<T>>,
    at: std::collections::HashMap<i64, usize>,
}

impl<T> Default for Distinct<T> {
    fn default() -> Self {
        Distinct {
            rows: Vec::new(),
            at: std::collections::HashMap::new(),
        }
    }
}

impl<T: HasId> Distinct<T> {
    fn extend(&mut self, page: Vec<WithUnknown<T>>) {
        for row in page {
            // The pager has already rejected rows without an id.
            let id = row.0.id().unwrap_or_default();
            match self.at.get(&id) {
                Some(&i) => self.rows[i] = row,
                None => {
                    self.at.insert(id, self.rows.len());
                    self.rows.push(row);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;
    use crate::api::Endpoint;

    #[test]
    fn a_refused_size_steps_to_100_then_halves_keeping_the_rows_that_follow() {
        assert_eq!(smaller_page_size(200, 0), Some(100));
        assert_eq!(smaller_page_size(100, 0), Some(50));
        assert_eq!(smaller_page_size(1, 0), None);
        // 150 a page, page 3 refused: 300 rows before it, so 100 a page from page 4.
        assert_eq!(smaller_page_size(150, 300), Some(100));
        // 120 a page, page 2 refused: 120 rows before it; 100 does not divide them, 60 does.
        assert_eq!(smaller_page_size(120, 120), Some(60));
    }

    #[test]
    fn only_a_400_naming_the_page_size_is_a_page_size_refusal() {
        let status = |status: u16, body: &str| ApiError::Status {
            endpoint: Endpoint {
                method: "GET",
                path: "/x".into(),
                page: Some(1),
            },
            status,
            body: body.into(),
            json: None,
        };
        for body in [
            "Key: 'Pagination.PerPage' Error:Field validation for 'PerPage' failed on the 'max' tag",
            "per_page must be at most 100",
            "invalid page size",
        ] {
            assert!(refuses_page_size(&status(400, body)), "{body}");
        }
        assert!(!refuses_page_size(&status(
            400,
            "Key: 'Filter.Status' failed"
        )));
        assert!(!refuses_page_size(&status(500, "per_page")));
    }

    #[test]
    fn a_count_header_is_a_non_negative_integer() {
        let mut headers = HeaderMap::new();
        assert_eq!(header_count(&headers, X_RECORDS), None);
        for (value, count) in [
            ("1234", Some(1234)),
            (" 7 ", Some(7)),
            ("0", Some(0)),
            ("-1", None),
            ("1.5", None),
            ("many", None),
        ] {
            headers.insert(X_RECORDS, HeaderValue::from_static(value));
            assert_eq!(header_count(&headers, X_RECORDS), count, "{value:?}");
        }
    }
}

//! The first page of a paged list, as a sync would ask for it, for `check`: one request
//! that shows whether the list answers, in what envelope, and at what page size.

use super::models::{OrganizationUser, Team};
use super::transport::Query;
use super::{ApiError, Client};

/// A paged list `check` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagedList {
    /// `GET …/users`, with the includes the sync asks for.
    Users {
        include_rates: bool,
        include_working_hours: bool,
    },
    /// `GET …/teams?workspace_id=…`.
    Teams,
}

/// What the first page showed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FirstPage {
    /// Rows on the page.
    pub rows: usize,
    /// The workspaces the page's users belong to, by id, with their names (users only).
    pub workspaces: std::collections::BTreeMap<i64, String>,
    /// The first row's id: one to ask for by id.
    pub first_id: Option<i64>,
}

impl Client {
    /// Page 1 of `list` at the page size a pull would ask (a refused size adapted to, as a
    /// pull does).
    pub async fn first_page(&self, list: PagedList) -> Result<FirstPage, ApiError> {
        let spec = match list {
            PagedList::Users {
                include_rates,
                include_working_hours,
            } => self.users_spec(Query::default(), include_rates, include_working_hours),
            PagedList::Teams => self.teams_spec(),
        };
        let first = self
            .send_page(&spec, self.page_size_for(spec.entity), 1)
            .await?;
        let (req, body) = (&first.req, &first.answer.body);
        Ok(match list {
            PagedList::Users { .. } => {
                let users = self.decode_list::<OrganizationUser>(req, body)?.items;
                FirstPage {
                    rows: users.len(),
                    first_id: users.first().and_then(|(user, _)| user.id),
                    workspaces: users
                        .iter()
                        .flat_map(|(user, _)| &user.workspaces)
                        .filter_map(|w| Some((w.id?, w.name.clone().unwrap_or_default())))
                        .collect(),
                }
            }
            PagedList::Teams => {
                let teams = self.decode_list::<Team>(req, body)?.items;
                FirstPage {
                    rows: teams.len(),
                    workspaces: Default::default(),
                    first_id: teams.first().and_then(|(team, _)| team.id),
                }
            }
        })
    }
}

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

impl Client {
    /// Page 1 of `list` at `api.per_page`: the rows on it.
    pub async fn first_page(&self, list: PagedList) -> Result<usize, ApiError> {
        let spec = match list {
            PagedList::Users {
                include_rates,
                include_working_hours,
            } => self.users_spec(Query::default(), include_rates, include_working_hours),
            PagedList::Teams => self.teams_spec(&[]),
        };
        let req = self.page_request(&spec, self.per_page, 1)?;
        let body = self.send(&req).await?;
        Ok(match list {
            PagedList::Users { .. } => self
                .decode_list::<OrganizationUser>(&req, &body, spec.envelope)?
                .items
                .len(),
            PagedList::Teams => self
                .decode_list::<Team>(&req, &body, spec.envelope)?
                .items
                .len(),
        })
    }
}

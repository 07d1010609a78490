//! Reads by id: users and teams asked for through the list's id filter, in batches, in
//! the form the server honours (the published comma form, the reference page's brackets,
//! or neither: then nothing can be read by id, and the caller does without).

use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::models::{KnownFields, OrganizationUser, Team};
use super::paging::{HasId, Pager};
use super::transport::Query;
use super::{ApiError, Client, ListSpec, PageSizes, WithUnknown};

/// How a list's id filter is written so that the server honours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdFilter {
    /// `org_user_ids=1,2,3`, as the published spec names array parameters.
    Comma,
    /// `org_user_ids[]=1&org_user_ids[]=2`, as the reference page does.
    Brackets,
    /// The server honours neither: nothing can be read by id.
    Neither,
}

impl IdFilter {
    /// As the database keeps it: `comma`, `brackets`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdFilter::Comma => "comma",
            IdFilter::Brackets => "brackets",
            IdFilter::Neither => "none",
        }
    }

    /// The reverse of [`IdFilter::as_str`].
    pub fn parse(text: &str) -> Option<IdFilter> {
        match text {
            "comma" => Some(IdFilter::Comma),
            "brackets" => Some(IdFilter::Brackets),
            "none" => Some(IdFilter::Neither),
            _ => None,
        }
    }
}

/// What a read by id gave.
#[derive(Debug)]
pub enum ByIds<T> {
    /// The rows found; an id asked for and not among them is gone (or invisible to the
    /// credentials).
    Found(Vec<WithUnknown<T>>),
    /// The server honours no form of the id filter: the read says nothing of any id.
    Unfiltered,
}

/// Ids asked for in one by-id request at most.
pub(super) const MAX_IDS_PER_REQUEST: usize = 100;

impl Client {
    /// Re-reads specific users through the `org_user_ids` filter, in batches (at most 100
    /// ids, or the server's page cap when a pull has shown one), in the form the server
    /// honours ([`Client::by_ids`]).
    pub async fn users_by_ids(
        &self,
        ids: &[i64],
        include_rates: bool,
        include_working_hours: bool,
    ) -> Result<ByIds<OrganizationUser>, ApiError> {
        let sizes = self.with_state(|s| s.users);
        self.by_ids(ids, sizes, "users", |batch, form| {
            let mut query = Query::default();
            push_id_filter(&mut query, form, "org_user_ids", "org_user_ids[]", batch);
            self.users_spec(query, include_rates, include_working_hours)
        })
        .await
    }

    /// Re-reads specific teams through the `group_ids` filter, batched like
    /// [`Client::users_by_ids`].
    pub async fn teams_by_ids(&self, ids: &[i64]) -> Result<ByIds<Team>, ApiError> {
        let sizes = self.with_state(|s| s.teams);
        self.by_ids(ids, sizes, "teams", |batch, form| {
            let mut query = Query::default();
            query.push("workspace_id", self.workspace_id);
            push_id_filter(&mut query, form, "group_ids", "group_ids[]", batch);
            ListSpec {
                entity: "teams",
                path: "/teams",
                query,
            }
        })
        .await
    }

    /// Asks for `ids` in batches through the list whose id filter `spec_for` writes in a
    /// form. The form the list is known to honour goes first (the published comma form
    /// when none is known); an answer holding rows not asked for means the server ignored
    /// it, and the same batch is asked once more in the other form. The form that filters
    /// is used from then on and remembered ([`Client::take_filter_forms`]); when neither does,
    /// the answer is [`ByIds::Unfiltered`] and no later read asks again.
    async fn by_ids<T>(
        &self,
        ids: &[i64],
        sizes: PageSizes,
        entity: &'static str,
        spec_for: impl Fn(&[i64], IdFilter) -> ListSpec,
    ) -> Result<ByIds<T>, ApiError>
    where
        T: DeserializeOwned + KnownFields + HasId + Send,
    {
        let mut found = Vec::new();
        let accepted = self.with_state(|s| s.page_size.get(entity).copied());
        // A page holds one row more than the ids asked: a server that ignores the filter
        // then always answers with a row not asked for (unless its list is that short), so
        // a form is never taken for honoured by chance.
        let size = sizes.batch(accepted).saturating_sub(1).max(1);
        for batch in batches(ids, size) {
            let mut tried = Vec::new();
            loop {
                let known = self.with_state(|s| s.filter_form.get(entity).copied());
                let form = match known {
                    Some(IdFilter::Neither) => return Ok(ByIds::Unfiltered),
                    Some(form) if !tried.contains(&form) => form,
                    _ => match [IdFilter::Comma, IdFilter::Brackets]
                        .into_iter()
                        .find(|f| !tried.contains(f))
                    {
                        Some(form) => form,
                        None => {
                            self.learn_filter_form(entity, IdFilter::Neither);
                            warn!(
                                list = entity,
                                "the API ignores the id filter in both forms; a missing entry is confirmed gone by the next complete pull instead (remembered in the database)"
                            );
                            return Ok(ByIds::Unfiltered);
                        }
                    },
                };
                tried.push(form);
                let spec = spec_for(&batch, form);
                let mut pager = Pager::for_ids(&batch);
                let pulled = self
                    .pull(
                        &spec,
                        batch.len() as u32 + 1,
                        &mut pager,
                        &mut |_| {},
                        &mut |_| Ok(()),
                    )
                    .await;
                match pulled {
                    Ok(()) => {
                        if known != Some(form) {
                            self.learn_filter_form(entity, form);
                        }
                        found.extend(pager.into_rows());
                        break;
                    }
                    Err(ApiError::FilterIgnored { endpoint, filter }) => {
                        debug!(%endpoint, filter, "the API ignored the id filter in this form; asking in the other");
                        self.with_state(|s| s.filter_form.remove(entity));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(ByIds::Found(found))
    }

    /// `list` honours `form`, as a request of this run showed.
    fn learn_filter_form(&self, list: &'static str, form: IdFilter) {
        self.with_state(|s| {
            s.filter_form.insert(list, form);
            s.filter_learned.insert(list);
        });
    }
}

/// Writes an id filter in `form`: `name=1,2,3`, or `bracketed=1&bracketed=2`.
fn push_id_filter(query: &mut Query, form: IdFilter, name: &str, bracketed: &str, ids: &[i64]) {
    if form == IdFilter::Brackets {
        for id in ids {
            query.push(bracketed, id);
        }
    } else {
        query.push_ids(name, ids);
    }
}

/// Splits `ids` (sorted, deduplicated) into requests of `size` ids.
fn batches(ids: &[i64], size: usize) -> Vec<Vec<i64>> {
    let size = size.max(1);
    let mut unique = ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    unique.chunks(size).map(<[i64]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_go_out_sorted_once_in_batches_of_the_size() {
        type Case = (&'static str, &'static [i64], usize, Vec<Vec<i64>>);
        let cases: [Case; 5] = [
            ("none", &[], 3, vec![]),
            (
                "unsorted, repeated",
                &[5, 1, 3, 1, 5],
                2,
                vec![vec![1, 3], vec![5]],
            ),
            (
                "an exact multiple",
                &[1, 2, 3, 4],
                2,
                vec![vec![1, 2], vec![3, 4]],
            ),
            ("one batch", &[9, 8], 100, vec![vec![8, 9]]),
            ("a size of 0 is 1", &[2, 1], 0, vec![vec![1], vec![2]]),
        ];
        for (case, ids, size, expected) in cases {
            assert_eq!(batches(ids, size), expected, "{case}");
        }
    }
}

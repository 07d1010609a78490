//! The stop rules of a page-number pull, without IO: feed it pages, it says whether to
//! ask for the next one.
//!
//! Page-number paging over a list that changes while it is read can skip or repeat
//! rows, and a server may cap `per_page` silently. So:
//! - an empty page ends the list;
//! - in a list without a `total` (users), a page shorter than the largest page before
//!   it ends the list (an unambiguous short page) — unless it repeats rows read before:
//!   then the server's cap shrank (or rows were inserted before it) and the list goes on,
//!   its page size now that page's, to a short page of new rows or an empty one. A short
//!   *first* page is ambiguous (a server cap, or the end), so one more page is asked
//!   for — the only request beyond the minimum. By-id re-checks
//!   follow the same rule, whatever page sizes the server returned before: its cap may
//!   shrink between requests, and an incomplete answer taken as final would turn the
//!   ids cut off into deletions that did not happen;
//! - when the server announces a `total` (teams), the pull ends as soon as that many
//!   distinct ids are collected, and in a by-id re-check as soon as every asked id is
//!   found; a short page before that does not end it (a server may return fewer rows
//!   than asked on any page), only an empty one;
//! - an id seen twice keeps its later copy (rows shift while paging);
//! - in a by-id read, a row not asked for means the server ignored the filter in the form
//!   sent ([`PageError::FilterIgnored`]): never an error of the run, the caller asks in the
//!   other form or does without;
//! - a non-empty page that brings no new id is an error (a server that ignores `page`
//!   or repeats a page would otherwise loop or silently lose rows);
//! - a row without an id is an error naming page and index: nothing can be
//!   de-duplicated, re-checked or mirrored without it.

use std::collections::{HashMap, HashSet};

use super::models::{GroupRef, MemberCustomFields, OrganizationUser, Team};
use super::WithUnknown;

/// What a list row is identified by.
pub trait HasId {
    /// The upstream id, if the row has one.
    fn id(&self) -> Option<i64>;
}

impl HasId for OrganizationUser {
    fn id(&self) -> Option<i64> {
        self.id
    }
}

impl HasId for MemberCustomFields {
    fn id(&self) -> Option<i64> {
        self.id
    }
}

impl HasId for Team {
    fn id(&self) -> Option<i64> {
        self.id
    }
}

impl HasId for GroupRef {
    fn id(&self) -> Option<i64> {
        self.id
    }
}

/// What an answer says about the whole list: its rows (`total` in the body, or
/// `X-Records`) and its pages (`X-Pages`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Announced {
    pub total: Option<i64>,
    pub pages: Option<i64>,
}

/// Whether to ask for another page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    More,
    Done,
}

/// Why a page was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    /// A row the mirror cannot use (no id).
    Decode(String),
    /// The server's paging cannot be trusted.
    Paging(String),
    /// A by-id read got a row it did not ask for: the server ignored the filter in the
    /// form it was sent (the caller tries the other form, or does without).
    FilterIgnored,
}

/// The rows collected so far and the state the stop rules need.
#[derive(Debug)]
pub struct Pager<T> {
    /// Every distinct row (collecting), or only the last page's rows (streaming).
    rows: Vec<WithUnknown<T>>,
    /// Hand each page to the caller instead of keeping every row.
    streaming: bool,
    index: HashMap<i64, usize>,
    largest: usize,
    non_empty_pages: u32,
    wanted: Option<HashSet<i64>>,
}

impl<T: HasId> Default for Pager<T> {
    fn default() -> Self {
        Pager::new()
    }
}

impl<T: HasId> Pager<T> {
    /// A pull of a whole list.
    pub fn new() -> Pager<T> {
        Pager {
            rows: Vec::new(),
            streaming: false,
            index: HashMap::new(),
            largest: 0,
            non_empty_pages: 0,
            wanted: None,
        }
    }

    /// A pull of a whole list that keeps only the ids: the caller takes each page's
    /// rows with [`Pager::take_page`] (a repeated id comes again; the later copy wins).
    pub fn streaming() -> Pager<T> {
        Pager {
            streaming: true,
            ..Pager::new()
        }
    }

    /// Whether pages go to the caller rather than being kept.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// The rows of the page just accepted (streaming pulls).
    pub fn take_page(&mut self) -> Vec<WithUnknown<T>> {
        std::mem::take(&mut self.rows)
    }

    /// A re-check of `ids` through an id filter: a row that was not asked for means the
    /// server ignored the filter ([`PageError::FilterIgnored`]).
    pub fn for_ids(ids: &[i64]) -> Pager<T> {
        Pager {
            wanted: Some(ids.iter().copied().collect()),
            ..Pager::new()
        }
    }

    /// Distinct rows seen so far.
    pub fn collected(&self) -> usize {
        self.index.len()
    }

    /// The largest page seen, if the list needed more than one non-empty page (so that
    /// it says something about the server's cap rather than the list's length).
    pub fn cap_seen(&self) -> Option<usize> {
        (self.non_empty_pages > 1).then_some(self.largest)
    }

    #[cfg(test)]
    /// Takes in one page (`page` counts from 1) and applies the stop rules.
    pub fn accept(
        &mut self,
        page: u32,
        items: Vec<WithUnknown<T>>,
        total: Option<i64>,
    ) -> Result<Next, PageError> {
        self.accept_announced(page, items, Announced { total, pages: None })
    }

    /// The pages that follow are of another size (the server refused the one asked): the
    /// next page is judged as a first one (a short one is not taken for the end).
    pub fn page_size_changed(&mut self) {
        self.largest = 0;
    }

    /// [`Pager::accept`] with what the answer announces about the whole list: a total
    /// ends the pull once that many distinct ids are in, a page count once its last page
    /// is in; either way no trailing empty page is asked for.
    pub fn accept_announced(
        &mut self,
        page: u32,
        items: Vec<WithUnknown<T>>,
        announced: Announced,
    ) -> Result<Next, PageError> {
        let total = announced.total;
        let n = items.len();
        if n == 0 {
            return Ok(Next::Done);
        }
        let mut new_rows = 0usize;
        for (i, (item, unknown)) in items.into_iter().enumerate() {
            let id = item
                .id()
                .ok_or_else(|| PageError::Decode(format!("item {i}: the row has no `id`")))?;
            if self.wanted.as_ref().is_some_and(|w| !w.contains(&id)) {
                return Err(PageError::FilterIgnored);
            }
            match self.index.get(&id) {
                Some(&at) if !self.streaming => self.rows[at] = (item, unknown),
                Some(_) => self.rows.push((item, unknown)),
                None => {
                    self.index.insert(id, self.rows.len());
                    self.rows.push((item, unknown));
                    new_rows += 1;
                }
            }
        }
        if new_rows == 0 {
            return Err(PageError::Paging(format!(
                "page {page} holds only rows already seen on earlier pages: the server ignores `page` or repeats pages"
            )));
        }
        self.non_empty_pages += 1;
        let largest_before = self.largest;
        self.largest = self.largest.max(n);
        let total = total.and_then(|t| usize::try_from(t).ok());
        if total.is_some_and(|t| self.index.len() >= t) {
            return Ok(Next::Done);
        }
        let pages = announced.pages.and_then(|p| u32::try_from(p).ok());
        if pages.is_some_and(|p| page >= p) {
            return Ok(Next::Done);
        }
        if let Some(wanted) = &self.wanted {
            if self.index.len() >= wanted.len() {
                return Ok(Next::Done);
            }
        }
        // A short page ends a list that announces no total; one that announces more rows
        // goes on (a server may return fewer rows than asked anywhere), to an empty page.
        if n < largest_before && total.is_none() && pages.is_none() {
            if new_rows == n {
                return Ok(Next::Done);
            }
            // A short page that repeats rows read before is a window that moved back: the
            // server's cap shrank (page k now starts at (k-1) × the new cap) or rows were
            // inserted before it. Not the end: go on, with this page's size as the page size.
            self.largest = n;
        }
        Ok(Next::More)
    }

    /// The collected rows, in first-seen order.
    pub fn into_rows(self) -> Vec<WithUnknown<T>> {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids: impl IntoIterator<Item = i64>) -> Vec<WithUnknown<Team>> {
        ids.into_iter()
            .map(|id| {
                (
                    Team {
                        id: Some(id),
                        ..Team::default()
                    },
                    None,
                )
            })
            .collect()
    }

    /// Runs a pager over a list of `len` rows served `cap` at a time; returns the
    /// number of requests and the ids collected.
    fn run(len: i64, cap: i64, total: Option<i64>) -> (u32, Vec<i64>) {
        let mut pager = Pager::new();
        let mut page_no = 0;
        loop {
            page_no += 1;
            let start = (page_no as i64 - 1) * cap;
            let ids = (start..(start + cap).min(len)).map(|i| i + 1);
            if pager.accept(page_no, page(ids), total).unwrap() == Next::Done {
                break;
            }
            assert!(page_no < 1000);
        }
        let ids = pager
            .into_rows()
            .into_iter()
            .map(|(t, _)| t.id.unwrap())
            .collect();
        (page_no, ids)
    }

    #[test]
    fn short_page_after_full_pages_ends() {
        let (requests, ids) = run(50, 7, None);
        assert_eq!(requests, 8);
        assert_eq!(ids, (1..=50).collect::<Vec<_>>());
        // An exact multiple needs the empty page to know the end.
        assert_eq!(run(49, 7, None).0, 8);
        // A short first page is ambiguous: one more request.
        assert_eq!(run(3, 200, None).0, 2);
        assert_eq!(run(0, 200, None).0, 1);
    }

    #[test]
    fn total_ends_without_an_extra_request() {
        assert_eq!(run(49, 7, Some(49)).0, 7);
        assert_eq!(run(3, 200, Some(3)).0, 1);
    }

    #[test]
    fn an_announced_page_count_ends_without_an_extra_request() {
        let pages = |n| Announced {
            total: None,
            pages: Some(n),
        };
        let mut pager: Pager<Team> = Pager::new();
        assert_eq!(
            pager.accept_announced(1, page(1..=7), pages(3)),
            Ok(Next::More)
        );
        // A short page before the last announced one does not end it.
        assert_eq!(
            pager.accept_announced(2, page(8..=10), pages(3)),
            Ok(Next::More)
        );
        assert_eq!(
            pager.accept_announced(3, page(11..=17), pages(3)),
            Ok(Next::Done)
        );
        assert_eq!(pager.into_rows().len(), 17);
        // A single full page that is the only one: no trailing empty page.
        let mut pager: Pager<Team> = Pager::new();
        assert_eq!(
            pager.accept_announced(1, page(1..=7), pages(1)),
            Ok(Next::Done)
        );
    }

    #[test]
    fn a_page_size_change_makes_the_next_page_judged_as_a_first_one() {
        // 200 a page, then the server refuses and 100 follow: a full page of 100 is not
        // the short end of a list of 200-row pages.
        let mut pager: Pager<Team> = Pager::new();
        assert_eq!(pager.accept(1, page(1..=200), None), Ok(Next::More));
        pager.page_size_changed();
        assert_eq!(pager.accept(3, page(201..=300), None), Ok(Next::More));
        assert_eq!(pager.accept(4, page(301..=350), None), Ok(Next::Done));
    }

    #[test]
    fn a_short_page_before_the_total_is_reached_does_not_end_the_list() {
        let mut pager: Pager<Team> = Pager::new();
        assert_eq!(pager.accept(1, page(1..=4), Some(9)), Ok(Next::More));
        // Fewer rows than the pages before, with rows still to come.
        assert_eq!(pager.accept(2, page(5..=6), Some(9)), Ok(Next::More));
        assert_eq!(pager.accept(3, page(7..=9), Some(9)), Ok(Next::Done));
        assert_eq!(pager.into_rows().len(), 9);
        // Rows that vanished meanwhile: an empty page ends it, one request later.
        let mut pager: Pager<Team> = Pager::new();
        assert_eq!(pager.accept(1, page(1..=4), Some(9)), Ok(Next::More));
        assert_eq!(pager.accept(2, page(5..=6), Some(9)), Ok(Next::More));
        assert_eq!(pager.accept(3, page([]), Some(9)), Ok(Next::Done));
    }

    #[test]
    fn a_cap_that_shrinks_mid_list_does_not_end_a_list_without_total() {
        // 30 rows; the cap drops from 10 to 7 after page 2: page k is rows 7(k-1)+1 ..= 7k.
        let mut pager: Pager<Team> = Pager::new();
        assert_eq!(pager.accept(1, page(1..=10), None), Ok(Next::More));
        assert_eq!(pager.accept(2, page(11..=20), None), Ok(Next::More));
        assert_eq!(pager.accept(3, page(15..=21), None), Ok(Next::More));
        assert_eq!(pager.accept(4, page(22..=28), None), Ok(Next::More));
        assert_eq!(pager.accept(5, page(29..=30), None), Ok(Next::Done));
        assert_eq!(pager.into_rows().len(), 30);
    }

    #[test]
    fn duplicates_keep_the_later_copy() {
        let mut pager: Pager<Team> = Pager::new();
        assert_eq!(pager.accept(1, page([1, 2, 3]), None), Ok(Next::More));
        let mut second = page([3, 4, 5]);
        second[0].0.name = Some("later".into());
        assert_eq!(pager.accept(2, second, None), Ok(Next::More));
        assert_eq!(pager.accept(3, page([]), None), Ok(Next::Done));
        let rows = pager.into_rows();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[2].0.name.as_deref(), Some("later"));
    }

    #[test]
    fn a_repeated_page_is_an_error() {
        let mut pager: Pager<Team> = Pager::new();
        pager.accept(1, page([1, 2]), None).unwrap();
        let err = pager.accept(2, page([2, 1]), None).unwrap_err();
        assert!(
            matches!(&err, PageError::Paging(m) if m.contains("page 2")),
            "{err:?}"
        );
    }

    #[test]
    fn a_row_without_id_is_refused() {
        let mut pager: Pager<Team> = Pager::new();
        let mut rows = page([1, 2]);
        rows[1].0.id = None;
        let err = pager.accept(1, rows, None).unwrap_err();
        assert_eq!(err, PageError::Decode("item 1: the row has no `id`".into()));
    }

    #[test]
    fn by_ids_stops_when_all_found_and_refuses_strangers() {
        let mut pager: Pager<Team> = Pager::for_ids(&[1, 2, 3]);
        assert_eq!(pager.accept(1, page([1, 2]), None), Ok(Next::More));
        assert_eq!(pager.accept(2, page([3]), None), Ok(Next::Done));
        // An incomplete first answer is not final: only an empty or short page ends it.
        let mut pager: Pager<Team> = Pager::for_ids(&[1, 2, 3]);
        assert_eq!(pager.accept(1, page([1, 2]), None), Ok(Next::More));
        assert_eq!(pager.accept(2, page([]), None), Ok(Next::Done));
        let mut pager: Pager<Team> = Pager::for_ids(&[1]);
        let err = pager.accept(1, page([1, 9]), None).unwrap_err();
        assert_eq!(err, PageError::FilterIgnored);
    }

    #[test]
    fn cap_is_known_only_after_two_pages() {
        let mut pager: Pager<Team> = Pager::new();
        pager.accept(1, page([1, 2, 3]), None).unwrap();
        assert_eq!(pager.cap_seen(), None);
        pager.accept(2, page([4, 5, 6]), None).unwrap();
        assert_eq!(pager.cap_seen(), Some(3));
    }

    /// The stop rules where the announced total and the rows disagree.
    #[test]
    fn a_total_that_is_wrong_or_out_of_range() {
        // (case, rows, cap, total) -> (requests, rows collected)
        let cases = [
            (
                "a total above the rows: on to an empty page",
                50,
                7,
                Some(60),
                (9, 50),
            ),
            (
                "a total below the rows: ends once it is reached",
                50,
                7,
                Some(10),
                (2, 14),
            ),
            ("a negative total is no total", 50, 7, Some(-1), (8, 50)),
            ("an empty list that says so", 0, 7, Some(0), (1, 0)),
        ];
        for (case, len, cap, total, (requests, rows)) in cases {
            let (asked, ids) = run(len, cap, total);
            assert_eq!((asked, ids.len()), (requests, rows), "{case}");
            assert_eq!(ids, (1..=rows as i64).collect::<Vec<_>>(), "{case}");
        }
    }

    /// A streaming pull hands each page over and keeps only the ids: a row seen again comes
    /// again (the caller's later copy wins), and the stop rules are a collecting pull's.
    #[test]
    fn a_streaming_pull_hands_over_each_page() {
        let mut pager: Pager<Team> = Pager::streaming();
        assert!(pager.is_streaming() && !Pager::<Team>::new().is_streaming());
        let ids = |rows: Vec<WithUnknown<Team>>| -> Vec<i64> {
            rows.into_iter().filter_map(|(t, _)| t.id).collect()
        };
        assert_eq!(pager.accept(1, page([1, 2, 3]), None), Ok(Next::More));
        assert_eq!(ids(pager.take_page()), [1, 2, 3]);
        assert_eq!(pager.accept(2, page([3, 4, 5]), None), Ok(Next::More));
        assert_eq!(ids(pager.take_page()), [3, 4, 5]);
        assert_eq!(pager.collected(), 5);
        assert_eq!(pager.accept(3, page([6]), None), Ok(Next::Done));
        assert_eq!(ids(pager.take_page()), [6]);
        assert!(pager.take_page().is_empty(), "a page is handed over once");
        let err = {
            let mut pager: Pager<Team> = Pager::streaming();
            pager.accept(1, page([1, 2]), None).unwrap();
            pager.take_page();
            pager.accept(2, page([1, 2]), None).unwrap_err()
        };
        assert!(
            matches!(&err, PageError::Paging(m) if m.contains("page 2")),
            "{err:?}"
        );
    }
}

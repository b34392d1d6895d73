//! Cursor pagination, the same on every list: `limit` (1–200, default 50) and `cursor`
//! (the previous page's `meta.pagination.next_cursor`) in the query, the page in
//! [`Paged`]. Lists read whole (a user's sessions, an org's keys) are paged here by
//! [`Paged::from_all`]; lists read from the store a page at a time fetch `limit + 1`
//! rows and are finished by [`Paged::from_overfetch`].

use garde::Validate;
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

use super::envelope::{Paged, Pagination};

/// The page size when the query names none.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page size a query may ask for.
pub const MAX_LIMIT: u32 = 200;

/// A page of a list keyed by id (or by another cursor `C`).
#[derive(Debug, Default, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PageQuery<C = Uuid> {
    /// The `next_cursor` of the previous page.
    #[garde(skip)]
    pub cursor: Option<C>,
    /// Page size, 1–200 (default 50).
    #[garde(inner(range(min = 1, max = MAX_LIMIT)))]
    #[schemars(range(min = 1, max = MAX_LIMIT))]
    pub limit: Option<u32>,
}

impl<C> PageQuery<C> {
    /// The page size asked for, else the default.
    #[must_use]
    pub fn limit(&self) -> u32 {
        page_limit(self.limit)
    }
}

/// The page size of a query's `limit`, else the default.
#[must_use]
pub fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_LIMIT)
}

/// Which way a list runs through its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Smallest key first (ids in creation order).
    Ascending,
    /// Largest key first (UUID v7 ids: newest first).
    Descending,
}

impl<T> Paged<T> {
    /// The page after `after` of a whole list, sorted by `key` in `order`;
    /// `total` counts the whole list.
    pub fn from_all<K: Ord + ToString>(
        mut items: Vec<T>,
        key: impl Fn(&T) -> K,
        order: Order,
        after: Option<&K>,
        limit: u32,
    ) -> Self {
        let total = items.len() as u64;
        items.sort_by_key(|i| key(i));
        if order == Order::Descending {
            items.reverse();
        }
        let rows: Vec<T> = items
            .into_iter()
            .filter(|i| {
                after.is_none_or(|after| match order {
                    Order::Ascending => key(i) > *after,
                    Order::Descending => key(i) < *after,
                })
            })
            .take(limit as usize + 1)
            .collect();
        Self::from_overfetch(rows, limit, key, Some(total))
    }

    /// A page from up to `limit + 1` rows in list order: the extra row, if any, only
    /// says that another page follows (its cursor is the last shown row's `key`).
    pub fn from_overfetch<K: ToString>(
        mut rows: Vec<T>,
        limit: u32,
        key: impl Fn(&T) -> K,
        total: Option<u64>,
    ) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|r| key(r).to_string()))
            .flatten();
        Self {
            items: rows,
            pagination: Pagination {
                limit,
                next_cursor,
                total,
            },
        }
    }

    /// The same page with each item turned into `U`.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            pagination: self.pagination,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lists_page_both_ways_with_their_total() {
        let first = Paged::from_all(vec![3, 1, 2, 5, 4], |n| *n, Order::Ascending, None, 2);
        assert_eq!(first.items, vec![1, 2]);
        assert_eq!(first.pagination.next_cursor.as_deref(), Some("2"));
        assert_eq!(first.pagination.total, Some(5));
        let last = Paged::from_all(vec![3, 1, 2, 5, 4], |n| *n, Order::Ascending, Some(&4), 2);
        assert_eq!(last.items, vec![5]);
        assert_eq!(last.pagination.next_cursor, None);
        let newest = Paged::from_all(vec![3, 1, 2, 5, 4], |n| *n, Order::Descending, Some(&4), 2);
        assert_eq!(newest.items, vec![3, 2]);
        assert_eq!(newest.pagination.next_cursor.as_deref(), Some("2"));
        let exact = Paged::from_all(vec![1, 2], |n| *n, Order::Ascending, None, 2);
        assert_eq!(exact.pagination.next_cursor, None);
        assert_eq!(exact.map(|n| n * 10).items, vec![10, 20]);
    }
}

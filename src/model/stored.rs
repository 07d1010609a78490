//! What the mirror holds of each entity, as the diff sees it: the hashes of its current
//! version's canonical JSON, never the JSON itself.

use super::EntityKey;

/// The hashes of one stored entity's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHashes {
    pub data: i64,
    /// Hash of the unknown upstream fields kept beside it; `None` when there were none.
    pub unknown: Option<i64>,
}

/// What the mirror holds now: every current entity's hashes, sorted by key. A sorted
/// vector takes a third of the memory of a hash map, and the store reads it in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredState {
    rows: Vec<(EntityKey, StoredHashes)>,
}

impl StoredState {
    #[cfg(test)]
    /// An empty state.
    pub fn new() -> StoredState {
        StoredState::default()
    }

    /// The hashes stored for `key`.
    pub fn get(&self, key: &EntityKey) -> Option<&StoredHashes> {
        self.rows
            .binary_search_by(|(k, _)| k.cmp(key))
            .ok()
            .map(|i| &self.rows[i].1)
    }

    /// Every stored key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &EntityKey> + '_ {
        self.rows.iter().map(|(k, _)| k)
    }

    /// The stored keys from `first` to `last`, both included, in order.
    pub fn keys_between(
        &self,
        first: &EntityKey,
        last: &EntityKey,
    ) -> impl Iterator<Item = &EntityKey> + '_ {
        let start = self.rows.partition_point(|(k, _)| k < first);
        let end = self.rows.partition_point(|(k, _)| k <= last);
        self.rows[start..end.max(start)].iter().map(|(k, _)| k)
    }

    #[cfg(test)]
    /// Sets the hashes of `key`.
    pub fn insert(&mut self, key: EntityKey, hashes: StoredHashes) {
        match self.rows.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => self.rows[i].1 = hashes,
            Err(i) => self.rows.insert(i, (key, hashes)),
        }
    }

    #[cfg(test)]
    /// Forgets `key`.
    pub fn remove(&mut self, key: &EntityKey) {
        if let Ok(i) = self.rows.binary_search_by(|(k, _)| k.cmp(key)) {
            self.rows.remove(i);
        }
    }
}

impl FromIterator<(EntityKey, StoredHashes)> for StoredState {
    fn from_iter<I: IntoIterator<Item = (EntityKey, StoredHashes)>>(iter: I) -> Self {
        let mut rows: Vec<(EntityKey, StoredHashes)> = iter.into_iter().collect();
        rows.sort_by_key(|r| r.0);
        // A key given twice keeps its last hashes, like a map.
        rows.reverse();
        rows.dedup_by(|a, b| a.0 == b.0);
        rows.reverse();
        rows.shrink_to_fit();
        StoredState { rows }
    }
}

/// Hashes of one pulled row.
pub fn hashes_of(json: &str, unknown: Option<&str>) -> StoredHashes {
    StoredHashes {
        data: content_hash(json),
        unknown: unknown.map(content_hash),
    }
}

/// A stable 64-bit hash (XXH3, seed 0) of canonical JSON: stored in the database, so it
/// must not change between builds or platforms, unlike std's hasher. (FNV-1a, byte by
/// byte, cost a tenth of an unchanged re-sync.)
pub fn content_hash(text: &str) -> i64 {
    twox_hash::XxHash3_64::oneshot(text.as_bytes()) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_is_xxh3_of_the_text() {
        // Stored hashes must stay what they are: pin the algorithm with known values.
        assert_eq!(content_hash("") as u64, 0x2d06_8005_38d3_94c2);
        assert_ne!(content_hash("{\"a\":1}"), content_hash("{\"a\":2}"));
    }
}

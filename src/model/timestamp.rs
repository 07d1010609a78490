//! Upstream timestamps as the mirror keeps them: UTC, or the text as sent.

use serde::{Deserialize, Serialize};

use crate::clock::format_utc;

/// An RFC 3339 timestamp in UTC with a `Z`; text that is not a timestamp is kept as sent.
pub fn utc(ts: Option<&str>) -> Option<Timestamp> {
    ts.map(Timestamp::parse)
}

/// Whether a row's `deleted_at` says it was removed: an RFC 3339 instant from 1970 on.
/// A null, text that is not a timestamp, or a zero-value date such as `0001-01-01T00:00:00Z`
/// (how some APIs render "never") leaves the row in place: taken for a removal, it would
/// end memberships that did not end.
pub fn is_soft_deleted(deleted_at: Option<&str>) -> bool {
    matches!(
        deleted_at.map(Timestamp::parse),
        Some(Timestamp::Instant { secs, .. }) if secs >= 0
    )
}

/// An upstream timestamp, normalised: an instant, written RFC 3339 in UTC with a `Z`, or —
/// when the API sent something that is not RFC 3339 — its text as sent. Twelve bytes
/// instead of a heap string for every timestamp of every record a run holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timestamp {
    Instant { secs: i64, nanos: u32 },
    Text(Box<str>),
}

impl Timestamp {
    /// Parses RFC 3339 in any UTC offset; anything else is kept as text.
    pub fn parse(text: &str) -> Timestamp {
        match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => Timestamp::Instant {
                secs: t.timestamp(),
                nanos: t.timestamp_subsec_nanos(),
            },
            Err(_) => Timestamp::Text(text.into()),
        }
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Timestamp::Instant { secs, nanos } => {
                match chrono::DateTime::from_timestamp(*secs, *nanos) {
                    Some(t) => f.write_str(&format_utc(t)),
                    None => write!(f, "{secs}"),
                }
            }
            Timestamp::Text(t) => f.write_str(t),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Timestamp::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_text(ts: &str) -> String {
        utc(Some(ts)).map(|t| t.to_string()).unwrap_or_default()
    }

    #[test]
    fn offsets_normalise_to_the_same_instant() {
        assert_eq!(
            utc_text("2026-03-01T14:00:00+02:00"),
            "2026-03-01T12:00:00Z"
        );
        assert_eq!(utc_text("2026-03-01T12:00:00Z"), "2026-03-01T12:00:00Z");
        assert_eq!(
            utc_text("2026-03-01T07:30:00.250-04:30"),
            "2026-03-01T12:00:00.250Z"
        );
        assert_eq!(utc_text("not a time"), "not a time");
        assert_eq!(utc(None), None);
        let json = serde_json::to_string(&utc(Some("2026-03-01T14:00:00+02:00"))).unwrap();
        assert_eq!(json, "\"2026-03-01T12:00:00Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(Some(back), utc(Some("2026-03-01T12:00:00Z")));
    }

    #[test]
    fn only_a_real_instant_in_deleted_at_is_a_removal() {
        assert!(is_soft_deleted(Some("2026-03-01T14:00:00+02:00")));
        assert!(is_soft_deleted(Some("1970-01-01T00:00:00Z")));
        assert!(!is_soft_deleted(None));
        assert!(!is_soft_deleted(Some("0001-01-01T00:00:00Z")));
        assert!(!is_soft_deleted(Some("")));
        assert!(!is_soft_deleted(Some("yesterday")));
    }
}

//! `[retention]`: how long the history keeps what ended. Off unless `history` is written.

use std::fmt;

use chrono::{DateTime, Months, TimeDelta, Utc};
use serde::Deserialize;

/// `[retention]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Versions and change events that ended longer ago than this are dropped at the end
    /// of each successful run (current rows never are); `None`: kept forever.
    pub history: Option<HistoryPeriod>,
}

/// A span of the calendar: `"3y"`, `"18mo"`, `"26w"`, `"400d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPeriod {
    Days(u32),
    Months(u32),
}

impl HistoryPeriod {
    /// The moment `self` before `at`: what ended before it is not kept.
    pub fn cutoff(self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            HistoryPeriod::Days(d) => at - TimeDelta::days(i64::from(d)),
            HistoryPeriod::Months(m) => at
                .checked_sub_months(Months::new(m))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }
}

impl fmt::Display for HistoryPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HistoryPeriod::Days(d) => write!(f, "{d}d"),
            HistoryPeriod::Months(m) if m % 12 == 0 => write!(f, "{}y", m / 12),
            HistoryPeriod::Months(m) => write!(f, "{m}mo"),
        }
    }
}

/// Why a text is not a history period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a history period: write a whole number of days, weeks, months or years of at least a day (\"400d\", \"26w\", \"18mo\", \"3y\")")]
pub struct NotAPeriod(String);

impl std::str::FromStr for HistoryPeriod {
    type Err = NotAPeriod;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || NotAPeriod(text.to_string());
        let n: u32 = num.parse().map_err(|_| bad())?;
        let period = match unit {
            "d" => HistoryPeriod::Days(n),
            "w" => HistoryPeriod::Days(n.checked_mul(7).ok_or_else(bad)?),
            "mo" => HistoryPeriod::Months(n),
            "y" => HistoryPeriod::Months(n.checked_mul(12).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        // A period of nothing would drop every interval the moment it closes; far longer
        // than the calendar holds cannot be computed.
        match period {
            HistoryPeriod::Days(0) | HistoryPeriod::Months(0) => Err(bad()),
            HistoryPeriod::Days(d) if d > 3_650_000 => Err(bad()),
            HistoryPeriod::Months(m) if m > 120_000 => Err(bad()),
            p => Ok(p),
        }
    }
}

impl<'de> Deserialize<'de> for HistoryPeriod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_the_calendar_counts_them() {
        let at: DateTime<Utc> = "2026-02-28T12:00:00Z".parse().unwrap();
        let cut = |t: &str| t.parse::<HistoryPeriod>().unwrap().cutoff(at).to_rfc3339();
        assert_eq!(cut("3y"), "2023-02-28T12:00:00+00:00");
        assert_eq!(cut("1mo"), "2026-01-28T12:00:00+00:00");
        assert_eq!(cut("2w"), "2026-02-14T12:00:00+00:00");
        assert_eq!(cut("1d"), "2026-02-27T12:00:00+00:00");
        for bad in [
            "",
            "3",
            "0y",
            "3 years",
            "-1d",
            "1.5y",
            "3h",
            "99999999999y",
        ] {
            assert!(bad.parse::<HistoryPeriod>().is_err(), "{bad}");
        }
        assert_eq!("36mo".parse::<HistoryPeriod>().unwrap().to_string(), "3y");
    }
}

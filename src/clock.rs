//! Time of day as the mirror writes it: every layer (store, sync, the commands, alerts,
//! the replica) formats instants the same way, so they share this module rather than
//! reaching into `sync` or `snapshot` for it. A run's monotone time is `store::clock`'s,
//! because it reads the last committed run. A moment given on the command line is read
//! here too ([`parse_moment`]), so every command takes the same forms.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

/// Formats an instant as the mirror stores it: `2026-11-28T12:00:00Z`, with fractional
/// seconds only when there are some.
pub fn format_utc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The current time as the mirror writes it (whole seconds, UTC, `Z`).
pub fn now_utc() -> String {
    let now = chrono::Utc::now();
    format_utc(chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now))
}

/// A length of time as a person reads it: `40 s`, `12 min`, `7 h`, `3 d` (rounded down;
/// seconds up to two minutes, minutes up to two hours, hours up to two days).
pub fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// Why a command-line value is not a moment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MomentError {
    #[error("`{0}` is not a time: give RFC 3339 (2026-03-01T09:00:00Z), a date (2026-03-01, its start in UTC) or a span back from now (7d, 12h, 30m, 2w)")]
    NotATime(String),
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

/// A moment on the command line (the clap value parser of `asof TIME`, `changes --since`
/// and `--until`, `alerts replay --since`): RFC 3339 (`2026-03-01T09:00:00+01:00`), a
/// date (`2026-03-01`, its start in UTC), or a span back from now (`7d`, `12h`, `30m`,
/// `2w`). Fractions of a second are dropped: the mirror records whole seconds, so nothing
/// lies between.
pub fn parse_moment(text: &str) -> Result<DateTime<Utc>, MomentError> {
    moment_at(text, Utc::now())
}

/// [`parse_moment`] with `now` for the spans.
pub fn moment_at(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, MomentError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let span = match (num.parse::<i64>(), unit) {
        (Ok(n), "w") => Some(chrono::Duration::try_weeks(n)),
        (Ok(n), "d") => Some(chrono::Duration::try_days(n)),
        (Ok(n), "h") => Some(chrono::Duration::try_hours(n)),
        (Ok(n), "m") => Some(chrono::Duration::try_minutes(n)),
        _ => None,
    };
    let out_of_range = || MomentError::OutOfRange(text.to_string());
    let at = match span {
        Some(span) => span
            .and_then(|s| now.checked_sub_signed(s))
            .ok_or_else(out_of_range)?,
        None => DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .map(|d| d.and_time(NaiveTime::MIN).and_utc())
            })
            .map_err(|_| MomentError::NotATime(text.to_string()))?,
    };
    DateTime::from_timestamp(at.timestamp(), 0).ok_or_else(out_of_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_is_a_time_a_date_in_utc_or_a_span_back_from_now() {
        let now = DateTime::parse_from_rfc3339("2026-12-08T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let table = [
            ("2026-03-01", "2026-03-01T00:00:00Z"),
            ("2026-03-01T09:30:00+01:00", "2026-03-01T08:30:00Z"),
            (" 2026-03-01T09:30:00.999Z", "2026-03-01T09:30:00Z"),
            ("7d", "2026-12-01T12:00:00Z"),
            ("2w", "2026-11-24T12:00:00Z"),
            ("36h", "2026-12-07T00:00:00Z"),
            ("90m", "2026-12-08T10:30:00Z"),
        ];
        for (text, at) in table {
            assert_eq!(
                moment_at(text, now).map(format_utc).as_deref(),
                Ok(at),
                "{text:?}"
            );
        }
        for bad in [
            "yesterday",
            "7x",
            "7 days",
            "2026-13-01",
            "2026-03-01 09:30",
            "",
        ] {
            let e = moment_at(bad, now).unwrap_err();
            assert_eq!(e, MomentError::NotATime(bad.to_string()));
            assert!(e.to_string().contains("RFC 3339"), "{e}");
        }
        assert_eq!(
            moment_at("99999999999999d", now),
            Err(MomentError::OutOfRange("99999999999999d".into()))
        );
    }

    #[test]
    fn spans_change_unit_at_two_of_the_next() {
        let table = [
            (-5, "0 s"),
            (0, "0 s"),
            (119, "119 s"),
            (120, "2 min"),
            (12 * 60 + 59, "12 min"),
            (7199, "119 min"),
            (7200, "2 h"),
            (7 * 3600 + 1800, "7 h"),
            (172_799, "47 h"),
            (172_800, "2 d"),
        ];
        for (seconds, shown) in table {
            assert_eq!(span(seconds), shown, "{seconds}");
        }
    }

    #[test]
    fn instants_are_written_in_utc_with_fractions_only_when_there_are_some() {
        let cases = [
            ("2026-11-28T13:00:00+01:00", "2026-11-28T12:00:00Z"),
            ("2026-11-28T12:00:00.250Z", "2026-11-28T12:00:00.250Z"),
        ];
        for (input, written) in cases {
            let t = chrono::DateTime::parse_from_rfc3339(input)
                .unwrap()
                .with_timezone(&chrono::Utc);
            assert_eq!(format_utc(t), written, "{input}");
        }
    }

    #[test]
    fn now_is_whole_seconds_in_utc() {
        let now = now_utc();
        assert!(now.ends_with('Z') && !now.contains('.'), "{now}");
        assert!(chrono::DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
    }
}

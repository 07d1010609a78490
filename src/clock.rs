//! Time of day as the mirror writes it: every layer (store, sync, the commands, alerts,
//! the replica) formats instants the same way, so they share this module rather than
//! reaching into `sync` or `snapshot` for it. A run's monotone time is `store::clock`'s,
//! because it reads the last committed run.

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

#[cfg(test)]
mod tests {
    use super::*;

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

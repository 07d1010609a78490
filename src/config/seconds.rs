//! Durations in the file: a number of seconds, or a string with a unit.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A duration in the file: a number of seconds (`30`, `0.5`) or a string with a unit
/// (`"500ms"`, `"30s"`, `"5m"`, `"1h"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub f64);

/// The longest duration a config key takes: a year and a day.
const MAX_DURATION_SECS: f64 = 366.0 * 24.0 * 3600.0;

impl Seconds {
    /// As a `Duration` (the file's values are checked to fit; a value built in code that
    /// does not saturates).
    pub fn duration(self) -> Duration {
        Duration::try_from_secs_f64(self.0.max(0.0)).unwrap_or(Duration::MAX)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: a number of seconds or a string such as \"30s\", \"5m\", \"500ms\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<f64, E> {
                parse_duration(v).map_err(E::custom)
            }
        }
        let secs = d.deserialize_any(Visitor)?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(serde::de::Error::custom(format!(
                "a duration must be a non-negative number of seconds, not {secs}"
            )));
        }
        if secs > MAX_DURATION_SECS {
            return Err(serde::de::Error::custom(format!(
                "a duration must be at most 366 days ({MAX_DURATION_SECS} s), not {secs} s"
            )));
        }
        Ok(Seconds(secs))
    }
}

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("`{0}` is not a duration (try \"30s\", \"5m\", \"500ms\")")]
    NotADuration(String),
    #[error("unknown duration unit `{unit}` in `{text}` (use ms, s, m or h)")]
    UnknownUnit { unit: String, text: String },
}

/// Parses `"500ms"`, `"30s"`, `"5m"`, `"1h"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<f64, DurationError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| DurationError::NotADuration(text.to_string()))?;
    let factor = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(DurationError::UnknownUnit {
                unit: other.to_string(),
                text: text.to_string(),
            })
        }
    };
    Ok(n * factor)
}

/// A span of whole days in the file: `"90d"`, `"2w"`, or a number of days; at most 366.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(pub u32);

impl Days {
    pub fn duration(self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.0))
    }
}

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let wrong = |v: &dyn fmt::Display| {
            serde::de::Error::custom(format!(
                "`{v}` is not a span of days: give \"90d\", \"2w\" or a number of days, at most 366"
            ))
        };
        let days = match Raw::deserialize(d)? {
            Raw::Number(n) => n,
            Raw::Text(t) => {
                let t = t.trim();
                let (num, factor) = match (t.strip_suffix('d'), t.strip_suffix('w')) {
                    (Some(n), _) => (n, 1),
                    (_, Some(n)) => (n, 7),
                    _ => (t, 1),
                };
                num.trim().parse::<i64>().map_err(|_| wrong(&t))? * factor
            }
        };
        u32::try_from(days)
            .ok()
            .filter(|d| *d <= 366)
            .map(Days)
            .ok_or_else(|| wrong(&days))
    }
}

//! Wall-clock timestamps as the API writes them: RFC 3339, UTC, milliseconds.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// A point in time, serialised as `"2026-11-24T18:00:00.123Z"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, utoipa::ToSchema)]
#[schema(value_type = String, format = DateTime)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(Utc::now())
    }

    /// Milliseconds since the Unix epoch, as snapshots store it.
    pub fn as_millis(self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The inverse of [`Timestamp::as_millis`]; out-of-range values clamp to the epoch.
    pub fn from_millis(millis: i64) -> Timestamp {
        Timestamp(DateTime::from_timestamp_millis(millis).unwrap_or_default())
    }

    /// Parses an RFC 3339 time such as `2026-11-24T18:00:00Z`.
    pub fn parse(text: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(text).ok().map(|t| Timestamp(t.with_timezone(&Utc)))
    }

    /// `wait` later.
    pub fn plus(self, wait: std::time::Duration) -> Timestamp {
        let wait = chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX);
        self.0.checked_add_signed(wait).map_or(self, Timestamp)
    }

    /// Milliseconds from `earlier` to `self`, zero when the clock went backwards.
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        (self.0 - earlier.0).num_milliseconds().max(0) as u64
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

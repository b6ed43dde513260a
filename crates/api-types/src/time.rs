//! Timestamps on the wire: ISO-8601 UTC with milliseconds, `2026-01-01T00:00:00.000Z`, as Daytona sends them.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// The current time in the wire format.
pub fn now_rfc3339() -> String {
    format_rfc3339(OffsetDateTime::now_utc())
}

/// Formats a time in the wire format (UTC, milliseconds, `Z`).
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&fmt)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses any RFC 3339 / ISO-8601 timestamp with an offset.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_millis() {
        let t = parse_rfc3339("2026-01-02T03:04:05.678+02:00").unwrap();
        assert_eq!(format_rfc3339(t), "2026-01-02T01:04:05.678Z");
        assert!(parse_rfc3339("yesterday").is_none());
    }
}

//! Small conversions for tool results: times as text. (Amounts need none:
//! the structured results give every amount as an integer of millisatoshis.)

/// Unix seconds as an RFC 3339 UTC time, `2026-11-21T06:22:00Z`.
pub(crate) fn utc(unix: u64) -> String {
    crate::text::utc_rfc3339(unix)
}

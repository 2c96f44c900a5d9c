//! Small renderings every face shares: times as UTC text, and HTML escaping
//! for the pages the server draws itself (the approval page, the dashboard).

/// Unix seconds as an RFC 3339 UTC time, `2026-11-21T06:22:00Z`.
pub fn utc_rfc3339(secs: u64) -> String {
    utc_with(secs, "%Y-%m-%dT%H:%M:%SZ")
}

/// Unix seconds as a UTC time for people, `2026-11-21 06:22:00Z`.
pub fn utc_readable(secs: u64) -> String {
    utc_with(secs, "%Y-%m-%d %H:%M:%SZ")
}

fn utc_with(secs: u64, format: &str) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.format(format).to_string())
        .unwrap_or_else(|| format!("unix time {secs}"))
}

/// HTML-escapes text for an element's content or a quoted attribute.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_rfc3339(1_795_242_120), "2026-11-21T06:22:00Z");
        assert_eq!(utc_readable(1_795_242_120), "2026-11-21 06:22:00Z");
        assert_eq!(utc_readable(u64::MAX), format!("unix time {}", u64::MAX));
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            html_escape("<a href=\"x\">it's & more</a>"),
            "&lt;a href=&quot;x&quot;&gt;it&#39;s &amp; more&lt;/a&gt;"
        );
    }
}

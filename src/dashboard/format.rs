//! How the dashboard writes amounts and times: sats with thousands
//! separated (msat kept), short axis labels, UTC times.

/// An amount: `1,234 sats`, `0.5 sats` (thousands separated, msat kept).
pub(crate) fn sats(msat: u64) -> String {
    format!("{} sats", sats_number(msat))
}

/// An amount without its unit, as `sats` writes it.
pub(crate) fn sats_number(msat: u64) -> String {
    let (whole, frac) = (msat / 1000, msat % 1000);
    let digits = whole.to_string();
    let mut out = String::with_capacity(digits.len() + 8);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if frac != 0 {
        let f = format!("{frac:03}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out
}

/// An axis label: `0`, `500`, `1.5k`, `2M` sats.
pub(crate) fn sats_short(msat: u64) -> String {
    let sats = msat as f64 / 1000.0;
    let (v, unit) = if sats >= 1e6 {
        (sats / 1e6, "M")
    } else if sats >= 1e4 {
        (sats / 1e3, "k")
    } else {
        (sats, "")
    };
    let text = format!("{v:.1}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

/// A time, UTC: `2026-05-17 14:03:09Z`.
pub(crate) fn utc(secs: u64) -> String {
    crate::text::utc_readable(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_sats_with_separators_and_msat_kept() {
        assert_eq!(sats(0), "0 sats");
        assert_eq!(sats(21_000), "21 sats");
        assert_eq!(sats(1_234_567_000), "1,234,567 sats");
        assert_eq!(sats(1_500), "1.5 sats");
        assert_eq!(sats(1_000_001), "1,000.001 sats");
        assert_eq!(sats_short(0), "0");
        assert_eq!(sats_short(50_000_000), "50k");
        assert_eq!(sats_short(2_500), "2.5");
    }
}

//! The spend chart, drawn here as SVG: stacked bars per origin, one bar
//! per UTC hour (the last 24 hours) or day (the last 30 days), with a
//! y axis in sats, time labels and a legend. No script draws it: the page
//! works with JavaScript off, and its script only fetches it again.

use std::fmt::Write as _;

use super::format::{sats, sats_short, utc};
use crate::client::{Bucket, SpendSeries};
use crate::text::html_escape as escape;

/// Bar colours, in the order origins are ranked (most spent first): the
/// Okabe-Ito palette, told apart with most kinds of colour blindness.
const PALETTE: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#777777",
];

const WIDTH: u32 = 760;
const PLOT_TOP: u32 = 34;
const PLOT_HEIGHT: u32 = 180;
const LEFT: u32 = 60;
const RIGHT: u32 = 12;
const LEGEND_ROW: u32 = 22;

/// The colour of `origin`, by its rank in `ranking` (the same in every
/// chart of the page); origins past the palette share its last colour.
pub(crate) fn colour(ranking: &[String], origin: &str) -> &'static str {
    let i = ranking
        .iter()
        .position(|o| o == origin)
        .unwrap_or(PALETTE.len() - 1);
    PALETTE[i.min(PALETTE.len() - 1)]
}

/// The SVG of `series`, colours taken by `ranking`.
pub(crate) fn svg(series: &SpendSeries, ranking: &[String]) -> String {
    let n = series.buckets.len().max(1) as u32;
    let plot_width = WIDTH - LEFT - RIGHT;
    let legend_rows = series.origins.len().div_ceil(2).max(1) as u32;
    let axis_bottom = PLOT_TOP + PLOT_HEIGHT;
    let height = axis_bottom + 40 + legend_rows * LEGEND_ROW;
    let max = series
        .buckets
        .iter()
        .map(|b| b.total_msat)
        .max()
        .unwrap_or(0);
    let (step, top) = scale(max);
    let title = match series.bucket {
        Bucket::Hour => "Spend per hour, last 24 hours (UTC)",
        Bucket::Day => "Spend per day, last 30 days (UTC)",
    };

    let mut s = String::with_capacity(8 * 1024);
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-bucket="{bucket}" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{title}" font-family="system-ui, sans-serif" font-size="14">"#,
        bucket = series.bucket.as_str(),
    );
    let _ = write!(
        s,
        r##"<title>{title}</title><text class="heading" x="{LEFT}" y="16" fill="#1f2933" font-size="15" font-weight="600">{title}</text><text x="{right}" y="16" text-anchor="end" fill="#5b6470">{total} in all</text>"##,
        right = WIDTH - RIGHT,
        total = escape(&sats(series.total_msat)),
    );

    // The y axis: gridlines and labels in sats.
    let y = |msat: u64| -> f64 {
        f64::from(axis_bottom) - (msat as f64 / top as f64) * f64::from(PLOT_HEIGHT)
    };
    let mut tick = 0;
    while tick <= top {
        let ty = y(tick);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{ty:.1}" y2="{ty:.1}" stroke="#e3e6ea"/><text x="{lx}" y="{ly:.1}" text-anchor="end" fill="#5b6470">{label}</text>"##,
            x2 = WIDTH - RIGHT,
            lx = LEFT - 6,
            ly = ty + 4.0,
            label = escape(&sats_short(tick)),
        );
        tick += step;
    }

    // The bars, stacked per origin, bottom up in rank order.
    let slot = f64::from(plot_width) / f64::from(n);
    let bar = (slot * 0.72).max(1.0);
    for (i, b) in series.buckets.iter().enumerate() {
        let x = f64::from(LEFT) + slot * i as f64 + (slot - bar) / 2.0;
        let mut base = 0u64;
        for (origin, msat) in &b.by_origin {
            let (y1, y0) = (y(base + msat), y(base));
            let h = (y0 - y1).max(if *msat > 0 { 1.0 } else { 0.0 });
            let _ = write!(
                s,
                r#"<rect class="bar" x="{x:.1}" y="{top:.1}" width="{bar:.1}" height="{h:.1}" fill="{fill}" data-origin="{o}" data-msat="{msat}"><title>{o}: {amount}, {when}</title></rect>"#,
                top = y0 - h,
                fill = colour(ranking, origin),
                o = escape(origin),
                amount = escape(&sats(*msat)),
                when = escape(&bucket_label(series.bucket, b.start, true)),
            );
            base += msat;
        }
    }

    // The x axis and its labels: every third hour, every fifth day.
    let every = match series.bucket {
        Bucket::Hour => 3,
        Bucket::Day => 5,
    };
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" x2="{x2}" y1="{axis_bottom}" y2="{axis_bottom}" stroke="#9aa3ad"/>"##,
        x2 = WIDTH - RIGHT,
    );
    let count = series.buckets.len();
    for (i, b) in series.buckets.iter().enumerate() {
        // Label from the newest bar back, so that "now" is always labelled.
        if !(count - 1 - i).is_multiple_of(every) {
            continue;
        }
        let cx = f64::from(LEFT) + slot * (i as f64 + 0.5);
        let _ = write!(
            s,
            r##"<text x="{cx:.1}" y="{ty}" text-anchor="middle" fill="#5b6470">{label}</text>"##,
            ty = axis_bottom + 18,
            label = escape(&bucket_label(series.bucket, b.start, false)),
        );
    }

    // The legend, two origins a row; or a sentence when nothing was spent.
    let legend_top = axis_bottom + 36;
    if series.origins.is_empty() {
        let _ = write!(
            s,
            r##"<text class="empty" x="{cx}" y="{cy}" text-anchor="middle" fill="#5b6470" font-size="13">Nothing spent in this period.</text>"##,
            cx = LEFT + plot_width / 2,
            cy = PLOT_TOP + PLOT_HEIGHT / 2,
        );
    }
    for (i, origin) in series.origins.iter().enumerate() {
        let (col, row) = ((i % 2) as u32, (i / 2) as u32);
        let lx = LEFT + col * (plot_width / 2);
        let ly = legend_top + row * LEGEND_ROW;
        let spent: u64 = series
            .buckets
            .iter()
            .flat_map(|b| &b.by_origin)
            .filter(|(o, _)| o == origin)
            .map(|(_, m)| m)
            .sum();
        let _ = write!(
            s,
            r##"<g class="legend"><rect x="{lx}" y="{ry}" width="12" height="12" rx="2" fill="{fill}"/><text x="{tx}" y="{ty}" fill="#1f2933">{o} ({amount})</text></g>"##,
            ry = ly - 10,
            fill = colour(ranking, origin),
            tx = lx + 18,
            ty = ly,
            o = escape(&shorten(origin, 36)),
            amount = escape(&sats(spent)),
        );
    }
    s.push_str("</svg>");
    s
}

/// A gridline step and the axis top (a multiple of it) for bars up to
/// `max_msat`: 1, 2 or 5 times a power of ten sats, four or five lines.
fn scale(max_msat: u64) -> (u64, u64) {
    let max = max_msat.max(1000);
    let rough = max.div_ceil(4);
    let mut unit = 1000u64; // 1 sat
    loop {
        for m in [1, 2, 5] {
            let step = unit * m;
            if step >= rough {
                return (step, max.div_ceil(step) * step);
            }
        }
        unit = unit.saturating_mul(10);
    }
}

/// A bar's time: `14:00` or `05-17` on the axis; in full in a tooltip.
fn bucket_label(bucket: Bucket, start: u64, full: bool) -> String {
    let t = utc(start); // "YYYY-MM-DD HH:MM:SSZ"
    match (bucket, full) {
        (Bucket::Hour, false) => format!("{}:00", &t[11..13]),
        (Bucket::Hour, true) => format!("{} {}:00–{}:59 UTC", &t[..10], &t[11..13], &t[11..13]),
        (Bucket::Day, false) => t[5..10].to_string(),
        (Bucket::Day, true) => format!("{} (UTC)", &t[..10]),
    }
}

/// `text`, cut to `max` characters with an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_round_and_covers_the_tallest_bar() {
        assert_eq!(scale(0), (1000, 1000));
        assert_eq!(scale(21_000), (10_000, 30_000));
        assert_eq!(scale(100_000), (50_000, 100_000));
        assert_eq!(scale(371_000), (100_000, 400_000));
    }
}

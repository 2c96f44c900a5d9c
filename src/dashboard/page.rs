//! The dashboard's HTML, rendered here whole, so that every table works
//! with JavaScript off; the script (assets/dashboard.js) re-renders the
//! same tables from the JSON API when the store changes. Every piece of
//! user data (session names, URLs, origins, reasons) goes through
//! [`escape`].

use std::fmt::Write as _;

use super::Snapshot;
use crate::client::{ClientConfig, Pause, PauseEvent, PaymentFilter, PaymentState};

use super::format::{sats, utc};
use crate::text::html_escape as escape;

fn opt_sats(msat: Option<u64>, none: &str) -> String {
    msat.map_or_else(|| none.to_string(), sats)
}

/// The whole page.
pub(crate) fn render(snap: &Snapshot, filter: &PaymentFilter) -> String {
    let mut h = String::with_capacity(64 * 1024);
    h.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>l402-mcp dashboard</title>\
         <link rel=\"stylesheet\" href=\"/static/dashboard.css\">\
         <script src=\"/static/dashboard.js\" defer></script></head><body>",
    );
    let _ = write!(
        h,
        "<header class=\"top\"><div><h1>l402-mcp <span>dashboard</span></h1>\
         <p class=\"muted\">store <code id=\"store\">{store}</code></p></div>\
         <p id=\"live\" class=\"live\" data-state=\"off\" title=\"Updates as agents pay\">\
         <span class=\"dot\"></span><span id=\"live-text\">static page (reload to update)</span></p>\
         </header><main>",
        store = escape(&snap.store),
    );

    // The kill switch, first and loud.
    let _ = write!(
        h,
        "<section id=\"pause\" class=\"pause {class}\">{inner}</section>",
        class = if snap.pause.is_some() {
            "paused"
        } else {
            "running"
        },
        inner = pause_inner(snap.pause.as_ref()),
    );

    // Totals and limits.
    let _ = write!(
        h,
        "<section class=\"cards\" id=\"totals\">{}</section>",
        totals_inner(snap)
    );
    let _ = write!(
        h,
        "<section><h2>Limits</h2><p class=\"muted\">What every agent using these settings is held to \
         (config file, environment and flags, as the CLI resolves them).</p>\
         <dl class=\"limits\" id=\"limits\">{}</dl></section>",
        limits_inner(&snap.config, snap.last_day_msat)
    );

    // Sessions and pools.
    let _ = write!(
        h,
        "<section><h2>Sessions and agents</h2><div class=\"scroll\"><table id=\"sessions\">\
         <thead><tr><th>Session</th><th>Pool</th><th class=\"num\">Budget</th><th class=\"num\">Spent</th>\
         <th class=\"num\">Reserved</th><th class=\"num\">Left</th><th>Used</th><th class=\"num\">Payments</th>\
         <th>Last seen</th></tr></thead><tbody id=\"sessions-body\">{}</tbody></table></div>\
         <h3>Server pools</h3><p class=\"muted\">Every MCP session of one <code>serve</code> process \
         draws on its pool too; its budget is the server budget of these settings.</p>\
         <div class=\"scroll\"><table id=\"pools\"><thead><tr><th>Pool</th><th class=\"num\">Sessions</th>\
         <th class=\"num\">Budget</th><th class=\"num\">Spent</th><th class=\"num\">Reserved</th>\
         <th class=\"num\">Left</th></tr></thead><tbody id=\"pools-body\">{}</tbody></table></div></section>",
        sessions_rows(snap),
        pools_rows(snap),
    );

    // Spend over time.
    let _ = write!(
        h,
        "<section><h2>Spend over time</h2><div class=\"charts\">\
         <figure id=\"chart-hour\" class=\"chart-box\">{}</figure>\
         <figure id=\"chart-day\" class=\"chart-box\">{}</figure></div></section>",
        super::chart::svg(&snap.hourly, &snap.ranking),
        super::chart::svg(&snap.daily, &snap.ranking),
    );

    // Payments, filterable.
    let _ = write!(
        h,
        "<section><h2>Payments</h2><form id=\"filter\" class=\"filter\" method=\"get\" action=\"/\">{}\
         <button type=\"submit\">Filter</button> <a href=\"/\" id=\"filter-clear\">clear</a></form>\
         <p class=\"muted\" id=\"payments-count\">{}</p>\
         <div class=\"scroll\"><table id=\"payments\"><thead><tr><th>Time</th><th>Session</th><th>Origin</th>\
         <th>URL</th><th class=\"num\">Amount</th><th class=\"num\">Fee</th><th>Status</th><th>Scheme</th></tr></thead>\
         <tbody id=\"payments-body\">{}</tbody></table></div></section>",
        filter_fields(snap, filter),
        escape(&payments_count(snap.payments.len(), filter.limit)),
        payments_rows(snap),
    );

    // Tokens.
    let _ = write!(
        h,
        "<section><h2>Tokens</h2><p class=\"muted\">By origin and status; the credentials \
         themselves never leave the store.</p><div class=\"scroll\"><table id=\"tokens\"><thead><tr>\
         <th>Origin</th><th>Status</th><th>Scheme</th><th class=\"num\">Tokens</th><th class=\"num\">Paid</th></tr></thead>\
         <tbody id=\"tokens-body\">{}</tbody></table></div></section>",
        tokens_rows(snap)
    );

    // Pause history.
    let _ = write!(
        h,
        "<section><h2>Pause history</h2><div class=\"scroll\"><table id=\"history\"><thead><tr>\
         <th>Paused</th><th>By</th><th>Reason</th><th>Resumed</th><th>By</th></tr></thead>\
         <tbody id=\"history-body\">{}</tbody></table></div></section>",
        history_rows(&snap.history)
    );

    let _ = write!(
        h,
        "</main><footer class=\"muted\">Times in UTC. Amounts in sats (amount plus routing fee). \
         Rendered <span id=\"rendered\">{}</span>. JSON under <a href=\"/api/summary\">/api</a>.</footer></body></html>",
        utc(snap.now)
    );
    h
}

/// The pause banner (paused) or switch (running).
pub(crate) fn pause_inner(pause: Option<&Pause>) -> String {
    match pause {
        Some(p) => format!(
            "<div class=\"banner\"><strong id=\"pause-state\">Paused: no agent can pay.</strong> \
             <span>Paused by <b id=\"pause-by\">{by}</b> at <span id=\"pause-since\">{since}</span>{reason}.</span></div>\
             <form method=\"post\" action=\"/api/resume\" id=\"resume-form\">\
             <button type=\"submit\" id=\"resume\" class=\"go\">Resume payments</button></form>",
            by = escape(&p.by),
            since = utc(p.since),
            reason = p
                .reason
                .as_deref()
                .map(|r| format!(": <q id=\"pause-reason\">{}</q>", escape(r)))
                .unwrap_or_default(),
        ),
        None => "<div class=\"banner\"><strong id=\"pause-state\">Payments allowed.</strong> \
                 <span>One click stops every agent paying from this store.</span></div>\
                 <form method=\"post\" action=\"/api/pause\" id=\"pause-form\">\
                 <input type=\"text\" name=\"reason\" id=\"pause-reason-input\" maxlength=\"500\" \
                 placeholder=\"Reason (optional)\" aria-label=\"Reason\">\
                 <button type=\"submit\" id=\"pause-button\" class=\"stop\">Pause all payments</button></form>"
            .to_string(),
    }
}

pub(crate) fn totals_inner(snap: &Snapshot) -> String {
    let t = &snap.all_time;
    let reserved: u64 = snap.sessions.iter().map(|s| s.summary.reserved_msat).sum();
    let card = |id: &str, label: &str, value: String, note: String| {
        format!(
            "<div class=\"card\"><div class=\"label\">{label}</div><div class=\"value\" id=\"{id}\">{value}</div>\
             <div class=\"note\">{note}</div></div>"
        )
    };
    [
        card(
            "total-spent",
            "Spent, all time",
            escape(&sats(t.spent_msat)),
            escape(&format!("{} in fees", sats(t.fee_msat))),
        ),
        card(
            "total-payments",
            "Payments",
            t.payments.to_string(),
            match t.by_origin.len() {
                1 => "1 origin".to_string(),
                n => format!("{n} origins"),
            },
        ),
        card(
            "total-day",
            "Last 24 hours",
            escape(&sats(snap.last_day_msat)),
            escape(&match snap.config.daily_cap_msat {
                Some(cap) => format!("of a {} daily cap", sats(cap)),
                None => "no daily cap".to_string(),
            }),
        ),
        card(
            "total-reserved",
            "Reserved now",
            escape(&sats(reserved)),
            "held by payments under way".to_string(),
        ),
    ]
    .concat()
}

pub(crate) fn limits_inner(c: &ClientConfig, _last_day: u64) -> String {
    let rows = [
        ("limit-max-cost", "Per-request cap", sats(c.max_cost_msat)),
        ("limit-fee", "Fee cap per payment", sats(c.fee_limit_msat)),
        (
            "limit-session",
            "Session budget",
            sats(c.session_budget_msat),
        ),
        (
            "limit-server",
            "Server budget",
            sats(c.server_budget_msat.unwrap_or(c.session_budget_msat)),
        ),
        (
            "limit-approve",
            "Approval above",
            opt_sats(c.approve_above_msat, "never asked"),
        ),
        (
            "limit-rate",
            "Payments per minute",
            c.payments_per_minute.to_string(),
        ),
        (
            "limit-daily",
            "24-hour cap",
            opt_sats(c.daily_cap_msat, "none"),
        ),
    ];
    rows.iter()
        .map(|(id, label, value)| {
            format!(
                "<div><dt>{label}</dt><dd id=\"{id}\">{}</dd></div>",
                escape(value)
            )
        })
        .collect()
}

fn sessions_rows(snap: &Snapshot) -> String {
    if snap.sessions.is_empty() {
        return "<tr class=\"empty\"><td colspan=\"9\">No session has been opened in this store yet.</td></tr>"
            .into();
    }
    let mut out = String::new();
    for s in &snap.sessions {
        let m = &s.summary;
        let used = m.spent_msat.saturating_add(m.reserved_msat);
        let agent = m.session.strip_prefix("agent-").is_some();
        let _ = write!(
            out,
            "<tr data-session=\"{name}\"><td>{name}{tag}</td><td>{pool}</td><td class=\"num\">{budget}</td>\
             <td class=\"num\">{spent}</td><td class=\"num\">{reserved}</td><td class=\"num\">{left}</td>\
             <td><progress max=\"{pmax}\" value=\"{pval}\"></progress></td><td class=\"num\">{payments}{unresolved}</td>\
             <td>{seen}</td></tr>",
            name = escape(&m.session),
            tag = if agent {
                " <span class=\"tag\">agent</span>"
            } else {
                ""
            },
            pool = s.pool.as_deref().map(escape).unwrap_or_else(|| "—".into()),
            budget = sats(m.budget_msat),
            spent = sats(m.spent_msat),
            reserved = sats(m.reserved_msat),
            left = sats(m.left_msat),
            pmax = m.budget_msat.max(1),
            pval = used.min(m.budget_msat),
            payments = m.payments,
            unresolved = if m.unresolved > 0 {
                format!(
                    " <span class=\"tag warn\">{} unresolved</span>",
                    m.unresolved
                )
            } else {
                String::new()
            },
            seen = utc(m.last_seen_at),
        );
    }
    out
}

fn pools_rows(snap: &Snapshot) -> String {
    if snap.pools.is_empty() {
        return "<tr class=\"empty\"><td colspan=\"6\">No server pool: no <code>serve</code> process has used this store.</td></tr>"
            .into();
    }
    let mut out = String::new();
    for p in &snap.pools {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&p.pool),
            p.sessions,
            sats(p.budget_msat),
            sats(p.spent_msat),
            sats(p.reserved_msat),
            sats(p.left_msat),
        );
    }
    out
}

fn filter_fields(snap: &Snapshot, filter: &PaymentFilter) -> String {
    let select = |name: &str, label: &str, options: &[String], chosen: Option<&str>| {
        let mut s = format!(
            "<label>{label} <select name=\"{name}\" id=\"filter-{name}\"><option value=\"\">all</option>"
        );
        for o in options {
            let _ = write!(
                s,
                "<option value=\"{v}\"{sel}>{v}</option>",
                v = escape(o),
                sel = if chosen == Some(o.as_str()) {
                    " selected"
                } else {
                    ""
                }
            );
        }
        s.push_str("</select></label> ");
        s
    };
    let sessions: Vec<String> = snap
        .sessions
        .iter()
        .map(|s| s.summary.session.clone())
        .collect();
    let statuses: Vec<String> = [
        PaymentState::Succeeded,
        PaymentState::Reserved,
        PaymentState::InFlight,
        PaymentState::Failed,
        PaymentState::Released,
    ]
    .iter()
    .map(|s| s.as_str().to_string())
    .collect();
    let mut origins = snap.origins.clone();
    if let Some(o) = &filter.origin
        && !origins.contains(o)
    {
        origins.push(o.clone());
    }
    [
        select("session", "Session", &sessions, filter.session.as_deref()),
        select("origin", "Origin", &origins, filter.origin.as_deref()),
        select(
            "status",
            "Status",
            &statuses,
            filter.status.as_ref().map(|s| s.as_str()),
        ),
    ]
    .concat()
}

pub(crate) fn payments_count(shown: usize, limit: usize) -> String {
    match shown {
        0 => "No payment matches.".into(),
        1 => "1 payment, newest first.".into(),
        n if n >= limit => format!("The newest {n} payments (the API's limit= shows more)."),
        n => format!("{n} payments, newest first."),
    }
}

fn payments_rows(snap: &Snapshot) -> String {
    if snap.payments.is_empty() {
        return "<tr class=\"empty\"><td colspan=\"8\">No payment yet.</td></tr>".into();
    }
    let mut out = String::new();
    for p in &snap.payments {
        let _ = write!(
            out,
            "<tr data-id=\"{id}\"><td>{time}</td><td>{session}</td><td>{origin}</td>\
             <td class=\"url\"><span title=\"{url}\">{url}</span></td><td class=\"num\">{amount}</td>\
             <td class=\"num\">{fee}</td><td><span class=\"status {status}\"{err}>{status}</span></td><td>{scheme}</td></tr>",
            id = p.id,
            time = utc(p.created_at),
            session = escape(&p.session),
            origin = escape(&p.origin),
            url = escape(&p.url),
            amount = sats(p.amount_msat),
            fee = sats(p.fee_msat),
            status = p.state.as_str(),
            err = p
                .error
                .as_deref()
                .map(|e| format!(" title=\"{}\"", escape(e)))
                .unwrap_or_default(),
            scheme = p.scheme.as_str(),
        );
    }
    out
}

fn tokens_rows(snap: &Snapshot) -> String {
    if snap.token_counts.is_empty() {
        return "<tr class=\"empty\"><td colspan=\"5\">No token bought yet.</td></tr>".into();
    }
    let mut out = String::new();
    for t in &snap.token_counts {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><span class=\"status {s}\">{s}</span></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&t.origin),
            t.scheme.as_str(),
            t.tokens,
            sats(t.spent_msat),
            s = t.status.as_str(),
        );
    }
    out
}

fn history_rows(history: &[PauseEvent]) -> String {
    if history.is_empty() {
        return "<tr class=\"empty\"><td colspan=\"5\">Never paused.</td></tr>".into();
    }
    let mut out = String::new();
    for e in history {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            utc(e.paused_at),
            escape(&e.paused_by),
            e.reason.as_deref().map(escape).unwrap_or_default(),
            e.resumed_at.map_or_else(|| "standing".into(), utc),
            e.resumed_by.as_deref().map(escape).unwrap_or_default(),
        );
    }
    out
}

/// A small page of its own: a refusal, or where to go.
pub(crate) fn notice(title: &str, body_html: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><link rel=\"stylesheet\" href=\"/static/dashboard.css\"></head>\
         <body><main class=\"notice\"><h1>{t}</h1>{body_html}</main></body></html>",
        t = escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_user_data_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}

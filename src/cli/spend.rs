//! `l402-mcp spend`: where a session stands, and what was spent all time.

use clap::Args;
use serde_json::{Value, json};

use l402_mcp::client::{BudgetView, L402Client, PaymentRecord, SpendReport, SpendTotals};

use super::output::{count, sats, stdout_json, stdout_line, utc};
use super::stderr::say_err;
use super::{ClientFlags, Ctx, EXIT_OK, Failure, make_payer, open_store};

/// Recent payments shown in the human output (JSON has them all).
const RECENT: usize = 10;

#[derive(Debug, Args)]
pub struct SpendArgs {
    /// One JSON object: {"session": {...}, "payments": [...], "all_time": {...}}.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    client: ClientFlags,
}

pub async fn run(args: SpendArgs, ctx: Ctx) -> Result<u8, Failure> {
    let settings = args.client.settings()?;
    // Resolving what earlier runs left pending needs the payer; without
    // one the report says what is unresolved.
    let payer = match make_payer(&settings).await {
        Ok(payer) => Some(payer),
        Err(_) => {
            tracing::debug!("no payer configured; pending payments not resolved");
            None
        }
    };
    let client = L402Client::for_reports(settings.client_config(), payer, open_store(&settings)?)?;
    let report = client.spend_report().await?;
    let session = &client.config().session;

    if args.json {
        stdout_json(&json!({
            "session": report.budget.as_ref().map(|b| session_json(b, report.unresolved)).unwrap_or_else(|| json!({
                "session": session, "exists": false,
            })),
            "payments": report.payments.iter().map(payment_json).collect::<Vec<_>>(),
            "all_time": totals_json(&report.all_time),
            "wallet_balance_msat": report.wallet_balance_msat,
            "paused": report.paused.as_ref().map(|p| json!({
                "since": p.since, "since_utc": utc(p.since), "by": p.by, "reason": p.reason,
            })),
        }))?;
    } else {
        if let Some(p) = &report.paused {
            stdout_line(&format!(
                "PAUSED: no payment starts until `l402-mcp resume` ({p})"
            ))?;
        }
        print_human(session, &report, &settings.store_path())?;
    }
    if !ctx.quiet && report.unresolved > 0 && !client.can_pay() {
        say_err!(
            "note: {} unresolved and holding budget; configure the payer (--nwc-file, --lnd-host or --dev-node) \
             so that they can be resolved",
            count(report.unresolved, "payment")
        );
    }
    Ok(EXIT_OK)
}

fn print_human(
    session: &str,
    report: &SpendReport,
    store: &std::path::Path,
) -> Result<(), Failure> {
    match &report.budget {
        Some(s) => {
            stdout_line(&format!(
                "session {}: budget {}, spent {}, reserved {}, left {}, {}",
                s.session,
                sats(s.budget_msat),
                sats(s.spent_msat),
                sats(s.reserved_msat),
                sats(s.left_msat),
                count(s.payments, "payment")
            ))?;
            if report.unresolved > 0 {
                stdout_line(&format!(
                    "  {} unresolved (outcome not known yet)",
                    count(report.unresolved, "payment")
                ))?;
            }
        }
        None => stdout_line(&format!(
            "session {session}: nothing spent yet (no such session in {})",
            store.display()
        ))?,
    }
    let payments = &report.payments;
    if !payments.is_empty() {
        let skip = payments.len().saturating_sub(RECENT);
        if skip > 0 {
            stdout_line(&format!("  ... {skip} earlier payments (--json lists all)"))?;
        }
        for p in &payments[skip..] {
            stdout_line(&format!(
                "  {}  {:<9}  {:<7}  {:>9} + {} fee  {}",
                utc(p.created_at),
                p.state.as_str(),
                p.scheme.as_str(),
                sats(p.amount_msat),
                sats(p.fee_msat),
                p.url
            ))?;
        }
    }
    if let Some(balance) = report.wallet_balance_msat {
        stdout_line(&format!(
            "wallet balance: {} (the wallet's own figure; the budget above is what may be spent)",
            sats(balance)
        ))?;
    }
    let totals = &report.all_time;
    stdout_line(&format!(
        "all time, all sessions: {} in {} ({} + {} fees)",
        sats(totals.spent_msat),
        count(totals.payments, "payment"),
        sats(totals.amount_msat),
        sats(totals.fee_msat)
    ))?;
    for o in &totals.by_origin {
        stdout_line(&format!(
            "  {:>12}  {:>12}  {}",
            sats(o.spent_msat),
            count(o.payments, "payment"),
            o.origin
        ))?;
    }
    Ok(())
}

fn session_json(s: &BudgetView, unresolved: u64) -> Value {
    json!({
        "session": s.session,
        "exists": true,
        "budget_msat": s.budget_msat,
        "spent_msat": s.spent_msat,
        "reserved_msat": s.reserved_msat,
        "left_msat": s.left_msat,
        "payments": s.payments,
        "unresolved": unresolved,
    })
}

fn payment_json(p: &PaymentRecord) -> Value {
    json!({
        "id": p.id,
        "origin": p.origin,
        "url": p.url,
        "payment_hash": p.payment_hash.to_hex(),
        "amount_msat": p.amount_msat,
        "fee_msat": p.fee_msat,
        "fee_limit_msat": p.fee_limit_msat,
        "state": p.state.as_str(),
        "scheme": p.scheme.as_str(),
        "error": p.error,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    })
}

fn totals_json(t: &SpendTotals) -> Value {
    // The totals as they are: every amount in msat, per origin too.
    json!(t)
}

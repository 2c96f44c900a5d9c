//! `l402-mcp tokens`: the tokens in the store. Only their public facts are
//! ever printed: never a macaroon, never a preimage.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use l402_mcp::client::{L402Client, TokenInfo, TokenScheme, TokenStatus};

use super::output::{sats, stdout_json, stdout_line, utc};
use super::stderr::{say_err, say_err_part};
use super::{Ctx, EXIT_OK, Failure, StoreFlags, open_store};

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    command: TokensCommand,

    #[command(flatten)]
    store: StoreFlags,
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Every token: id, status, origin, price, session, times.
    List {
        /// One JSON object: {"tokens": [...]}.
        #[arg(long)]
        json: bool,
    },
    /// One token, by id or payment hash (or a unique prefix of one).
    Show {
        /// The token's id, or its payment hash.
        id: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delete one token (a pending one is kept: its payment's outcome is
    /// not known yet). A usable (paid) token was bought with money: on a
    /// terminal you are asked first; elsewhere --force is needed.
    Remove {
        /// The token's id, or its payment hash.
        id: String,
        /// Delete a usable token without asking.
        #[arg(long)]
        force: bool,
        /// One JSON object: the token removed.
        #[arg(long)]
        json: bool,
    },
    /// Delete every token except pending ones. A deleted token that was
    /// still good has to be bought again: with usable tokens among them you
    /// are asked first on a terminal; elsewhere --force is needed.
    Clear {
        /// Delete usable tokens without asking.
        #[arg(long)]
        force: bool,
        /// One JSON object: {"removed": N, "usable_removed": N, "kept_pending": N}.
        #[arg(long)]
        json: bool,
    },
}

impl TokensArgs {
    pub fn json(&self) -> bool {
        match self.command {
            TokensCommand::List { json }
            | TokensCommand::Show { json, .. }
            | TokensCommand::Remove { json, .. }
            | TokensCommand::Clear { json, .. } => json,
        }
    }
}

/// Whether deleting `count` usable tokens (bought for `msat`) may go on:
/// `--force`, or a yes at the terminal; without a terminal, a refusal that
/// says to pass `--force`.
fn confirm_delete(what: &str, count: usize, msat: u64, force: bool) -> Result<(), Failure> {
    use std::io::IsTerminal;
    if count == 0 || force {
        return Ok(());
    }
    let tokens = if count == 1 { "token" } else { "tokens" };
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Failure::general(
            "needs_force",
            format!(
                "{what} would delete {count} usable {tokens}, bought for {}; they would have to \
                 be bought again. Pass --force to delete them",
                sats(msat)
            ),
        ));
    }
    say_err_part!(
        "{what} deletes {count} usable {tokens}, bought for {}; they would have to be bought \
         again. Delete? [y/N] ",
        sats(msat)
    );
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure::general("declined", "nothing was deleted"))
    }
}

pub async fn run(args: TokensArgs, ctx: Ctx) -> Result<u8, Failure> {
    let settings = args.store.settings()?;
    // The tokens need no payer: nothing is paid or resolved here.
    let client = L402Client::for_reports(settings.client_config(), None, open_store(&settings)?)?;
    match args.command {
        TokensCommand::List { json } => {
            let tokens = client.tokens().await?;
            if json {
                let all: Vec<Value> = tokens.iter().map(token_json).collect();
                stdout_json(&json!({ "tokens": all }))?;
            } else if tokens.is_empty() {
                stdout_line(&format!("no tokens in {}", settings.store_path().display()))?;
            } else {
                stdout_line(&format!(
                    "{:>4}  {:<7}  {:<7}  {:>9}  {:<12}  {:<20}  ORIGIN",
                    "ID", "STATUS", "SCHEME", "PRICE", "SESSION", "BOUGHT"
                ))?;
                for t in &tokens {
                    stdout_line(&format!(
                        "{:>4}  {:<7}  {:<7}  {:>9}  {:<12}  {:<20}  {}",
                        t.id,
                        t.status.as_str(),
                        t.scheme.as_str(),
                        sats(t.amount_msat),
                        t.session,
                        t.paid_at.map_or_else(|| "-".to_string(), utc),
                        t.origin
                    ))?;
                }
            }
            Ok(EXIT_OK)
        }
        TokensCommand::Show { id, json } => {
            let token = client.token(&id.parse()?).await?;
            if json {
                stdout_json(&token_json(&token))?;
            } else {
                let time = |t: Option<u64>| t.map_or_else(|| "-".to_string(), utc);
                for (k, v) in [
                    ("id", token.id.to_string()),
                    ("status", describe(&token)),
                    ("scheme", scheme_words(&token)),
                    ("origin", token.origin.to_string()),
                    ("price", sats(token.amount_msat)),
                    ("fee", sats(token.fee_msat)),
                    ("payment hash", token.payment_hash.to_hex()),
                    ("session", token.session.clone()),
                    ("created", utc(token.created_at)),
                    ("paid", time(token.paid_at)),
                    ("last used", time(token.last_used_at)),
                ] {
                    stdout_line(&format!("{k:<13} {v}"))?;
                }
            }
            Ok(EXIT_OK)
        }
        TokensCommand::Remove { id, force, json } => {
            let token = client.token(&id.parse()?).await?;
            if token.status == TokenStatus::Pending {
                // The client refuses it: say so before asking anything.
                return Err(client.remove_token(&token).await.err().map_or_else(
                    || Failure::general("pending_token", "the token is pending"),
                    |e| Failure::general("pending_token", e.to_string()),
                ));
            }
            let usable = usize::from(token.status == TokenStatus::Paid);
            confirm_delete(
                &format!("removing token {}", token.id),
                usable,
                token.amount_msat,
                force,
            )?;
            client.remove_token(&token).await?;
            if json {
                stdout_json(&json!({ "removed": token_json(&token) }))?;
            } else if !ctx.quiet {
                say_err!(
                    "removed token {} ({}, {}, {})",
                    token.id,
                    token.status,
                    token.origin,
                    sats(token.amount_msat)
                );
            }
            Ok(EXIT_OK)
        }
        TokensCommand::Clear { force, json } => {
            let tokens = client.tokens().await?;
            let count = |s: TokenStatus| tokens.iter().filter(|t| t.status == s).count();
            let usable = count(TokenStatus::Paid);
            let usable_msat = tokens
                .iter()
                .filter(|t| t.status == TokenStatus::Paid)
                .map(|t| t.amount_msat)
                .sum();
            confirm_delete("tokens clear", usable, usable_msat, force)?;
            let cleared = client.clear_tokens().await?;
            let (removed, pending) = (cleared.removed, cleared.kept_pending);
            if json {
                stdout_json(&json!({
                    "removed": removed,
                    "usable_removed": usable,
                    "kept_pending": pending,
                }))?;
            } else if !ctx.quiet {
                let kept = if pending > 0 {
                    format!("; kept {pending} pending (their payments' outcome is not known yet)")
                } else {
                    String::new()
                };
                say_err!("removed {removed} tokens{kept}");
            }
            Ok(EXIT_OK)
        }
    }
}

fn describe(t: &TokenInfo) -> String {
    match (t.status, t.scheme) {
        (TokenStatus::Pending, _) => "pending (payment outcome not known yet)",
        (TokenStatus::Paid, TokenScheme::L402) => "paid (usable)",
        (TokenStatus::Paid, TokenScheme::Payment) => {
            "paid, not yet presented (usable once, at the path it was bought for)"
        }
        (TokenStatus::Stale, TokenScheme::L402) => "stale (the server no longer accepts it)",
        (TokenStatus::Stale, TokenScheme::Payment) => {
            "used (a Payment credential pays for one request)"
        }
        (TokenStatus::Failed, _) => "failed (the payment failed; nothing spent)",
    }
    .to_string()
}

fn scheme_words(t: &TokenInfo) -> String {
    match t.scheme {
        TokenScheme::L402 => "l402".into(),
        TokenScheme::Payment => format!(
            "payment (bought for {}{})",
            t.bound_path.as_deref().unwrap_or("?"),
            if t.receipt.is_some() {
                "; the server sent a Payment-Receipt"
            } else {
                ""
            }
        ),
    }
}

fn token_json(t: &TokenInfo) -> Value {
    json!({
        "id": t.id,
        "status": t.status.as_str(),
        "origin": t.origin.as_str(),
        "amount_msat": t.amount_msat,
        "fee_msat": t.fee_msat,
        "payment_hash": t.payment_hash.to_hex(),
        "session": t.session,
        "created_at": t.created_at,
        "paid_at": t.paid_at,
        "last_used_at": t.last_used_at,
        "scheme": t.scheme.as_str(),
        "bound_path": t.bound_path,
        "payment_receipt": t.receipt,
    })
}

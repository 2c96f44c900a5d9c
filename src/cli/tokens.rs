//! `l402-mcp tokens`: the tokens in the store. Only their public facts are
//! ever printed: never a macaroon, never a preimage.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use l402_mcp::lightning::PaymentHash;
use l402_mcp::store::{TokenInfo, TokenStatus};

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
    let store = open_store(&settings)?;
    match args.command {
        TokensCommand::List { json } => {
            let tokens = store.list_tokens()?;
            if json {
                let all: Vec<Value> = tokens.iter().map(token_json).collect();
                stdout_json(&json!({ "tokens": all }))?;
            } else if tokens.is_empty() {
                stdout_line(&format!("no tokens in {}", store.location()))?;
            } else {
                stdout_line(&format!(
                    "{:>4}  {:<7}  {:>9}  {:<12}  {:<20}  ORIGIN",
                    "ID", "STATUS", "PRICE", "SESSION", "BOUGHT"
                ))?;
                for t in &tokens {
                    stdout_line(&format!(
                        "{:>4}  {:<7}  {:>9}  {:<12}  {:<20}  {}",
                        t.id,
                        t.status.as_str(),
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
            let token = find(&store.list_tokens()?, &id)?;
            if json {
                stdout_json(&token_json(&token))?;
            } else {
                let time = |t: Option<u64>| t.map_or_else(|| "-".to_string(), utc);
                for (k, v) in [
                    ("id", token.id.to_string()),
                    ("status", describe(token.status).to_string()),
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
            let token = find(&store.list_tokens()?, &id)?;
            if token.status == TokenStatus::Pending {
                return Err(Failure::general(
                    "pending_token",
                    format!(
                        "token {} is pending: its payment's outcome is not known yet, and the \
                         token is what stops its invoice being paid twice; `l402-mcp spend` \
                         resolves it with the payer",
                        token.id
                    ),
                ));
            }
            let usable = usize::from(token.status == TokenStatus::Paid);
            confirm_delete(
                &format!("removing token {}", token.id),
                usable,
                token.amount_msat,
                force,
            )?;
            store.remove_token(token.id)?;
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
            let tokens = store.list_tokens()?;
            let count = |s: TokenStatus| tokens.iter().filter(|t| t.status == s).count();
            let pending = count(TokenStatus::Pending);
            let usable = count(TokenStatus::Paid);
            let usable_msat = tokens
                .iter()
                .filter(|t| t.status == TokenStatus::Paid)
                .map(|t| t.amount_msat)
                .sum();
            confirm_delete("tokens clear", usable, usable_msat, force)?;
            let removed = store.clear_tokens()?;
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

/// The token `id` names: a row id, or a payment hash or unique prefix of
/// one (at least 6 hex digits).
fn find(tokens: &[TokenInfo], id: &str) -> Result<TokenInfo, Failure> {
    let id = id.trim();
    let not_found = || {
        Failure::general(
            "not_found",
            format!("no token {id:?}; `l402-mcp tokens list` shows them"),
        )
    };
    if let Ok(n) = id.parse::<i64>()
        && let Some(t) = tokens.iter().find(|t| t.id == n)
    {
        return Ok(t.clone());
    }
    if let Ok(hash) = id.parse::<PaymentHash>() {
        return tokens
            .iter()
            .find(|t| t.payment_hash == hash)
            .cloned()
            .ok_or_else(not_found);
    }
    let prefix = id.to_ascii_lowercase();
    if prefix.len() >= 6 && prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        let matches: Vec<&TokenInfo> = tokens
            .iter()
            .filter(|t| t.payment_hash.to_hex().starts_with(&prefix))
            .collect();
        return match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(not_found()),
            _ => Err(Failure::general(
                "ambiguous",
                format!(
                    "{id:?} is the start of {} tokens' payment hashes; give more of it",
                    matches.len()
                ),
            )),
        };
    }
    Err(not_found())
}

fn describe(s: TokenStatus) -> &'static str {
    match s {
        TokenStatus::Pending => "pending (payment outcome not known yet)",
        TokenStatus::Paid => "paid (usable)",
        TokenStatus::Stale => "stale (the server no longer accepts it)",
        TokenStatus::Failed => "failed (the payment failed; nothing spent)",
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
    })
}

//! `l402-mcp pause` and `l402-mcp resume`: the kill switch. A pause stops
//! every payment of every process that shares the store (stdio and HTTP
//! servers, CLI runs) before its next payment; payments already sent
//! complete and are recorded, and tokens bought before keep working.

use clap::Args;
use serde_json::{Value, json};

use l402_mcp::client::{L402Client, Pause};

use super::output::{stdout_json, stdout_line, utc};
use super::{Ctx, EXIT_OK, Failure, StoreFlags, open_store};

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Why, in a sentence: agents are told it when a payment is refused,
    /// and the dashboard shows it.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    /// Say whether payments are paused, and change nothing.
    #[arg(long)]
    pub status: bool,

    /// One JSON object: {"paused": true|false, "pause": {...}|null}.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    store: StoreFlags,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// One JSON object: {"resumed": true|false, "pause": {...}|null}.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    store: StoreFlags,
}

/// Who is pausing or resuming, as the history and the agents see it: this
/// command, the user running it and its process.
fn author(command: &str) -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty() && !u.chars().any(char::is_control));
    match user {
        Some(u) => format!("{command} (user {u}, pid {})", std::process::id()),
        None => format!("{command} (pid {})", std::process::id()),
    }
}

fn pause_json(p: &Pause) -> Value {
    json!({ "since": p.since, "since_utc": utc(p.since), "by": p.by, "reason": p.reason })
}

fn describe(p: &Pause) -> String {
    let reason = p
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    format!("since {} by {}{reason}", utc(p.since), p.by)
}

fn client(store: &StoreFlags) -> Result<L402Client, Failure> {
    let settings = store.settings()?;
    Ok(L402Client::for_reports(
        settings.client_config(),
        None,
        open_store(&settings)?,
    )?)
}

pub async fn run_pause(args: PauseArgs, _ctx: Ctx) -> Result<u8, Failure> {
    let client = client(&args.store)?;
    if args.status {
        let standing = client.paused().await?;
        if args.json {
            stdout_json(&json!({
                "paused": standing.is_some(),
                "pause": standing.as_ref().map(pause_json),
            }))?;
        } else {
            match &standing {
                Some(p) => stdout_line(&format!("payments are paused {}", describe(p)))?,
                None => stdout_line("payments are not paused")?,
            }
        }
        return Ok(EXIT_OK);
    }
    let was = client.paused().await?;
    let pause = client
        .pause(args.reason.clone(), author("l402-mcp pause"))
        .await?;
    if args.json {
        stdout_json(
            &json!({ "paused": true, "already": was.is_some(), "pause": pause_json(&pause) }),
        )?;
    } else if was.is_some() {
        stdout_line(&format!(
            "payments were already paused {}; nothing changed",
            describe(&pause)
        ))?;
    } else {
        stdout_line(&format!(
            "payments are paused {}. No payment starts until `l402-mcp resume`; payments \
             already sent complete and are recorded, and tokens bought before keep working",
            describe(&pause)
        ))?;
    }
    Ok(EXIT_OK)
}

pub async fn run_resume(args: ResumeArgs, _ctx: Ctx) -> Result<u8, Failure> {
    let client = client(&args.store)?;
    let lifted = client.resume(author("l402-mcp resume")).await?;
    if args.json {
        stdout_json(
            &json!({ "resumed": lifted.is_some(), "pause": lifted.as_ref().map(pause_json) }),
        )?;
    } else {
        match &lifted {
            Some(p) => stdout_line(&format!(
                "payments resumed (they had been paused {})",
                describe(p)
            ))?,
            None => stdout_line("payments were not paused; nothing changed")?,
        }
    }
    Ok(EXIT_OK)
}

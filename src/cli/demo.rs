//! `l402-mcp demo`: the whole thing on one machine, with no node: the
//! gateway and its dev Lightning node on loopback, then an agent played
//! through the real MCP protocol against a spawned `l402-mcp serve`, then
//! the snippets that register `serve` in an MCP client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientCapabilities, Implementation};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use l402_mcp::gateway::{self, Gateway, GatewayConfig};
use l402_mcp::lightning::dev::{self, DevNode};

use super::EXIT_OK;
use super::output::stdout_line;

/// Where the demo gateway listens unless told otherwise (the gateway's
/// own default, so the printed snippets match the README).
const DEMO_LISTEN: &str = "127.0.0.1:8402";
/// The budget the demo's agent gets: enough for the walk-through, small
/// enough to show that it is a budget.
const DEMO_BUDGET_SATS: u64 = 1000;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo gateway listens [default: 127.0.0.1:8402, or a free
    /// port when that one is taken].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Keep the demo's tokens, spend log and gateway key in DIR [default: a
    /// fresh temporary directory, removed on exit; your own tokens are
    /// never touched].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Exit after the walk-through instead of keeping the gateway up.
    #[arg(long)]
    no_wait: bool,
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<u8> {
    // 1. A data directory of the demo's own.
    let (dir, _temp) = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            (d.clone(), None)
        }
        None => {
            let d = std::env::temp_dir().join(format!(
                "l402-mcp-demo-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            (d.clone(), Some(TempDir(d)))
        }
    };

    // 2. The gateway and its dev node, in this process: on loopback only
    // (its POST /dev/pay settles any invoice for free).
    if let Some(addr) = args.listen
        && !addr.ip().is_loopback()
    {
        anyhow::bail!(
            "the demo's gateway runs the dev Lightning node, whose POST /dev/pay settles any \
             invoice for free: it listens on loopback only, not on {addr}; give --listen a \
             127.0.0.1 address (or run `l402-mcp gateway` with lnd to sell to others)"
        );
    }
    let listener = match args.listen {
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?,
        None => match tokio::net::TcpListener::bind(DEMO_LISTEN).await {
            Ok(l) => l,
            Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("cannot listen on 127.0.0.1")?,
        },
    };
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let root_key = gateway::load_or_create_root_key(&dir)?;
    let node = Arc::new(DevNode::new());
    // Used single-use tokens stay used while the data dir lives.
    let spent = gateway::SqliteSpentSet::open_in(&dir)?;
    let gw = Arc::new(
        Gateway::new(GatewayConfig::demo(), root_key, node.clone())?
            .with_spent_set(Arc::new(spent)),
    );
    let app = gw.clone().router().merge(dev::router(node));
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(gateway::serve(listener, gw, app, async move {
        stopped.cancelled().await;
    }));

    say("")?;
    say(&format!(
        "l402-mcp demo: an L402 gateway with its dev Lightning node (regtest, no real money) \
         is up at {base}."
    ))?;
    say(&format!(
        "An agent now talks MCP to `l402-mcp serve` (spawned over stdio) with a {DEMO_BUDGET_SATS}-sat budget."
    ))?;
    say(&format!("Demo data: {}", dir.display()))?;

    // 3. The agent.
    let walked = walk(&base, &dir).await;

    // 4. How to use it for real.
    if let Err(e) = &walked {
        say(&format!("\nThe walk-through failed: {e:#}"))?;
    }
    print_snippets(&base)?;
    // The store outlives this run only while the gateway waits (or in a
    // data dir of the user's own).
    if walked.is_ok() && (!args.no_wait || args.data_dir.is_some()) {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "l402-mcp".into());
        say(&format!(
            "\nWatch what agents spend, live, and stop every payment in one click:\n  \
             {exe} dashboard --data-dir {dir}\n  then open http://127.0.0.1:8404/ \
             (`pause --data-dir {dir}` does the same from the command line; `resume` lifts it)",
            dir = dir.display()
        ))?;
    }
    if walked.is_ok() && !args.no_wait {
        say("\nThe gateway stays up for your own client; press Ctrl-C to stop it.")?;
        super::shutdown_signal().await;
    }
    stop.cancel();
    let _ = server.await;
    walked.map(|()| EXIT_OK)
}

/// Plays the agent: each tool call through real MCP, each answer printed.
async fn walk(base: &str, dir: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    // An empty config file of the demo's own.
    let config = dir.join("client.toml");
    std::fs::write(&config, "# the demo's client settings: none\n")
        .with_context(|| format!("cannot write {}", config.display()))?;
    let mut cmd = tokio::process::Command::new(exe);
    // -q: the server's log lines would interleave with the walk-through.
    cmd.args(["-q", "serve", "--dev-node", base, "--session", "demo"])
        .arg("--budget")
        .arg(DEMO_BUDGET_SATS.to_string())
        .arg("--data-dir")
        .arg(dir)
        // The user's config file and environment stay out of the demo.
        .arg("--config")
        .arg(&config);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("L402_") {
            cmd.env_remove(name);
        }
    }
    let transport = TokioChildProcess::new(cmd).context("cannot start `l402-mcp serve`")?;
    let agent = rmcp::model::ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("l402-mcp-demo-agent", env!("CARGO_PKG_VERSION")),
    )
    .serve(transport)
    .await
    .context("the MCP handshake with `l402-mcp serve` failed")?;

    let outcome = steps(&agent, base).await;
    let _ = agent.cancel().await;
    outcome
}

async fn steps(
    agent: &RunningService<RoleClient, rmcp::model::ClientConfig>,
    base: &str,
) -> anyhow::Result<()> {
    let info = agent.peer_info();
    let server = info
        .as_ref()
        .and_then(|i| i.server_info.as_ref())
        .map(|s| format!("{} {}", s.name, s.version))
        .unwrap_or_else(|| "the server".into());
    let tools = agent.list_all_tools().await.context("tools/list failed")?;
    say(&format!(
        "\n[1] initialize + tools/list: {server} offers {}",
        tools
            .iter()
            .map(|t| t.name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))?;

    let url = format!("{base}/v1/demo");
    let charge = format!("{base}/v1/charge");
    let calls: [(&str, &str, Value); 6] = [
        (
            "preview_cost",
            "what does it cost? (pays nothing)",
            json!({ "url": url }),
        ),
        (
            "l402_fetch",
            "fetch it: 402, pay the invoice, retry with the token",
            json!({ "url": url }),
        ),
        (
            "l402_fetch",
            "fetch it again: the token is reused, nothing paid",
            json!({ "url": url }),
        ),
        (
            "l402_fetch",
            "a route sold with the Payment scheme: one charge pays for this one request",
            json!({ "url": charge }),
        ),
        ("list_tokens", "what was bought", json!({})),
        (
            "spend_summary",
            "what the session spent and has left",
            json!({}),
        ),
    ];
    for (i, (tool, why, args)) in calls.into_iter().enumerate() {
        say(&format!("\n[{}] {tool} {args}  -- {why}", i + 2))?;
        let Value::Object(args) = args else {
            unreachable!("arguments are objects")
        };
        let result = agent
            .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
            .await
            .with_context(|| format!("tools/call {tool} failed"))?;
        print_result(&result)?;
        if result.is_error == Some(true) {
            anyhow::bail!("{tool} answered with an error");
        }
    }
    Ok(())
}

fn print_result(result: &CallToolResult) -> anyhow::Result<()> {
    for block in &result.content {
        if let Some(text) = block.as_text() {
            for line in text.text.lines() {
                say(&format!("    {line}"))?;
            }
        }
    }
    Ok(())
}

fn print_snippets(base: &str) -> anyhow::Result<()> {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "l402-mcp".into());
    let args =
        format!("[\"serve\", \"--dev-node\", \"{base}\", \"--budget\", \"{DEMO_BUDGET_SATS}\"]");
    let server = format!(
        "{{\n  \"mcpServers\": {{\n    \"l402\": {{\n      \"command\": {},\n      \"args\": {args}\n    }}\n  }}\n}}",
        Value::String(exe.clone())
    );
    say("\nRegister `l402-mcp serve` against this gateway in your MCP client:")?;
    say(
        "\n  Claude Desktop: add to claude_desktop_config.json (Settings > Developer > Edit Config):",
    )?;
    indent(&server)?;
    say("\n  Cursor: add to ~/.cursor/mcp.json (or .cursor/mcp.json in a project):")?;
    indent(&server)?;
    say("\n  Claude Code:")?;
    say(&format!(
        "    claude mcp add l402 -- {exe} serve --dev-node {base} --budget {DEMO_BUDGET_SATS}"
    ))?;
    say("\n  Any client over HTTP (Streamable HTTP at /mcp, legacy SSE at /sse):")?;
    say(&format!(
        "    {exe} serve --http 127.0.0.1:8403 --dev-node {base} --budget {DEMO_BUDGET_SATS}"
    ))?;
    say("    claude mcp add --transport http l402-http http://127.0.0.1:8403/mcp")?;
    say(&format!(
        "\nThen ask the agent: \"What does {base}/v1/data cost? Fetch it if it is under 200 sats.\""
    ))?;
    Ok(())
}

fn indent(text: &str) -> anyhow::Result<()> {
    for line in text.lines() {
        say(&format!("    {line}"))?;
    }
    Ok(())
}

fn say(line: &str) -> anyhow::Result<()> {
    stdout_line(line).map_err(|f| anyhow::anyhow!(f.message))
}

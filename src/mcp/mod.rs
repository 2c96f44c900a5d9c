//! The MCP server: the four tools an agent gets (`l402_fetch`,
//! `preview_cost`, `list_tokens`, `spend_summary`) over stdio, Streamable
//! HTTP and the legacy HTTP+SSE transport.
//!
//! This module owns the MCP face of the client and nothing else: every
//! decision about money is the [`L402Client`]'s; a tool handler parses its
//! arguments, calls the client, and turns the answer (or the refusal) into a
//! tool result. What is MCP-specific lives here:
//!
//! - **Budgets.** A budget hangs on nothing an agent can mint. Each stdio
//!   process is one budget session, on every revision. On HTTP and SSE at
//!   2025-11-25 each MCP session is one, named
//!   `<session>-<transport>-<8 hex digits>` (`default-http-3f9a1c2e`); the
//!   sessionless 2026-07-28 calls on HTTP share one budget for the server.
//!   All of these also share one pool (`<session>-server-<8 hex digits>`),
//!   whose budget is the operator's server budget, by default the session
//!   budget: any local process can open sessions, so sessions must not be a
//!   way to open money. Agents the operator declares ([`Agent`]) pay from
//!   their own budgets, found by their bearer tokens, outside the pool.
//! - **Progress and cancellation.** The call's handle goes down with the
//!   fetch, so that a call that sent a progress token hears "paying",
//!   "paid" and "done", and a call cancelled before its payment starts
//!   never pays. A payment already started completes and is recorded.
//! - **Approval.** Above the operator's threshold a person is asked: at
//!   2025-11-25 through form elicitation; at 2026-07-28 through
//!   `input_required` and a URL-mode elicitation of the approval page
//!   on 127.0.0.1, since that revision keeps what authorizes a
//!   payment out of form mode.
//!
//! The server speaks 2026-07-28 and the handshake revisions (2024-11-05 up
//! to 2025-11-25) on stdio and Streamable HTTP; legacy SSE the handshake
//! revisions only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use l402_mcp::client::ClientConfig;
//! use l402_mcp::lightning::dev::DevPayer;
//! use l402_mcp::mcp::McpServer;
//! use l402_mcp::client::Store;
//!
//! let payer = Arc::new(DevPayer::new("http://127.0.0.1:8402")?);
//! let store = Arc::new(Store::open("/tmp/l402-tokens.sqlite")?);
//! let mut config = ClientConfig::default();
//! config.allowed_origins.push("http://127.0.0.1:8402".into());
//! let server = McpServer::new(config, payer, store);
//! server.serve_stdio(std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod agents;
mod approval_page;
mod approve;
mod fence;
mod format;
mod http;
mod progress;
mod render;
mod schema;
mod sse;
mod tools;
mod wire;

pub use agents::{Agent, AgentError, MIN_TOKEN_CHARS as MIN_AGENT_TOKEN_CHARS};
pub(crate) use http::HostOriginCheck;
pub use http::{
    DEFAULT_MAX_SESSIONS, HttpError, HttpLimits, HttpOptions, bind as bind_http,
    router as http_router,
};
pub use schema::{FetchArgs, FetchOutput, PreviewArgs, PreviewOutput, SpendOutput, TokensOutput};
pub use tools::L402Tools;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;

use crate::client::{BudgetPool, ClientConfig, FetchError, L402Client, Store};
use crate::lightning::Payer;

/// How long a person has to answer an approval request before it counts
/// as declined: long enough to read it, short enough that a forgotten
/// prompt does not hold the request (and the origin's lock) for ever.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(120);

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The MCP session could not start (the client never initialized, or
    /// the transport broke before it did).
    #[error("the MCP session did not start: {0}")]
    Initialize(String),
    /// The session's task failed.
    #[error("the MCP session failed: {0}")]
    Session(String),
    /// The HTTP listener failed.
    #[error("{0}")]
    Http(#[from] HttpError),
}

/// What every session shares: the operator's limits, the payer, the store,
/// the agents, and the budgets that outlive one MCP session.
pub(crate) struct Shared {
    pub config: ClientConfig,
    pub payer: Arc<dyn Payer>,
    pub store: Arc<Store>,
    pub approval_timeout: Duration,
    /// The agents the operator declared (HTTP and SSE only).
    pub agents: Vec<Agent>,
    /// The approvals waiting on the approval page (2026-07-28).
    pub desk: Arc<approval_page::Desk>,
    /// The budget of sessionless HTTP calls that name no agent.
    pub sessionless_name: String,
    clients: std::sync::Mutex<
        std::collections::HashMap<Scope, Arc<tokio::sync::OnceCell<Arc<L402Client>>>>,
    >,
}

/// A budget that is not one MCP session's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// The agent at this index.
    Agent(usize),
    /// Streamable HTTP calls at 2026-07-28 without an agent's token: one
    /// budget for the server (in its pool).
    SessionlessHttp,
}

/// The transport a handler serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Stdio,
    Http,
    Sse,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::Http => "http",
            Transport::Sse => "sse",
        }
    }
}

impl Shared {
    fn new(
        config: ClientConfig,
        payer: Arc<dyn Payer>,
        store: Arc<Store>,
        approval_timeout: Duration,
        agents: Vec<Agent>,
    ) -> Self {
        Shared {
            sessionless_name: session_name(&config.session, "http"),
            config,
            payer,
            store,
            approval_timeout,
            agents,
            desk: approval_page::Desk::new(approval_timeout),
            clients: Default::default(),
        }
    }

    /// The client of `scope`, built on first use and shared by every call
    /// in it from then on.
    pub async fn client_for(&self, scope: Scope) -> Result<Arc<L402Client>, FetchError> {
        let cell = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(scope)
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let config = match scope {
                Scope::Agent(i) => self.agents[i].config(&self.config),
                Scope::SessionlessHttp => {
                    let mut c = self.config.clone();
                    c.session = self.sessionless_name.clone();
                    c
                }
            };
            let name = config.session.clone();
            let client = L402Client::new(config, self.payer.clone(), self.store.clone())?;
            tracing::info!(session = %name, "budget session opened");
            Ok(Arc::new(client))
        })
        .await
        .cloned()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.desk.close();
    }
}

/// The MCP server: makes one [`L402Tools`] handler per session.
#[derive(Clone)]
pub struct McpServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("session", &self.shared.config.session)
            .field("payer", &self.shared.payer)
            .field("agents", &self.shared.agents)
            .finish_non_exhaustive()
    }
}

impl McpServer {
    /// A server whose sessions pay through `payer` within `config`'s limits
    /// (`config.session` is the prefix of every session's name), keeping
    /// tokens and the spend log in `store`.
    pub fn new(mut config: ClientConfig, payer: Arc<dyn Payer>, store: Arc<Store>) -> Self {
        // One pool for every session of this server.
        config.pool = Some(BudgetPool {
            name: format!("{}-server-{:08x}", config.session, rand::random::<u32>()),
            budget_msat: config
                .server_budget_msat
                .unwrap_or(config.session_budget_msat),
        });
        McpServer {
            shared: Arc::new(Shared::new(
                config,
                payer,
                store,
                DEFAULT_APPROVAL_TIMEOUT,
                Vec::new(),
            )),
        }
    }

    fn rebuild(&self, approval_timeout: Duration, agents: Vec<Agent>) -> Self {
        let s = &self.shared;
        McpServer {
            shared: Arc::new(Shared::new(
                s.config.clone(),
                s.payer.clone(),
                s.store.clone(),
                approval_timeout,
                agents,
            )),
        }
    }

    /// The same server, giving people `timeout` to answer an approval.
    pub fn with_approval_timeout(self, timeout: Duration) -> Self {
        self.rebuild(timeout, self.shared.agents.clone())
    }

    /// The same server, with these agents: on HTTP, a request bearing an
    /// agent's token pays from that agent's budget within its limits.
    pub fn with_agents(self, agents: Vec<Agent>) -> Result<Self, AgentError> {
        agents::validate(&agents)?;
        Ok(self.rebuild(self.shared.approval_timeout, agents))
    }

    /// The agents declared.
    pub fn agents(&self) -> &[Agent] {
        &self.shared.agents
    }

    /// A handler for one new session on stdio.
    pub fn session(&self, transport: &str) -> L402Tools {
        let t = match transport {
            "http" => Transport::Http,
            "sse" => Transport::Sse,
            _ => Transport::Stdio,
        };
        self.handler(t, None)
    }

    pub(crate) fn handler(
        &self,
        transport: Transport,
        caller: Option<agents::Caller>,
    ) -> L402Tools {
        L402Tools::new(
            self.shared.clone(),
            session_name(&self.shared.config.session, transport.name()),
            transport,
            caller,
        )
    }

    /// Serves one session on stdin/stdout until the client closes stdin or
    /// `shutdown` resolves. Stdout carries MCP messages only.
    pub async fn serve_stdio(&self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let handler = self.session("stdio");
        tracing::info!(session = handler.session_name(), "serving MCP on stdio");
        let running = handler
            .serve(wire::stdio())
            .await
            .map_err(|e| ServeError::Initialize(e.to_string()))?;
        let cancel = running.cancellation_token();
        tokio::select! {
            done = running.waiting() => {
                done.map_err(|e| ServeError::Session(e.to_string()))?;
            }
            () = shutdown => cancel.cancel(),
        }
        Ok(())
    }
}

/// `<base>-<transport>-<8 hex digits>`: unique per session, readable in
/// `l402-mcp spend` and the spend log.
fn session_name(base: &str, transport: &str) -> String {
    format!("{base}-{transport}-{:08x}", rand::random::<u32>())
}

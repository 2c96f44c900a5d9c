//! The MCP server: the four tools an agent gets (`l402_fetch`,
//! `preview_cost`, `list_tokens`, `spend_summary`) over stdio, Streamable
//! HTTP and the legacy HTTP+SSE transport.
//!
//! This module owns the MCP face of the client and nothing else: every
//! decision about money is the [`L402Client`](crate::client::L402Client)'s; a tool handler parses its
//! arguments, calls the client, and turns the answer (or the refusal) into a
//! tool result. What is MCP-specific lives here:
//!
//! - **Sessions.** Each stdio process, and each MCP session on HTTP or SSE,
//!   is one budget session with its own ledger row, named
//!   `<session>-<transport>-<8 hex digits>` (`default-stdio-3f9a1c2e`). Each
//!   starts with the operator's full session budget, and all the sessions
//!   of one server process also share one pool (`<session>-server-<8 hex
//!   digits>`), whose budget is the operator's server budget, by default
//!   the session budget: any local process can open sessions, so sessions
//!   must not be a way to open money. A restarted server starts a new pool;
//!   the optional rolling 24-hour cap bounds all of them together.
//! - **Progress and cancellation.** The payer is wrapped so that a
//!   call that sent a progress token hears "paying" and "paid", and so that a
//!   call cancelled before its payment starts never pays. A payment already
//!   started completes and is recorded.
//! - **Approval.** Above the operator's threshold, the MCP client's user is
//!   asked through elicitation when the client supports it.
//!
//! The server speaks the protocol revisions that have the `initialize`
//! handshake (2024-11-05 up to 2025-11-25). Newer clients probe
//! `server/discover`, see no 2026-07-28 in the answer, and fall back to the
//! handshake: the session-less 2026-07-28 revision has no place for a
//! per-session budget.
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

mod approve;
mod fence;
mod format;
mod http;
mod progress;
mod render;
mod schema;
mod sse;
mod tools;

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

use crate::client::{BudgetPool, ClientConfig, Store};
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

/// What every session shares: the operator's limits, the payer, the store.
pub(crate) struct Shared {
    pub config: ClientConfig,
    pub payer: Arc<dyn Payer>,
    pub store: Arc<Store>,
    pub approval_timeout: Duration,
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
            shared: Arc::new(Shared {
                config,
                payer,
                store,
                approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            }),
        }
    }

    /// The same server, giving people `timeout` to answer an approval.
    pub fn with_approval_timeout(self, timeout: Duration) -> Self {
        let shared = &self.shared;
        McpServer {
            shared: Arc::new(Shared {
                config: shared.config.clone(),
                payer: shared.payer.clone(),
                store: shared.store.clone(),
                approval_timeout: timeout,
            }),
        }
    }

    /// A handler for one new session; `transport` goes into the session's
    /// name (`stdio`, `http`, `sse`).
    pub fn session(&self, transport: &str) -> L402Tools {
        L402Tools::new(
            self.shared.clone(),
            session_name(&self.shared.config.session, transport),
        )
    }

    /// Serves one session on stdin/stdout until the client closes stdin or
    /// `shutdown` resolves. Stdout carries MCP messages only.
    pub async fn serve_stdio(&self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let handler = self.session("stdio");
        tracing::info!(session = handler.session_name(), "serving MCP on stdio");
        let running = handler
            .serve(rmcp::transport::stdio())
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

//! The client's limits and their defaults, in one place.
//!
//! | setting | default | why |
//! |---|---|---|
//! | per-request cap | 1 000 sats | well above typical L402 prices (1–250 sats), well below a costly mistake |
//! | fee limit | 10 sats | Lightning fees for small payments are a few sats; 10 bounds a bad route |
//! | session budget | 5 000 sats | a working session of an agent: dozens of paid calls, a few dollars at most |
//! | payments per minute | 20 | an agent in a loop is stopped within a minute |
//! | approval threshold | none | set `approve_above` to be asked above it |
//! | 24-hour cap | none | set it to bound all sessions together |
//! | server budget | none here; `serve` sets it to the session budget | every MCP session of one server together: more sessions never mean more money |
//! | response body cap | 1 MiB | what an agent's context can use; the CLI streams larger bodies to a file |
//! | request timeout | 60 s | one HTTP exchange |
//! | fetch deadline | 180 s | a whole fetch: redirects, challenge, payment, retry |
//! | payment timeout | 60 s | Lightning payments settle in seconds; after this the outcome is looked up |
//! | redirects | 5 | as browsers, and each hop is checked again |
//! | preferred scheme | `l402` | when a 402 offers both L402 and `Payment`, as lnget |

use std::time::Duration;

/// Default per-request cap, msat.
pub const DEFAULT_MAX_COST_MSAT: u64 = 1_000_000;
/// Default routing fee limit, msat.
pub const DEFAULT_FEE_LIMIT_MSAT: u64 = 10_000;
/// Default session budget, msat.
pub const DEFAULT_SESSION_BUDGET_MSAT: u64 = 5_000_000;
/// Default payments per minute.
pub const DEFAULT_PAYMENTS_PER_MINUTE: u32 = 20;
/// Default cap on a response body returned whole.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default timeout of one HTTP exchange.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default deadline of a whole fetch (a payment under way when it passes
/// still completes and is recorded).
pub const DEFAULT_FETCH_DEADLINE: Duration = Duration::from_secs(180);
/// Default timeout of one payment.
pub const DEFAULT_PAYMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirect hops followed at most.
pub const MAX_REDIRECTS: usize = 5;
/// Default session name.
pub const DEFAULT_SESSION: &str = "default";

/// The operator's limits and the client's settings. No tool argument or
/// request can raise any of these.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The session whose budget pays (named sessions hold across processes).
    pub session: String,
    /// Largest invoice paid for one request, msat.
    pub max_cost_msat: u64,
    /// Largest routing fee per payment, msat.
    pub fee_limit_msat: u64,
    /// The session's budget (amounts + fees), msat.
    pub session_budget_msat: u64,
    /// Rolling 24-hour cap across all sessions, msat.
    pub daily_cap_msat: Option<u64>,
    /// The budget pool this client's session shares with the other
    /// sessions of its server (the MCP server sets one per process), so
    /// that opening sessions does not open money. `None`: the session's own
    /// budget only.
    pub pool: Option<crate::budget::BudgetPool>,
    /// What all the sessions of one MCP server may spend together, msat;
    /// `None`: the session budget (so that opening sessions never opens
    /// money). The MCP server makes it its pool.
    pub server_budget_msat: Option<u64>,
    /// Payments allowed per minute.
    pub payments_per_minute: u32,
    /// Payments above this need approval, msat.
    pub approve_above_msat: Option<u64>,
    /// Allow private, loopback and link-local addresses.
    pub allow_private: bool,
    /// Origins allowed whatever their address (`scheme://host:port`): the
    /// dev node's own.
    pub allowed_origins: Vec<String>,
    /// Largest response body read whole, bytes.
    pub max_body_bytes: usize,
    /// Timeout of one HTTP exchange.
    pub request_timeout: Duration,
    /// Timeout of one payment.
    pub payment_timeout: Duration,
    /// Deadline of a whole fetch.
    pub fetch_deadline: Duration,
    /// The User-Agent sent.
    pub user_agent: String,
    /// Which scheme is paid when a server offers both L402 and `Payment`.
    pub prefer_scheme: PreferScheme,
}

/// Which scheme is paid when a 402 offers both an L402 challenge and a
/// `Payment` one (`method="lightning"`, `intent="charge"`). A server that
/// refused the preferred one after it was paid gets the other from then
/// on (the store remembers it per origin).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PreferScheme {
    /// L402 (or LSAT) first, as lnget's default.
    #[default]
    L402,
    /// `Payment` first.
    Payment,
}

impl PreferScheme {
    /// The setting's value: `l402` or `payment`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PreferScheme::L402 => "l402",
            PreferScheme::Payment => "payment",
        }
    }
}

impl std::fmt::Display for PreferScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PreferScheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "l402" => Ok(PreferScheme::L402),
            "payment" => Ok(PreferScheme::Payment),
            other => Err(format!(
                "{other:?} is not a scheme this client can prefer; use l402 or payment"
            )),
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            session: DEFAULT_SESSION.to_string(),
            max_cost_msat: DEFAULT_MAX_COST_MSAT,
            fee_limit_msat: DEFAULT_FEE_LIMIT_MSAT,
            session_budget_msat: DEFAULT_SESSION_BUDGET_MSAT,
            daily_cap_msat: None,
            pool: None,
            server_budget_msat: None,
            payments_per_minute: DEFAULT_PAYMENTS_PER_MINUTE,
            approve_above_msat: None,
            allow_private: false,
            allowed_origins: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            payment_timeout: DEFAULT_PAYMENT_TIMEOUT,
            fetch_deadline: DEFAULT_FETCH_DEADLINE,
            user_agent: format!("l402-mcp/{}", env!("CARGO_PKG_VERSION")),
            prefer_scheme: PreferScheme::default(),
        }
    }
}

//! The L402 client: fetches URLs and decides whether money moves.
//!
//! [`L402Client::fetch`] walks DESIGN.md's "One l402_fetch, end to end":
//! the URL policy, a cached token for the origin, the request; on a 402 the
//! challenge is parsed and every check runs ([`L402Client::preview`] runs
//! the same checks and stops there); then, under the origin's lock, the
//! budget is reserved and the token written as pending *before* paying, the
//! payment's outcome is recorded, and the request is retried with the
//! credential. A payment whose outcome is unknown stays pending and is
//! resolved through [`Payer::status`] before anything for that invoice is
//! paid again ([`L402Client::recover`]). The CLI and the MCP server are two
//! faces of this one type.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use l402_mcp::client::{ClientConfig, FetchRequest, L402Client};
//! use l402_mcp::lightning::dev::DevPayer;
//! use l402_mcp::store::Store;
//!
//! let payer = Arc::new(DevPayer::new("http://127.0.0.1:8402")?);
//! let store = Arc::new(Store::open("/tmp/l402-tokens.sqlite")?);
//! let mut config = ClientConfig::default();
//! config.allowed_origins.push("http://127.0.0.1:8402".into());
//! let client = L402Client::new(config, payer, store)?;
//! let resp = client.fetch(FetchRequest::get("http://127.0.0.1:8402/v1/demo")).await?;
//! println!("{} ({:?})", resp.status, resp.receipt);
//! # Ok(()) }
//! ```

mod approve;
mod call;
mod checks;
mod config;
mod error;
mod fetch;
mod held;
mod lock;
mod net;
mod overview;
mod pay;
mod preview;
mod problem;
mod report;
mod task;

pub use crate::lightning::Msat;
pub use approve::{Approval, ApprovalRequest, Approver};
pub use call::{Call, FetchEvent};
pub use config::{
    ClientConfig, DEFAULT_FEE_LIMIT_MSAT, DEFAULT_FETCH_DEADLINE, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_COST_MSAT, DEFAULT_PAYMENT_TIMEOUT, DEFAULT_PAYMENTS_PER_MINUTE,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_SESSION, DEFAULT_SESSION_BUDGET_MSAT, MAX_REDIRECTS,
    PreferScheme,
};
pub use error::{
    EXIT_GENERAL, EXIT_NETWORK, EXIT_PAYMENT_FAILED, EXIT_REFUSED, FetchError, Refusal,
};
pub use net::UrlPolicyError;
pub use overview::{
    Bucket, ChangeWatch, MAX_PAYMENTS_LISTED, Overview, PaymentFilter, SessionOverview,
    SpendBucket, SpendSeries, TokenCount,
};
pub use pay::{ABORT_STEPS, EXPIRED_MARGIN, wait_for_payments};
pub use problem::problem_sentence;
pub use report::{Cleared, SpendReport, TokenRef};
// What the reports hold, as the faces render it, and what a face hands
// the client when it builds one (its store, its server's pool).
pub use crate::budget::{BudgetPool, OriginSpend, Pause, PauseEvent, SpendTotals};
pub use crate::store::{
    Origin, PaymentRecord, PaymentState, Store, StoreError, TokenInfo, TokenScheme, TokenStatus,
};

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde::Serialize;

use crate::budget::{Ledger, PoolSummary, SessionSummary};
use crate::lightning::{Payer, PaymentHash};
use net::{AddressPolicy, PolicyResolver};

/// One request to fetch.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// The URL.
    pub url: String,
    /// The method.
    pub method: Method,
    /// Extra headers, name and value.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Bytes>,
    /// A per-request cap that may only lower the operator's, msat.
    pub max_cost_msat: Option<u64>,
    /// The caller's handle: what it hears, and its way to stop the fetch
    /// before it pays.
    pub call: Call,
}

impl FetchRequest {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        FetchRequest {
            url: url.into(),
            method: Method::GET,
            headers: Vec::new(),
            body: None,
            max_cost_msat: None,
            call: Call::default(),
        }
    }
}

/// What a fetch paid, or that it used a token bought earlier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// True when this fetch paid; false when it presented a cached token.
    pub paid: bool,
    /// The invoice amount paid (0 when a cached token was used).
    pub amount_msat: u64,
    /// The routing fee paid.
    pub fee_msat: u64,
    /// The payment hash of the token used.
    #[serde(serialize_with = "ser_hash")]
    pub payment_hash: PaymentHash,
    /// What is left of the session's budget.
    pub budget_left_msat: u64,
    /// Something the person paying should know of this payment (a fee
    /// above the one reserved, a credential the server refused), as a
    /// sentence.
    pub note: Option<String>,
    /// The scheme of the credential presented: `l402` or `payment`.
    pub scheme: TokenScheme,
    /// The server's `Payment-Receipt` for a `Payment` credential, decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_receipt: Option<crate::l402::payment::PaymentReceipt>,
}

fn ser_hash<S: serde::Serializer>(h: &PaymentHash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&h.to_hex())
}

/// A response whose body has not been read yet (for streaming).
#[derive(Debug)]
pub struct RawResponse {
    /// The final URL, after redirects.
    pub url: Url,
    /// The response.
    pub response: reqwest::Response,
    /// The token paid for or used, if any.
    pub receipt: Option<Receipt>,
}

/// A response read whole, up to the body cap.
#[derive(Debug, Clone)]
pub struct FetchResponse {
    /// The final URL, after redirects.
    pub url: Url,
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, up to the cap.
    pub body: Bytes,
    /// True when the body was longer than the cap and cut.
    pub truncated: bool,
    /// The token paid for or used, if any.
    pub receipt: Option<Receipt>,
}

impl FetchResponse {
    /// The origin that answered (`scheme://host:port`).
    pub fn origin(&self) -> Option<Origin> {
        Origin::from_url(&self.url).ok()
    }

    /// The Content-Type, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// Our sentence for an `application/problem+json` answer, if it is one.
    pub fn problem(&self) -> Option<String> {
        problem_sentence(&self.headers, &self.body)
    }
}

/// One check's verdict, as `preview` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// A sentence.
    pub detail: String,
    #[serde(skip)]
    refusal: Option<Refusal>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            ok: true,
            detail: detail.into(),
            refusal: None,
        }
    }
    fn fail(name: &'static str, refusal: Refusal) -> Self {
        Check {
            name,
            ok: false,
            detail: refusal.to_string(),
            refusal: Some(refusal),
        }
    }
}

/// What a fetch of a URL would cost, and what every check says; nothing
/// paid, nothing reserved.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The URL previewed (after redirects).
    pub url: String,
    /// The status the server answered without a credential.
    pub status: u16,
    /// True when the server asks for payment.
    pub payment_required: bool,
    /// The price, msat, when it asks.
    pub price_msat: Option<u64>,
    /// The invoice's description, when it asks.
    pub description: Option<String>,
    /// Every check's verdict.
    pub checks: Vec<Check>,
    /// True when every check passes: a fetch would pay (unless a cached
    /// token is accepted first).
    pub would_pay: bool,
    /// True when a paid token for this origin is cached.
    pub cached_token: bool,
    /// The session's budget standing.
    pub budget: BudgetView,
    /// The scheme a fetch would pay (`l402` or `payment`), when the 402
    /// offers one this client pays.
    pub scheme: Option<TokenScheme>,
    /// The operator's preference when a 402 offers both.
    pub prefer_scheme: PreferScheme,
}

/// A session's budget, in msat.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BudgetView {
    /// The session.
    pub session: String,
    /// Its budget.
    pub budget_msat: u64,
    /// Spent (amounts + fees).
    pub spent_msat: u64,
    /// Held by unresolved payments.
    pub reserved_msat: u64,
    /// Left.
    pub left_msat: u64,
    /// Payments made.
    pub payments: u64,
    /// The server pool this session shares, when it has one: what all the
    /// server's sessions may spend together, and what they have left.
    pub server: Option<PoolView>,
}

/// A server's budget pool, in msat.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PoolView {
    /// What all the sessions may spend together.
    pub budget_msat: u64,
    /// Spent by all of them.
    pub spent_msat: u64,
    /// Held by their unresolved payments.
    pub reserved_msat: u64,
    /// Left for all of them.
    pub left_msat: u64,
    /// Sessions sharing it.
    pub sessions: u64,
}

impl BudgetView {
    /// Takes the pool into account: the session can spend no more than
    /// the pool has left.
    fn apply_pool(&mut self, pool: &PoolSummary) {
        self.left_msat = self.left_msat.min(pool.left_msat);
        self.server = Some(PoolView {
            budget_msat: pool.budget_msat,
            spent_msat: pool.spent_msat,
            reserved_msat: pool.reserved_msat,
            left_msat: pool.left_msat,
            sessions: pool.sessions,
        });
    }
}

impl From<SessionSummary> for BudgetView {
    fn from(s: SessionSummary) -> Self {
        BudgetView {
            session: s.session,
            budget_msat: s.budget_msat,
            spent_msat: s.spent_msat,
            reserved_msat: s.reserved_msat,
            left_msat: s.left_msat,
            payments: s.payments,
            server: None,
        }
    }
}

/// What [`L402Client::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Pending payments found to have succeeded: tokens now usable.
    pub succeeded: usize,
    /// Pending payments found to have failed, or never sent: released.
    pub released: usize,
    /// Still unresolved (in flight, too recent, or backend unreachable).
    pub still_pending: usize,
}

/// The L402 client. Cheap to share in an `Arc`; every method takes `&self`.
pub struct L402Client {
    config: ClientConfig,
    payer: Arc<dyn Payer>,
    store: Arc<Store>,
    ledger: Ledger,
    policy: Arc<AddressPolicy>,
    /// Fetches public URLs: resolves through the address policy.
    http: reqwest::Client,
    /// Fetches the operator-allowed origins (the dev node's).
    http_allowed: reqwest::Client,
    locks: Mutex<HashMap<Origin, Arc<tokio::sync::Mutex<()>>>>,
    /// Usable tokens by origin: the hot path of a reused token needs no
    /// database read. The store stays the source of truth.
    tokens: Mutex<HashMap<Origin, Vec<Arc<held::Held>>>>,
    /// What the session had left when this client last read the ledger.
    budget_left: std::sync::atomic::AtomicU64,
    limiter: DefaultDirectRateLimiter,
    approver: Option<Arc<dyn Approver>>,
    recovered: tokio::sync::OnceCell<()>,
    /// False for a client made by [`L402Client::without_payer`]: it can
    /// preview, list and report, and refuses every payment.
    can_pay: bool,
}

impl std::fmt::Debug for L402Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L402Client")
            .field("session", &self.config.session)
            .field("payer", &self.payer)
            .finish_non_exhaustive()
    }
}

/// How long an unresolved payment that the backend does not know must be
/// left alone before it is released: another process may be about to send
/// it. Past the payment timeout, it was never sent.
fn recovery_grace(config: &ClientConfig) -> Duration {
    config.payment_timeout + config.payment_timeout / 2
}

impl L402Client {
    /// A client paying through `payer`, keeping tokens and the spend log in
    /// `store`, within `config`'s limits. Opens (or re-budgets) the session.
    pub fn new(
        config: ClientConfig,
        payer: Arc<dyn Payer>,
        store: Arc<Store>,
    ) -> Result<Self, FetchError> {
        Self::build(config, payer, store, true)
    }

    /// A client for reports and the tokens (`spend`, `tokens`): it opens
    /// no session and changes no budget (a session that exists keeps the
    /// budget it was last opened with). With a payer, it resolves
    /// payments earlier runs left unresolved; it is never asked to pay.
    pub fn for_reports(
        config: ClientConfig,
        payer: Option<Arc<dyn Payer>>,
        store: Arc<Store>,
    ) -> Result<Self, FetchError> {
        let can_pay = payer.is_some();
        let payer = payer.unwrap_or_else(|| Arc::new(NoPayer));
        let mut client = Self::build(config, payer, store, false)?;
        client.can_pay = can_pay;
        Ok(client)
    }

    fn build(
        config: ClientConfig,
        payer: Arc<dyn Payer>,
        store: Arc<Store>,
        open_session: bool,
    ) -> Result<Self, FetchError> {
        let mut policy = AddressPolicy {
            allow_private: config.allow_private,
            ..Default::default()
        };
        for o in &config.allowed_origins {
            let url = Url::parse(o)
                .map_err(|e| FetchError::BadRequest(format!("allowed origin {o:?}: {e}")))?;
            policy.allowed_origins.insert(net::origin_string(&url));
        }
        let policy = Arc::new(policy);
        // No proxy, whatever HTTP_PROXY/HTTPS_PROXY/ALL_PROXY say: a proxy
        // is handed the host name unresolved and connects where it likes,
        // out of reach of the address policy, which must judge the address
        // actually connected to.
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .timeout(config.request_timeout)
                .user_agent(config.user_agent.clone())
        };
        let http = builder()
            .dns_resolver(Arc::new(PolicyResolver::new(policy.clone())))
            .build()
            .map_err(|e| FetchError::Network(format!("cannot build the HTTP client: {e}")))?;
        let http_allowed = builder()
            .build()
            .map_err(|e| FetchError::Network(format!("cannot build the HTTP client: {e}")))?;
        let per_minute = NonZeroU32::new(config.payments_per_minute).ok_or_else(|| {
            FetchError::BadRequest("payments per minute must be at least 1".into())
        })?;
        let limiter = RateLimiter::direct(Quota::per_minute(per_minute));
        let ledger = Ledger::new(store.clone())
            .with_daily_cap(config.daily_cap_msat)
            .with_rate_limit(Some(config.payments_per_minute))
            .with_pool(config.pool.clone());
        let opened = if open_session {
            Some(ledger.open_session(&config.session, config.session_budget_msat)?)
        } else {
            match ledger.summary(&config.session) {
                Ok(s) => Some(s),
                Err(crate::budget::BudgetError::UnknownSession(_)) => None,
                Err(e) => return Err(e.into()),
            }
        };
        let mut opened: Option<BudgetView> = opened.map(BudgetView::from);
        if let (Some(view), Some(pool)) = (opened.as_mut(), ledger.pool_summary()?) {
            view.apply_pool(&pool);
        }
        Ok(L402Client {
            config,
            payer,
            store,
            ledger,
            policy,
            http,
            http_allowed,
            locks: Mutex::default(),
            tokens: Mutex::default(),
            budget_left: std::sync::atomic::AtomicU64::new(opened.map_or(0, |v| v.left_msat)),
            limiter,
            approver: None,
            recovered: tokio::sync::OnceCell::new(),
            can_pay: true,
        })
    }

    /// A client with no payer: `preview` runs every check and says that a
    /// payment would need a payer (the network check cannot pass), and a
    /// fetch that would have to pay is refused with [`Refusal::NoPayer`].
    pub fn without_payer(config: ClientConfig, store: Arc<Store>) -> Result<Self, FetchError> {
        let mut client = L402Client::new(config, Arc::new(NoPayer), store)?;
        client.can_pay = false;
        Ok(client)
    }

    /// Whether this client has a payer.
    pub fn can_pay(&self) -> bool {
        self.can_pay
    }

    /// Asks `approver` before paying above the configured threshold.
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approver = Some(approver);
        self
    }

    /// The limits in force.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// This session's budget standing, read from the ledger: what is left
    /// is the lesser of the session's and its server pool's.
    pub fn budget(&self) -> Result<BudgetView, FetchError> {
        let mut view = BudgetView::from(self.ledger.summary(&self.config.session)?);
        if let Some(pool) = self.ledger.pool_summary()? {
            view.apply_pool(&pool);
        }
        self.budget_left
            .store(view.left_msat, std::sync::atomic::Ordering::Relaxed);
        Ok(view)
    }

    /// What the session had left at this client's last ledger read.
    /// Drops what this client remembers of `origin`'s tokens (they were
    /// removed from the store).
    fn forget_origin(&self, origin: &Origin) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(origin);
    }

    /// Drops what this client remembers of every origin's tokens.
    fn forget_all_origins(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn budget_left_snapshot(&self) -> u64 {
        self.budget_left.load(std::sync::atomic::Ordering::Relaxed)
    }

    // ---------------------------------------------------------------------
    // fetch

    /// Fetches `req`, paying an L402 challenge if every check passes, and
    /// reads the body up to the configured cap.
    pub async fn fetch(&self, req: FetchRequest) -> Result<FetchResponse, FetchError> {
        let raw = self.fetch_raw(req).await?;
        let status = raw.response.status().as_u16();
        let headers = raw.response.headers().clone();
        let (body, truncated) = read_capped(raw.response, self.config.max_body_bytes).await?;
        Ok(FetchResponse {
            url: raw.url,
            status,
            headers,
            body,
            truncated,
            receipt: raw.receipt,
        })
    }
}

/// The payer of a client made without one: pays nothing, knows nothing.
#[derive(Debug)]
struct NoPayer;

#[async_trait::async_trait]
impl Payer for NoPayer {
    fn network(&self) -> crate::lightning::Network {
        // Never consulted: a client without a payer fails the network
        // check before it could matter.
        crate::lightning::Network::Regtest
    }

    async fn pay(
        &self,
        _invoice: &crate::lightning::Invoice,
        _max_fee_msat: u64,
    ) -> Result<crate::lightning::Payment, crate::lightning::PayError> {
        Err(crate::lightning::PayError::Refused(
            "no payer is configured".into(),
        ))
    }

    async fn status(
        &self,
        _payment_hash: &PaymentHash,
    ) -> Result<crate::lightning::PaymentStatus, crate::lightning::PayError> {
        Err(crate::lightning::PayError::Unreachable(
            "no payer is configured".into(),
        ))
    }
}

/// Reads a body up to `cap` bytes; says whether there was more.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<(Bytes, bool), FetchError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(network_error)? {
        let room = cap - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf.freeze(), true));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf.freeze(), false))
}

/// Maps a reqwest error to a fetch error; a refusal by the address policy
/// (raised inside the resolver) is a refusal, not a network error.
fn network_error(e: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(policy) = s.downcast_ref::<UrlPolicyError>() {
            return FetchError::Refused(Refusal::Url(policy.clone()));
        }
        source = s.source();
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let url = e.url().map(|u| format!(" {u}")).unwrap_or_default();
    let mut detail = String::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        FetchError::Network(format!("{what}{url}"))
    } else {
        FetchError::Network(format!("{what}{url}: {detail}"))
    }
}

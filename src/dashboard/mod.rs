//! The dashboard (`l402-mcp dashboard`): a web page over the store the
//! clients write, showing what the agents spend (sessions and pools with
//! budget, spent, reserved and left; spend over time per origin; the
//! payment log; the tokens by origin and status; the operator's limits),
//! and the one switch it may flip: pause every payment, or resume.
//!
//! The page is rendered here, whole, so that it works with JavaScript
//! off; its small script listens to `/api/events` (server-sent events,
//! fired when the store changes, found by polling SQLite's
//! `data_version` every [`POLL_INTERVAL`]) and re-renders from the JSON
//! API under the page. Reads go through [`Overview`], the pause switch
//! through the client ([`L402Client::pause`]); this face queries nothing
//! itself.
//!
//! No secret is ever in an answer: payments carry none, tokens are read
//! without macaroon or preimage, and the payer is not even loaded.
//! The `auth` module says who may see the page and press the switch.

mod auth;
mod chart;
mod format;
mod page;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::budget::{PoolSummary, SpendTotals};
use crate::client::{
    Bucket, ClientConfig, FetchError, L402Client, Overview, Pause, PauseEvent, PaymentFilter,
    PaymentRecord, SessionOverview, SpendSeries, TokenCount, TokenInfo,
};
use crate::mcp::HostOriginCheck;

/// The address the dashboard listens on by default: loopback, next to the
/// gateway's 8402 and `serve --http`'s 8403.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8404";

/// How often the store is looked at for changes: fast enough that a
/// payment shows within a second, and a query of microseconds.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Payments the page lists when no `limit` is asked.
pub const DEFAULT_PAYMENTS_SHOWN: usize = 100;

/// Pauses the page lists in its history.
pub const PAUSE_HISTORY_SHOWN: usize = 20;

/// The longest pause reason kept, characters: the ledger's own limit.
pub const MAX_REASON_CHARS: usize = crate::budget::PAUSE_TEXT_MAX;

/// Server-sent-event keep-alive: proxies and browsers keep an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// Who may reach the dashboard.
#[derive(Clone, Default)]
pub struct DashboardOptions {
    /// The token a browser brings once as `?token=` (then a cookie) and a
    /// script as `Authorization: Bearer`; required off loopback.
    pub auth_token: Option<String>,
    /// Host names (or `host:port`) accepted besides the loopback names.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted besides the dashboard's own.
    pub allowed_origins: Vec<String>,
}

impl std::fmt::Debug for DashboardOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardOptions")
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<set>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

/// Why the dashboard cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// Off loopback, anyone who can reach the address would see the spend
    /// log and could resume payments.
    #[error(
        "{0} is not a loopback address: set a token (L402_DASHBOARD_AUTH_TOKEN or \
         --auth-token-file) so that only people holding it see the dashboard"
    )]
    TokenRequired(SocketAddr),
    /// An empty token would match an empty header.
    #[error("the dashboard token is empty")]
    EmptyToken,
    /// An `--allowed-origin` that is not an origin.
    #[error("{0:?} is not an origin; write it as scheme://host[:port]")]
    BadOrigin(String),
    /// The store cannot be watched.
    #[error("cannot watch the store for changes: {0}")]
    Watch(String),
    /// The server failed while running.
    #[error("the dashboard's HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// The dashboard over one store.
pub struct Dashboard {
    client: Arc<L402Client>,
    overview: Overview,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("store", &self.overview.location())
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard over `client`'s store, showing `client`'s limits. Make
    /// the client with [`L402Client::for_reports`] and no payer: the
    /// dashboard never pays, resolves nothing, and opens no session.
    pub fn new(client: L402Client) -> Self {
        let overview = client.overview();
        Dashboard {
            client: Arc::new(client),
            overview,
        }
    }

    /// The router, for a listener on `bind`; its event streams end when
    /// `shutdown` is cancelled.
    pub fn router(
        self: &Arc<Self>,
        bind: SocketAddr,
        options: &DashboardOptions,
        shutdown: CancellationToken,
    ) -> Result<Router, DashboardError> {
        let token = match options.auth_token.as_deref().map(str::trim) {
            Some("") => return Err(DashboardError::EmptyToken),
            None if !bind.ip().is_loopback() => return Err(DashboardError::TokenRequired(bind)),
            t => t.map(str::to_string),
        };
        let check = HostOriginCheck::new(bind, &options.allowed_hosts, &options.allowed_origins)
            .map_err(|e| match e {
                crate::mcp::HttpError::BadOrigin(o) => DashboardError::BadOrigin(o),
                other => DashboardError::Watch(other.to_string()),
            })?;
        let guard = Arc::new(auth::Guard::new(check, token));
        let changes = Changes::start(&self.overview)?;
        let app = App {
            dashboard: self.clone(),
            changes,
            shutdown,
        };
        Ok(Router::new()
            .route("/", get(index))
            .route("/chart.svg", get(chart_svg))
            .route("/static/dashboard.css", get(css))
            .route("/static/dashboard.js", get(js))
            .route("/api/summary", get(api_summary))
            .route("/api/payments", get(api_payments))
            .route("/api/spend", get(api_spend))
            .route("/api/tokens", get(api_tokens))
            .route("/api/limits", get(api_limits))
            .route("/api/pause", get(api_pause).post(api_pause_post))
            .route("/api/resume", post(api_resume_post))
            .route("/api/events", get(api_events))
            .fallback(not_found)
            .with_state(app)
            .layer(middleware::from_fn_with_state(guard, check_request)))
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: &Arc<Self>,
        listener: TcpListener,
        options: &DashboardOptions,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DashboardError> {
        let addr = listener.local_addr().map_err(DashboardError::Serve)?;
        let stop = CancellationToken::new();
        let app = self.router(addr, options, stop.clone())?;
        crate::listen::serve(
            listener,
            app,
            crate::listen::ConnectionLimits::default(),
            async move {
                shutdown.await;
                stop.cancel();
            },
        )
        .await
        .map_err(DashboardError::Serve)
    }
}

// -------------------------------------------------------------------------
// change detection

/// A counter that moves when the store changes, shared by every event
/// stream; a thread polls the store while the router lives.
struct Changes {
    tx: tokio::sync::watch::Sender<u64>,
}

impl Changes {
    fn start(overview: &Overview) -> Result<Arc<Self>, DashboardError> {
        let watch = overview
            .watch()
            .map_err(|e| DashboardError::Watch(e.to_string()))?;
        let changes = Arc::new(Changes {
            tx: tokio::sync::watch::channel(0).0,
        });
        let weak: Weak<Changes> = Arc::downgrade(&changes);
        std::thread::Builder::new()
            .name("dashboard-watch".into())
            .spawn(move || {
                let mut last = watch.version().ok();
                loop {
                    std::thread::sleep(POLL_INTERVAL);
                    let Some(changes) = weak.upgrade() else {
                        return;
                    };
                    match watch.version() {
                        Ok(v) if Some(v) != last => {
                            last = Some(v);
                            changes.tx.send_modify(|n| *n += 1);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot look at the store"),
                    }
                }
            })
            .map_err(|e| DashboardError::Watch(e.to_string()))?;
        Ok(changes)
    }
}

// -------------------------------------------------------------------------
// what one answer shows

#[derive(Clone)]
struct App {
    dashboard: Arc<Dashboard>,
    changes: Arc<Changes>,
    shutdown: CancellationToken,
}

/// Everything the page shows, read at once.
pub(crate) struct Snapshot {
    pub store: String,
    pub now: u64,
    pub config: ClientConfig,
    pub pause: Option<Pause>,
    pub history: Vec<PauseEvent>,
    pub sessions: Vec<SessionOverview>,
    pub pools: Vec<PoolSummary>,
    pub all_time: SpendTotals,
    pub last_day_msat: u64,
    pub hourly: SpendSeries,
    pub daily: SpendSeries,
    /// Origins in colour order: most spent all time first.
    pub ranking: Vec<String>,
    /// Origins to filter by.
    pub origins: Vec<String>,
    pub payments: Vec<PaymentRecord>,
    pub token_counts: Vec<TokenCount>,
}

impl Dashboard {
    fn config(&self) -> &ClientConfig {
        self.client.config()
    }

    fn server_budget_msat(&self) -> u64 {
        let c = self.config();
        c.server_budget_msat.unwrap_or(c.session_budget_msat)
    }

    async fn ranking(&self) -> Result<(SpendTotals, Vec<String>), FetchError> {
        let all_time = self.overview.all_time().await?;
        let ranking = all_time
            .by_origin
            .iter()
            .map(|o| o.origin.clone())
            .collect();
        Ok((all_time, ranking))
    }

    async fn snapshot(&self, filter: &PaymentFilter) -> Result<Snapshot, FetchError> {
        let o = &self.overview;
        let (all_time, ranking) = self.ranking().await?;
        let payments = o.payments(filter.clone()).await?;
        let token_counts = o.token_counts().await?;
        let mut origins = ranking.clone();
        for extra in payments
            .iter()
            .map(|p| &p.origin)
            .chain(token_counts.iter().map(|t| &t.origin))
        {
            if !origins.contains(extra) {
                origins.push(extra.clone());
            }
        }
        Ok(Snapshot {
            store: o.location().to_string(),
            now: o.now(),
            config: self.config().clone(),
            pause: self.client.paused().await?,
            history: self.client.pause_history(PAUSE_HISTORY_SHOWN).await?,
            sessions: o.sessions().await?,
            pools: o.pools(self.server_budget_msat()).await?,
            last_day_msat: o.last_day_msat().await?,
            hourly: o.spend(Bucket::Hour).await?,
            daily: o.spend(Bucket::Day).await?,
            all_time,
            ranking,
            origins,
            payments,
            token_counts,
        })
    }
}

// -------------------------------------------------------------------------
// the guard

async fn check_request(
    State(guard): State<Arc<auth::Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let mut request = request;
    let verdict = guard.check(
        request.method(),
        request.uri().path(),
        request.uri().query(),
        request.headers(),
    );
    match verdict {
        auth::Verdict::Pass(access) => {
            request.extensions_mut().insert(access);
            next.run(request).await
        }
        auth::Verdict::SetCookie { location, cookie } => {
            let mut r = (StatusCode::SEE_OTHER, "").into_response();
            let h = r.headers_mut();
            if let Ok(l) = HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, l);
            }
            if let Some(c) = auth::cookie_header(&cookie) {
                h.insert(header::SET_COOKIE, c);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            r
        }
        auth::Verdict::Refuse(status, sentence) => {
            tracing::info!(
                path = %request.uri().path(),
                status = status.as_u16(),
                "dashboard request refused"
            );
            let wants_html = request.uri().path() == "/"
                || request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|a| a.contains("text/html"));
            let mut r = if wants_html {
                html(
                    status,
                    page::notice(
                        "Not allowed",
                        &format!("<p>{}</p>", crate::text::html_escape(&sentence)),
                    ),
                )
            } else {
                error_json(status, &sentence)
            };
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"l402-mcp dashboard\""),
                );
            }
            r
        }
    }
}

// -------------------------------------------------------------------------
// answers

fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // same-origin: a form POST then names the page as its Origin.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

/// A JSON answer. `<`, `>` and `&` are written as `\u003c`, `\u003e` and
/// `\u0026` (they can only be inside strings, where JSON means the same by
/// either): user data in an answer never reads as markup, whatever
/// mistakes a reader makes with its type.
fn json_answer(status: StatusCode, v: Value) -> Response {
    let text = v
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let mut r = (status, text).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    secure_headers(h);
    r
}

fn error_json(status: StatusCode, sentence: &str) -> Response {
    json_answer(status, json!({ "error": sentence }))
}

fn failed(e: &FetchError) -> Response {
    let status = match e {
        FetchError::BadRequest(_) => StatusCode::BAD_REQUEST,
        FetchError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::warn!(error = %e, "dashboard cannot read the store");
    }
    json_answer(status, json!({ "error": e.to_string(), "kind": e.kind() }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

async fn not_found() -> Response {
    error_json(StatusCode::NOT_FOUND, "no such page on the dashboard")
}

/// The payments filter of a query: `session`, `origin`, `status` (empty
/// means all), `limit`.
fn filter_of(q: &HashMap<String, String>) -> Result<PaymentFilter, FetchError> {
    let text = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let status = match text("status") {
        None => None,
        Some(s) => Some(s.parse().map_err(|_| {
            FetchError::BadRequest(format!(
                "{s:?} is not a payment status; use reserved, in_flight, succeeded, failed or \
                 released"
            ))
        })?),
    };
    let limit = match text("limit") {
        None => DEFAULT_PAYMENTS_SHOWN,
        Some(l) => l.parse().map_err(|_| {
            FetchError::BadRequest(format!("limit {l:?} is not a number of payments"))
        })?,
    };
    Ok(PaymentFilter {
        session: text("session"),
        origin: text("origin"),
        status,
        limit: limit.clamp(1, crate::client::MAX_PAYMENTS_LISTED),
    })
}

async fn index(State(app): State<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    let filter = match filter_of(&q) {
        Ok(f) => f,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                page::notice(
                    "Bad filter",
                    &format!("<p>{}</p>", crate::text::html_escape(&e.to_string())),
                ),
            );
        }
    };
    match app.dashboard.snapshot(&filter).await {
        Ok(snap) => html(StatusCode::OK, page::render(&snap, &filter)),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard cannot read the store");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                page::notice(
                    "Cannot read the store",
                    &format!("<p>{}</p>", crate::text::html_escape(&e.to_string())),
                ),
            )
        }
    }
}

fn bucket_of(q: &HashMap<String, String>) -> Result<Bucket, FetchError> {
    q.get("bucket").map_or(Ok(Bucket::Hour), |b| b.parse())
}

async fn chart_svg(State(app): State<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    let d = &app.dashboard;
    let result = async {
        let bucket = bucket_of(&q)?;
        let (_, ranking) = d.ranking().await?;
        let series = d.overview.spend(bucket).await?;
        Ok::<_, FetchError>(chart::svg(&series, &ranking))
    }
    .await;
    match result {
        Ok(svg) => {
            let mut r = svg.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            );
            secure_headers(h);
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            );
            r
        }
        Err(e) => failed(&e),
    }
}

// The JSON shapes. Each is written field by field: nothing reaches an
// answer that is not named here.

fn pause_json(p: &Pause) -> Value {
    json!({ "reason": p.reason, "by": p.by, "since": p.since })
}

fn history_json(e: &PauseEvent) -> Value {
    json!({
        "paused_at": e.paused_at,
        "paused_by": e.paused_by,
        "reason": e.reason,
        "resumed_at": e.resumed_at,
        "resumed_by": e.resumed_by,
    })
}

fn session_json(s: &SessionOverview) -> Value {
    let m = &s.summary;
    json!({
        "session": m.session,
        "agent": m.session.strip_prefix("agent-"),
        "pool": s.pool,
        "budget_msat": m.budget_msat,
        "spent_msat": m.spent_msat,
        "reserved_msat": m.reserved_msat,
        "left_msat": m.left_msat,
        "payments": m.payments,
        "unresolved": m.unresolved,
        "created_at": m.created_at,
        "last_seen_at": m.last_seen_at,
    })
}

fn pool_json(p: &PoolSummary) -> Value {
    json!({
        "pool": p.pool,
        "budget_msat": p.budget_msat,
        "spent_msat": p.spent_msat,
        "reserved_msat": p.reserved_msat,
        "left_msat": p.left_msat,
        "sessions": p.sessions,
    })
}

fn totals_json(t: &SpendTotals) -> Value {
    // The totals as they are: every amount in msat, per origin too.
    json!(t)
}

fn payment_json(p: &PaymentRecord) -> Value {
    json!({
        "id": p.id,
        "time": p.created_at,
        "session": p.session,
        "origin": p.origin,
        "url": p.url,
        "amount_msat": p.amount_msat,
        "fee_msat": p.fee_msat,
        "fee_limit_msat": p.fee_limit_msat,
        "status": p.state.as_str(),
        "scheme": p.scheme.as_str(),
        "error": p.error,
        "payment_hash": p.payment_hash.to_hex(),
        "updated_at": p.updated_at,
    })
}

fn token_json(t: &TokenInfo) -> Value {
    json!({
        "id": t.id,
        "origin": t.origin.as_str(),
        "status": t.status.as_str(),
        "scheme": t.scheme.as_str(),
        "amount_msat": t.amount_msat,
        "fee_msat": t.fee_msat,
        "session": t.session,
        "payment_hash": t.payment_hash.to_hex(),
        "created_at": t.created_at,
        "paid_at": t.paid_at,
        "last_used_at": t.last_used_at,
        "expires_at": t.expires_at,
        "bound_path": t.bound_path,
    })
}

fn limits_json(c: &ClientConfig) -> Value {
    json!({
        "session": c.session,
        "max_cost_msat": c.max_cost_msat,
        "fee_limit_msat": c.fee_limit_msat,
        "session_budget_msat": c.session_budget_msat,
        "server_budget_msat": c.server_budget_msat.unwrap_or(c.session_budget_msat),
        "approve_above_msat": c.approve_above_msat,
        "payments_per_minute": c.payments_per_minute,
        "daily_cap_msat": c.daily_cap_msat,
        "prefer_scheme": c.prefer_scheme.as_str(),
    })
}

fn spend_json(s: &SpendSeries, ranking: &[String]) -> Value {
    json!({
        "bucket": s.bucket.as_str(),
        "bucket_secs": s.bucket.secs(),
        "start": s.start,
        "end": s.end,
        "total_msat": s.total_msat,
        "origins": s.origins.iter().map(|o| json!({
            "origin": o, "colour": chart::colour(ranking, o),
        })).collect::<Vec<_>>(),
        "buckets": s.buckets.iter().map(|b| json!({
            "start": b.start,
            "total_msat": b.total_msat,
            "payments": b.payments,
            "by_origin": b.by_origin.iter().map(|(o, m)| json!({"origin": o, "msat": m})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

async fn api_summary(State(app): State<App>) -> Response {
    let d = &app.dashboard;
    let o = &d.overview;
    let result = async {
        Ok::<_, FetchError>(json!({
            "now": o.now(),
            "store": o.location(),
            "pause": d.client.paused().await?.as_ref().map(pause_json),
            "sessions": o.sessions().await?.iter().map(session_json).collect::<Vec<_>>(),
            "pools": o.pools(d.server_budget_msat()).await?.iter().map(pool_json).collect::<Vec<_>>(),
            "all_time": totals_json(&o.all_time().await?),
            "last_day_msat": o.last_day_msat().await?,
            "daily_cap_msat": d.config().daily_cap_msat,
        }))
    }
    .await;
    match result {
        Ok(v) => json_answer(StatusCode::OK, v),
        Err(e) => failed(&e),
    }
}

async fn api_payments(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let filter = filter_of(&q)?;
        let payments = app.dashboard.overview.payments(filter.clone()).await?;
        Ok::<_, FetchError>(json!({
            "filter": {
                "session": filter.session,
                "origin": filter.origin,
                "status": filter.status.map(|s| s.as_str()),
                "limit": filter.limit,
            },
            "payments": payments.iter().map(payment_json).collect::<Vec<_>>(),
        }))
    }
    .await;
    match result {
        Ok(v) => json_answer(StatusCode::OK, v),
        Err(e) => failed(&e),
    }
}

async fn api_spend(State(app): State<App>, Query(q): Query<HashMap<String, String>>) -> Response {
    let d = &app.dashboard;
    let result = async {
        let bucket = bucket_of(&q)?;
        let (_, ranking) = d.ranking().await?;
        let series = d.overview.spend(bucket).await?;
        Ok::<_, FetchError>(spend_json(&series, &ranking))
    }
    .await;
    match result {
        Ok(v) => json_answer(StatusCode::OK, v),
        Err(e) => failed(&e),
    }
}

async fn api_tokens(State(app): State<App>) -> Response {
    let o = &app.dashboard.overview;
    let result = async {
        Ok::<_, FetchError>(json!({
            "by_origin": o.token_counts().await?.iter().map(|t| json!({
                "origin": t.origin,
                "status": t.status.as_str(),
                "scheme": t.scheme.as_str(),
                "tokens": t.tokens,
                "spent_msat": t.spent_msat,
            })).collect::<Vec<_>>(),
            "tokens": o.tokens().await?.iter().map(token_json).collect::<Vec<_>>(),
        }))
    }
    .await;
    match result {
        Ok(v) => json_answer(StatusCode::OK, v),
        Err(e) => failed(&e),
    }
}

async fn api_limits(State(app): State<App>) -> Response {
    json_answer(StatusCode::OK, limits_json(app.dashboard.config()))
}

async fn pause_state(d: &Dashboard) -> Result<Value, FetchError> {
    let standing = d.client.paused().await?;
    Ok(json!({
        "paused": standing.is_some(),
        "pause": standing.as_ref().map(pause_json),
        "history": d.client.pause_history(PAUSE_HISTORY_SHOWN).await?
            .iter().map(history_json).collect::<Vec<_>>(),
    }))
}

async fn api_pause(State(app): State<App>) -> Response {
    match pause_state(&app.dashboard).await {
        Ok(v) => json_answer(StatusCode::OK, v),
        Err(e) => failed(&e),
    }
}

/// Who pressed the switch, as the history will say.
fn by(request_from: Option<SocketAddr>) -> String {
    match request_from {
        Some(a) => format!("dashboard (from {})", a.ip()),
        None => "dashboard".to_string(),
    }
}

/// Whether a POST came from a plain HTML form of the page (answered with
/// a redirect back to it) rather than the script or a client of the API
/// (answered with JSON): a form body, from a browser navigating.
fn is_page_form(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or_default()
    };
    header(header::CONTENT_TYPE).starts_with("application/x-www-form-urlencoded")
        && header(header::ACCEPT).contains("text/html")
}

/// The reason of a pause, from a JSON body (`{"reason": …}`) or a form
/// (`reason=…`), whatever the Content-Type says (`curl -d` calls JSON a
/// form).
fn reason_of(body: &[u8]) -> Result<Option<String>, FetchError> {
    let json_body = body.trim_ascii_start().starts_with(b"{");
    let reason = if !json_body {
        // A form (`reason=…`), or nothing.
        url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "reason")
            .map(|(_, v)| v.into_owned())
    } else {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            FetchError::BadRequest(format!(
                "the body is not JSON like {{\"reason\": \"…\"}}: {e}"
            ))
        })?;
        match v.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(FetchError::BadRequest("the reason must be a string".into()));
            }
        }
    };
    Ok(reason
        .map(|r| {
            // One line, as the ledger keeps it.
            r.trim()
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(MAX_REASON_CHARS)
                .collect::<String>()
        })
        .filter(|r| !r.is_empty()))
}

fn after_switch(headers: &HeaderMap, state: Result<Value, FetchError>) -> Response {
    match state {
        Ok(_) if is_page_form(headers) => {
            let mut r = (StatusCode::SEE_OTHER, "").into_response();
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/"));
            r
        }
        Ok(v) => json_answer(StatusCode::OK, v),
        Err(e) => failed(&e),
    }
}

async fn api_pause_post(
    State(app): State<App>,
    from: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let d = &app.dashboard;
    let result = async {
        let reason = reason_of(&body)?;
        let who = by(from.map(|c| (c.0).0));
        let p = d.client.pause(reason, who).await?;
        tracing::warn!(by = %p.by, reason = p.reason.as_deref().unwrap_or(""), "payments paused from the dashboard");
        pause_state(d).await
    }
    .await;
    after_switch(&headers, result)
}

async fn api_resume_post(
    State(app): State<App>,
    from: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let d = &app.dashboard;
    let result = async {
        let who = by(from.map(|c| (c.0).0));
        if d.client.resume(who.clone()).await?.is_some() {
            tracing::warn!(by = %who, "payments resumed from the dashboard");
        }
        pause_state(d).await
    }
    .await;
    after_switch(&headers, result)
}

async fn api_events(State(app): State<App>) -> Response {
    let mut rx = app.changes.tx.subscribe();
    let first = *rx.borrow_and_update();
    let events = futures_util::stream::unfold((rx, Some(first)), |(mut rx, first)| async move {
        if let Some(v) = first {
            let e = Event::default().event("hello").data(v.to_string());
            return Some((Ok::<_, Infallible>(e), (rx, None)));
        }
        rx.changed().await.ok()?;
        let v = *rx.borrow_and_update();
        Some((
            Ok(Event::default().event("change").data(v.to_string())),
            (rx, None),
        ))
    });
    let events = events.take_until(app.shutdown.cancelled_owned());
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

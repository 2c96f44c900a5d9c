//! The approval page: where a person approves or declines one payment
//! above the threshold, out of band, when the MCP client speaks 2026-07-28.
//!
//! That revision sends no requests from server to client: a tool that
//! needs the user answers `input_required`, and the client calls again with
//! the answers. An approval authorizes a transaction, which the revision
//! keeps out of the client (form mode must not carry it), so the input
//! asked for is a URL-mode elicitation: the client shows the person a link
//! to this page, served on 127.0.0.1, and calls the tool again; that second
//! call waits for the person's decision here.
//!
//! Each approval is:
//! - **bound**: to the budget it would pay from, the tool call's arguments,
//!   and the payment shown (URL, amount, payee); a retry that would pay
//!   anything else is asked again;
//! - **one-time**: an approval pays once, a decision is final;
//! - **expiring**: undecided after the approval timeout, it counts as
//!   declined;
//! - **secret**: its URL holds 128 random bits (not the `requestState`
//!   handle the client echoes), and the page answers only
//!   loopback `Host` names (no DNS rebinding), refuses a POST from another
//!   origin, and cannot be framed.
//!
//! The agent itself cannot reach the page through `l402_fetch`: loopback
//! addresses are refused by the address policy. An agent that can also run
//! commands on this machine (a shell tool) could reach any local page, as
//! it could reach the wallet's own files: the page keeps the decision out
//! of the MCP client and the model's tools, not out of a local shell.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::{ApprovalRequest, Msat};
use crate::text::html_escape as escape;

/// Where an approval stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nobody has decided yet.
    Pending,
    /// Approved on the page, not yet paid.
    Approved,
    /// Declined (on the page, by the client, or by expiry); the reason.
    Declined(String),
    /// Approved and taken by the payment it was for.
    Used,
}

/// One payment waiting for a person.
pub(crate) struct Pending {
    /// The handle the client echoes back (`requestState`).
    pub id: String,
    /// The secret in the page's URL: another 128 random bits, so that the
    /// handle the client carries does not open the page.
    page: String,
    /// The budget session it would pay from.
    pub scope: String,
    /// Digest of the tool call's arguments.
    pub args: [u8; 32],
    pub url: String,
    pub amount_msat: u64,
    pub fee_limit_msat: u64,
    pub payee: String,
    pub description: Option<String>,
    pub budget_left_msat: u64,
    expires: Instant,
    decision: watch::Sender<Decision>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("scope", &self.scope)
            .field("url", &self.url)
            .field("amount_msat", &self.amount_msat)
            .field("decision", &*self.decision.borrow())
            .finish_non_exhaustive()
    }
}

impl Pending {
    /// Whether this approval covers `r`: the same URL, payee and amount.
    pub fn covers(&self, r: &ApprovalRequest) -> bool {
        self.url == r.url && self.payee == r.payee && self.amount_msat == r.amount_msat
    }

    fn expired(&self) -> bool {
        Instant::now() >= self.expires
    }

    /// Records a decision unless one was made (the first one stands).
    fn decide(&self, d: Decision) -> Decision {
        let mut out = d.clone();
        self.decision.send_modify(|now| {
            if *now == Decision::Pending {
                *now = d;
            }
            out = now.clone();
        });
        out
    }

    /// Declines it unless decided, e.g. because the client's user declined
    /// to open the page.
    pub fn decline(&self, reason: &str) {
        self.decide(Decision::Declined(reason.to_string()));
    }

    /// Waits until a person decides, the approval expires, or `cancelled`
    /// resolves; then, if approved, takes it (so it pays once). True: pay.
    pub async fn wait_and_take(
        &self,
        cancelled: impl std::future::Future<Output = ()>,
    ) -> Result<(), String> {
        let mut rx = self.decision.subscribe();
        let left = self.expires.saturating_duration_since(Instant::now());
        let decided = async {
            let _ = rx.wait_for(|d| *d != Decision::Pending).await;
        };
        tokio::select! {
            () = decided => {}
            () = tokio::time::sleep(left) => {
                self.decide(Decision::Declined("nobody answered on the approval page in time".into()));
            }
            () = cancelled => {
                self.decide(Decision::Declined("the request was cancelled".into()));
            }
        }
        let mut taken = Err(String::new());
        self.decision.send_modify(|now| {
            taken = match now {
                Decision::Approved => {
                    *now = Decision::Used;
                    Ok(())
                }
                Decision::Declined(why) => Err(why.clone()),
                Decision::Used => Err("that approval was already used for a payment".into()),
                Decision::Pending => Err("the approval is still pending".into()),
            };
        });
        taken
    }
}

/// The pending approvals of one server, and the page that decides them.
pub(crate) struct Desk {
    pending: Mutex<HashMap<String, Arc<Pending>>>,
    page: tokio::sync::OnceCell<SocketAddr>,
    timeout: Duration,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk")
            .field("page", &self.page.get())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Undecided approvals kept at most: past it the oldest are dropped
/// (declined), so a client asking in a loop cannot grow memory.
const MAX_PENDING: usize = 256;

impl Desk {
    pub fn new(timeout: Duration) -> Arc<Desk> {
        Arc::new(Desk {
            pending: Mutex::default(),
            page: tokio::sync::OnceCell::new(),
            timeout,
            shutdown: CancellationToken::new(),
        })
    }

    /// Stops the page.
    pub fn close(&self) {
        self.shutdown.cancel();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Pending>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new pending approval for `r`, and the page's URL for it (the page
    /// starts on first use).
    pub async fn open(
        self: &Arc<Self>,
        scope: &str,
        args: [u8; 32],
        r: &ApprovalRequest,
    ) -> Result<(Arc<Pending>, String), String> {
        let addr = self.page().await?;
        let id = format!("{:032x}", rand::random::<u128>());
        let page = format!("{:032x}", rand::random::<u128>());
        let pending = Arc::new(Pending {
            id: id.clone(),
            page: page.clone(),
            scope: scope.to_string(),
            args,
            url: r.url.clone(),
            amount_msat: r.amount_msat,
            fee_limit_msat: r.fee_limit_msat,
            payee: r.payee.clone(),
            description: r.description.clone(),
            budget_left_msat: r.budget_left_msat,
            expires: Instant::now() + self.timeout,
            decision: watch::Sender::new(Decision::Pending),
        });
        {
            let mut map = self.lock();
            map.retain(|_, p| !p.expired() && *p.decision.borrow() != Decision::Used);
            while map.len() >= MAX_PENDING {
                let Some(oldest) = map.values().min_by_key(|p| p.expires).map(|p| p.id.clone())
                else {
                    break;
                };
                if let Some(p) = map.remove(&oldest) {
                    p.decline("too many approvals were pending");
                }
            }
            map.insert(id, pending.clone());
        }
        Ok((pending, format!("http://{addr}/approve/{page}")))
    }

    /// The pending approval whose handle is `id`, if it is known and not
    /// expired.
    pub fn get(&self, id: &str) -> Option<Arc<Pending>> {
        self.lock().get(id).filter(|p| !p.expired()).cloned()
    }

    /// The pending approval whose page is `page`, likewise.
    fn by_page(&self, page: &str) -> Option<Arc<Pending>> {
        self.lock()
            .values()
            .find(|p| p.page == page && !p.expired())
            .cloned()
    }

    async fn page(self: &Arc<Self>) -> Result<SocketAddr, String> {
        let desk = self.clone();
        self.page
            .get_or_try_init(|| async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .map_err(|e| format!("cannot open the approval page on 127.0.0.1: {e}"))?;
                let addr = listener
                    .local_addr()
                    .map_err(|e| format!("cannot open the approval page: {e}"))?;
                let stop = desk.shutdown.clone();
                let app = Router::new()
                    .route("/approve/{id}", get(show).post(decide))
                    .with_state(PageState { desk, addr });
                tokio::spawn(async move {
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await;
                    if let Err(e) = served {
                        tracing::warn!(error = %e, "the approval page stopped");
                    }
                });
                tracing::info!(%addr, "approval page listening");
                Ok(addr)
            })
            .await
            .copied()
    }
}

#[derive(Clone)]
struct PageState {
    desk: Arc<Desk>,
    addr: SocketAddr,
}

impl PageState {
    /// Only the page's own loopback authority: a page on another name
    /// resolving to 127.0.0.1 (DNS rebinding) gets nothing.
    fn host_ok(&self, headers: &HeaderMap) -> bool {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let port = self.addr.port();
        host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}")
    }

    /// A POST must come from the page itself (or a client that sends no
    /// Origin at all). The page's `Referrer-Policy: same-origin` is what
    /// lets a browser name the page as the origin; with `no-referrer` it
    /// would send `Origin: null`, which is refused.
    fn origin_ok(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            None => true,
            Some(o) => {
                let port = self.addr.port();
                o == format!("http://127.0.0.1:{port}") || o == format!("http://localhost:{port}")
            }
        }
    }
}

async fn show(
    State(s): State<PageState>,
    Path(page_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !s.host_ok(&headers) {
        return page(
            StatusCode::FORBIDDEN,
            "Not here",
            "<p>This page answers on its own address only.</p>",
        );
    }
    let Some(p) = s.desk.by_page(&page_id) else {
        return gone();
    };
    let state = p.decision.borrow().clone();
    match state {
        Decision::Pending => page(StatusCode::OK, "Approve this payment?", &form(&p)),
        other => page(StatusCode::OK, "Decided", &decided(&other)),
    }
}

async fn decide(
    State(s): State<PageState>,
    Path(page_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !s.host_ok(&headers) || !s.origin_ok(&headers) {
        return page(
            StatusCode::FORBIDDEN,
            "Not here",
            "<p>Decide on the page itself.</p>",
        );
    }
    let Some(p) = s.desk.by_page(&page_id) else {
        return gone();
    };
    let choice = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "decision")
        .map(|(_, v)| v.into_owned());
    let now = match choice.as_deref() {
        Some("approve") => p.decide(Decision::Approved),
        Some("decline") => p.decide(Decision::Declined(
            "the person declined it on the approval page".into(),
        )),
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "No decision",
                "<p>Press Approve or Decline.</p>",
            );
        }
    };
    tracing::info!(amount_msat = p.amount_msat, decision = ?now, "approval page decision");
    page(StatusCode::OK, "Decided", &decided(&now))
}

fn gone() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "No such approval",
        "<p>This approval does not exist or has expired. Nothing was paid; ask the agent to try \
         again if the payment is still wanted.</p>",
    )
}

fn form(p: &Pending) -> String {
    let what = p
        .description
        .as_deref()
        .filter(|d| !d.trim().is_empty())
        .map(|d| format!("<tr><th>Invoice says</th><td>{}</td></tr>", escape(d)))
        .unwrap_or_default();
    format!(
        "<p>An AI agent wants to pay over Lightning. Nothing is paid unless you approve.</p>\
         <table>\
         <tr><th>Amount</th><td id=\"amount\">{amount}</td></tr>\
         <tr><th>Routing fee, at most</th><td id=\"fee\">{fee}</td></tr>\
         <tr><th>For</th><td id=\"url\">{url}</td></tr>\
         <tr><th>Payee node</th><td id=\"payee\"><code>{payee}</code></td></tr>\
         {what}\
         <tr><th>Budget left</th><td id=\"left\">{left}</td></tr>\
         </table>\
         <form method=\"post\">\
         <button id=\"approve\" name=\"decision\" value=\"approve\">Approve</button> \
         <button id=\"decline\" name=\"decision\" value=\"decline\">Decline</button>\
         </form>\
         <p class=\"small\">This approval pays this one payment once, and expires unanswered.</p>",
        amount = Msat(p.amount_msat),
        fee = Msat(p.fee_limit_msat),
        url = escape(&p.url),
        payee = escape(&p.payee),
        left = Msat(p.budget_left_msat),
    )
}

fn decided(d: &Decision) -> String {
    let text = match d {
        Decision::Approved => {
            "Approved: the payment goes ahead when the agent's call continues.".to_string()
        }
        Decision::Used => "Approved and paid.".to_string(),
        Decision::Declined(why) => format!("Declined ({}). Nothing was paid.", escape(why)),
        Decision::Pending => "Still pending.".to_string(),
    };
    format!("<p id=\"decision\">{text}</p><p>You can close this page.</p>")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>l402-mcp: {title}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}\
         th{{text-align:left;padding-right:1em;vertical-align:top}}td{{word-break:break-all}}\
         button{{font-size:1.1em;padding:.4em 1.2em;margin-top:1em}}.small{{color:#555;font-size:.9em}}\
         </style></head><body><h1>{title}</h1>{body}</body></html>"
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ApprovalRequest {
        ApprovalRequest {
            url: "https://api.example/v1/x".into(),
            amount_msat: 250_000,
            fee_limit_msat: 10_000,
            description: Some("<script>x</script>".into()),
            payee: "02ab".into(),
            budget_left_msat: 1_000_000,
            call: crate::client::Call::default(),
        }
    }

    #[tokio::test]
    async fn an_approval_pays_once_and_a_decline_stands() {
        let desk = Desk::new(Duration::from_secs(30));
        let (p, url) = desk.open("s", [0; 32], &request()).await.unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert!(
            !url.contains(&p.id),
            "the handle the client carries does not open the page"
        );
        assert_eq!(p.decide(Decision::Approved), Decision::Approved);
        assert_eq!(
            p.decide(Decision::Declined("late".into())),
            Decision::Approved,
            "the first decision stands"
        );
        assert!(p.wait_and_take(std::future::pending()).await.is_ok());
        let again = p.wait_and_take(std::future::pending()).await;
        assert!(again.unwrap_err().contains("already used"));
        desk.close();
    }

    #[tokio::test]
    async fn an_unanswered_approval_expires_declined() {
        let desk = Desk::new(Duration::from_millis(50));
        let (p, _) = desk.open("s", [0; 32], &request()).await.unwrap();
        let out = p.wait_and_take(std::future::pending()).await;
        assert!(out.unwrap_err().contains("in time"));
        assert!(
            desk.get(&p.id).is_none(),
            "an expired approval is not found"
        );
        desk.close();
    }

    #[test]
    fn the_page_escapes_what_the_invoice_says() {
        let (tx, _) = watch::channel(Decision::Pending);
        let r = request();
        let p = Pending {
            id: "i".into(),
            page: "p".into(),
            scope: "s".into(),
            args: [0; 32],
            url: r.url.clone(),
            amount_msat: r.amount_msat,
            fee_limit_msat: r.fee_limit_msat,
            payee: r.payee.clone(),
            description: r.description.clone(),
            budget_left_msat: r.budget_left_msat,
            expires: Instant::now(),
            decision: tx,
        };
        let html = form(&p);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(p.covers(&r));
        let mut other = request();
        other.amount_msat += 1;
        assert!(
            !p.covers(&other),
            "an approval covers the amount shown, no other"
        );
    }
}

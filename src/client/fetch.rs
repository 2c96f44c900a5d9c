//! The request side of a fetch: redirects, tokens, the 402 answer, and
//! the checks every payment must pass (shared with `preview`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::lock::lock_origin;
use super::net::check_url;
use super::pay::paying_here;
use super::{
    BudgetView, Call, Check, FetchError, FetchRequest, L402Client, MAX_REDIRECTS, Preview,
    RawResponse, Receipt, Refusal, Sats, network_error,
};
use crate::l402::{Challenge, Credential, Scheme};
use crate::lightning::Invoice;
use crate::lightning::PaymentHash;
use crate::store::{Origin, Store, Token};

/// The per-request cap in force: the operator's, or lower when the request
/// asked for less. A request asking for more is remembered, so that a
/// refusal can say the operator's cap stood.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cap {
    msat: u64,
    raise_refused_msat: Option<u64>,
}

impl Cap {
    pub(super) fn new(operator_msat: u64, requested_msat: Option<u64>) -> Self {
        Cap {
            msat: requested_msat.map_or(operator_msat, |r| r.min(operator_msat)),
            raise_refused_msat: requested_msat.filter(|r| *r > operator_msat),
        }
    }
}

/// A challenge that passed every check: what `pay` needs.
#[derive(Debug)]
pub(super) struct Checked {
    pub challenge: Challenge,
    pub invoice: Invoice,
    pub amount_msat: u64,
}

/// A usable token, with its `Authorization` value built once and the
/// paths it was presented at (true: accepted there).
#[derive(Debug)]
pub(super) struct Held {
    pub hash: PaymentHash,
    header: HeaderValue,
    /// When its use was last written to the store (unix seconds).
    last_noted: AtomicU64,
    paths: std::sync::Mutex<std::collections::HashMap<String, bool>>,
    /// Just bought, and its buyer has not presented it yet: no other
    /// request of this process presents it meanwhile. A single-use token
    /// taken by another request would leave the buyer, who paid, with a
    /// refusal.
    for_buyer: std::sync::atomic::AtomicBool,
}

impl Held {
    /// `now` (Unix seconds) tells whether the token is still its buyer's.
    fn new(token: &Token, now: u64) -> Result<Self, FetchError> {
        Ok(Held {
            hash: token.info.payment_hash,
            header: credential_header(token)?,
            last_noted: AtomicU64::new(0),
            paths: std::sync::Mutex::default(),
            for_buyer: std::sync::atomic::AtomicBool::new(
                token.info.held_until.is_some_and(|t| t > now),
            ),
        })
    }

    fn lock_paths(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, bool>> {
        self.paths.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The buyer's first presentation of a token it just bought; when it ends
/// (or the fetch is dropped) the token is every request's again: in this
/// client at once, in the store (other sessions and processes) as soon as
/// the hold is written off. A crashed buyer's hold runs out by itself.
struct BuyerHold {
    token: Arc<Held>,
    store: Arc<Store>,
    released: bool,
}

impl BuyerHold {
    /// Ends the hold now, in the store too, before the origin's locks go.
    async fn release(mut self) {
        self.released = true;
        self.token.for_buyer.store(false, Ordering::Release);
        let (store, hash) = (self.store.clone(), self.token.hash);
        match blocking(move || store.release_hold(&hash)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot release a token's buyer hold; it runs out");
            }
            Err(e) => tracing::debug!(error = %e, "cannot release a token's buyer hold"),
        }
    }
}

impl Drop for BuyerHold {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.token.for_buyer.store(false, Ordering::Release);
        let (store, hash) = (self.store.clone(), self.token.hash);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn_blocking(move || {
                if let Err(e) = store.release_hold(&hash) {
                    tracing::debug!(error = %e, "cannot release a token's buyer hold; it runs out");
                }
            });
        }
    }
}

/// Token use is written to the store at most this often per token: the
/// hot path of a reused token does no database write.
const NOTE_USE_EVERY_SECS: u64 = 60;

/// What presenting cached tokens came to.
enum Attempt {
    /// A token was not refused: its response.
    Served(reqwest::Response),
    /// Every token was refused: the last refusal, if any token was tried.
    Refused(Option<reqwest::Response>),
}

/// How one hop of the redirect loop is sent: [`Paying`] for a fetch (with
/// the origin's tokens, paying a 402), [`Asking`] for a preview (without a
/// credential, paying nothing).
trait Hop {
    fn send<'a>(
        &'a mut self,
        url: &'a Url,
        origin: &'a Origin,
        out: &'a Outgoing,
    ) -> impl std::future::Future<Output = Result<reqwest::Response, FetchError>> + Send + 'a;
}

struct Paying<'c> {
    client: &'c L402Client,
    cap: Cap,
    call: &'c Call,
    receipt: &'c mut Option<Receipt>,
}

impl Hop for Paying<'_> {
    fn send<'a>(
        &'a mut self,
        url: &'a Url,
        origin: &'a Origin,
        out: &'a Outgoing,
    ) -> impl std::future::Future<Output = Result<reqwest::Response, FetchError>> + Send + 'a {
        self.client
            .fetch_origin(url, origin, out, self.cap, self.call, self.receipt)
    }
}

struct Asking<'c> {
    client: &'c L402Client,
}

impl Hop for Asking<'_> {
    fn send<'a>(
        &'a mut self,
        url: &'a Url,
        _origin: &'a Origin,
        out: &'a Outgoing,
    ) -> impl std::future::Future<Output = Result<reqwest::Response, FetchError>> + Send + 'a {
        self.client.send(url, out, None)
    }
}

/// The request as sent on each hop.
struct Outgoing {
    method: Method,
    headers: HeaderMap,
    body: Option<Bytes>,
}

impl L402Client {
    /// Fetches `req`, paying if needed, and returns the response unread.
    /// The whole exchange has the configured deadline; a payment under way
    /// when it passes runs in its own task, completes and is recorded.
    pub async fn fetch_raw(&self, req: FetchRequest) -> Result<RawResponse, FetchError> {
        let deadline = self.config.fetch_deadline;
        tokio::time::timeout(deadline, self.fetch_raw_inner(req))
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Network(format!(
                    "the fetch did not finish within {} s",
                    deadline.as_secs()
                )))
            })
    }

    async fn fetch_raw_inner(&self, req: FetchRequest) -> Result<RawResponse, FetchError> {
        self.recover_once().await;
        let url = parse_url(&req.url)?;
        let cap = Cap::new(self.config.max_cost_msat, req.max_cost_msat);
        let call = req.call;
        let mut out = Outgoing {
            method: req.method,
            headers: header_map(&req.headers)?,
            body: req.body,
        };
        let mut receipt = None;
        let mut paying = Paying {
            client: self,
            cap,
            call: &call,
            receipt: &mut receipt,
        };
        let (url, response) = self.follow(url, &mut out, &mut paying).await?;
        Ok(RawResponse {
            url,
            response,
            receipt,
        })
    }

    /// The redirect loop of both fetch and preview: checks each hop's URL
    /// against the policy, sends it with `hop`, and follows redirects up
    /// to [`MAX_REDIRECTS`] as browsers do (a 303, and a 301/302 answering
    /// a POST, turn into a GET without a body; 307/308 keep both), never
    /// carrying the caller's credentials to another origin.
    async fn follow(
        &self,
        mut url: Url,
        out: &mut Outgoing,
        hop: &mut impl Hop,
    ) -> Result<(Url, reqwest::Response), FetchError> {
        for n in 0..=MAX_REDIRECTS {
            check_url(&self.policy, &url).map_err(Refusal::Url)?;
            let origin =
                Origin::from_url(&url).map_err(|e| FetchError::BadRequest(e.to_string()))?;
            let response = hop.send(&url, &origin, out).await?;
            let Some(next) = redirect_target(&url, &response)? else {
                return Ok((url, response));
            };
            if n == MAX_REDIRECTS {
                return Err(FetchError::Redirect(format!(
                    "{url} redirected more than {MAX_REDIRECTS} times; the last hop was to {next}"
                )));
            }
            let status = response.status();
            if status == StatusCode::SEE_OTHER
                || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && out.method == Method::POST)
            {
                out.method = Method::GET;
                out.body = None;
                out.headers.remove(header::CONTENT_TYPE);
                out.headers.remove(header::CONTENT_LENGTH);
            }
            // Credentials never cross origins: the caller's own
            // Authorization and Cookie headers stay behind, and the token
            // lookup is by the new origin.
            let next_origin =
                Origin::from_url(&next).map_err(|e| FetchError::Redirect(e.to_string()))?;
            if next_origin != origin {
                out.headers.remove(header::AUTHORIZATION);
                out.headers.remove(header::COOKIE);
                out.headers.remove(header::PROXY_AUTHORIZATION);
            }
            tracing::debug!(from = %url, to = %next, "following redirect");
            url = next;
        }
        unreachable!("the loop returns on its last hop")
    }

    /// One hop: send with the origin's best token for the path, if any; on
    /// a 402 (or a 401 answering our token), try the origin's other tokens,
    /// then pay under the origin's lock and send again.
    async fn fetch_origin(
        &self,
        url: &Url,
        origin: &Origin,
        out: &Outgoing,
        cap: Cap,
        call: &Call,
        receipt: &mut Option<Receipt>,
    ) -> Result<reqwest::Response, FetchError> {
        let path = url.path();
        let mut tried = Vec::new();
        let first = self
            .candidates(origin, path, &tried, false)
            .await?
            .into_iter()
            .next();
        let response = self.send(url, out, first.as_deref()).await?;
        if !needs_payment(&response, first.is_some()) {
            if let Some(t) = &first {
                self.presented(t, path, response.status());
                *receipt = Some(self.reused_receipt(t));
            }
            return Ok(response);
        }

        // Check, pay and store under the origin's lock, so that concurrent
        // fetches of one origin pay once.
        let lock = self.origin_lock(origin);
        let guard = lock.lock().await;
        // And across processes sharing the store; a token another process
        // bought while we waited is then in the store, not in our memory.
        let file_lock = lock_origin(self.store.location(), origin).await?;
        if file_lock.is_some() {
            self.lock_tokens().remove(origin);
        }
        let mut response = response;
        if let Some(t) = &first {
            tried.push(t.hash);
            self.refused(origin, t, path).await?;
        }
        // The origin's other tokens: one bought while we waited, or one for
        // another service that may cover this path too.
        match self
            .try_candidates(url, origin, out, &mut tried, receipt)
            .await?
        {
            Attempt::Served(served) => return Ok(served),
            Attempt::Refused(Some(last)) => response = last,
            Attempt::Refused(None) => {}
        }
        if response.status() != StatusCode::PAYMENT_REQUIRED {
            // A refused token may get a 401 without a challenge: ask again
            // without one to get a challenge.
            response = self.send(url, out, None).await?;
            if response.status() != StatusCode::PAYMENT_REQUIRED {
                return Ok(response);
            }
        }

        // An earlier payment to this origin whose outcome is unknown (a
        // timeout, a crash) may have bought a token already: resolve it
        // before buying another, and never buy while one is in flight.
        if self.resolve_pending(origin).await?
            && let Attempt::Served(served) = self
                .try_candidates(url, origin, out, &mut tried, receipt)
                .await?
        {
            return Ok(served);
        }

        let checked = self.check_challenge(&response, url, cap, call).await?;
        tracing::info!(
            "{url} asks {} ({} challenge, invoice for {}, payment hash {}); every check passed",
            Sats(checked.amount_msat),
            scheme_name(checked.challenge.scheme),
            checked.invoice.network(),
            checked.invoice.payment_hash()
        );
        drop(response);
        let (token, paid) = self.pay(url, origin, checked, call).await?;
        // No await since the token was kept as held for its buyer.
        let hold = BuyerHold {
            token: token.clone(),
            store: self.store.clone(),
            released: false,
        };

        // Retry with the new token, still under the origin's locks: a
        // request waiting for them presents the token only once its buyer
        // has (a single-use token would otherwise be taken from under the
        // request that paid for it). If this fails, the token stays paid
        // and the next fetch reuses it.
        let retried = self.send(url, out, Some(&token)).await;
        hold.release().await;
        drop(file_lock);
        drop(guard);
        let retried = retried?;
        if needs_payment(&retried, true) {
            // Refused at the path it was bought for: it buys nothing.
            self.forget_token(origin, &token.hash).await?;
        } else {
            self.presented(&token, path, retried.status());
        }
        *receipt = Some(Receipt {
            paid: true,
            amount_msat: paid.amount_msat,
            fee_msat: paid.fee_msat,
            payment_hash: token.hash,
            budget_left_msat: self.budget().map(|b| b.left_msat).unwrap_or(0),
        });
        Ok(retried)
    }

    /// Presents the origin's untried tokens at the URL's path, best first:
    /// the response of the first not refused, or of the last refused.
    async fn try_candidates(
        &self,
        url: &Url,
        origin: &Origin,
        out: &Outgoing,
        tried: &mut Vec<PaymentHash>,
        receipt: &mut Option<Receipt>,
    ) -> Result<Attempt, FetchError> {
        let path = url.path();
        let mut last = None;
        // Under the origin's locks: a token held for its buyer may be
        // presented, since its buyer is done with it (or died).
        for t in self.candidates(origin, path, tried, true).await? {
            tried.push(t.hash);
            let response = self.send(url, out, Some(&t)).await?;
            if !needs_payment(&response, true) {
                self.presented(&t, path, response.status());
                *receipt = Some(self.reused_receipt(&t));
                return Ok(Attempt::Served(response));
            }
            self.refused(origin, &t, path).await?;
            last = Some(response);
        }
        Ok(Attempt::Refused(last))
    }

    fn reused_receipt(&self, token: &Held) -> Receipt {
        Receipt {
            paid: false,
            amount_msat: 0,
            fee_msat: 0,
            payment_hash: token.hash,
            // As of this client's last look at the ledger: a reused token
            // spends nothing, so no database read on this path.
            budget_left_msat: self.budget_left_snapshot(),
        }
    }

    /// Sends one request, with `token`'s credential if given.
    async fn send(
        &self,
        url: &Url,
        out: &Outgoing,
        token: Option<&Held>,
    ) -> Result<reqwest::Response, FetchError> {
        let client = if self.policy.origin_allowed(url) {
            &self.http_allowed
        } else {
            &self.http
        };
        let mut req = client
            .request(out.method.clone(), url.clone())
            .headers(out.headers.clone());
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, t.header.clone());
        }
        if let Some(body) = &out.body {
            req = req.body(body.clone());
        }
        // As `curl -v` shows an exchange: the request and status lines at
        // debug (-vv), every header at trace (-vvv); credentials and
        // cookies only by name and size.
        tracing::debug!(
            "> {} {url}{}{}",
            out.method,
            if token.is_some() {
                " (with an L402 credential)"
            } else {
                ""
            },
            out.body
                .as_ref()
                .map(|b| format!(" ({} byte body)", b.len()))
                .unwrap_or_default()
        );
        if tracing::enabled!(tracing::Level::TRACE) {
            for (name, value) in out.headers.iter() {
                tracing::trace!("> {name}: {}", shown_header(name, value));
            }
            if let Some(t) = token {
                tracing::trace!(
                    "> authorization: {}",
                    shown_header(&header::AUTHORIZATION, &t.header)
                );
            }
        }
        let response = req.send().await.map_err(network_error)?;
        tracing::debug!(
            "< {} {} ({url})",
            response.status().as_u16(),
            response.status().canonical_reason().unwrap_or("")
        );
        if tracing::enabled!(tracing::Level::TRACE) {
            for (name, value) in response.headers() {
                tracing::trace!("< {name}: {}", shown_header(name, value));
            }
        }
        Ok(response)
    }

    /// The origin's usable tokens, newest first: from memory, else loaded
    /// from the store with the paths each was presented at.
    async fn origin_tokens(&self, origin: &Origin) -> Result<Vec<Arc<Held>>, FetchError> {
        if let Some(list) = self.lock_tokens().get(origin) {
            return Ok(list.clone());
        }
        let store = self.store.clone();
        let o = origin.clone();
        let rows = blocking(move || store.usable_tokens(&o)).await??;
        let mut list = Vec::with_capacity(rows.len());
        for (token, paths) in rows {
            let held = Held::new(&token, self.store.now())?;
            held.lock_paths().extend(paths);
            list.push(Arc::new(held));
        }
        let mut tokens = self.lock_tokens();
        Ok(tokens.entry(origin.clone()).or_insert(list).clone())
    }

    /// Up to three tokens to present at `path`, best first: those accepted
    /// there before, then those not refused there, newest first; none of
    /// `tried`. Tokens still held for their buyer only when `locked` (the
    /// caller holds the origin's locks, which the buyer keeps until it has
    /// presented its token).
    async fn candidates(
        &self,
        origin: &Origin,
        path: &str,
        tried: &[PaymentHash],
        locked: bool,
    ) -> Result<Vec<Arc<Held>>, FetchError> {
        const MAX_CANDIDATES: usize = 3;
        let list = self.origin_tokens(origin).await?;
        let verdict = |t: &Held| t.lock_paths().get(path).copied();
        let fresh = list.iter().filter(|t| {
            !tried.contains(&t.hash) && (locked || !t.for_buyer.load(Ordering::Acquire))
        });
        let accepted = fresh.clone().filter(|t| verdict(t) == Some(true));
        let unknown = fresh.filter(|t| verdict(t).is_none());
        Ok(accepted
            .chain(unknown)
            .take(MAX_CANDIDATES)
            .cloned()
            .collect())
    }

    /// Whether any usable token for `origin` is known (for preview).
    pub(super) async fn has_token(&self, origin: &Origin) -> Result<bool, FetchError> {
        Ok(!self.origin_tokens(origin).await?.is_empty())
    }

    /// Resolves this origin's pending tokens with the payment backend.
    /// True when one turned out paid (the origin's tokens are reloaded);
    /// refuses while one is still in flight (paying again could pay twice
    /// for one resource).
    async fn resolve_pending(&self, origin: &Origin) -> Result<bool, FetchError> {
        let store = self.store.clone();
        let o = origin.clone();
        let pending = blocking(move || {
            store.list_pending().map(|all| {
                all.into_iter()
                    .filter(|t| t.info.origin == o && !paying_here(&t.info.payment_hash))
                    .count()
            })
        })
        .await??;
        if pending == 0 {
            return Ok(false);
        }
        self.recover().await?;
        let store = self.store.clone();
        let o = origin.clone();
        let still = blocking(move || {
            store.list_pending().map(|all| {
                all.into_iter()
                    .find(|t| t.info.origin == o && !paying_here(&t.info.payment_hash))
            })
        })
        .await??;
        if let Some(t) = still {
            return Err(FetchError::Refused(Refusal::PaymentInFlight(
                t.info.payment_hash,
            )));
        }
        self.lock_tokens().remove(origin);
        Ok(true)
    }

    /// A token was refused at `path`. Refused where it used to be accepted,
    /// it is stale (expired or revoked); otherwise it is only not valid
    /// here (another service's token), and stays usable elsewhere.
    async fn refused(&self, origin: &Origin, token: &Held, path: &str) -> Result<(), FetchError> {
        if token.lock_paths().get(path) == Some(&true) {
            return self.forget_token(origin, &token.hash).await;
        }
        token.lock_paths().insert(path.to_string(), false);
        let (store, h, p) = (self.store.clone(), token.hash, path.to_string());
        blocking(move || store.record_path(&h, &p, false)).await??;
        Ok(())
    }

    /// Marks a token stale, here and in the store.
    async fn forget_token(&self, origin: &Origin, hash: &PaymentHash) -> Result<(), FetchError> {
        if let Some(list) = self.lock_tokens().get_mut(origin) {
            list.retain(|t| t.hash != *hash);
        }
        let store = self.store.clone();
        let h = *hash;
        tracing::info!(%origin, payment_hash = %h, "server refused a token where it used to work; marking it stale");
        blocking(move || store.mark_stale(&h)).await??;
        Ok(())
    }

    /// A token was presented at `path` and not refused: remember where it
    /// works (a new path is written to the store, off the request path),
    /// and note its use at most once a minute.
    fn presented(&self, token: &Held, path: &str, status: StatusCode) {
        let newly_accepted = status.as_u16() < 400 && {
            let mut paths = token.lock_paths();
            // The hot path (accepted here before) allocates nothing.
            paths.get(path) != Some(&true) && paths.insert(path.to_string(), true) != Some(true)
        };
        let now = self.store.now();
        let last = token.last_noted.load(Ordering::Relaxed);
        let note_use = now.saturating_sub(last) >= NOTE_USE_EVERY_SECS
            && token
                .last_noted
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if !newly_accepted && !note_use {
            return;
        }
        let (store, h, p) = (self.store.clone(), token.hash, path.to_string());
        tokio::task::spawn_blocking(move || {
            let result = if newly_accepted {
                store.record_path(&h, &p, true)
            } else {
                Ok(())
            };
            let result = result.and_then(|()| {
                if note_use {
                    store.mark_used(&h)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = result {
                tracing::debug!(error = %e, "cannot record token use");
            }
        });
    }

    /// Keeps a newly paid `token` as the origin's newest.
    pub(super) async fn remember_token(
        &self,
        origin: &Origin,
        token: &Token,
    ) -> Result<Arc<Held>, FetchError> {
        let list = self.origin_tokens(origin).await?;
        // Its buyer presents it first (see `BuyerHold`).
        if let Some(held) = list.iter().find(|t| t.hash == token.info.payment_hash) {
            held.for_buyer.store(true, Ordering::Release);
            return Ok(held.clone());
        }
        let held = Arc::new(Held::new(token, self.store.now())?);
        held.for_buyer.store(true, Ordering::Release);
        self.lock_tokens()
            .entry(origin.clone())
            .or_default()
            .insert(0, held.clone());
        Ok(held)
    }

    fn lock_tokens(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Origin, Vec<Arc<Held>>>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn origin_lock(&self, origin: &Origin) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(origin.clone()).or_default().clone()
    }

    // ---------------------------------------------------------------------
    // checks

    /// Parses the 402's challenge and runs every check; the first failure
    /// is the refusal.
    async fn check_challenge(
        &self,
        response: &reqwest::Response,
        url: &Url,
        cap: Cap,
        call: &Call,
    ) -> Result<Checked, FetchError> {
        let (checks, checked) = self.evaluate(response, url, cap)?;
        for c in &checks {
            tracing::debug!(
                "check {} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        if let Some(refusal) = checks.into_iter().find_map(|c| c.refusal) {
            return Err(FetchError::Refused(refusal));
        }
        let checked = checked.ok_or_else(|| {
            FetchError::Refused(Refusal::InvalidChallenge("no usable challenge".into()))
        })?;
        self.approve(url, &checked, call).await?;
        Ok(checked)
    }

    /// Every check of DESIGN.md's "Before any payment" that needs no
    /// consent: each verdict, and the checked challenge when all passed.
    fn evaluate(
        &self,
        response: &reqwest::Response,
        url: &Url,
        cap: Cap,
    ) -> Result<(Vec<Check>, Option<Checked>), FetchError> {
        let mut checks = Vec::new();
        let values: Vec<&str> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let challenge = match Challenge::parse_all(values) {
            Ok(mut all) => all.swap_remove(0),
            Err(e) => {
                checks.push(Check::fail(
                    "challenge",
                    Refusal::InvalidChallenge(e.to_string()),
                ));
                return Ok((checks, None));
            }
        };
        checks.push(Check::pass(
            "challenge",
            format!("{} challenge parsed", scheme_name(challenge.scheme)),
        ));

        let invoice: Invoice = match challenge.invoice.parse() {
            Ok(i) => i,
            Err(e) => {
                checks.push(Check::fail(
                    "invoice",
                    Refusal::InvalidInvoice(e.to_string()),
                ));
                return Ok((checks, None));
            }
        };
        checks.push(Check::pass(
            "invoice",
            "BOLT11 invoice decodes and its signature is valid",
        ));

        let amount = invoice.amount_msat();
        match amount {
            Some(a) if a > 0 => checks.push(Check::pass("amount", format!("asks {}", Sats(a)))),
            _ => checks.push(Check::fail("amount", Refusal::Amountless)),
        }

        let now = SystemTime::now();
        if invoice.is_expired_at(now) {
            let ago = now
                .duration_since(invoice.expires_at())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            checks.push(Check::fail("expiry", Refusal::Expired { ago_secs: ago }));
        } else {
            let left = invoice
                .expires_at()
                .duration_since(now)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            checks.push(Check::pass("expiry", format!("expires in {left} s")));
        }

        let payer_net = self.payer.network();
        if !self.can_pay {
            checks.push(Check::fail(
                "payer",
                Refusal::NoPayer {
                    invoice: invoice.network(),
                },
            ));
        } else if invoice.network() == payer_net {
            checks.push(Check::pass(
                "network",
                format!("invoice is for {payer_net}, as the payer"),
            ));
        } else {
            checks.push(Check::fail(
                "network",
                Refusal::WrongNetwork {
                    invoice: invoice.network(),
                    payer: payer_net,
                },
            ));
        }

        match challenge.macaroon.identifier() {
            Ok(id) if id.payment_hash == invoice.payment_hash() => checks.push(Check::pass(
                "payment_hash",
                "the macaroon is bound to this invoice's payment hash",
            )),
            Ok(id) => checks.push(Check::fail(
                "payment_hash",
                Refusal::HashMismatch {
                    invoice: invoice.payment_hash(),
                    macaroon: id.payment_hash,
                },
            )),
            Err(e) => checks.push(Check::fail(
                "payment_hash",
                Refusal::InvalidChallenge(format!("the macaroon identifier is unusable: {e}")),
            )),
        }

        let asked = amount.unwrap_or(0);
        if asked <= cap.msat {
            checks.push(Check::pass(
                "cap",
                format!(
                    "{} is within the per-request cap of {}",
                    Sats(asked),
                    Sats(cap.msat)
                ),
            ));
        } else {
            checks.push(Check::fail(
                "cap",
                Refusal::OverCap {
                    url: url.to_string(),
                    asked_msat: asked,
                    cap_msat: cap.msat,
                    raise_refused_msat: cap.raise_refused_msat,
                },
            ));
        }

        let fee = self.config.fee_limit_msat;
        let budget = self.budget()?;
        if asked.saturating_add(fee) <= budget.left_msat {
            checks.push(Check::pass(
                "budget",
                format!(
                    "{} plus up to {} in fees fits the session's {} left",
                    Sats(asked),
                    Sats(fee),
                    Sats(budget.left_msat)
                ),
            ));
        } else if let Some(server) = budget
            .server
            .as_ref()
            .filter(|p| asked.saturating_add(fee) > p.left_msat)
        {
            // The server's pool is what binds.
            checks.push(Check::fail(
                "budget",
                Refusal::OverServerBudget {
                    url: url.to_string(),
                    asked_msat: asked,
                    fee_limit_msat: fee,
                    left_msat: server.left_msat,
                    budget_msat: server.budget_msat,
                },
            ));
        } else {
            checks.push(Check::fail(
                "budget",
                Refusal::OverBudget {
                    url: url.to_string(),
                    session: budget.session.clone(),
                    asked_msat: asked,
                    fee_limit_msat: fee,
                    left_msat: budget.left_msat,
                    budget_msat: budget.budget_msat,
                },
            ));
        }

        if let Some(threshold) = self.config.approve_above_msat
            && asked > threshold
        {
            checks.push(Check::pass(
                "approval",
                format!(
                    "{} is above the approval threshold of {}: a person will be asked",
                    Sats(asked),
                    Sats(threshold)
                ),
            ));
        }

        let all_ok = checks.iter().all(|c| c.ok);
        let checked = all_ok.then_some(Checked {
            challenge,
            invoice,
            amount_msat: asked,
        });
        Ok((checks, checked))
    }

    async fn approve(&self, url: &Url, checked: &Checked, call: &Call) -> Result<(), FetchError> {
        let Some(threshold) = self.config.approve_above_msat else {
            return Ok(());
        };
        if checked.amount_msat <= threshold {
            return Ok(());
        }
        let unavailable = || {
            FetchError::Refused(Refusal::ApprovalUnavailable {
                asked_msat: checked.amount_msat,
                threshold_msat: threshold,
            })
        };
        let Some(approver) = &self.approver else {
            return Err(unavailable());
        };
        let request = super::ApprovalRequest {
            url: url.to_string(),
            amount_msat: checked.amount_msat,
            fee_limit_msat: self.config.fee_limit_msat,
            description: checked.invoice.description(),
            budget_left_msat: self.budget()?.left_msat,
            call: call.clone(),
        };
        match approver.approve(&request).await {
            super::Approval::Approved => Ok(()),
            super::Approval::Declined(reason) => Err(FetchError::Refused(Refusal::NotApproved {
                asked_msat: checked.amount_msat,
                reason,
            })),
            super::Approval::Unavailable => Err(unavailable()),
        }
    }

    // ---------------------------------------------------------------------
    // preview

    /// What fetching `url` with `method` would cost and what every check
    /// says. Sends the request without credential and without body; pays
    /// nothing and reserves nothing.
    pub async fn preview(&self, url: &str, method: Method) -> Result<Preview, FetchError> {
        self.recover_once().await;
        let mut out = Outgoing {
            method,
            headers: HeaderMap::new(),
            body: None,
        };
        let (url, response) = self
            .follow(parse_url(url)?, &mut out, &mut Asking { client: self })
            .await?;
        let origin = Origin::from_url(&url).map_err(|e| FetchError::BadRequest(e.to_string()))?;
        let cached_token = self.has_token(&origin).await?;
        let budget: BudgetView = self.budget()?;
        let status = response.status().as_u16();
        if response.status() != StatusCode::PAYMENT_REQUIRED {
            return Ok(Preview {
                url: url.to_string(),
                status,
                payment_required: false,
                price_msat: None,
                description: None,
                checks: Vec::new(),
                would_pay: false,
                cached_token,
                budget,
            });
        }
        let (mut checks, checked) =
            self.evaluate(&response, &url, Cap::new(self.config.max_cost_msat, None))?;
        checks.push(Check::pass(
            "rate",
            format!(
                "at most {} payments per minute (a preview uses none)",
                self.config.payments_per_minute
            ),
        ));
        let price_msat = checked.as_ref().map(|c| c.amount_msat).or_else(|| {
            // Report the price even when a check failed, if it decodes.
            let values = response.headers().get_all(header::WWW_AUTHENTICATE);
            let values: Vec<&str> = values.iter().filter_map(|v| v.to_str().ok()).collect();
            let ch = Challenge::parse_all(values).ok()?.into_iter().next()?;
            ch.invoice.parse::<Invoice>().ok()?.amount_msat()
        });
        let description = checked.as_ref().and_then(|c| c.invoice.description());
        let mut would_pay = checks.iter().all(|c| c.ok);
        if let (Some(threshold), Some(price)) = (self.config.approve_above_msat, price_msat)
            && price > threshold
            && self.approver.is_none()
        {
            would_pay = false;
            checks.push(Check::fail(
                "approval",
                Refusal::ApprovalUnavailable {
                    asked_msat: price,
                    threshold_msat: threshold,
                },
            ));
        }
        Ok(Preview {
            url: url.to_string(),
            status,
            payment_required: true,
            price_msat,
            description,
            checks,
            would_pay,
            cached_token,
            budget,
        })
    }
}

/// A header's value as a log may show it: credentials, challenges and
/// cookies by their scheme and size only (a macaroon, a preimage or a
/// session cookie never reaches a log line), everything else as sent.
fn shown_header(name: &HeaderName, value: &HeaderValue) -> String {
    let secret = [
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        header::WWW_AUTHENTICATE,
        header::PROXY_AUTHENTICATE,
        header::COOKIE,
        header::SET_COOKIE,
    ]
    .contains(name)
        || value.is_sensitive();
    let text = value.to_str().unwrap_or("<not ASCII>");
    if !secret {
        return text.to_string();
    }
    let scheme = text
        .split_whitespace()
        .next()
        .filter(|s| !s.contains('=') && name != header::COOKIE && name != header::SET_COOKIE);
    match scheme {
        Some(s) => format!("{s} <{} bytes redacted>", text.len() - s.len()),
        None => format!("<{} bytes redacted>", text.len()),
    }
}

/// True when the response asks for (new) payment: a 402, or a 401 that
/// answered a token we sent.
fn needs_payment(response: &reqwest::Response, sent_token: bool) -> bool {
    response.status() == StatusCode::PAYMENT_REQUIRED
        || (sent_token && response.status() == StatusCode::UNAUTHORIZED)
}

fn scheme_name(s: Scheme) -> &'static str {
    match s {
        Scheme::L402 => "L402",
        Scheme::Lsat => "LSAT",
    }
}

fn credential_header(token: &Token) -> Result<HeaderValue, FetchError> {
    let preimage = token.preimage().ok_or_else(|| FetchError::CorruptToken {
        payment_hash: token.info.payment_hash,
        reason: "a paid token without its preimage".into(),
    })?;
    let macaroon = token
        .macaroon()
        .parse()
        .map_err(|e| FetchError::CorruptToken {
            payment_hash: token.info.payment_hash,
            reason: format!("its macaroon is invalid: {e}"),
        })?;
    let credential = Credential::new(macaroon, preimage.clone());
    let mut value =
        HeaderValue::from_str(&credential.to_string()).map_err(|_| FetchError::CorruptToken {
            payment_hash: token.info.payment_hash,
            reason: "its credential is not a valid header".into(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

fn parse_url(url: &str) -> Result<Url, FetchError> {
    Url::parse(url.trim()).map_err(|e| {
        FetchError::BadRequest(format!(
            "{url:?} is not a valid URL ({e}); give a full http(s) URL"
        ))
    })
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, FetchError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| FetchError::BadRequest(format!("{name:?} is not a valid header name")))?;
        if n == header::HOST || n == header::CONTENT_LENGTH || n == header::TRANSFER_ENCODING {
            return Err(FetchError::BadRequest(format!(
                "the {n} header is set by the client itself; leave it out"
            )));
        }
        let v = HeaderValue::from_str(value.trim()).map_err(|_| {
            FetchError::BadRequest(format!("the value of header {name:?} is not valid"))
        })?;
        map.append(n, v);
    }
    Ok(map)
}

/// Where a redirect response points, if it is one.
fn redirect_target(url: &Url, response: &reqwest::Response) -> Result<Option<Url>, FetchError> {
    if !response.status().is_redirection() || response.status() == StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    let Some(location) = response.headers().get(header::LOCATION) else {
        return Ok(None);
    };
    let location = location
        .to_str()
        .map_err(|_| FetchError::Redirect(format!("{url} redirected to a non-ASCII location")))?;
    url.join(location)
        .map(Some)
        .map_err(|e| FetchError::Redirect(format!("{url} redirected to {location:?}: {e}")))
}

/// Runs blocking store work off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FetchError::Task(format!("a store task: {e}")))
}

//! The request side of a fetch: the one redirect loop (shared with
//! `preview`), each hop with the origin's tokens, and on a 402 the checks
//! ([`super::checks`]), the payment ([`super::pay`]) and the retry.

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::checks::{Cap, Checked};
use super::held::{BuyerHold, Held, sensitive_header};
use super::lock::lock_origin;
use super::net::check_url;
use super::task::blocking;
use super::{
    Call, FetchError, FetchRequest, L402Client, MAX_REDIRECTS, Msat, RawResponse, Receipt, Refusal,
    network_error,
};
use crate::l402::payment::{PaymentReceipt, RECEIPT_HEADER};
use crate::lightning::PaymentHash;
use crate::store::{Origin, TokenScheme};

/// What presenting cached tokens came to.
pub(super) enum Attempt {
    /// A token was not refused: its response.
    Served(reqwest::Response),
    /// Every token was refused: the last refusal, if any token was tried.
    Refused(Option<reqwest::Response>),
}

/// How one hop of the redirect loop is sent: [`Paying`] for a fetch (with
/// the origin's tokens, paying a 402), [`Asking`] for a preview (without a
/// credential, paying nothing).
pub(super) trait Hop {
    fn send<'a>(
        &'a mut self,
        url: &'a Url,
        origin: &'a Origin,
        out: &'a Outgoing,
    ) -> impl std::future::Future<Output = Result<reqwest::Response, FetchError>> + Send + 'a;
}

pub(super) struct Paying<'c> {
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

pub(super) struct Asking<'c> {
    pub(super) client: &'c L402Client,
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
pub(super) struct Outgoing {
    pub(super) method: Method,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<Bytes>,
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

    pub(super) async fn fetch_raw_inner(
        &self,
        req: FetchRequest,
    ) -> Result<RawResponse, FetchError> {
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
    pub(super) async fn follow(
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
    pub(super) async fn fetch_origin(
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
                self.answered(t, path, response.status()).await;
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
            Msat(checked.amount_msat),
            checked.offer.name(),
            checked.invoice.network(),
            checked.invoice.payment_hash()
        );
        drop(response);
        let (token, paid) = self.pay(url, origin, &checked, call).await?;
        // No await since the token was kept as held for its buyer.
        let hold = BuyerHold::new(token.clone(), self.store.clone());

        // Retry with the new token, still under the origin's locks: a
        // request waiting for them presents the token only once its buyer
        // has (a single-use token would otherwise be taken from under the
        // request that paid for it). If this fails, the token stays paid
        // and the next fetch reuses it (a Payment credential: at this
        // path, before its challenge expires).
        let retried = self.send(url, out, Some(&token)).await;
        let mut scheme = token.scheme;
        let mut note = None;
        let retried = match retried {
            Ok(r) if needs_payment(&r, true) => {
                // Refused at the path it was bought for: it buys nothing.
                self.forget_token(origin, &token.hash).await?;
                let (r, used, sentence) = self.after_refusal(url, origin, out, &checked, r).await?;
                scheme = used;
                note = Some(sentence);
                Ok(r)
            }
            other => other,
        };
        hold.release().await;
        drop(file_lock);
        drop(guard);
        let retried = retried?;
        let mut payment_receipt = None;
        if !needs_payment(&retried, true) {
            if scheme == token.scheme {
                self.answered(&token, path, retried.status()).await;
            }
            payment_receipt = self.keep_receipt(&token.hash, &retried).await;
        }
        *receipt = Some(Receipt {
            paid: true,
            amount_msat: paid.amount_msat,
            fee_msat: paid.fee_msat,
            payment_hash: token.hash,
            budget_left_msat: self.budget().map(|b| b.left_msat).unwrap_or(0),
            note: join_notes(note, fee_note(paid.fee_msat, self.config.fee_limit_msat)),
            scheme,
            payment_receipt,
        });
        Ok(retried)
    }

    /// The server answered the credential it was just paid for with a new
    /// challenge. When the 402 it was bought from offered the other scheme
    /// for the same invoice, that credential costs nothing more: present
    /// it. Otherwise nothing more is paid now; when the other scheme was
    /// offered for another invoice (aperture offers every scheme whatever
    /// it accepts), this origin is paid with that one from then on.
    /// Returns the answer, the scheme it answered, and the sentence for
    /// the receipt.
    async fn after_refusal(
        &self,
        url: &Url,
        origin: &Origin,
        out: &Outgoing,
        checked: &Checked,
        refused: reqwest::Response,
    ) -> Result<(reqwest::Response, TokenScheme, String), FetchError> {
        let hash = checked.invoice.payment_hash();
        let name = checked.offer.name();
        let paid = Msat(checked.amount_msat);
        let store = self.store.clone();
        let preimage = blocking(move || store.get_by_hash(&hash))
            .await??
            .and_then(|t| t.preimage().cloned());
        if let (Some(preimage), Some(other)) = (preimage, checked.same_invoice.first()) {
            let header = sensitive_header(&other.credential(&preimage)).ok_or_else(|| {
                FetchError::Task("a credential is not a valid header value".into())
            })?;
            tracing::info!(
                payment_hash = %hash,
                "the server refused the {name} credential it was paid for; presenting the {} credential for the same invoice",
                other.name()
            );
            let answer = self.send_with(url, out, Some(&header)).await?;
            if !needs_payment(&answer, true) {
                self.note_refused(origin, checked.offer.scheme(), hash)
                    .await;
                let sentence = format!(
                    "the server refused the {name} credential this payment bought, and accepted \
                     the {} credential for the same invoice instead (nothing more was paid)",
                    other.name()
                );
                return Ok((answer, other.scheme(), sentence));
            }
            let sentence = format!(
                "the server refused both the {name} and the {} credential for this payment of \
                 {paid}: it bought nothing; nothing more was paid",
                other.name()
            );
            return Ok((answer, checked.offer.scheme(), sentence));
        }
        let sentence = if checked.other_invoice {
            self.note_refused(origin, checked.offer.scheme(), hash)
                .await;
            let other = match checked.offer.scheme() {
                TokenScheme::L402 => "Payment",
                TokenScheme::Payment => "L402",
            };
            format!(
                "the server answered the {name} credential this payment of {paid} bought with a \
                 new 402, though it also offered {other} for another invoice (a server that takes \
                 only one scheme but offers both, as aperture does with authscheme mpp, looks \
                 like this): the payment bought nothing, and nothing more was paid now; from now \
                 on {origin} is paid with {other} when it offers both"
            )
        } else {
            format!(
                "the server answered the {name} credential this payment of {paid} bought with a \
                 new 402: the payment bought nothing; nothing more was paid"
            )
        };
        Ok((refused, checked.offer.scheme(), sentence))
    }

    async fn note_refused(&self, origin: &Origin, scheme: TokenScheme, hash: PaymentHash) {
        let (store, o) = (self.store.clone(), origin.clone());
        match blocking(move || store.note_refused_scheme(&o, scheme, &hash)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot record the scheme a server refused"),
            Err(e) => tracing::warn!(error = %e, "cannot record the scheme a server refused"),
        }
    }

    /// Keeps the answer's `Payment-Receipt`, if any, with the payment.
    async fn keep_receipt(
        &self,
        hash: &PaymentHash,
        answer: &reqwest::Response,
    ) -> Option<PaymentReceipt> {
        let raw = answer
            .headers()
            .get(RECEIPT_HEADER)?
            .to_str()
            .ok()?
            .to_string();
        let decoded = match PaymentReceipt::decode(&raw) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "the server's Payment-Receipt is unreadable; kept as received");
                None
            }
        };
        let (store, h) = (self.store.clone(), *hash);
        if let Ok(Err(e)) = blocking(move || store.set_receipt(&h, &raw)).await {
            tracing::warn!(error = %e, "cannot keep the Payment-Receipt");
        }
        decoded
    }

    /// Presents the origin's untried tokens at the URL's path, best first:
    /// the response of the first not refused, or of the last refused.
    pub(super) async fn try_candidates(
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
                self.answered(&t, path, response.status()).await;
                *receipt = Some(self.reused_receipt(&t));
                return Ok(Attempt::Served(response));
            }
            self.refused(origin, &t, path).await?;
            last = Some(response);
        }
        Ok(Attempt::Refused(last))
    }

    pub(super) fn reused_receipt(&self, token: &Held) -> Receipt {
        Receipt {
            paid: false,
            amount_msat: 0,
            fee_msat: 0,
            payment_hash: token.hash,
            // As of this client's last look at the ledger: a reused token
            // spends nothing, so no database read on this path.
            budget_left_msat: self.budget_left_snapshot(),
            note: None,
            scheme: token.scheme,
            payment_receipt: None,
        }
    }

    /// Sends one request, with `token`'s credential if given.
    pub(super) async fn send(
        &self,
        url: &Url,
        out: &Outgoing,
        token: Option<&Held>,
    ) -> Result<reqwest::Response, FetchError> {
        self.send_with(url, out, token.map(|t| &t.header)).await
    }

    /// Sends one request, with `credential` as its `Authorization` if given.
    pub(super) async fn send_with(
        &self,
        url: &Url,
        out: &Outgoing,
        token: Option<&HeaderValue>,
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
            req = req.header(header::AUTHORIZATION, t.clone());
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
            match token.and_then(|t| t.to_str().ok()?.split(' ').next()) {
                Some(scheme) => format!(" (with a {scheme} credential)"),
                None => String::new(),
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
                    shown_header(&header::AUTHORIZATION, t)
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
}

/// A header's value as a log may show it: credentials, challenges and
/// cookies by their scheme and size only (a macaroon, a preimage or a
/// session cookie never reaches a log line), everything else as sent.
pub(super) fn shown_header(name: &HeaderName, value: &HeaderValue) -> String {
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
pub(super) fn needs_payment(response: &reqwest::Response, sent_token: bool) -> bool {
    response.status() == StatusCode::PAYMENT_REQUIRED
        || (sent_token && response.status() == StatusCode::UNAUTHORIZED)
}

pub(super) fn parse_url(url: &str) -> Result<Url, FetchError> {
    Url::parse(url.trim()).map_err(|e| {
        FetchError::BadRequest(format!(
            "{url:?} is not a valid URL ({e}); give a full http(s) URL"
        ))
    })
}

pub(super) fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, FetchError> {
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
pub(super) fn redirect_target(
    url: &Url,
    response: &reqwest::Response,
) -> Result<Option<Url>, FetchError> {
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

/// Two sentences for a receipt as one, either or both absent.
fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}. Also, {b}")),
        (a, b) => a.or(b),
    }
}

/// The receipt's sentence when the payer charged more routing fee than
/// was reserved for it (a payer that takes no fee limit can): the ledger
/// records what was charged, and the budget left counts it, so what the
/// person was told and what moved agree.
fn fee_note(fee_msat: u64, reserved_msat: u64) -> Option<String> {
    (fee_msat > reserved_msat).then(|| {
        format!(
            "the payer charged a routing fee of {}, above the {} reserved for it (a wallet \
             over Nostr Wallet Connect takes no fee limit); the spend log records what was \
             charged and the budget left counts it",
            Msat(fee_msat),
            Msat(reserved_msat)
        )
    })
}

//! The paywall: route matching, challenges, credential checks (L402 here,
//! `Payment` with [`super::payment`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use serde_json::json;

use super::answer::{Capped, Overflow, json_error, too_large};
use super::config::{RouteConfig, TokenPolicy};
use super::metrics::{self, Refusal, RouteMetrics, SpentSetOp};
use super::payment::{self, Problem, ProblemType};
use super::verified::Verified;
use super::{Gateway, SpentSet, demo, proxy};
use crate::l402::payment::{PAYMENT_SCHEME, PaymentCredential, PaymentError};
use crate::l402::{
    CONDITION_SERVICES, Caveat, Challenge, Credential, Identifier, SUFFIX_CAPABILITIES,
    SUFFIX_VALID_UNTIL, Scheme, VerifyContext, check_caveats, mint, verify_signature,
};
use crate::lightning::{Invoice, PaymentHash};

/// The one sentence every refused credential gets: which check failed is
/// for the operator's log, not for the client.
const INVALID_CREDENTIAL: &str = "The L402 credential is not valid for this route. \
     Request the route without Authorization to get a fresh invoice.";

pub(super) fn router(gw: Arc<Gateway>) -> Router {
    // One handler for every request, the edge checks first: called
    // directly, not as a middleware layer, which would box the rest of the
    // request's future and clone the router's service for each request.
    Router::new().fallback(edge_checks).with_state(gw)
}

/// Size caps before anything else: the request's headers, all together,
/// and its body (a declared length above the cap is refused before
/// anything is done for it; a longer chunked body fails when it is read,
/// and the rest of it is read before the 413).
async fn edge_checks(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let limits = &gw.config.limits;
    let total: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if total > limits.max_header_bytes {
        return gw.metrics.unrouted(json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!(
                "Request headers are {total} bytes; the limit is {}.",
                limits.max_header_bytes
            ),
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limits.max_body_bytes as u64) {
        Box::pin(drain_before_refusing(req.into_body(), n)).await;
        return gw.metrics.unrouted(too_large(limits.max_body_bytes));
    }
    let limit = limits.max_body_bytes;
    let overflow = Overflow::default();
    let capped = overflow.clone();
    let req = req.map(|body| Body::new(Capped::new(body, limit, capped)));
    let resp = handle(&gw, req).await;
    // A body (chunked, or longer than it said) that went over the cap on
    // the way: read the rest before answering, as for a declared length,
    // and say 413 where the failed read became another error (the
    // upstream, fed a body that broke off, counts as not reached).
    match overflow.take() {
        None => resp,
        Some(rest) => {
            Box::pin(drain_before_refusing(rest, 0)).await;
            if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
                resp
            } else {
                too_large(limit)
            }
        }
    }
}

/// At most this much of a refused body is read, for at most this long.
const DRAIN_MAX_BYTES: u64 = 16 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(2);

/// Reads and drops the body of a request about to be refused, within
/// [`DRAIN_MAX_BYTES`] and [`DRAIN_MAX_TIME`]. Most clients (reqwest, curl
/// without `Expect`) send the whole body before they read the answer: a
/// server that answers and closes first leaves them with a broken pipe
/// instead of the 413 and its sentence. A body past the bounds is not
/// waited for; the connection is closed on it. Boxed where it is called,
/// so that the future of every request does not carry its states.
async fn drain_before_refusing(body: Body, declared: u64) {
    if declared > DRAIN_MAX_BYTES {
        return;
    }
    let mut stream = body.into_data_stream();
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
        use futures_util::StreamExt;
        let mut read = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            read = read.saturating_add(chunk.len() as u64);
            if read > DRAIN_MAX_BYTES {
                break;
            }
        }
    })
    .await;
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The answer to a request that did not finish within the deadline.
fn timed_out(gw: &Gateway) -> Response {
    json_error(
        StatusCode::GATEWAY_TIMEOUT,
        &format!(
            "The request did not finish within {} s.",
            gw.config.limits.request_timeout_secs
        ),
    )
}

async fn handle(gw: &Gateway, req: Request) -> Response {
    // One deadline for the whole request (invoice, body, upstream); each
    // step awaits under it, so that a claim made on the way is released
    // before the 504 goes out.
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(gw.config.limits.request_timeout_secs);
    let method = req.method().clone();

    // The path routes are matched against is the path that is served or
    // forwarded: one canonical form, or a 400. Matching the raw path and
    // letting the upstream normalise it would let `/free/../paid` through.
    let path = match canonical_path(req.uri().path()) {
        Ok(p) => p,
        Err(why) => {
            tracing::info!(path = %req.uri().path(), why, "path refused");
            return gw
                .metrics
                .unrouted(json_error(StatusCode::BAD_REQUEST, why));
        }
    };

    // Route: first match wins; a path served under other methods is a 405.
    let Some((index, route)) = gw
        .config
        .routes
        .iter()
        .enumerate()
        .find(|(_, r)| r.matches(method.as_str(), &path))
    else {
        let allowed: Vec<&str> = gw
            .config
            .routes
            .iter()
            .filter(|r| r.matches_path(&path))
            .map(|r| r.method.as_str())
            .collect();
        if allowed.is_empty() {
            let resp = json_error(StatusCode::NOT_FOUND, &format!("No route for {path}."));
            return gw.metrics.unrouted(resp);
        }
        let mut resp = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!(
                "{path} does not accept {method}; it accepts {}.",
                allowed.join(", ")
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        return gw.metrics.unrouted(resp);
    };
    let m = gw.metrics.route(index);
    let resp = sell(gw, route, m, &path, req, deadline).await;
    m.answered(resp.status());
    resp
}

/// Serves a free route, or sells a paid one: a 402 without a credential,
/// a refusal with a bad one, the answer with a good one.
async fn sell(
    gw: &Gateway,
    route: &RouteConfig,
    m: &RouteMetrics,
    path: &str,
    req: Request,
    deadline: tokio::time::Instant,
) -> Response {
    if route.free {
        return match serve_route(gw, route, m, path, req, deadline).await {
            Ok(resp) | Err(resp) => resp,
        };
    }

    // A credential, if any: checked statelessly, then the spent-set.
    // An Authorization value that is not even visible ASCII is malformed,
    // not absent.
    let ip = client_ip(&req);
    let values: Result<Vec<&str>, _> = req
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(|v| v.to_str())
        .collect();
    let Ok(values) = values else {
        tracing::info!(%path, "non-ASCII Authorization header");
        if route.scheme.takes_payment() {
            m.refused(metrics::Scheme::Payment, Refusal::Malformed);
            let problem = Problem::new(
                ProblemType::MalformedCredential,
                "The Authorization header is not visible ASCII, so it holds no credential. \
                 Pay the invoice of the fresh challenge in this response and present its \
                 credential.",
            );
            return fresh_challenge(gw, route, m, ip, deadline, Some(problem)).await;
        }
        m.refused(metrics::Scheme::L402, Refusal::Malformed);
        return json_error(StatusCode::UNAUTHORIZED, INVALID_CREDENTIAL);
    };

    // Which scheme the client speaks decides the path; a credential of a
    // scheme the route does not take is refused with a sentence naming
    // the one it does.
    let offered = Offered::of(&values);
    if route.scheme.takes_payment() && offered.payment {
        let credential = PaymentCredential::from_header_values(values.iter().copied());
        // Boxed, as the single-use path below: the request future of the
        // reusable path (the common one) stays the size of its own states,
        // not of these larger ones; a spent-set claim costs far more than
        // the allocation.
        return Box::pin(pay_by_payment(
            gw, route, m, path, req, credential, deadline,
        ))
        .await;
    }
    if !route.scheme.takes_l402() {
        let problem = offered.l402.then(|| {
            m.refused(metrics::Scheme::L402, Refusal::SchemeMismatch);
            tracing::info!(%path, "L402 credential on a Payment-only route");
            Problem::new(
                ProblemType::PaymentRequired,
                "This route takes the Payment scheme (method=\"lightning\", intent=\"charge\"), \
                 not L402. Pay the invoice of the Payment challenge in this response and \
                 present `Authorization: Payment <credential>`.",
            )
        });
        return fresh_challenge(gw, route, m, ip, deadline, problem).await;
    }
    if offered.payment && !offered.l402 {
        m.refused(metrics::Scheme::Payment, Refusal::SchemeMismatch);
        tracing::info!(%path, "Payment credential on an L402-only route");
        return json_error(
            StatusCode::UNAUTHORIZED,
            "This route takes the L402 scheme (`Authorization: L402 <macaroon>:<preimage hex>`), \
             not Payment. Request it without Authorization to get an L402 challenge.",
        );
    }

    let started = Instant::now();
    let outcome = verify_l402(gw, route, path, &values);
    if !matches!(outcome, Ok(None)) {
        m.verified_in(metrics::Scheme::L402, started.elapsed());
    }
    let verified = match outcome {
        Ok(Some(v)) => v,
        Ok(None) => return fresh_challenge(gw, route, m, ip, deadline, None).await,
        Err(refusal) => {
            m.refused(metrics::Scheme::L402, refusal);
            return json_error(StatusCode::UNAUTHORIZED, INVALID_CREDENTIAL);
        }
    };
    let id = verified.identifier;
    if route.token == TokenPolicy::Reusable {
        tracing::debug!(%path, payment_hash = %id.payment_hash, "credential accepted");
        m.accepted(metrics::Scheme::L402);
        let now = gw.now();
        m.sold_reusable(&verified, now + route.valid_for(), now);
        return match serve_route(gw, route, m, path, req, deadline).await {
            Ok(resp) | Err(resp) => resp,
        };
    }

    // Single-use: spent in the spent-set under its payment hash, the key a
    // `Payment` credential for the same invoice (on a `both` route) uses
    // too, so one payment buys one request whichever credential carries it.
    let spend = Spend {
        hash: &id.payment_hash,
        forget_after: gw.now() + route.valid_for(),
        scheme: metrics::Scheme::L402,
    };
    match Box::pin(serve_once(gw, route, m, path, req, deadline, spend)).await {
        Ok(resp) => resp,
        Err(Once::Refused(resp)) => resp,
        Err(Once::Used) => {
            tracing::info!(payment_hash = %id.payment_hash, "single-use token reused");
            let sentence = if route.scheme.takes_payment() {
                "This single-use L402 token (or the Payment credential for the same invoice) \
                 was already used. Request the route without Authorization to buy another."
            } else {
                "This single-use L402 token was already used. \
                 Request the route without Authorization to buy another."
            };
            json_error(StatusCode::UNAUTHORIZED, sentence)
        }
        Err(Once::Unavailable) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway cannot check single-use tokens right now; the token was not \
             used. Retry later.",
        ),
    }
}

/// Which schemes the `Authorization` values speak (by their first word,
/// case-insensitively; other schemes count as none).
#[derive(Debug, Clone, Copy, Default)]
struct Offered {
    l402: bool,
    payment: bool,
}

impl Offered {
    fn of(values: &[&str]) -> Self {
        let mut offered = Offered::default();
        for value in values {
            let scheme = value.trim_start().split([' ', '\t']).next().unwrap_or("");
            if scheme.eq_ignore_ascii_case(PAYMENT_SCHEME) {
                offered.payment = true;
            } else if scheme.eq_ignore_ascii_case("L402") || scheme.eq_ignore_ascii_case("LSAT") {
                offered.l402 = true;
            }
        }
        offered
    }
}

/// The `Payment` path: the credential checked statelessly
/// ([`payment::verify`]), then spent once in the spent-set under its
/// payment hash, and the answer's receipt. Every refusal is a 402 with a
/// problem document and a fresh challenge. Neither the preimage nor the
/// credential is ever logged.
async fn pay_by_payment(
    gw: &Gateway,
    route: &RouteConfig,
    m: &RouteMetrics,
    path: &str,
    req: Request,
    credential: Result<Option<PaymentCredential>, PaymentError>,
    deadline: tokio::time::Instant,
) -> Response {
    let ip = client_ip(&req);
    let credential = match credential {
        Ok(Some(c)) => c,
        Ok(None) | Err(_) => {
            // The decoder's message may quote the token: not for the log.
            tracing::info!(%path, "malformed Payment credential");
            m.refused(metrics::Scheme::Payment, Refusal::Malformed);
            let problem = Problem::new(
                ProblemType::MalformedCredential,
                "The Payment credential does not decode. It must be `Payment ` followed by \
                 base64url (no padding) of {\"challenge\":{…the challenge as issued…},\
                 \"payload\":{\"preimage\":\"<64 hex>\"}}. Pay the invoice of the fresh \
                 challenge in this response and present its credential.",
            );
            return fresh_challenge(gw, route, m, ip, deadline, Some(problem)).await;
        }
    };
    let now = gw.now();
    let started = Instant::now();
    let verified = payment::verify(&gw.payment_key, route, &credential, now);
    m.verified_in(metrics::Scheme::Payment, started.elapsed());
    let accepted = match verified {
        Ok(a) => a,
        Err(problem) => {
            m.refused(metrics::Scheme::Payment, problem.reason);
            tracing::info!(
                %path,
                challenge_id = %credential.challenge.id,
                problem = problem.kind.slug(),
                detail = %problem.detail,
                "Payment credential refused"
            );
            return fresh_challenge(gw, route, m, ip, deadline, Some(problem)).await;
        }
    };
    // Remembered at least until the challenge expires (after which it is
    // refused anyway); on a `both` route also as long as the L402 token for
    // the same invoice could be presented, so that the other credential
    // stays refused as long as it could be used.
    let mut forget_after = accepted.expires_unix + 1;
    if route.scheme.takes_l402() {
        forget_after = forget_after.max(now + route.valid_for());
    }
    let spend = Spend {
        hash: &accepted.hash,
        forget_after,
        scheme: metrics::Scheme::Payment,
    };
    match serve_once(gw, route, m, path, req, deadline, spend).await {
        Ok(mut resp) => {
            tracing::debug!(
                %path,
                payment_hash = %accepted.hash,
                challenge_id = %accepted.challenge_id,
                "Payment credential spent"
            );
            payment::add_receipt(&mut resp, &accepted, gw.now());
            resp
        }
        Err(Once::Refused(resp)) => resp,
        Err(Once::Used) => {
            tracing::info!(
                payment_hash = %accepted.hash,
                challenge_id = %accepted.challenge_id,
                "Payment credential reused"
            );
            let also = if route.scheme.takes_l402() {
                " (here, an L402 token for the same invoice counts as the same payment)"
            } else {
                ""
            };
            let problem = Problem::new(
                ProblemType::InvalidChallenge,
                format!(
                    "The credential's challenge was already used: a Payment credential buys \
                     one request{also}. Pay the invoice of the fresh challenge in this \
                     response and present its credential."
                ),
            );
            fresh_challenge(gw, route, m, ip, deadline, Some(problem)).await
        }
        Err(Once::Unavailable) => payment::unavailable(
            "The gateway cannot check whether the Payment credential was used right now; \
             it was not used. Present it again later.",
        ),
    }
}

/// A fresh 402 (with `problem`, if a credential was refused) under the
/// request's deadline.
async fn fresh_challenge(
    gw: &Gateway,
    route: &RouteConfig,
    m: &RouteMetrics,
    ip: IpAddr,
    deadline: tokio::time::Instant,
    problem: Option<Problem>,
) -> Response {
    tokio::time::timeout_at(deadline, challenge(gw, route, m, ip, problem))
        .await
        .unwrap_or_else(|_| timed_out(gw))
}

/// What a single-use request spends: the payment `hash`, claimed in the
/// spent-set until `forget_after`, by a credential of `scheme`.
struct Spend<'a> {
    hash: &'a PaymentHash,
    forget_after: u64,
    scheme: metrics::Scheme,
}

/// Why a request for one answer got none.
enum Once {
    /// The gateway's own refusal (a bad prompt, the upstream down, the
    /// deadline): nothing was spent.
    Refused(Response),
    /// The payment hash is spent already.
    Used,
    /// The spent-set failed: refused, fail closed, nothing spent.
    Unavailable,
}

/// Serves one request for the payment hash, spent in the spent-set.
/// Built-in content is made first (its own checks, such as an empty
/// prompt, refuse before anything is claimed); then the hash is claimed,
/// atomically; a forwarded request keeps the claim when the upstream
/// answered and releases it when it did not. The credential counts as
/// accepted once claimed, or as refused (reused, spent-set unavailable);
/// its price counts as revenue once the claim is kept.
async fn serve_once(
    gw: &Gateway,
    route: &RouteConfig,
    m: &RouteMetrics,
    path: &str,
    req: Request,
    deadline: tokio::time::Instant,
    spend: Spend<'_>,
) -> Result<Response, Once> {
    let Spend {
        hash,
        forget_after,
        scheme,
    } = spend;
    let ready = match &route.demo {
        Some(content) => match within(gw, deadline, demo::serve(gw, *content, req)).await {
            Ok(resp) => Ready::Made(resp),
            Err(refusal) => return Err(Once::Refused(refusal)),
        },
        None => Ready::Forward(req),
    };
    let claim = match tokio::time::timeout_at(deadline, gw.spent.claim(hash, forget_after)).await {
        Err(_) => return Err(Once::Refused(timed_out(gw))),
        Ok(Ok(true)) => Claim {
            spent: gw.spent.clone(),
            hash: *hash,
            settled: false,
            errors: gw.metrics.spent_set_errors(SpentSetOp::Release),
        },
        Ok(Ok(false)) => {
            m.refused(scheme, Refusal::Reused);
            return Err(Once::Used);
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "spent-set failed; refusing the single-use request");
            gw.metrics.spent_set_error(SpentSetOp::Claim);
            m.refused(scheme, Refusal::SpentSetUnavailable);
            return Err(Once::Unavailable);
        }
    };
    tracing::debug!(%path, payment_hash = %hash, "single-use credential claimed");
    m.accepted(scheme);
    match ready {
        Ready::Made(resp) => {
            claim.keep();
            m.sold_once(hash, forget_after, gw.now());
            Ok(resp)
        }
        Ready::Forward(req) => match serve_route(gw, route, m, path, req, deadline).await {
            Ok(answered) => {
                claim.keep();
                m.sold_once(hash, forget_after, gw.now());
                Ok(answered)
            }
            Err(refusal) => {
                tracing::info!(%path, payment_hash = %hash, "no answer; claim released");
                claim.release().await;
                Err(Once::Refused(refusal))
            }
        },
    }
}

/// A single-use request's answer, or the request still to forward.
enum Ready {
    Made(Response),
    Forward(Request),
}

/// `fut` under the request's deadline; a 504 after it.
async fn within<T>(
    gw: &Gateway,
    deadline: tokio::time::Instant,
    fut: impl std::future::Future<Output = Result<T, Response>>,
) -> Result<T, Response> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(done) => done,
        Err(_) => Err(timed_out(gw)),
    }
}

/// A claimed single-use token. [`keep`](Claim::keep) once an answer exists;
/// [`release`](Claim::release) when the request never reached one. Dropped
/// unsettled (the client went away before any answer), it is released.
struct Claim {
    spent: Arc<dyn SpentSet>,
    hash: crate::lightning::PaymentHash,
    settled: bool,
    /// The metrics' count of failed releases.
    errors: prometheus_client::metrics::counter::Counter,
}

impl Claim {
    fn keep(mut self) {
        self.settled = true;
    }

    async fn release(mut self) {
        self.settled = true;
        if let Err(e) = self.spent.release(&self.hash).await {
            self.errors.inc();
            tracing::warn!(error = %e, payment_hash = %self.hash, "cannot release a claim");
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (spent, hash, errors) = (self.spent.clone(), self.hash, self.errors.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = spent.release(&hash).await {
                    errors.inc();
                    tracing::warn!(error = %e, payment_hash = %hash, "cannot release a claim");
                }
            });
        }
    }
}

/// True when the capabilities the gateway minted into the token name
/// `capability`. The gateway mints `services`, `<service>_capabilities`
/// and `<service>_valid_until`, in that order, and a holder can only
/// append: a capabilities caveat after the first `<service>_valid_until`
/// was added by a holder and may narrow, never grant.
fn minted_capability(caveats: &[Caveat], service: &str, capability: &str) -> bool {
    let caps = format!("{service}{SUFFIX_CAPABILITIES}");
    let until = format!("{service}{SUFFIX_VALID_UNTIL}");
    for c in caveats {
        if c.condition == until {
            return false;
        }
        if c.condition == caps {
            return c.value.split(',').any(|v| v == capability);
        }
    }
    false
}

/// The one form of a request path that routes are matched against and
/// that is forwarded. Percent-encoded unreserved characters (`%61` for `a`)
/// are decoded, other escapes kept (upper-case hex). Refused, with the
/// sentence for a 400: dot segments (`.`, `..`, also as `..;x`), empty
/// segments (`//`), backslashes, malformed escapes, and escapes of `.`,
/// `/`, `\` or control characters: an upstream (or a proxy in between)
/// that decodes or normalises them would see another path than the one
/// paid for.
pub(super) fn canonical_path(raw: &str) -> Result<String, &'static str> {
    const REFUSED: &str = "The request path may not contain dot segments, empty segments, \
         backslashes, or encoded dots, slashes or control characters.";
    if !raw.starts_with('/') {
        return Err("The request path must start with '/'.");
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => return Err(REFUSED),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(REFUSED)?;
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return Err(REFUSED);
                }
                let v = u8::from_str_radix(hex, 16).map_err(|_| REFUSED)?;
                match v {
                    b'.' | b'/' | b'\\' | 0..=0x1f | 0x7f => return Err(REFUSED),
                    v if v.is_ascii_alphanumeric() || v == b'-' || v == b'_' || v == b'~' => {
                        out.push(char::from(v));
                    }
                    v => out.push_str(&format!("%{v:02X}")),
                }
                i += 3;
            }
            0..=0x1f | 0x7f => return Err(REFUSED),
            _ => {
                // The path is ASCII (hyper refuses other bytes in a URI).
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    let segments: Vec<&str> = out[1..].split('/').collect();
    for (n, seg) in segments.iter().enumerate() {
        let core = seg.split(';').next().unwrap_or_default();
        if core == "." || core == ".." {
            return Err(REFUSED);
        }
        // An empty segment is allowed only as the trailing slash (and as
        // the root path itself).
        if seg.is_empty() && n + 1 != segments.len() {
            return Err(REFUSED);
        }
    }
    Ok(out)
}

/// Every check of the request's L402 credential: [`authenticate`], then
/// the caveats and the capability against `route`. `Ok(None)`: there is no
/// L402 credential. `Err`: there is one and it is refused, for this reason
/// (the log line says more).
fn verify_l402(
    gw: &Gateway,
    route: &RouteConfig,
    path: &str,
    values: &[&str],
) -> Result<Option<Verified>, Refusal> {
    let verified = match authenticate(gw, values) {
        Ok(Some(v)) => v,
        Ok(None) => return Ok(None),
        Err((refusal, reason)) => {
            tracing::info!(%path, %reason, "credential refused");
            return Err(refusal);
        }
    };
    let service = route.service_name();
    let ctx = VerifyContext {
        service: &service,
        capability: route.capability.as_deref(),
        now_unix: gw.now(),
    };
    if let Err(reason) = check_caveats(&verified.caveats, &ctx) {
        tracing::info!(%path, %reason, "credential refused");
        return Err(Refusal::of_l402(&reason));
    }
    if let Some(cap) = &route.capability
        && !minted_capability(&verified.caveats, &service, cap)
    {
        tracing::info!(%path, capability = %cap, "credential refused: capability not minted");
        return Err(Refusal::Capability);
    }
    Ok(Some(verified))
}

/// The request-independent checks of the request's credential (preimage,
/// signature), remembered per exact credential text. `Ok(None)`: there is
/// no L402 credential. `Err`: there is one and it is bad (the reason, and
/// a sentence for the log).
fn authenticate(gw: &Gateway, values: &[&str]) -> Result<Option<Verified>, (Refusal, String)> {
    for value in values {
        if let Some(v) = gw.verified.get(value.trim()) {
            return Ok(Some(v));
        }
    }
    let credential = match Credential::from_header_values(values.iter().copied()) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(None),
        Err(e) => return Err((Refusal::Malformed, e.to_string())),
    };
    let identifier = verify_signature(&gw.root_key, &credential)
        .map_err(|e| (Refusal::of_l402(&e), e.to_string()))?;
    let verified = Verified {
        identifier,
        caveats: Arc::from(credential.macaroon.caveats()),
        sold: Arc::default(),
    };
    // Remember it under the text it came in; the first L402/LSAT value is
    // the one `from_header_values` used.
    if let Some(value) = values.iter().find(|v| {
        let v = v.trim_start();
        v.get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("L402 ") || s.eq_ignore_ascii_case("LSAT "))
    }) {
        gw.verified.insert(value.trim(), verified.clone());
    }
    Ok(Some(verified))
}

/// Serves or forwards a request. `Ok`: an answer exists (the built-in
/// content, or whatever the upstream answered); `Err`: the gateway's own
/// refusal, and nothing was delivered.
async fn serve_route(
    gw: &Gateway,
    route: &RouteConfig,
    m: &RouteMetrics,
    path: &str,
    req: Request,
    deadline: tokio::time::Instant,
) -> Result<Response, Response> {
    match (&route.demo, &route.upstream) {
        (Some(content), _) => within(gw, deadline, demo::serve(gw, *content, req)).await,
        (None, Some(upstream)) => {
            let started = Instant::now();
            // The proxy bounds the answer by `deadline` itself, head and
            // body: one timer for both.
            let answer = proxy::forward(gw, upstream, path, req, started, deadline).await;
            if answer.is_ok() {
                m.upstream_answered_in(started.elapsed());
            }
            answer
        }
        (None, None) => Err(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Route has nothing to serve.",
        )),
    }
}

/// Answers 402 with a fresh invoice and the challenges of the schemes the
/// route takes, rate-limited per client IP (each challenge costs the node
/// an invoice):
///
/// - `l402`: `LSAT` and `L402` (a macaroon bound to the invoice), a JSON
///   body, as before;
/// - `payment`: one `Payment` challenge, an RFC 9457 problem document
///   (`problem`'s type and sentence, else `payment-required`) and
///   `Cache-Control: no-store`;
/// - `both`: all three, in that order (lnget looks for L402 in the first
///   header only), and the problem document. ONE invoice serves them: the
///   macaroon's payment hash is the request's `paymentHash`, so a client
///   that paid it may present either credential (aperture mints one
///   invoice per scheme, and a client that pays the other scheme's invoice
///   loses the money).
async fn challenge(
    gw: &Gateway,
    route: &RouteConfig,
    m: &RouteMetrics,
    ip: IpAddr,
    problem: Option<Problem>,
) -> Response {
    if let Err(not_until) = gw.limiter.check_key(&ip) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut resp = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many payment challenges from this address; retry in {secs} s."),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return resp;
    }

    let service = route.service_name();
    let memo = format!(
        "{} {} ({} sats)",
        if route.method == "ANY" {
            ""
        } else {
            route.method.as_str()
        },
        route.path,
        route.price_sats
    );
    let memo = memo.trim_start();
    let expiry = Duration::from_secs(gw.config.invoice_expiry_secs);
    let now = gw.now();
    let issued = match gw
        .invoicer
        .create_invoice(route.price_sats * 1000, memo, expiry)
        .await
    {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create an invoice");
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The gateway cannot create an invoice right now; retry later.",
            );
        }
    };

    let mut headers = HeaderMap::new();
    let cannot_encode = || {
        json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot encode the challenge.",
        )
    };
    let mut extra = serde_json::Map::new();
    extra.insert("price_sats".into(), route.price_sats.into());
    extra.insert("invoice".into(), issued.bolt11.clone().into());
    extra.insert("payment_hash".into(), issued.payment_hash.to_hex().into());
    extra.insert("service".into(), service.clone().into());
    extra.insert(
        "invoice_expires_in_secs".into(),
        gw.config.invoice_expiry_secs.into(),
    );

    let mut macaroon_b64 = None;
    if route.scheme.takes_l402() {
        let id = Identifier::new(issued.payment_hash);
        // Always an explicit capabilities caveat (empty when the route names
        // none), so that one a holder adds can only narrow it: without it, a
        // holder's `<service>_capabilities=premium` would be the first and
        // would grant what was never bought.
        let mut caveats = vec![
            Caveat::new(CONDITION_SERVICES, format!("{service}:0")),
            Caveat::capabilities(&service, route.capability.as_deref()),
        ];
        let valid_until = now + route.valid_for();
        caveats.push(Caveat::new(
            format!("{service}_valid_until"),
            valid_until.to_string(),
        ));
        let macaroon = mint(&gw.root_key, &id, &caveats);

        // aperture's order: LSAT first (old clients read only the first), then L402.
        let lsat = Challenge {
            scheme: Scheme::Lsat,
            macaroon: macaroon.clone(),
            invoice: issued.bolt11.clone(),
            version: None,
        };
        let l402 = Challenge {
            scheme: Scheme::L402,
            ..lsat.clone()
        };
        for ch in [&lsat, &l402] {
            match HeaderValue::from_str(&ch.to_string()) {
                Ok(v) => {
                    headers.append(header::WWW_AUTHENTICATE, v);
                }
                Err(_) => return cannot_encode(),
            }
        }
        macaroon_b64 = Some(macaroon.to_base64());
        extra.insert("macaroon".into(), macaroon.to_base64().into());
        extra.insert(
            "token".into(),
            match route.token {
                TokenPolicy::Reusable => "reusable",
                TokenPolicy::SingleUse => "single-use",
            }
            .into(),
        );
        extra.insert("valid_until".into(), valid_until.into());
    }

    let mut payment_challenge = None;
    if route.scheme.takes_payment() {
        // Never later than the invoice stops being payable.
        let mut expires = now + gw.config.invoice_expiry_secs;
        if let Ok(invoice) = issued.bolt11.parse::<Invoice>() {
            expires = expires.min(invoice.expires_at_unix());
        }
        let Some(network) = gw.payment_network else {
            // Gateway::new refuses such a configuration.
            return cannot_encode();
        };
        let c = payment::issue(&gw.payment_key, route, &issued, network, expires);
        match HeaderValue::from_str(&c.to_string()) {
            Ok(v) => {
                headers.append(header::WWW_AUTHENTICATE, v);
            }
            Err(_) => return cannot_encode(),
        }
        extra.insert("expires".into(), c.expires.clone().into());
        payment_challenge = Some(c);
    }

    tracing::info!(
        service = %service,
        price_sats = route.price_sats,
        payment_hash = %issued.payment_hash,
        scheme = route.scheme.as_str(),
        challenge_id = payment_challenge.as_ref().map(|c| c.id.as_str()),
        "issued a payment challenge"
    );
    m.challenge();

    if payment_challenge.is_none() {
        let Some(macaroon) = macaroon_b64 else {
            return cannot_encode();
        };
        let body = json!({
            "error": "Payment required.",
            "message": format!(
                "Pay the invoice ({} sats), then repeat the request with the header \
                 `Authorization: L402 <macaroon>:<preimage hex>`.",
                route.price_sats
            ),
            "price_sats": route.price_sats,
            "invoice": issued.bolt11,
            "macaroon": macaroon,
            "payment_hash": issued.payment_hash.to_hex(),
            "service": service,
            "token": match route.token { TokenPolicy::Reusable => "reusable", TokenPolicy::SingleUse => "single-use" },
            "valid_until": extra.get("valid_until"),
            "invoice_expires_in_secs": gw.config.invoice_expiry_secs,
            "authorization_format": "L402 <macaroon>:<preimage hex>",
        });
        return (StatusCode::PAYMENT_REQUIRED, headers, axum::Json(body)).into_response();
    }

    let mut formats = vec!["Payment <base64url credential>"];
    if route.scheme.takes_l402() {
        formats.push("L402 <macaroon>:<preimage hex>");
    }
    extra.insert("authorization_formats".into(), json!(formats));
    let problem = problem.unwrap_or_else(|| {
        let how = if route.scheme.takes_l402() {
            "The LSAT, L402 and Payment challenges carry the same invoice: pay it once, then \
             repeat the request with `Authorization: Payment <credential>` or \
             `Authorization: L402 <macaroon>:<preimage hex>`."
        } else {
            "Pay the invoice of the Payment challenge, then repeat the request with \
             `Authorization: Payment <credential>`."
        };
        Problem::new(
            ProblemType::PaymentRequired,
            format!("This route costs {} sat. {how}", route.price_sats),
        )
    });
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (StatusCode::PAYMENT_REQUIRED, headers, problem.body(extra)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_decode_unreserved_escapes_only() {
        for (raw, want) in [
            ("/", "/"),
            ("/v1/demo", "/v1/demo"),
            ("/v1/demo/", "/v1/demo/"),
            ("/p%61id/x", "/paid/x"),
            ("/a%7e%2D_", "/a~-_"),
            ("/a%20b", "/a%20b"),
            ("/a%3f", "/a%3F"),
            ("/%252e%252e", "/%252e%252e"),
            ("/a;b", "/a;b"),
            ("/...", "/..."),
            ("/.well-known/x", "/.well-known/x"),
        ] {
            assert_eq!(canonical_path(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn canonical_paths_refuse_whatever_an_upstream_could_read_otherwise() {
        for raw in [
            "",
            "*",
            "a/b",
            "/..",
            "/.",
            "/a/..",
            "/a/../b",
            "/a/./b",
            "/a//b",
            "//a",
            "/a/%2e%2e/b",
            "/a/%2E./b",
            "/a/.%2e/b",
            "/a/%2e/b",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a/..;/b",
            "/a/.;x/b",
            "/a%00",
            "/a%0d%0a",
            "/a%7f",
            "/a%",
            "/a%2",
            "/a%zz",
            "/a%+1",
        ] {
            assert!(canonical_path(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn only_minted_capabilities_count() {
        let minted = [
            Caveat::services(["wx"]),
            Caveat::capabilities("wx", ["premium"]),
            Caveat::valid_until("wx", 10),
        ];
        assert!(minted_capability(&minted, "wx", "premium"));
        assert!(!minted_capability(&minted, "wx", "gold"));
        let mut appended = vec![
            Caveat::services(["wx"]),
            Caveat::capabilities("wx", None::<&str>),
            Caveat::valid_until("wx", 10),
        ];
        appended.push(Caveat::capabilities("wx", ["premium"]));
        assert!(!minted_capability(&appended, "wx", "premium"));
        let legacy = [
            Caveat::services(["wx"]),
            Caveat::valid_until("wx", 10),
            Caveat::capabilities("wx", ["premium"]),
        ];
        assert!(!minted_capability(&legacy, "wx", "premium"));
    }
}

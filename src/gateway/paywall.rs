//! The paywall: route matching, challenges, credential checks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use serde_json::json;

use super::config::{RouteConfig, TokenPolicy};
use super::verified::Verified;
use super::{Gateway, SpentSet, demo, proxy};
use crate::l402::{
    CONDITION_SERVICES, Caveat, Challenge, Credential, Identifier, SUFFIX_CAPABILITIES,
    SUFFIX_VALID_UNTIL, Scheme, VerifyContext, check_caveats, mint, verify_signature,
};

/// The one sentence every refused credential gets: which check failed is
/// for the operator's log, not for the client.
const INVALID_CREDENTIAL: &str = "The L402 credential is not valid for this route. \
     Request the route without Authorization to get a fresh invoice.";

pub(super) fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(gw.clone())
        .layer(middleware::from_fn_with_state(gw, edge_checks))
}

/// A JSON error body: `{"error": "<sentence>"}`.
pub(super) fn json_error(status: StatusCode, sentence: &str) -> Response {
    (status, axum::Json(json!({ "error": sentence }))).into_response()
}

/// Size caps before anything else: the request's headers, all together,
/// and its body (a declared length above the cap is refused at once; a
/// longer chunked body fails when it is read).
async fn edge_checks(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let limits = &gw.config.limits;
    let total: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if total > limits.max_header_bytes {
        return json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!(
                "Request headers are {total} bytes; the limit is {}.",
                limits.max_header_bytes
            ),
        );
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large(limits.max_body_bytes);
    }
    let limit = limits.max_body_bytes;
    let req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}

fn too_large(limit: usize) -> Response {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("The request body is larger than {limit} bytes."),
    )
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

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
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
            return json_error(StatusCode::BAD_REQUEST, why);
        }
    };

    // Route: first match wins; a path served under other methods is a 405.
    let Some(route) = gw
        .config
        .routes
        .iter()
        .find(|r| r.matches(method.as_str(), &path))
    else {
        let allowed: Vec<&str> = gw
            .config
            .routes
            .iter()
            .filter(|r| r.matches_path(&path))
            .map(|r| r.method.as_str())
            .collect();
        if allowed.is_empty() {
            return json_error(StatusCode::NOT_FOUND, &format!("No route for {path}."));
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
        return resp;
    };

    if route.free {
        return match serve_route(&gw, route, &path, req, deadline).await {
            Ok(resp) | Err(resp) => resp,
        };
    }

    // A credential, if any: checked statelessly, then the spent-set.
    // An Authorization value that is not even visible ASCII is malformed,
    // not absent.
    let values: Result<Vec<&str>, _> = req
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(|v| v.to_str())
        .collect();
    let Ok(values) = values else {
        tracing::info!(%path, "non-ASCII Authorization header");
        return json_error(StatusCode::UNAUTHORIZED, INVALID_CREDENTIAL);
    };
    let service = route.service_name();
    let ctx = VerifyContext {
        service: &service,
        capability: route.capability.as_deref(),
        now_unix: gw.now(),
    };
    let verified = match authenticate(&gw, &values) {
        Ok(Some(v)) => v,
        Ok(None) => {
            let ip = client_ip(&req);
            return tokio::time::timeout_at(deadline, challenge(&gw, route, ip))
                .await
                .unwrap_or_else(|_| timed_out(&gw));
        }
        Err(reason) => {
            tracing::info!(%path, %reason, "credential refused");
            return json_error(StatusCode::UNAUTHORIZED, INVALID_CREDENTIAL);
        }
    };
    if let Err(reason) = check_caveats(&verified.caveats, &ctx) {
        tracing::info!(%path, %reason, "credential refused");
        return json_error(StatusCode::UNAUTHORIZED, INVALID_CREDENTIAL);
    }
    if let Some(cap) = &route.capability
        && !minted_capability(&verified.caveats, &service, cap)
    {
        tracing::info!(%path, capability = %cap, "credential refused: capability not minted");
        return json_error(StatusCode::UNAUTHORIZED, INVALID_CREDENTIAL);
    }
    let id = verified.identifier;
    if route.token == TokenPolicy::Reusable {
        tracing::debug!(%path, payment_hash = %id.payment_hash, "credential accepted");
        return match serve_route(&gw, route, &path, req, deadline).await {
            Ok(resp) | Err(resp) => resp,
        };
    }

    // Single-use: built-in content is made first (its own checks, such as
    // an empty prompt, refuse before anything is claimed); then the token
    // is claimed, atomically; a forwarded request keeps the claim when the
    // upstream answered and releases it when it did not.
    let ready = match &route.demo {
        Some(content) => match within(&gw, deadline, demo::serve(&gw, *content, req)).await {
            Ok(resp) => Ready::Made(resp),
            Err(refusal) => return refusal,
        },
        None => Ready::Forward(req),
    };
    let claim = match within(&gw, deadline, claim(&gw, &id.payment_hash, route)).await {
        Ok(Ok(claim)) => claim,
        Ok(Err(refusal)) | Err(refusal) => return refusal,
    };
    tracing::debug!(%path, payment_hash = %id.payment_hash, "single-use credential claimed");
    match ready {
        Ready::Made(resp) => {
            claim.keep();
            resp
        }
        Ready::Forward(req) => match serve_route(&gw, route, &path, req, deadline).await {
            Ok(answered) => {
                claim.keep();
                answered
            }
            Err(refusal) => {
                tracing::info!(%path, payment_hash = %id.payment_hash, "no answer; claim released");
                claim.release().await;
                refusal
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

/// Claims a single-use token in the spent-set: the claim, or the answer
/// that refuses the request (already used: 401; the spent-set failed: 503,
/// fail closed).
async fn claim(
    gw: &Gateway,
    hash: &crate::lightning::PaymentHash,
    route: &RouteConfig,
) -> Result<Result<Claim, Response>, Response> {
    match gw.spent.claim(hash, gw.now() + route.valid_for()).await {
        Ok(true) => Ok(Ok(Claim {
            spent: gw.spent.clone(),
            hash: *hash,
            settled: false,
        })),
        Ok(false) => {
            tracing::info!(payment_hash = %hash, "single-use token reused");
            Ok(Err(json_error(
                StatusCode::UNAUTHORIZED,
                "This single-use L402 token was already used. \
                 Request the route without Authorization to buy another.",
            )))
        }
        Err(e) => {
            tracing::error!(error = %e, "spent-set failed; refusing the single-use token");
            Ok(Err(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The gateway cannot check single-use tokens right now; the token was not \
                 used. Retry later.",
            )))
        }
    }
}

/// A claimed single-use token. [`keep`](Claim::keep) once an answer exists;
/// [`release`](Claim::release) when the request never reached one. Dropped
/// unsettled (the client went away before any answer), it is released.
struct Claim {
    spent: Arc<dyn SpentSet>,
    hash: crate::lightning::PaymentHash,
    settled: bool,
}

impl Claim {
    fn keep(mut self) {
        self.settled = true;
    }

    async fn release(mut self) {
        self.settled = true;
        if let Err(e) = self.spent.release(&self.hash).await {
            tracing::warn!(error = %e, payment_hash = %self.hash, "cannot release a claim");
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (spent, hash) = (self.spent.clone(), self.hash);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = spent.release(&hash).await {
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

/// The request-independent checks of the request's credential (preimage,
/// signature), remembered per exact credential text. `Ok(None)`: there is
/// no L402 credential. `Err`: there is one and it is bad (a sentence for
/// the log).
fn authenticate(gw: &Gateway, values: &[&str]) -> Result<Option<Verified>, String> {
    for value in values {
        if let Some(v) = gw.verified.get(value.trim()) {
            return Ok(Some(v));
        }
    }
    let credential = match Credential::from_header_values(values.iter().copied()) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let identifier = verify_signature(&gw.root_key, &credential).map_err(|e| e.to_string())?;
    let verified = Verified {
        identifier,
        caveats: Arc::from(credential.macaroon.caveats()),
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
    path: &str,
    req: Request,
    deadline: tokio::time::Instant,
) -> Result<Response, Response> {
    match (&route.demo, &route.upstream) {
        (Some(content), _) => within(gw, deadline, demo::serve(gw, *content, req)).await,
        (None, Some(upstream)) => {
            match tokio::time::timeout_at(deadline, proxy::forward(gw, upstream, path, req)).await {
                Ok(answer) => answer,
                Err(_) => {
                    tracing::warn!(upstream = %upstream, "upstream did not answer in time");
                    Err(json_error(
                        StatusCode::GATEWAY_TIMEOUT,
                        "The upstream service did not answer in time.",
                    ))
                }
            }
        }
        (None, None) => Err(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Route has nothing to serve.",
        )),
    }
}

/// Answers 402 with a fresh invoice and a macaroon bound to it, rate-limited
/// per client IP (each challenge costs the node an invoice).
async fn challenge(gw: &Gateway, route: &RouteConfig, ip: IpAddr) -> Response {
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

    let id = Identifier::new(issued.payment_hash);
    let now = gw.now();
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
    let mut headers = HeaderMap::new();
    for ch in [&lsat, &l402] {
        match HeaderValue::from_str(&ch.to_string()) {
            Ok(v) => {
                headers.append(header::WWW_AUTHENTICATE, v);
            }
            Err(_) => {
                return json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Cannot encode the challenge.",
                );
            }
        }
    }
    tracing::info!(
        service = %service,
        price_sats = route.price_sats,
        payment_hash = %issued.payment_hash,
        "issued a payment challenge"
    );
    let body = json!({
        "error": "Payment required.",
        "message": format!(
            "Pay the invoice ({} sats), then repeat the request with the header \
             `Authorization: L402 <macaroon>:<preimage hex>`.",
            route.price_sats
        ),
        "price_sats": route.price_sats,
        "invoice": issued.bolt11,
        "macaroon": macaroon.to_base64(),
        "payment_hash": issued.payment_hash.to_hex(),
        "service": service,
        "token": match route.token { TokenPolicy::Reusable => "reusable", TokenPolicy::SingleUse => "single-use" },
        "valid_until": valid_until,
        "invoice_expires_in_secs": gw.config.invoice_expiry_secs,
        "authorization_format": "L402 <macaroon>:<preimage hex>",
    });
    (StatusCode::PAYMENT_REQUIRED, headers, axum::Json(body)).into_response()
}

/// Reads a request body (already capped by [`edge_checks`]); a longer one
/// is a 413, a body the client stopped sending a 400.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, Response> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_long = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_long {
            too_large(limit)
        } else {
            json_error(
                StatusCode::BAD_REQUEST,
                "The request body could not be read.",
            )
        }
    })
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

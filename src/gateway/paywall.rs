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
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::config::{RouteConfig, TokenPolicy};
use super::verified::Verified;
use super::{Gateway, demo, proxy};
use crate::l402::{
    Caveat, Challenge, Credential, Identifier, Scheme, VerifyContext, check_caveats, mint,
    verify_signature,
};

/// The one sentence every refused credential gets: which check failed is
/// for the operator's log, not for the client.
const INVALID_CREDENTIAL: &str = "The L402 credential is not valid for this route. \
     Request the route without Authorization to get a fresh invoice.";

pub(super) fn router(gw: Arc<Gateway>) -> Router {
    let limits = gw.config.limits.clone();
    Router::new()
        .fallback(handle)
        .with_state(gw.clone())
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(limits.request_timeout_secs),
        ))
        .layer(middleware::from_fn_with_state(gw, header_cap))
}

/// A JSON error body: `{"error": "<sentence>"}`.
pub(super) fn json_error(status: StatusCode, sentence: &str) -> Response {
    (status, axum::Json(json!({ "error": sentence }))).into_response()
}

/// Refuses requests whose headers, all together, exceed the configured cap.
async fn header_cap(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let total: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if total > gw.config.limits.max_header_bytes {
        return json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!(
                "Request headers are {total} bytes; the limit is {}.",
                gw.config.limits.max_header_bytes
            ),
        );
    }
    next.run(req).await
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();

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
        return serve_route(&gw, route, req).await;
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
        Ok(None) => return challenge(&gw, route, client_ip(&req)).await,
        Err(reason) => {
            tracing::info!(%path, %reason, "credential refused");
            return json_error(StatusCode::UNAUTHORIZED, INVALID_CREDENTIAL);
        }
    };
    if let Err(reason) = check_caveats(&verified.caveats, &ctx) {
        tracing::info!(%path, %reason, "credential refused");
        return json_error(StatusCode::UNAUTHORIZED, INVALID_CREDENTIAL);
    }
    let id = verified.identifier;
    if route.token == TokenPolicy::SingleUse
        && !gw
            .spent
            .spend(&id.payment_hash, gw.now() + route.valid_for())
    {
        tracing::info!(%path, payment_hash = %id.payment_hash, "single-use token reused");
        return json_error(
            StatusCode::UNAUTHORIZED,
            "This single-use L402 token was already used. \
             Request the route without Authorization to buy another.",
        );
    }
    tracing::debug!(%path, payment_hash = %id.payment_hash, "credential accepted");
    serve_route(&gw, route, req).await
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

async fn serve_route(gw: &Gateway, route: &RouteConfig, req: Request) -> Response {
    match (&route.demo, &route.upstream) {
        (Some(content), _) => demo::serve(gw, *content, req).await,
        (None, Some(upstream)) => proxy::forward(gw, upstream, req).await,
        (None, None) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Route has nothing to serve.",
        ),
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
    let mut caveats = vec![Caveat::new("services", format!("{service}:0"))];
    if let Some(cap) = &route.capability {
        caveats.push(Caveat::new(format!("{service}_capabilities"), cap.clone()));
    }
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

/// Reads a request body up to `limit` bytes; a longer one is a 413.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, Response> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("The request body is larger than {limit} bytes."),
        )
    })
}

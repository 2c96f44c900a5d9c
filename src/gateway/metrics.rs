//! Prometheus metrics: what the gateway sold, what it refused, and how long
//! it took, for the operator only.
//!
//! The metrics are served on a listener of their own (`--metrics ADDR`,
//! [`Gateway::metrics_router`], [`serve_metrics`]), never on the gateway's:
//! they show the revenue of every route, so a non-loopback address is
//! refused unless the operator says it is meant ([`check_metrics_address`]).
//! The exposition is the OpenMetrics text format, written by the Prometheus
//! project's own Rust client (`prometheus-client`).
//!
//! Labels are bounded: a route is named by its configuration (`GET
//! /v1/demo`, `ANY /v1/weather/*` for a prefix route), never by the
//! request's path, and a request that matched no route is `route="none"`;
//! schemes and refusal reasons are small fixed sets. No credential,
//! macaroon, preimage or payment hash is ever a label.
//!
//! Cheap on the hot path: every series a route can touch is a handle
//! registered when the gateway starts (or, for an HTTP status, the first
//! time the route answers with it), so counting is an atomic add, with no
//! allocation and no lock; a histogram takes only its own series' lock.
//!
//! Revenue ([`RouteMetrics::sold_once`], [`RouteMetrics::sold_reusable`])
//! is counted once per payment hash: the gateway never sees an invoice
//! settle, only the credential that proves it was paid, so what it counts
//! is the price of each payment whose credential it accepted. A single-use
//! token or `Payment` credential counts when its spent-set claim is kept
//! (the request was answered); with a shared spent-set, the sum over
//! replicas is exact. A reusable L402 token counts the first time this
//! process accepts it; another replica, or this one after a restart,
//! counts it again if it is used there.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::Gateway;
use super::answer::json_error;
use super::config::{AuthScheme, GatewayConfig, PathMatch, RouteConfig, TokenPolicy};
use super::verified::Verified;
use crate::l402::{CONDITION_SERVICES, SUFFIX_CAPABILITIES, VerifyError};
use crate::lightning::PaymentHash;
use crate::listen::ConnectionLimits;

/// Every metric's name starts with this (`l402_gateway_requests_total`).
pub const METRICS_PREFIX: &str = "l402_gateway";
/// The path the metrics are served at.
pub const METRICS_PATH: &str = "/metrics";
/// The `route` label of a request no route matched (a 404, a 405, a path
/// refused before routing, a body or headers over the limits).
pub const NO_ROUTE: &str = "none";
/// Payment hashes whose revenue was counted, remembered until their token
/// expires so that none is counted twice: 40 bytes each, so at most about
/// 12 MiB. Past it a reusable token evicted from the verification cache may
/// be counted again.
pub const SOLD_SET_CAPACITY: usize = 1 << 18;
/// Connections the metrics listener keeps open at once: a scraper or two.
pub const METRICS_MAX_CONNECTIONS: usize = 16;
/// The content type of the exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// HTTP statuses with a handle of their own per route: 100 to 599.
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

/// Why the metrics listener was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsAddressError {
    /// A non-loopback address without `--metrics-public`.
    #[error(
        "refusing to serve metrics on {0}, which is not a loopback address: they show what \
         every route sells and earns; use a loopback address such as 127.0.0.1:9402 and \
         scrape it through a tunnel, or pass --metrics-public if only your monitoring can \
         reach {0}"
    )]
    NotLoopback(SocketAddr),
    /// The gateway's own address.
    #[error(
        "the metrics address {0} is the gateway's own listen address; give the metrics \
         another port (the metrics listener is the operator's only, never the clients')"
    )]
    SameAsListen(SocketAddr),
}

/// Checks the metrics address: loopback unless `public_ok`, and not the
/// gateway's own `listen` address.
pub fn check_metrics_address(
    metrics: SocketAddr,
    listen: SocketAddr,
    public_ok: bool,
) -> Result<(), MetricsAddressError> {
    if metrics == listen && metrics.port() != 0 {
        return Err(MetricsAddressError::SameAsListen(metrics));
    }
    if !metrics.ip().is_loopback() && !public_ok {
        return Err(MetricsAddressError::NotLoopback(metrics));
    }
    Ok(())
}

/// Serves `app` (a [`Gateway::metrics_router`]) on `listener` until
/// `shutdown` completes, with a small connection cap.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = ConnectionLimits {
        max_connections: METRICS_MAX_CONNECTIONS,
        ..ConnectionLimits::default()
    };
    crate::listen::serve(listener, app, limits, shutdown).await
}

impl Gateway {
    /// The metrics listener's router: `GET /metrics` answers the
    /// OpenMetrics text exposition; any other path is a 404. Serve it on a
    /// listener of its own ([`serve_metrics`]), never beside
    /// [`Gateway::router`].
    pub fn metrics_router(&self) -> Router {
        let metrics = self.metrics.clone();
        Router::new()
            .route(
                METRICS_PATH,
                axum::routing::get(move || async move { metrics.exposition() }),
            )
            .fallback(|| async {
                json_error(
                    StatusCode::NOT_FOUND,
                    "No such path; the metrics are at GET /metrics.",
                )
            })
    }
}

/// The scheme of a credential a client presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
    /// `L402` or `LSAT`.
    L402,
    /// `Payment`.
    Payment,
}

impl Scheme {
    const ALL: [Scheme; 2] = [Scheme::L402, Scheme::Payment];

    fn as_str(self) -> &'static str {
        match self {
            Scheme::L402 => "l402",
            Scheme::Payment => "payment",
        }
    }
}

/// Why a credential was refused: the `reason` label, a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// It does not decode (or the header is not visible ASCII).
    Malformed,
    /// It decodes but does not verify: the preimage, the signature, the
    /// identifier, a challenge not issued here or altered, a caveat that
    /// widens an earlier one.
    Invalid,
    /// Its `valid_until` (or the challenge's `expires`) has passed.
    Expired,
    /// It was bought for another service (or, for `Payment`, another route).
    WrongService,
    /// The route needs a capability the token was not minted with.
    Capability,
    /// A single-use token or `Payment` credential already spent.
    Reused,
    /// A credential of a scheme the route does not take.
    SchemeMismatch,
    /// The spent-set failed, so a single-use credential could not be checked.
    SpentSetUnavailable,
}

impl Refusal {
    const ALL: [Refusal; 8] = [
        Refusal::Malformed,
        Refusal::Invalid,
        Refusal::Expired,
        Refusal::WrongService,
        Refusal::Capability,
        Refusal::Reused,
        Refusal::SchemeMismatch,
        Refusal::SpentSetUnavailable,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Invalid => "invalid",
            Refusal::Expired => "expired",
            Refusal::WrongService => "wrong_service",
            Refusal::Capability => "capability",
            Refusal::Reused => "reused",
            Refusal::SchemeMismatch => "scheme_mismatch",
            Refusal::SpentSetUnavailable => "spent_set_unavailable",
        }
    }

    /// The reason an L402 verification error stands for.
    pub(super) fn of_l402(e: &VerifyError) -> Self {
        match e {
            VerifyError::Expired => Refusal::Expired,
            VerifyError::Caveat { condition, .. } if condition == CONDITION_SERVICES => {
                Refusal::WrongService
            }
            VerifyError::Caveat { condition, .. } if condition.ends_with(SUFFIX_CAPABILITIES) => {
                Refusal::Capability
            }
            _ => Refusal::Invalid,
        }
    }

    /// Whether a credential of `scheme` can be refused for this reason on
    /// `route` (those series are registered at zero when the gateway
    /// starts).
    fn applies(self, scheme: Scheme, route: &RouteConfig) -> bool {
        let takes = match scheme {
            Scheme::L402 => route.scheme.takes_l402(),
            Scheme::Payment => route.scheme.takes_payment(),
        };
        let spends = scheme == Scheme::Payment || route.token == TokenPolicy::SingleUse;
        match self {
            Refusal::SchemeMismatch => !takes,
            Refusal::Reused | Refusal::SpentSetUnavailable => takes && spends,
            Refusal::Capability => takes && scheme == Scheme::L402,
            Refusal::Malformed | Refusal::Invalid | Refusal::Expired | Refusal::WrongService => {
                takes
            }
        }
    }
}

/// A spent-set operation, for the error counter's `op` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SpentSetOp {
    Claim,
    Release,
    Prune,
}

impl SpentSetOp {
    const ALL: [SpentSetOp; 3] = [SpentSetOp::Claim, SpentSetOp::Release, SpentSetOp::Prune];

    fn as_str(self) -> &'static str {
        match self {
            SpentSetOp::Claim => "claim",
            SpentSetOp::Release => "release",
            SpentSetOp::Prune => "prune",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SchemeLabels {
    route: String,
    scheme: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusalLabels {
    route: String,
    scheme: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Verification takes about a microsecond for a remembered L402
/// credential and tens of microseconds for a `Payment` one (its invoice is
/// decoded): 1 µs to 16 ms, by fours.
fn verification_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-6, 4.0, 8))
}

/// Upstream answers: the usual HTTP buckets, up to the default 30 s
/// request deadline.
fn upstream_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// The metric families, shared by every route's handles.
#[derive(Debug)]
struct Families {
    requests: Family<StatusLabels, Counter>,
    challenges: Family<SchemeLabels, Counter>,
    accepted: Family<SchemeLabels, Counter>,
    refused: Family<RefusalLabels, Counter>,
    revenue: Family<RouteLabel, Counter>,
    price: Family<RouteLabel, Gauge>,
    verification: HistogramFamily<SchemeLabels>,
    upstream: HistogramFamily<RouteLabel>,
    spent_set_errors: Family<OpLabel, Counter>,
    sold: SoldSet,
}

/// The payment hashes whose revenue this process counted, each until its
/// token expires anyway (`forget_after`), at most [`SOLD_SET_CAPACITY`].
#[derive(Debug, Default)]
struct SoldSet {
    counted: Mutex<HashMap<PaymentHash, u64>>,
}

impl SoldSet {
    /// True the first time `hash` is counted (then remembered until
    /// `forget_after`, room permitting).
    fn first(&self, hash: &PaymentHash, forget_after: u64, now: u64) -> bool {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        if counted.contains_key(hash) {
            return false;
        }
        if counted.len() >= SOLD_SET_CAPACITY {
            counted.retain(|_, until| *until > now);
        }
        if counted.len() < SOLD_SET_CAPACITY {
            counted.insert(*hash, forget_after);
        }
        true
    }

    fn prune(&self, now: u64) {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        counted.retain(|_, until| *until > now);
    }
}

/// The registry and every route's handles.
#[derive(Debug)]
pub(super) struct Metrics {
    registry: Registry,
    families: Arc<Families>,
    /// One per configured route, in order, then one for [`NO_ROUTE`].
    routes: Box<[RouteMetrics]>,
    /// By [`SpentSetOp`].
    spent_set_errors: [Counter; SpentSetOp::ALL.len()],
}

impl Metrics {
    /// Registers every metric, and the series each route can touch at zero.
    pub(super) fn new(config: &GatewayConfig) -> Self {
        let families = Arc::new(Families {
            requests: Family::default(),
            challenges: Family::default(),
            accepted: Family::default(),
            refused: Family::default(),
            revenue: Family::default(),
            price: Family::default(),
            verification: Family::new_with_constructor(verification_histogram),
            upstream: Family::new_with_constructor(upstream_histogram),
            spent_set_errors: Family::default(),
            sold: SoldSet::default(),
        });
        let f = &families;
        let mut registry = Registry::with_prefix(METRICS_PREFIX);
        registry.register(
            "requests",
            "Requests the gateway answered, by route and HTTP status",
            f.requests.clone(),
        );
        registry.register(
            "challenges",
            "402 challenges issued (one invoice each), by route and the route's scheme",
            f.challenges.clone(),
        );
        registry.register(
            "credentials_accepted",
            "Requests served on a credential that passed every check, by route and scheme",
            f.accepted.clone(),
        );
        registry.register(
            "credentials_refused",
            "Credentials refused, by route, scheme and reason",
            f.refused.clone(),
        );
        registry.register_with_unit(
            "revenue",
            "Price of each payment whose credential was accepted, counted once per payment \
             hash: single-use and Payment credentials when spent, reusable tokens the first \
             time this process accepts them",
            Unit::Other("msat".into()),
            f.revenue.clone(),
        );
        registry.register_with_unit(
            "route_price",
            "The price of each paid route",
            Unit::Other("msat".into()),
            f.price.clone(),
        );
        registry.register_with_unit(
            "verification_duration",
            "Time to verify a presented credential (signature, preimage, caveats; not the \
             spent-set), by route and scheme",
            Unit::Seconds,
            f.verification.clone(),
        );
        registry.register_with_unit(
            "upstream_duration",
            "Time until the upstream's answer headers arrived, proxy routes, answered \
             requests only",
            Unit::Seconds,
            f.upstream.clone(),
        );
        registry.register(
            "spent_set_errors",
            "Spent-set operations that failed, by operation",
            f.spent_set_errors.clone(),
        );
        let spent_set_errors = SpentSetOp::ALL.map(|op| {
            f.spent_set_errors
                .get_or_create_owned(&OpLabel { op: op.as_str() })
        });

        let mut routes: Vec<RouteMetrics> = config
            .routes
            .iter()
            .map(|r| RouteMetrics::new(&families, route_label(r), Some(r)))
            .collect();
        routes.push(RouteMetrics::new(&families, NO_ROUTE.to_string(), None));
        Metrics {
            registry,
            families,
            routes: routes.into_boxed_slice(),
            spent_set_errors,
        }
    }

    /// The handles of the `index`th configured route.
    pub(super) fn route(&self, index: usize) -> &RouteMetrics {
        self.routes.get(index).unwrap_or_else(|| self.no_route())
    }

    fn no_route(&self) -> &RouteMetrics {
        self.routes
            .last()
            .expect("Metrics::new always adds the no-route handles")
    }

    /// Counts `resp` as answered for no route, and returns it.
    pub(super) fn unrouted(&self, resp: Response) -> Response {
        self.no_route().answered(resp.status());
        resp
    }

    /// Counts a failed spent-set operation.
    pub(super) fn spent_set_error(&self, op: SpentSetOp) {
        self.spent_set_errors[op as usize].inc();
    }

    /// The error counter of `op`, to keep (a claim releases itself from a
    /// task of its own).
    pub(super) fn spent_set_errors(&self, op: SpentSetOp) -> Counter {
        self.spent_set_errors[op as usize].clone()
    }

    /// Forgets the counted payment hashes whose tokens have expired.
    pub(super) fn prune(&self, now: u64) {
        self.families.sold.prune(now);
    }

    /// The OpenMetrics text exposition.
    fn exposition(&self) -> Response {
        let mut text = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The metrics could not be encoded.",
            );
        }
        let mut resp = text.into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
        resp
    }
}

/// The `route` label: the route's method and configured path, `/*` after a
/// prefix route's (`GET /v1/demo`, `ANY /v1/weather/*`).
pub(super) fn route_label(route: &RouteConfig) -> String {
    let method = route.method.to_ascii_uppercase();
    match route.path_match {
        PathMatch::Exact => format!("{method} {}", route.path),
        PathMatch::Prefix => format!("{method} {}/*", route.path.trim_end_matches('/')),
    }
}

/// One route's handles. A handle is a `OnceLock`: those the route can
/// touch are filled when the gateway starts (so their series exist at zero
/// from the first scrape), any other the first time it is needed.
#[derive(Debug)]
pub(super) struct RouteMetrics {
    label: String,
    price_msat: u64,
    /// The route's scheme as configured (`l402`, `payment`, `both`), the
    /// challenges' `scheme` label.
    offers: &'static str,
    families: Arc<Families>,
    /// Indexed by status - 100.
    requests: Box<[OnceLock<Counter>]>,
    challenges: OnceLock<Counter>,
    accepted: [OnceLock<Counter>; 2],
    refused: [[OnceLock<Counter>; Refusal::ALL.len()]; 2],
    revenue: OnceLock<Counter>,
    verification: [OnceLock<Histogram>; 2],
    upstream: OnceLock<Histogram>,
}

impl RouteMetrics {
    fn new(families: &Arc<Families>, label: String, route: Option<&RouteConfig>) -> Self {
        let m = RouteMetrics {
            price_msat: route.map_or(0, |r| r.price_sats * 1000),
            offers: route.map_or(AuthScheme::L402, |r| r.scheme).as_str(),
            families: families.clone(),
            requests: STATUSES.map(|_| OnceLock::new()).collect(),
            challenges: OnceLock::new(),
            accepted: Default::default(),
            refused: Default::default(),
            revenue: OnceLock::new(),
            verification: Default::default(),
            upstream: OnceLock::new(),
            label,
        };
        let Some(route) = route.filter(|r| !r.free) else {
            return m;
        };
        m.challenges();
        m.revenue();
        families
            .price
            .get_or_create(&m.route())
            .set(i64::try_from(m.price_msat).unwrap_or(i64::MAX));
        for scheme in Scheme::ALL {
            let takes = match scheme {
                Scheme::L402 => route.scheme.takes_l402(),
                Scheme::Payment => route.scheme.takes_payment(),
            };
            if takes {
                m.accepted_counter(scheme);
                m.verification(scheme);
            }
            for reason in Refusal::ALL {
                if reason.applies(scheme, route) {
                    m.refused_counter(scheme, reason);
                }
            }
        }
        if route.upstream.is_some() {
            m.upstream();
        }
        m
    }

    fn route(&self) -> RouteLabel {
        RouteLabel {
            route: self.label.clone(),
        }
    }

    fn schemed(&self, scheme: &'static str) -> SchemeLabels {
        SchemeLabels {
            route: self.label.clone(),
            scheme,
        }
    }

    /// Counts an answer with `status`.
    pub(super) fn answered(&self, status: StatusCode) {
        let code = status.as_u16();
        let make = || {
            self.families.requests.get_or_create_owned(&StatusLabels {
                route: self.label.clone(),
                status: code,
            })
        };
        match code
            .checked_sub(*STATUSES.start())
            .and_then(|i| self.requests.get(usize::from(i)))
        {
            Some(slot) => slot.get_or_init(make).inc(),
            None => make().inc(),
        };
    }

    fn challenges(&self) -> &Counter {
        self.challenges.get_or_init(|| {
            self.families
                .challenges
                .get_or_create_owned(&self.schemed(self.offers))
        })
    }

    /// Counts a 402 challenge issued.
    pub(super) fn challenge(&self) {
        self.challenges().inc();
    }

    fn accepted_counter(&self, scheme: Scheme) -> &Counter {
        self.accepted[scheme as usize].get_or_init(|| {
            self.families
                .accepted
                .get_or_create_owned(&self.schemed(scheme.as_str()))
        })
    }

    /// Counts a request that goes on to be served on a credential of
    /// `scheme` that passed every check.
    pub(super) fn accepted(&self, scheme: Scheme) {
        self.accepted_counter(scheme).inc();
    }

    fn refused_counter(&self, scheme: Scheme, reason: Refusal) -> &Counter {
        self.refused[scheme as usize][reason as usize].get_or_init(|| {
            self.families.refused.get_or_create_owned(&RefusalLabels {
                route: self.label.clone(),
                scheme: scheme.as_str(),
                reason: reason.as_str(),
            })
        })
    }

    /// Counts a credential of `scheme` refused for `reason`.
    pub(super) fn refused(&self, scheme: Scheme, reason: Refusal) {
        self.refused_counter(scheme, reason).inc();
    }

    fn verification(&self, scheme: Scheme) -> &Histogram {
        self.verification[scheme as usize].get_or_init(|| {
            self.families
                .verification
                .get_or_create_owned(&self.schemed(scheme.as_str()))
        })
    }

    /// Records how long verifying a credential of `scheme` took.
    pub(super) fn verified_in(&self, scheme: Scheme, took: Duration) {
        self.verification(scheme).observe(took.as_secs_f64());
    }

    fn upstream(&self) -> &Histogram {
        self.upstream
            .get_or_init(|| self.families.upstream.get_or_create_owned(&self.route()))
    }

    /// Records how long the upstream took to answer.
    pub(super) fn upstream_answered_in(&self, took: Duration) {
        self.upstream().observe(took.as_secs_f64());
    }

    fn revenue(&self) -> &Counter {
        self.revenue
            .get_or_init(|| self.families.revenue.get_or_create_owned(&self.route()))
    }

    /// A single-use token or `Payment` credential was spent (its claim
    /// kept): its price counts, once per payment hash (the spent-set has
    /// seen to that across processes; the sold set here sees to a `both`
    /// route, where the same payment may also be an L402 token).
    pub(super) fn sold_once(&self, hash: &PaymentHash, forget_after: u64, now: u64) {
        if self.families.sold.first(hash, forget_after, now) {
            self.revenue().inc_by(self.price_msat);
        }
    }

    /// A reusable L402 token was accepted: its price counts the first time
    /// this process accepts it. The verification cache entry's flag keeps
    /// every later request off the sold set's lock.
    pub(super) fn sold_reusable(&self, verified: &Verified, forget_after: u64, now: u64) {
        if verified.sold.load(Ordering::Relaxed) || verified.sold.swap(true, Ordering::Relaxed) {
            return;
        }
        self.sold_once(&verified.identifier.payment_hash, forget_after, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(toml: &str) -> Metrics {
        Metrics::new(&GatewayConfig::from_toml(toml).unwrap())
    }

    fn text(m: &Metrics) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &m.registry).unwrap();
        text
    }

    #[test]
    fn a_metrics_address_off_loopback_needs_the_flag() {
        let listen: SocketAddr = "127.0.0.1:8402".parse().unwrap();
        for loopback in ["127.0.0.1:9402", "127.0.0.1:0", "[::1]:9402"] {
            check_metrics_address(loopback.parse().unwrap(), listen, false).unwrap();
        }
        for public in ["0.0.0.0:9402", "[::]:9402", "192.168.1.5:9402"] {
            let addr: SocketAddr = public.parse().unwrap();
            let err = check_metrics_address(addr, listen, false).unwrap_err();
            assert_eq!(err, MetricsAddressError::NotLoopback(addr));
            let sentence = err.to_string();
            assert!(
                sentence.starts_with(&format!(
                    "refusing to serve metrics on {addr}, which is not a loopback address"
                )) && sentence.contains("--metrics-public"),
                "{sentence}"
            );
            check_metrics_address(addr, listen, true).unwrap();
        }
        assert_eq!(
            check_metrics_address(listen, listen, false),
            Err(MetricsAddressError::SameAsListen(listen))
        );
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        check_metrics_address(any, any, false).unwrap();
    }

    #[test]
    fn route_labels_name_the_configuration_never_a_request() {
        let c = GatewayConfig::from_toml(
            "[[routes]]\npath = \"/v1/weather/\"\nmatch = \"prefix\"\nprice_sats = 1\n\
             upstream = \"http://127.0.0.1:9\"\n\
             [[routes]]\npath = \"/a\"\nmethod = \"post\"\nprice_sats = 1\ndemo = \"demo\"\n\
             [[routes]]\npath = \"/\"\nmatch = \"prefix\"\nfree = true\ndemo = \"health\"\n",
        )
        .unwrap();
        let labels: Vec<String> = c.routes.iter().map(route_label).collect();
        assert_eq!(labels, ["ANY /v1/weather/*", "POST /a", "ANY /*"]);
    }

    #[test]
    fn the_series_a_route_can_touch_start_at_zero() {
        let m = metrics(
            "[[routes]]\npath = \"/a\"\nmethod = \"GET\"\nprice_sats = 2\ndemo = \"demo\"\n\
             [[routes]]\npath = \"/p\"\nmethod = \"GET\"\nprice_sats = 3\ndemo = \"demo\"\n\
             scheme = \"payment\"\n\
             [[routes]]\npath = \"/h\"\nmethod = \"GET\"\nfree = true\ndemo = \"health\"\n",
        );
        let text = text(&m);
        // In label order: the exposition's order is the families' maps'.
        let series = |name: &str| -> Vec<&str> {
            let mut lines: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .collect();
            lines.sort_unstable();
            lines
        };
        assert_eq!(
            series("l402_gateway_credentials_refused_total"),
            [
                "l402_gateway_credentials_refused_total{route=\"GET /a\",scheme=\"l402\",reason=\"capability\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /a\",scheme=\"l402\",reason=\"expired\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /a\",scheme=\"l402\",reason=\"invalid\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /a\",scheme=\"l402\",reason=\"malformed\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /a\",scheme=\"l402\",reason=\"wrong_service\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /a\",scheme=\"payment\",reason=\"scheme_mismatch\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /p\",scheme=\"l402\",reason=\"scheme_mismatch\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /p\",scheme=\"payment\",reason=\"expired\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /p\",scheme=\"payment\",reason=\"invalid\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /p\",scheme=\"payment\",reason=\"malformed\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /p\",scheme=\"payment\",reason=\"reused\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /p\",scheme=\"payment\",reason=\"spent_set_unavailable\"} 0",
                "l402_gateway_credentials_refused_total{route=\"GET /p\",scheme=\"payment\",reason=\"wrong_service\"} 0",
            ]
        );
        assert_eq!(
            series("l402_gateway_route_price_msat"),
            [
                "l402_gateway_route_price_msat{route=\"GET /a\"} 2000",
                "l402_gateway_route_price_msat{route=\"GET /p\"} 3000",
            ]
        );
        assert_eq!(
            series("l402_gateway_challenges_total"),
            [
                "l402_gateway_challenges_total{route=\"GET /a\",scheme=\"l402\"} 0",
                "l402_gateway_challenges_total{route=\"GET /p\",scheme=\"payment\"} 0",
            ]
        );
        // Nothing of the free route but its requests, once answered.
        assert!(!text.contains("GET /h"), "{text}");
        m.route(2).answered(StatusCode::OK);
        m.route(99).answered(StatusCode::NOT_FOUND);
        let text = self::text(&m);
        assert!(
            text.contains("l402_gateway_requests_total{route=\"GET /h\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("l402_gateway_requests_total{route=\"none\",status=\"404\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_payment_hash_counts_once_until_its_token_expires() {
        let m = metrics("[[routes]]\npath = \"/a\"\nprice_sats = 2\ndemo = \"demo\"\n");
        let r = m.route(0);
        let h = PaymentHash([1; 32]);
        r.sold_once(&h, 100, 10);
        r.sold_once(&h, 100, 20);
        assert_eq!(r.revenue().get(), 2000);
        let v = Verified {
            identifier: crate::l402::Identifier::new(h),
            caveats: Arc::from(Vec::new()),
            sold: Arc::default(),
        };
        r.sold_reusable(&v, 100, 30);
        assert_eq!(r.revenue().get(), 2000, "the same payment hash");
        assert!(v.sold.load(Ordering::Relaxed));
        let other = Verified {
            identifier: crate::l402::Identifier::new(PaymentHash([2; 32])),
            ..v
        };
        r.sold_reusable(&other, 100, 30);
        assert_eq!(r.revenue().get(), 2000, "this entry was counted already");
        m.prune(100);
        r.sold_once(&h, 200, 100);
        assert_eq!(r.revenue().get(), 4000, "forgotten once its token expired");
    }

    #[test]
    fn l402_errors_map_to_their_reasons() {
        let caveat = |condition: &str| VerifyError::Caveat {
            condition: condition.into(),
            reason: String::new(),
        };
        for (e, want) in [
            (VerifyError::Expired, Refusal::Expired),
            (caveat("services"), Refusal::WrongService),
            (caveat("wx_capabilities"), Refusal::Capability),
            (caveat("wx_valid_until"), Refusal::Invalid),
            (caveat(crate::l402::CONDITION_THIRD_PARTY), Refusal::Invalid),
            (VerifyError::Signature, Refusal::Invalid),
            (VerifyError::PreimageMismatch, Refusal::Invalid),
            (VerifyError::NoServices, Refusal::Invalid),
        ] {
            assert_eq!(Refusal::of_l402(&e), want, "{e:?}");
        }
    }
}

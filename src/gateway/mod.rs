//! The companion L402 gateway: sells access to HTTP endpoints.
//!
//! Each request is matched against the configured routes (first match
//! wins). A free route is served at once. A paid route needs an L402
//! credential: without one the gateway answers `402 Payment Required` with a
//! fresh invoice and a macaroon bound to it (both `LSAT` and `L402`
//! challenges, in aperture's order); with one it checks the preimage, the
//! macaroon's signature and every caveat it minted, statelessly, and then
//! serves the built-in demo content or proxies to the route's upstream.
//! Invoices come from an [`Invoicer`]: the embedded dev node
//! ([`crate::lightning::dev`]) or, later, LND.
//!
//! A route may instead (or also) take the `Payment` scheme
//! (`scheme = "payment" | "both"`, see [`AuthScheme`]): a challenge bound
//! to the route by an HMAC id, a credential that buys one request, and a
//! `Payment-Receipt` on the answer.
//!
//! What is sold, refused and earned is counted as Prometheus metrics, for
//! the operator's own listener ([`Gateway::metrics_router`],
//! [`serve_metrics`]; see `metrics.rs` for what revenue counts).

mod answer;
mod config;
mod demo;
mod metrics;
mod payment;
mod paywall;
mod proxy;
mod root_key;
mod spent;
mod spent_redis;
mod verified;

pub use config::{
    AuthScheme, ConfigError, DEFAULT_LISTEN, DemoContent, GatewayConfig, LimitsConfig, PathMatch,
    RateLimitConfig, RouteConfig, TokenPolicy,
};
pub use metrics::{
    METRICS_MAX_CONNECTIONS, METRICS_PATH, METRICS_PREFIX, MetricsAddressError, NO_ROUTE,
    SOLD_SET_CAPACITY, check_metrics_address, serve_metrics,
};
pub use root_key::{
    ROOT_KEY_ENV, ROOT_KEY_FILE, load_or_create_root_key, load_root_key_file, root_key_from_env,
};
pub use spent::{
    MemorySpentSet, SPENT_SET_FILE, SpentSet, SpentSetBackend, SpentSetError, SpentSetParseError,
    SqliteSpentSet,
};
pub use spent_redis::{
    DEFAULT_REDIS_CONNECT_TIMEOUT, DEFAULT_REDIS_OPERATION_TIMEOUT, DEFAULT_REDIS_RESPONSE_TIMEOUT,
    REDIS_CLOCK_SKEW_MARGIN_SECS, REDIS_KEY_PREFIX, RedisSpentSet, RedisUrl,
};

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::l402::RootKey;
use crate::lightning::Invoicer;

/// Credentials whose signature check is remembered (per generation): an
/// entry is about 1 KiB, so at most ~32 MiB.
pub const VERIFIED_CACHE_CAPACITY: usize = 16 * 1024;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The root key file could not be read or created.
    #[error("root key file {path}: {message}")]
    RootKey {
        /// The file.
        path: PathBuf,
        /// What went wrong, and what to do.
        message: String,
    },
    /// The root key given in an environment variable is not a key.
    #[error("the environment variable {var} {message}")]
    RootKeyVar {
        /// The variable.
        var: String,
        /// What is wrong with its value (never the value), and what to do.
        message: String,
    },
    /// The spent-set of single-use tokens could not be opened.
    #[error(transparent)]
    SpentSet(#[from] SpentSetError),
    /// The HTTP client for upstreams could not be built.
    #[error("cannot build the upstream HTTP client: {0}")]
    Http(String),
}

/// A now-in-unix-seconds source; tests move time forward with it.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The gateway: configuration, keys and backends. Build one with
/// [`Gateway::new`], then serve [`Gateway::router`].
pub struct Gateway {
    config: GatewayConfig,
    root_key: RootKey,
    /// The key `Payment` challenge ids are bound under (derived from the
    /// root key, never the root key itself).
    payment_key: [u8; 32],
    /// The invoicer's network as the `Payment` scheme names it (`None`:
    /// one it cannot name, and then no route may take `Payment`).
    payment_network: Option<&'static str>,
    invoicer: Arc<dyn Invoicer>,
    spent: Arc<dyn SpentSet>,
    verified: verified::VerifiedCache,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    upstream: proxy::Upstreams,
    clock: Clock,
    /// Counted always, served only on the operator's metrics listener.
    metrics: Arc<metrics::Metrics>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.config.routes.len())
            .field("invoicer", &self.invoicer)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway selling `config`'s routes, minting with `root_key` and
    /// invoicing through `invoicer`. Single-use tokens are tracked in memory
    /// until [`with_spent_set`](Self::with_spent_set) says otherwise (the
    /// `gateway` command uses a [`SqliteSpentSet`] in its data directory).
    pub fn new(
        config: GatewayConfig,
        root_key: RootKey,
        invoicer: Arc<dyn Invoicer>,
    ) -> Result<Self, GatewayError> {
        config.validate()?;
        let network = invoicer.network();
        let payment_network = payment::network_name(network);
        if payment_network.is_none()
            && let Some(r) = config.routes.iter().find(|r| r.scheme.takes_payment())
        {
            return Err(ConfigError::Invalid(format!(
                "route {} {}: scheme = {:?} needs a mainnet, regtest or signet node, and \
                 the invoices come from {network}, which the Payment scheme cannot name; \
                 use scheme = \"l402\"",
                r.method,
                r.path,
                r.scheme.as_str()
            ))
            .into());
        }
        let per_minute =
            NonZeroU32::new(config.rate_limit.challenges_per_minute).ok_or_else(|| {
                ConfigError::Invalid("challenges_per_minute must be at least 1".into())
            })?;
        let burst = NonZeroU32::new(config.rate_limit.burst)
            .ok_or_else(|| ConfigError::Invalid("burst must be at least 1".into()))?;
        let limiter = RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst));
        let upstream = proxy::Upstreams::new(
            Duration::from_secs(config.limits.request_timeout_secs),
            config.routes.iter().filter_map(|r| r.upstream.as_deref()),
        )
        .map_err(|e| GatewayError::Http(e.to_string()))?;
        let metrics = Arc::new(metrics::Metrics::new(&config));
        Ok(Gateway {
            config,
            payment_key: payment::challenge_key(&root_key),
            payment_network,
            root_key,
            invoicer,
            spent: Arc::new(MemorySpentSet::default()),
            verified: verified::VerifiedCache::new(VERIFIED_CACHE_CAPACITY),
            limiter,
            upstream,
            clock: Arc::new(system_clock),
            metrics,
        })
    }

    /// Replaces the spent-set for single-use tokens (a shared store lets
    /// replicas behind a load balancer agree).
    pub fn with_spent_set(mut self, spent: Arc<dyn SpentSet>) -> Self {
        self.spent = spent;
        self
    }

    /// Replaces the clock (unix seconds); for tests.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The axum router serving every configured route.
    pub fn router(self: Arc<Self>) -> Router {
        paywall::router(self)
    }

    /// Forgets rate-limiter state of idle clients and expired spent-set
    /// entries; call now and then.
    pub async fn housekeeping(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        if let Err(e) = self.spent.prune((self.clock)()).await {
            self.metrics.spent_set_error(metrics::SpentSetOp::Prune);
            tracing::warn!(error = %e, "cannot prune the spent-set");
        }
        self.metrics.prune((self.clock)());
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }
}

/// Serves `app` on `listener` until `shutdown` completes, within the
/// configured connection limits ([`crate::listen`]), with client addresses
/// available to the rate limiter, and housekeeping every minute.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = gateway.config.limits.connections();
    let workers = gateway.config.limits.workers();
    let gw = Arc::downgrade(&gateway);
    drop(gateway);
    let housekeeping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            match gw.upgrade() {
                Some(gw) => gw.housekeeping().await,
                None => break,
            }
        }
    });
    let result = crate::listen::serve_on_workers(listener, app, limits, workers, shutdown).await;
    housekeeping.abort();
    result
}

/// The platform data directory for l402-mcp (`~/.local/share/l402-mcp` on
/// Linux), or `./.l402-mcp` where the platform has none.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("l402-mcp"))
        .unwrap_or_else(|| PathBuf::from(".l402-mcp"))
}

//! The gateway's configuration: what it sells, at what price, and how.
//!
//! A TOML file (`--config FILE`) lists routes; without one the gateway
//! serves the demo set ([`GatewayConfig::demo`]). Every field has a default,
//! so the smallest useful file is one `[[routes]]` table.
//!
//! ```toml
//! [[routes]]
//! path = "/v1/weather"     # exact path; `match = "prefix"` for a subtree
//! method = "GET"           # or "ANY"
//! price_sats = 10
//! upstream = "http://127.0.0.1:9000"   # proxy there, like aperture
//! token = "reusable"       # or "single-use"
//! valid_for_secs = 3600
//! scheme = "l402"          # or "payment", or "both"
//! ```
//!
//! | setting | default | why |
//! |---|---|---|
//! | `listen` | `127.0.0.1:8402` | loopback unless the operator opens it up |
//! | `root_key_file` | none: `gateway-root-key` in the data directory, created on first start | replicas share one key file the operator made (relative to this file; mode 0600; never created) |
//! | `spent_set` | `local`: `gateway-spent.sqlite` in the data directory | `redis://host[:port][/db]` shares single-use tokens between replicas |
//! | `metrics` | off | Prometheus metrics (`GET /metrics`) on a listener of their own, loopback unless `--metrics-public`: they show every route's revenue |
//! | `invoice_expiry_secs` | 600 | long enough for a person to approve a payment |
//! | `rate_limit.challenges_per_minute` | 60 per client IP | each challenge signs an invoice; a flood must not exhaust the node |
//! | `rate_limit.burst` | 20 | an agent's first burst of calls is not throttled |
//! | `limits.max_body_bytes` | 1 MiB | request bodies are buffered by no one, but capped |
//! | `limits.max_header_bytes` | 16 KiB | a credential is < 2 KiB |
//! | `limits.request_timeout_secs` | 30 | upstream calls included; a slow upstream is a 504 |
//! | `limits.header_read_timeout_secs` | 10 | from a connection's start or its previous answer to a request's last header byte, so also the keep-alive idle timeout; a trickling client lets go |
//! | `limits.max_connections` | 512 | open connections; one more gets 503 and is closed (stays under a default `ulimit -n` of 1024) |
//! | `limits.workers` | one per CPU | threads serving connections, each a single-threaded runtime that drives its connections (and their upstream connections) start to end: no cross-thread wakeups on the request path |
//! | route `valid_for_secs` | 3600 (reusable), 86400 (single-use) | a bought token stays useful for a session of work |
//! | route `scheme` | `l402` | which HTTP authentication scheme sells the route (aperture's `authscheme`): `l402` (LSAT and L402 challenges, macaroon tokens), `payment` (the `Payment` scheme, Lightning `charge`: one paid request per credential), or `both`. A 402 offers only the challenges the route accepts; on `both` one invoice serves all of them |

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SpentSetBackend;
use crate::listen::ConnectionLimits;
pub use crate::listen::{DEFAULT_HEADER_READ_TIMEOUT_SECS, DEFAULT_MAX_CONNECTIONS};

/// Default listen address: loopback, port 8402 (HTTP 402).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8402";
/// Invoices stay payable this long: enough for an approval prompt.
pub const DEFAULT_INVOICE_EXPIRY_SECS: u64 = 600;
/// Challenges (each signs a fresh invoice) per client IP per minute.
pub const DEFAULT_CHALLENGES_PER_MINUTE: u32 = 60;
/// Challenges a client IP may take at once before the rate applies.
pub const DEFAULT_CHALLENGE_BURST: u32 = 20;
/// Largest request body accepted (proxied or served).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest total size of request headers; a credential is under 2 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Longest time a request may take, upstream included.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// How long a reusable token stays valid after it is minted.
pub const DEFAULT_REUSABLE_VALID_FOR_SECS: u64 = 3600;
/// How long an unused single-use token stays valid (bounds the spent-set).
pub const DEFAULT_SINGLE_USE_VALID_FOR_SECS: u64 = 86_400;
/// Most sats one route may ask: 0.01 BTC. A typo should not sell a route
/// for a fortune.
pub const MAX_PRICE_SATS: u64 = 1_000_000;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named with `--config` does not exist.
    #[error(
        "gateway config {path} does not exist; check the --config path (or \
         L402_GATEWAY_CONFIG), or leave it out to serve the demo routes"
    )]
    Missing {
        /// The file.
        path: String,
    },
    /// The file could not be read. (The I/O error is part of the sentence,
    /// not a `source`: printed with its chain, it would appear twice.)
    #[error("cannot read gateway config {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why, as the OS says it.
        message: String,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("gateway config {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// toml's message, with line and column.
        message: String,
    },
    /// A value is out of range or contradicts another.
    #[error("gateway config: {0}")]
    Invalid(String),
}

/// The whole gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where to listen.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The root key file replicas share (64 hex digits, mode 0600); in
    /// the file, relative to it. `None`: the data directory's own key.
    #[serde(default)]
    pub root_key_file: Option<PathBuf>,
    /// Where single-use tokens are remembered.
    #[serde(default)]
    pub spent_set: SpentSetBackend,
    /// Where to serve Prometheus metrics (`GET /metrics`), on a listener
    /// of their own; none when absent.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// Seconds an invoice stays payable.
    #[serde(default = "default_invoice_expiry")]
    pub invoice_expiry_secs: u64,
    /// Challenge rate limiting.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Size and time caps.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// What is sold (or given away), first match wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// Challenge issuance limits, per client IP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Challenges per minute.
    #[serde(default = "default_challenges_per_minute")]
    pub challenges_per_minute: u32,
    /// Burst size.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            challenges_per_minute: DEFAULT_CHALLENGES_PER_MINUTE,
            burst: DEFAULT_CHALLENGE_BURST,
        }
    }
}

/// Size and time caps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body, bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest total request header size, bytes.
    #[serde(default = "default_max_header")]
    pub max_header_bytes: usize,
    /// Per-request deadline, seconds.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Seconds a connection may take to send a request's headers, counted
    /// from when it opens or its previous answer was sent (so also how long
    /// an idle keep-alive connection stays open).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// Connections open at once; one more is answered 503 and closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Threads serving connections, each with a runtime of its own; none:
    /// one per CPU the process may use.
    #[serde(default)]
    pub workers: Option<usize>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT_SECS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            workers: None,
        }
    }
}

impl LimitsConfig {
    /// How many threads serve connections: `workers`, or one per CPU.
    pub fn workers(&self) -> std::num::NonZeroUsize {
        self.workers
            .and_then(std::num::NonZeroUsize::new)
            .or_else(|| std::thread::available_parallelism().ok())
            .unwrap_or(std::num::NonZeroUsize::MIN)
    }

    /// The listener's share of these limits.
    pub fn connections(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            max_connections: self.max_connections,
        }
    }
}

/// How a route's path is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PathMatch {
    /// The path must be equal.
    #[default]
    Exact,
    /// The path, or anything below it (`/v1` matches `/v1/x`, not `/v1x`).
    Prefix,
}

/// Whether a token buys one request or many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TokenPolicy {
    /// Any number of requests until `valid_until`.
    #[default]
    Reusable,
    /// One request; the token is then spent.
    SingleUse,
}

/// Which HTTP authentication scheme sells a route (aperture's per-service
/// `authscheme`, spelled `l402 | payment | both` here).
///
/// A 402 carries exactly the challenges of the schemes the route accepts
/// (aperture offers every scheme's challenge whatever the service takes,
/// then refuses the credential a client bought). On [`Both`](Self::Both)
/// the L402 macaroon and the `Payment` request are bound to ONE invoice
/// (aperture mints one per scheme), so a client that paid it may present
/// either credential, and never pays twice for picking the "wrong" one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(try_from = "String")]
pub enum AuthScheme {
    /// `L402` (and the legacy `LSAT`): a macaroon bound to the invoice, a
    /// token reusable or single-use as the route's `token` says.
    #[default]
    L402,
    /// `Payment` (draft-httpauth-payment, `method="lightning"`,
    /// `intent="charge"`): each credential buys one request, whatever the
    /// route's `token` says.
    Payment,
    /// Both, sharing one invoice.
    Both,
}

impl AuthScheme {
    /// True when L402/LSAT credentials are accepted.
    pub fn takes_l402(self) -> bool {
        matches!(self, AuthScheme::L402 | AuthScheme::Both)
    }

    /// True when `Payment` credentials are accepted.
    pub fn takes_payment(self) -> bool {
        matches!(self, AuthScheme::Payment | AuthScheme::Both)
    }

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthScheme::L402 => "l402",
            AuthScheme::Payment => "payment",
            AuthScheme::Both => "both",
        }
    }
}

impl TryFrom<String> for AuthScheme {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "l402" => Ok(AuthScheme::L402),
            "payment" => Ok(AuthScheme::Payment),
            "both" => Ok(AuthScheme::Both),
            other => Err(format!(
                "route scheme {other:?} is not one of \"l402\", \"payment\" or \"both\" \
                 (aperture's \"mpp\" is \"payment\" here, and \"l402+mpp\" is \"both\")"
            )),
        }
    }
}

/// Built-in content the gateway can serve without an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DemoContent {
    /// A short paid message.
    Demo,
    /// A short paid message for a `Payment` route.
    Charge,
    /// A small deterministic data set.
    Data,
    /// A deterministic reply built from a posted prompt.
    Generate,
    /// `{"status":"ok"}`.
    Health,
    /// The index of routes and prices (HTML or JSON).
    Index,
}

/// One route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The path (exact) or path prefix.
    pub path: String,
    /// How `path` matches.
    #[serde(default, rename = "match")]
    pub path_match: PathMatch,
    /// HTTP method, or `ANY`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Price in sats; 0 with `free = true`.
    #[serde(default)]
    pub price_sats: u64,
    /// A free route: no payment asked.
    #[serde(default)]
    pub free: bool,
    /// The macaroon service name; defaults to one derived from the path.
    #[serde(default)]
    pub service: Option<String>,
    /// A capability the token must carry for this route.
    #[serde(default)]
    pub capability: Option<String>,
    /// Reusable or single-use tokens.
    #[serde(default)]
    pub token: TokenPolicy,
    /// Seconds a token stays valid after minting.
    #[serde(default)]
    pub valid_for_secs: Option<u64>,
    /// Which authentication scheme sells the route.
    #[serde(default)]
    pub scheme: AuthScheme,
    /// Serve built-in content.
    #[serde(default)]
    pub demo: Option<DemoContent>,
    /// Proxy to this upstream base URL (`http://host:port[/base]`).
    #[serde(default)]
    pub upstream: Option<String>,
    /// A sentence for the index and the invoice memo.
    #[serde(default)]
    pub description: Option<String>,
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("DEFAULT_LISTEN is a socket address")
}
fn default_invoice_expiry() -> u64 {
    DEFAULT_INVOICE_EXPIRY_SECS
}
fn default_challenges_per_minute() -> u32 {
    DEFAULT_CHALLENGES_PER_MINUTE
}
fn default_burst() -> u32 {
    DEFAULT_CHALLENGE_BURST
}
fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_header() -> usize {
    DEFAULT_MAX_HEADER_BYTES
}
fn default_request_timeout() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_SECS
}
fn default_header_read_timeout() -> u64 {
    DEFAULT_HEADER_READ_TIMEOUT_SECS
}
fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_method() -> String {
    "ANY".to_string()
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self::demo()
    }
}

impl GatewayConfig {
    /// The demo set: `GET /v1/demo` 21 sats, `GET /v1/data` 100 sats,
    /// `POST /v1/generate` 250 sats (single-use), `GET /health` and `GET /`
    /// free.
    pub fn demo() -> Self {
        let route =
            |path: &str, method: &str, price: u64, demo, token, description: &str| RouteConfig {
                path: path.to_string(),
                path_match: PathMatch::Exact,
                method: method.to_string(),
                price_sats: price,
                free: price == 0,
                service: None,
                capability: None,
                token,
                valid_for_secs: None,
                scheme: AuthScheme::L402,
                demo: Some(demo),
                upstream: None,
                description: Some(description.to_string()),
            };
        use DemoContent::*;
        use TokenPolicy::*;
        GatewayConfig {
            listen: default_listen(),
            root_key_file: None,
            spent_set: SpentSetBackend::Local,
            metrics: None,
            invoice_expiry_secs: DEFAULT_INVOICE_EXPIRY_SECS,
            rate_limit: RateLimitConfig::default(),
            limits: LimitsConfig::default(),
            routes: vec![
                route(
                    "/v1/demo",
                    "GET",
                    21,
                    Demo,
                    Reusable,
                    "A short paid message.",
                ),
                route("/v1/data", "GET", 100, Data, Reusable, "A small data set."),
                RouteConfig {
                    scheme: AuthScheme::Payment,
                    ..route(
                        "/v1/charge",
                        "GET",
                        5,
                        Charge,
                        Reusable,
                        "A short paid message, sold with the Payment scheme (one Lightning \
                         charge per request).",
                    )
                },
                route(
                    "/v1/generate",
                    "POST",
                    250,
                    Generate,
                    SingleUse,
                    "A reply generated from the posted prompt.",
                ),
                route("/health", "GET", 0, Health, Reusable, "Liveness check."),
                route(
                    "/",
                    "GET",
                    0,
                    Index,
                    Reusable,
                    "This index of routes and prices.",
                ),
            ],
        }
    }

    /// Reads and checks a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let path = path.display().to_string();
            match e.kind() {
                std::io::ErrorKind::NotFound => ConfigError::Missing { path },
                _ => ConfigError::Read {
                    path,
                    message: e.to_string(),
                },
            }
        })?;
        let mut config = Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })?;
        // A path in the file is relative to the file.
        if let Some(key) = &config.root_key_file
            && key.is_relative()
        {
            let base = path.parent().unwrap_or_else(|| Path::new(""));
            config.root_key_file = Some(base.join(key));
        }
        Ok(config)
    }

    /// Parses and checks TOML text. A file with no routes gets the demo set.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut config: GatewayConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".to_string(),
            message: e.to_string(),
        })?;
        if config.routes.is_empty() {
            config.routes = Self::demo().routes;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every route; the first problem is returned as a sentence.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        if self.invoice_expiry_secs == 0 || self.invoice_expiry_secs > 86_400 {
            return bad(format!(
                "invoice_expiry_secs is {}; use 1 to 86400",
                self.invoice_expiry_secs
            ));
        }
        if self.rate_limit.challenges_per_minute == 0 || self.rate_limit.burst == 0 {
            return bad("rate_limit.challenges_per_minute and burst must be at least 1".into());
        }
        if self.limits.max_header_bytes < 1024 || self.limits.request_timeout_secs == 0 {
            return bad(
                "limits.max_header_bytes must be at least 1024 and request_timeout_secs at least 1"
                    .into(),
            );
        }
        if self.limits.header_read_timeout_secs == 0 || self.limits.max_connections == 0 {
            return bad(
                "limits.header_read_timeout_secs and limits.max_connections must be at least 1"
                    .into(),
            );
        }
        if self.limits.workers.is_some_and(|n| n == 0 || n > 1024) {
            return bad(
                "limits.workers must be between 1 and 1024 (leave it out for one per CPU)".into(),
            );
        }
        let mut seen = HashSet::new();
        for r in &self.routes {
            let at = format!("route {} {}", r.method, r.path);
            if !r.path.starts_with('/') {
                return bad(format!("{at}: path must start with '/'"));
            }
            if !seen.insert((r.path.clone(), r.method.to_ascii_uppercase(), r.path_match)) {
                return bad(format!("{at}: listed twice"));
            }
            if r.method != "ANY" && !is_token(&r.method) {
                return bad(format!("{at}: method must be an HTTP method or ANY"));
            }
            match (r.demo.is_some(), r.upstream.is_some()) {
                (true, true) => return bad(format!("{at}: set demo or upstream, not both")),
                (false, false) => return bad(format!("{at}: set demo or upstream")),
                _ => {}
            }
            if let Some(up) = &r.upstream {
                match reqwest::Url::parse(up) {
                    Ok(u) if u.query().is_some() || u.fragment().is_some() => {
                        return bad(format!(
                            "{at}: upstream {up:?} has a query or fragment; give the base URL only"
                        ));
                    }
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    _ => return bad(format!("{at}: upstream {up:?} is not an http(s) URL")),
                }
            }
            if r.free && r.price_sats != 0 {
                return bad(format!("{at}: a free route has no price"));
            }
            if r.free && r.scheme != AuthScheme::L402 {
                return bad(format!(
                    "{at}: a free route takes no credential, so it has no scheme; remove \
                     scheme = {:?}",
                    r.scheme.as_str()
                ));
            }
            if !r.free && r.price_sats == 0 {
                return bad(format!("{at}: set price_sats, or free = true"));
            }
            if r.price_sats > MAX_PRICE_SATS {
                return bad(format!(
                    "{at}: price_sats {} is above the limit of {MAX_PRICE_SATS}",
                    r.price_sats
                ));
            }
            let service = r.service_name();
            if service.is_empty()
                || !service
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return bad(format!(
                    "{at}: service name {service:?} may use only letters, digits, '-', '_' and '.'"
                ));
            }
            if let Some(cap) = &r.capability
                && (cap.is_empty() || cap.contains(',') || cap.contains('='))
            {
                return bad(format!("{at}: capability {cap:?} must be one word"));
            }
            if r.valid_for_secs == Some(0) {
                return bad(format!("{at}: valid_for_secs must be at least 1"));
            }
        }
        self.check_service_names()
    }

    /// A token opens every route of its service (that needs no capability
    /// it lacks), so two paid routes may share a service only when the
    /// operator said so: both name it with `service`. A derived name that
    /// meets another route's (`/a/b` and `/a-b` both derive `a-b`; `GET /x`
    /// and `POST /x` both derive `x`) would let the cheaper route's token
    /// open the dearer one.
    fn check_service_names(&self) -> Result<(), ConfigError> {
        let paid: Vec<&RouteConfig> = self.routes.iter().filter(|r| !r.free).collect();
        for (i, a) in paid.iter().enumerate() {
            for b in &paid[i + 1..] {
                let name = a.service_name();
                if name == b.service_name() && (a.service.is_none() || b.service.is_none()) {
                    return Err(ConfigError::Invalid(format!(
                        "routes {} {} and {} {} both have the service name {name:?}, so a \
                         token bought for one would open the other; give them different \
                         `service` names (or the same one in both, if that is what you mean)",
                        a.method, a.path, b.method, b.path
                    )));
                }
            }
        }
        Ok(())
    }
}

impl RouteConfig {
    /// The macaroon service name: `service`, or the path with `/` turned
    /// into `-` (`/v1/demo` -> `v1-demo`; `/` -> `root`).
    pub fn service_name(&self) -> String {
        if let Some(s) = &self.service {
            return s.clone();
        }
        let s = self.path.trim_matches('/').replace('/', "-");
        if s.is_empty() { "root".to_string() } else { s }
    }

    /// Seconds a token for this route stays valid.
    pub fn valid_for(&self) -> u64 {
        self.valid_for_secs.unwrap_or(match self.token {
            TokenPolicy::Reusable => DEFAULT_REUSABLE_VALID_FOR_SECS,
            TokenPolicy::SingleUse => DEFAULT_SINGLE_USE_VALID_FOR_SECS,
        })
    }

    /// True when `method` and `path` fall under this route.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self.method == "ANY" || self.method.eq_ignore_ascii_case(method);
        method_ok && self.matches_path(path)
    }

    /// True when `path` falls under this route, whatever the method.
    pub fn matches_path(&self, path: &str) -> bool {
        match self.path_match {
            PathMatch::Exact => path == self.path,
            PathMatch::Prefix => {
                let base = self.path.trim_end_matches('/');
                path == self.path
                    || base.is_empty()
                    || path
                        .strip_prefix(base)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

/// RFC 9110 token characters, for method names.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid() {
        GatewayConfig::demo().validate().unwrap();
    }

    #[test]
    fn empty_file_gets_demo_routes() {
        let c = GatewayConfig::from_toml("").unwrap();
        assert_eq!(c.routes.len(), 6);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn prefix_matches_subtree_only() {
        let c = GatewayConfig::from_toml(
            "[[routes]]\npath = \"/v1\"\nmatch = \"prefix\"\nprice_sats = 5\nupstream = \"http://127.0.0.1:9\"\n",
        )
        .unwrap();
        let r = &c.routes[0];
        assert!(r.matches("GET", "/v1"));
        assert!(r.matches("POST", "/v1/x/y"));
        assert!(!r.matches("GET", "/v1x"));
        assert_eq!(r.service_name(), "v1");
    }

    #[test]
    fn workers_default_to_one_per_cpu_and_zero_is_refused() {
        let c = GatewayConfig::from_toml("").unwrap();
        assert_eq!(
            c.limits.workers(),
            std::thread::available_parallelism().unwrap()
        );
        let c = GatewayConfig::from_toml("[limits]\nworkers = 3\n").unwrap();
        assert_eq!(c.limits.workers().get(), 3);
        let err = GatewayConfig::from_toml("[limits]\nworkers = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("limits.workers must be between 1 and 1024"),
            "{err}"
        );
    }

    #[test]
    fn contradictions_are_refused_with_a_sentence() {
        let cases = [
            (
                "[[routes]]\npath = \"/a\"\nprice_sats = 5\n",
                "set demo or upstream",
            ),
            (
                "[[routes]]\npath = \"/a\"\nfree = true\nprice_sats = 5\ndemo = \"demo\"\n",
                "a free route has no price",
            ),
            (
                "[[routes]]\npath = \"/a\"\ndemo = \"demo\"\n",
                "set price_sats, or free = true",
            ),
            (
                "[[routes]]\npath = \"a\"\nprice_sats = 1\ndemo = \"demo\"\n",
                "path must start with '/'",
            ),
            (
                "[[routes]]\npath = \"/a\"\nprice_sats = 1\nupstream = \"ftp://x\"\n",
                "is not an http(s) URL",
            ),
            (
                "[[routes]]\npath = \"/a\"\nprice_sats = 1\ndemo = \"demo\"\nservice = \"a,b\"\n",
                "may use only letters",
            ),
        ];
        for (text, want) in cases {
            let err = GatewayConfig::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn routes_whose_derived_service_names_collide_are_refused() {
        let up = "upstream = \"http://127.0.0.1:9\"";
        for text in [
            format!(
                "[[routes]]\npath = \"/a/b\"\nprice_sats = 1\n{up}\n\
                 [[routes]]\npath = \"/a-b\"\nprice_sats = 1000\n{up}\n"
            ),
            format!(
                "[[routes]]\npath = \"/x\"\nmethod = \"GET\"\nprice_sats = 1\n{up}\n\
                 [[routes]]\npath = \"/x\"\nmethod = \"POST\"\nprice_sats = 1000\n{up}\n"
            ),
            format!(
                "[[routes]]\npath = \"/wx\"\nprice_sats = 1\n{up}\n\
                 [[routes]]\npath = \"/weather\"\nservice = \"wx\"\nprice_sats = 1000\n{up}\n"
            ),
        ] {
            let err = GatewayConfig::from_toml(&text).unwrap_err();
            let ConfigError::Invalid(sentence) = &err else {
                panic!("{text}: {err:?}");
            };
            assert!(
                sentence.contains("both have the service name"),
                "{sentence}"
            );
        }
        let err = GatewayConfig::from_toml(&format!(
            "[[routes]]\npath = \"/a/b\"\nprice_sats = 1\n{up}\n\
             [[routes]]\npath = \"/a-b\"\nprice_sats = 1000\n{up}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ANY /a/b") && err.contains("ANY /a-b") && err.contains("\"a-b\""),
            "{err}"
        );
        // The same name given explicitly to both is the operator's choice,
        // and a free route mints no token.
        GatewayConfig::from_toml(&format!(
            "[[routes]]\npath = \"/wx/basic\"\nservice = \"wx\"\nprice_sats = 1\n{up}\n\
             [[routes]]\npath = \"/wx/premium\"\nservice = \"wx\"\ncapability = \"premium\"\n\
             price_sats = 500\n{up}\n\
             [[routes]]\npath = \"/a/b\"\nfree = true\n{up}\n\
             [[routes]]\npath = \"/a-b\"\nprice_sats = 1000\n{up}\n"
        ))
        .unwrap();
    }

    #[test]
    fn a_missing_config_file_is_one_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let err = GatewayConfig::from_file(&path).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { .. }), "{err:?}");
        assert!(std::error::Error::source(&err).is_none());
        let text = err.to_string();
        assert!(text.contains("does not exist"), "{text}");
        assert!(!text.contains("os error"), "{text}");
    }

    #[test]
    fn the_route_scheme_defaults_to_l402_and_an_unknown_one_is_a_sentence() {
        let route = |extra: &str| {
            format!("[[routes]]\npath = \"/a\"\nprice_sats = 5\ndemo = \"demo\"\n{extra}\n")
        };
        let c = GatewayConfig::from_toml(&route("")).unwrap();
        assert_eq!(c.routes[0].scheme, AuthScheme::L402);
        for (text, want) in [
            ("l402", AuthScheme::L402),
            ("payment", AuthScheme::Payment),
            ("both", AuthScheme::Both),
        ] {
            let c = GatewayConfig::from_toml(&route(&format!("scheme = \"{text}\""))).unwrap();
            assert_eq!(c.routes[0].scheme, want);
            assert_eq!(want.as_str(), text);
        }
        assert!(AuthScheme::Both.takes_l402() && AuthScheme::Both.takes_payment());
        assert!(!AuthScheme::Payment.takes_l402() && !AuthScheme::L402.takes_payment());
        for bad in ["mpp", "Payment", "l402+mpp", ""] {
            let err = GatewayConfig::from_toml(&route(&format!("scheme = \"{bad}\"")))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("route scheme {bad:?} is not one of"))
                    && err.contains("\"payment\""),
                "{bad}: {err}"
            );
        }
        let err = GatewayConfig::from_toml(
            "[[routes]]\npath = \"/a\"\nfree = true\ndemo = \"demo\"\nscheme = \"payment\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a free route takes no credential"), "{err}");
    }

    #[test]
    fn the_replica_settings_parse_and_a_key_path_is_relative_to_the_file() {
        let c = GatewayConfig::from_toml("").unwrap();
        assert!(matches!(c.spent_set, SpentSetBackend::Local));
        assert!(c.root_key_file.is_none());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(
            &path,
            "root_key_file = \"keys/root\"\nspent_set = \"redis://:pw@10.0.0.5:6379/3\"\n",
        )
        .unwrap();
        let c = GatewayConfig::from_file(&path).unwrap();
        assert_eq!(c.root_key_file, Some(dir.path().join("keys/root")));
        assert_eq!(c.spent_set.to_string(), "redis://:***@10.0.0.5:6379/3");
        std::fs::write(
            &path,
            "root_key_file = \"/etc/l402/root\"\nspent_set = \"local\"\n",
        )
        .unwrap();
        let c = GatewayConfig::from_file(&path).unwrap();
        assert_eq!(
            c.root_key_file.as_deref(),
            Some(Path::new("/etc/l402/root"))
        );
        assert!(matches!(c.spent_set, SpentSetBackend::Local));

        let err = GatewayConfig::from_toml("spent_set = \"rediss://h:6380\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("asks for TLS"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = GatewayConfig::from_toml("lisen = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    }
}

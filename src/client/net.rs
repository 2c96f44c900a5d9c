//! Where the client may connect: the URL and address policy against SSRF.
//!
//! An agent chooses the URLs; the operator chooses where they may lead. Only
//! `http` and `https` are fetched, and loopback, private, link-local,
//! shared, multicast and cloud-metadata addresses are refused unless the
//! operator allowed private addresses (metadata addresses never). The check
//! is made on the address actually connected to: host names are resolved by
//! [`PolicyResolver`], which reqwest calls at connect time, so there is no
//! gap between a check and a second lookup. IP literals never reach a
//! resolver, so [`check_url`] checks them before any request.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a URL or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlPolicyError {
    /// Not http or https.
    #[error("only http and https URLs can be fetched, not {0}:")]
    Scheme(String),
    /// No host, or a URL that does not parse.
    #[error("{0}")]
    Invalid(String),
    /// The address is of a refused kind.
    #[error("{host} is {kind} address {addr}; fetching it is refused{hint}")]
    Forbidden {
        /// The host as written in the URL.
        host: String,
        /// The address it is, or resolved to.
        addr: IpAddr,
        /// "a loopback", "a private", ...
        kind: &'static str,
        /// How to allow it, where the operator can (empty, or a
        /// parenthesis starting with a space).
        hint: String,
    },
    /// A path under `/dev/` while a dev node is configured: the dev node's
    /// own routes settle invoices, and reaching them would pay without any
    /// of the checks.
    #[error(
        "{url} is under /dev/, the dev node's own payment routes; an agent's fetch never \
         reaches them (a payment there would skip every check)"
    )]
    DevRoute {
        /// The URL refused.
        url: String,
    },
}

/// What kind of address this is, when it is one the client refuses by
/// default, and whether `--allow-private` may lift the refusal.
pub fn classify(ip: IpAddr) -> Option<(&'static str, bool)> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible forms reach
            // the IPv4 address: judge that.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let seg = v6.segments();
            if v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
                return Some(("a cloud metadata", false));
            }
            if v6.is_loopback() {
                return Some(("a loopback", true));
            }
            if v6.is_unspecified() {
                return Some(("an unspecified", true));
            }
            if v6.is_multicast() {
                return Some(("a multicast", false));
            }
            if seg[0] & 0xfe00 == 0xfc00 {
                return Some(("a unique-local (private)", true));
            }
            if seg[0] & 0xffc0 == 0xfe80 || seg[0] & 0xffc0 == 0xfec0 {
                return Some(("a link-local", true));
            }
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an IPv4 address.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                return classify_v4(v4_from(seg[6], seg[7]));
            }
            if seg[0] == 0x2002 {
                return classify_v4(v4_from(seg[1], seg[2]));
            }
            if seg[0..6] == [0, 0, 0, 0, 0, 0] {
                // Deprecated IPv4-compatible ::a.b.c.d.
                return classify_v4(v4_from(seg[6], seg[7]));
            }
            None
        }
    }
}

/// The IPv4 address held in two IPv6 segments.
fn v4_from(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

fn classify_v4(v4: Ipv4Addr) -> Option<(&'static str, bool)> {
    let o = v4.octets();
    // Cloud metadata: AWS/GCP/Azure/OpenStack, Alibaba, Oracle's alias.
    if v4 == Ipv4Addr::new(169, 254, 169, 254)
        || v4 == Ipv4Addr::new(169, 254, 170, 2)
        || v4 == Ipv4Addr::new(100, 100, 100, 200)
        || v4 == Ipv4Addr::new(192, 0, 0, 192)
    {
        return Some(("a cloud metadata", false));
    }
    if v4.is_loopback() {
        return Some(("a loopback", true));
    }
    if v4.is_unspecified() || o[0] == 0 {
        return Some(("an unspecified (0.0.0.0/8)", true));
    }
    if v4.is_private() {
        return Some(("a private", true));
    }
    if v4.is_link_local() {
        return Some(("a link-local", true));
    }
    if o[0] == 100 && (o[1] & 0xc0) == 64 {
        return Some(("a shared (carrier-grade NAT)", true));
    }
    if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        return Some(("an IETF protocol", true));
    }
    if o[0] == 198 && (o[1] & 0xfe) == 18 {
        return Some(("a benchmarking", true));
    }
    if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
        return Some(("a multicast or reserved", false));
    }
    None
}

/// The operator's address policy.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Private, loopback and link-local addresses are allowed
    /// (`--allow-private`). Metadata addresses stay refused.
    pub allow_private: bool,
    /// Origins allowed whatever their address (the dev node's own), as
    /// `scheme://host:port`.
    pub allowed_origins: HashSet<String>,
}

impl AddressPolicy {
    /// The refusal for `addr` reached through `host`, if any.
    pub fn check_addr(&self, host: &str, addr: IpAddr) -> Result<(), UrlPolicyError> {
        match classify(addr) {
            None => Ok(()),
            Some((_, true)) if self.allow_private => Ok(()),
            Some((kind, liftable)) => Err(UrlPolicyError::Forbidden {
                host: host.to_string(),
                addr,
                kind,
                hint: self.hint(liftable),
            }),
        }
    }

    /// How the operator can lift a refusal. With a dev node, a refused
    /// loopback URL is most often a port typo: name the one origin that is
    /// allowed.
    fn hint(&self, liftable: bool) -> String {
        if !liftable {
            return String::new();
        }
        let mut exempt: Vec<&str> = self.allowed_origins.iter().map(String::as_str).collect();
        exempt.sort_unstable();
        if exempt.is_empty() {
            " (the operator can allow private addresses with --allow-private)".to_string()
        } else {
            format!(
                " (of the private and loopback addresses only the dev node's origin {} is \
                 allowed; check the port, or the operator can allow all private addresses \
                 with --allow-private)",
                exempt.join(", ")
            )
        }
    }

    /// True when `url`'s origin is exempt from address checks.
    pub fn origin_allowed(&self, url: &Url) -> bool {
        !self.allowed_origins.is_empty() && self.allowed_origins.contains(&origin_string(url))
    }
}

/// `scheme://host:port` with the default port made explicit.
pub fn origin_string(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// Checks what can be checked before connecting: the scheme, the host, an
/// IP-literal host's address, and (with a dev node) that the path is not
/// one of the dev node's own routes.
pub fn check_url(policy: &AddressPolicy, url: &Url) -> Result<(), UrlPolicyError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlPolicyError::Scheme(url.scheme().to_string()));
    }
    let Some(host) = url.host() else {
        return Err(UrlPolicyError::Invalid(format!("{url} has no host")));
    };
    // The exempt origins are the dev node's. Its `/dev/` routes pay
    // invoices; whatever origin an agent names (the dev node's, or another
    // spelling of it: localhost, 0.0.0.0, a name with --allow-private), a
    // path that a server could read as `/dev/...` is never fetched.
    if !policy.allowed_origins.is_empty() && is_dev_path(url.path()) {
        return Err(UrlPolicyError::DevRoute {
            url: url.to_string(),
        });
    }
    if policy.origin_allowed(url) {
        return Ok(());
    }
    let host_str = url.host_str().unwrap_or("");
    match host {
        url::Host::Ipv4(v4) => policy.check_addr(host_str, IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => policy.check_addr(host_str, IpAddr::V6(v6)),
        url::Host::Domain(_) => Ok(()),
    }
}

/// True when a server could read `path` as one under `/dev`: after one
/// round of percent-decoding (`%2f`, `%2e`, `%5c`), with backslashes as
/// slashes, dot segments resolved and empty segments dropped, the first
/// segment is `dev` (in any case).
pub fn is_dev_path(path: &str) -> bool {
    let decoded: Vec<u8> = percent_decode(path.as_bytes());
    let decoded = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments
        .first()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("dev"))
}

/// `%XX` escapes decoded once; anything else kept as it is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && let Some(hex) = input.get(i + 1..i + 3)
            && let Ok(s) = std::str::from_utf8(hex)
            && let Ok(b) = u8::from_str_radix(s, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// A reqwest resolver that resolves with the system resolver and refuses
/// (as a connect error) any name whose addresses include a refused one, so
/// the address checked is the address connected to.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: Arc<AddressPolicy>,
}

impl PolicyResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        PolicyResolver { policy }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?
                .collect();
            // Refuse the name if any address is refused: a name that
            // resolves to both a public and a private address could
            // otherwise be steered to the private one.
            for addr in &addrs {
                policy
                    .check_addr(&host, addr.ip())
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            }
            let out: Addrs = Box::new(addrs.into_iter());
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        let url = Url::parse(url).unwrap();
        check_url(&AddressPolicy::default(), &url).is_err()
    }

    #[test]
    fn loopback_private_and_metadata_spellings_are_refused() {
        for u in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
            "http://0.0.0.0/",
            "http://0/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.100.100.200/",
            "http://100.64.0.1/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://[fc00::1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://[::127.0.0.1]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            assert!(refused(u), "{u} should be refused");
        }
    }

    #[test]
    fn public_addresses_and_names_pass_the_pre_check() {
        for u in [
            "http://1.1.1.1/",
            "https://example.com/x",
            "http://[2606:4700::1111]/",
        ] {
            assert!(!refused(u), "{u}");
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        for u in [
            "file:///etc/passwd",
            "ftp://example.com/",
            "gopher://x/",
            "data:text/plain,x",
        ] {
            let url = Url::parse(u).unwrap();
            assert!(matches!(
                check_url(&AddressPolicy::default(), &url),
                Err(UrlPolicyError::Scheme(_))
            ));
        }
    }

    #[test]
    fn allow_private_lifts_all_but_metadata() {
        let policy = AddressPolicy {
            allow_private: true,
            ..Default::default()
        };
        let ok = |u: &str| check_url(&policy, &Url::parse(u).unwrap()).is_ok();
        assert!(ok("http://127.0.0.1:8402/"));
        assert!(ok("http://10.1.2.3/"));
        assert!(!ok("http://169.254.169.254/"));
        assert!(!ok("http://[fd00:ec2::254]/"));
    }

    #[test]
    fn allowed_origin_is_exact() {
        let mut policy = AddressPolicy::default();
        policy
            .allowed_origins
            .insert("http://127.0.0.1:8402".into());
        let ok = |u: &str| check_url(&policy, &Url::parse(u).unwrap()).is_ok();
        assert!(ok("http://127.0.0.1:8402/v1/demo"));
        assert!(!ok("http://127.0.0.1:8403/"));
        assert!(!ok("https://127.0.0.1:8402/"));
    }

    #[test]
    fn dev_node_routes_are_refused_in_every_spelling() {
        let mut policy = AddressPolicy {
            allow_private: true,
            ..Default::default()
        };
        policy
            .allowed_origins
            .insert("http://127.0.0.1:8402".into());
        let refused = |u: &str| {
            matches!(
                check_url(&policy, &Url::parse(u).unwrap()),
                Err(UrlPolicyError::DevRoute { .. })
            )
        };
        for u in [
            "http://127.0.0.1:8402/dev/pay",
            "http://127.0.0.1:8402/dev",
            "http://127.0.0.1:8402/DEV/pay",
            "http://127.0.0.1:8402/v1/../dev/pay",
            "http://127.0.0.1:8402/v1/%2e%2e/dev/pay",
            "http://127.0.0.1:8402/v1/..%2fdev/pay",
            "http://127.0.0.1:8402/%64ev/pay",
            "http://127.0.0.1:8402//dev/pay",
            "http://127.0.0.1:8402/dev%2fpay",
            "http://127.0.0.1:8402/v1\\..\\dev/pay",
            "http://127.0.0.1:8402/dev/payments/00",
            "http://localhost:8402/dev/pay",
            "http://0.0.0.0:8402/dev/pay",
        ] {
            assert!(refused(u), "{u} should be refused");
        }
        for u in [
            "http://127.0.0.1:8402/v1/demo",
            "http://127.0.0.1:8402/devices",
            "http://127.0.0.1:8402/v1/dev/x",
        ] {
            assert!(!refused(u), "{u} is not a dev route");
        }
        // Without a dev node, /dev/ is an ordinary path.
        let plain = AddressPolicy::default();
        assert!(check_url(&plain, &Url::parse("https://example.com/dev/pay").unwrap()).is_ok());
    }

    #[test]
    fn a_refused_loopback_port_names_the_dev_node_origin() {
        let mut policy = AddressPolicy::default();
        policy
            .allowed_origins
            .insert("http://127.0.0.1:8402".into());
        let err = check_url(
            &policy,
            &Url::parse("http://127.0.0.1:8420/v1/demo").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("only the dev node's origin http://127.0.0.1:8402"),
            "{err}"
        );
        assert!(err.contains("--allow-private"), "{err}");
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_to_loopback() {
        let r = PolicyResolver::new(Arc::new(AddressPolicy::default()));
        let err = r.resolve("localhost".parse().unwrap()).await.err().unwrap();
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}

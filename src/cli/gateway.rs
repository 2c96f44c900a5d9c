//! `l402-mcp gateway`: the L402 gateway, invoicing through its embedded
//! dev node or through an lnd node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use l402_mcp::gateway::{self, Gateway, GatewayConfig};
use l402_mcp::l402::RootKey;
use l402_mcp::lightning::dev::{self, DevNode};
use l402_mcp::lightning::lnd::DEFAULT_PAYMENT_TIMEOUT;
use l402_mcp::lightning::{Invoicer, Network};

use super::EXIT_OK;
use super::settings::{
    self, FlagSet, LndParts, LndSettings, Meta, Overrides, SettingFlags, SettingsError,
    resolve_one, spec,
};
use super::stderr::say_err;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on [default: 127.0.0.1:8402, or the config's `listen`]
    /// [env: L402_GATEWAY_LISTEN].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Serve Prometheus metrics at GET /metrics on this address, a listener
    /// of their own for the operator [default: off, or the config's `metrics`]
    /// [env: L402_GATEWAY_METRICS].
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,

    /// Serve the metrics on an address that is not loopback. They show what
    /// every route sells and earns: for a network only your monitoring reaches.
    #[arg(long)]
    metrics_public: bool,

    /// Gateway configuration (TOML): routes, prices, limits. Without it the
    /// demo routes are served [env: L402_GATEWAY_CONFIG].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Where the root key and the local spent-set live [default: the
    /// platform data dir, e.g. ~/.local/share/l402-mcp] [env: L402_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// The root key file every replica shares: 64 hex digits, mode 0600,
    /// never created (`(umask 077; openssl rand -hex 32 > FILE)`) [default:
    /// the config's `root_key_file`, else `gateway-root-key` in the data
    /// dir, created on first start]. Or give the key itself in
    /// L402_GATEWAY_ROOT_KEY (64 hex digits) [env: L402_GATEWAY_ROOT_KEY_FILE].
    #[arg(long, value_name = "FILE")]
    root_key_file: Option<PathBuf>,

    /// Where single-use tokens are remembered: `local` (a file in the data
    /// dir) or `redis://host[:port][/db]`, one Redis shared by every
    /// replica [default: the config's `spent_set`, else local]
    /// [env: L402_GATEWAY_SPENT_SET].
    #[arg(long, value_name = "local|URL")]
    spent_set: Option<String>,

    // --lnd-host, --lnd-tls-cert, --lnd-macaroon, --network: the client's
    // settings, resolved (env, then flag) and parsed as the client's are.
    #[command(flatten)]
    lnd: SettingFlags<GatewayLnd>,

    /// Serve the dev node's POST /dev/pay on a listener that is not
    /// loopback. Anyone who reaches it can then settle any invoice for
    /// free and unlock every route: for a shared test network only.
    #[arg(long)]
    dev_node_public: bool,
}

/// The gateway's lnd flags: the client's settings, in the gateway's words.
#[derive(Debug, Clone, Copy, Default)]
struct GatewayLnd;

impl FlagSet for GatewayLnd {
    fn has(meta: &Meta) -> bool {
        [
            &spec::lnd_host.meta,
            &spec::lnd_tls_cert.meta,
            &spec::lnd_macaroon.meta,
            &spec::network.meta,
        ]
        .iter()
        .any(|m| m.key == meta.key)
    }

    fn help(meta: &Meta) -> Option<&'static str> {
        Some(match meta.key {
            "lnd_host" => {
                "Invoice through this lnd node's gRPC, host:port, instead of the embedded dev \
                 node (whose /dev routes are then not served); needs --lnd-tls-cert and \
                 --lnd-macaroon."
            }
            "lnd_tls_cert" => "lnd's tls.cert, pinned: a path, or the PEM text, hex or base64.",
            "lnd_macaroon" => {
                "The lnd macaroon (invoice-only: see the README): a path, or hex or base64."
            }
            "network" => {
                "The network the lnd node must be on (mainnet, testnet, signet, regtest), \
                 checked at start [default: the node's own]."
            }
            _ => return None,
        })
    }
}

impl GatewayArgs {
    /// The lnd settings, when lnd is configured; an error when it is only
    /// partly configured.
    fn lnd(&self) -> anyhow::Result<Option<LndSettings>> {
        Ok(lnd_settings(&settings::process_env, &self.lnd.overrides())?)
    }
}

/// The gateway's lnd settings from the environment and its flags (no
/// config file: the gateway's is its own), parsed as the client's are. The
/// gateway's own rules: all three connection settings or none (the error
/// names the missing one); the network optional (the invoices name theirs,
/// and the banner says it); without lnd, a network other than regtest is
/// only a warning (maybe the client's L402_NETWORK in a shared
/// environment), for the dev node is what runs.
fn lnd_settings(
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Overrides,
) -> Result<Option<LndSettings>, SettingsError> {
    let host = resolve_one(&spec::lnd_host, env, flags.lnd_host.as_deref())?;
    let tls_cert = resolve_one(&spec::lnd_tls_cert, env, flags.lnd_tls_cert.as_deref())?;
    let macaroon = resolve_one(&spec::lnd_macaroon, env, flags.lnd_macaroon.as_deref())?;
    let network = resolve_one(&spec::network, env, flags.network.as_deref())?;
    let parts = LndParts {
        host: &host,
        tls_cert: &tls_cert,
        macaroon: &macaroon,
    };
    if let Some((given, source, missing)) = parts.gap() {
        return Err(SettingsError::Invalid(format!(
            "lnd is partly configured: {} is set ({source}) but {} is not (flag {}, env {}); \
             invoicing through lnd needs --lnd-host, --lnd-tls-cert and --lnd-macaroon",
            given.key,
            missing.key,
            missing.flag_name(),
            missing.env,
        )));
    }
    if parts.given().is_none() {
        if let Some(n) = network.value
            && n != Network::Regtest
        {
            tracing::warn!(
                network = %n,
                source = %network.source,
                "no lnd node is configured: the gateway invoices on its dev node, regtest only"
            );
        }
        return Ok(None);
    }
    Ok(parts.complete(network.value))
}

/// The flag, else the variable `var` (empty or blank: unset, as an MCP
/// Bundle host passes a field left blank), parsed; a value that does not
/// parse names where it came from.
fn flag_or_env<T>(flag: Option<T>, var: &str) -> anyhow::Result<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    if flag.is_some() {
        return Ok(flag);
    }
    settings::process_env(var)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{var} is unusable: {e}"))
        })
        .transpose()
}

/// The flags, with the variables read in for the ones not given.
fn with_env(mut args: GatewayArgs) -> anyhow::Result<GatewayArgs> {
    args.listen = flag_or_env(args.listen, "L402_GATEWAY_LISTEN")?;
    args.metrics = flag_or_env(args.metrics, "L402_GATEWAY_METRICS")?;
    args.config = flag_or_env(args.config, "L402_GATEWAY_CONFIG")?;
    args.data_dir = flag_or_env(args.data_dir, "L402_DATA_DIR")?;
    args.root_key_file = flag_or_env(args.root_key_file, "L402_GATEWAY_ROOT_KEY_FILE")?;
    args.spent_set = flag_or_env(args.spent_set, "L402_GATEWAY_SPENT_SET")?;
    Ok(args)
}

pub async fn run(args: GatewayArgs) -> anyhow::Result<u8> {
    let args = with_env(args)?;
    let lnd = args.lnd()?;
    let mut config = match &args.config {
        Some(path) => GatewayConfig::from_file(path)?,
        None => GatewayConfig::demo(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(metrics) = args.metrics {
        config.metrics = Some(metrics);
    }
    if let Some(metrics) = config.metrics {
        gateway::check_metrics_address(metrics, config.listen, args.metrics_public)?;
    }
    if let Some(spent_set) = &args.spent_set {
        config.spent_set = spent_set
            .parse()
            .with_context(|| "--spent-set (or L402_GATEWAY_SPENT_SET) is unusable")?;
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(gateway::default_data_dir);
    let env_key = settings::process_env(gateway::ROOT_KEY_ENV);
    let (root_key, key_from) = root_key(&args, &config, env_key.as_deref(), &data_dir)?;

    // The invoicer: lnd when configured (checked with GetInfo), else the
    // embedded dev node, whose settlement routes are then served too.
    let mut lnd_network = None;
    let (invoicer, dev_node): (Arc<dyn Invoicer>, Option<Arc<DevNode>>) = match &lnd {
        Some(lnd) => {
            let node = super::connect_lnd(lnd, DEFAULT_PAYMENT_TIMEOUT)
                .await
                .map_err(|f| anyhow::anyhow!(f.message))?;
            lnd_network = Some(node.info().network);
            (Arc::new(node), None)
        }
        None => {
            let node = Arc::new(DevNode::new());
            (node.clone(), Some(node))
        }
    };
    let listen = config.listen;
    if dev_node.is_some() {
        check_dev_node_listener(listen, args.dev_node_public)?;
    }
    // Single-use tokens are remembered in the data directory (so that a
    // restart does not make a used one good again) or in the Redis every
    // replica shares.
    let spent_set = config.spent_set.clone();
    let spent = spent_set.open(&data_dir).await?;
    tracing::info!(root_key = %key_from, spent_set = %spent_set, "gateway state");
    let gw = Arc::new(Gateway::new(config, root_key, invoicer)?.with_spent_set(spent));
    let mut app = gw.clone().router();
    if let Some(node) = &dev_node {
        app = app.merge(dev::router(node.clone()));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let metrics = start_metrics(&gw).await?;
    print_banner(&gw, addr, lnd.as_ref().zip(lnd_network));
    if let Some((metrics_addr, _)) = &metrics {
        say_err!("  metrics (operator only): GET http://{metrics_addr}/metrics");
    }
    gateway::serve(listener, gw, app, super::shutdown_signal()).await?;
    if let Some((_, task)) = metrics {
        task.abort();
    }
    tracing::info!("gateway stopped");
    Ok(EXIT_OK)
}

/// Where the root key comes from, first given wins: the key itself in
/// L402_GATEWAY_ROOT_KEY, a key file (`--root-key-file`, its env, then the
/// config's `root_key_file`), the data directory's own key. The variable
/// and the flag (or its variable) together are refused: which one is
/// meant cannot be guessed, and replicas that guess differently refuse
/// each other's tokens. Returns the key and, for the log, where it came
/// from (never the key).
fn root_key(
    args: &GatewayArgs,
    config: &GatewayConfig,
    env_key: Option<&str>,
    data_dir: &std::path::Path,
) -> anyhow::Result<(RootKey, String)> {
    let var = gateway::ROOT_KEY_ENV;
    match (env_key, &args.root_key_file, &config.root_key_file) {
        (Some(_), Some(file), _) => anyhow::bail!(
            "the root key is given twice, in {var} and as the file {} (--root-key-file or \
             L402_GATEWAY_ROOT_KEY_FILE); keep one",
            file.display()
        ),
        (Some(hex), None, _) => Ok((
            gateway::root_key_from_env(var, hex)?,
            format!("the environment variable {var}"),
        )),
        (None, Some(file), _) | (None, None, Some(file)) => Ok((
            gateway::load_root_key_file(file)?,
            format!("the file {}", file.display()),
        )),
        (None, None, None) => Ok((
            gateway::load_or_create_root_key(data_dir)?,
            format!(
                "the file {}",
                data_dir.join(gateway::ROOT_KEY_FILE).display()
            ),
        )),
    }
}

/// Binds the metrics listener, when the configuration names one (checked
/// by [`gateway::check_metrics_address`]), and serves it until the returned
/// task is aborted.
async fn start_metrics(
    gw: &Gateway,
) -> anyhow::Result<Option<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)>> {
    let Some(addr) = gw.config().metrics else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            metrics = %bound,
            "the metrics, and every route's revenue, are served on a non-loopback address \
             (--metrics-public)"
        );
    }
    let app = gw.metrics_router();
    let task = tokio::spawn(gateway::serve_metrics(
        listener,
        app,
        std::future::pending(),
    ));
    Ok(Some((bound, task)))
}

/// The dev node settles any invoice for free over `POST /dev/pay` on the
/// gateway's own listener: on an address others can reach, that gives
/// everything away. Refused unless `--dev-node-public` says it is meant.
fn check_dev_node_listener(listen: SocketAddr, public_ok: bool) -> anyhow::Result<()> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    if !public_ok {
        anyhow::bail!(
            "refusing to serve the dev Lightning node on {listen}, which is not a loopback \
             address: anyone who can reach it could settle every invoice for free through \
             POST /dev/pay and unlock every route; invoice through lnd (--lnd-host, \
             --lnd-tls-cert, --lnd-macaroon), or listen on 127.0.0.1, or pass \
             --dev-node-public if a shared test network is what you want"
        );
    }
    tracing::warn!(
        %listen,
        "the dev node's POST /dev/pay is served on a non-loopback address \
         (--dev-node-public): anyone who reaches it can unlock every route for free"
    );
    Ok(())
}

fn print_banner(gw: &Gateway, addr: SocketAddr, lnd: Option<(&LndSettings, Network)>) {
    match lnd {
        Some((l, network)) => say_err!(
            "l402-mcp gateway listening on http://{addr} (invoices from lnd at {}, {network})",
            l.host
        ),
        None => {
            say_err!("l402-mcp gateway listening on http://{addr} (dev Lightning node, regtest)");
        }
    }
    if let gateway::SpentSetBackend::Redis(url) = &gw.config().spent_set {
        say_err!("  single-use tokens: shared in {url}");
    }
    for r in &gw.config().routes {
        let price = if r.free {
            "free".to_string()
        } else {
            format!("{} sats", r.price_sats)
        };
        say_err!("  {:<6} {:<20} {}", r.method, r.path, price);
    }
    if lnd.is_none() {
        say_err!(
            "  dev node: POST http://{addr}/dev/pay {{\"invoice\": \"lnbcrt...\"}} settles an invoice"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lnd_from(
        env: &[(&str, &str)],
        flags: Overrides,
    ) -> Result<Option<LndSettings>, SettingsError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|e| e.0 == k).map(|e| e.1.clone());
        lnd_settings(&lookup, &flags)
    }

    #[test]
    fn lnd_goes_through_the_client_resolver_with_the_gateways_rules() {
        // Nothing: the dev node. A non-regtest network alone only warns.
        assert_eq!(
            lnd_from(&[("L402_NETWORK", "mainnet")], Overrides::default()).unwrap(),
            None
        );
        // All three, no network: the node's own.
        let flags = Overrides {
            lnd_host: Some("127.0.0.1:10009".into()),
            lnd_tls_cert: Some("/etc/lnd/tls.cert".into()),
            ..Default::default()
        };
        let lnd = lnd_from(&[("L402_LND_MACAROON", "0201")], flags.clone())
            .unwrap()
            .unwrap();
        assert_eq!(lnd.host.to_string(), "127.0.0.1:10009");
        assert_eq!(lnd.network, None);
        // Partial: names the given part's source and the missing part.
        let e = lnd_from(&[], flags.clone()).unwrap_err().to_string();
        assert_eq!(
            e,
            "lnd is partly configured: lnd_host is set (flag --lnd-host) but lnd_macaroon is not \
             (flag --lnd-macaroon, env L402_LND_MACAROON); invoicing through lnd needs \
             --lnd-host, --lnd-tls-cert and --lnd-macaroon"
        );
        // Parsed as the client's: the sentence names the setting and its source.
        let e = lnd_from(&[("L402_NETWORK", "bitcoinz")], flags.clone())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("the environment variable L402_NETWORK=\"bitcoinz\" is not a network"),
            "{e}"
        );
        let bad_host = Overrides {
            lnd_host: Some("http://x:1".into()),
            ..flags
        };
        let e = lnd_from(&[], bad_host).unwrap_err().to_string();
        assert!(e.starts_with("lnd_host is unusable: "), "{e}");
        assert!(e.ends_with("(flag --lnd-host)"), "{e}");
    }

    #[test]
    fn the_dev_node_needs_the_flag_on_a_non_loopback_listener() {
        for loopback in ["127.0.0.1:8402", "127.0.0.2:1", "[::1]:8402"] {
            assert!(check_dev_node_listener(loopback.parse().unwrap(), false).is_ok());
        }
        for public in ["0.0.0.0:8402", "[::]:8402", "192.168.1.5:8402"] {
            let addr: SocketAddr = public.parse().unwrap();
            let err = check_dev_node_listener(addr, false)
                .unwrap_err()
                .to_string();
            assert!(err.contains("--dev-node-public"), "{err}");
            assert!(err.contains("lnd"), "{err}");
            assert!(check_dev_node_listener(addr, true).is_ok());
        }
    }
}

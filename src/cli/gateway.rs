//! `l402-mcp gateway`: the L402 gateway on its embedded dev node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use l402_mcp::gateway::{self, Gateway, GatewayConfig};
use l402_mcp::lightning::dev::{self, DevNode};

use super::EXIT_OK;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on [default: 127.0.0.1:8402, or the config's `listen`].
    #[arg(long, env = "L402_GATEWAY_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Gateway configuration (TOML): routes, prices, limits. Without it the
    /// demo routes are served.
    #[arg(long, env = "L402_GATEWAY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Where the root key lives [default: the platform data dir, e.g.
    /// ~/.local/share/l402-mcp].
    #[arg(long, env = "L402_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

pub async fn run(args: GatewayArgs) -> anyhow::Result<u8> {
    let mut config = match &args.config {
        Some(path) => GatewayConfig::from_file(path)?,
        None => GatewayConfig::demo(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let data_dir = args.data_dir.unwrap_or_else(gateway::default_data_dir);
    let root_key = gateway::load_or_create_root_key(&data_dir)?;

    let node = Arc::new(DevNode::new());
    let listen = config.listen;
    let gw = Arc::new(Gateway::new(config, root_key, node.clone())?);
    let app = gw.clone().router().merge(dev::router(node.clone()));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    print_banner(&gw, addr);
    gateway::serve(listener, gw, app, super::shutdown_signal()).await?;
    tracing::info!("gateway stopped");
    Ok(EXIT_OK)
}

fn print_banner(gw: &Gateway, addr: SocketAddr) {
    eprintln!("l402-mcp gateway listening on http://{addr} (dev Lightning node, regtest)");
    for r in &gw.config().routes {
        let price = if r.free {
            "free".to_string()
        } else {
            format!("{} sats", r.price_sats)
        };
        eprintln!("  {:<6} {:<20} {}", r.method, r.path, price);
    }
    eprintln!(
        "  dev node: POST http://{addr}/dev/pay {{\"invoice\": \"lnbcrt...\"}} settles an invoice"
    );
}

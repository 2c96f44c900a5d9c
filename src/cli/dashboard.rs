//! `l402-mcp dashboard`: the web page over the store (what the agents
//! spend, and the switch that stops them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use l402_mcp::client::L402Client;
use l402_mcp::dashboard::{DEFAULT_LISTEN, Dashboard, DashboardOptions};

use super::serve::{TokenSources, resolve_auth_token};
use super::settings::{self, SettingFlags};
use super::stderr::say_err;
use super::{ClientFlags, EXIT_OK, Failure, open_store};

/// The environment variable of the dashboard's token.
const TOKEN_ENV: &str = "L402_DASHBOARD_AUTH_TOKEN";
const TOKEN_FILE_ENV: &str = "L402_DASHBOARD_AUTH_TOKEN_FILE";

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Where to serve the page. Off loopback a token is required.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// The dashboard's token (at least 32 characters): a browser brings it
    /// once as http://ADDR/?token=TOKEN (then keeps a cookie), a script
    /// sends Authorization: Bearer TOKEN. Required off loopback. Prefer
    /// the environment (L402_DASHBOARD_AUTH_TOKEN) or --auth-token-file: a
    /// command line is visible to every user in `ps`.
    #[arg(long, value_name = "TOKEN", conflicts_with = "auth_token_file")]
    auth_token: Option<String>,

    /// Read the token from FILE (its first line; the file should be
    /// readable by you only).
    /// [env: L402_DASHBOARD_AUTH_TOKEN_FILE]
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,

    /// Also accept this Host header (a name or name:port; the loopback
    /// names are always accepted). Repeatable.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,

    /// Also accept requests, the pause switch's included, from this browser
    /// origin (scheme://host[:port]). Repeatable.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,

    // The limits only serve has (--max-cost, --server-budget), so that the
    // page shows what a server with these flags holds its agents to.
    #[command(flatten)]
    serve_flags: SettingFlags<settings::ServeSet>,

    #[command(flatten)]
    client: ClientFlags,
}

pub async fn run(args: DashboardArgs) -> Result<u8, Failure> {
    let settings = args.client.settings_with(&args.serve_flags.overrides())?;
    let store = open_store(&settings)?;
    // No payer: the dashboard never pays, and opens no session.
    let client = L402Client::for_reports(settings.client_config(), None, store)?;
    let dashboard = Arc::new(Dashboard::new(client));
    let options = DashboardOptions {
        auth_token: auth_token(&args)?,
        allowed_hosts: args.allowed_hosts.clone(),
        allowed_origins: args.allowed_origins.clone(),
    };
    if !args.listen.ip().is_loopback() && options.auth_token.is_none() {
        return Err(Failure::general(
            "config",
            format!(
                "{} is not a loopback address: set a token ({TOKEN_ENV} or --auth-token-file) \
                 so that only people holding it see the dashboard and its switch",
                args.listen
            ),
        ));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::general("io", format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::general("io", e.to_string()))?;
    say_err!(
        "l402-mcp dashboard at http://{local}/ (store {})",
        settings.store_path().display()
    );
    if options.auth_token.is_some() {
        say_err!(
            "  token required: open http://{local}/?token=<token> once (the browser then keeps a \
             cookie), or send Authorization: Bearer <token>"
        );
    }
    dashboard
        .serve(listener, &options, super::shutdown_signal())
        .await
        .map_err(|e| Failure::general("dashboard", e.to_string()))?;
    Ok(EXIT_OK)
}

/// The token: `--auth-token`, else `--auth-token-file` (or
/// `L402_DASHBOARD_AUTH_TOKEN_FILE`), else `L402_DASHBOARD_AUTH_TOKEN`;
/// refused when too short to be one; a variable set to "" is unset.
fn auth_token(args: &DashboardArgs) -> Result<Option<String>, Failure> {
    resolve_auth_token(
        TokenSources {
            flag: args.auth_token.as_deref(),
            file: args.auth_token_file.as_deref(),
            file_env: TOKEN_FILE_ENV,
            token_env: TOKEN_ENV,
            what: "dashboard token",
        },
        &|name| std::env::var(name).ok(),
    )
}

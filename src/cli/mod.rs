//! Command-line entry: flags, logging, and one function per command.
//!
//! Every command returns an exit code or a [`Failure`]; `main` prints the
//! failure as one `error:` sentence on stderr (and, with `--json`, as
//! `{"error": {"kind", "message", "exit_code"}}` on stdout). The exit codes
//! are lnget's: 0 success, 1 a general error (including a final non-2xx
//! response), 2 refused by a check, 3 payment failed, 4 network error.

mod config;
mod dashboard;
mod demo;
mod fetch;
mod gateway;
mod output;
mod pause;
mod serve;
pub mod settings;
mod spend;
mod stderr;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use l402_mcp::client::{ClientConfig, FetchError, L402Client};
use std::time::Duration;

use l402_mcp::client::Store;
use l402_mcp::lightning::Payer;
use l402_mcp::lightning::dev::DevPayer;
use l402_mcp::lightning::lnd::{
    CredentialError, LndConfig, LndError, LndMacaroon, LndNode, PAYMENT_TIMEOUT_MARGIN, TlsCert,
};
use l402_mcp::lightning::nwc::{NwcPayer, NwcPayerError, NwcTimeouts};

use settings::{LndSettings, Overrides, PayerChoice, SettingFlags, Settings, SettingsError};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a general error (bad flags, bad config, I/O, a non-2xx answer).
pub const EXIT_ERROR: u8 = l402_mcp::client::EXIT_GENERAL;

#[derive(Debug, Parser)]
#[command(
    name = "l402-mcp",
    version,
    about = "Let AI agents pay for HTTP APIs over Bitcoin Lightning (L402), within limits you set.",
    propagate_version = true
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    /// RUST_LOG, when set, wins.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Only errors on stderr: no receipt, progress or notes.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch a URL, paying its L402 invoice if every check passes.
    Fetch(fetch::FetchArgs),
    /// What fetching a URL would cost and what every check says; pays nothing.
    Preview(fetch::PreviewArgs),
    /// The L402 tokens bought: list, show, remove, clear.
    Tokens(tokens::TokensArgs),
    /// What a session has spent and has left, and all-time spend per origin.
    Spend(spend::SpendArgs),
    /// Pause every payment of every agent sharing the store (the kill
    /// switch): no payment starts until `resume`. Tokens bought before
    /// keep working.
    Pause(pause::PauseArgs),
    /// Lift the pause: payments go on.
    Resume(pause::ResumeArgs),
    /// The client settings: show (with sources), path, init.
    Config(config::ConfigArgs),
    /// Run the L402 gateway: sell access to demo endpoints or an upstream API.
    Gateway(gateway::GatewayArgs),
    /// Run the MCP server (stdio, or HTTP with --http): the tools l402_fetch,
    /// preview_cost, list_tokens, spend_summary.
    Serve(serve::ServeArgs),
    /// See it work with no node: a gateway on its dev node, an agent paying
    /// it through MCP, then the snippets to register `serve` in your client.
    Demo(demo::DemoArgs),
    /// A web page over the store: what the agents spend, live, and the
    /// switch that pauses every payment.
    Dashboard(dashboard::DashboardArgs),
}

/// The settings every client command takes: where the config file is, and
/// the operator's limits and payer (their flags come from the settings'
/// declarations).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Settings (flags beat env beat config file)")]
pub struct ClientFlags {
    /// Client config file, TOML [env: L402_CONFIG] [default:
    /// ~/.config/l402-mcp/config.toml, the platform config dir].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    flags: SettingFlags<settings::ClientSet>,
}

impl ClientFlags {
    /// The effective settings: file, env, then these flags.
    pub fn settings(&self) -> Result<Settings, Failure> {
        self.settings_with(&Overrides::default())
    }

    /// The effective settings: file, env, then these flags and `more` (a
    /// command's own setting flags, which win).
    pub fn settings_with(&self, more: &Overrides) -> Result<Settings, Failure> {
        let overrides = self.flags.overrides().and(more);
        Ok(Settings::resolve(
            self.config.as_deref(),
            &settings::process_env,
            &overrides,
        )?)
    }
}

/// The settings of commands that only read the store.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Settings")]
pub struct StoreFlags {
    /// Client config file, TOML [env: L402_CONFIG].
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    #[command(flatten)]
    flags: SettingFlags<settings::StoreSet>,
}

impl StoreFlags {
    /// The effective settings: file, env, then these flags.
    pub fn settings(&self) -> Result<Settings, Failure> {
        Ok(Settings::resolve(
            self.config.as_deref(),
            &settings::process_env,
            &self.flags.overrides(),
        )?)
    }
}

/// What a command prints and exits with when it fails.
#[derive(Debug)]
pub struct Failure {
    /// A short machine name (`FetchError::kind`, or `config`, `io`, ...).
    pub kind: &'static str,
    /// One sentence.
    pub message: String,
    /// The exit code.
    pub code: u8,
}

impl Failure {
    /// A general error (exit 1).
    pub fn general(kind: &'static str, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            code: EXIT_ERROR,
        }
    }
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Self {
        Failure {
            kind: e.kind(),
            message: e.to_string(),
            code: e.exit_code(),
        }
    }
}

impl From<SettingsError> for Failure {
    fn from(e: SettingsError) -> Self {
        Failure::general("config", e.to_string())
    }
}

impl From<l402_mcp::client::StoreError> for Failure {
    fn from(e: l402_mcp::client::StoreError) -> Self {
        Failure::general("store", format!("token store: {e}"))
    }
}

/// Opens the token store the settings name.
pub fn open_store(settings: &Settings) -> Result<Arc<Store>, Failure> {
    let path = settings.store_path();
    Store::open(&path).map(Arc::new).map_err(Failure::from)
}

/// The payer the settings choose; a clear error when there is none. An lnd
/// payer is connected here, and refused when its node is on another
/// network than the configured one.
pub async fn make_payer(settings: &Settings) -> Result<Arc<dyn Payer>, Failure> {
    // The backend (lnd, or the wallet) gives up a little before the client
    // stops waiting, so that its own answer arrives in time.
    let backend_payment_timeout = Duration::from_secs(settings.payment_timeout_secs.value)
        .saturating_sub(PAYMENT_TIMEOUT_MARGIN)
        .max(Duration::from_secs(1));
    match settings.payer() {
        Some(PayerChoice::Dev { node }) => DevPayer::new(node.as_str())
            .map(|p| Arc::new(p) as Arc<dyn Payer>)
            .map_err(|e| Failure::general("config", e.to_string())),
        Some(PayerChoice::Lnd(lnd)) => {
            let node = connect_lnd(&lnd, backend_payment_timeout).await?;
            Ok(Arc::new(node))
        }
        Some(PayerChoice::Nwc { uri, network }) => {
            let uri = uri.load().map_err(|e| Failure::general("config", e))?;
            let timeouts = NwcTimeouts {
                connect: Duration::from_secs(settings.request_timeout_secs.value.min(15)),
                payment: backend_payment_timeout,
                request: Duration::from_secs(settings.request_timeout_secs.value),
            };
            let payer = NwcPayer::connect(uri, network, timeouts)
                .await
                .map_err(|e| {
                    let (kind, code) = match e {
                        NwcPayerError::Connect(_) => {
                            ("nwc_unavailable", l402_mcp::client::EXIT_NETWORK)
                        }
                        NwcPayerError::WrongNetwork { .. } => ("nwc_network", EXIT_ERROR),
                        _ => ("nwc", EXIT_ERROR),
                    };
                    Failure {
                        kind,
                        message: e.to_string(),
                        code,
                    }
                })?;
            tracing::info!(
                wallet = %payer.wallet_pubkey(),
                alias = payer.alias().unwrap_or(""),
                network = %Payer::network(&payer),
                "paying from a wallet over Nostr Wallet Connect"
            );
            Ok(Arc::new(payer))
        }
        None => Err(Failure::general("no_payer", settings.no_payer_message())),
    }
}

/// Connects to the lnd node `lnd` names (GetInfo, and the network check
/// when it names a network): the client's payer, or the gateway's invoicer.
pub async fn connect_lnd(lnd: &LndSettings, payment_timeout: Duration) -> Result<LndNode, Failure> {
    let config = |e: CredentialError| Failure::general("config", e.to_string());
    let (host, cert, macaroon) = (
        lnd.host.clone(),
        TlsCert::from_setting(lnd.tls_cert.as_str()).map_err(config)?,
        LndMacaroon::from_setting(lnd.macaroon.as_str()).map_err(config)?,
    );
    let mut config = match lnd.network {
        Some(network) => LndConfig::new(host, cert, macaroon, network),
        None => LndConfig::any_network(host, cert, macaroon),
    };
    config.payment_timeout = payment_timeout;
    LndNode::connect(config).await.map_err(|e| {
        // Not reachable is a network error (lnget's 4); a node on the wrong
        // network, or an answer not understood, is a general error.
        let (kind, code) = match e {
            LndError::Unavailable(_) => ("lnd_unavailable", l402_mcp::client::EXIT_NETWORK),
            LndError::WrongNetwork { .. } => ("lnd_network", EXIT_ERROR),
            _ => ("lnd", EXIT_ERROR),
        };
        Failure {
            kind,
            message: e.to_string(),
            code,
        }
    })
}

/// A client on the settings' payer and store, with `config` (the settings'
/// client config, possibly adjusted by the command).
pub async fn make_client(settings: &Settings, config: ClientConfig) -> Result<L402Client, Failure> {
    let payer = make_payer(settings).await?;
    let store = open_store(settings)?;
    let client = L402Client::new(config, payer, store)?;
    Ok(match fetch::TerminalApprover::if_interactive() {
        Some(approver) => client.with_approver(Arc::new(approver)),
        None => client,
    })
}

/// Logs go to stderr only (stdout is for results, and for MCP messages in
/// stdio mode). No secret is ever passed to a log macro; the filter also
/// silences libraries that might print tokens at debug level. The client
/// commands log only warnings by default: their stderr is for the receipt.
fn init_logging(verbose: u8, quiet: bool, chatty: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) if chatty => "warn,l402_mcp=info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    // Libraries that print whole messages at debug or trace (rmcp: every
    // JSON-RPC message, tool arguments with an agent's headers included;
    // hyper, h2, reqwest: header blocks; libmacaroon: macaroons) are held
    // at info whatever RUST_LOG or -v asks: no secret reaches a log line.
    // The cap is a filter of its own, applied after the operator's: a more
    // specific directive (`rmcp::service=debug`) can widen the operator's
    // filter, never the cap.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let capped =
        tracing_subscriber::filter::filter_fn(|meta| !capped(meta.target(), *meta.level()));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(stderr::LossyStderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false)
                .with_filter(filter.and(capped)),
        )
        .init();
}

/// Targets whose debug and trace events may carry secrets (whole MCP
/// messages, header blocks, macaroons); at info and above they say only
/// what happened. libmacaroon is silenced altogether.
const CAPPED_TARGETS: [&str; 7] = [
    "rmcp",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "tower_http",
    "tonic",
];

/// True when an event of `target` at `level` must not be logged.
fn capped(target: &str, level: tracing::Level) -> bool {
    let under = |root: &str| {
        target == root
            || target
                .strip_prefix(root)
                .is_some_and(|rest| rest.starts_with("::"))
    };
    if under("libmacaroon") {
        return true;
    }
    level > tracing::Level::INFO && CAPPED_TARGETS.iter().any(|t| under(t))
}

/// What every command gets besides its own flags.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// `-q`: nothing on stderr but errors.
    pub quiet: bool,
}

pub fn main() -> ExitCode {
    // Usage errors exit 1, not clap's 2: 2 means "refused by a check".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { EXIT_OK });
        }
    };
    let chatty = matches!(
        cli.command,
        Command::Gateway(_) | Command::Serve(_) | Command::Dashboard(_)
    );
    init_logging(cli.verbose, cli.quiet, chatty);
    let ctx = Ctx { quiet: cli.quiet };
    let json = match &cli.command {
        Command::Fetch(a) => a.json,
        Command::Preview(a) => a.json,
        Command::Tokens(a) => a.json(),
        Command::Spend(a) => a.json,
        Command::Pause(a) => a.json,
        Command::Resume(a) => a.json,
        Command::Config(a) => a.json(),
        Command::Gateway(_) | Command::Serve(_) | Command::Demo(_) | Command::Dashboard(_) => false,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let f = Failure::general("runtime", format!("cannot start the async runtime: {e}"));
            output::print_failure(&f, json);
            return ExitCode::from(f.code);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Fetch(args) => fetch::run_fetch(args, ctx).await,
            Command::Preview(args) => fetch::run_preview(args, ctx).await,
            Command::Tokens(args) => tokens::run(args, ctx).await,
            Command::Spend(args) => spend::run(args, ctx).await,
            Command::Pause(args) => pause::run_pause(args, ctx).await,
            Command::Resume(args) => pause::run_resume(args, ctx).await,
            Command::Config(args) => config::run(args, ctx),
            Command::Gateway(args) => gateway::run(args)
                .await
                .map_err(|e| Failure::general("gateway", format!("{e:#}"))),
            Command::Serve(args) => serve::run(args).await,
            Command::Dashboard(args) => dashboard::run(args).await,
            Command::Demo(args) => demo::run(args)
                .await
                .map_err(|e| Failure::general("demo", format!("{e:#}"))),
        }
    });
    // Do not wait for the client's background bookkeeping (a token's
    // last-used time) longer than a moment.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            output::print_failure(&f, json);
            ExitCode::from(f.code)
        }
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::capped;
    use tracing::Level;

    #[test]
    fn secret_carrying_targets_are_capped_at_info_whatever_the_filter() {
        for target in [
            "rmcp",
            "rmcp::service",
            "rmcp::transport::io",
            "hyper::proto",
            "h2",
        ] {
            assert!(capped(target, Level::DEBUG), "{target}");
            assert!(capped(target, Level::TRACE), "{target}");
            assert!(!capped(target, Level::INFO), "{target}");
        }
        assert!(capped("libmacaroon", Level::ERROR));
        assert!(!capped("l402_mcp::client", Level::TRACE));
        assert!(!capped("rmcpx", Level::TRACE));
    }
}

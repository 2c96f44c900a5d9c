//! `l402-mcp serve`: the MCP server, on stdio (the default) or HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use l402_mcp::listen::ConnectionLimits;
use l402_mcp::mcp::{Agent, HttpLimits, HttpOptions, McpServer, bind_http};

use super::settings::{self, SettingFlags, Settings};
use super::stderr::say_err;
use super::{ClientFlags, EXIT_OK, Failure, make_payer, open_store};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve over HTTP on ADDR instead of stdio: Streamable HTTP at /mcp,
    /// the legacy HTTP+SSE transport at /sse (e.g. 127.0.0.1:8403).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,

    /// The bearer token HTTP clients must send (Authorization: Bearer
    /// TOKEN); required when ADDR is not loopback; at least 32 characters.
    /// Prefer the environment (L402_MCP_AUTH_TOKEN) or --auth-token-file: a
    /// command line is visible to every user in `ps`.
    #[arg(long, value_name = "TOKEN", conflicts_with = "auth_token_file")]
    auth_token: Option<String>,

    /// Read the bearer token from FILE (its first line; the file should be
    /// readable by you only) [env: L402_MCP_AUTH_TOKEN_FILE].
    // Not clap's `env`: it refuses the variable set to "" ("a value is
    // required"), which is how a host hands over a field left blank;
    // auth_token reads the variable, empty meaning unset.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,

    /// Also accept this Host header on HTTP (a name or name:port; the
    /// loopback names are always accepted). Repeatable.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,

    /// Also accept requests from this browser origin on HTTP
    /// (scheme://host[:port]; loopback origins are always accepted).
    /// Repeatable.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,

    // The settings only serve has: --max-cost, --server-budget.
    #[command(flatten)]
    serve_flags: SettingFlags<settings::ServeSet>,

    /// HTTP: seconds a connection may take to send a request's headers,
    /// from its start or its previous answer (so also how long an idle
    /// keep-alive connection stays open).
    #[arg(long, value_name = "SECS", default_value_t = l402_mcp::listen::DEFAULT_HEADER_READ_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout: u64,

    /// HTTP: connections open at once; one more gets 503 and is closed.
    #[arg(long, value_name = "N", default_value_t = l402_mcp::listen::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,

    /// HTTP: MCP sessions (Streamable HTTP and SSE) open at once; a new
    /// one past it gets 503 while the open ones keep working.
    #[arg(long, value_name = "N", default_value_t = l402_mcp::mcp::DEFAULT_MAX_SESSIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_sessions: u64,

    #[command(flatten)]
    client: ClientFlags,
}

impl ServeArgs {
    fn settings(&self) -> Result<Settings, Failure> {
        self.client.settings_with(&self.serve_flags.overrides())
    }
}

pub async fn run(args: ServeArgs) -> Result<u8, Failure> {
    // Everything that can be wrong is found before a client connects.
    let settings = args.settings()?;
    let payer = make_payer(&settings).await?;
    let store = open_store(&settings)?;
    let config = settings.client_config();
    // A client may close its session while a payment is under way: before
    // exiting, let the payment finish and be recorded.
    let drain = config.payment_timeout + Duration::from_secs(5);
    let server = McpServer::new(config, payer, store);
    let server = if settings.agents.is_empty() {
        server
    } else {
        if args.http.is_none() {
            say_err!(
                "note: the config file declares agents; they apply to `serve --http` only (on \
                 stdio the one client pays from the process's own budget)"
            );
        }
        server
            .with_agents(agents(&settings)?)
            .map_err(|e| Failure::general("config", e.to_string()))?
    };

    let Some(addr) = args.http else {
        let served = server.serve_stdio(super::shutdown_signal()).await;
        finish_payments(drain).await;
        served.map_err(|e| Failure::general("mcp", e.to_string()))?;
        return Ok(EXIT_OK);
    };

    let options = HttpOptions {
        auth_token: auth_token(&args, &|name| std::env::var(name).ok())?,
        allowed_hosts: args.allowed_hosts.clone(),
        allowed_origins: args.allowed_origins.clone(),
    };
    // Refuse a public address without a token before binding it.
    options
        .validate_for(&server, addr)
        .map_err(|e| Failure::general("config", e.to_string()))?;
    let listener = bind_http(addr)
        .await
        .map_err(|e| Failure::general("io", e.to_string()))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::general("io", e.to_string()))?;
    say_err!(
        "l402-mcp serve: MCP over Streamable HTTP at http://{local}/mcp and legacy SSE at \
         http://{local}/sse{}",
        if options.auth_token.is_some() || !server.agents().is_empty() {
            " (bearer token required)"
        } else {
            ""
        }
    );
    for a in server.agents() {
        say_err!(
            "  agent {}: its own token, budget {} sats (ledger session {}), on every revision",
            a.name,
            a.budget_msat.unwrap_or(settings.budget_sats.value * 1000) / 1000,
            a.session_name()
        );
    }
    if server.agents().is_empty() || options.auth_token.is_some() {
        say_err!(
            "  without an agent's token: each 2025-11-25 MCP session gets its own budget of {} \
             sats (sessions {}-http-…, {}-sse-…), 2026-07-28 calls (no sessions) share one of \
             {} sats, and all of them together at most {} sats (--server-budget)",
            settings.budget_sats.value,
            settings.session.value,
            settings.session.value,
            settings.budget_sats.value,
            settings
                .server_budget_sats
                .value
                .unwrap_or(settings.budget_sats.value)
        );
    }
    let limits = HttpLimits {
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_secs(args.header_read_timeout),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        },
        max_sessions: usize::try_from(args.max_sessions).unwrap_or(usize::MAX),
    };
    let served = server
        .serve_http_limited(listener, &options, limits, super::shutdown_signal())
        .await;
    finish_payments(drain).await;
    served.map_err(|e| Failure::general("mcp", e.to_string()))?;
    Ok(EXIT_OK)
}

/// The agents of the config file, their tokens read now.
fn agents(settings: &Settings) -> Result<Vec<Agent>, Failure> {
    let msat = |sats: u64| sats * 1000;
    settings
        .agents
        .iter()
        .map(|a| {
            if let settings::agents::TokenSource::File(p) = &a.token {
                warn_if_readable_by_others(p);
            }
            let token = a
                .load_token(&settings::process_env)
                .map_err(|e| Failure::general("config", e))?;
            Ok(Agent {
                name: a.name.clone(),
                token,
                budget_msat: a.budget_sats.map(msat),
                max_cost_msat: a.max_cost_sats.map(msat),
                fee_limit_msat: a.max_fee_sats.map(msat),
                approve_above_msat: a.approve_above_sats.map(msat),
                payments_per_minute: a.payments_per_minute,
            })
        })
        .collect()
}

/// The shortest bearer token accepted: 128 bits as hex (`openssl rand -hex
/// 16`). A short token is a password someone can guess.
pub const MIN_AUTH_TOKEN_CHARS: usize = 32;

/// The environment variable naming the bearer token file.
const AUTH_TOKEN_FILE_ENV: &str = "L402_MCP_AUTH_TOKEN_FILE";

/// The environment variable holding the bearer token.
const AUTH_TOKEN_ENV: &str = "L402_MCP_AUTH_TOKEN";

/// `serve --http`'s bearer token: see [`resolve_auth_token`].
fn auth_token(
    args: &ServeArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, Failure> {
    resolve_auth_token(
        TokenSources {
            flag: args.auth_token.as_deref(),
            file: args.auth_token_file.as_deref(),
            file_env: AUTH_TOKEN_FILE_ENV,
            token_env: AUTH_TOKEN_ENV,
            what: "bearer token",
        },
        env,
    )
}

/// Where a bearer token may come from (`serve --http`, `dashboard`).
pub(super) struct TokenSources<'a> {
    /// `--auth-token`.
    pub flag: Option<&'a str>,
    /// `--auth-token-file`.
    pub file: Option<&'a std::path::Path>,
    /// The variable naming a token file.
    pub file_env: &'static str,
    /// The variable holding the token.
    pub token_env: &'static str,
    /// What the token is called in errors.
    pub what: &'static str,
}

/// The token: the flag, else the file (flag, else its variable), else the
/// token variable; refused when too short to be one. `env` is the process
/// environment as it is; a variable set to "" (or blanks) counts as unset,
/// as an MCP Bundle host passes a field left blank.
pub(super) fn resolve_auth_token(
    from: TokenSources<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, Failure> {
    let env = |name: &str| settings::set_value(env(name));
    let token_file = from
        .file
        .map(std::path::Path::to_path_buf)
        .or_else(|| env(from.file_env).map(PathBuf::from));
    let (token, source) = if let Some(t) = from.flag {
        say_err!(
            "warning: --auth-token on the command line is visible to other users (ps); \
             prefer {} or --auth-token-file",
            from.token_env
        );
        (Some(t.to_string()), "--auth-token".to_string())
    } else if let Some(path) = &token_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::general(
                "config",
                format!("cannot read the auth token file {}: {e}", path.display()),
            )
        })?;
        warn_if_readable_by_others(path);
        let first = text.lines().next().unwrap_or("").trim().to_string();
        (
            Some(first),
            format!("the auth token file {}", path.display()),
        )
    } else {
        match env(from.token_env) {
            Some(t) => (Some(t), from.token_env.to_string()),
            None => (None, String::new()),
        }
    };
    match token {
        Some(t) if t.trim().chars().count() < MIN_AUTH_TOKEN_CHARS => Err(Failure::general(
            "config",
            format!(
                "the {} from {source} is {} characters; a token must have at least \
                 {MIN_AUTH_TOKEN_CHARS} (make one with `openssl rand -hex 32`)",
                from.what,
                t.trim().chars().count()
            ),
        )),
        other => Ok(other.map(|t| t.trim().to_string())),
    }
}

#[cfg(unix)]
pub(super) fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        say_err!(
            "warning: the auth token file {} is readable by other users; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
}

#[cfg(not(unix))]
pub(super) fn warn_if_readable_by_others(_path: &std::path::Path) {}

/// Waits for payments under way to be recorded, at most `limit`.
async fn finish_payments(limit: Duration) {
    if !l402_mcp::client::wait_for_payments(limit).await {
        tracing::warn!(
            "a payment was still under way at exit; the next start resolves it with the payment backend"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn args(flags: &[&str]) -> ServeArgs {
        Serve::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .unwrap()
            .args
    }

    /// A fake process environment: these variables set, every other unset.
    fn env(vars: &[(&'static str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars = vars.to_vec();
        move |name: &str| vars.iter().find(|v| v.0 == name).map(|v| v.1.clone())
    }

    #[test]
    fn auth_token_variables_set_to_empty_are_unset() {
        // What an MCP Bundle host passes for a field left blank.
        let blank = env(&[
            (AUTH_TOKEN_ENV, String::new()),
            (AUTH_TOKEN_FILE_ENV, String::new()),
        ]);
        assert_eq!(
            auth_token(&args(&["--http", "127.0.0.1:0"]), &blank).unwrap(),
            None
        );
        let blanks = env(&[
            (AUTH_TOKEN_ENV, "  ".into()),
            (AUTH_TOKEN_FILE_ENV, " ".into()),
        ]);
        assert_eq!(auth_token(&args(&[]), &blanks).unwrap(), None);
    }

    #[test]
    fn auth_token_comes_from_the_flag_then_the_file_then_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, format!("{}\nignored\n", "f".repeat(32))).unwrap();
        let token = "t".repeat(40);
        let all = env(&[
            (AUTH_TOKEN_ENV, token.clone()),
            (AUTH_TOKEN_FILE_ENV, file.display().to_string()),
        ]);
        let flag = "a".repeat(32);
        assert_eq!(
            auth_token(&args(&["--auth-token", &flag]), &all).unwrap(),
            Some(flag.clone())
        );
        assert_eq!(auth_token(&args(&[]), &all).unwrap(), Some("f".repeat(32)));
        let only_token = env(&[
            (AUTH_TOKEN_ENV, token.clone()),
            (AUTH_TOKEN_FILE_ENV, String::new()),
        ]);
        assert_eq!(auth_token(&args(&[]), &only_token).unwrap(), Some(token));
        // A short one is still refused, wherever it comes from.
        let short = env(&[(AUTH_TOKEN_ENV, "hunter2".into())]);
        let e = auth_token(&args(&[]), &short).unwrap_err();
        assert!(
            e.message
                .contains("from L402_MCP_AUTH_TOKEN is 7 characters"),
            "{}",
            e.message
        );
    }
}

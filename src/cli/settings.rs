//! The client's settings: a TOML file, then environment variables, then
//! flags (flags win), each value remembered with where it came from.
//!
//! [`Settings::resolve`] is the one function from (file, environment,
//! flags) to what the client needs: a [`ClientConfig`], the data directory
//! (the token store lives there), and the payer. The CLI's `fetch`,
//! `preview`, `tokens`, `spend` and `config` commands use it, and so does
//! the MCP server, so both faces are configured the same way.
//!
//! | file key | env | flag | default |
//! |---|---|---|---|
//! | `session` | `L402_SESSION` | `--session` | `default` |
//! | `max_cost_sats` | `L402_MAX_COST_SATS` | (`--max-cost` only lowers it per request) | 1000 |
//! | `max_fee_sats` | `L402_MAX_FEE_SATS` | `--max-fee` | 10 |
//! | `budget_sats` | `L402_BUDGET_SATS` | `--budget` | 5000 |
//! | `payments_per_minute` | `L402_PAYMENTS_PER_MINUTE` | `--payments-per-minute` | 20 |
//! | `approve_above_sats` | `L402_APPROVE_ABOVE_SATS` | `--approve-above` | none |
//! | `daily_cap_sats` | `L402_DAILY_CAP_SATS` | `--daily-cap` | none |
//! | `server_budget_sats` | `L402_SERVER_BUDGET_SATS` | `serve --server-budget` | the session budget |
//! | `allow_private` | `L402_ALLOW_PRIVATE` | `--allow-private` | false |
//! | `dev_node` | `L402_DEV_NODE` | `--dev-node` | none |
//! | `lnd_host` | `L402_LND_HOST` | `--lnd-host` | none |
//! | `lnd_tls_cert` | `L402_LND_TLS_CERT` | `--lnd-tls-cert` | none |
//! | `lnd_macaroon` | `L402_LND_MACAROON` | `--lnd-macaroon` | none |
//! | `network` | `L402_NETWORK` | `--network` | none: required with LND |
//! | `data_dir` | `L402_DATA_DIR` | `--data-dir` | the platform data dir |
//! | `max_body_bytes` | `L402_MAX_BODY_BYTES` | | 1 MiB |
//! | `request_timeout_secs` | `L402_REQUEST_TIMEOUT_SECS` | | 60 |
//! | `payment_timeout_secs` | `L402_PAYMENT_TIMEOUT_SECS` | | 60 |
//!
//! The file is `--config FILE`, else `$L402_CONFIG`, else
//! `<platform config dir>/l402-mcp/config.toml`. The default file may be
//! missing (no settings); a file named by the flag or the variable must
//! exist (`/dev/null` names none); a key the file does not know is an
//! error naming its line.
//!
//! The payer is the dev node (`dev_node`) or an lnd node (`lnd_host`,
//! `lnd_tls_cert`, `lnd_macaroon`, `network`), never both: both set is an
//! error naming where each came from. The certificate and the macaroon are
//! each a path (relative to the config file when given there) or inline
//! hex/base64 (PEM for the certificate). `network` has no default: with
//! LND it must be stated, because it is the operator's word on which money
//! is at stake; the node is checked against it before anything is paid,
//! and a default could only be a guess (the one that matters, mainnet, is
//! real money).

use std::convert::identity;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use l402_mcp::lightning::Network;
use l402_mcp::lightning::lnd::{LndHost, SettingForm, setting_form};

use l402_mcp::client::{
    ClientConfig, DEFAULT_FEE_LIMIT_MSAT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_COST_MSAT,
    DEFAULT_PAYMENT_TIMEOUT, DEFAULT_PAYMENTS_PER_MINUTE, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SESSION,
    DEFAULT_SESSION_BUDGET_MSAT,
};

/// The environment variable naming the config file.
pub const ENV_CONFIG: &str = "L402_CONFIG";

/// The store file's name inside the data directory.
pub const STORE_FILE: &str = "l402-mcp.sqlite";

/// More sats than there will ever be (21 million BTC): a larger amount is a
/// typo, and would not fit the store's millisatoshi columns anyway.
const MAX_SATS: u64 = 21_000_000 * 100_000_000;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The config file, at a line.
    File {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
    },
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path, line } => write!(f, "file {}:{line}", path.display()),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value in force.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Sourced<T> {
    fn default(value: T) -> Self {
        Sourced {
            value,
            source: Source::Default,
        }
    }
}

/// How the client pays: the dev network or an lnd node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayerChoice {
    /// The dev network: pay by asking the dev node at this URL (a
    /// gateway's own listener) to settle. Regtest only; never real money.
    Dev {
        /// The dev node's base URL.
        node: Url,
    },
    /// An lnd node over gRPC.
    Lnd(LndSettings),
}

impl PayerChoice {
    /// One line for `config show`.
    pub fn describe(&self) -> String {
        match self {
            PayerChoice::Dev { node } => format!("dev network, through {node}"),
            PayerChoice::Lnd(l) => format!(
                "lnd at {} ({})",
                l.host,
                l.network.map_or("any network", |n| n.as_str())
            ),
        }
    }

    /// For `config show --json`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            PayerChoice::Dev { node } => {
                serde_json::json!({ "kind": "dev", "node": node.as_str() })
            }
            PayerChoice::Lnd(l) => serde_json::json!({
                "kind": "lnd",
                "host": l.host.to_string(),
                "network": l.network.map(|n| n.as_str()),
                "tls_cert": l.tls_cert.describe(false),
                "macaroon": l.macaroon.describe(true),
            }),
        }
    }
}

/// The settings of an lnd payer (or invoicer), as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LndSettings {
    /// `host:port` of lnd's gRPC.
    pub host: LndHost,
    /// Its tls.cert: a path or inline.
    pub tls_cert: CredentialSetting,
    /// The macaroon: a path or inline.
    pub macaroon: CredentialSetting,
    /// The network the node must be on (always named for a payer; a
    /// gateway without one takes the node's).
    pub network: Option<Network>,
}

/// A credential setting as given: a path, or inline text. Its `Debug`
/// never shows inline text (an inline macaroon is a secret).
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialSetting(String);

impl CredentialSetting {
    /// A setting as given (surrounding whitespace dropped).
    pub fn new(value: &str) -> Self {
        CredentialSetting(value.trim().to_string())
    }

    /// The value as given (a path or inline text): for loading only.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What it is, for display: the path, or "inline" (`secret`: never
    /// the text itself).
    pub fn describe(&self, secret: bool) -> String {
        match setting_form(&self.0) {
            SettingForm::File(p) => p.display().to_string(),
            SettingForm::Missing(p) => format!("{} (no such file)", p.display()),
            SettingForm::Inline if secret => "inline (not shown)".to_string(),
            SettingForm::Inline => "inline".to_string(),
            SettingForm::Unusable => {
                "unusable: neither an existing file nor hex, base64 or PEM text".to_string()
            }
        }
    }
}

impl std::str::FromStr for CredentialSetting {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(CredentialSetting::new(s))
    }
}

impl fmt::Debug for CredentialSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match setting_form(&self.0) {
            SettingForm::File(p) | SettingForm::Missing(p) => write!(f, "Path({})", p.display()),
            _ => f.write_str("Inline(<not shown>)"),
        }
    }
}

/// What the flags say; `None` (or `false`) where a flag was not given.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--session`.
    pub session: Option<String>,
    /// The operator's per-request cap (the MCP server's `--max-cost`; the
    /// CLI's `fetch --max-cost` only lowers it per request instead).
    pub max_cost_sats: Option<u64>,
    /// `--max-fee`.
    pub max_fee_sats: Option<u64>,
    /// `--budget`.
    pub budget_sats: Option<u64>,
    /// `--payments-per-minute`.
    pub payments_per_minute: Option<u32>,
    /// `--approve-above`.
    pub approve_above_sats: Option<u64>,
    /// `--daily-cap`.
    pub daily_cap_sats: Option<u64>,
    /// `serve --server-budget`.
    pub server_budget_sats: Option<u64>,
    /// `--allow-private` (a flag can only turn it on).
    pub allow_private: bool,
    /// `--dev-node`.
    pub dev_node: Option<String>,
    /// `--lnd-host`.
    pub lnd_host: Option<String>,
    /// `--lnd-tls-cert`.
    pub lnd_tls_cert: Option<CredentialSetting>,
    /// `--lnd-macaroon` (its `Debug` never shows inline text).
    pub lnd_macaroon: Option<CredentialSetting>,
    /// `--network`.
    pub network: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

/// Why the settings could not be resolved. Each is one sentence.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file exists but cannot be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A config file named by `--config` or `$L402_CONFIG` does not exist.
    #[error(
        "the config file {path} (from {from}) does not exist; create it with `l402-mcp config \
         init --config {path}`, or name no file to use the defaults (`--config /dev/null` \
         for none at all)",
        path = path.display()
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// Where its path came from.
        from: String,
    },
    /// The config file is not valid (bad TOML, unknown key, wrong type).
    #[error("the config file {path}, line {line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or malformed: the sentence names the
    /// setting and where the value came from.
    #[error("{0}")]
    Invalid(String),
}

/// The config file's contents. Every key optional; unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    session: Option<Spanned<String>>,
    max_cost_sats: Option<Spanned<u64>>,
    max_fee_sats: Option<Spanned<u64>>,
    budget_sats: Option<Spanned<u64>>,
    payments_per_minute: Option<Spanned<u32>>,
    approve_above_sats: Option<Spanned<u64>>,
    daily_cap_sats: Option<Spanned<u64>>,
    server_budget_sats: Option<Spanned<u64>>,
    allow_private: Option<Spanned<bool>>,
    dev_node: Option<Spanned<String>>,
    lnd_host: Option<Spanned<String>>,
    lnd_tls_cert: Option<Spanned<String>>,
    lnd_macaroon: Option<Spanned<String>>,
    network: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    max_body_bytes: Option<Spanned<u64>>,
    request_timeout_secs: Option<Spanned<u64>>,
    payment_timeout_secs: Option<Spanned<u64>>,
}

/// The effective settings, each with its source.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file consulted, and where its path came from.
    pub config_file: Sourced<PathBuf>,
    /// Whether that file exists.
    pub config_file_exists: bool,
    /// The session whose budget pays.
    pub session: Sourced<String>,
    /// The per-request cap, sats.
    pub max_cost_sats: Sourced<u64>,
    /// The routing fee limit per payment, sats.
    pub max_fee_sats: Sourced<u64>,
    /// The session budget, sats.
    pub budget_sats: Sourced<u64>,
    /// Payments per minute.
    pub payments_per_minute: Sourced<u32>,
    /// Payments above this need approval, sats.
    pub approve_above_sats: Sourced<Option<u64>>,
    /// Rolling 24-hour cap across sessions, sats.
    pub daily_cap_sats: Sourced<Option<u64>>,
    /// What all sessions of one MCP server may spend together, sats;
    /// `None`: the session budget.
    pub server_budget_sats: Sourced<Option<u64>>,
    /// Private, loopback and link-local addresses allowed.
    pub allow_private: Sourced<bool>,
    /// The dev node, if any.
    pub dev_node: Sourced<Option<Url>>,
    /// lnd's gRPC address, if any.
    pub lnd_host: Sourced<Option<LndHost>>,
    /// lnd's tls.cert (path or inline), if any.
    pub lnd_tls_cert: Sourced<Option<CredentialSetting>>,
    /// The lnd macaroon (path or inline), if any.
    pub lnd_macaroon: Sourced<Option<CredentialSetting>>,
    /// The network the payer's node must be on, if stated.
    pub network: Sourced<Option<Network>>,
    /// Where the token store lives.
    pub data_dir: Sourced<PathBuf>,
    /// Largest response body read whole, bytes.
    pub max_body_bytes: Sourced<u64>,
    /// Timeout of one HTTP exchange, seconds.
    pub request_timeout_secs: Sourced<u64>,
    /// Timeout of one payment, seconds.
    pub payment_timeout_secs: Sourced<u64>,
}

/// The default config file: `<platform config dir>/l402-mcp/config.toml`
/// (`~/.config/l402-mcp/config.toml` on Linux).
pub fn default_config_path() -> PathBuf {
    dirs::config_dir()
        .map(|d| d.join("l402-mcp"))
        .unwrap_or_else(|| PathBuf::from(".l402-mcp"))
        .join("config.toml")
}

/// Which config file: the flag, else `$L402_CONFIG`, else the default.
pub fn config_path(flag: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Sourced<PathBuf> {
    if let Some(p) = flag {
        return Sourced {
            value: p.to_path_buf(),
            source: Source::Flag("--config"),
        };
    }
    if let Some(p) = env(ENV_CONFIG) {
        return Sourced {
            value: PathBuf::from(p),
            source: Source::Env(ENV_CONFIG),
        };
    }
    Sourced::default(default_config_path())
}

/// The process environment, with empty variables treated as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// Resolves the settings: defaults, then the config file (`--config`,
    /// `$L402_CONFIG`, or the default path; missing means empty), then the
    /// environment (`env` returns a variable's value, `None` when unset),
    /// then the flags.
    pub fn resolve(
        config_flag: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> Result<Settings, SettingsError> {
        let config_file = config_path(config_flag, env);
        let path = config_file.value.clone();
        let (file, text, exists) = match std::fs::read_to_string(&path) {
            Ok(text) => (parse_file(&path, &text)?, text, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Only the default path may be missing: a file the operator
                // named and that is not there is a typo, and running with
                // defaults instead would run with other limits than meant.
                if config_file.source != Source::Default {
                    return Err(SettingsError::Missing {
                        path,
                        from: config_file.source.to_string(),
                    });
                }
                (FileSettings::default(), String::new(), false)
            }
            Err(source) => return Err(SettingsError::Read { path, source }),
        };
        let r = Resolver {
            path: &path,
            text: &text,
            env,
        };

        // One stanza per setting: default, file, env, flag.
        let mut session = Sourced::default(DEFAULT_SESSION.to_string());
        r.file(&mut session, file.session, identity);
        r.env(&mut session, "L402_SESSION", |s| Ok(s.to_string()))?;
        r.flag(&mut session, "--session", flags.session.clone());
        if session.value.trim().is_empty() {
            return Err(r.invalid("session", &session.source, "is empty"));
        }

        let mut max_cost_sats = Sourced::default(DEFAULT_MAX_COST_MSAT / 1000);
        r.file(&mut max_cost_sats, file.max_cost_sats, identity);
        r.env(&mut max_cost_sats, "L402_MAX_COST_SATS", parse_sats)?;
        r.flag(&mut max_cost_sats, "--max-cost", flags.max_cost_sats);

        let mut max_fee_sats = Sourced::default(DEFAULT_FEE_LIMIT_MSAT / 1000);
        r.file(&mut max_fee_sats, file.max_fee_sats, identity);
        r.env(&mut max_fee_sats, "L402_MAX_FEE_SATS", parse_sats)?;
        r.flag(&mut max_fee_sats, "--max-fee", flags.max_fee_sats);

        let mut budget_sats = Sourced::default(DEFAULT_SESSION_BUDGET_MSAT / 1000);
        r.file(&mut budget_sats, file.budget_sats, identity);
        r.env(&mut budget_sats, "L402_BUDGET_SATS", parse_sats)?;
        r.flag(&mut budget_sats, "--budget", flags.budget_sats);

        let mut payments_per_minute = Sourced::default(DEFAULT_PAYMENTS_PER_MINUTE);
        r.file(&mut payments_per_minute, file.payments_per_minute, identity);
        r.env(&mut payments_per_minute, "L402_PAYMENTS_PER_MINUTE", |s| {
            s.parse::<u32>()
                .map_err(|_| "is not a whole number".to_string())
        })?;
        r.flag(
            &mut payments_per_minute,
            "--payments-per-minute",
            flags.payments_per_minute,
        );
        if payments_per_minute.value == 0 {
            return Err(r.invalid(
                "payments_per_minute",
                &payments_per_minute.source,
                "must be at least 1",
            ));
        }

        let mut approve_above_sats = Sourced::default(None);
        r.file(&mut approve_above_sats, file.approve_above_sats, Some);
        r.env(&mut approve_above_sats, "L402_APPROVE_ABOVE_SATS", |s| {
            parse_sats(s).map(Some)
        })?;
        r.flag(
            &mut approve_above_sats,
            "--approve-above",
            flags.approve_above_sats.map(Some),
        );

        let mut daily_cap_sats = Sourced::default(None);
        r.file(&mut daily_cap_sats, file.daily_cap_sats, Some);
        r.env(&mut daily_cap_sats, "L402_DAILY_CAP_SATS", |s| {
            parse_sats(s).map(Some)
        })?;
        r.flag(
            &mut daily_cap_sats,
            "--daily-cap",
            flags.daily_cap_sats.map(Some),
        );

        let mut server_budget_sats = Sourced::default(None);
        r.file(&mut server_budget_sats, file.server_budget_sats, Some);
        r.env(&mut server_budget_sats, "L402_SERVER_BUDGET_SATS", |s| {
            parse_sats(s).map(Some)
        })?;
        r.flag(
            &mut server_budget_sats,
            "--server-budget",
            flags.server_budget_sats.map(Some),
        );

        let mut allow_private = Sourced::default(false);
        r.file(&mut allow_private, file.allow_private, identity);
        r.env(&mut allow_private, "L402_ALLOW_PRIVATE", parse_bool)?;
        r.flag(
            &mut allow_private,
            "--allow-private",
            flags.allow_private.then_some(true),
        );

        let mut dev_node: Sourced<Option<Url>> = Sourced::default(None);
        r.file_with(&mut dev_node, "dev_node", file.dev_node, |s| {
            parse_node_url(&s).map(Some)
        })?;
        r.env(&mut dev_node, "L402_DEV_NODE", |s| {
            parse_node_url(s).map(Some)
        })?;
        if let Some(s) = &flags.dev_node {
            dev_node = Sourced {
                value: Some(
                    parse_node_url(s)
                        .map_err(|m| r.invalid("dev_node", &Source::Flag("--dev-node"), &m))?,
                ),
                source: Source::Flag("--dev-node"),
            };
        }

        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();

        // lnd: host, certificate, macaroon, network. A relative path in
        // the file is relative to the file.
        let mut lnd_host: Sourced<Option<LndHost>> = Sourced::default(None);
        r.file_with(&mut lnd_host, "lnd_host", file.lnd_host, |s| {
            s.parse()
                .map(Some)
                .map_err(|e: l402_mcp::lightning::lnd::CredentialError| e.to_string())
        })?;
        r.env(&mut lnd_host, "L402_LND_HOST", |s| {
            s.parse()
                .map(Some)
                .map_err(|e: l402_mcp::lightning::lnd::CredentialError| e.to_string())
        })?;
        if let Some(s) = &flags.lnd_host {
            lnd_host = Sourced {
                value: Some(s.parse().map_err(
                    |e: l402_mcp::lightning::lnd::CredentialError| {
                        r.invalid(
                            "lnd_host",
                            &Source::Flag("--lnd-host"),
                            &format!("is unusable: {e}"),
                        )
                    },
                )?),
                source: Source::Flag("--lnd-host"),
            };
        }
        let credential = |s: String| Some(CredentialSetting(s.trim().to_string()));
        let file_credential = |s: String| Some(CredentialSetting(relative_to(&base, s.trim())));
        let mut lnd_tls_cert: Sourced<Option<CredentialSetting>> = Sourced::default(None);
        r.file(&mut lnd_tls_cert, file.lnd_tls_cert, file_credential);
        r.env(&mut lnd_tls_cert, "L402_LND_TLS_CERT", |s| {
            Ok(credential(s.to_string()))
        })?;
        r.flag(
            &mut lnd_tls_cert,
            "--lnd-tls-cert",
            flags.lnd_tls_cert.clone().map(Some),
        );
        let mut lnd_macaroon: Sourced<Option<CredentialSetting>> = Sourced::default(None);
        r.file(&mut lnd_macaroon, file.lnd_macaroon, file_credential);
        r.env_secret(&mut lnd_macaroon, "L402_LND_MACAROON", |s| {
            Ok(credential(s.to_string()))
        })?;
        r.flag(
            &mut lnd_macaroon,
            "--lnd-macaroon",
            flags.lnd_macaroon.clone().map(Some),
        );
        let mut network: Sourced<Option<Network>> = Sourced::default(None);
        r.file_with(&mut network, "network", file.network, |s| parse_network(&s))?;
        r.env(&mut network, "L402_NETWORK", parse_network)?;
        if let Some(s) = &flags.network {
            network = Sourced {
                value: parse_network(s)
                    .map_err(|m| r.invalid("network", &Source::Flag("--network"), &m))?,
                source: Source::Flag("--network"),
            };
        }

        let mut data_dir = Sourced::default(l402_mcp::gateway::default_data_dir());
        r.file_with(&mut data_dir, "data_dir", file.data_dir, |s| {
            Ok(base.join(expand_home(&s)))
        })?;
        r.env(&mut data_dir, "L402_DATA_DIR", |s| Ok(expand_home(s)))?;
        r.flag(&mut data_dir, "--data-dir", flags.data_dir.clone());

        let mut max_body_bytes = Sourced::default(DEFAULT_MAX_BODY_BYTES as u64);
        r.file(&mut max_body_bytes, file.max_body_bytes, identity);
        r.env(&mut max_body_bytes, "L402_MAX_BODY_BYTES", parse_positive)?;

        let mut request_timeout_secs = Sourced::default(DEFAULT_REQUEST_TIMEOUT.as_secs());
        r.file(
            &mut request_timeout_secs,
            file.request_timeout_secs,
            identity,
        );
        r.env(
            &mut request_timeout_secs,
            "L402_REQUEST_TIMEOUT_SECS",
            parse_positive,
        )?;

        let mut payment_timeout_secs = Sourced::default(DEFAULT_PAYMENT_TIMEOUT.as_secs());
        r.file(
            &mut payment_timeout_secs,
            file.payment_timeout_secs,
            identity,
        );
        r.env(
            &mut payment_timeout_secs,
            "L402_PAYMENT_TIMEOUT_SECS",
            parse_positive,
        )?;

        // Range checks on the values in force, naming their source.
        for (key, v) in [
            ("max_cost_sats", &max_cost_sats),
            ("max_fee_sats", &max_fee_sats),
            ("budget_sats", &budget_sats),
        ] {
            check_sats(&r, key, v.value, &v.source)?;
        }
        for (key, v) in [
            ("approve_above_sats", &approve_above_sats),
            ("daily_cap_sats", &daily_cap_sats),
            ("server_budget_sats", &server_budget_sats),
        ] {
            if let Some(sats) = v.value {
                check_sats(&r, key, sats, &v.source)?;
            }
        }
        for (key, v) in [
            ("max_body_bytes", &max_body_bytes),
            ("request_timeout_secs", &request_timeout_secs),
            ("payment_timeout_secs", &payment_timeout_secs),
        ] {
            if v.value == 0 {
                return Err(r.invalid(key, &v.source, "must be at least 1"));
            }
        }
        check_payer(&dev_node, &lnd_host, &lnd_tls_cert, &lnd_macaroon, &network)?;
        if usize::try_from(max_body_bytes.value).is_err() {
            return Err(r.invalid(
                "max_body_bytes",
                &max_body_bytes.source,
                "is too large for this machine",
            ));
        }

        Ok(Settings {
            config_file,
            config_file_exists: exists,
            session,
            max_cost_sats,
            max_fee_sats,
            budget_sats,
            payments_per_minute,
            approve_above_sats,
            daily_cap_sats,
            server_budget_sats,
            allow_private,
            dev_node,
            lnd_host,
            lnd_tls_cert,
            lnd_macaroon,
            network,
            data_dir,
            max_body_bytes,
            request_timeout_secs,
            payment_timeout_secs,
        })
    }

    /// The client configuration these settings make. The dev node's origin
    /// is allowed whatever its address (it is usually on 127.0.0.1, which
    /// the address policy otherwise refuses).
    pub fn client_config(&self) -> ClientConfig {
        let msat = |sats: u64| sats * 1000; // in range: checked against MAX_SATS
        let mut config = ClientConfig {
            session: self.session.value.clone(),
            max_cost_msat: msat(self.max_cost_sats.value),
            fee_limit_msat: msat(self.max_fee_sats.value),
            session_budget_msat: msat(self.budget_sats.value),
            daily_cap_msat: self.daily_cap_sats.value.map(msat),
            server_budget_msat: self.server_budget_sats.value.map(msat),
            payments_per_minute: self.payments_per_minute.value,
            approve_above_msat: self.approve_above_sats.value.map(msat),
            allow_private: self.allow_private.value,
            max_body_bytes: usize::try_from(self.max_body_bytes.value).unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(self.request_timeout_secs.value),
            payment_timeout: Duration::from_secs(self.payment_timeout_secs.value),
            ..ClientConfig::default()
        };
        if let Some(node) = &self.dev_node.value {
            config
                .allowed_origins
                .push(node.origin().ascii_serialization());
        }
        config
    }

    /// The payer these settings choose, if any. [`Settings::resolve`] has
    /// made sure there is at most one, and that an lnd payer is complete.
    pub fn payer(&self) -> Option<PayerChoice> {
        if let Some(node) = &self.dev_node.value {
            return Some(PayerChoice::Dev { node: node.clone() });
        }
        match (
            &self.lnd_host.value,
            &self.lnd_tls_cert.value,
            &self.lnd_macaroon.value,
            self.network.value,
        ) {
            (Some(host), Some(tls_cert), Some(macaroon), Some(network)) => {
                Some(PayerChoice::Lnd(LndSettings {
                    host: host.clone(),
                    tls_cert: tls_cert.clone(),
                    macaroon: macaroon.clone(),
                    network: Some(network),
                }))
            }
            _ => None,
        }
    }

    /// The sentence to show when a command needs a payer and none is set.
    pub fn no_payer_message(&self) -> String {
        format!(
            "no payer is configured; pass --dev-node URL (a gateway's dev node, e.g. \
             http://127.0.0.1:8402; L402_DEV_NODE, or dev_node in {file}) to pay on the dev \
             network, or name an lnd node with --lnd-host, --lnd-tls-cert, --lnd-macaroon and \
             --network (L402_LND_HOST, L402_LND_TLS_CERT, L402_LND_MACAROON and L402_NETWORK, or \
             lnd_host, lnd_tls_cert, lnd_macaroon and network in {file})",
            file = self.config_file.value.display()
        )
    }

    /// The token store's file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.value.join(STORE_FILE)
    }

    /// Every setting as (file key, value as text, source), for display.
    pub fn rows(&self) -> Vec<(&'static str, String, &Source)> {
        fn row<'a, T>(
            key: &'static str,
            s: &'a Sourced<T>,
            show: impl Fn(&T) -> String,
        ) -> (&'static str, String, &'a Source) {
            (key, show(&s.value), &s.source)
        }
        fn or_none<T>(v: &Option<T>, show: impl Fn(&T) -> String) -> String {
            v.as_ref().map_or_else(|| "none".to_string(), show)
        }
        let text = |v: &dyn std::fmt::Display| v.to_string();
        vec![
            row("session", &self.session, |v| v.clone()),
            row("max_cost_sats", &self.max_cost_sats, |v| text(v)),
            row("max_fee_sats", &self.max_fee_sats, |v| text(v)),
            row("budget_sats", &self.budget_sats, |v| text(v)),
            row("payments_per_minute", &self.payments_per_minute, |v| {
                text(v)
            }),
            row("approve_above_sats", &self.approve_above_sats, |v| {
                or_none(v, |v| text(v))
            }),
            row("daily_cap_sats", &self.daily_cap_sats, |v| {
                or_none(v, |v| text(v))
            }),
            row(
                "server_budget_sats",
                &self.server_budget_sats,
                |v| match v {
                    Some(v) => text(v),
                    None => format!("{} (the session budget)", self.budget_sats.value),
                },
            ),
            row("allow_private", &self.allow_private, |v| text(v)),
            row("dev_node", &self.dev_node, |v| or_none(v, |u| text(u))),
            row("lnd_host", &self.lnd_host, |v| or_none(v, |h| text(h))),
            row("lnd_tls_cert", &self.lnd_tls_cert, |v| {
                or_none(v, |c| c.describe(false))
            }),
            row("lnd_macaroon", &self.lnd_macaroon, |v| {
                or_none(v, |c| c.describe(true))
            }),
            row("network", &self.network, |v| or_none(v, |n| text(n))),
            row("data_dir", &self.data_dir, |v| v.display().to_string()),
            row("max_body_bytes", &self.max_body_bytes, |v| text(v)),
            row("request_timeout_secs", &self.request_timeout_secs, |v| {
                text(v)
            }),
            row("payment_timeout_secs", &self.payment_timeout_secs, |v| {
                text(v)
            }),
        ]
    }
}

/// Applies the file, env and flag layers to one setting.
struct Resolver<'a> {
    path: &'a Path,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    fn line(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    fn file_source(&self, span: std::ops::Range<usize>) -> Source {
        Source::File {
            path: self.path.to_path_buf(),
            line: self.line(span.start),
        }
    }

    /// A file value that needs no check beyond its TOML type.
    fn file<F, T>(&self, slot: &mut Sourced<T>, value: Option<Spanned<F>>, map: impl Fn(F) -> T) {
        if let Some(v) = value {
            let source = self.file_source(v.span());
            *slot = Sourced {
                value: map(v.into_inner()),
                source,
            };
        }
    }

    /// A file value that may be refused, with its line.
    fn file_with<F, T>(
        &self,
        slot: &mut Sourced<T>,
        key: &'static str,
        value: Option<Spanned<F>>,
        map: impl Fn(F) -> Result<T, String>,
    ) -> Result<(), SettingsError> {
        if let Some(v) = value {
            let source = self.file_source(v.span());
            let value = map(v.into_inner()).map_err(|m| self.invalid(key, &source, &m))?;
            *slot = Sourced { value, source };
        }
        Ok(())
    }

    fn env<T>(
        &self,
        slot: &mut Sourced<T>,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<(), SettingsError> {
        if let Some(raw) = (self.env)(name) {
            let raw = raw.trim();
            let value = parse(raw).map_err(|m| {
                SettingsError::Invalid(format!("the environment variable {name}={raw:?} {m}"))
            })?;
            *slot = Sourced {
                value,
                source: Source::Env(name),
            };
        }
        Ok(())
    }

    /// Like [`Resolver::env`], for a variable whose value is a secret: an
    /// error never quotes it.
    fn env_secret<T>(
        &self,
        slot: &mut Sourced<T>,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<(), SettingsError> {
        if let Some(raw) = (self.env)(name) {
            let value = parse(raw.trim()).map_err(|m| {
                SettingsError::Invalid(format!("the environment variable {name} {m}"))
            })?;
            *slot = Sourced {
                value,
                source: Source::Env(name),
            };
        }
        Ok(())
    }

    fn flag<T>(&self, slot: &mut Sourced<T>, name: &'static str, value: Option<T>) {
        if let Some(value) = value {
            *slot = Sourced {
                value,
                source: Source::Flag(name),
            };
        }
    }

    fn invalid(&self, key: &'static str, source: &Source, message: &str) -> SettingsError {
        SettingsError::Invalid(format!("{key} {message} ({source})"))
    }
}

fn parse_file(path: &Path, text: &str) -> Result<FileSettings, SettingsError> {
    toml::from_str(text).map_err(|e| SettingsError::Parse {
        path: path.to_path_buf(),
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        message: e.message().trim().replace('\n', "; "),
    })
}

/// The line (from 1) holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn check_sats(
    r: &Resolver<'_>,
    key: &'static str,
    sats: u64,
    source: &Source,
) -> Result<(), SettingsError> {
    if sats > MAX_SATS {
        return Err(r.invalid(
            key,
            source,
            &format!("is {sats} sats, more than 21 million bitcoin"),
        ));
    }
    Ok(())
}

fn parse_sats(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| "is not a whole number of sats".to_string())
}

fn parse_positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("is not a whole number of at least 1".to_string()),
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("is not true or false".to_string()),
    }
}

fn parse_node_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{s:?} is not an http(s) URL"));
    }
    Ok(url)
}

fn parse_network(s: &str) -> Result<Option<Network>, String> {
    s.trim()
        .parse::<Network>()
        .map(Some)
        .map_err(|_| format!("{s:?} is not a network: mainnet, testnet, signet, regtest or simnet"))
}

/// A credential path from the config file, made absolute against the
/// file's directory when the file is there (inline text is left alone).
fn relative_to(base: &Path, value: &str) -> String {
    let path = expand_home(value);
    if path.is_relative() {
        let joined = base.join(&path);
        if joined.is_file() {
            return joined.display().to_string();
        }
    }
    value.to_string()
}

/// One payer, and a complete one: the dev node or lnd, never both; lnd's
/// host, certificate, macaroon and network all given; the dev node only on
/// regtest.
fn check_payer(
    dev_node: &Sourced<Option<Url>>,
    lnd_host: &Sourced<Option<LndHost>>,
    lnd_tls_cert: &Sourced<Option<CredentialSetting>>,
    lnd_macaroon: &Sourced<Option<CredentialSetting>>,
    network: &Sourced<Option<Network>>,
) -> Result<(), SettingsError> {
    let invalid = |m: String| Err(SettingsError::Invalid(m));
    if dev_node.value.is_some() && lnd_host.value.is_some() {
        return invalid(format!(
            "both a dev node (dev_node, {}) and an lnd node (lnd_host, {}) are configured; \
             the payer must be one of them: remove one",
            dev_node.source, lnd_host.source
        ));
    }
    if let (Some(_), Some(n)) = (&dev_node.value, network.value)
        && n != Network::Regtest
    {
        return invalid(format!(
            "the dev node pays only regtest invoices, but network is {n} ({}); \
             remove the network or set it to regtest",
            network.source
        ));
    }
    let lnd_parts = [
        (
            "lnd_host",
            "--lnd-host",
            "L402_LND_HOST",
            lnd_host.value.is_some(),
            &lnd_host.source,
        ),
        (
            "lnd_tls_cert",
            "--lnd-tls-cert",
            "L402_LND_TLS_CERT",
            lnd_tls_cert.value.is_some(),
            &lnd_tls_cert.source,
        ),
        (
            "lnd_macaroon",
            "--lnd-macaroon",
            "L402_LND_MACAROON",
            lnd_macaroon.value.is_some(),
            &lnd_macaroon.source,
        ),
    ];
    if let Some((given, _, _, _, source)) = lnd_parts.iter().find(|p| p.3) {
        if let Some((missing, flag, env, _, _)) = lnd_parts.iter().find(|p| !p.3) {
            return invalid(format!(
                "{given} is set ({source}) but {missing} is not; an lnd payer needs lnd_host, \
                 lnd_tls_cert and lnd_macaroon (flag {flag}, env {env}, or {missing} in the config file)"
            ));
        }
        if network.value.is_none() {
            return invalid(format!(
                "an lnd node is configured ({given}, {source}) but no network is; state the \
                 network the node is on (--network mainnet|testnet|signet|regtest, env L402_NETWORK, \
                 or network in the config file): l402-mcp checks the node against it before paying"
            ));
        }
    }
    Ok(())
}

fn expand_home(s: &str) -> PathBuf {
    match (s.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(s),
    }
}

/// The commented default config file `config init` writes.
pub fn default_file_text() -> String {
    format!(
        r#"# l402-mcp client settings.
#
# Precedence: this file, then environment variables (L402_*), then flags;
# flags win. Every setting below is commented out at its default: uncomment
# and change what you need. Amounts are in sats.

# The session whose budget pays. A named session's budget holds across every
# invocation with that name (env L402_SESSION, flag --session).
# session = "{session}"

# Largest invoice paid for one request (env L402_MAX_COST_SATS). The
# per-request --max-cost flag can only lower it.
# max_cost_sats = {max_cost}

# Largest routing fee per payment (env L402_MAX_FEE_SATS, flag --max-fee).
# max_fee_sats = {max_fee}

# A session's budget, amounts plus fees (env L402_BUDGET_SATS, flag --budget).
# budget_sats = {budget}

# Payments allowed per minute (env L402_PAYMENTS_PER_MINUTE).
# payments_per_minute = {per_minute}

# Ask before paying more than this (env L402_APPROVE_ABOVE_SATS). The CLI asks
# on the terminal; without one, such payments are refused.
# approve_above_sats = 500

# A rolling 24-hour cap across all sessions (env L402_DAILY_CAP_SATS).
# daily_cap_sats = 20000

# What all the MCP sessions of one `serve` process may spend together (env
# L402_SERVER_BUDGET_SATS, flag serve --server-budget). Any local process can
# open HTTP sessions, each with its own budget: this bounds them all. Default:
# the session budget.
# server_budget_sats = 5000

# Allow private, loopback and link-local addresses (env L402_ALLOW_PRIVATE).
# The dev node's own origin is always allowed.
# allow_private = false

# Pay on the dev network through a gateway's embedded dev node
# (env L402_DEV_NODE, flag --dev-node). Regtest only: never real money.
# dev_node = "http://127.0.0.1:8402"

# Or pay through an lnd node (never both). Its gRPC address, its tls.cert and
# a macaroon (a pay-only one: see "Use with a real node" in the README), each
# a path (relative to this file) or inline hex/base64, and the network the
# node is on, which is checked before anything is paid and has no default
# (env L402_LND_HOST, L402_LND_TLS_CERT, L402_LND_MACAROON, L402_NETWORK;
# flags --lnd-host, --lnd-tls-cert, --lnd-macaroon, --network).
# lnd_host = "127.0.0.1:10009"
# lnd_tls_cert = "~/.lnd/tls.cert"
# lnd_macaroon = "~/.lnd/pay.macaroon"
# network = "mainnet"

# Where the token store ({store}) lives (env L402_DATA_DIR, flag --data-dir).
# A relative path is relative to this file. Default: the platform data dir.
# data_dir = "~/.local/share/l402-mcp"

# Largest response body printed whole; `fetch -o FILE` streams any size
# (env L402_MAX_BODY_BYTES).
# max_body_bytes = {max_body}

# Timeouts, seconds: one HTTP exchange, one payment
# (env L402_REQUEST_TIMEOUT_SECS, L402_PAYMENT_TIMEOUT_SECS).
# request_timeout_secs = {request_timeout}
# payment_timeout_secs = {payment_timeout}
"#,
        session = DEFAULT_SESSION,
        max_cost = DEFAULT_MAX_COST_MSAT / 1000,
        max_fee = DEFAULT_FEE_LIMIT_MSAT / 1000,
        budget = DEFAULT_SESSION_BUDGET_MSAT / 1000,
        per_minute = DEFAULT_PAYMENTS_PER_MINUTE,
        store = STORE_FILE,
        max_body = DEFAULT_MAX_BODY_BYTES,
        request_timeout = DEFAULT_REQUEST_TIMEOUT.as_secs(),
        payment_timeout = DEFAULT_PAYMENT_TIMEOUT.as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve_with(
        text: Option<&str>,
        env: &[(&str, &str)],
        flags: &Overrides,
    ) -> (Result<Settings, SettingsError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        // No text: no file at all (`/dev/null`, as an operator names none).
        let path = match text {
            Some(t) => {
                let path = dir.path().join("config.toml");
                std::fs::write(&path, t).unwrap();
                path
            }
            None => PathBuf::from("/dev/null"),
        };
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.get(k).cloned();
        (Settings::resolve(Some(&path), &lookup, flags), dir)
    }

    #[test]
    fn a_named_file_that_does_not_exist_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typo.toml");
        let err = Settings::resolve(Some(&path), &|_| None, &Overrides::default()).unwrap_err();
        assert!(matches!(err, SettingsError::Missing { .. }), "{err}");
        assert!(
            err.to_string().starts_with(&format!(
                "the config file {} (from flag --config) does not exist",
                path.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn defaults_come_from_the_client_constants() {
        let (s, _d) = resolve_with(None, &[], &Overrides::default());
        let s = s.unwrap();
        assert_eq!(s.max_cost_sats.value, 1000);
        assert_eq!(s.max_fee_sats.value, 10);
        assert_eq!(s.budget_sats.value, 5000);
        assert_eq!(s.payments_per_minute.value, 20);
        assert_eq!(s.session.value, "default");
        assert_eq!(s.budget_sats.source, Source::Default);
        assert!(s.payer().is_none());
        let c = s.client_config();
        assert_eq!(c.max_cost_msat, DEFAULT_MAX_COST_MSAT);
        assert!(c.allowed_origins.is_empty());
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let text = "budget_sats = 100\nmax_fee_sats = 7\nsession = \"file\"\n";
        let flags = Overrides {
            session: Some("flag".into()),
            ..Default::default()
        };
        let (s, d) = resolve_with(
            Some(text),
            &[("L402_BUDGET_SATS", "200"), ("L402_SESSION", "env")],
            &flags,
        );
        let s = s.unwrap();
        assert_eq!(s.session.value, "flag");
        assert_eq!(s.session.source, Source::Flag("--session"));
        assert_eq!(s.budget_sats.value, 200);
        assert_eq!(s.budget_sats.source, Source::Env("L402_BUDGET_SATS"));
        assert_eq!(s.max_fee_sats.value, 7);
        assert_eq!(
            s.max_fee_sats.source,
            Source::File {
                path: d.path().join("config.toml"),
                line: 2
            }
        );
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let (s, _d) = resolve_with(
            Some("budget_sats = 1\n\nbudget = 5\n"),
            &[],
            &Overrides::default(),
        );
        match s {
            Err(SettingsError::Parse { line, message, .. }) => {
                assert_eq!(line, 3);
                assert!(message.contains("unknown field `budget`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_type_and_bad_env_are_sentences() {
        let (s, _d) = resolve_with(Some("budget_sats = \"lots\"\n"), &[], &Overrides::default());
        assert!(
            matches!(s, Err(SettingsError::Parse { line: 1, .. })),
            "{s:?}"
        );
        let (s, _d) = resolve_with(None, &[("L402_MAX_FEE_SATS", "ten")], &Overrides::default());
        let e = s.unwrap_err().to_string();
        assert_eq!(
            e,
            "the environment variable L402_MAX_FEE_SATS=\"ten\" is not a whole number of sats"
        );
        let (s, _d) = resolve_with(
            None,
            &[("L402_PAYMENTS_PER_MINUTE", "0")],
            &Overrides::default(),
        );
        assert!(s.unwrap_err().to_string().contains("at least 1"));
    }

    #[test]
    fn dev_node_is_the_payer_and_an_allowed_origin() {
        let flags = Overrides {
            dev_node: Some("http://127.0.0.1:8402".into()),
            ..Default::default()
        };
        let (s, _d) = resolve_with(None, &[], &flags);
        let s = s.unwrap();
        assert_eq!(
            s.payer(),
            Some(PayerChoice::Dev {
                node: "http://127.0.0.1:8402".parse().unwrap()
            })
        );
        assert_eq!(
            s.client_config().allowed_origins,
            vec!["http://127.0.0.1:8402".to_string()]
        );
        let bad = Overrides {
            dev_node: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(resolve_with(None, &[], &bad).0.is_err());
    }

    #[test]
    fn bools_sats_ranges_and_relative_data_dir() {
        let (s, d) = resolve_with(
            Some("allow_private = true\ndata_dir = \"state\"\n"),
            &[("L402_ALLOW_PRIVATE", "off")],
            &Overrides::default(),
        );
        let s = s.unwrap();
        assert!(!s.allow_private.value);
        assert_eq!(s.data_dir.value, d.path().join("state"));
        assert_eq!(s.store_path(), d.path().join("state").join(STORE_FILE));
        let (s, _d) = resolve_with(
            Some("budget_sats = 9999999999999999\n"),
            &[],
            &Overrides::default(),
        );
        assert!(s.unwrap_err().to_string().contains("21 million"));
    }

    const MACAROON_HEX: &str = "0201036c6e640258030a10b1d4a3f0e2c49e1d7cd4d7e9b8c6a5f41201301a160a0761646472657373120472656164120577726974651a130a04696e666f120472656164120577726974651a170a08696e766f69636573120472656164120577726974651a210a086d616361726f6f6e120867656e6572617465120472656164120577726974651a160a076d657373616765120472656164120577726974651a170a086f6666636861696e120472656164120577726974651a160a076f6e636861696e120472656164120577726974651a140a057065657273120472656164120577726974651a180a067369676e6572120867656e657261746512047265616400000620d2a4";

    fn lnd_flags() -> Overrides {
        Overrides {
            lnd_host: Some("127.0.0.1:10009".into()),
            lnd_tls_cert: Some(CredentialSetting::new("/etc/lnd/tls.cert")),
            lnd_macaroon: Some(CredentialSetting::new(MACAROON_HEX)),
            network: Some("regtest".into()),
            ..Default::default()
        }
    }

    #[test]
    fn lnd_from_flags_is_the_payer_and_its_macaroon_is_never_shown() {
        let (s, _d) = resolve_with(None, &[], &lnd_flags());
        let s = s.unwrap();
        let Some(PayerChoice::Lnd(lnd)) = s.payer() else {
            panic!("{:?}", s.payer())
        };
        assert_eq!(lnd.host.to_string(), "127.0.0.1:10009");
        assert_eq!(lnd.network, Some(Network::Regtest));
        assert_eq!(lnd.macaroon.as_str(), MACAROON_HEX);
        assert_eq!(s.lnd_macaroon.source, Source::Flag("--lnd-macaroon"));
        // Neither Debug nor config show's rows nor the payer's JSON quote it.
        let shown = format!(
            "{s:?} {:?} {:?} {}",
            lnd_flags(),
            s.rows(),
            s.payer().map(|p| p.to_json()).unwrap_or_default()
        );
        assert!(!shown.contains(&MACAROON_HEX[..24]), "{shown}");
        let rows = s.rows();
        let row = |k: &str| rows.iter().find(|r| r.0 == k).unwrap().1.clone();
        assert_eq!(row("lnd_macaroon"), "inline (not shown)");
        assert_eq!(row("lnd_tls_cert"), "/etc/lnd/tls.cert (no such file)");
        assert_eq!(row("lnd_host"), "127.0.0.1:10009");
        assert_eq!(row("network"), "regtest");
    }

    #[test]
    fn lnd_from_env_and_file_with_sources_and_relative_paths() {
        let text =
            "lnd_host = \"node.example.com\"\nlnd_tls_cert = \"tls.cert\"\nnetwork = \"mainnet\"\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.cert"), "x").unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let env = |k: &str| match k {
            "L402_LND_MACAROON" => Some(MACAROON_HEX.to_string()),
            "L402_NETWORK" => Some("testnet".to_string()),
            _ => None,
        };
        let s = Settings::resolve(Some(&path), &env, &Overrides::default()).unwrap();
        let Some(PayerChoice::Lnd(lnd)) = s.payer() else {
            panic!()
        };
        assert_eq!(lnd.host.to_string(), "node.example.com:10009");
        assert_eq!(
            lnd.tls_cert.as_str(),
            dir.path().join("tls.cert").display().to_string()
        );
        assert_eq!(lnd.network, Some(Network::Testnet));
        assert_eq!(s.network.source, Source::Env("L402_NETWORK"));
        assert_eq!(s.lnd_host.source, Source::File { path, line: 1 });
        assert_eq!(s.lnd_macaroon.source, Source::Env("L402_LND_MACAROON"));
    }

    #[test]
    fn dev_node_and_lnd_together_is_an_error_naming_both() {
        let flags = Overrides {
            dev_node: Some("http://127.0.0.1:8402".into()),
            ..lnd_flags()
        };
        let (s, _d) = resolve_with(None, &[], &flags);
        assert_eq!(
            s.unwrap_err().to_string(),
            "both a dev node (dev_node, flag --dev-node) and an lnd node (lnd_host, flag --lnd-host) \
             are configured; the payer must be one of them: remove one"
        );
        let (s, _d) = resolve_with(
            None,
            &[("L402_DEV_NODE", "http://127.0.0.1:8402")],
            &lnd_flags(),
        );
        assert!(s.unwrap_err().to_string().contains("env L402_DEV_NODE"));
    }

    #[test]
    fn lnd_needs_every_part_and_a_stated_network() {
        let flags = Overrides {
            network: None,
            ..lnd_flags()
        };
        let (s, _d) = resolve_with(None, &[], &flags);
        let e = s.unwrap_err().to_string();
        assert!(
            e.starts_with(
                "an lnd node is configured (lnd_host, flag --lnd-host) but no network is"
            ),
            "{e}"
        );
        let flags = Overrides {
            lnd_macaroon: None,
            ..lnd_flags()
        };
        let (s, _d) = resolve_with(None, &[], &flags);
        let e = s.unwrap_err().to_string();
        assert!(
            e.starts_with("lnd_host is set (flag --lnd-host) but lnd_macaroon is not"),
            "{e}"
        );
        let (s, _d) = resolve_with(
            None,
            &[("L402_LND_TLS_CERT", "/x/tls.cert")],
            &Overrides::default(),
        );
        let e = s.unwrap_err().to_string();
        assert!(
            e.starts_with("lnd_tls_cert is set (env L402_LND_TLS_CERT) but lnd_host is not"),
            "{e}"
        );
        let (s, _d) = resolve_with(None, &[("L402_NETWORK", "bitcoinz")], &Overrides::default());
        assert!(s.unwrap_err().to_string().contains("is not a network"));
        let flags = Overrides {
            lnd_host: Some("http://x:1".into()),
            ..lnd_flags()
        };
        let (s, _d) = resolve_with(None, &[], &flags);
        assert!(
            s.unwrap_err()
                .to_string()
                .starts_with("lnd_host is unusable")
        );
    }

    #[test]
    fn the_dev_node_is_regtest_only() {
        let flags = Overrides {
            dev_node: Some("http://127.0.0.1:8402".into()),
            network: Some("mainnet".into()),
            ..Default::default()
        };
        let (s, _d) = resolve_with(None, &[], &flags);
        assert!(
            s.unwrap_err()
                .to_string()
                .starts_with("the dev node pays only regtest invoices")
        );
        let flags = Overrides {
            network: Some("regtest".into()),
            ..flags
        };
        assert!(resolve_with(None, &[], &flags).0.is_ok());
    }

    #[test]
    fn the_default_file_parses_and_sets_nothing() {
        let (s, _d) = resolve_with(Some(&default_file_text()), &[], &Overrides::default());
        let s = s.unwrap();
        assert!(s.config_file_exists);
        assert!(s.rows().iter().all(|(_, _, src)| **src == Source::Default));
    }
}

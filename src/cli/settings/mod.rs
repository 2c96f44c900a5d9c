//! The client's settings: a TOML file, then environment variables, then
//! flags (flags win), each value remembered with where it came from.
//!
//! Each setting is declared once, in the [`settings!`] table below: its
//! file key, environment variable, flag (and which commands take it), its
//! default, how its text is parsed and checked, whether it is a secret, and
//! its help sentence. Everything else comes from that table: the typed
//! [`Settings`] (each value a [`Sourced`]), the flags' [`Overrides`], the
//! clap arguments ([`SettingFlags`]), the three layers of
//! [`Settings::resolve`], the rows of `config show`, the commented file
//! `config init` writes ([`default_file_text`]), and the table in the
//! README's "Configuration" section ([`readme_table`]; a test fails when
//! the README differs).
//!
//! [`Settings::resolve`] is the one function from (file, environment,
//! flags) to what the client needs: a [`ClientConfig`], the data directory
//! (the token store lives there), and the payer. The CLI's `fetch`,
//! `preview`, `tokens`, `spend` and `config` commands use it, and so does
//! the MCP server, so both faces are configured the same way; the
//! gateway's lnd settings go through the same parsing ([`resolve_one`]).
//!
//! The file is `--config FILE`, else `$L402_CONFIG`, else
//! `<platform config dir>/l402-mcp/config.toml`. The default file may be
//! missing (no settings); a file named by the flag or the variable must
//! exist (`/dev/null` names none); a key the file does not know is an
//! error naming its line. A value that cannot be used is an error naming
//! the setting and where the value came from.
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

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use url::Url;

use l402_mcp::lightning::Network;
use l402_mcp::lightning::lnd::{LndHost, SettingForm, setting_form};
use l402_mcp::lightning::nwc::NwcUri;

use l402_mcp::client::{
    ClientConfig, DEFAULT_FEE_LIMIT_MSAT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_COST_MSAT,
    DEFAULT_PAYMENT_TIMEOUT, DEFAULT_PAYMENTS_PER_MINUTE, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SESSION,
    DEFAULT_SESSION_BUDGET_MSAT, PreferScheme,
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
    /// A wallet over Nostr Wallet Connect.
    Nwc {
        /// Where its connection string is.
        uri: NwcSource,
        /// The network it must be on, if stated (else the wallet's own).
        network: Option<Network>,
    },
}

/// Where a wallet's connection string comes from: the setting itself, or
/// a file holding it (read when the payer is made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NwcSource {
    /// Given inline (`nwc_uri`).
    Uri(NwcUri),
    /// In a file (`nwc_file`).
    File(PathBuf),
}

impl NwcSource {
    /// The connection string: parsed, or read from its file and parsed.
    /// Errors never quote the string (it holds the secret). A file others
    /// can read gives a warning: the secret can spend the wallet's money.
    pub fn load(&self) -> Result<NwcUri, String> {
        let path = match self {
            NwcSource::Uri(uri) => return Ok(uri.clone()),
            NwcSource::File(path) => path,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the wallet connection file {} (nwc_file): {e}",
                path.display()
            )
        })?;
        warn_if_readable_by_others(path);
        text.trim().parse::<NwcUri>().map_err(|e| {
            format!(
                "the wallet connection file {} (nwc_file) does not hold a connection string: {e}",
                path.display()
            )
        })
    }

    /// What it is, for display: the wallet and relays (never the secret),
    /// and the file it came from.
    pub fn describe(&self) -> String {
        match self {
            NwcSource::Uri(uri) => uri.to_string(),
            NwcSource::File(path) => match self.load() {
                Ok(uri) => format!("{uri} (from {})", path.display()),
                Err(e) => e,
            },
        }
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{mode:o}"),
                "the wallet connection file can be read by other users, and its secret spends \
                 the wallet's money: chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

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
            PayerChoice::Nwc { uri, network } => format!(
                "Nostr Wallet Connect: {} ({})",
                uri.describe(),
                network.map_or("the wallet's network", |n| n.as_str())
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
            PayerChoice::Nwc { uri, network } => {
                let loaded = uri.load();
                serde_json::json!({
                    "kind": "nwc",
                    "wallet_pubkey": loaded.as_ref().ok().map(NwcUri::wallet_pubkey),
                    "relays": loaded.as_ref().ok().map(NwcUri::relays),
                    "file": match uri {
                        NwcSource::File(p) => Some(p.display().to_string()),
                        NwcSource::Uri(_) => None,
                    },
                    "error": loaded.err(),
                    "network": network.map(|n| n.as_str()),
                })
            }
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

impl fmt::Debug for CredentialSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match setting_form(&self.0) {
            SettingForm::File(p) | SettingForm::Missing(p) => write!(f, "Path({})", p.display()),
            _ => f.write_str("Inline(<not shown>)"),
        }
    }
}

// -------------------------------------------------------------------------
// What a declaration is.

/// Declares the settings: for each, a `static` [`Spec`] in [`spec`], a
/// field of [`Settings`] and of [`Overrides`], an entry of [`SETTINGS`],
/// its stanza in the resolver and its row in `config show`. The doc
/// comment is the setting's help sentence.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $key:ident: $ty:ty = $spec:expr;
    )*) => {
        /// One [`Spec`] per setting, named after its file key.
        #[allow(non_upper_case_globals)]
        pub mod spec {
            use super::*;
            $(
                $(#[doc = $doc])*
                pub static $key: Spec<$ty> =
                    $spec.named(stringify!($key), concat!($($doc, "\n"),*));
            )*
        }

        /// Every setting, in the order `config show`, `config init` and the
        /// README list them.
        pub static SETTINGS: &[&dyn Declared] = &[$(&spec::$key),*];

        /// The effective settings, each with its source.
        #[derive(Debug, Clone)]
        pub struct Settings {
            /// The config file consulted, and where its path came from.
            pub config_file: Sourced<PathBuf>,
            /// Whether that file exists.
            pub config_file_exists: bool,
            /// The file's `[agents.NAME]` tables.
            pub agents: Vec<agents::AgentSetting>,
            $(
                $(#[doc = $doc])*
                pub $key: Sourced<$ty>,
            )*
        }

        /// What the flags say, as given on the command line (parsed by the
        /// resolver like the environment's text); `None` where a flag was
        /// not given. Its `Debug` never shows a secret.
        #[derive(Default, Clone)]
        pub struct Overrides {
            $(
                #[doc = concat!("The flag of `", stringify!($key), "`.")]
                pub $key: Option<String>,
            )*
        }

        impl Overrides {
            /// The flag's text for the setting `key`, if given.
            pub fn get(&self, key: &str) -> Option<&str> {
                match key {
                    $(stringify!($key) => self.$key.as_deref(),)*
                    _ => None,
                }
            }

            /// Sets the flag's text for the setting `key` (a key no setting
            /// has is ignored).
            pub fn set(&mut self, key: &str, value: String) {
                match key {
                    $(stringify!($key) => self.$key = Some(value),)*
                    _ => {}
                }
            }

            /// These overrides, with `more`'s where both have one.
            pub fn and(self, more: &Overrides) -> Overrides {
                Overrides {
                    $($key: more.$key.clone().or(self.$key),)*
                }
            }
        }

        impl Settings {
            /// Every setting through its layers, in declaration order.
            fn from_layers(
                config_file: Sourced<PathBuf>,
                config_file_exists: bool,
                layers: &Layers<'_>,
                flags: &Overrides,
            ) -> Result<Settings, SettingsError> {
                Ok(Settings {
                    config_file,
                    config_file_exists,
                    agents: layers.file.map(|f| f.agents.clone()).unwrap_or_default(),
                    $($key: layers.resolve(&spec::$key, flags.$key.as_deref())?,)*
                })
            }

            /// Every setting as (file key, value as text, source), for
            /// display. A secret is never shown.
            pub fn rows(&self) -> Vec<(&'static str, String, &Source)> {
                vec![$(
                    (stringify!($key), spec::$key.show(&self.$key.value, self), &self.$key.source),
                )*]
            }
        }
    };
}

/// One setting: its names, its words, and how its value is read. The
/// typed half ([`Kind`], the default) makes the [`Settings`] field; the
/// rest ([`Meta`]) is what the docs, the flags and `config init` say.
#[derive(Debug)]
pub struct Spec<T: 'static> {
    /// Names and words.
    pub meta: Meta,
    /// How its text is parsed, checked and shown.
    kind: Kind<T>,
    /// The value when nothing sets it.
    default: fn() -> T,
}

/// A setting's names and words.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// The file key, also the name in `config show`.
    pub key: &'static str,
    /// The environment variable.
    pub env: &'static str,
    /// The flag, if any.
    pub flag: Option<Flag>,
    /// The help sentence(s), as declared (doc-comment lines).
    help: &'static str,
    /// A short phrase for the README's key column ("" for none).
    pub about: &'static str,
    /// The default in words, where the value itself would not do (a
    /// path that depends on the machine; another setting's value).
    pub default_doc: Option<&'static str>,
    /// The value `config init` shows for a setting without a default.
    pub example: Option<&'static str>,
    /// What `config show` says when the value is unset (default "none").
    unset: Option<fn(&Settings) -> String>,
}

impl Meta {
    /// The flag's name (`--budget`), or "" when it has none.
    pub fn flag_name(&self) -> &'static str {
        self.flag.map_or("", |f| f.name)
    }

    /// The help, one line.
    pub fn help(&self) -> String {
        self.help.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// A setting's flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// `--name`.
    pub name: &'static str,
    /// The value's name in `--help` (`SATS`); `None` for a switch, which
    /// can only turn the setting on.
    pub value: Option<&'static str>,
    /// Which commands take it.
    pub on: Commands,
}

/// Which commands take a setting's flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commands {
    /// Every client command, `tokens` too ([`StoreSet`]).
    All,
    /// The commands that pay or could: fetch, preview, spend, config show,
    /// serve ([`ClientSet`]).
    Client,
    /// `serve` only ([`ServeSet`]).
    Serve,
}

/// How a kind of value is read from text, checked and shown.
#[derive(Debug)]
pub struct Kind<T> {
    /// The TOML type the file must give.
    toml: Toml,
    /// A secret: never quoted in an error nor shown.
    secret: bool,
    /// Text (from env, a flag, or the file's value) to the value; the file's
    /// directory when the text came from the file. An error is a predicate
    /// ("is not a whole number of sats").
    parse: fn(&str, Option<&Path>) -> Result<T, String>,
    /// The value in force, in range? An error is a predicate.
    check: fn(&T) -> Result<(), String>,
    /// The value as text (`None`: unset).
    text: fn(&T) -> Option<String>,
}

/// The TOML types a setting can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toml {
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A string.
    String,
}

impl Toml {
    fn expected(self) -> &'static str {
        match self {
            Toml::Integer => "a whole number",
            Toml::Boolean => "true or false",
            Toml::String => "a string",
        }
    }

    /// The TOML value as the text the setting's parser reads, if of this type.
    fn text(self, value: &toml::Value) -> Option<String> {
        match (self, value) {
            (Toml::Integer, toml::Value::Integer(n)) => Some(n.to_string()),
            (Toml::Boolean, toml::Value::Boolean(b)) => Some(b.to_string()),
            (Toml::String, toml::Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// `text` as a TOML literal of this type.
    fn literal(self, text: &str) -> String {
        match self {
            Toml::String => toml::Value::String(text.to_string()).to_string(),
            _ => text.to_string(),
        }
    }
}

impl<T> Spec<T> {
    /// A setting read from `env` as `kind`, `default` when nothing sets it.
    /// No flag; the key and help come from the declaration.
    pub const fn new(env: &'static str, kind: Kind<T>, default: fn() -> T) -> Self {
        Spec {
            meta: Meta {
                key: "",
                env,
                flag: None,
                help: "",
                about: "",
                default_doc: None,
                example: None,
                unset: None,
            },
            kind,
            default,
        }
    }

    const fn with_flag(
        mut self,
        name: &'static str,
        value: Option<&'static str>,
        on: Commands,
    ) -> Self {
        self.meta.flag = Some(Flag { name, value, on });
        self
    }

    /// A flag of the commands that pay (fetch, preview, spend, config
    /// show, serve), taking `value`.
    pub const fn flag(self, name: &'static str, value: &'static str) -> Self {
        self.with_flag(name, Some(value), Commands::Client)
    }

    /// A flag of `serve` only.
    pub const fn serve_flag(self, name: &'static str, value: &'static str) -> Self {
        self.with_flag(name, Some(value), Commands::Serve)
    }

    /// A flag of every client command, `tokens` too.
    pub const fn store_flag(self, name: &'static str, value: &'static str) -> Self {
        self.with_flag(name, Some(value), Commands::All)
    }

    /// A switch (no value) of the commands that pay: it can only turn
    /// the setting on.
    pub const fn switch(self, name: &'static str) -> Self {
        self.with_flag(name, None, Commands::Client)
    }

    /// A short phrase for the README's key column.
    pub const fn about(mut self, about: &'static str) -> Self {
        self.meta.about = about;
        self
    }

    /// The default in words.
    pub const fn default_doc(mut self, doc: &'static str) -> Self {
        self.meta.default_doc = Some(doc);
        self
    }

    /// The value `config init` shows (commented out).
    pub const fn example(mut self, example: &'static str) -> Self {
        self.meta.example = Some(example);
        self
    }

    /// What `config show` says when the value is unset.
    pub const fn unset_shows(mut self, unset: fn(&Settings) -> String) -> Self {
        self.meta.unset = Some(unset);
        self
    }

    const fn named(mut self, key: &'static str, help: &'static str) -> Self {
        self.meta.key = key;
        self.meta.help = help;
        self
    }

    /// Text from `source` to the value; an error names the setting and
    /// the source (an environment variable's value unless a secret).
    fn parse(&self, raw: &str, base: Option<&Path>, source: &Source) -> Result<T, SettingsError> {
        (self.kind.parse)(raw, base).map_err(|m| match source {
            Source::Env(name) if self.kind.secret => {
                SettingsError::Invalid(format!("the environment variable {name} {m}"))
            }
            Source::Env(name) => {
                SettingsError::Invalid(format!("the environment variable {name}={raw:?} {m}"))
            }
            _ => self.invalid(source, &m),
        })
    }

    fn invalid(&self, source: &Source, message: &str) -> SettingsError {
        SettingsError::Invalid(format!("{} {message} ({source})", self.meta.key))
    }

    /// The value as `config show` prints it.
    fn show(&self, value: &T, settings: &Settings) -> String {
        match (self.kind.text)(value) {
            Some(text) => text,
            None => self
                .meta
                .unset
                .map_or_else(|| "none".to_string(), |f| f(settings)),
        }
    }
}

/// What every declaration says, whatever its value's type: for the lists
/// ([`SETTINGS`]), the flags, `config init` and the README.
pub trait Declared: Sync + fmt::Debug {
    /// Names and words.
    fn meta(&self) -> &Meta;
    /// The TOML type of its value.
    fn toml(&self) -> Toml;
    /// Whether its value is a secret.
    fn secret(&self) -> bool;
    /// Its default as text (`None`: unset).
    fn default_text(&self) -> Option<String>;
}

impl<T: fmt::Debug> Declared for Spec<T> {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn toml(&self) -> Toml {
        self.kind.toml
    }
    fn secret(&self) -> bool {
        self.kind.secret
    }
    fn default_text(&self) -> Option<String> {
        (self.kind.text)(&(self.default)())
    }
}

// -------------------------------------------------------------------------
// The kinds of value.

const TEXT: Kind<String> = Kind {
    toml: Toml::String,
    secret: false,
    parse: |s, _| Ok(s.to_string()),
    check: |v| match v.is_empty() {
        true => Err("is empty".to_string()),
        false => Ok(()),
    },
    text: |v| Some(v.clone()),
};

const SATS: Kind<u64> = Kind {
    toml: Toml::Integer,
    secret: false,
    parse: |s, _| parse_sats(s),
    check: check_sats,
    text: |v| Some(v.to_string()),
};

const SOME_SATS: Kind<Option<u64>> = Kind {
    toml: Toml::Integer,
    secret: false,
    parse: |s, _| parse_sats(s).map(Some),
    check: |v| v.as_ref().map_or(Ok(()), check_sats),
    text: |v| v.map(|v| v.to_string()),
};

const PER_MINUTE: Kind<u32> = Kind {
    toml: Toml::Integer,
    secret: false,
    parse: |s, _| {
        s.parse::<u32>()
            .map_err(|_| "is not a whole number".to_string())
    },
    check: |v| at_least_one(u64::from(*v)),
    text: |v| Some(v.to_string()),
};

const SCHEME: Kind<PreferScheme> = Kind {
    toml: Toml::String,
    secret: false,
    parse: |s, _| {
        s.parse::<PreferScheme>()
            .map_err(|_| "is not a scheme this client pays: l402 or payment".to_string())
    },
    check: |_| Ok(()),
    text: |v| Some(v.to_string()),
};

const SECONDS: Kind<u64> = Kind {
    toml: Toml::Integer,
    secret: false,
    parse: |s, _| parse_whole(s),
    check: |v| at_least_one(*v),
    text: |v| Some(v.to_string()),
};

const BYTES: Kind<u64> = Kind {
    check: |v| {
        at_least_one(*v)?;
        match usize::try_from(*v) {
            Ok(_) => Ok(()),
            Err(_) => Err("is too large for this machine".to_string()),
        }
    },
    ..SECONDS
};

const SWITCH: Kind<bool> = Kind {
    toml: Toml::Boolean,
    secret: false,
    parse: |s, _| parse_bool(s),
    check: |_| Ok(()),
    text: |v| Some(v.to_string()),
};

const NODE_URL: Kind<Option<Url>> = Kind {
    toml: Toml::String,
    secret: false,
    parse: |s, _| parse_node_url(s).map(Some),
    check: |_| Ok(()),
    text: |v| v.as_ref().map(Url::to_string),
};

const LND_HOST: Kind<Option<LndHost>> = Kind {
    toml: Toml::String,
    secret: false,
    parse: |s, _| {
        s.parse()
            .map(Some)
            .map_err(|e: l402_mcp::lightning::lnd::CredentialError| format!("is unusable: {e}"))
    },
    check: |_| Ok(()),
    text: |v| v.as_ref().map(LndHost::to_string),
};

const CREDENTIAL: Kind<Option<CredentialSetting>> = Kind {
    toml: Toml::String,
    secret: false,
    // A path in the file is relative to the file.
    parse: |s, base| {
        Ok(Some(CredentialSetting(match base {
            Some(base) => relative_to(base, s),
            None => s.to_string(),
        })))
    },
    check: |_| Ok(()),
    text: |v| v.as_ref().map(|c| c.describe(false)),
};

const SECRET_CREDENTIAL: Kind<Option<CredentialSetting>> = Kind {
    secret: true,
    text: |v| v.as_ref().map(|c| c.describe(true)),
    ..CREDENTIAL
};

const NWC_URI: Kind<Option<NwcUri>> = Kind {
    toml: Toml::String,
    secret: true,
    // NwcUri's errors never quote the text.
    parse: |s, _| {
        s.parse()
            .map(Some)
            .map_err(|e: l402_mcp::lightning::nwc::NwcError| format!("is unusable: {e}"))
    },
    check: |_| Ok(()),
    // The wallet and relays; never the secret.
    text: |v| v.as_ref().map(NwcUri::to_string),
};

const FILE: Kind<Option<PathBuf>> = Kind {
    toml: Toml::String,
    secret: false,
    // A relative path in the file is relative to the file.
    parse: |s, base| {
        Ok(Some(match base {
            Some(base) => base.join(expand_home(s)),
            None => expand_home(s),
        }))
    },
    check: |_| Ok(()),
    text: |v| v.as_ref().map(|p| p.display().to_string()),
};

const NETWORK: Kind<Option<Network>> = Kind {
    toml: Toml::String,
    secret: false,
    parse: |s, _| parse_network(s).map(Some),
    check: |_| Ok(()),
    text: |v| v.map(|n| n.to_string()),
};

const DIR: Kind<PathBuf> = Kind {
    toml: Toml::String,
    secret: false,
    // A relative path in the file is relative to the file.
    parse: |s, base| {
        Ok(match base {
            Some(base) => base.join(expand_home(s)),
            None => expand_home(s),
        })
    },
    check: |_| Ok(()),
    text: |v| Some(v.display().to_string()),
};

// -------------------------------------------------------------------------
// The settings, each declared once.

settings! {
    /// The session whose budget pays: with fetch, preview and spend a named
    /// session's budget holds across invocations; with serve it is the
    /// prefix of each MCP session's own.
    session: String = Spec::new("L402_SESSION", TEXT, || DEFAULT_SESSION.to_string())
        .flag("--session", "NAME");

    /// Largest price paid for one request. serve --max-cost sets it;
    /// fetch --max-cost and a tool's max_cost_sats can only lower it.
    max_cost_sats: u64 = Spec::new("L402_MAX_COST_SATS", SATS, || DEFAULT_MAX_COST_MSAT / 1000)
        .serve_flag("--max-cost", "SATS")
        .about("per-request cap; `fetch --max-cost` only lowers it");

    /// Largest routing fee per payment.
    max_fee_sats: u64 = Spec::new("L402_MAX_FEE_SATS", SATS, || DEFAULT_FEE_LIMIT_MSAT / 1000)
        .flag("--max-fee", "SATS")
        .about("routing fee limit");

    /// A session's budget, amounts plus fees.
    budget_sats: u64 =
        Spec::new("L402_BUDGET_SATS", SATS, || DEFAULT_SESSION_BUDGET_MSAT / 1000)
            .flag("--budget", "SATS")
            .about("per session, amounts + fees");

    /// Payments allowed per minute.
    payments_per_minute: u32 =
        Spec::new("L402_PAYMENTS_PER_MINUTE", PER_MINUTE, || DEFAULT_PAYMENTS_PER_MINUTE)
            .flag("--payments-per-minute", "N");

    /// Ask before paying more than this: the CLI asks on the terminal (and
    /// refuses without one), serve asks the MCP client's user.
    approve_above_sats: Option<u64> = Spec::new("L402_APPROVE_ABOVE_SATS", SOME_SATS, || None)
        .flag("--approve-above", "SATS")
        .example("500");

    /// A rolling 24-hour cap across all sessions.
    daily_cap_sats: Option<u64> = Spec::new("L402_DAILY_CAP_SATS", SOME_SATS, || None)
        .flag("--daily-cap", "SATS")
        .about("rolling 24 h, all sessions")
        .example("20000");

    /// What all the MCP sessions of one serve process may spend together,
    /// amounts plus fees: any local process can open sessions, each with
    /// its own budget, so this bounds them all.
    server_budget_sats: Option<u64> = Spec::new("L402_SERVER_BUDGET_SATS", SOME_SATS, || None)
        .serve_flag("--server-budget", "SATS")
        .about("all MCP sessions of one `serve` together")
        .default_doc("the session budget")
        .unset_shows(|s| format!("{} (the session budget)", s.budget_sats.value))
        .example("5000");

    /// Which scheme is paid when a server's 402 offers both L402 and
    /// Payment (method lightning, intent charge): l402 (as lnget) or
    /// payment. A server that refused the preferred one after it was paid
    /// gets the other from then on.
    prefer_scheme: PreferScheme = Spec::new("L402_PREFER_SCHEME", SCHEME, PreferScheme::default)
        .flag("--prefer-scheme", "l402|payment")
        .about("when a 402 offers both L402 and Payment")
        .example("payment");

    /// Allow private, loopback and link-local addresses (the dev node's own
    /// origin is always allowed).
    allow_private: bool = Spec::new("L402_ALLOW_PRIVATE", SWITCH, || false)
        .switch("--allow-private");

    /// Pay on the dev network through this gateway's dev node, e.g.
    /// http://127.0.0.1:8402 (regtest only: never real money).
    dev_node: Option<Url> = Spec::new("L402_DEV_NODE", NODE_URL, || None)
        .flag("--dev-node", "URL")
        .about("the payer: a gateway's dev node")
        .example("http://127.0.0.1:8402");

    /// Pay through this lnd node's gRPC, host:port (e.g. 127.0.0.1:10009);
    /// needs lnd_tls_cert, lnd_macaroon and network too.
    lnd_host: Option<LndHost> = Spec::new("L402_LND_HOST", LND_HOST, || None)
        .flag("--lnd-host", "HOST:PORT")
        .about("the payer: an lnd node; see [Use with a real node](#use-with-a-real-node)")
        .example("127.0.0.1:10009");

    /// lnd's tls.cert, pinned: a path (in the config file, relative to
    /// it), or the PEM text, hex or base64.
    lnd_tls_cert: Option<CredentialSetting> = Spec::new("L402_LND_TLS_CERT", CREDENTIAL, || None)
        .flag("--lnd-tls-cert", "PATH|TEXT")
        .example("~/.lnd/tls.cert");

    /// The lnd macaroon, a pay-only one (see "Use with a real node" in the
    /// README): a path (in the config file, relative to it), or hex or
    /// base64. Inline text is a secret: it is never shown.
    lnd_macaroon: Option<CredentialSetting> =
        Spec::new("L402_LND_MACAROON", SECRET_CREDENTIAL, || None)
            .flag("--lnd-macaroon", "PATH|TEXT")
            .about("inline text is shown as `inline (not shown)`")
            .example("~/.lnd/pay.macaroon");

    /// Pay from a wallet over Nostr Wallet Connect (Alby Hub, Coinos,
    /// Primal, Zeus, LNbits, ...): its connection string,
    /// nostr+walletconnect://... A secret, never shown: prefer the
    /// environment or nwc_file to the flag, which other local users can
    /// see.
    nwc_uri: Option<NwcUri> = Spec::new("L402_NWC_URI", NWC_URI, || None)
        .flag("--nwc", "URI")
        .about("the payer: a wallet over Nostr Wallet Connect; see [Use with your wallet](#use-with-your-wallet)")
        .example("nostr+walletconnect://<wallet pubkey>?relay=wss://...&secret=...");

    /// A file holding the wallet's connection string instead (mode 0600;
    /// a warning otherwise); in the config file, relative to it.
    nwc_file: Option<PathBuf> = Spec::new("L402_NWC_FILE", FILE, || None)
        .flag("--nwc-file", "PATH")
        .example("~/.config/l402-mcp/nwc.uri");

    /// The network the payer is on: mainnet, testnet, signet or regtest.
    /// Required with lnd and checked against the node before anything is
    /// paid; with a wallet over Nostr Wallet Connect, checked against the
    /// wallet (unset: the wallet's own).
    network: Option<Network> = Spec::new("L402_NETWORK", NETWORK, || None)
        .flag("--network", "NETWORK")
        .about("required with lnd, checked against the node or wallet")
        .example("mainnet");

    /// Where the token store (l402-mcp.sqlite) lives; in the config file, a
    /// relative path is relative to the file.
    data_dir: PathBuf = Spec::new("L402_DATA_DIR", DIR, l402_mcp::gateway::default_data_dir)
        .store_flag("--data-dir", "DIR")
        .default_doc("~/.local/share/l402-mcp, the platform data dir")
        .example("~/.local/share/l402-mcp");

    /// Largest response body read whole, bytes: fetch prints up to it
    /// (fetch -o FILE streams any size), a tool result carries up to it.
    max_body_bytes: u64 = Spec::new("L402_MAX_BODY_BYTES", BYTES, || DEFAULT_MAX_BODY_BYTES as u64);

    /// Timeout of one HTTP exchange, seconds.
    request_timeout_secs: u64 =
        Spec::new("L402_REQUEST_TIMEOUT_SECS", SECONDS, || DEFAULT_REQUEST_TIMEOUT.as_secs());

    /// Timeout of one payment, seconds.
    payment_timeout_secs: u64 =
        Spec::new("L402_PAYMENT_TIMEOUT_SECS", SECONDS, || DEFAULT_PAYMENT_TIMEOUT.as_secs());
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
    set_value(std::env::var(name).ok())
}

/// A variable's value, `None` when it is unset, empty or blank: an MCP
/// Bundle host (Claude Desktop) passes `""` for an optional field the user
/// left blank, and so do env files, and that must mean "not set", not a
/// value to parse or refuse.
pub fn set_value(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
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
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => Some(ConfigFile::parse(path, &text)?),
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
                None
            }
            Err(source) => return Err(SettingsError::Read { path, source }),
        };
        let layers = Layers {
            file: file.as_ref(),
            env,
        };
        let exists = file.is_some();
        let settings = Settings::from_layers(config_file, exists, &layers, flags)?;
        check_payer(&settings)?;
        Ok(settings)
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
            prefer_scheme: self.prefer_scheme.value,
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
        let nwc = match (&self.nwc_uri.value, &self.nwc_file.value) {
            (Some(uri), _) => Some(NwcSource::Uri(uri.clone())),
            (None, Some(file)) => Some(NwcSource::File(file.clone())),
            (None, None) => None,
        };
        if let Some(uri) = nwc {
            return Some(PayerChoice::Nwc {
                uri,
                network: self.network.value,
            });
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
             network, give a wallet's Nostr Wallet Connect string (L402_NWC_URI, --nwc-file \
             PATH, or nwc_uri in {file}), or name an lnd node with --lnd-host, --lnd-tls-cert, \
             --lnd-macaroon and --network (L402_LND_HOST, L402_LND_TLS_CERT, L402_LND_MACAROON \
             and L402_NETWORK, or lnd_host, lnd_tls_cert, lnd_macaroon and network in {file})",
            file = self.config_file.value.display()
        )
    }

    /// The token store's file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.value.join(STORE_FILE)
    }
}

/// One setting from the environment and a flag alone, no config file: for
/// the gateway's lnd settings (its `--config` is its own file), parsed and
/// checked as the client's are.
pub fn resolve_one<T>(
    spec: &Spec<T>,
    env: &dyn Fn(&str) -> Option<String>,
    flag: Option<&str>,
) -> Result<Sourced<T>, SettingsError> {
    Layers { file: None, env }.resolve(spec, flag)
}

/// The layers under the flags: the config file (if any) and the
/// environment.
struct Layers<'a> {
    file: Option<&'a ConfigFile>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Layers<'_> {
    /// One setting: its default, then the file, the environment and the
    /// flag, each parsed by the setting's parser; then the value in force
    /// checked. Every error names the setting and the value's source.
    fn resolve<T>(&self, spec: &Spec<T>, flag: Option<&str>) -> Result<Sourced<T>, SettingsError> {
        let m = &spec.meta;
        let mut slot = Sourced::default((spec.default)());
        if let Some((text, source, base)) = self.file.and_then(|f| f.text(spec)) {
            slot.value = spec.parse(text.trim(), Some(base), &source)?;
            slot.source = source;
        }
        if let Some(raw) = (self.env)(m.env) {
            let source = Source::Env(m.env);
            slot.value = spec.parse(raw.trim(), None, &source)?;
            slot.source = source;
        }
        if let (Some(raw), Some(f)) = (flag, m.flag) {
            let source = Source::Flag(f.name);
            slot.value = spec.parse(raw.trim(), None, &source)?;
            slot.source = source;
        }
        (spec.kind.check)(&slot.value).map_err(|e| spec.invalid(&slot.source, &e))?;
        Ok(slot)
    }
}

/// The config file, parsed: every key known, every value of its type.
struct ConfigFile {
    /// The `[agents.NAME]` tables.
    agents: Vec<agents::AgentSetting>,
    path: PathBuf,
    /// Its directory: relative paths in it are relative to it.
    base: PathBuf,
    /// Each key's value, and its line.
    values: BTreeMap<String, (toml::Value, usize)>,
}

impl ConfigFile {
    fn parse(path: PathBuf, text: &str) -> Result<ConfigFile, SettingsError> {
        let error = |span: Option<Range<usize>>, message: String| SettingsError::Parse {
            path: path.clone(),
            line: span.map_or(1, |s| line_of(text, s.start)),
            message,
        };
        // Values without spans: a span around a table (`[agents.NAME]`)
        // does not deserialize; a key's line is its value's.
        let table: BTreeMap<Spanned<String>, toml::Value> = toml::from_str(text)
            .map_err(|e| error(e.span(), e.message().trim().replace('\n', "; ")))?;
        let mut entries: Vec<_> = table.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut values = BTreeMap::new();
        let mut agent_tables = Vec::new();
        // In the file's order, so that the first mistake is the one named.
        for (key, value) in entries {
            if key.get_ref() == "agents" {
                let line = line_of(text, key.span().start);
                agent_tables = agents::parse(&path, text, value, line, |at| line_of(text, at))?;
                continue;
            }
            let Some(spec) = SETTINGS.iter().find(|s| s.meta().key == key.get_ref()) else {
                let known: Vec<String> = SETTINGS
                    .iter()
                    .map(|s| format!("`{}`", s.meta().key))
                    .collect();
                return Err(error(
                    Some(key.span()),
                    format!(
                        "unknown field `{}`, expected one of {}",
                        key.get_ref(),
                        known.join(", ")
                    ),
                ));
            };
            let toml = spec.toml();
            if toml.text(&value).is_none() {
                return Err(error(
                    Some(key.span()),
                    format!(
                        "{} must be {}, not a TOML {}",
                        key.get_ref(),
                        toml.expected(),
                        value.type_str()
                    ),
                ));
            }
            let line = line_of(text, key.span().start);
            values.insert(key.into_inner(), (value, line));
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(ConfigFile {
            agents: agent_tables,
            path,
            base,
            values,
        })
    }

    /// The file's text for `spec`, its source, and the file's directory.
    fn text<T>(&self, spec: &Spec<T>) -> Option<(String, Source, &Path)> {
        let (value, line) = self.values.get(spec.meta.key)?;
        let text = spec.kind.toml.text(value)?;
        let source = Source::File {
            path: self.path.clone(),
            line: *line,
        };
        Some((text, source, &self.base))
    }
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

fn check_sats(sats: &u64) -> Result<(), String> {
    if *sats > MAX_SATS {
        return Err(format!("is {sats} sats, more than 21 million bitcoin"));
    }
    Ok(())
}

fn at_least_one(n: u64) -> Result<(), String> {
    match n {
        0 => Err("must be at least 1".to_string()),
        _ => Ok(()),
    }
}

fn parse_sats(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| "is not a whole number of sats".to_string())
}

fn parse_whole(s: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| "is not a whole number".to_string())
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("is not true or false".to_string()),
    }
}

fn parse_node_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("is not an http(s) URL".to_string());
    }
    Ok(url)
}

fn parse_network(s: &str) -> Result<Network, String> {
    s.parse::<Network>()
        .map_err(|_| "is not a network: mainnet, testnet, signet, regtest or simnet".to_string())
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
fn check_payer(s: &Settings) -> Result<(), SettingsError> {
    let invalid = |m: String| Err(SettingsError::Invalid(m));
    let (dev_node, lnd_host, network) = (&s.dev_node, &s.lnd_host, &s.network);
    let given: Vec<String> = [
        (
            "a dev node",
            "dev_node",
            &dev_node.source,
            dev_node.value.is_some(),
        ),
        (
            "an lnd node",
            "lnd_host",
            &lnd_host.source,
            lnd_host.value.is_some(),
        ),
        (
            "a wallet",
            "nwc_uri",
            &s.nwc_uri.source,
            s.nwc_uri.value.is_some(),
        ),
        (
            "a wallet file",
            "nwc_file",
            &s.nwc_file.source,
            s.nwc_file.value.is_some(),
        ),
    ]
    .into_iter()
    .filter(|(.., set)| *set)
    .map(|(what, key, source, _)| format!("{what} ({key}, {source})"))
    .collect();
    if given.len() > 1 {
        return invalid(format!(
            "{} payers are configured: {}; the payer must be one of them: remove the others",
            given.len(),
            given.join(", ")
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
    let parts = LndParts {
        host: &s.lnd_host,
        tls_cert: &s.lnd_tls_cert,
        macaroon: &s.lnd_macaroon,
    };
    if let Some((given, source, missing)) = parts.gap() {
        return invalid(format!(
            "{} is set ({source}) but {m} is not; an lnd payer needs lnd_host, lnd_tls_cert and \
             lnd_macaroon (flag {}, env {}, or {m} in the config file)",
            given.key,
            missing.flag_name(),
            missing.env,
            m = missing.key,
        ));
    }
    if let Some((given, source)) = parts.given()
        && network.value.is_none()
    {
        return invalid(format!(
            "an lnd node is configured ({}, {source}) but no network is; state the network the \
             node is on (--network mainnet|testnet|signet|regtest, env L402_NETWORK, or network \
             in the config file): l402-mcp checks the node against it before paying",
            given.key
        ));
    }
    Ok(())
}

/// lnd's three connection settings as resolved (the client's payer, or the
/// gateway's invoicer): all or none.
#[derive(Debug, Clone, Copy)]
pub struct LndParts<'a> {
    /// `lnd_host`.
    pub host: &'a Sourced<Option<LndHost>>,
    /// `lnd_tls_cert`.
    pub tls_cert: &'a Sourced<Option<CredentialSetting>>,
    /// `lnd_macaroon`.
    pub macaroon: &'a Sourced<Option<CredentialSetting>>,
}

impl<'a> LndParts<'a> {
    fn parts(&self) -> [(&'static Meta, bool, &'a Source); 3] {
        [
            (
                &spec::lnd_host.meta,
                self.host.value.is_some(),
                &self.host.source,
            ),
            (
                &spec::lnd_tls_cert.meta,
                self.tls_cert.value.is_some(),
                &self.tls_cert.source,
            ),
            (
                &spec::lnd_macaroon.meta,
                self.macaroon.value.is_some(),
                &self.macaroon.source,
            ),
        ]
    }

    /// The first setting given, and its source; `None` when lnd is not
    /// configured at all.
    pub fn given(&self) -> Option<(&'static Meta, &'a Source)> {
        self.parts().into_iter().find(|p| p.1).map(|p| (p.0, p.2))
    }

    /// Some given and some not: the first given, where it came from, and
    /// the first missing.
    pub fn gap(&self) -> Option<(&'static Meta, &'a Source, &'static Meta)> {
        let (given, source) = self.given()?;
        let missing = self.parts().into_iter().find(|p| !p.1)?;
        Some((given, source, missing.0))
    }

    /// The settings, when all three are given.
    pub fn complete(&self, network: Option<Network>) -> Option<LndSettings> {
        Some(LndSettings {
            host: self.host.value.clone()?,
            tls_cert: self.tls_cert.value.clone()?,
            macaroon: self.macaroon.value.clone()?,
            network,
        })
    }
}

fn expand_home(s: &str) -> PathBuf {
    match (s.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(s),
    }
}

pub mod agents;
mod flags;
#[cfg(test)]
mod tests;
mod text;

pub use flags::{ClientSet, FlagSet, ServeSet, SettingFlags, StoreSet};
pub use text::default_file_text;
#[cfg(test)]
pub use text::readme_table;

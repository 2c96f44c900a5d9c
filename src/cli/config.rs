//! `l402-mcp config`: the effective client settings and where each came
//! from; the config file's path; a commented default file.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::output::{stdout_json, stdout_line};
use super::settings::{self, Settings, Source};
use super::stderr::say_err;
use super::{ClientFlags, Ctx, EXIT_OK, Failure};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

// Parsed once per process: the size of `Show`'s flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// The effective settings, and where each came from (flag, env, file,
    /// default).
    Show {
        /// One JSON object: {"config_file", "settings": {key: {value, source}}}.
        #[arg(long)]
        json: bool,

        #[command(flatten)]
        client: ClientFlags,
    },
    /// The config file's path (--config, else $L402_CONFIG, else the default).
    Path {
        /// Client config file [env: L402_CONFIG].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Write a commented default config file at that path.
    Init {
        /// Client config file [env: L402_CONFIG].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,

        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

impl ConfigArgs {
    pub fn json(&self) -> bool {
        matches!(self.command, ConfigCommand::Show { json: true, .. })
    }
}

pub fn run(args: ConfigArgs, ctx: Ctx) -> Result<u8, Failure> {
    match args.command {
        ConfigCommand::Show { json, client } => {
            let s = client.settings()?;
            if json {
                stdout_json(&show_json(&s))?;
            } else {
                show_human(&s)?;
            }
            Ok(EXIT_OK)
        }
        ConfigCommand::Path { config } => {
            let path = settings::config_path(config.as_deref(), &settings::process_env);
            stdout_line(&path.value.display().to_string())?;
            Ok(EXIT_OK)
        }
        ConfigCommand::Init { config, force } => {
            let path = settings::config_path(config.as_deref(), &settings::process_env).value;
            init(&path, force)?;
            if !ctx.quiet {
                say_err!(
                    "wrote {}; every setting in it is commented out at its default",
                    path.display()
                );
            }
            Ok(EXIT_OK)
        }
    }
}

fn show_human(s: &Settings) -> Result<(), Failure> {
    let state = if s.config_file_exists {
        "exists"
    } else {
        "not found: defaults, env and flags only"
    };
    stdout_line(&format!(
        "config file: {} ({state}; path from {})",
        s.config_file.value.display(),
        s.config_file.source
    ))?;
    let rows = s.rows();
    let width = rows
        .iter()
        .map(|(_, v, _)| v.len())
        .max()
        .unwrap_or(0)
        .min(40);
    for (key, value, source) in rows {
        stdout_line(&format!("{key:<21} {value:<width$}  {source}"))?;
    }
    let payer = match s.payer() {
        Some(choice) => choice.describe(),
        None => {
            "none (configure lnd with --lnd-host, --lnd-tls-cert, --lnd-macaroon and --network, \
                 or pass --dev-node URL to pay on the dev network)"
                .to_string()
        }
    };
    stdout_line(&format!("{:<21} {payer}", "payer"))?;
    stdout_line(&format!(
        "{:<21} {}",
        "token store",
        s.store_path().display()
    ))
}

fn show_json(s: &Settings) -> Value {
    let mut map = Map::new();
    for (key, value, source) in s.rows() {
        map.insert(
            key.to_string(),
            json!({ "value": value, "source": source_json(source) }),
        );
    }
    json!({
        "config_file": {
            "path": s.config_file.value.display().to_string(),
            "exists": s.config_file_exists,
            "source": source_json(&s.config_file.source),
        },
        "settings": map,
        "payer": match s.payer() {
            Some(choice) => choice.to_json(),
            None => Value::Null,
        },
        "store": s.store_path().display().to_string(),
    })
}

fn source_json(source: &Source) -> Value {
    match source {
        Source::Default => json!({ "kind": "default" }),
        Source::File { path, line } => {
            json!({ "kind": "file", "path": path.display().to_string(), "line": line })
        }
        Source::Env(name) => json!({ "kind": "env", "name": name }),
        Source::Flag(name) => json!({ "kind": "flag", "name": name }),
    }
}

/// Writes the default file, creating its directory; refuses to replace an
/// existing file unless `force`. Mode 0600: later settings (an LND
/// macaroon) are secrets.
fn init(path: &std::path::Path, force: bool) -> Result<(), Failure> {
    let io = |what: &str, e: std::io::Error| {
        Failure::general("io", format!("cannot {what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Failure::general(
                "exists",
                format!(
                    "{} already exists; pass --force to overwrite it",
                    path.display()
                ),
            ));
        }
        Err(e) => return Err(io("create", e)),
    };
    file.write_all(settings::default_file_text().as_bytes())
        .map_err(|e| io("write", e))
}

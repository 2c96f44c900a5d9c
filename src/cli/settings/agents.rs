//! `[agents.NAME]` tables of the config file: the agents `serve --http`
//! tells apart by their bearer tokens, each with its own budget and limits.
//!
//! ```toml
//! [agents.research]
//! token_file = "research.token"   # or token_env = "RESEARCH_TOKEN"
//! budget_sats = 2000
//! max_cost_sats = 100
//! approve_above_sats = 500
//! ```
//!
//! A limit left out is the server's. The token never sits in the file
//! itself: it is read from a file (relative to the config file) or an
//! environment variable when `serve` starts.

use std::path::{Path, PathBuf};

use super::SettingsError;

/// Where an agent's token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The first line of this file.
    File(PathBuf),
    /// This environment variable.
    Env(String),
}

/// One `[agents.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSetting {
    pub name: String,
    pub token: TokenSource,
    pub budget_sats: Option<u64>,
    pub max_cost_sats: Option<u64>,
    pub max_fee_sats: Option<u64>,
    pub approve_above_sats: Option<u64>,
    pub payments_per_minute: Option<u32>,
    /// The config file and the table's line, for messages.
    pub path: PathBuf,
    pub line: usize,
}

const KEYS: &[&str] = &[
    "token_file",
    "token_env",
    "budget_sats",
    "max_cost_sats",
    "max_fee_sats",
    "approve_above_sats",
    "payments_per_minute",
];

/// The largest amount in sats: all bitcoin.
const MAX_SATS: u64 = 21_000_000 * 100_000_000;

impl AgentSetting {
    /// The token, read now.
    pub fn load_token(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        let where_ = format!(
            "agent {:?} ({}, line {})",
            self.name,
            self.path.display(),
            self.line
        );
        let token = match &self.token {
            TokenSource::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("{where_}: cannot read its token file {}: {e}", p.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            TokenSource::Env(var) => env(var)
                .ok_or_else(|| format!("{where_}: its token variable {var} is not set"))?
                .trim()
                .to_string(),
        };
        if token.is_empty() {
            return Err(format!("{where_}: its token is empty"));
        }
        Ok(token)
    }
}

/// Parses the value of the file's `agents` key (`line`: where it starts).
pub(super) fn parse(
    path: &Path,
    text: &str,
    value: toml::Value,
    line: usize,
    line_of: impl Fn(usize) -> usize,
) -> Result<Vec<AgentSetting>, SettingsError> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let toml::Value::Table(table) = value else {
        return Err(SettingsError::Parse {
            path: path.to_path_buf(),
            line,
            message: "agents must be tables: write each as [agents.NAME] with token_file or \
                      token_env"
                .into(),
        });
    };
    let mut out = Vec::new();
    for (name, v) in table {
        let at = text
            .find(&format!("[agents.{name}]"))
            .or_else(|| text.find(&format!("[agents.\"{name}\"]")))
            .map_or(line, &line_of);
        let here = |message: String| SettingsError::Parse {
            path: path.to_path_buf(),
            line: at,
            message: format!("agent {name:?}: {message}"),
        };
        let toml::Value::Table(fields) = v else {
            return Err(here("must be a table ([agents.NAME])".into()));
        };
        if let Some(k) = fields.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(here(format!(
                "unknown field `{k}`, expected one of {}",
                KEYS.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let string = |k: &str| -> Result<Option<String>, SettingsError> {
            match fields.get(k) {
                None => Ok(None),
                Some(toml::Value::String(s)) if !s.trim().is_empty() => {
                    Ok(Some(s.trim().to_string()))
                }
                Some(_) => Err(here(format!("{k} must be a non-empty string"))),
            }
        };
        let number = |k: &str, max: u64| -> Result<Option<u64>, SettingsError> {
            match fields.get(k) {
                None => Ok(None),
                Some(toml::Value::Integer(n)) if *n >= 0 && (*n as u64) <= max => {
                    Ok(Some(*n as u64))
                }
                Some(_) => Err(here(format!("{k} must be a whole number from 0 to {max}"))),
            }
        };
        let token = match (string("token_file")?, string("token_env")?) {
            (Some(f), None) => {
                let p = PathBuf::from(f);
                TokenSource::File(if p.is_relative() { base.join(p) } else { p })
            }
            (None, Some(e)) => TokenSource::Env(e),
            (Some(_), Some(_)) => {
                return Err(here("give token_file or token_env, not both".into()));
            }
            (None, None) => {
                return Err(here(
                    "needs its bearer token: token_file = \"PATH\" (its first line) or \
                     token_env = \"VARIABLE\"; never the token itself"
                        .into(),
                ));
            }
        };
        let per_minute = number("payments_per_minute", u32::MAX as u64)?;
        if per_minute == Some(0) {
            return Err(here("payments_per_minute must be at least 1".into()));
        }
        out.push(AgentSetting {
            name: name.clone(),
            token,
            budget_sats: number("budget_sats", MAX_SATS)?,
            max_cost_sats: number("max_cost_sats", MAX_SATS)?,
            max_fee_sats: number("max_fee_sats", MAX_SATS)?,
            approve_above_sats: number("approve_above_sats", MAX_SATS)?,
            payments_per_minute: per_minute.map(|n| n as u32),
            path: path.to_path_buf(),
            line: at,
        });
    }
    Ok(out)
}

//! First-party caveats as aperture writes them: `condition=value`.
//!
//! Conditions the gateway mints and enforces: `services=<name>:<tier>[,...]`,
//! `<service>_capabilities=<cap>[,...]`, `<service>_valid_until=<unix secs>`.

use std::fmt;
use std::str::FromStr;

/// The condition naming the services a token grants.
pub const CONDITION_SERVICES: &str = "services";
/// Suffix of the per-service capabilities condition.
pub const SUFFIX_CAPABILITIES: &str = "_capabilities";
/// Suffix of the per-service expiry condition.
pub const SUFFIX_VALID_UNTIL: &str = "_valid_until";

/// Why a caveat did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaveatError {
    /// No `=` between condition and value.
    #[error("caveat {0:?} is not of the form condition=value")]
    NoEquals(String),
}

/// One first-party caveat, `condition=value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caveat {
    /// What is restricted (`services`, `demo_valid_until`, ...).
    pub condition: String,
    /// The restriction.
    pub value: String,
}

impl Caveat {
    /// A caveat from its two halves.
    pub fn new(condition: impl Into<String>, value: impl Into<String>) -> Self {
        todo!()
    }
}

impl FromStr for Caveat {
    type Err = CaveatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        todo!()
    }
}

impl fmt::Display for Caveat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.condition, self.value)
    }
}

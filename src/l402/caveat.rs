//! First-party caveats as aperture writes them: `condition=value`.
//!
//! Conditions the gateway mints and enforces: `services=<name>:<tier>[,...]`,
//! `<service>_capabilities=<cap>[,...]`, `<service>_valid_until=<unix secs>`.
//! A holder may add more caveats with the same condition to hand on a
//! narrower token; [`verify`](super::verify) checks that each one narrows
//! the one before. The helpers here build the values; nothing checks that
//! a service or capability name avoids the separators (`,`, `:`), so keep
//! names to letters, digits, `-` and `_`.

use std::fmt;
use std::str::FromStr;

/// The condition naming the services a token grants.
pub const CONDITION_SERVICES: &str = "services";
/// Suffix of the per-service capabilities condition.
pub const SUFFIX_CAPABILITIES: &str = "_capabilities";
/// Suffix of the per-service expiry condition.
pub const SUFFIX_VALID_UNTIL: &str = "_valid_until";
/// aperture's `BaseTier`: the tier every service is minted with.
pub const BASE_TIER: u8 = 0;

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
        Caveat {
            condition: condition.into(),
            value: value.into(),
        }
    }

    /// `services=<a>:0,<b>:0,...`: the token is good for these services, at
    /// aperture's base tier.
    pub fn services<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let value = names
            .into_iter()
            .map(|name| format!("{}:{BASE_TIER}", name.as_ref()))
            .collect::<Vec<_>>()
            .join(",");
        Caveat::new(CONDITION_SERVICES, value)
    }

    /// `<service>_capabilities=<a>,<b>,...`: on `service`, the token is good
    /// only for routes that name one of these capabilities (or none).
    pub fn capabilities<S: AsRef<str>>(
        service: &str,
        capabilities: impl IntoIterator<Item = S>,
    ) -> Self {
        let value = capabilities
            .into_iter()
            .map(|c| c.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(",");
        Caveat::new(format!("{service}{SUFFIX_CAPABILITIES}"), value)
    }

    /// `<service>_valid_until=<unix seconds>`: on `service`, the token is
    /// good while now < `unix_secs`.
    pub fn valid_until(service: &str, unix_secs: u64) -> Self {
        Caveat::new(
            format!("{service}{SUFFIX_VALID_UNTIL}"),
            unix_secs.to_string(),
        )
    }
}

impl FromStr for Caveat {
    type Err = CaveatError;
    /// Splits at the first `=`, like aperture's `DecodeCaveat`: the
    /// condition may be empty, the value may hold more `=`. No trimming.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((condition, value)) => Ok(Caveat::new(condition, value)),
            None => Err(CaveatError::NoEquals(s.to_owned())),
        }
    }
}

impl fmt::Display for Caveat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.condition, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_write_aperture_values() {
        assert_eq!(
            Caveat::services(["demo", "weather"]).to_string(),
            "services=demo:0,weather:0"
        );
        assert_eq!(
            Caveat::capabilities("demo", ["read", "write"]).to_string(),
            "demo_capabilities=read,write"
        );
        assert_eq!(
            Caveat::valid_until("demo", 1_700_000_000).to_string(),
            "demo_valid_until=1700000000"
        );
    }

    #[test]
    fn parse_splits_at_first_equals() {
        assert_eq!("a=b=c".parse(), Ok(Caveat::new("a", "b=c")));
        assert_eq!("=x".parse(), Ok(Caveat::new("", "x")));
        assert_eq!("a=".parse(), Ok(Caveat::new("a", "")));
        assert_eq!(
            "no equals".parse::<Caveat>(),
            Err(CaveatError::NoEquals("no equals".into()))
        );
    }

    #[test]
    fn display_then_parse_round_trips() {
        let c = Caveat::new("services", "demo:0");
        assert_eq!(c.to_string().parse(), Ok(c));
    }
}

//! `WWW-Authenticate` challenges: `L402 macaroon="…", invoice="…"` and the
//! forms seen in the wild (LSAT, `token=`, `version=`, several per header).

use std::fmt;
use std::str::FromStr;

use super::{Macaroon, MacaroonError};

/// Longest header value we parse (16 KiB). Real challenges are < 2 KiB.
pub const MAX_CHALLENGE_HEADER_LEN: usize = 16 * 1024;

/// The auth scheme: `L402`, or its legacy name `LSAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `L402` (bLIP-26).
    L402,
    /// `LSAT`, the legacy name aperture still sends first.
    Lsat,
}

/// Why a challenge header did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// Larger than [`MAX_CHALLENGE_HEADER_LEN`].
    #[error("WWW-Authenticate value is {0} bytes; the limit is {MAX_CHALLENGE_HEADER_LEN}")]
    TooLong(usize),
    /// No L402 or LSAT challenge among the values.
    #[error("no L402 or LSAT challenge in WWW-Authenticate")]
    NoL402Challenge,
    /// A required parameter is absent.
    #[error("L402 challenge has no {0} parameter")]
    MissingParam(&'static str),
    /// A parameter appears twice.
    #[error("L402 challenge has the {0} parameter twice")]
    DuplicateParam(String),
    /// Broken syntax (unterminated quote, missing `=`, ...).
    #[error("malformed WWW-Authenticate value: {0}")]
    Syntax(String),
    /// The macaroon is not valid base64 or not a macaroon.
    #[error("challenge macaroon is invalid: {0}")]
    Macaroon(#[from] MacaroonError),
}

/// One L402 challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `L402` or `LSAT`.
    pub scheme: Scheme,
    /// The macaroon (`macaroon=` or `token=`).
    pub macaroon: Macaroon,
    /// The BOLT11 invoice text, not yet decoded.
    pub invoice: String,
    /// The `version=` parameter, when present.
    pub version: Option<String>,
}

impl Challenge {
    /// Every L402/LSAT challenge across several header values, in order.
    /// Other schemes (Bearer, Basic, ...) are skipped.
    pub fn parse_all<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Challenge>, ChallengeError> {
        todo!()
    }
}

impl FromStr for Challenge {
    type Err = ChallengeError;
    /// The first L402/LSAT challenge in one header value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        todo!()
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}

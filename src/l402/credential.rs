//! `Authorization: L402 <macaroon base64>:<preimage hex>`.

use std::fmt;
use std::str::FromStr;

use super::{Macaroon, MacaroonError, Scheme};
use crate::lightning::Preimage;

/// Why an Authorization value did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Not the L402 or LSAT scheme.
    #[error("Authorization is not an L402 credential")]
    NotL402,
    /// No `:` between macaroon and preimage.
    #[error("L402 credential must be <macaroon>:<preimage>")]
    Syntax,
    /// The macaroon half is invalid.
    #[error("credential macaroon is invalid: {0}")]
    Macaroon(#[from] MacaroonError),
    /// The preimage half is not 64 hex digits.
    #[error("credential preimage must be 64 hex digits")]
    Preimage,
}

/// An L402 credential: the macaroon and the preimage that proves payment.
/// Secret: `Debug` is redacted; `Display` writes the header value.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// `L402` or `LSAT`.
    pub scheme: Scheme,
    /// The macaroon from the challenge.
    pub macaroon: Macaroon,
    /// The preimage of the invoice's payment hash.
    pub preimage: Preimage,
}

impl Credential {
    /// The first L402/LSAT credential among several Authorization values;
    /// `Ok(None)` when there is none.
    pub fn from_header_values<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Credential>, CredentialError> {
        todo!()
    }
}

impl FromStr for Credential {
    type Err = CredentialError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        todo!()
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

//! `Authorization: L402 <macaroon base64>:<preimage hex>`.
//!
//! Read leniently (scheme in any case, `LSAT` too, surrounding whitespace,
//! any base64 form, upper-case hex), written exactly as aperture and lnget
//! write it: `L402 <standard padded base64>:<lowercase hex>`.

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
    /// An `L402` credential.
    pub fn new(macaroon: Macaroon, preimage: Preimage) -> Self {
        Credential {
            scheme: Scheme::L402,
            macaroon,
            preimage,
        }
    }

    /// The first L402/LSAT credential among several Authorization values;
    /// `Ok(None)` when there is none.
    ///
    /// aperture's own client sends the same credential twice, as `LSAT`
    /// then `L402`; the first wins. Values of other schemes are skipped;
    /// an L402/LSAT value that is malformed is an error even when another
    /// one follows (a server should not guess which one the client meant).
    pub fn from_header_values<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Credential>, CredentialError> {
        for value in values {
            match value.parse::<Credential>() {
                Ok(credential) => return Ok(Some(credential)),
                Err(CredentialError::NotL402) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

impl FromStr for Credential {
    type Err = CredentialError;
    /// `<scheme> <macaroon>:<preimage>`, scheme `L402` or `LSAT` in any
    /// case, one or more spaces or tabs after it, whitespace around the
    /// whole tolerated.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim_matches([' ', '\t']);
        let (name, rest) = s.split_once([' ', '\t']).unwrap_or((s, ""));
        let scheme = Scheme::from_name(name).ok_or(CredentialError::NotL402)?;
        let (macaroon, preimage) = rest
            .trim_start_matches([' ', '\t'])
            .split_once(':')
            .ok_or(CredentialError::Syntax)?;
        let macaroon: Macaroon = macaroon.parse()?;
        let preimage: Preimage = preimage.parse().map_err(|_| CredentialError::Preimage)?;
        Ok(Credential {
            scheme,
            macaroon,
            preimage,
        })
    }
}

impl fmt::Display for Credential {
    /// `<scheme> <standard padded base64>:<lowercase hex>`, the scheme as
    /// parsed (`L402` unless it came as `LSAT`). Secret: this is the header
    /// value itself, never for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{}",
            self.scheme,
            self.macaroon.to_base64(),
            self.preimage.to_hex()
        )
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

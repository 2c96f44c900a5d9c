//! Macaroons in the V2 binary format of Go's `gopkg.in/macaroon.v2`, on top
//! of `libmacaroon`. Standard base64 on the wire; URL-safe and unpadded
//! accepted.

use std::fmt;
use std::str::FromStr;

use super::{Caveat, Identifier, IdentifierError};

/// The location aperture writes into every L402 macaroon.
pub const MACAROON_LOCATION: &str = "lsat";

/// Why a macaroon was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacaroonError {
    /// Not base64.
    #[error("macaroon is not valid base64")]
    Base64,
    /// Base64, but not a V2 macaroon.
    #[error("not a valid macaroon: {0}")]
    Decode(String),
    /// Could not add a caveat (too many, too large).
    #[error("cannot add caveat: {0}")]
    Caveat(String),
}

/// A parsed macaroon. Its `Debug` shows the identifier and caveats, never
/// the signature; `Display` is the standard-base64 V2 encoding.
#[derive(Clone)]
pub struct Macaroon {
    pub(crate) inner: libmacaroon::Macaroon,
}

impl Macaroon {
    /// The raw identifier bytes.
    pub fn raw_identifier(&self) -> &[u8] {
        self.inner.identifier()
    }

    /// The identifier decoded as aperture's 66-byte layout.
    pub fn identifier(&self) -> Result<Identifier, IdentifierError> {
        Identifier::from_bytes(self.raw_identifier())
    }

    /// The first-party caveats, in order; ones not of the form
    /// `condition=value` are skipped.
    pub fn caveats(&self) -> Vec<Caveat> {
        todo!()
    }

    /// Adds a first-party caveat (a holder may only narrow a macaroon).
    pub fn add_caveat(&mut self, caveat: &Caveat) -> Result<(), MacaroonError> {
        todo!()
    }

    /// The V2 binary encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!()
    }

    /// Standard, padded base64 of the V2 binary encoding.
    pub fn to_base64(&self) -> String {
        todo!()
    }
}

impl PartialEq for Macaroon {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}
impl Eq for Macaroon {}

impl FromStr for Macaroon {
    type Err = MacaroonError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        todo!()
    }
}

impl fmt::Display for Macaroon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for Macaroon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!()
    }
}

//! aperture's macaroon identifier: `u16 version (0, big-endian) |
//! payment_hash[32] | token_id[32]`, 66 bytes.

use std::fmt;

use crate::lightning::PaymentHash;

/// Length of a version-0 identifier.
pub const IDENTIFIER_LEN: usize = 66;

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// Not 66 bytes.
    #[error("macaroon identifier is {0} bytes; version 0 is 66")]
    BadLength(usize),
    /// A version other than 0.
    #[error("macaroon identifier has unknown version {0}; only version 0 is known")]
    UnknownVersion(u16),
}

/// A random 32-byte token id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenId(pub [u8; 32]);

impl TokenId {
    /// A fresh random id.
    pub fn random() -> Self {
        todo!()
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({})", hex::encode(self.0))
    }
}

/// The identifier of an L402 macaroon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identifier {
    /// The payment hash of the invoice that buys this token.
    pub payment_hash: PaymentHash,
    /// Random; tells tokens for the same hash apart.
    pub token_id: TokenId,
}

impl Identifier {
    /// A version-0 identifier for `payment_hash` with a random token id.
    pub fn new(payment_hash: PaymentHash) -> Self {
        todo!()
    }

    /// The 66-byte encoding.
    pub fn to_bytes(&self) -> [u8; IDENTIFIER_LEN] {
        todo!()
    }

    /// Decodes the 66-byte encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentifierError> {
        todo!()
    }
}

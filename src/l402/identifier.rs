//! aperture's macaroon identifier: `u16 version (0, big-endian) |
//! payment_hash[32] | token_id[32]`, 66 bytes.
//!
//! The identifier is what binds a macaroon to the invoice that buys it: the
//! server checks `sha256(preimage)` against the payment hash written here.
//! It is public (it travels in every challenge and credential); only the
//! preimage and the macaroon's signature are secrets.

use std::fmt;

use crate::lightning::PaymentHash;

/// Length of a version-0 identifier.
pub const IDENTIFIER_LEN: usize = 66;

/// The only identifier version aperture (and this crate) mints and reads.
pub const IDENTIFIER_VERSION: u16 = 0;

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
    /// A fresh random id from the OS RNG.
    pub fn random() -> Self {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        TokenId(b)
    }

    /// The id as lowercase hex (aperture prints token ids this way).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
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
        Identifier {
            payment_hash,
            token_id: TokenId::random(),
        }
    }

    /// The 66-byte encoding.
    pub fn to_bytes(&self) -> [u8; IDENTIFIER_LEN] {
        let mut out = [0u8; IDENTIFIER_LEN];
        let (version, rest) = out.split_at_mut(2);
        let (hash, token_id) = rest.split_at_mut(32);
        version.copy_from_slice(&IDENTIFIER_VERSION.to_be_bytes());
        hash.copy_from_slice(&self.payment_hash.0);
        token_id.copy_from_slice(&self.token_id.0);
        out
    }

    /// Decodes the 66-byte encoding.
    ///
    /// The version is checked first whenever its two bytes are present: a
    /// later version may well have another length, and "unknown version 1"
    /// says more than "67 bytes" (aperture reads the version first too).
    /// So `[0, 1, ...]` of any length is `UnknownVersion(1)`, and a version-0
    /// identifier (or anything shorter than 2 bytes) of the wrong length is
    /// `BadLength(len)`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentifierError> {
        let Some((version, rest)) = bytes.split_first_chunk::<2>() else {
            return Err(IdentifierError::BadLength(bytes.len()));
        };
        let version = u16::from_be_bytes(*version);
        if version != IDENTIFIER_VERSION {
            return Err(IdentifierError::UnknownVersion(version));
        }
        let Some((hash, token_id)) = rest.split_first_chunk::<32>() else {
            return Err(IdentifierError::BadLength(bytes.len()));
        };
        let token_id: &[u8; 32] = token_id
            .try_into()
            .map_err(|_| IdentifierError::BadLength(bytes.len()))?;
        Ok(Identifier {
            payment_hash: PaymentHash(*hash),
            token_id: TokenId(*token_id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_version_then_hash_then_token_id() {
        let id = Identifier {
            payment_hash: PaymentHash([0xaa; 32]),
            token_id: TokenId([0x55; 32]),
        };
        let bytes = id.to_bytes();
        assert_eq!(bytes[..2], [0, 0]);
        assert_eq!(bytes[2..34], [0xaa; 32]);
        assert_eq!(bytes[34..], [0x55; 32]);
        assert_eq!(Identifier::from_bytes(&bytes), Ok(id));
    }

    #[test]
    fn version_is_checked_before_length() {
        let mut bytes = Identifier::new(PaymentHash([1; 32])).to_bytes().to_vec();
        bytes[1] = 1;
        assert_eq!(
            Identifier::from_bytes(&bytes),
            Err(IdentifierError::UnknownVersion(1))
        );
        bytes.push(0);
        assert_eq!(
            Identifier::from_bytes(&bytes),
            Err(IdentifierError::UnknownVersion(1))
        );
        assert_eq!(
            Identifier::from_bytes(&[0]),
            Err(IdentifierError::BadLength(1))
        );
        assert_eq!(
            Identifier::from_bytes(&[]),
            Err(IdentifierError::BadLength(0))
        );
        assert_eq!(
            Identifier::from_bytes(&[0; 65]),
            Err(IdentifierError::BadLength(65))
        );
        assert_eq!(
            Identifier::from_bytes(&[0; 67]),
            Err(IdentifierError::BadLength(67))
        );
    }

    #[test]
    fn random_token_ids_differ() {
        assert_ne!(TokenId::random(), TokenId::random());
    }
}

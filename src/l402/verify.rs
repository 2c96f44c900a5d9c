//! Minting and verifying L402 macaroons, statelessly.
//!
//! Each token's macaroon root secret is `HMAC-SHA256(root_key, identifier)`,
//! so the gateway stores nothing per token; rotating the root key revokes
//! every token. The secret is then used as Go's `macaroon.New` uses a root
//! key (through the `macaroons-key-generator` derivation), so pymacaroons and
//! Go verify what we mint given the same secret.

use std::fmt;

use super::{Caveat, Credential, Identifier, Macaroon};

/// The gateway's root key. Secret: redacted `Debug`, wiped on drop.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct RootKey(pub [u8; 32]);

impl RootKey {
    /// A fresh random key.
    pub fn random() -> Self {
        todo!()
    }

    /// The per-token secret: `HMAC-SHA256(root_key, identifier bytes)`.
    pub fn token_secret(&self, identifier: &Identifier) -> [u8; 32] {
        todo!()
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

/// Mints a macaroon for `identifier` with `caveats`, location `lsat`.
pub fn mint(root_key: &RootKey, identifier: &Identifier, caveats: &[Caveat]) -> Macaroon {
    todo!()
}

/// What a request asks of a token.
#[derive(Debug, Clone)]
pub struct VerifyContext<'a> {
    /// The service the requested route belongs to.
    pub service: &'a str,
    /// The capability the route needs, when it names one.
    pub capability: Option<&'a str>,
    /// Now, in unix seconds.
    pub now_unix: u64,
}

/// Why a credential was refused. The gateway answers every variant with the
/// same 401 sentence; the variants are for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The identifier is not aperture's layout.
    #[error("macaroon identifier is invalid: {0}")]
    Identifier(#[from] super::IdentifierError),
    /// `sha256(preimage) != payment_hash`.
    #[error("preimage does not match the payment hash")]
    PreimageMismatch,
    /// The HMAC chain does not verify under our root key.
    #[error("macaroon signature is invalid")]
    Signature,
    /// The token has no `services` caveat.
    #[error("macaroon names no services")]
    NoServices,
    /// A caveat is not satisfied, or a later caveat widens an earlier one.
    #[error("caveat {condition} not satisfied: {reason}")]
    Caveat {
        /// The caveat's condition.
        condition: String,
        /// Why.
        reason: String,
    },
    /// The `<service>_valid_until` time has passed.
    #[error("token expired")]
    Expired,
}

/// Verifies a credential for a request: identifier, preimage, signature and
/// every caveat condition this crate mints. Returns the identifier.
pub fn verify(
    root_key: &RootKey,
    credential: &Credential,
    ctx: &VerifyContext<'_>,
) -> Result<Identifier, VerifyError> {
    todo!()
}

//! Minting and verifying L402 macaroons, statelessly.
//!
//! Each token's macaroon root secret is `HMAC-SHA256(root_key, identifier)`,
//! so the gateway stores nothing per token; rotating the root key revokes
//! every token. The secret is then used as Go's `macaroon.New` uses a root
//! key (through the `macaroons-key-generator` derivation), so pymacaroons and
//! Go verify what we mint given the same secret.
//!
//! Caveats follow aperture's satisfiers: for each condition that concerns
//! the requested service (`services`, `<service>_capabilities`,
//! `<service>_valid_until`), the caveats with that condition are taken in
//! order; each may only narrow the one before, and the last one decides.
//! Conditions we do not know (including another service's) are ignored.

use std::fmt;
use std::sync::LazyLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::macaroon::MACAROON_LOCATION;
use super::{
    CONDITION_SERVICES, Caveat, Credential, Identifier, Macaroon, MacaroonError,
    SUFFIX_CAPABILITIES, SUFFIX_VALID_UNTIL,
};

/// The gateway's root key. Secret: redacted `Debug`, wiped on drop.
#[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct RootKey(pub [u8; 32]);

impl RootKey {
    /// A fresh random key from the OS RNG.
    pub fn random() -> Self {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
        RootKey(b)
    }

    /// The per-token secret: `HMAC-SHA256(root_key, identifier bytes)`.
    pub fn token_secret(&self, identifier: &Identifier) -> [u8; 32] {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC-SHA256 accepts a 32-byte key")
        };
        mac.update(&identifier.to_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The `libmacaroon` key for a token: the secret through the
    /// `macaroons-key-generator` derivation, as Go's `macaroon.New` and
    /// pymacaroons' `Macaroon(key=...)` do.
    fn macaroon_key(&self, identifier: &Identifier) -> libmacaroon::MacaroonKey {
        let mut secret = self.token_secret(identifier);
        let key = libmacaroon::MacaroonKey::generate(&secret);
        zeroize::Zeroize::zeroize(&mut secret);
        key
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

/// Mints a macaroon for `identifier` with `caveats`, location `lsat`.
///
/// # Panics
///
/// If a caveat is longer than 65535 bytes or there are more than 1000 of
/// them (`libmacaroon`'s limits). The gateway mints a handful of short
/// caveats; use [`try_mint`] for caveats from elsewhere.
pub fn mint(root_key: &RootKey, identifier: &Identifier, caveats: &[Caveat]) -> Macaroon {
    match try_mint(root_key, identifier, caveats) {
        Ok(m) => m,
        Err(e) => panic!("cannot mint an L402 macaroon: {e}"),
    }
}

/// [`mint`], returning an error instead of panicking when a caveat is too
/// large or there are too many.
pub fn try_mint(
    root_key: &RootKey,
    identifier: &Identifier,
    caveats: &[Caveat],
) -> Result<Macaroon, MacaroonError> {
    let key = root_key.macaroon_key(identifier);
    let inner = libmacaroon::Macaroon::create(Some(MACAROON_LOCATION), &key, identifier.to_bytes())
        .map_err(|e| MacaroonError::Decode(e.to_string()))?;
    let mut macaroon = Macaroon::from_inner(inner);
    for caveat in caveats {
        macaroon.add_caveat(caveat)?;
    }
    Ok(macaroon)
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

/// The condition reported when a token carries a third-party caveat.
pub const CONDITION_THIRD_PARTY: &str = "third-party caveat";

/// Checks the HMAC chain only: every first-party predicate is accepted
/// here, and [`check_caveats`] judges them once the chain is known good.
static CHAIN_VERIFIER: LazyLock<libmacaroon::Verifier> = LazyLock::new(|| {
    let mut v = libmacaroon::Verifier::default();
    v.satisfy_general(|_| true);
    v
});

/// Verifies a credential for a request: identifier, preimage, signature and
/// every caveat condition this crate mints. Returns the identifier.
pub fn verify(
    root_key: &RootKey,
    credential: &Credential,
    ctx: &VerifyContext<'_>,
) -> Result<Identifier, VerifyError> {
    let identifier = verify_signature(root_key, credential)?;
    check_caveats(&credential.macaroon.caveats(), ctx)?;
    Ok(identifier)
}

/// The request-independent half of [`verify`]: the identifier, the proof of
/// payment and the HMAC chain. Its result depends only on the credential's
/// bytes and the root key, so a server may remember it per credential and
/// run only [`check_caveats`] (which depends on the request and the time)
/// on later requests.
pub fn verify_signature(
    root_key: &RootKey,
    credential: &Credential,
) -> Result<Identifier, VerifyError> {
    let macaroon = &credential.macaroon;

    // 1. The identifier: public, and where the payment hash lives.
    let identifier = macaroon.identifier()?;

    // 2. Proof of payment.
    if !credential.preimage.matches(&identifier.payment_hash) {
        return Err(VerifyError::PreimageMismatch);
    }

    // 3. L402 tokens never carry third-party caveats; refuse them before
    //    any key work rather than rely on a missing discharge.
    if macaroon.has_third_party_caveats() {
        return Err(VerifyError::Caveat {
            condition: CONDITION_THIRD_PARTY.to_owned(),
            reason: "L402 tokens carry first-party caveats only".to_owned(),
        });
    }

    // 4. The HMAC chain under this token's secret.
    let key = root_key.macaroon_key(&identifier);
    CHAIN_VERIFIER
        .verify(&macaroon.inner, &key, &[])
        .map_err(|_| VerifyError::Signature)?;
    Ok(identifier)
}

/// aperture's caveat rules for one request (see the module docs).
/// The request-dependent half of [`verify`]: every caveat condition this
/// crate mints, against the request's service, capability and time. Only
/// meaningful for caveats of a macaroon whose signature verified.
pub fn check_caveats(caveats: &[Caveat], ctx: &VerifyContext<'_>) -> Result<(), VerifyError> {
    let chain = |condition: &str| -> Vec<&str> {
        caveats
            .iter()
            .filter(|c| c.condition == condition)
            .map(|c| c.value.as_str())
            .collect()
    };

    // services=<name>:<tier>,...: later ones name a subset; the last names
    // the requested service.
    let services = chain(CONDITION_SERVICES);
    if services.is_empty() {
        return Err(VerifyError::NoServices);
    }
    let fail = |condition: &str, reason: String| VerifyError::Caveat {
        condition: condition.to_owned(),
        reason,
    };
    let parsed = services
        .iter()
        .map(|v| parse_services(v).map_err(|r| fail(CONDITION_SERVICES, r)))
        .collect::<Result<Vec<_>, _>>()?;
    for pair in parsed.windows(2) {
        if let [prev, cur] = pair
            && let Some(extra) = cur.iter().find(|s| !prev.contains(s))
        {
            return Err(fail(
                CONDITION_SERVICES,
                format!("service {extra} was not allowed by an earlier caveat"),
            ));
        }
    }
    if let Some(last) = parsed.last()
        && !last.contains(&ctx.service)
    {
        return Err(fail(
            CONDITION_SERVICES,
            format!("service {} is not among {}", ctx.service, last.join(",")),
        ));
    }

    // <service>_capabilities=<a>,<b>: later ones name a subset; the last
    // names the route's capability, when the route names one.
    let condition = format!("{}{SUFFIX_CAPABILITIES}", ctx.service);
    let capabilities: Vec<Vec<&str>> = chain(&condition)
        .into_iter()
        .map(|v| v.split(',').collect())
        .collect();
    for pair in capabilities.windows(2) {
        if let [prev, cur] = pair
            && let Some(extra) = cur.iter().find(|c| !prev.contains(c))
        {
            return Err(fail(
                &condition,
                format!("capability {extra} was not allowed by an earlier caveat"),
            ));
        }
    }
    // Stricter than aperture: a route that names a capability needs a
    // token that names it. A token without any capabilities caveat (minted
    // for another route of the same service) does not open it.
    if let Some(wanted) = ctx.capability {
        match capabilities.last() {
            Some(last) if last.contains(&wanted) => {}
            Some(last) => {
                return Err(fail(
                    &condition,
                    format!("capability {wanted} is not among {}", last.join(",")),
                ));
            }
            None => {
                return Err(fail(
                    &condition,
                    format!("the route needs capability {wanted}; the token names none"),
                ));
            }
        }
    }

    // <service>_valid_until=<unix secs>: later ones are no later; now must
    // be before the last.
    let condition = format!("{}{SUFFIX_VALID_UNTIL}", ctx.service);
    let times = chain(&condition)
        .into_iter()
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| fail(&condition, format!("{v:?} is not a unix time")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for pair in times.windows(2) {
        if let [prev, cur] = pair
            && cur > prev
        {
            return Err(fail(
                &condition,
                format!("{cur} is later than the earlier caveat's {prev}"),
            ));
        }
    }
    if let Some(&last) = times.last()
        && i128::from(ctx.now_unix) >= i128::from(last)
    {
        return Err(VerifyError::Expired);
    }
    Ok(())
}

/// The service names of a `services` value (`name:tier,...`; tiers are
/// checked for form but, as in aperture, not compared).
fn parse_services(value: &str) -> Result<Vec<&str>, String> {
    if value.is_empty() {
        return Err("no services listed".to_owned());
    }
    value
        .split(',')
        .map(|entry| match entry.split_once(':') {
            Some((name, tier))
                if !name.is_empty()
                    && !tier.contains(':')
                    && !tier.is_empty()
                    && tier.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(name)
            }
            _ => Err(format!("{entry:?} is not of the form name:tier")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(service: &str) -> VerifyContext<'_> {
        VerifyContext {
            service,
            capability: None,
            now_unix: 1000,
        }
    }

    #[test]
    fn token_secret_is_hmac_of_identifier() {
        // HMAC-SHA256(key = 32 x 0x01, message = 66-byte identifier),
        // computed independently with Python's hmac module.
        let id = Identifier {
            payment_hash: crate::lightning::PaymentHash([2; 32]),
            token_id: super::super::TokenId([3; 32]),
        };
        let secret = RootKey([1; 32]).token_secret(&id);
        assert_eq!(
            hex::encode(secret),
            "f54f4771f9d8a662828a919ef568b9831b0f3ceba8b7e2719d93b44d82f6c497"
        );
    }

    #[test]
    fn third_party_caveats_are_refused_before_the_signature() {
        use crate::lightning::Preimage;
        let preimage = Preimage([5; 32]);
        let id = Identifier {
            payment_hash: preimage.payment_hash(),
            token_id: super::super::TokenId([6; 32]),
        };
        let root = RootKey([7; 32]);
        let mut macaroon = mint(&root, &id, &[Caveat::services(["demo"])]);
        macaroon
            .inner
            .add_third_party_caveat(
                "https://elsewhere",
                &libmacaroon::MacaroonKey::generate(b"tp"),
                "tp-id",
            )
            .unwrap();
        let credential = Credential::new(macaroon, preimage);
        assert_eq!(
            verify(&root, &credential, &ctx("demo")),
            Err(VerifyError::Caveat {
                condition: CONDITION_THIRD_PARTY.into(),
                reason: "L402 tokens carry first-party caveats only".into(),
            })
        );
    }

    #[test]
    fn try_mint_reports_oversized_caveats() {
        let id = Identifier::new(crate::lightning::PaymentHash([1; 32]));
        let huge = Caveat::new("x", "y".repeat(70_000));
        assert!(matches!(
            try_mint(&RootKey([1; 32]), &id, &[huge]),
            Err(MacaroonError::Caveat(_))
        ));
    }

    #[test]
    fn services_parse_like_aperture() {
        assert_eq!(parse_services("a:0,b:1"), Ok(vec!["a", "b"]));
        assert!(parse_services("").is_err());
        assert!(parse_services("a").is_err());
        assert!(parse_services(":0").is_err());
        assert!(parse_services("a:x").is_err());
        assert!(parse_services("a:0:1").is_err());
        assert!(parse_services("a:0,").is_err());
    }

    #[test]
    fn unknown_and_other_service_conditions_are_ignored() {
        let caveats = [
            Caveat::services(["demo", "other"]),
            Caveat::valid_until("other", 1),
            Caveat::capabilities("other", ["x"]),
            Caveat::new("color", "blue"),
        ];
        assert_eq!(check_caveats(&caveats, &ctx("demo")), Ok(()));
    }

    #[test]
    fn expiry_is_exclusive() {
        let caveats = [
            Caveat::services(["demo"]),
            Caveat::valid_until("demo", 1000),
        ];
        assert_eq!(
            check_caveats(&caveats, &ctx("demo")),
            Err(VerifyError::Expired)
        );
        let caveats = [
            Caveat::services(["demo"]),
            Caveat::valid_until("demo", 1001),
        ];
        assert_eq!(check_caveats(&caveats, &ctx("demo")), Ok(()));
    }
}

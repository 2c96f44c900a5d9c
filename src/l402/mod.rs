//! The L402 protocol, with no I/O: the nouns a client and a server exchange.
//!
//! A server answers `402 Payment Required` with a [`Challenge`] (a macaroon
//! and a BOLT11 invoice) in `WWW-Authenticate`; the client pays the invoice
//! and sends back a [`Credential`] (the macaroon and the payment preimage)
//! in `Authorization`. The macaroon's [`Identifier`] binds it to the
//! invoice's payment hash; its [`Caveat`]s restrict what it grants. This
//! module parses and prints all of them, and mints and verifies macaroons
//! in the V2 binary format of Go's `gopkg.in/macaroon.v2`, which aperture
//! and lnget use. It knows nothing of HTTP clients, payments or storage.
//!
//! ```
//! use l402_mcp::l402::{
//!     Caveat, Challenge, Credential, Identifier, RootKey, VerifyContext, mint, verify,
//! };
//! use l402_mcp::lightning::Preimage;
//!
//! // Gateway: mint a token bound to the invoice's payment hash.
//! let root_key = RootKey::random();
//! let preimage = Preimage::random(); // known to the payee's node
//! let identifier = Identifier::new(preimage.payment_hash());
//! let macaroon = mint(&root_key, &identifier, &[Caveat::services(["demo"])]);
//! let challenge = format!(r#"L402 macaroon="{macaroon}", invoice="lnbcrt1...""#);
//!
//! // Client: parse the 402, pay, answer with the preimage.
//! let challenge: Challenge = challenge.parse()?;
//! let authorization = Credential::new(challenge.macaroon, preimage).to_string();
//!
//! // Gateway: check the credential, with no per-token state.
//! let credential = Credential::from_header_values([authorization.as_str()])?
//!     .expect("an L402 credential");
//! let ctx = VerifyContext { service: "demo", capability: None, now_unix: 1_767_225_600 };
//! assert_eq!(verify(&root_key, &credential, &ctx)?, identifier);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod caveat;
mod challenge;
mod credential;
mod identifier;
mod macaroon;
pub mod payment;
mod verify;

pub use caveat::{
    BASE_TIER, CONDITION_SERVICES, Caveat, CaveatError, SUFFIX_CAPABILITIES, SUFFIX_VALID_UNTIL,
};
pub use challenge::{
    Challenge, ChallengeError, MAX_CHALLENGE_HEADER_LEN, Scheme, parse_payment_challenges,
};
pub use credential::{Credential, CredentialError};
pub use identifier::{IDENTIFIER_LEN, IDENTIFIER_VERSION, Identifier, IdentifierError, TokenId};
pub use macaroon::{MACAROON_LOCATION, Macaroon, MacaroonError};
pub use verify::{
    CONDITION_THIRD_PARTY, RootKey, VerifyContext, VerifyError, check_caveats, mint, try_mint,
    verify, verify_signature,
};

//! Macaroons in the V2 binary format of Go's `gopkg.in/macaroon.v2`, on top
//! of `libmacaroon`. Standard base64 on the wire; URL-safe and unpadded
//! accepted.
//!
//! `libmacaroon` does the parsing and the HMAC chain; this file adds the
//! wire form L402 uses (standard padded base64 of the V2 binary, which
//! `libmacaroon` only offers URL-safe) and a `Debug` that never shows the
//! signature: a macaroon's signature is what makes it a bearer token.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{Caveat, Identifier, IdentifierError};

/// The location aperture writes into every L402 macaroon.
pub const MACAROON_LOCATION: &str = "lsat";

/// The first byte of the V2 binary format.
const V2_VERSION: u8 = 2;
// V2 field tags (libmacaroons doc/format.txt).
const TAG_EOS: u8 = 0;
const TAG_LOCATION: u8 = 1;
const TAG_IDENTIFIER: u8 = 2;
const TAG_VID: u8 = 4;
const TAG_SIGNATURE: u8 = 6;

/// Decodes the standard alphabet, padded or not; encodes padded.
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// Decodes the URL-safe alphabet, padded or not.
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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
    /// Nothing to parse.
    #[error("macaroon is empty")]
    Empty,
    /// A V2JSON macaroon; L402 carries the V2 binary format in base64.
    #[error("macaroon is V2JSON; L402 uses the base64 V2 binary format")]
    Json,
}

/// A parsed macaroon. Its `Debug` shows the identifier and caveats, never
/// the signature; `Display` is the standard-base64 V2 encoding.
#[derive(Clone)]
pub struct Macaroon {
    pub(crate) inner: libmacaroon::Macaroon,
}

impl Macaroon {
    /// Wraps a `libmacaroon` macaroon.
    pub(crate) fn from_inner(inner: libmacaroon::Macaroon) -> Self {
        Macaroon { inner }
    }

    /// Decodes the V2 binary encoding (V1 and V2JSON are refused).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MacaroonError> {
        match bytes.first() {
            None => Err(MacaroonError::Empty),
            Some(&V2_VERSION) => libmacaroon::Macaroon::deserialize_binary(bytes)
                .map(Macaroon::from_inner)
                .map_err(|e| MacaroonError::Decode(e.to_string())),
            Some(b'{') => Err(MacaroonError::Json),
            Some(other) => Err(MacaroonError::Decode(format!(
                "first byte is {other:#04x}, not the V2 binary format's 0x02"
            ))),
        }
    }

    /// The raw identifier bytes.
    pub fn raw_identifier(&self) -> &[u8] {
        self.inner.identifier()
    }

    /// The identifier decoded as aperture's 66-byte layout.
    pub fn identifier(&self) -> Result<Identifier, IdentifierError> {
        Identifier::from_bytes(self.raw_identifier())
    }

    /// The location (`lsat` for every L402 macaroon aperture or we mint).
    pub fn location(&self) -> Option<&str> {
        self.inner.location()
    }

    /// The first-party caveats, in order; ones not of the form
    /// `condition=value` are skipped (as aperture does).
    ///
    /// A predicate that is not UTF-8 is decoded lossily rather than
    /// skipped, so that `services=x<bad byte>` still counts as a `services`
    /// caveat (and then fails to parse) instead of silently vanishing.
    pub fn caveats(&self) -> Vec<Caveat> {
        self.inner
            .caveats()
            .iter()
            .filter_map(libmacaroon::Caveat::as_first_party)
            .filter_map(|fp| String::from_utf8_lossy(fp.predicate()).parse().ok())
            .collect()
    }

    /// True when the macaroon carries a third-party caveat (L402 tokens
    /// never do; a verifier refuses them).
    pub fn has_third_party_caveats(&self) -> bool {
        self.inner
            .caveats()
            .iter()
            .any(|c| c.as_third_party().is_some())
    }

    /// Adds a first-party caveat (a holder may only narrow a macaroon).
    pub fn add_caveat(&mut self, caveat: &Caveat) -> Result<(), MacaroonError> {
        self.inner
            .add_first_party_caveat(caveat.to_string())
            .map(|_| ())
            .map_err(|e| MacaroonError::Caveat(e.to_string()))
    }

    /// The V2 binary encoding.
    ///
    /// Written here rather than through `libmacaroon::Macaroon::serialize`,
    /// which only returns URL-safe base64 (and a `Result` that cannot fail);
    /// a unit test pins the two byte for byte.
    pub fn to_bytes(&self) -> Vec<u8> {
        let m = &self.inner;
        let mut out = Vec::with_capacity(128 + 64 * m.caveats().len());
        out.push(V2_VERSION);
        if let Some(location) = m.location() {
            put_field(&mut out, TAG_LOCATION, location.as_bytes());
        }
        put_field(&mut out, TAG_IDENTIFIER, m.identifier());
        out.push(TAG_EOS);
        for caveat in m.caveats() {
            match caveat {
                libmacaroon::Caveat::FirstParty(fp) => {
                    put_field(&mut out, TAG_IDENTIFIER, fp.predicate());
                }
                libmacaroon::Caveat::ThirdParty(tp) => {
                    put_field(&mut out, TAG_LOCATION, tp.location().as_bytes());
                    put_field(&mut out, TAG_IDENTIFIER, tp.id());
                    put_field(&mut out, TAG_VID, tp.verifier_id());
                }
            }
            out.push(TAG_EOS);
        }
        out.push(TAG_EOS);
        let signature: &[u8] = m.signature().as_ref();
        put_field(&mut out, TAG_SIGNATURE, signature);
        out
    }

    /// Standard, padded base64 of the V2 binary encoding.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.to_bytes())
    }
}

/// Appends one V2 field: tag, uvarint length, data.
fn put_field(out: &mut Vec<u8>, tag: u8, data: &[u8]) {
    out.push(tag);
    let mut n = data.len();
    while n >= 0x80 {
        // Truncation intended: the low seven bits, with the continuation bit.
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(data);
}

impl PartialEq for Macaroon {
    /// Byte equality of the V2 encodings, in constant time for equal
    /// lengths (the signature is a bearer secret).
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.to_bytes().ct_eq(&other.to_bytes()).into()
    }
}
impl Eq for Macaroon {}

impl FromStr for Macaroon {
    type Err = MacaroonError;
    /// Base64 (standard or URL-safe, padded or not) of the V2 binary
    /// format. No surrounding whitespace; V1 and V2JSON are refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(MacaroonError::Empty);
        }
        if s.starts_with('{') {
            return Err(MacaroonError::Json);
        }
        // One alphabet per token: `-`/`_` mean URL-safe, and a token that
        // mixes them with `+`/`/` then fails to decode.
        let engine = if s.contains(['-', '_']) {
            &URL_SAFE
        } else {
            &STANDARD
        };
        let bytes = engine.decode(s).map_err(|_| MacaroonError::Base64)?;
        Macaroon::from_bytes(&bytes)
    }
}

impl fmt::Display for Macaroon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for Macaroon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Prints its text without quotes or escapes.
        struct Raw(String);
        impl fmt::Debug for Raw {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        let mut s = f.debug_struct("Macaroon");
        match self.identifier() {
            Ok(id) => s.field("payment_hash", &Raw(id.payment_hash.to_hex())),
            Err(_) => s.field(
                "identifier",
                &Raw(format!(
                    "<{} bytes, not aperture's layout>",
                    self.raw_identifier().len()
                )),
            ),
        };
        let caveats: Vec<String> = self
            .inner
            .caveats()
            .iter()
            .map(|c| match c {
                libmacaroon::Caveat::FirstParty(fp) => {
                    String::from_utf8_lossy(fp.predicate()).into_owned()
                }
                libmacaroon::Caveat::ThirdParty(tp) => {
                    format!("<third-party caveat at {}>", tp.location())
                }
            })
            .collect();
        s.field("caveats", &caveats);
        s.finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l402::TokenId;
    use crate::lightning::PaymentHash;

    fn sample() -> Macaroon {
        let key = libmacaroon::MacaroonKey::generate(b"sample");
        let id = Identifier {
            payment_hash: PaymentHash([7; 32]),
            token_id: TokenId([9; 32]),
        };
        let mut m = Macaroon::from_inner(
            libmacaroon::Macaroon::create(Some(MACAROON_LOCATION), &key, id.to_bytes()).unwrap(),
        );
        m.add_caveat(&Caveat::services(["demo"])).unwrap();
        m.add_caveat(&Caveat::valid_until("demo", 42)).unwrap();
        m
    }

    #[test]
    fn binary_encoding_matches_libmacaroon() {
        let mut m = sample();
        // A long predicate exercises a two-byte length; a third-party
        // caveat exercises the location and vid fields.
        m.add_caveat(&Caveat::new("x", "y".repeat(300))).unwrap();
        m.inner
            .add_third_party_caveat(
                "https://elsewhere",
                &libmacaroon::MacaroonKey::generate(b"tp"),
                "tp-id",
            )
            .unwrap();
        let theirs = URL_SAFE
            .decode(m.inner.serialize(libmacaroon::Format::V2).unwrap())
            .unwrap();
        assert_eq!(m.to_bytes(), theirs);
        assert_eq!(Macaroon::from_bytes(&theirs).unwrap(), m);
    }

    #[test]
    fn base64_is_standard_padded_and_any_form_parses() {
        let m = sample();
        let std = m.to_base64();
        assert_eq!(std, STANDARD.encode(m.to_bytes()));
        let url = base64::engine::general_purpose::URL_SAFE.encode(m.to_bytes());
        for form in [
            std.clone(),
            std.trim_end_matches('=').to_owned(),
            url.clone(),
            url.trim_end_matches('=').to_owned(),
        ] {
            assert_eq!(form.parse::<Macaroon>().unwrap(), m, "{form}");
        }
    }

    #[test]
    fn bad_input_gives_exact_errors() {
        assert_eq!("".parse::<Macaroon>(), Err(MacaroonError::Empty));
        assert_eq!(
            r#"{"v":2,"i":"x","s64":"AA"}"#.parse::<Macaroon>(),
            Err(MacaroonError::Json)
        );
        assert_eq!(
            "not base64!".parse::<Macaroon>(),
            Err(MacaroonError::Base64)
        );
        assert_eq!("ab+_".parse::<Macaroon>(), Err(MacaroonError::Base64));
        // Base64 of "hello": not a macaroon.
        assert!(matches!(
            "aGVsbG8=".parse::<Macaroon>(),
            Err(MacaroonError::Decode(_))
        ));
        // A V2 macaroon cut short.
        let bytes = sample().to_bytes();
        assert!(matches!(
            Macaroon::from_bytes(&bytes[..bytes.len() - 1]),
            Err(MacaroonError::Decode(_))
        ));
        // A JSON macaroon in base64 is still JSON.
        assert_eq!(
            STANDARD.encode(b"{\"v\":2}").parse::<Macaroon>(),
            Err(MacaroonError::Json)
        );
    }

    #[test]
    fn debug_shows_hash_and_caveats_but_not_signature() {
        let m = sample();
        let debug = format!("{m:?}");
        assert_eq!(
            debug,
            format!(
                "Macaroon {{ payment_hash: {}, caveats: [\"services=demo:0\", \
                 \"demo_valid_until=42\"], .. }}",
                hex::encode([7; 32])
            )
        );
        let sig: &[u8] = m.inner.signature().as_ref();
        assert!(!debug.contains(&hex::encode(sig)));
    }

    #[test]
    fn caveats_skip_malformed_and_keep_order() {
        let mut m = sample();
        m.inner.add_first_party_caveat("no equals sign").unwrap();
        m.inner.add_first_party_caveat(b"services=\xff").unwrap();
        assert_eq!(
            m.caveats(),
            vec![
                Caveat::new("services", "demo:0"),
                Caveat::new("demo_valid_until", "42"),
                Caveat::new("services", "\u{fffd}"),
            ]
        );
    }
}

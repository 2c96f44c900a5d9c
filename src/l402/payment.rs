//! The `Payment` HTTP authentication scheme (the Machine Payments Protocol)
//! with its Lightning `charge` intent: the challenge, the charge request it
//! carries, the credential that answers it and the receipt, as aperture
//! v0.5.0 and lnget v1.1.0 put them on the wire (docs/PAYMENT-NOTES.md has
//! the sources, and where those two and the drafts disagree).
//!
//! ```text
//! WWW-Authenticate: Payment id="…", realm="…", method="lightning", intent="charge",
//!                   request="<base64url JSON>", expires="2026-03-25T20:15:00Z"
//! Authorization:    Payment <base64url {"challenge":{…echo…},"payload":{"preimage":"…"}}>
//! Payment-Receipt:  <base64url {"status":"success","method":"lightning",…}>
//! ```
//!
//! Every base64url is written without padding and read with or without it
//! (lnget refuses padding, the draft says to accept both). A challenge is
//! echoed in the credential exactly as received: `request` is never
//! re-encoded, since the server's HMAC over it decides.
//!
//! The server side binds a challenge without state: its `id` is an
//! HMAC-SHA256 over `realm|method|intent|request|expires|digest|opaque`
//! ([`challenge_id`], the draft's recommended binding and aperture's), so
//! a credential's echo is verified by recomputing it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::lightning::{PaymentHash, Preimage};

/// The scheme's name on the wire.
pub const PAYMENT_SCHEME: &str = "Payment";
/// The response header carrying the receipt.
pub const RECEIPT_HEADER: &str = "payment-receipt";
/// The only method this crate pays or sells.
pub const METHOD_LIGHTNING: &str = "lightning";
/// The only intent this crate pays or sells: one payment for one request.
pub const INTENT_CHARGE: &str = "charge";
/// Largest credential token read (aperture's limit: 64 KiB decoded).
pub const MAX_CREDENTIAL_LEN: usize = 87_400;

/// Why a `Payment` challenge, request, credential or receipt is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// A required challenge parameter is absent or empty.
    #[error("the Payment challenge has no {0} parameter")]
    MissingParam(&'static str),
    /// A parameter appears twice.
    #[error("the Payment challenge has the {0} parameter twice")]
    DuplicateParam(String),
    /// `expires` is not an RFC 3339 time.
    #[error("the Payment challenge's expires={0:?} is not an RFC 3339 time")]
    BadExpires(String),
    /// The `request` parameter does not decode as the charge request.
    #[error("the Payment challenge's request does not decode: {0}")]
    BadRequest(String),
    /// The credential does not decode.
    #[error("the Payment credential does not decode: {0}")]
    BadCredential(String),
    /// The receipt does not decode.
    #[error("the Payment-Receipt header does not decode: {0}")]
    BadReceipt(String),
}

/// One `Payment` challenge from `WWW-Authenticate`, any method or intent;
/// the values as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentChallenge {
    /// The server's binding of the other parameters.
    pub id: String,
    /// The protection space (aperture: its realm setting or listen address).
    pub realm: String,
    /// The payment method (`lightning`, or another registry entry).
    pub method: String,
    /// What is paid for (`charge`, `session`, ...).
    pub intent: String,
    /// The method's request object, base64url JSON, as received.
    pub request: String,
    /// When the challenge stops being accepted, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// A digest of the request body the challenge is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A human description (not covered by the binding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Server state echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

impl PaymentChallenge {
    /// Reads a challenge from its parameters (names case-insensitive,
    /// unknown ones ignored).
    pub(super) fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Result<PaymentChallenge, PaymentError> {
        const NAMES: [&str; 9] = [
            "id",
            "realm",
            "method",
            "intent",
            "request",
            "expires",
            "digest",
            "description",
            "opaque",
        ];
        let mut slots: [Option<String>; 9] = Default::default();
        for (name, value) in params {
            let Some(i) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)) else {
                continue;
            };
            if slots[i].is_some() {
                return Err(PaymentError::DuplicateParam(NAMES[i].to_owned()));
            }
            slots[i] = Some(value);
        }
        let [
            id,
            realm,
            method,
            intent,
            request,
            expires,
            digest,
            description,
            opaque,
        ] = slots;
        let required = |v: Option<String>, name: &'static str| {
            v.filter(|s| !s.is_empty())
                .ok_or(PaymentError::MissingParam(name))
        };
        Ok(PaymentChallenge {
            id: required(id, "id")?,
            realm: required(realm, "realm")?,
            method: required(method, "method")?,
            intent: required(intent, "intent")?,
            request: required(request, "request")?,
            expires: expires.filter(|s| !s.is_empty()),
            digest: digest.filter(|s| !s.is_empty()),
            description,
            opaque: opaque.filter(|s| !s.is_empty()),
        })
    }

    /// True for the one kind this crate pays: `method="lightning"`,
    /// `intent="charge"` (both case-sensitive, as the draft says).
    pub fn is_lightning_charge(&self) -> bool {
        self.method == METHOD_LIGHTNING && self.intent == INTENT_CHARGE
    }

    /// `method="…", intent="…"`, for sentences naming what is offered.
    pub fn kind(&self) -> String {
        format!("method={:?}, intent={:?}", self.method, self.intent)
    }

    /// The charge request inside `request`.
    pub fn charge(&self) -> Result<ChargeRequest, PaymentError> {
        ChargeRequest::decode(&self.request)
    }

    /// When the challenge expires, if it says.
    pub fn expires_at(&self) -> Result<Option<SystemTime>, PaymentError> {
        self.expires.as_deref().map(parse_time).transpose()
    }

    /// The `Authorization` value that answers this challenge with the
    /// payment's preimage: `Payment <base64url JSON>`, the challenge
    /// echoed as received.
    pub fn credential(&self, preimage: &Preimage) -> String {
        PaymentCredential {
            challenge: self.clone(),
            source: None,
            payload: Payload {
                preimage: preimage.to_hex(),
            },
        }
        .to_header()
    }
}

impl fmt::Display for PaymentChallenge {
    /// The `WWW-Authenticate` value, every value quoted (lnget cannot read
    /// unquoted ones), in aperture's order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PAYMENT_SCHEME} id=\"{}\", realm=\"{}\", method=\"{}\", intent=\"{}\", request=\"{}\"",
            Quoted(&self.id),
            Quoted(&self.realm),
            Quoted(&self.method),
            Quoted(&self.intent),
            Quoted(&self.request)
        )?;
        for (name, value) in [
            ("expires", &self.expires),
            ("digest", &self.digest),
            ("description", &self.description),
            ("opaque", &self.opaque),
        ] {
            if let Some(v) = value {
                write!(f, ", {name}=\"{}\"", Quoted(v))?;
            }
        }
        Ok(())
    }
}

/// The inside of a quoted-string: `"` and `\` escaped.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

/// The Lightning `charge` request object (draft-lightning-charge): the
/// fields in the order JCS (RFC 8785) sorts them, so that serializing this
/// struct is the canonical form for the values we write (ASCII).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// The amount in satoshis, a decimal string.
    pub amount: String,
    /// Always `sat`.
    pub currency: String,
    /// What the payment is for (the invoice memo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The Lightning details.
    #[serde(rename = "methodDetails")]
    pub method_details: MethodDetails,
}

/// The Lightning part of a charge request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodDetails {
    /// The BOLT11 invoice: what is paid, and what every other field must
    /// agree with.
    pub invoice: String,
    /// `mainnet`, `regtest`, `signet` (aperture also passes on lnd's
    /// `testnet` and `simnet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The invoice's payment hash, lowercase hex.
    #[serde(
        default,
        rename = "paymentHash",
        skip_serializing_if = "Option::is_none"
    )]
    pub payment_hash: Option<String>,
}

impl ChargeRequest {
    /// A request for `amount_sats` paid by `invoice` (whose hash and
    /// network the request repeats, as aperture's verifier needs).
    pub fn new(amount_sats: u64, invoice: String, hash: &PaymentHash, network: &str) -> Self {
        ChargeRequest {
            amount: amount_sats.to_string(),
            currency: "sat".into(),
            description: None,
            method_details: MethodDetails {
                invoice,
                network: Some(network.into()),
                payment_hash: Some(hash.to_hex()),
            },
        }
    }

    /// Decodes `request` (base64url, padded or not, of JSON).
    pub fn decode(request: &str) -> Result<ChargeRequest, PaymentError> {
        let bytes = decode_b64url(request).map_err(PaymentError::BadRequest)?;
        serde_json::from_slice(&bytes).map_err(|e| PaymentError::BadRequest(e.to_string()))
    }

    /// The wire form: base64url without padding of the canonical JSON.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The amount in satoshis: a positive decimal integer with no sign,
    /// point or exponent (the draft's form), else why not.
    pub fn amount_sats(&self) -> Result<u64, String> {
        let a = self.amount.as_str();
        if a.is_empty() || !a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "amount {a:?} is not a whole number of satoshis written in digits"
            ));
        }
        match a.parse::<u64>() {
            Ok(0) => Err("amount is 0".into()),
            Ok(n) if n.checked_mul(1000).is_some() => Ok(n),
            _ => Err(format!("amount {a:?} is too large")),
        }
    }
}

/// The credential: the challenge echoed and the proof of payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCredential {
    /// The challenge, as the server sent it.
    pub challenge: PaymentChallenge,
    /// Who pays (optional; nobody uses it for Lightning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The method's proof.
    pub payload: Payload,
}

/// The Lightning charge proof.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The payment preimage, 64 lowercase hex characters.
    pub preimage: String,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Payload { preimage: <redacted> }")
    }
}

impl PaymentCredential {
    /// `Payment <base64url JSON>`: exactly one space after the scheme, as
    /// aperture's parser requires.
    pub fn to_header(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{PAYMENT_SCHEME} {}", URL_SAFE_NO_PAD.encode(json))
    }

    /// The `Payment` credential among `Authorization` values, if any (the
    /// scheme name case-insensitive); an error when one is there but does
    /// not decode.
    pub fn from_header_values<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<PaymentCredential>, PaymentError> {
        for value in values {
            let value = value.trim();
            let Some((scheme, token)) = value.split_once([' ', '\t']) else {
                continue;
            };
            if !scheme.eq_ignore_ascii_case(PAYMENT_SCHEME) {
                continue;
            }
            let token = token.trim();
            if token.len() > MAX_CREDENTIAL_LEN {
                return Err(PaymentError::BadCredential(format!(
                    "it is {} bytes; the limit is {MAX_CREDENTIAL_LEN}",
                    token.len()
                )));
            }
            let bytes = decode_b64url(token).map_err(PaymentError::BadCredential)?;
            let credential: PaymentCredential = serde_json::from_slice(&bytes)
                .map_err(|e| PaymentError::BadCredential(e.to_string()))?;
            return Ok(Some(credential));
        }
        Ok(None)
    }

    /// The preimage, if the payload holds 32 bytes of hex.
    pub fn preimage(&self) -> Result<Preimage, PaymentError> {
        let p = &self.payload.preimage;
        if p.len() != 64 {
            return Err(PaymentError::BadCredential(
                "payload.preimage is not 64 hex characters".into(),
            ));
        }
        p.parse()
            .map_err(|_| PaymentError::BadCredential("payload.preimage is not hex".into()))
    }
}

/// The `Payment-Receipt` of a paid answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReceipt {
    /// `success`.
    pub status: String,
    /// `lightning`.
    pub method: String,
    /// When, RFC 3339.
    pub timestamp: String,
    /// The payment hash, hex (never the preimage).
    pub reference: String,
    /// The challenge the payment answered.
    #[serde(
        default,
        rename = "challengeId",
        skip_serializing_if = "Option::is_none"
    )]
    pub challenge_id: Option<String>,
}

impl PaymentReceipt {
    /// A success receipt for the payment `hash` made on challenge `id`.
    pub fn success(hash: &PaymentHash, challenge_id: &str, at: SystemTime) -> Self {
        PaymentReceipt {
            status: "success".into(),
            method: METHOD_LIGHTNING.into(),
            timestamp: format_time(at),
            reference: hash.to_hex(),
            challenge_id: Some(challenge_id.into()),
        }
    }

    /// The header value: base64url without padding of the JSON.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a header value (padded or not).
    pub fn decode(value: &str) -> Result<PaymentReceipt, PaymentError> {
        let bytes = decode_b64url(value.trim()).map_err(PaymentError::BadReceipt)?;
        serde_json::from_slice(&bytes).map_err(|e| PaymentError::BadReceipt(e.to_string()))
    }
}

/// The challenge `id` binding the other parameters under `key`:
/// base64url (no padding) of HMAC-SHA256 over the seven slots
/// `realm|method|intent|request|expires|digest|opaque`, an absent one
/// empty (the draft's recommended binding, as aperture computes it).
pub fn challenge_id(key: &[u8], c: &PaymentChallenge) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    let slots = [
        c.realm.as_str(),
        c.method.as_str(),
        c.intent.as_str(),
        c.request.as_str(),
        c.expires.as_deref().unwrap_or(""),
        c.digest.as_deref().unwrap_or(""),
        c.opaque.as_deref().unwrap_or(""),
    ];
    for (i, slot) in slots.iter().enumerate() {
        if i > 0 {
            mac.update(b"|");
        }
        mac.update(slot.as_bytes());
    }
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// True when `c.id` is the binding of `c`'s other parameters under `key`
/// (compared in constant time).
pub fn verify_challenge_id(key: &[u8], c: &PaymentChallenge) -> bool {
    use subtle::ConstantTimeEq;
    let expected = challenge_id(key, c);
    expected.as_bytes().ct_eq(c.id.as_bytes()).into()
}

/// An RFC 3339 time, to the second, in UTC (`2026-03-25T20:15:00Z`).
pub fn format_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    chrono::DateTime::<chrono::Utc>::from_timestamp(i64::try_from(secs).unwrap_or(0), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Reads an RFC 3339 time (any offset, fractions allowed).
pub fn parse_time(s: &str) -> Result<SystemTime, PaymentError> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|_| PaymentError::BadExpires(s.to_owned()))?;
    let secs = u64::try_from(t.timestamp()).map_err(|_| PaymentError::BadExpires(s.to_owned()))?;
    Ok(UNIX_EPOCH
        + Duration::from_secs(secs)
        + Duration::from_nanos(t.timestamp_subsec_nanos().into()))
}

/// base64url, with or without `=` padding; the error says why not.
fn decode_b64url(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("not base64url ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> PaymentChallenge {
        // The request of docs/PAYMENT-NOTES.md's example.
        let request = "eyJhbW91bnQiOiIxMDAiLCJjdXJyZW5jeSI6InNhdCIsIm1ldGhvZERldGFpbHMiOnsiaW52b2ljZSI6ImxuYmNydDF1MXBFWEFNUExFIiwibmV0d29yayI6InJlZ3Rlc3QiLCJwYXltZW50SGFzaCI6ImVjNDkxNmRkMjhmYzRjMTBkNzhlMjg3Y2E1ZDljYzUxZWUxYWU3M2NiZmRlMDhjNmIzNzMyNGNiZmFhYzhiYzUifX0";
        PaymentChallenge {
            id: String::new(),
            realm: "api.example.com".into(),
            method: "lightning".into(),
            intent: "charge".into(),
            request: request.into(),
            expires: Some("2026-03-25T20:15:00Z".into()),
            digest: None,
            description: None,
            opaque: None,
        }
    }

    #[test]
    fn the_challenge_id_is_aperture_s_hmac_layout() {
        // aperture's published vector (mpp/testdata/vectors.json,
        // "required slots only").
        let c = PaymentChallenge {
            request: "eyJhbW91bnQiOiIxMDAifQ".into(),
            expires: None,
            ..vector()
        };
        assert_eq!(
            challenge_id(b"mpp-test-vector-secret", &c),
            "_9D0WlPoPRltxAd6AdpQd6auVOOeQGJ_J8BkGeBE_bU"
        );
        // With expires, under aperture's unit-test secret.
        let mut c = vector();
        c.id = challenge_id(b"test-server-secret-key-32-bytes!", &c);
        assert_eq!(c.id, "seSwG8GqLhSViwOlM_r49R4-pcF0JCqIz_i0cvbg-DY");
        assert!(verify_challenge_id(b"test-server-secret-key-32-bytes!", &c));
        assert!(!verify_challenge_id(b"another key", &c));
        // Any bound parameter changed breaks it; the description does not.
        for change in [
            |c: &mut PaymentChallenge| c.realm.push('x'),
            |c: &mut PaymentChallenge| c.request.push('A'),
            |c: &mut PaymentChallenge| c.expires = Some("2030-01-01T00:00:00Z".into()),
            |c: &mut PaymentChallenge| c.opaque = Some("x".into()),
        ] {
            let mut changed = c.clone();
            change(&mut changed);
            assert!(!verify_challenge_id(
                b"test-server-secret-key-32-bytes!",
                &changed
            ));
        }
        let mut described = c;
        described.description = Some("anything".into());
        assert!(verify_challenge_id(
            b"test-server-secret-key-32-bytes!",
            &described
        ));
    }

    #[test]
    fn the_request_decodes_and_encodes_canonically() {
        let c = vector();
        let r = c.charge().unwrap();
        assert_eq!(r.amount_sats(), Ok(100));
        assert_eq!(r.currency, "sat");
        assert_eq!(r.method_details.invoice, "lnbcrt1u1pEXAMPLE");
        assert_eq!(r.method_details.network.as_deref(), Some("regtest"));
        // Our encoding of the same values is aperture's byte for byte.
        assert_eq!(r.encode(), c.request);
        // Padded input is read too.
        let padded = format!("{}==", c.request);
        assert_eq!(ChargeRequest::decode(&padded).unwrap(), r);
        for bad in ["-1", "1.5", "1e3", "", " 1", "0", "99999999999999999999"] {
            let mut r = r.clone();
            r.amount = bad.into();
            assert!(r.amount_sats().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_credential_echoes_the_challenge_and_reads_back() {
        let mut c = vector();
        c.id = "seSwG8GqLhSViwOlM_r49R4-pcF0JCqIz_i0cvbg-DY".into();
        let preimage: Preimage = format!("{:064x}", 1).parse().unwrap();
        let header = c.credential(&preimage);
        assert!(header.starts_with("Payment "), "{header}");
        assert!(!header.ends_with('='));
        let back = PaymentCredential::from_header_values(["Bearer x", header.as_str()])
            .unwrap()
            .unwrap();
        assert_eq!(back.challenge, c);
        assert_eq!(back.preimage().unwrap(), preimage);
        let json: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(header.trim_start_matches("Payment "))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(json["challenge"]["request"], c.request);
        assert_eq!(json["payload"]["preimage"], "0".repeat(63) + "1");
        assert!(json["challenge"].get("digest").is_none());
        // Other schemes are not ours; a broken Payment one is an error.
        assert_eq!(
            PaymentCredential::from_header_values(["L402 a:b"]),
            Ok(None)
        );
        assert!(PaymentCredential::from_header_values(["payment !!"]).is_err());
        assert!(!format!("{back:?}").contains(&"0".repeat(63)));
    }

    #[test]
    fn the_challenge_prints_quoted_and_reads_back() {
        let c = PaymentChallenge {
            description: Some(r#"a "quoted" \ thing"#.into()),
            ..vector()
        };
        let text = c.to_string();
        assert!(text.starts_with(r#"Payment id="", realm="api.example.com", method="lightning""#));
        assert!(
            text.contains(r#"description="a \"quoted\" \\ thing""#),
            "{text}"
        );
    }

    #[test]
    fn the_receipt_round_trips_and_times_are_rfc3339() {
        let hash = Preimage::random().payment_hash();
        let at = UNIX_EPOCH + Duration::from_secs(1_774_469_700);
        let r = PaymentReceipt::success(&hash, "abc", at);
        assert_eq!(r.timestamp, "2026-03-25T20:15:00Z");
        assert_eq!(PaymentReceipt::decode(&r.encode()).unwrap(), r);
        assert_eq!(parse_time("2026-03-25T20:15:00Z").unwrap(), at);
        assert_eq!(parse_time("2026-03-25T21:15:00+01:00").unwrap(), at);
        assert!(parse_time("tomorrow").is_err());
    }
}

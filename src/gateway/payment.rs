//! The gateway's side of the `Payment` scheme (draft-httpauth-payment,
//! Lightning `charge`): issuing a challenge for a route, checking a
//! credential against the route it is presented on, the problem documents
//! of a refusal and the receipt of a paid answer. The nouns and their wire
//! forms are [`crate::l402::payment`]'s; docs/PAYMENT-NOTES.md ("Our
//! gateway") says what differs from aperture and why.
//!
//! Statelessly bound, spent once:
//!
//! - `id` is the HMAC of the other parameters ([`challenge_id`], aperture's
//!   layout) under a key derived from the root key with domain separation
//!   ([`challenge_key`]), never the root key itself: the macaroon HMACs and
//!   the challenge ids can never be confused, and the key rotates with the
//!   root key.
//! - The route is bound twice over, both inside the HMAC: `realm` is the
//!   route's service name, and `opaque` names the route itself (method,
//!   path, match). The echoed `amount` must also be this route's price. A
//!   credential bought for a cheap route is refused on a dear one.
//! - `expires` is no later than the invoice's own expiry.
//! - Verification needs no database; the one state is the spent-set, where
//!   the payment hash is claimed before the request is served, as for a
//!   single-use L402 token (the same set, the same key).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::config::RouteConfig;
use super::metrics::Refusal;
use crate::l402::RootKey;
use crate::l402::payment::{
    ChargeRequest, INTENT_CHARGE, METHOD_LIGHTNING, PaymentChallenge, PaymentCredential,
    PaymentReceipt, RECEIPT_HEADER, challenge_id, format_time, verify_challenge_id,
};
use crate::lightning::{Invoice, IssuedInvoice, Network, PaymentHash};

/// The domain separator of the challenge-id key.
pub(super) const CHALLENGE_KEY_CONTEXT: &[u8] = b"l402-mcp payment challenge id v1";

/// The problem type URIs' common prefix (RFC 9457 `type`).
pub(super) const PROBLEM_BASE: &str = "https://paymentauth.org/problems/";

/// The key challenge ids are computed under:
/// `HMAC-SHA256(root_key, "l402-mcp payment challenge id v1")`.
pub(super) fn challenge_key(root: &RootKey) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&root.0).expect("HMAC takes any key length");
    mac.update(CHALLENGE_KEY_CONTEXT);
    mac.finalize().into_bytes().into()
}

/// The draft's name for `network`, or `None` for one it cannot name
/// (testnet, simnet: a `Payment` route cannot be sold there).
pub(super) fn network_name(network: Network) -> Option<&'static str> {
    match network {
        Network::Mainnet => Some("mainnet"),
        Network::Regtest => Some("regtest"),
        Network::Signet => Some("signet"),
        Network::Testnet | Network::Simnet => None,
    }
}

/// The route a challenge is bound to, as `opaque`: base64url (no padding)
/// of `{"method":…,"path":…,"match":…}`. Routes are unique by these three
/// (the configuration refuses a route listed twice).
pub(super) fn route_opaque(route: &RouteConfig) -> String {
    let json = json!({
        "method": route.method.to_ascii_uppercase(),
        "path": route.path,
        "match": match route.path_match {
            super::PathMatch::Exact => "exact",
            super::PathMatch::Prefix => "prefix",
        },
    });
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// A charge challenge for `route` paid by `invoice`, expiring at
/// `expires_unix` (the caller keeps it at or before the invoice's expiry).
pub(super) fn issue(
    key: &[u8],
    route: &RouteConfig,
    invoice: &IssuedInvoice,
    network: &str,
    expires_unix: u64,
) -> PaymentChallenge {
    let request = ChargeRequest::new(
        route.price_sats,
        invoice.bolt11.clone(),
        &invoice.payment_hash,
        network,
    );
    let mut challenge = PaymentChallenge {
        id: String::new(),
        realm: route.service_name(),
        method: METHOD_LIGHTNING.into(),
        intent: INTENT_CHARGE.into(),
        request: request.encode(),
        expires: Some(format_time(unix_time(expires_unix))),
        digest: None,
        description: None,
        opaque: Some(route_opaque(route)),
    };
    challenge.id = challenge_id(key, &challenge);
    challenge
}

/// `secs` after the epoch.
pub(super) fn unix_time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The problem types a `Payment` 402 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProblemType {
    /// No (usable) credential: pay the challenge.
    PaymentRequired,
    /// The credential does not decode, or its proof is not 32 bytes of hex.
    MalformedCredential,
    /// The challenge it answers was not issued here, was altered, has
    /// expired, was already used, or belongs to another route.
    InvalidChallenge,
    /// The preimage does not pay the challenge's invoice.
    VerificationFailed,
}

impl ProblemType {
    pub(super) fn slug(self) -> &'static str {
        match self {
            ProblemType::PaymentRequired => "payment-required",
            ProblemType::MalformedCredential => "malformed-credential",
            ProblemType::InvalidChallenge => "invalid-challenge",
            ProblemType::VerificationFailed => "verification-failed",
        }
    }

    pub(super) fn title(self) -> &'static str {
        match self {
            ProblemType::PaymentRequired => "Payment Required",
            ProblemType::MalformedCredential => "Malformed Credential",
            ProblemType::InvalidChallenge => "Invalid Challenge",
            ProblemType::VerificationFailed => "Verification Failed",
        }
    }
}

/// Why a 402 is sent: the type and a sentence saying what was wrong and
/// what to do (never a secret: it is also what the log says), and, for a
/// refused credential, the metrics' reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub kind: ProblemType,
    pub detail: String,
    pub reason: Refusal,
}

impl Problem {
    /// A problem whose reason follows from its type: `malformed` for a
    /// malformed credential, else `invalid` ([`because`](Self::because)
    /// says otherwise).
    pub(super) fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        let reason = match kind {
            ProblemType::MalformedCredential => Refusal::Malformed,
            _ => Refusal::Invalid,
        };
        Problem {
            kind,
            detail: detail.into(),
            reason,
        }
    }

    /// The same problem, counted for `reason`.
    pub(super) fn because(self, reason: Refusal) -> Self {
        Problem { reason, ..self }
    }

    /// The RFC 9457 document, with `extra` members added.
    pub(super) fn body(&self, extra: serde_json::Map<String, serde_json::Value>) -> String {
        let mut doc = serde_json::Map::new();
        doc.insert(
            "type".into(),
            format!("{PROBLEM_BASE}{}", self.kind.slug()).into(),
        );
        doc.insert("title".into(), self.kind.title().into());
        doc.insert("status".into(), 402.into());
        doc.insert("detail".into(), self.detail.clone().into());
        for (k, v) in extra {
            doc.entry(k).or_insert(v);
        }
        serde_json::Value::Object(doc).to_string()
    }
}

/// What a fresh challenge says to do next.
const RETRY: &str = "Pay the invoice of the fresh challenge in this response and present \
     its credential.";

fn invalid(detail: String) -> Problem {
    Problem::new(ProblemType::InvalidChallenge, format!("{detail} {RETRY}"))
}

/// A credential that passed every stateless check: what it paid, and for
/// which challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Accepted {
    /// The payment hash (the spent-set key, the receipt's reference).
    pub hash: PaymentHash,
    /// The challenge id (the receipt's `challengeId`).
    pub challenge_id: String,
    /// When the challenge expires, unix seconds.
    pub expires_unix: u64,
}

/// Checks a credential presented on `route` at `now` (unix seconds), with
/// no state: the kind, the HMAC id (constant time), the expiry, the route
/// binding (realm, opaque) and price, the invoice behind the echoed
/// request, and the preimage. Whether it was used already is the
/// spent-set's to say.
pub(super) fn verify(
    key: &[u8],
    route: &RouteConfig,
    credential: &PaymentCredential,
    now: u64,
) -> Result<Accepted, Problem> {
    let c = &credential.challenge;
    let preimage = credential.preimage().map_err(|_| {
        Problem::new(
            ProblemType::MalformedCredential,
            format!(
                "The credential's payload.preimage must be the payment's 32-byte preimage \
                 as 64 hex characters. {RETRY}"
            ),
        )
    })?;
    if !c.is_lightning_charge() {
        return Err(invalid(format!(
            "The credential answers a {} challenge; this gateway issues only \
             method=\"lightning\", intent=\"charge\" ones.",
            c.kind()
        )));
    }
    if !verify_challenge_id(key, c) {
        return Err(invalid(
            "The credential's challenge was not issued by this gateway, or one of its \
             parameters was altered."
                .into(),
        ));
    }
    // From here on the echo is what this gateway issued (under this root
    // key): the remaining checks bind it to this route and time.
    let service = route.service_name();
    if c.realm != service || c.opaque.as_deref() != Some(route_opaque(route).as_str()) {
        return Err(invalid(format!(
            "The credential's challenge was issued for another route (realm {:?}); this \
             route's realm is {service:?}.",
            c.realm
        ))
        .because(Refusal::WrongService));
    }
    let expires = match c.expires_at() {
        Ok(Some(t)) => t,
        _ => {
            return Err(invalid(
                "The credential's challenge has no usable expires.".into(),
            ));
        }
    };
    let expires_unix = expires
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if unix_time(now) > expires {
        return Err(invalid(format!(
            "The credential's challenge expired at {}.",
            format_time(expires)
        ))
        .because(Refusal::Expired));
    }
    let request = c.charge().map_err(|e| {
        invalid(format!(
            "The credential's challenge request is unusable: {e}."
        ))
    })?;
    let price_ok = request.currency == "sat" && request.amount_sats() == Ok(route.price_sats);
    if !price_ok {
        return Err(invalid(format!(
            "The credential's challenge asks {} {}; this route costs {} sat.",
            request.amount, request.currency, route.price_sats
        )));
    }
    let hash: PaymentHash = request
        .method_details
        .payment_hash
        .as_deref()
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| invalid("The credential's challenge has no paymentHash.".into()))?;
    let invoice_ok = request
        .method_details
        .invoice
        .parse::<Invoice>()
        .is_ok_and(|i| {
            i.payment_hash() == hash && i.amount_msat() == Some(route.price_sats * 1000)
        });
    if !invoice_ok {
        return Err(invalid(
            "The credential's challenge invoice does not match its paymentHash and amount.".into(),
        ));
    }
    if !preimage.matches(&hash) {
        return Err(Problem::new(
            ProblemType::VerificationFailed,
            format!(
                "The credential's preimage does not pay the challenge's invoice (its SHA-256 \
                 is not the paymentHash {hash}). Present the preimage the payment returned, \
                 or {}",
                RETRY.to_ascii_lowercase()
            ),
        ));
    }
    Ok(Accepted {
        hash,
        challenge_id: c.id.clone(),
        expires_unix,
    })
}

/// A 503 on the `Payment` path: the gateway could not tell whether the
/// credential was used (its spent-set failed), so it was not. An RFC 9457
/// document as every other answer there, of type `about:blank` (the
/// drafts define no type for a server that cannot decide; `about:blank`
/// says the status is the whole story), with the gateway's usual
/// `error` member holding the same sentence, and no fresh challenge: the
/// client should present the same credential again later.
pub(super) fn unavailable(detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": detail,
        "error": detail,
    });
    let mut resp = Response::new(axum::body::Body::from(body.to_string()));
    *resp.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Adds the receipt of a paid 2xx answer: `Payment-Receipt` and
/// `Cache-Control: private` (a paid answer and its receipt are this
/// client's only; an upstream's `no-store` or `private`, which say as
/// much or more, is kept). Nothing on any other status (the draft: a
/// receipt only with success).
pub(super) fn add_receipt(resp: &mut Response, accepted: &Accepted, now: u64) {
    if !resp.status().is_success() {
        return;
    }
    let receipt = PaymentReceipt::success(&accepted.hash, &accepted.challenge_id, unix_time(now));
    let Ok(value) = HeaderValue::from_str(&receipt.encode()) else {
        return;
    };
    let headers = resp.headers_mut();
    headers.insert(RECEIPT_HEADER, value);
    let strict = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("private")
        });
    if !strict {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::GatewayConfig;
    use crate::lightning::Preimage;

    fn routes() -> GatewayConfig {
        GatewayConfig::from_toml(
            "[[routes]]\npath = \"/cheap\"\nprice_sats = 1\ndemo = \"demo\"\nscheme = \"payment\"\n\
             service = \"cheap\"\n\
             [[routes]]\npath = \"/dear\"\nprice_sats = 1\ndemo = \"demo\"\nscheme = \"payment\"\n\
             service = \"cheap\"\n[[routes]]\npath = \"/cheap\"\nmethod = \"POST\"\n\
             price_sats = 1\ndemo = \"demo\"\nscheme = \"payment\"\nservice = \"cheap\"\n",
        )
        .unwrap()
    }

    /// A real regtest invoice for `sats`, and its preimage.
    async fn invoice(sats: u64) -> (IssuedInvoice, Preimage) {
        use crate::lightning::Invoicer;
        let node = crate::lightning::dev::DevNode::new();
        let issued = node
            .create_invoice(sats * 1000, "t", Duration::from_secs(600))
            .await
            .unwrap();
        let preimage = node.settle(&issued.bolt11).unwrap().preimage;
        (issued, preimage)
    }

    #[test]
    fn the_key_is_derived_with_domain_separation() {
        let root = RootKey([1; 32]);
        let key = challenge_key(&root);
        assert_ne!(key, root.0);
        assert_eq!(key, challenge_key(&RootKey([1; 32])));
        assert_ne!(key, challenge_key(&RootKey([2; 32])));
    }

    #[tokio::test]
    async fn a_challenge_verifies_only_on_its_own_route_and_until_it_expires() {
        let config = routes();
        let [cheap, same_service, other_method] = &config.routes[..] else {
            panic!()
        };
        let key = challenge_key(&RootKey([1; 32]));
        let (inv, preimage) = invoice(1).await;
        let c = issue(&key, cheap, &inv, "regtest", 1_000);
        let credential = PaymentCredential::from_header_values([c.credential(&preimage).as_str()])
            .unwrap()
            .unwrap();
        let ok = verify(&key, cheap, &credential, 1_000).unwrap();
        assert_eq!(ok.hash, inv.payment_hash);
        assert_eq!(ok.challenge_id, c.id);
        assert_eq!(ok.expires_unix, 1_000);
        // Same service and price, another route: the opaque binding says no.
        for route in [same_service, other_method] {
            let err = verify(&key, route, &credential, 1_000).unwrap_err();
            assert_eq!(err.kind, ProblemType::InvalidChallenge, "{err:?}");
            assert_eq!(err.reason, Refusal::WrongService, "{err:?}");
        }
        // The route's price changed since: refused (whichever way).
        for price in [2, 1_000] {
            let repriced = RouteConfig {
                price_sats: price,
                ..cheap.clone()
            };
            let err = verify(&key, &repriced, &credential, 1_000).unwrap_err();
            assert!(
                err.detail.contains(&format!("costs {price} sat")),
                "{err:?}"
            );
            assert_eq!(err.reason, Refusal::Invalid, "{err:?}");
        }
        let err = verify(&key, cheap, &credential, 1_001).unwrap_err();
        assert!(err.detail.contains("expired"), "{err:?}");
        assert_eq!(err.reason, Refusal::Expired, "{err:?}");
        let other_key = challenge_key(&RootKey([2; 32]));
        assert_eq!(
            verify(&other_key, cheap, &credential, 1_000)
                .unwrap_err()
                .kind,
            ProblemType::InvalidChallenge
        );
        let mut wrong = credential;
        wrong.payload.preimage = Preimage::random().to_hex();
        let err = verify(&key, cheap, &wrong, 1_000).unwrap_err();
        assert_eq!(err.kind, ProblemType::VerificationFailed);
        assert_eq!(err.reason, Refusal::Invalid);
        wrong.payload.preimage = "00".into();
        let err = verify(&key, cheap, &wrong, 1_000).unwrap_err();
        assert_eq!(err.kind, ProblemType::MalformedCredential);
        assert_eq!(err.reason, Refusal::Malformed);
    }

    #[test]
    fn the_receipt_goes_on_2xx_only_and_keeps_a_stricter_cache_control() {
        let accepted = Accepted {
            hash: PaymentHash([5; 32]),
            challenge_id: "cid".into(),
            expires_unix: 0,
        };
        let answer = |status: u16, cache: Option<&'static str>| {
            let mut resp = Response::new(axum::body::Body::empty());
            *resp.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
            if let Some(c) = cache {
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static(c));
            }
            add_receipt(&mut resp, &accepted, 1_774_469_700);
            resp
        };
        let resp = answer(200, Some("public, max-age=60"));
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "private");
        let r = PaymentReceipt::decode(resp.headers()[RECEIPT_HEADER].to_str().unwrap()).unwrap();
        assert_eq!(r.reference, PaymentHash([5; 32]).to_hex());
        assert_eq!(r.challenge_id.as_deref(), Some("cid"));
        assert_eq!(r.timestamp, "2026-03-25T20:15:00Z");
        assert_eq!(
            answer(201, Some("no-store")).headers()[header::CACHE_CONTROL],
            "no-store"
        );
        assert_eq!(
            answer(204, None).headers()[header::CACHE_CONTROL],
            "private"
        );
        for status in [301, 404, 500] {
            let resp = answer(status, Some("public"));
            assert!(resp.headers().get(RECEIPT_HEADER).is_none());
            assert_eq!(resp.headers()[header::CACHE_CONTROL], "public");
        }
    }

    #[test]
    fn problems_are_rfc9457_documents() {
        let p = Problem::new(ProblemType::VerificationFailed, "Wrong.");
        let mut extra = serde_json::Map::new();
        extra.insert("price_sats".into(), 5.into());
        extra.insert("status".into(), 200.into());
        let doc: serde_json::Value = serde_json::from_str(&p.body(extra)).unwrap();
        assert_eq!(
            doc["type"],
            "https://paymentauth.org/problems/verification-failed"
        );
        assert_eq!(doc["title"], "Verification Failed");
        assert_eq!(doc["status"], 402);
        assert_eq!(doc["detail"], "Wrong.");
        assert_eq!(doc["price_sats"], 5);
    }
}

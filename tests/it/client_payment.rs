//! The client and the `Payment` scheme (Lightning charge): every check
//! refuses before paying, as for L402; a server that offers L402 and
//! `Payment` and honours one (aperture's `authscheme` trap) costs at most
//! one lost payment per origin, and none when both challenges carry one
//! invoice; a charge credential pays for one request.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lightning_invoice::Currency;

use l402_mcp::client::{
    ClientConfig, FetchError, FetchRequest, L402Client, PreferScheme, Refusal, TokenScheme,
    TokenStatus,
};
use l402_mcp::l402::payment::{
    ChargeRequest, PaymentChallenge, PaymentCredential, PaymentReceipt, challenge_id, format_time,
    verify_challenge_id,
};
use l402_mcp::l402::{
    Caveat, Challenge, Credential, Identifier, RootKey, Scheme, VerifyContext, mint, verify,
};
use l402_mcp::lightning::dev::{self, DevNode, DevPayer};
use l402_mcp::lightning::{Invoicer, PaymentHash};
use l402_mcp::store::Store;

use crate::client::{challenge_server, invoice};

const KEY: &[u8] = b"a test server's challenge key";

/// A Payment challenge for `bolt11`, bound under [`KEY`].
fn payment_challenge(request: &ChargeRequest, expires: SystemTime) -> PaymentChallenge {
    let mut c = PaymentChallenge {
        id: String::new(),
        realm: "test".into(),
        method: "lightning".into(),
        intent: "charge".into(),
        request: request.encode(),
        expires: Some(format_time(expires)),
        digest: None,
        description: None,
        opaque: None,
    };
    c.id = challenge_id(KEY, &c);
    c
}

fn soon() -> SystemTime {
    SystemTime::now() + Duration::from_secs(600)
}

// ---------------------------------------------------------------------------
// Refusals: a counting payer proves nothing is paid.

#[tokio::test]
async fn every_payment_check_refuses_with_its_error_and_pays_nothing() {
    let now = SystemTime::now();
    let h = [0xab; 32];
    let hash = PaymentHash(h);
    let inv = |msat: Option<u64>, currency| invoice(currency, msat, h, now);
    let req = |sats: u64, bolt11: String| ChargeRequest::new(sats, bolt11, &hash, "regtest");
    let header = |r: &ChargeRequest| payment_challenge(r, soon()).to_string();
    type Expect = Box<dyn Fn(&FetchError) -> bool>;
    let mismatch: fn(&FetchError) -> bool =
        |e| matches!(e, FetchError::Refused(Refusal::RequestMismatch(_)));
    let mut wrong_hash = req(21, inv(Some(21_000), Currency::Regtest));
    wrong_hash.method_details.payment_hash = Some("cd".repeat(32));
    let mut wrong_net = req(21, inv(Some(21_000), Currency::Regtest));
    wrong_net.method_details.network = Some("mainnet".into());
    let mut dollars = req(21, inv(Some(21_000), Currency::Regtest));
    dollars.currency = "usd".into();
    let mut fraction = req(21, inv(Some(21_000), Currency::Regtest));
    fraction.amount = "21.5".into();
    let ok = req(21, inv(Some(21_000), Currency::Regtest));
    let other_method = {
        let mut c = payment_challenge(&ok, soon());
        c.method = "tempo".into();
        c.to_string()
    };
    let session = {
        let mut c = payment_challenge(&ok, soon());
        c.intent = "session".into();
        c.to_string()
    };
    let undecodable = {
        let mut c = payment_challenge(&ok, soon());
        c.request = "!!".into();
        c.to_string()
    };
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "amountless invoice",
            header(&req(21, inv(None, Currency::Regtest))),
            Box::new(|e| matches!(e, FetchError::Refused(Refusal::Amountless))),
        ),
        (
            "request asks 21 sats, invoice 22",
            header(&req(21, inv(Some(22_000), Currency::Regtest))),
            Box::new(mismatch),
        ),
        (
            "paymentHash not the invoice's",
            header(&wrong_hash),
            Box::new(mismatch),
        ),
        (
            "network mainnet, invoice regtest",
            header(&wrong_net),
            Box::new(mismatch),
        ),
        ("currency usd", header(&dollars), Box::new(mismatch)),
        ("amount 21.5", header(&fraction), Box::new(mismatch)),
        (
            "mainnet invoice to a regtest payer",
            header(&req(21, inv(Some(21_000), Currency::Bitcoin))),
            Box::new(|e| matches!(e, FetchError::Refused(Refusal::WrongNetwork { .. }))),
        ),
        (
            "over the per-request cap",
            header(&req(2_000, inv(Some(2_000_000), Currency::Regtest))),
            Box::new(|e| matches!(e, FetchError::Refused(Refusal::OverCap { .. }))),
        ),
        (
            "challenge expired a minute ago",
            payment_challenge(&ok, now - Duration::from_secs(60)).to_string(),
            Box::new(
                |e| matches!(e, FetchError::Refused(Refusal::ChallengeExpiry(s)) if s.contains("expired")),
            ),
        ),
        (
            "challenge expires before a payment could complete",
            payment_challenge(&ok, now + Duration::from_secs(20)).to_string(),
            Box::new(
                |e| matches!(e, FetchError::Refused(Refusal::ChallengeExpiry(s)) if s.contains("payment timeout")),
            ),
        ),
        (
            "only another method",
            other_method,
            Box::new(
                |e| matches!(e, FetchError::Refused(Refusal::UnsupportedScheme(s)) if s.contains("tempo")),
            ),
        ),
        (
            "only the session intent",
            session,
            Box::new(
                |e| matches!(e, FetchError::Refused(Refusal::UnsupportedScheme(s)) if s.contains("session")),
            ),
        ),
        (
            "a request that does not decode",
            undecodable,
            Box::new(
                |e| matches!(e, FetchError::Refused(Refusal::UnsupportedScheme(s)) if s.contains("request")),
            ),
        ),
    ];
    for (name, header, expected) in cases {
        let server = challenge_server(header).await;
        let payer = Arc::new(crate::client::CountingPayer::default());
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("s.sqlite")).unwrap());
        let config = ClientConfig {
            allowed_origins: vec![server.url.clone()],
            prefer_scheme: PreferScheme::Payment,
            ..Default::default()
        };
        let client = L402Client::new(config, payer.clone(), store).unwrap();
        let err = client
            .fetch(FetchRequest::get(&server.url))
            .await
            .unwrap_err();
        assert!(expected(&err), "{name}: got {err:?}");
        assert_eq!(err.exit_code(), 2, "{name}: {err}");
        assert_eq!(payer.calls.load(Ordering::SeqCst), 0, "{name}: paid");
        let preview = client
            .preview(&server.url, reqwest::Method::GET)
            .await
            .unwrap();
        assert!(!preview.would_pay, "{name}: preview would pay");
        assert_eq!(
            payer.calls.load(Ordering::SeqCst),
            0,
            "{name}: preview paid"
        );
    }
}

// ---------------------------------------------------------------------------
// A server that offers and honours what it is told, aperture-style: LSAT
// and L402 (one invoice), then Payment (another invoice, or the same).

struct Fake {
    node: Arc<DevNode>,
    root: RootKey,
    offer_l402: bool,
    offer_payment: bool,
    same_invoice: bool,
    accept_l402: bool,
    accept_payment: bool,
    /// Payment challenge ids accepted once already.
    spent: Mutex<HashSet<String>>,
    /// Stall the next Payment credential past the client's request timeout
    /// (and do not spend it: an upstream that never answered).
    stall_next_payment: AtomicBool,
    accepted_l402: AtomicUsize,
    accepted_payment: AtomicUsize,
}

impl Fake {
    fn new(offer: (bool, bool), accept: (bool, bool), same_invoice: bool) -> Fake {
        Fake {
            node: Arc::new(DevNode::new()),
            root: RootKey([7; 32]),
            offer_l402: offer.0,
            offer_payment: offer.1,
            same_invoice,
            accept_l402: accept.0,
            accept_payment: accept.1,
            spent: Mutex::default(),
            stall_next_payment: AtomicBool::new(false),
            accepted_l402: AtomicUsize::new(0),
            accepted_payment: AtomicUsize::new(0),
        }
    }
}

async fn challenge(f: &Fake) -> Response {
    let a = f
        .node
        .create_invoice(21_000, "fake", Duration::from_secs(600))
        .await
        .unwrap();
    let mut resp = StatusCode::PAYMENT_REQUIRED.into_response();
    let h = resp.headers_mut();
    if f.offer_l402 {
        let macaroon = mint(
            &f.root,
            &Identifier::new(a.payment_hash),
            &[Caveat::services(["x"])],
        );
        for scheme in [Scheme::Lsat, Scheme::L402] {
            let c = Challenge {
                scheme,
                macaroon: macaroon.clone(),
                invoice: a.bolt11.clone(),
                version: None,
            };
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&c.to_string()).unwrap(),
            );
        }
    }
    if f.offer_payment {
        let b = if f.same_invoice {
            a
        } else {
            f.node
                .create_invoice(21_000, "fake", Duration::from_secs(600))
                .await
                .unwrap()
        };
        let request = ChargeRequest::new(21, b.bolt11, &b.payment_hash, "regtest");
        let c = payment_challenge(&request, soon());
        h.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&c.to_string()).unwrap(),
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        *resp.body_mut() = axum::body::Body::from(
            r#"{"type":"https://paymentauth.org/problems/payment-required","title":"Payment Required","status":402}"#,
        );
    }
    resp
}

async fn handle(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    let auth: Vec<&str> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if let Ok(Some(c)) = Credential::from_header_values(auth.iter().copied()) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ctx = VerifyContext {
            service: "x",
            capability: None,
            now_unix: now,
        };
        if f.accept_l402 && verify(&f.root, &c, &ctx).is_ok() {
            f.accepted_l402.fetch_add(1, Ordering::SeqCst);
            return (StatusCode::OK, "paid with L402").into_response();
        }
        return challenge(&f).await;
    }
    if let Ok(Some(p)) = PaymentCredential::from_header_values(auth.iter().copied()) {
        if f.stall_next_payment.swap(false, Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return challenge(&f).await;
        }
        let request = p.challenge.charge().unwrap();
        let hash: PaymentHash = request
            .method_details
            .payment_hash
            .unwrap()
            .parse()
            .unwrap();
        let fresh = f.spent.lock().unwrap().insert(p.challenge.id.clone());
        if f.accept_payment
            && verify_challenge_id(KEY, &p.challenge)
            && p.preimage().is_ok_and(|pre| pre.matches(&hash))
            && fresh
        {
            f.accepted_payment.fetch_add(1, Ordering::SeqCst);
            let receipt = PaymentReceipt::success(&hash, &p.challenge.id, SystemTime::now());
            let mut resp = (StatusCode::OK, "paid with Payment").into_response();
            resp.headers_mut().insert(
                "payment-receipt",
                HeaderValue::from_str(&receipt.encode()).unwrap(),
            );
            return resp;
        }
        return challenge(&f).await;
    }
    challenge(&f).await
}

struct Running {
    url: String,
    fake: Arc<Fake>,
    client: L402Client,
    store: Arc<Store>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(fake: Fake, adjust: impl FnOnce(&mut ClientConfig)) -> Running {
    let fake = Arc::new(fake);
    let app = axum::Router::new()
        .route("/x", axum::routing::get(handle))
        .with_state(fake.clone())
        .merge(dev::router(fake.node.clone()));
    let (base, stop) = crate::common::serve_local(app).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.sqlite")).unwrap());
    let mut config = ClientConfig {
        allowed_origins: vec![base.clone()],
        ..Default::default()
    };
    adjust(&mut config);
    let payer = Arc::new(DevPayer::new(&base).unwrap());
    let client = L402Client::new(config, payer, store.clone()).unwrap();
    Running {
        url: format!("{base}/x"),
        fake,
        client,
        store,
        _stop: stop,
        _dir: dir,
    }
}

fn paid(r: &Running) -> Vec<TokenScheme> {
    r.store
        .list_payments(None)
        .unwrap()
        .into_iter()
        .filter(|p| p.state.as_str() == "succeeded")
        .map(|p| p.scheme)
        .collect()
}

#[tokio::test]
async fn a_payment_only_server_is_paid_once_per_request_with_a_receipt() {
    let r = start(Fake::new((false, true), (false, true), false), |_| {}).await;
    let preview = r
        .client
        .preview(&r.url, reqwest::Method::GET)
        .await
        .unwrap();
    assert!(preview.would_pay);
    assert_eq!(preview.scheme, Some(TokenScheme::Payment));
    assert_eq!(preview.prefer_scheme, PreferScheme::L402);

    let first = r.client.fetch(FetchRequest::get(&r.url)).await.unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    let receipt = first.receipt.unwrap();
    assert!(receipt.paid);
    assert_eq!(receipt.scheme, TokenScheme::Payment);
    let server_receipt = receipt
        .payment_receipt
        .expect("the Payment-Receipt, decoded");
    assert_eq!(server_receipt.reference, receipt.payment_hash.to_hex());
    assert_eq!(server_receipt.status, "success");

    // A charge credential pays for one request: the next one pays again.
    let second = r.client.fetch(FetchRequest::get(&r.url)).await.unwrap();
    assert_eq!(second.status, 200);
    assert!(second.receipt.unwrap().paid);
    assert_eq!(paid(&r), [TokenScheme::Payment, TokenScheme::Payment]);
    assert_eq!(r.fake.accepted_payment.load(Ordering::SeqCst), 2);
    // Both are kept, used; the receipt is stored with the first.
    let tokens = r.client.tokens().await.unwrap();
    assert_eq!(tokens.len(), 2);
    for t in &tokens {
        assert_eq!(
            (t.scheme, t.status),
            (TokenScheme::Payment, TokenStatus::Stale)
        );
        assert_eq!(t.bound_path.as_deref(), Some("/x"));
        assert!(t.receipt.is_some());
    }
}

#[tokio::test]
async fn aperture_s_trap_costs_one_payment_at_most_and_the_origin_is_then_paid_right() {
    // Offers L402 and Payment for two invoices, honours Payment only
    // (aperture v0.5.0 with authscheme: mpp).
    let r = start(Fake::new((true, true), (false, true), false), |_| {}).await;
    let first = r.client.fetch(FetchRequest::get(&r.url)).await.unwrap();
    assert_eq!(first.status, 402);
    let receipt = first.receipt.unwrap();
    assert!(receipt.paid);
    let note = receipt.note.unwrap();
    assert!(
        note.contains("bought nothing") && note.contains("paid with Payment"),
        "{note}"
    );
    assert_eq!(paid(&r), [TokenScheme::L402]);
    // The next fetch pays Payment, and every later one too; L402 never again.
    let preview = r
        .client
        .preview(&r.url, reqwest::Method::GET)
        .await
        .unwrap();
    assert_eq!(preview.scheme, Some(TokenScheme::Payment));
    for _ in 0..2 {
        let next = r.client.fetch(FetchRequest::get(&r.url)).await.unwrap();
        assert_eq!(next.status, 200, "{next:?}");
        assert_eq!(next.receipt.unwrap().scheme, TokenScheme::Payment);
    }
    assert_eq!(
        paid(&r),
        [
            TokenScheme::L402,
            TokenScheme::Payment,
            TokenScheme::Payment
        ]
    );
    // The memory is in the store: another client on it pays Payment first.
    let config = ClientConfig {
        allowed_origins: vec![r.url.trim_end_matches("/x").to_string()],
        ..Default::default()
    };
    let base = r.url.trim_end_matches("/x");
    let again = L402Client::new(
        config,
        Arc::new(DevPayer::new(base).unwrap()),
        r.store.clone(),
    )
    .unwrap();
    let next = again.fetch(FetchRequest::get(&r.url)).await.unwrap();
    assert_eq!(next.status, 200);
    assert_eq!(
        paid(&r).iter().filter(|s| **s == TokenScheme::L402).count(),
        1
    );
}

#[tokio::test]
async fn preferring_payment_an_mpp_server_loses_nothing() {
    let r = start(Fake::new((true, true), (false, true), false), |c| {
        c.prefer_scheme = PreferScheme::Payment;
    })
    .await;
    let first = r.client.fetch(FetchRequest::get(&r.url)).await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(paid(&r), [TokenScheme::Payment]);
}

#[tokio::test]
async fn one_invoice_for_both_schemes_a_refused_l402_credential_is_answered_with_payment() {
    // Both challenges carry the same invoice; only Payment is honoured.
    let r = start(Fake::new((true, true), (false, true), true), |_| {}).await;
    let first = r.client.fetch(FetchRequest::get(&r.url)).await.unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    let receipt = first.receipt.unwrap();
    assert_eq!(receipt.scheme, TokenScheme::Payment);
    assert!(receipt.note.unwrap().contains("nothing more was paid"));
    assert_eq!(
        paid(&r),
        [TokenScheme::L402],
        "one payment, made for the L402 challenge"
    );
    assert_eq!(r.fake.accepted_payment.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_server_taking_both_is_paid_by_the_preference() {
    // L402 preferred: one payment, the token reused.
    let r = start(Fake::new((true, true), (true, true), false), |_| {}).await;
    for _ in 0..2 {
        assert_eq!(
            r.client
                .fetch(FetchRequest::get(&r.url))
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(paid(&r), [TokenScheme::L402]);
    assert_eq!(r.fake.accepted_l402.load(Ordering::SeqCst), 2);
    // Payment preferred: one payment per request.
    let r = start(Fake::new((true, true), (true, true), false), |c| {
        c.prefer_scheme = PreferScheme::Payment;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            r.client
                .fetch(FetchRequest::get(&r.url))
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(paid(&r), [TokenScheme::Payment, TokenScheme::Payment]);
    assert_eq!(r.fake.accepted_l402.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_payment_credential_whose_answer_never_came_is_presented_once_later() {
    let r = start(Fake::new((false, true), (false, true), false), |c| {
        c.request_timeout = Duration::from_secs(1);
    })
    .await;
    r.fake.stall_next_payment.store(true, Ordering::SeqCst);
    let err = r.client.fetch(FetchRequest::get(&r.url)).await.unwrap_err();
    assert!(matches!(err, FetchError::Network(_)), "{err:?}");
    assert_eq!(paid(&r), [TokenScheme::Payment]);
    // The paid credential is kept, and the next fetch of that path
    // presents it instead of paying again.
    let next = r.client.fetch(FetchRequest::get(&r.url)).await.unwrap();
    assert_eq!(next.status, 200, "{next:?}");
    let receipt = next.receipt.unwrap();
    assert!(!receipt.paid, "paid again: {receipt:?}");
    assert_eq!(paid(&r), [TokenScheme::Payment]);
    // Used now: the one after that pays.
    let third = r.client.fetch(FetchRequest::get(&r.url)).await.unwrap();
    assert!(third.receipt.unwrap().paid);
    assert_eq!(paid(&r).len(), 2);
}

#[tokio::test]
async fn a_paid_payment_whose_server_answers_402_again_is_said_and_not_retried() {
    // Offers Payment, refuses every credential: one payment, then stop.
    let r = start(Fake::new((false, true), (false, false), false), |_| {}).await;
    let first = r.client.fetch(FetchRequest::get(&r.url)).await.unwrap();
    assert_eq!(first.status, 402);
    let receipt = first.receipt.as_ref().unwrap();
    assert!(receipt.note.as_ref().unwrap().contains("bought nothing"));
    assert!(
        first
            .problem()
            .unwrap()
            .starts_with("the server asks for payment")
    );
    assert_eq!(paid(&r), [TokenScheme::Payment]);
}

#[tokio::test]
async fn an_unknown_payment_outcome_is_resolved_and_its_credential_presented_not_paid_again() {
    // Our gateway's demo Payment route; the payer pays, then loses the answer.
    let gw = crate::common::TestGateway::start(l402_mcp::gateway::GatewayConfig::demo()).await;
    let payer = Arc::new(crate::client::ForgetfulPayer(
        DevPayer::new(&gw.base).unwrap(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s.sqlite")).unwrap());
    let config = ClientConfig {
        allowed_origins: vec![gw.base.clone()],
        ..Default::default()
    };
    let client = L402Client::new(config, payer, store.clone()).unwrap();
    let url = format!("{}/v1/charge", gw.base);
    let err = client.fetch(FetchRequest::get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::PaymentUnknown { .. }), "{err:?}");
    let pending = store.list_pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].info.scheme, TokenScheme::Payment);
    // The next fetch asks the backend, finds it paid, and presents the
    // credential it bought, at its path: no second payment.
    let next = client.fetch(FetchRequest::get(&url)).await.unwrap();
    assert_eq!(next.status, 200, "{next:?}");
    let receipt = next.receipt.unwrap();
    assert!(!receipt.paid, "{receipt:?}");
    assert_eq!(receipt.scheme, TokenScheme::Payment);
    assert_eq!(gw.node.settlements(), 1);
    // Used now: another request pays (and this payer loses that answer too).
    let err = client.fetch(FetchRequest::get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::PaymentUnknown { .. }), "{err:?}");
    assert_eq!(gw.node.settlements(), 2);
}

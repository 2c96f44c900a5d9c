//! The gateway's `Payment` scheme (lightning charge), over real sockets on
//! 127.0.0.1:0, paying through its embedded dev node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use l402_mcp::gateway::{Gateway, GatewayConfig, SqliteSpentSet};
use l402_mcp::l402::payment::{PaymentChallenge, PaymentReceipt};
use l402_mcp::l402::{Challenge, RootKey, Scheme, parse_payment_challenges};
use l402_mcp::lightning::{Invoice, InvoicerError, IssuedInvoice, Network, PaymentHash, Preimage};
use serde_json::Value;

use crate::common::{EchoUpstream, TestGateway, pay_dev};

/// `/cheap` (1 sat) and `/dear` (50 sat) take Payment only; `/both-once`
/// (7 sat, single-use) and `/both` (5 sat, reusable) take both schemes;
/// `/l402` (3 sat) takes L402 only. Challenges are not rate-limited here:
/// every refusal carries a fresh one.
fn config(extra: &str) -> GatewayConfig {
    GatewayConfig::from_toml(&format!(
        r#"
        [rate_limit]
        challenges_per_minute = 10000
        burst = 10000

        [[routes]]
        path = "/cheap"
        method = "GET"
        price_sats = 1
        demo = "demo"
        scheme = "payment"

        [[routes]]
        path = "/dear"
        method = "GET"
        price_sats = 50
        demo = "data"
        scheme = "payment"

        [[routes]]
        path = "/both-once"
        method = "GET"
        price_sats = 7
        demo = "demo"
        token = "single-use"
        scheme = "both"

        [[routes]]
        path = "/both"
        method = "GET"
        price_sats = 5
        demo = "demo"
        scheme = "both"

        [[routes]]
        path = "/l402"
        method = "GET"
        price_sats = 3
        demo = "demo"
        {extra}
        "#
    ))
    .unwrap()
}

fn www_authenticate(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The one Payment challenge of a 402.
fn payment_challenge(values: &[String]) -> PaymentChallenge {
    let mut found = parse_payment_challenges(values.iter().map(String::as_str));
    assert_eq!(found.len(), 1, "one Payment challenge: {values:?}");
    found.remove(0).unwrap()
}

/// A 402 with a problem document: its `WWW-Authenticate` values and body.
async fn problem(resp: reqwest::Response) -> (Vec<String>, Value) {
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    assert!(resp.headers().get("payment-receipt").is_none());
    let values = www_authenticate(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], 402, "{body}");
    assert!(body["title"].is_string(), "{body}");
    assert!(body["detail"].as_str().unwrap().ends_with('.'), "{body}");
    (values, body)
}

/// A refusal: a 402 of type `kind`, with a fresh Payment challenge.
async fn refused(resp: reqwest::Response, kind: &str) -> (PaymentChallenge, String) {
    let (values, body) = problem(resp).await;
    assert_eq!(
        body["type"],
        format!("https://paymentauth.org/problems/{kind}"),
        "{body}"
    );
    (
        payment_challenge(&values),
        body["detail"].as_str().unwrap().to_string(),
    )
}

/// Asks `path` for its Payment challenge.
async fn ask(gw: &TestGateway, path: &str) -> PaymentChallenge {
    let (values, body) = problem(gw.get(path).await).await;
    assert_eq!(
        body["type"], "https://paymentauth.org/problems/payment-required",
        "{body}"
    );
    payment_challenge(&values)
}

/// Buys a Payment credential for `path`: the `Authorization` value, the
/// challenge and the preimage.
async fn buy(gw: &TestGateway, path: &str) -> (String, PaymentChallenge, Preimage) {
    let c = ask(gw, path).await;
    let invoice = c.charge().unwrap().method_details.invoice;
    let preimage = pay_dev(&gw.base, &invoice).await;
    (c.credential(&preimage), c, preimage)
}

fn receipt(resp: &reqwest::Response) -> PaymentReceipt {
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "private");
    PaymentReceipt::decode(resp.headers()["payment-receipt"].to_str().unwrap()).unwrap()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_payment_route_offers_exactly_one_payment_challenge_and_a_problem_document() {
    let gw = TestGateway::start(config("")).await;
    let resp = gw.get("/cheap").await;
    let (values, body) = problem(resp).await;
    assert_eq!(values.len(), 1, "only the Payment challenge: {values:?}");
    assert!(values[0].starts_with("Payment id=\""), "{}", values[0]);
    assert!(
        Challenge::parse_all(values.iter().map(String::as_str)).is_err(),
        "no L402 challenge on a payment route: {values:?}"
    );
    assert_eq!(
        body["type"],
        "https://paymentauth.org/problems/payment-required"
    );
    assert_eq!(body["title"], "Payment Required");
    assert!(
        body["detail"].as_str().unwrap().contains("Payment"),
        "{body}"
    );

    let c = payment_challenge(&values);
    // Every value quoted, in aperture's order; base64url never padded.
    assert_eq!(
        values[0],
        format!(
            "Payment id=\"{}\", realm=\"cheap\", method=\"lightning\", intent=\"charge\", \
             request=\"{}\", expires=\"{}\", opaque=\"{}\"",
            c.id,
            c.request,
            c.expires.as_deref().unwrap(),
            c.opaque.as_deref().unwrap()
        )
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(&c.id).unwrap().len(), 32);
    for b64 in [&c.id, &c.request, c.opaque.as_ref().unwrap()] {
        assert!(!b64.contains('='), "{b64}");
    }
    let request = c.charge().unwrap();
    assert_eq!(request.amount, "1");
    assert_eq!(request.currency, "sat");
    assert_eq!(request.method_details.network.as_deref(), Some("regtest"));
    let invoice: Invoice = request.method_details.invoice.parse().unwrap();
    assert_eq!(invoice.amount_msat(), Some(1000));
    assert_eq!(invoice.network(), Network::Regtest);
    assert_eq!(
        request.method_details.payment_hash.as_deref(),
        Some(invoice.payment_hash().to_hex().as_str())
    );
    // Our encoding is canonical: re-encoding the decoded request gives it back.
    assert_eq!(request.encode(), c.request);
    let expires = c.expires_at().unwrap().unwrap();
    assert!(expires <= invoice.expires_at(), "expires after the invoice");
    assert!(expires + Duration::from_secs(5) >= invoice.expires_at());
    assert_eq!(body["invoice"], request.method_details.invoice);
    assert_eq!(body["price_sats"], 1);

    // Every 402 has its own invoice and id.
    let again = ask(&gw, "/cheap").await;
    assert_ne!(again.id, c.id);
    assert_ne!(again.request, c.request);
}

#[tokio::test]
async fn a_paid_payment_credential_buys_one_answer_with_a_receipt() {
    let gw = TestGateway::start(config("")).await;
    let (credential, c, preimage) = buy(&gw, "/cheap").await;
    let resp = gw.get_with("/cheap", &credential).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let r = receipt(&resp);
    assert_eq!(r.status, "success");
    assert_eq!(r.method, "lightning");
    assert_eq!(r.reference, preimage.payment_hash().to_hex());
    assert_ne!(r.reference, preimage.to_hex());
    assert_eq!(r.challenge_id.as_deref(), Some(c.id.as_str()));
    let at = l402_mcp::l402::payment::parse_time(&r.timestamp).unwrap();
    assert!(at.duration_since(UNIX_EPOCH).unwrap().as_secs() + 5 >= now_unix());
    let body: Value = resp.json().await.unwrap();
    assert!(body.is_object(), "{body}");

    // The same credential again: spent.
    let resp = gw.get_with("/cheap", &credential).await;
    let (fresh, detail) = refused(resp, "invalid-challenge").await;
    assert!(detail.contains("already used"), "{detail}");
    assert_ne!(fresh.id, c.id, "a fresh challenge");
    // A new purchase works again.
    let (credential, _, _) = buy(&gw, "/cheap").await;
    assert_eq!(
        gw.get_with("/cheap", &credential).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_credential_for_a_cheap_route_is_refused_on_a_dear_one() {
    let gw = TestGateway::start(config("")).await;
    let (credential, c, preimage) = buy(&gw, "/cheap").await;
    let (_, detail) = refused(gw.get_with("/dear", &credential).await, "invalid-challenge").await;
    assert!(detail.contains("another route"), "{detail}");

    // Relabelled for the dear route (its realm and opaque), the id no
    // longer verifies.
    let dear = ask(&gw, "/dear").await;
    let relabelled = PaymentChallenge {
        realm: dear.realm.clone(),
        opaque: dear.opaque.clone(),
        ..c.clone()
    };
    let (_, detail) = refused(
        gw.get_with("/dear", &relabelled.credential(&preimage))
            .await,
        "invalid-challenge",
    )
    .await;
    assert!(detail.contains("not issued by this gateway"), "{detail}");

    // Refusals spent nothing: the credential still buys its cheap answer.
    let resp = gw.get_with("/cheap", &credential).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(receipt(&resp).challenge_id.as_deref(), Some(c.id.as_str()));
}

#[tokio::test]
async fn a_tampered_challenge_is_refused() {
    let gw = TestGateway::start(config("")).await;
    let (credential, c, preimage) = buy(&gw, "/dear").await;
    let mut cheaper = c.charge().unwrap();
    cheaper.amount = "1".into();
    let tamperings: Vec<(&str, PaymentChallenge)> = vec![
        (
            "request",
            PaymentChallenge {
                request: cheaper.encode(),
                ..c.clone()
            },
        ),
        (
            "realm",
            PaymentChallenge {
                realm: "cheap".into(),
                ..c.clone()
            },
        ),
        (
            "expires",
            PaymentChallenge {
                expires: Some("2099-01-01T00:00:00Z".into()),
                ..c.clone()
            },
        ),
        (
            "expires dropped",
            PaymentChallenge {
                expires: None,
                ..c.clone()
            },
        ),
        (
            "opaque dropped",
            PaymentChallenge {
                opaque: None,
                ..c.clone()
            },
        ),
        (
            "id",
            PaymentChallenge {
                id: ask(&gw, "/dear").await.id,
                ..c.clone()
            },
        ),
        (
            "method",
            PaymentChallenge {
                method: "tempo".into(),
                ..c.clone()
            },
        ),
    ];
    for (what, tampered) in tamperings {
        let resp = gw.get_with("/dear", &tampered.credential(&preimage)).await;
        let (_, detail) = refused(resp, "invalid-challenge").await;
        assert!(!detail.is_empty(), "{what}");
    }
    // A client-side description is not bound, and changes nothing.
    let described = PaymentChallenge {
        description: Some("anything".into()),
        ..c.clone()
    };
    assert_ne!(described.credential(&preimage), credential);
    assert_eq!(
        gw.get_with("/dear", &described.credential(&preimage))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_expired_challenge_is_refused() {
    let now = Arc::new(AtomicU64::new(now_unix()));
    let clock = now.clone();
    let gw = TestGateway::start_with(config(""), move |g| {
        g.with_clock(Arc::new(move || clock.load(Ordering::SeqCst)))
    })
    .await;
    let (credential, c, _) = buy(&gw, "/cheap").await;
    let expires = c
        .expires_at()
        .unwrap()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expires > now.load(Ordering::SeqCst) + 500,
        "invoice expiry is 600 s"
    );
    now.store(expires + 1, Ordering::SeqCst);
    let (_, detail) = refused(
        gw.get_with("/cheap", &credential).await,
        "invalid-challenge",
    )
    .await;
    assert!(detail.contains("expired"), "{detail}");
    // Up to its expiry it is good (the refusal spent nothing).
    now.store(expires, Ordering::SeqCst);
    assert_eq!(
        gw.get_with("/cheap", &credential).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_wrong_or_malformed_proof_is_refused() {
    let gw = TestGateway::start(config("")).await;
    let (credential, c, _) = buy(&gw, "/cheap").await;
    let wrong = c.credential(&Preimage::random());
    let (_, detail) = refused(gw.get_with("/cheap", &wrong).await, "verification-failed").await;
    assert!(detail.contains("preimage"), "{detail}");

    let json = |payload: &str| {
        let challenge = serde_json::to_string(&c).unwrap();
        format!(
            "Payment {}",
            URL_SAFE_NO_PAD.encode(format!(
                r#"{{"challenge":{challenge},"payload":{payload}}}"#
            ))
        )
    };
    for bad in [
        "Payment".to_string(),
        "Payment ".to_string(),
        "Payment !!!".to_string(),
        "payment eyJ9".to_string(),
        json(r#"{"preimage":"zz"}"#),
        json(r#"{"preimage":"00"}"#),
        json(r#"{}"#),
        json(r#""0000""#),
    ] {
        let resp = gw.get_with("/cheap", &bad).await;
        let (fresh, _) = refused(resp, "malformed-credential").await;
        assert!(!fresh.id.is_empty(), "{bad}");
    }
    // None of that spent the real one.
    assert_eq!(
        gw.get_with("/cheap", &credential).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn each_route_refuses_the_scheme_it_does_not_take_by_name() {
    let gw = TestGateway::start(config("")).await;
    // The L402 route offers L402 only.
    let resp = gw.get("/l402").await;
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let values = www_authenticate(&resp);
    assert_eq!(values.len(), 2, "{values:?}");
    assert!(parse_payment_challenges(values.iter().map(String::as_str)).is_empty());
    assert!(resp.headers().get(header::CACHE_CONTROL).is_none());

    let l402 = gw.buy("/l402").await;
    let (payment, _, _) = buy(&gw, "/cheap").await;
    // An L402 token on a Payment route: 402, the Payment scheme named.
    let (_, detail) = refused(gw.get_with("/cheap", &l402).await, "payment-required").await;
    assert!(
        detail.contains("takes the Payment scheme") && detail.contains("not L402"),
        "{detail}"
    );
    // A Payment credential on an L402 route: 401, the L402 scheme named.
    let resp = gw.get_with("/l402", &payment).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let json: Value = resp.json().await.unwrap();
    let sentence = json["error"].as_str().unwrap();
    assert!(
        sentence.contains("takes the L402 scheme") && sentence.contains("not Payment"),
        "{sentence}"
    );
    // Both still good where they belong.
    assert_eq!(gw.get_with("/l402", &l402).await.status(), StatusCode::OK);
    assert_eq!(
        gw.get_with("/cheap", &payment).await.status(),
        StatusCode::OK
    );
}

/// The L402 credential and the Payment one for a `both` route's 402,
/// paid once.
async fn buy_both(gw: &TestGateway, path: &str) -> (String, String, PaymentChallenge) {
    let resp = gw.get(path).await;
    let (values, body) = problem(resp).await;
    assert_eq!(
        body["type"],
        "https://paymentauth.org/problems/payment-required"
    );
    assert_eq!(values.len(), 3, "LSAT, L402, Payment: {values:?}");
    let l402 = Challenge::parse_all(values.iter().map(String::as_str)).unwrap();
    assert_eq!(l402.len(), 2);
    assert_eq!(l402[0].scheme, Scheme::Lsat);
    assert_eq!(l402[1].scheme, Scheme::L402);
    assert!(values[2].starts_with("Payment "), "{values:?}");
    let c = payment_challenge(&values);
    let request = c.charge().unwrap();
    // One invoice for all three challenges.
    assert_eq!(request.method_details.invoice, l402[1].invoice);
    assert_eq!(l402[0].invoice, l402[1].invoice);
    let hash = l402[1].macaroon.identifier().unwrap().payment_hash;
    assert_eq!(
        request.method_details.payment_hash.as_deref(),
        Some(hash.to_hex().as_str())
    );
    assert_eq!(body["macaroon"], l402[1].macaroon.to_base64());
    let preimage = pay_dev(&gw.base, &l402[1].invoice).await;
    let l402_credential = format!(
        "L402 {}:{}",
        l402[1].macaroon.to_base64(),
        preimage.to_hex()
    );
    (l402_credential, c.credential(&preimage), c)
}

#[tokio::test]
async fn on_a_single_use_both_route_one_payment_buys_one_request_whichever_credential() {
    let gw = TestGateway::start(config("")).await;
    // L402 first: then the Payment credential for the same invoice is spent.
    let (l402, payment, _) = buy_both(&gw, "/both-once").await;
    let resp = gw.get_with("/both-once", &l402).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("payment-receipt").is_none());
    let (_, detail) = refused(
        gw.get_with("/both-once", &payment).await,
        "invalid-challenge",
    )
    .await;
    assert!(detail.contains("already used"), "{detail}");

    // Payment first: then the L402 token is spent.
    let (l402, payment, c) = buy_both(&gw, "/both-once").await;
    let resp = gw.get_with("/both-once", &payment).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(receipt(&resp).challenge_id.as_deref(), Some(c.id.as_str()));
    let resp = gw.get_with("/both-once", &l402).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let json: Value = resp.json().await.unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("already used"),
        "{json}"
    );
}

#[tokio::test]
async fn on_a_reusable_both_route_the_token_stays_reusable_and_the_payment_credential_buys_one() {
    let gw = TestGateway::start(config("")).await;
    let (l402, payment, _) = buy_both(&gw, "/both").await;
    let resp = gw.get_with("/both", &payment).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        receipt(&resp).reference,
        l402.rsplit_once(':')
            .unwrap()
            .1
            .parse::<Preimage>()
            .unwrap()
            .payment_hash()
            .to_hex()
    );
    for _ in 0..2 {
        let resp = gw.get_with("/both", &l402).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get("payment-receipt").is_none());
    }
    refused(gw.get_with("/both", &payment).await, "invalid-challenge").await;
    // The L402 token is still good after that, and a bad one on a `both`
    // route keeps the L402 refusal (401).
    assert_eq!(gw.get_with("/both", &l402).await.status(), StatusCode::OK);
    let (macaroon, _) = l402.rsplit_once(':').unwrap();
    let wrong = format!("{macaroon}:{}", Preimage::random().to_hex());
    assert_eq!(
        gw.get_with("/both", &wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn proxy_mode_never_forwards_the_payment_credential() {
    let upstream = EchoUpstream::start().await;
    let gw = TestGateway::start(config(&format!(
        r#"
        [[routes]]
        path = "/api"
        match = "prefix"
        price_sats = 4
        scheme = "payment"
        upstream = "{}"
        "#,
        upstream.base
    )))
    .await;
    let (credential, c, preimage) = buy(&gw, "/api/items").await;
    let resp = gw
        .client
        .post(format!("{}/api/items?x=1", gw.base))
        .header(header::AUTHORIZATION, &credential)
        .header("x-custom", "kept")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(receipt(&resp).challenge_id.as_deref(), Some(c.id.as_str()));
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["path"], "/api/items");
    assert_eq!(echo["headers"]["x-custom"], "kept");
    assert!(
        echo["headers"].get("authorization").is_none(),
        "the credential reached the upstream: {echo}"
    );
    let text = echo.to_string();
    assert!(!text.contains(&preimage.to_hex()), "{text}");
    assert!(!text.contains(&credential["Payment ".len()..]), "{text}");

    // A non-2xx answer carries no receipt (and spends the credential:
    // the upstream answered).
    let (credential, _, _) = buy(&gw, "/api/x").await;
    let resp = gw.get_with("/api/status/418", &credential).await;
    assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT);
    assert!(resp.headers().get("payment-receipt").is_none());
    refused(
        gw.get_with("/api/status/418", &credential).await,
        "invalid-challenge",
    )
    .await;
}

#[tokio::test]
async fn a_payment_credential_is_not_spent_when_the_upstream_never_answered() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gw = TestGateway::start(config(&format!(
        r#"
        [[routes]]
        path = "/gen"
        price_sats = 4
        scheme = "payment"
        upstream = "http://127.0.0.1:{port}"
        "#
    )))
    .await;
    let (credential, _, _) = buy(&gw, "/gen").await;
    assert_eq!(
        gw.get_with("/gen", &credential).await.status(),
        StatusCode::BAD_GATEWAY
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            "answered"
        }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let resp = gw.get_with("/gen", &credential).await;
    assert_eq!(resp.status(), StatusCode::OK);
    receipt(&resp);
    refused(gw.get_with("/gen", &credential).await, "invalid-challenge").await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    server.abort();
}

#[tokio::test]
async fn fifty_concurrent_presentations_of_one_payment_credential_get_exactly_one_answer() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            "answered"
        }
    });
    let (upstream, _stop) = crate::common::serve_local(app).await;
    let dir = tempfile::tempdir().unwrap();
    let spent = Arc::new(SqliteSpentSet::open_in(dir.path()).unwrap());
    let gw = TestGateway::start_with(
        config(&format!(
            r#"
            [[routes]]
            path = "/once"
            price_sats = 4
            scheme = "payment"
            upstream = "{upstream}"
            "#
        )),
        move |g| g.with_spent_set(spent),
    )
    .await;
    for path in ["/once", "/cheap"] {
        let (credential, _, _) = buy(&gw, path).await;
        let requests = (0..50).map(|_| gw.get_with(path, &credential));
        let responses = futures_util::future::join_all(requests).await;
        let mut ok = 0;
        for resp in responses {
            if resp.status() == StatusCode::OK {
                ok += 1;
                receipt(&resp);
            } else {
                refused(resp, "invalid-challenge").await;
            }
        }
        assert_eq!(ok, 1, "{path}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "one forwarded request");
}

/// An invoicer on a network the Payment scheme cannot name.
#[derive(Debug)]
struct TestnetInvoicer;

#[async_trait::async_trait]
impl l402_mcp::lightning::Invoicer for TestnetInvoicer {
    fn network(&self) -> Network {
        Network::Testnet
    }
    async fn create_invoice(
        &self,
        _: u64,
        _: &str,
        _: Duration,
    ) -> Result<IssuedInvoice, InvoicerError> {
        Ok(IssuedInvoice {
            bolt11: String::new(),
            payment_hash: PaymentHash([0; 32]),
        })
    }
}

#[test]
fn a_payment_route_needs_a_network_the_scheme_can_name() {
    let err = Gateway::new(config(""), RootKey::random(), Arc::new(TestnetInvoicer))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("GET /cheap") && err.contains("testnet") && err.contains("scheme = \"l402\""),
        "{err}"
    );
    let l402_only =
        GatewayConfig::from_toml("[[routes]]\npath = \"/a\"\nprice_sats = 1\ndemo = \"demo\"\n")
            .unwrap();
    Gateway::new(l402_only, RootKey::random(), Arc::new(TestnetInvoicer)).unwrap();
}

#[tokio::test]
async fn a_credential_bought_before_the_route_was_repriced_is_refused() {
    use axum::body::Body;
    use l402_mcp::lightning::dev::DevNode;
    use tower::ServiceExt;

    // Two gateways with one root key (a restart with a new config): the
    // challenge verifies under both, the price only under the first.
    let node = Arc::new(DevNode::new());
    let priced = |sats: u64| {
        let config = GatewayConfig::from_toml(&format!(
            "[[routes]]\npath = \"/x\"\nprice_sats = {sats}\ndemo = \"demo\"\nscheme = \"payment\"\n"
        ))
        .unwrap();
        Arc::new(Gateway::new(config, RootKey([4; 32]), node.clone()).unwrap())
    };
    let get = |gw: Arc<Gateway>, auth: Option<String>| async move {
        let mut req = axum::http::Request::get("/x");
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        gw.router()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    };
    let resp = get(priced(1), None).await;
    let values: Vec<String> = resp
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let c = payment_challenge(&values);
    let paid = node
        .settle(&c.charge().unwrap().method_details.invoice)
        .unwrap();
    let credential = c.credential(&paid.preimage);

    for sats in [2, 1000] {
        let resp = get(priced(sats), Some(credential.clone())).await;
        assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body["type"], "https://paymentauth.org/problems/invalid-challenge",
            "{body}"
        );
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("this route costs {sats} sat")),
            "{body}"
        );
    }
    assert_eq!(
        get(priced(1), Some(credential)).await.status(),
        StatusCode::OK
    );
}

//! The dev Lightning network: `DevNode` signs real regtest invoices and
//! settles them over HTTP; `DevPayer` pays through it. End to end over real
//! sockets on 127.0.0.1:0, plus in-process `oneshot` tests of the router.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use http_body_util::BodyExt;
use l402_mcp::lightning::dev::{
    DEFAULT_INVOICE_EXPIRY, DevInvoiceStatus, DevNode, DevPayer, MAX_PAY_BODY, SettleError, router,
};
use l402_mcp::lightning::{
    Invoice, Invoicer, Network, PayError, Payer, PaymentHash, PaymentStatus, Preimage,
};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common;

/// A fixed key, so failures are reproducible.
const NODE_KEY: [u8; 32] = [0x42; 32];

fn node() -> Arc<DevNode> {
    Arc::new(DevNode::from_secret_key(NODE_KEY).unwrap())
}

/// Serves `app` on 127.0.0.1:0; returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A base URL on which nothing listens.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

async fn invoice(node: &DevNode, amount_msat: u64, memo: &str, expiry: Duration) -> Invoice {
    let issued = node
        .create_invoice(amount_msat, memo, expiry)
        .await
        .unwrap();
    let inv: Invoice = issued.bolt11.parse().unwrap();
    assert_eq!(inv.payment_hash(), issued.payment_hash);
    inv
}

/// An invoice for `currency`, signed by some other key.
fn foreign_invoice(currency: Currency, key: [u8; 32]) -> Invoice {
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&key).unwrap();
    let preimage = Preimage::random();
    let signed = InvoiceBuilder::new(currency)
        .description("elsewhere".into())
        .payment_hash(sha256::Hash::from_byte_array(preimage.payment_hash().0))
        .payment_secret(PaymentSecret([9; 32]))
        .current_timestamp()
        .min_final_cltv_expiry_delta(18)
        .amount_milli_satoshis(10_000)
        .build_signed(|m| secp.sign_ecdsa_recoverable(m, &key))
        .unwrap();
    Invoice::from_bolt11(signed)
}

/// POSTs `body` to `/dev/pay`; returns status and JSON body.
async fn post_pay(base: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/dev/pay"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// One in-process request to the router; returns status and JSON body.
async fn oneshot(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {bytes:?}"));
    (status, body)
}

fn pay_request(body: impl Into<Body>) -> Request<Body> {
    Request::post("/dev/pay")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn status_request(hash: &str) -> Request<Body> {
    Request::get(format!("/dev/payments/{hash}"))
        .body(Body::empty())
        .unwrap()
}

fn assert_sentence(body: &Value) {
    let e = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {body}"));
    assert!(e.ends_with('.') && e.len() > 10, "not a sentence: {e:?}");
}

// ----- invoices -----

#[tokio::test]
async fn created_invoice_is_regtest_with_amount_hash_expiry_and_memo() {
    let node = node();
    let issued = node
        .create_invoice(21_000, "GET /joke", DEFAULT_INVOICE_EXPIRY)
        .await
        .unwrap();
    assert!(
        issued.bolt11.starts_with("lnbcrt210n1"),
        "{}",
        issued.bolt11
    );
    let inv: Invoice = issued.bolt11.parse().unwrap();
    assert_eq!(inv.amount_msat(), Some(21_000));
    assert_eq!(inv.payment_hash(), issued.payment_hash);
    assert_eq!(inv.network(), Network::Regtest);
    assert_eq!(inv.expiry(), Duration::from_secs(600));
    assert_eq!(DEFAULT_INVOICE_EXPIRY, Duration::from_secs(600));
    assert_eq!(inv.description().as_deref(), Some("GET /joke"));
    assert_eq!(inv.payee_hex(), node.node_id());
    let age = SystemTime::now().duration_since(inv.created_at()).unwrap();
    assert!(age < Duration::from_secs(5), "{age:?}");
    assert_eq!(node.network(), Network::Regtest);
    assert_eq!(
        node.status(&issued.payment_hash),
        DevInvoiceStatus::Unpaid { expired: false }
    );
}

#[tokio::test]
async fn every_invoice_has_a_fresh_hash_and_secret() {
    let node = node();
    let a = invoice(&node, 1000, "x", DEFAULT_INVOICE_EXPIRY).await;
    let b = invoice(&node, 1000, "x", DEFAULT_INVOICE_EXPIRY).await;
    assert_ne!(a.payment_hash(), b.payment_hash());
    assert_ne!(
        a.as_bolt11().payment_secret(),
        b.as_bolt11().payment_secret()
    );
}

#[tokio::test]
async fn zero_amount_invoice_is_invalid() {
    let err = node()
        .create_invoice(0, "x", DEFAULT_INVOICE_EXPIRY)
        .await
        .unwrap_err();
    assert!(
        matches!(err, l402_mcp::lightning::InvoicerError::Invalid(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn python_bolt11_decodes_our_invoice_identically() {
    let Some(python) = common::python() else {
        return;
    };
    let node = node();
    let inv = invoice(&node, 123_456, "interop: café ☕", DEFAULT_INVOICE_EXPIRY).await;
    let out = common::run_python(&python, "bolt11_decode.py", &[inv.as_str()]);
    let got: Value = serde_json::from_str(&out).unwrap();
    let created = inv
        .created_at()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(got["amount_msat"], json!(123_456));
    assert_eq!(got["payment_hash"], json!(inv.payment_hash().to_hex()));
    assert_eq!(got["currency"], json!("bcrt"));
    assert_eq!(got["network"], json!("regtest"));
    assert_eq!(got["expiry"], json!(600));
    assert_eq!(got["description"], json!("interop: café ☕"));
    assert_eq!(got["timestamp"], json!(created));
    assert_eq!(got["payee"], json!(node.node_id()));
    assert_eq!(got["min_final_cltv_expiry"], json!(18));
    assert_eq!(got["payment_secret"].as_str().map(str::len), Some(64));
}

// ----- paying over real sockets -----

#[tokio::test]
async fn dev_payer_pays_and_preimage_matches() {
    let node = node();
    let base = serve(router(node.clone())).await;
    let inv = invoice(&node, 5_000, "pay me", DEFAULT_INVOICE_EXPIRY).await;
    let payer = DevPayer::new(&base).unwrap();
    assert_eq!(payer.network(), Network::Regtest);

    let p = payer.pay(&inv, 0).await.unwrap();
    assert!(p.preimage.matches(&inv.payment_hash()));
    assert_eq!((p.amount_msat, p.fee_msat), (5_000, 0));
    assert_eq!(node.settlements(), 1);
    assert_eq!(
        payer.status(&inv.payment_hash()).await.unwrap(),
        PaymentStatus::Succeeded(p)
    );
}

#[tokio::test]
async fn paying_twice_resolves_to_the_same_payment_and_settles_once() {
    let node = node();
    let base = serve(router(node.clone())).await;
    let inv = invoice(&node, 7_000, "twice", DEFAULT_INVOICE_EXPIRY).await;
    let payer = DevPayer::new(&base).unwrap();

    let first = payer.pay(&inv, 0).await.unwrap();
    // The node answers 409; the payer resolves it through the status.
    let (status, body) = post_pay(&base, json!({"invoice": inv.as_str()}).to_string()).await;
    assert_eq!(status, 409);
    assert_sentence(&body);
    let second = payer.pay(&inv, 0).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(node.settlements(), 1);
}

#[tokio::test]
async fn garbage_json_is_a_400_json_error() {
    let base = serve(router(node())).await;
    for body in [
        "not json",
        "{\"invoice\": 5}",
        "{\"bolt11\": \"lnbcrt1\"}",
        "[]",
        "",
    ] {
        let (status, json) = post_pay(&base, body).await;
        assert_eq!(status, 400, "{body:?}: {json}");
        assert_sentence(&json);
    }
    let (status, json) =
        post_pay(&base, json!({"invoice": "lnbcrt1notaninvoice"}).to_string()).await;
    assert_eq!(status, 400);
    assert!(
        json["error"].as_str().unwrap().contains("malformed"),
        "{json}"
    );
}

#[tokio::test]
async fn invoice_from_another_node_is_404() {
    let ours = node();
    let theirs = DevNode::from_secret_key([0x43; 32]).unwrap();
    let base = serve(router(ours.clone())).await;
    let inv = invoice(&theirs, 1_000, "not ours", DEFAULT_INVOICE_EXPIRY).await;

    let (status, body) = post_pay(&base, json!({"invoice": inv.as_str()}).to_string()).await;
    assert_eq!(status, 404);
    assert_sentence(&body);
    let err = DevPayer::new(&base)
        .unwrap()
        .pay(&inv, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PayError::Failed(m) if m.contains("not issued by this dev node")),
        "{err:?}"
    );
    assert_eq!(ours.settlements(), 0);
}

#[tokio::test]
async fn expired_invoice_is_410() {
    let node = node();
    let base = serve(router(node.clone())).await;
    let inv = invoice(&node, 1_000, "brief", Duration::from_secs(1)).await;
    // The invoice's clock is whole seconds: it expires within 1 s of now.
    while SystemTime::now() < inv.expires_at() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (status, body) = post_pay(&base, json!({"invoice": inv.as_str()}).to_string()).await;
    assert_eq!(status, 410);
    assert_sentence(&body);
    let err = DevPayer::new(&base)
        .unwrap()
        .pay(&inv, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PayError::Failed(m) if m.contains("expired")),
        "{err:?}"
    );
    assert_eq!(
        node.settle(inv.as_str()).unwrap_err(),
        SettleError::Expired {
            payment_hash: inv.payment_hash(),
            expired_at_unix: inv.expires_at_unix()
        }
    );
    assert_eq!(node.settlements(), 0);
}

#[tokio::test]
async fn dev_payer_refuses_non_regtest_invoices_before_any_request() {
    // Nothing listens there: had the payer sent anything, it would be
    // Unreachable, not Refused.
    let payer = DevPayer::new(&dead_url().await).unwrap();
    for currency in [
        Currency::Bitcoin,
        Currency::BitcoinTestnet,
        Currency::Signet,
        Currency::Simnet,
    ] {
        let inv = foreign_invoice(currency.clone(), [0x44; 32]);
        let err = payer.pay(&inv, 1_000).await.unwrap_err();
        assert!(
            matches!(&err, PayError::Refused(m) if m.contains("only regtest")),
            "{currency:?}: {err:?}"
        );
    }
    // The same payer does try a regtest invoice, and finds nothing there.
    let inv = foreign_invoice(Currency::Regtest, [0x44; 32]);
    let err = payer.pay(&inv, 0).await.unwrap_err();
    assert!(matches!(err, PayError::Unreachable(_)), "{err:?}");
    let err = payer.status(&inv.payment_hash()).await.unwrap_err();
    assert!(matches!(err, PayError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn concurrent_settles_of_one_invoice_pay_exactly_once() {
    let node = node();
    let base = serve(router(node.clone())).await;
    let inv = invoice(&node, 2_000, "race", DEFAULT_INVOICE_EXPIRY).await;
    let body = json!({"invoice": inv.as_str()}).to_string();

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (base, body) = (base.clone(), body.clone());
            tokio::spawn(async move { post_pay(&base, body).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == 200 {
            let p: Preimage = body["preimage"].as_str().unwrap().parse().unwrap();
            assert!(p.matches(&inv.payment_hash()));
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(node.settlements(), 1);
}

#[tokio::test]
async fn concurrent_payers_of_one_invoice_all_get_the_one_payment() {
    let node = node();
    let base = serve(router(node.clone())).await;
    let inv = invoice(&node, 2_000, "race", DEFAULT_INVOICE_EXPIRY).await;
    let payer = DevPayer::new(&base).unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (payer, inv) = (payer.clone(), inv.clone());
            tokio::spawn(async move { payer.pay(&inv, 0).await.unwrap() })
        })
        .collect();
    let mut payments = Vec::new();
    for t in tasks {
        payments.push(t.await.unwrap());
    }
    assert!(payments.iter().all(|p| p == &payments[0]));
    assert_eq!(node.settlements(), 1);
}

#[tokio::test]
async fn dev_payer_status_maps_succeeded_unpaid_and_unknown() {
    let node = node();
    let base = serve(router(node.clone())).await;
    let payer = DevPayer::new(&base).unwrap();
    let inv = invoice(&node, 3_000, "status", DEFAULT_INVOICE_EXPIRY).await;

    assert_eq!(
        payer.status(&inv.payment_hash()).await.unwrap(),
        PaymentStatus::Unknown
    );
    assert_eq!(
        payer.status(&PaymentHash([1; 32])).await.unwrap(),
        PaymentStatus::Unknown
    );
    let p = node.settle(inv.as_str()).unwrap();
    assert_eq!(
        payer.status(&inv.payment_hash()).await.unwrap(),
        PaymentStatus::Succeeded(p)
    );
}

// ----- a dev node that misbehaves -----

#[tokio::test]
async fn dev_payer_never_returns_a_payment_whose_preimage_does_not_match() {
    use axum::routing::{get, post};
    let lying = axum::Router::new()
        .route(
            "/dev/pay",
            post(|| async {
                axum::Json(json!({"preimage": Preimage::random().to_hex(), "amount_msat": 1000, "fee_msat": 0}))
            }),
        )
        .route(
            "/dev/payments/{hash}",
            get(|| async {
                axum::Json(json!({"status": "succeeded", "preimage": Preimage::random().to_hex(), "amount_msat": 1000, "fee_msat": 0}))
            }),
        );
    let payer = DevPayer::new(&serve(lying).await).unwrap();
    let inv = invoice(&node(), 1000, "x", DEFAULT_INVOICE_EXPIRY).await;
    let err = payer.pay(&inv, 0).await.unwrap_err();
    assert!(
        matches!(&err, PayError::Unknown(m) if m.contains("does not match")),
        "{err:?}"
    );
    let err = payer.status(&inv.payment_hash()).await.unwrap_err();
    assert!(matches!(err, PayError::Unknown(_)), "{err:?}");
}

/// A TCP server that reads each request and then, per `close`, hangs up or
/// never answers.
async fn silent_server(close: bool) -> String {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                if !close {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn outcome_is_unknown_when_the_node_goes_silent_after_the_request() {
    let inv = invoice(&node(), 1000, "x", DEFAULT_INVOICE_EXPIRY).await;
    let base = silent_server(false).await;
    let payer =
        DevPayer::with_timeouts(&base, Duration::from_secs(1), Duration::from_millis(500)).unwrap();
    let err = payer.pay(&inv, 0).await.unwrap_err();
    assert!(matches!(err, PayError::Unknown(_)), "{err:?}");

    let base = silent_server(true).await;
    let err = DevPayer::new(&base)
        .unwrap()
        .pay(&inv, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, PayError::Unknown(_)), "{err:?}");
}

// ----- the router in process -----

#[tokio::test]
async fn router_answers_each_pay_outcome_with_its_status() {
    let node = node();
    let app = router(node.clone());
    let inv = invoice(&node, 4_000, "oneshot", DEFAULT_INVOICE_EXPIRY).await;
    let body = json!({"invoice": inv.as_str()}).to_string();

    let (status, json) = oneshot(&app, pay_request(body.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let p: Preimage = json["preimage"].as_str().unwrap().parse().unwrap();
    assert!(p.matches(&inv.payment_hash()));
    assert_eq!(json["amount_msat"], json!(4_000));
    assert_eq!(json["fee_msat"], json!(0));

    let (status, json) = oneshot(&app, pay_request(body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_sentence(&json);

    let other = DevNode::from_secret_key([0x43; 32]).unwrap();
    let foreign = invoice(&other, 1000, "x", DEFAULT_INVOICE_EXPIRY).await;
    let (status, json) = oneshot(
        &app,
        pay_request(json!({"invoice": foreign.as_str()}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_sentence(&json);

    for bad in ["{", "{\"invoice\": null}", "{\"invoice\": \"lnbcrt1xyz\"}"] {
        let (status, json) = oneshot(&app, pay_request(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_sentence(&json);
    }

    // No content type is fine: the body is what counts.
    let req = Request::post("/dev/pay").body(Body::from("{}")).unwrap();
    let (status, json) = oneshot(&app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_sentence(&json);

    let huge = format!("{{\"invoice\": \"{}\"}}", "q".repeat(MAX_PAY_BODY));
    let (status, json) = oneshot(&app, pay_request(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_sentence(&json);

    assert_eq!(node.settlements(), 1);
}

#[tokio::test]
async fn router_answers_expired_with_410() {
    let node = node();
    let app = router(node.clone());
    let inv = invoice(&node, 1_000, "brief", Duration::from_secs(1)).await;
    while SystemTime::now() < inv.expires_at() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, json) = oneshot(
        &app,
        pay_request(json!({"invoice": inv.as_str()}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::GONE);
    assert_sentence(&json);
}

#[tokio::test]
async fn router_reports_payment_status() {
    let node = node();
    let app = router(node.clone());
    let inv = invoice(&node, 4_000, "status", DEFAULT_INVOICE_EXPIRY).await;
    let hash = inv.payment_hash().to_hex();

    let (status, json) = oneshot(&app, status_request(&hash)).await;
    assert_eq!(
        (status, json),
        (StatusCode::OK, json!({"status": "unpaid"}))
    );

    let p = node.settle(inv.as_str()).unwrap();
    let (status, json) = oneshot(&app, status_request(&hash)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json,
        json!({"status": "succeeded", "preimage": p.preimage.to_hex(), "amount_msat": 4_000, "fee_msat": 0})
    );

    let (status, json) = oneshot(&app, status_request(&"ab".repeat(32))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_sentence(&json);

    for bad in ["xyz", &"zz".repeat(32), &"ab".repeat(33)] {
        let (status, json) = oneshot(&app, status_request(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_sentence(&json);
    }
}

//! The L402 client against the real gateway (over sockets, paying through
//! the dev node) and against hand-made challenges with a counting payer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use l402_mcp::client::{
    ClientConfig, FetchError, FetchRequest, L402Client, Refusal, UrlPolicyError,
};
use l402_mcp::gateway::{GatewayConfig, RouteConfig};
use l402_mcp::l402::{Caveat, Challenge, Identifier, RootKey, Scheme, mint};
use l402_mcp::lightning::dev::DevPayer;
use l402_mcp::lightning::{
    Invoice, Network, PayError, Payer, Payment, PaymentHash, PaymentStatus, Preimage,
};
use l402_mcp::store::Store;
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};

use crate::common::TestGateway;

// ---------------------------------------------------------------------------
// Harness

struct Fixture {
    client: Arc<L402Client>,
    _dir: tempfile::TempDir,
}

fn client_with(
    payer: Arc<dyn Payer>,
    allowed: &str,
    adjust: impl FnOnce(&mut ClientConfig),
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store.sqlite")).unwrap());
    let mut config = ClientConfig {
        allowed_origins: vec![allowed.to_string()],
        ..Default::default()
    };
    adjust(&mut config);
    let client = Arc::new(L402Client::new(config, payer, store).unwrap());
    Fixture { client, _dir: dir }
}

fn dev_client(gw: &TestGateway, adjust: impl FnOnce(&mut ClientConfig)) -> Fixture {
    let payer = Arc::new(DevPayer::new(&gw.base).unwrap());
    client_with(payer, &gw.base, adjust)
}

pub(crate) fn demo_with_route(route: RouteConfig) -> GatewayConfig {
    let mut config = GatewayConfig::demo();
    config.routes.insert(0, route);
    config
}

pub(crate) fn single_use_get(path: &str, price_sats: u64) -> RouteConfig {
    GatewayConfig::from_toml(&format!(
        "[[routes]]\npath = \"{path}\"\nmethod = \"GET\"\nprice_sats = {price_sats}\n\
         demo = \"demo\"\ntoken = \"single-use\"\n"
    ))
    .unwrap()
    .routes
    .remove(0)
}

/// A payer that counts calls and pays invoices whose preimage it was told.
#[derive(Debug, Default)]
pub(crate) struct CountingPayer {
    network: Option<Network>,
    pub(crate) calls: AtomicUsize,
    preimages: std::sync::Mutex<Vec<Preimage>>,
}

#[async_trait]
impl Payer for CountingPayer {
    fn network(&self) -> Network {
        self.network.unwrap_or(Network::Regtest)
    }
    async fn pay(&self, invoice: &Invoice, _max_fee_msat: u64) -> Result<Payment, PayError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let known = self
            .preimages
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.matches(&invoice.payment_hash()))
            .cloned();
        match known {
            Some(preimage) => Ok(Payment {
                preimage,
                amount_msat: invoice.amount_msat().unwrap_or(0),
                fee_msat: 0,
            }),
            None => Err(PayError::Failed("unknown invoice".into())),
        }
    }
    async fn status(&self, _hash: &PaymentHash) -> Result<PaymentStatus, PayError> {
        Ok(PaymentStatus::Unknown)
    }
}

pub(crate) fn invoice(
    currency: Currency,
    amount_msat: Option<u64>,
    hash: [u8; 32],
    created: SystemTime,
) -> String {
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[0x42; 32]).unwrap();
    let builder = InvoiceBuilder::new(currency)
        .description("test".into())
        .payment_hash(sha256::Hash::from_slice(&hash).unwrap())
        .payment_secret(PaymentSecret([3; 32]))
        .duration_since_epoch(created.duration_since(SystemTime::UNIX_EPOCH).unwrap())
        .min_final_cltv_expiry_delta(18)
        .expiry_time(Duration::from_secs(600));
    let signed = match amount_msat {
        Some(a) => builder
            .amount_milli_satoshis(a)
            .build_signed(|m| secp.sign_ecdsa_recoverable(m, &key)),
        None => builder.build_signed(|m| secp.sign_ecdsa_recoverable(m, &key)),
    };
    signed.unwrap().to_string()
}

/// A server answering every request with one fixed 402 challenge.
pub(crate) struct ChallengeServer {
    pub(crate) url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) async fn challenge_server(www_authenticate: String) -> ChallengeServer {
    let app = axum::Router::new().fallback(move || {
        let value = www_authenticate.clone();
        async move {
            let mut resp = StatusCode::PAYMENT_REQUIRED.into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&value).unwrap(),
            );
            resp
        }
    });
    let (base, stop) = crate::common::serve_local(app).await;
    ChallengeServer {
        url: format!("{base}/x"),
        _stop: stop,
    }
}

pub(crate) fn challenge_header(invoice: &str, macaroon_hash: [u8; 32]) -> String {
    let id = Identifier::new(PaymentHash(macaroon_hash));
    let macaroon = mint(&RootKey([5; 32]), &id, &[Caveat::services(["x"])]);
    Challenge {
        scheme: Scheme::L402,
        macaroon,
        invoice: invoice.to_string(),
        version: None,
    }
    .to_string()
}

// ---------------------------------------------------------------------------
// Refusals: a table where a counting payer proves nothing is paid.

#[tokio::test]
async fn every_check_refuses_with_its_exact_error_and_pays_nothing() {
    let now = SystemTime::now();
    let hour_ago = now - Duration::from_secs(3600);
    let h = [0xab; 32];
    let other = [0xcd; 32];
    type Expect = Box<dyn Fn(&FetchError) -> bool>;
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "amountless",
            challenge_header(&invoice(Currency::Regtest, None, h, now), h),
            Box::new(|e| matches!(e, FetchError::Refused(Refusal::Amountless))),
        ),
        (
            "one whole bitcoin",
            challenge_header(
                &invoice(Currency::Regtest, Some(100_000_000_000), h, now),
                h,
            ),
            Box::new(|e| {
                matches!(
                    e,
                    FetchError::Refused(Refusal::OverCap {
                        asked_msat: 100_000_000_000,
                        cap_msat: 1_000_000,
                        ..
                    })
                )
            }),
        ),
        (
            "1000.001 sats, a millisatoshi over the cap",
            challenge_header(&invoice(Currency::Regtest, Some(1_000_001), h, now), h),
            Box::new(|e| {
                matches!(
                    e,
                    FetchError::Refused(Refusal::OverCap {
                        asked_msat: 1_000_001,
                        ..
                    })
                )
            }),
        ),
        (
            "expired",
            challenge_header(&invoice(Currency::Regtest, Some(21_000), h, hour_ago), h),
            Box::new(
                |e| matches!(e, FetchError::Refused(Refusal::Expired { ago_secs }) if (2990..=3010).contains(ago_secs)),
            ),
        ),
        (
            "mainnet invoice to a regtest payer",
            challenge_header(&invoice(Currency::Bitcoin, Some(21_000), h, now), h),
            Box::new(|e| {
                matches!(
                    e,
                    FetchError::Refused(Refusal::WrongNetwork {
                        invoice: Network::Mainnet,
                        payer: Network::Regtest
                    })
                )
            }),
        ),
        (
            "testnet invoice to a regtest payer",
            challenge_header(&invoice(Currency::BitcoinTestnet, Some(21_000), h, now), h),
            Box::new(|e| {
                matches!(
                    e,
                    FetchError::Refused(Refusal::WrongNetwork {
                        invoice: Network::Testnet,
                        ..
                    })
                )
            }),
        ),
        (
            "payment hash not the macaroon's",
            challenge_header(&invoice(Currency::Regtest, Some(21_000), h, now), other),
            Box::new(move |e| {
                matches!(e, FetchError::Refused(Refusal::HashMismatch { invoice, macaroon })
                    if invoice.0 == h && macaroon.0 == other)
            }),
        ),
        (
            "over the session budget",
            challenge_header(&invoice(Currency::Regtest, Some(999_000), h, now), h),
            Box::new(|e| {
                matches!(
                    e,
                    FetchError::Refused(Refusal::OverBudget {
                        asked_msat: 999_000,
                        fee_limit_msat: 10_000,
                        left_msat: 500_000,
                        ..
                    })
                )
            }),
        ),
        (
            "not an invoice",
            challenge_header("lnbcrt1garbage", h),
            Box::new(|e| matches!(e, FetchError::Refused(Refusal::InvalidInvoice(_)))),
        ),
        (
            "Bearer only",
            "Bearer realm=\"x\"".to_string(),
            Box::new(|e| matches!(e, FetchError::Refused(Refusal::InvalidChallenge(_)))),
        ),
    ];
    for (name, header, expected) in cases {
        let server = challenge_server(header).await;
        let payer = Arc::new(CountingPayer::default());
        let fx = client_with(payer.clone(), &server.url, |c| {
            c.session_budget_msat = 500_000;
        });
        let err = fx
            .client
            .fetch(FetchRequest::get(&server.url))
            .await
            .unwrap_err();
        assert!(expected(&err), "{name}: got {err:?}");
        assert_eq!(err.exit_code(), 2, "{name}: {err}");
        assert_eq!(payer.calls.load(Ordering::SeqCst), 0, "{name}: paid");
        let budget = fx.client.budget().unwrap();
        assert_eq!((budget.spent_msat, budget.reserved_msat), (0, 0), "{name}");
        // preview agrees, and pays nothing either.
        let preview = fx
            .client
            .preview(&server.url, reqwest::Method::GET)
            .await
            .unwrap();
        assert!(!preview.would_pay, "{name}: preview says it would pay");
        assert_eq!(
            payer.calls.load(Ordering::SeqCst),
            0,
            "{name}: preview paid"
        );
    }
}

#[tokio::test]
async fn a_millisatoshi_price_is_paid_and_recorded_exactly() {
    let gw_like_hash = Preimage::random();
    let h = gw_like_hash.payment_hash().0;
    let server = challenge_server(challenge_header(
        &invoice(Currency::Regtest, Some(21_500), h, SystemTime::now()),
        h,
    ))
    .await;
    let payer = Arc::new(CountingPayer::default());
    payer.preimages.lock().unwrap().push(gw_like_hash);
    let fx = client_with(payer.clone(), &server.url, |_| {});
    // The server never accepts the credential (it is a fixed 402), so the
    // fetch ends with that 402 after one payment.
    let resp = fx
        .client
        .fetch(FetchRequest::get(&server.url))
        .await
        .unwrap();
    assert_eq!(resp.status, 402);
    let receipt = resp.receipt.unwrap();
    assert!(receipt.paid);
    assert_eq!(receipt.amount_msat, 21_500);
    assert_eq!(payer.calls.load(Ordering::SeqCst), 1);
    assert_eq!(fx.client.budget().unwrap().spent_msat, 21_500);
    // Asked again, the same invoice is never paid a second time.
    let err = fx.client.fetch(FetchRequest::get(&server.url)).await;
    assert_eq!(payer.calls.load(Ordering::SeqCst), 1, "{err:?}");
}

#[tokio::test]
async fn max_cost_argument_only_lowers_the_cap() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let fx = dev_client(&gw, |c| c.max_cost_msat = 10_000);
    // Asking for a higher cap does not raise the operator's 10 sats.
    let req = FetchRequest {
        max_cost_msat: Some(1_000_000),
        ..FetchRequest::get(format!("{}/v1/demo", gw.base))
    };
    let err = fx.client.fetch(req).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Refused(Refusal::OverCap {
                cap_msat: 10_000,
                raise_refused_msat: Some(1_000_000),
                ..
            })
        ),
        "{err}"
    );
    // And the refusal says so: the operator's cap stood.
    assert!(
        err.to_string()
            .contains("can only lower the operator's cap, never raise it"),
        "{err}"
    );
    let fx = dev_client(&gw, |_| {});
    let req = FetchRequest {
        max_cost_msat: Some(20_000),
        ..FetchRequest::get(format!("{}/v1/demo", gw.base))
    };
    let err = fx.client.fetch(req).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "refused: {}/v1/demo asks 21 sats; the per-request cap is 20 sats",
            gw.base
        )
    );
    assert_eq!(gw.node.settlements(), 0);
}

// ---------------------------------------------------------------------------
// Against the real gateway.

#[tokio::test]
async fn pays_once_then_reuses_the_token_across_paths_of_the_origin() {
    let mut config = GatewayConfig::demo();
    config.routes.insert(
        0,
        GatewayConfig::from_toml(
            "[[routes]]\npath = \"/v2\"\nmatch = \"prefix\"\nmethod = \"GET\"\nprice_sats = 7\ndemo = \"demo\"\nservice = \"v2\"\n",
        )
        .unwrap()
        .routes
        .remove(0),
    );
    let gw = TestGateway::start(config).await;
    let fx = dev_client(&gw, |_| {});
    let first = fx
        .client
        .fetch(FetchRequest::get(format!("{}/v2/a", gw.base)))
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    let r = first.receipt.unwrap();
    assert!(r.paid);
    assert_eq!((r.amount_msat, r.fee_msat), (7_000, 0));
    assert_eq!(r.budget_left_msat, 5_000_000 - 7_000);
    let second = fx
        .client
        .fetch(FetchRequest::get(format!("{}/v2/b/c", gw.base)))
        .await
        .unwrap();
    assert_eq!(second.status, 200);
    assert!(!second.receipt.unwrap().paid);
    assert_eq!(gw.node.settlements(), 1);
}

#[tokio::test]
async fn fifty_parallel_fetches_of_one_resource_pay_once() {
    // All fifty first ask without a token: let the gateway answer them all.
    let mut config = GatewayConfig::demo();
    config.rate_limit.burst = 1000;
    let gw = TestGateway::start(config).await;
    let fx = dev_client(&gw, |_| {});
    let url = format!("{}/v1/demo", gw.base);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = fx.client.clone();
            let u = url.clone();
            tokio::spawn(async move { c.fetch(FetchRequest::get(u)).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status, 200);
    }
    assert_eq!(gw.node.settlements(), 1);
    assert_eq!(fx.client.budget().unwrap().spent_msat, 21_000);
}

#[tokio::test]
async fn hundred_parallel_fetches_never_overspend_a_budget_for_ten() {
    for round in 0..5 {
        // Four origins, single-use tokens: every fetch needs a payment.
        let mut gateways = Vec::new();
        for _ in 0..4 {
            let mut config = demo_with_route(single_use_get("/once", 10));
            config.rate_limit.burst = 1000;
            gateways.push(TestGateway::start(config).await);
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path().join("s.sqlite")).unwrap());
        // Budget: 10 payments of 10 sats, and room for the 10-sat fee limit
        // the last one holds while in flight (fees are 0 on the dev node).
        let budget = 10 * 10_000 + 10_000;
        let mut tasks = Vec::new();
        for (i, gw) in gateways.iter().enumerate() {
            let config = ClientConfig {
                allowed_origins: vec![gw.base.clone()],
                session_budget_msat: budget,
                payments_per_minute: 1000,
                session: "shared".into(),
                ..Default::default()
            };
            let payer = Arc::new(DevPayer::new(&gw.base).unwrap());
            let client = Arc::new(L402Client::new(config, payer, store.clone()).unwrap());
            for _ in 0..25 {
                let c = client.clone();
                let u = format!("{}/once", gw.base);
                tasks.push(tokio::spawn(async move {
                    (i, c.fetch(FetchRequest::get(u)).await)
                }));
            }
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                (_, Ok(r)) if r.status == 200 => ok += 1,
                (_, Ok(r)) => panic!("round {round}: unexpected status {}", r.status),
                (_, Err(FetchError::Refused(Refusal::OverBudget { .. }))) => {}
                (_, Err(e)) => panic!("round {round}: unexpected error {e}"),
            }
        }
        let settled: u64 = gateways.iter().map(|g| g.node.settlements()).sum();
        let ledger = l402_mcp::budget::Ledger::new(store.clone());
        let summary = ledger.summary("shared").unwrap();
        assert!(
            (1..=10).contains(&settled),
            "round {round}: {settled} payments"
        );
        assert_eq!(
            summary.spent_msat,
            settled * 10_000,
            "round {round}: ledger matches payments"
        );
        assert!(
            summary.spent_msat + summary.reserved_msat <= budget,
            "round {round}: overspent"
        );
        assert_eq!(
            summary.reserved_msat, 0,
            "round {round}: nothing left reserved"
        );
        assert_eq!(
            ok as u64, settled,
            "round {round}: each payment served one request"
        );
    }
}

#[tokio::test]
async fn a_token_the_server_stops_accepting_is_marked_stale_and_paid_again() {
    let now = Arc::new(std::sync::atomic::AtomicU64::new(1_900_000_000));
    let clock = now.clone();
    let gw = TestGateway::start_with(GatewayConfig::demo(), move |g| {
        g.with_clock(Arc::new(move || clock.load(Ordering::SeqCst)))
    })
    .await;
    let fx = dev_client(&gw, |_| {});
    let url = format!("{}/v1/demo", gw.base);
    assert!(
        fx.client
            .fetch(FetchRequest::get(&url))
            .await
            .unwrap()
            .receipt
            .unwrap()
            .paid
    );
    now.fetch_add(7200, Ordering::SeqCst); // the token's valid_until passes
    let resp = fx.client.fetch(FetchRequest::get(&url)).await.unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.receipt.unwrap().paid, "a new token was bought");
    assert_eq!(gw.node.settlements(), 2);
    let tokens = fx.client.tokens().await.unwrap();
    let statuses: Vec<String> = tokens.iter().map(|t| t.status.to_string()).collect();
    assert!(
        statuses.contains(&"stale".to_string()) && statuses.contains(&"paid".to_string()),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn post_body_and_headers_survive_the_paid_retry() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let fx = dev_client(&gw, |_| {});
    let req = FetchRequest {
        url: format!("{}/v1/generate", gw.base),
        method: reqwest::Method::POST,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Some(r#"{"prompt": "lightning pays per call"}"#.into()),
        max_cost_msat: None,
        call: Default::default(),
    };
    let resp = fx.client.fetch(req).await.unwrap();
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(json["prompt"], "lightning pays per call");
    assert!(resp.receipt.unwrap().paid);
}

#[tokio::test]
async fn when_the_retry_fails_the_paid_token_is_kept_and_reused() {
    // An upstream that fails the first request it sees, then works.
    let fail_next = Arc::new(AtomicBool::new(true));
    let flag = fail_next.clone();
    let app = axum::Router::new().fallback(move || {
        let flag = flag.clone();
        async move {
            if flag.swap(false, Ordering::SeqCst) {
                (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response()
            } else {
                (StatusCode::OK, "ok").into_response()
            }
        }
    });
    let (up, _stop) = crate::common::serve_local(app).await;
    let config = GatewayConfig::from_toml(&format!(
        "[[routes]]\npath = \"/flaky\"\nprice_sats = 3\nupstream = \"{up}\"\n"
    ))
    .unwrap();
    let gw = TestGateway::start(config).await;
    let fx = dev_client(&gw, |_| {});
    let url = format!("{}/flaky", gw.base);
    let first = fx.client.fetch(FetchRequest::get(&url)).await.unwrap();
    assert_eq!(first.status, 503);
    assert!(first.receipt.unwrap().paid);
    let second = fx.client.fetch(FetchRequest::get(&url)).await.unwrap();
    assert_eq!(second.status, 200);
    assert!(!second.receipt.unwrap().paid, "the paid token was reused");
    assert_eq!(gw.node.settlements(), 1);
}

#[tokio::test]
async fn preview_reports_price_and_checks_without_paying() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let fx = dev_client(&gw, |_| {});
    let p = fx
        .client
        .preview(&format!("{}/v1/data", gw.base), reqwest::Method::GET)
        .await
        .unwrap();
    assert!(p.payment_required);
    assert_eq!(p.price_msat, Some(100_000));
    assert!(p.would_pay);
    let names: Vec<&str> = p.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "pause",
            "challenge",
            "invoice",
            "amount",
            "expiry",
            "network",
            "payment_hash",
            "cap",
            "budget",
            "rate"
        ]
    );
    assert!(p.checks.iter().all(|c| c.ok));
    assert_eq!(gw.node.settlements(), 0);
    assert_eq!(fx.client.budget().unwrap().reserved_msat, 0);
    let free = fx
        .client
        .preview(&format!("{}/health", gw.base), reqwest::Method::GET)
        .await
        .unwrap();
    assert!(!free.payment_required);
    assert_eq!(free.status, 200);
}

// ---------------------------------------------------------------------------
// SSRF: refused addresses are never connected to.

/// A listener that counts accepted connections.
async fn counting_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((_sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    (addr, count)
}

#[tokio::test]
async fn loopback_private_and_metadata_urls_are_refused_before_connecting() {
    let (addr, connections) = counting_listener().await;
    let port = addr.port();
    let payer = Arc::new(CountingPayer::default());
    let fx = client_with(payer, "http://127.0.0.1:1", |_| {});
    let urls = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://0x7f.0.0.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0177.0.0.01:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://LocalHost:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[fd00:ec2::254]/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://192.168.0.1/".to_string(),
        "http://172.31.255.255/".to_string(),
        "http://100.100.100.200/".to_string(),
        "file:///etc/passwd".to_string(),
        "ftp://example.com/".to_string(),
    ];
    for url in &urls {
        let err = fx.client.fetch(FetchRequest::get(url)).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Refused(Refusal::Url(_))),
            "{url}: {err:?}"
        );
        assert_eq!(err.exit_code(), 2, "{url}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a refused address was connected to"
    );
}

#[tokio::test]
async fn a_redirect_to_a_private_address_is_refused_before_connecting() {
    let (target, connections) = counting_listener().await;
    let location = format!("http://127.0.0.1:{}/secret", target.port());
    let app = axum::Router::new().fallback(move || {
        let l = location.clone();
        async move { (StatusCode::FOUND, [(header::LOCATION, l)]).into_response() }
    });
    let (base, _stop) = crate::common::serve_local(app).await;
    // The redirecting server itself is the operator-allowed origin.
    let fx = client_with(Arc::new(CountingPayer::default()), &base, |_| {});
    let err = fx
        .client
        .fetch(FetchRequest::get(format!("{base}/start")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Refused(Refusal::Url(_))),
        "{err:?}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_agent_fetch_never_reaches_the_dev_nodes_payment_routes() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let fx = dev_client(&gw, |c| c.max_cost_msat = 50_000);
    // A 100-sat invoice of the gateway, over the 50-sat cap.
    let (challenge, _) = gw.challenge("/v1/data").await;
    let body = format!("{{\"invoice\": \"{}\"}}", challenge.invoice);
    for path in [
        "/dev/pay",
        "/v1/../dev/pay",
        "/v1/%2e%2e/dev/pay",
        "/DEV/pay",
        "/%64ev/pay",
    ] {
        let req = FetchRequest {
            method: reqwest::Method::POST,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(body.clone().into()),
            ..FetchRequest::get(format!("{}{path}", gw.base))
        };
        let err = fx.client.fetch(req).await.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Refused(Refusal::Url(UrlPolicyError::DevRoute { .. }))
            ),
            "{path}: {err:?}"
        );
    }
    // Nor through a redirect from the gateway's origin.
    let location = format!("{}/dev/pay", gw.base);
    let app = axum::Router::new().fallback(move || {
        let l = location.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, l)]).into_response() }
    });
    let (base, _stop) = crate::common::serve_local(app).await;
    let fx2 = client_with(Arc::new(CountingPayer::default()), &base, |_| {});
    let req = FetchRequest {
        method: reqwest::Method::POST,
        body: Some(body.clone().into()),
        ..FetchRequest::get(format!("{base}/start"))
    };
    let err = fx2.client.fetch(req).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Refused(Refusal::Url(_))),
        "{err:?}"
    );
    assert_eq!(gw.node.settlements(), 0, "the invoice was paid");
    assert_eq!(fx.client.budget().unwrap().spent_msat, 0);
}

#[tokio::test]
async fn a_preview_never_sends_an_unsafe_method() {
    let (target, connections) = counting_listener().await;
    let base = format!("http://127.0.0.1:{}", target.port());
    let fx = client_with(Arc::new(CountingPayer::default()), &base, |_| {});
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ] {
        let err = fx
            .client
            .preview(&format!("{base}/health"), method.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::BadRequest(_)),
            "{method}: {err:?}"
        );
        assert!(
            err.to_string()
                .contains("only GET, HEAD, OPTIONS and TRACE"),
            "{err}"
        );
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a preview acted");
}

#[tokio::test]
async fn redirects_are_followed_up_to_five_hops() {
    // /hop/N redirects to /hop/N-1; /hop/0 answers 200.
    let app = axum::Router::new().route(
        "/hop/{n}",
        axum::routing::get(
            |axum::extract::Path(n): axum::extract::Path<u32>| async move {
                if n == 0 {
                    (StatusCode::OK, "arrived").into_response()
                } else {
                    (
                        StatusCode::FOUND,
                        [(header::LOCATION, format!("/hop/{}", n - 1))],
                    )
                        .into_response()
                }
            },
        ),
    );
    let (base, _stop) = crate::common::serve_local(app).await;
    let fx = client_with(Arc::new(CountingPayer::default()), &base, |_| {});
    let ok = fx
        .client
        .fetch(FetchRequest::get(format!("{base}/hop/5")))
        .await
        .unwrap();
    assert_eq!((ok.status, &ok.body[..]), (200, &b"arrived"[..]));
    assert!(ok.url.as_str().ends_with("/hop/0"));
    let err = fx
        .client
        .fetch(FetchRequest::get(format!("{base}/hop/6")))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Redirect(_)), "{err:?}");
}

#[tokio::test]
async fn a_large_body_is_cut_at_the_cap_and_flagged() {
    let app = axum::Router::new().fallback(|| async { vec![b'x'; 300_000] });
    let (base, _stop) = crate::common::serve_local(app).await;
    let fx = client_with(Arc::new(CountingPayer::default()), &base, |c| {
        c.max_body_bytes = 100_000;
    });
    let resp = fx
        .client
        .fetch(FetchRequest::get(format!("{base}/")))
        .await
        .unwrap();
    assert_eq!(resp.body.len(), 100_000);
    assert!(resp.truncated);
}

#[tokio::test]
async fn a_closed_port_is_a_network_error() {
    let fx = client_with(
        Arc::new(CountingPayer::default()),
        "http://127.0.0.1:9",
        |_| {},
    );
    let err = fx
        .client
        .fetch(FetchRequest::get("http://127.0.0.1:9/"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Network(_)), "{err:?}");
    assert_eq!(err.exit_code(), 4);
}

// ---------------------------------------------------------------------------
// Unknown outcomes and approval.

/// Pays through the dev node but reports every payment's outcome as
/// unknown, as a payer whose connection dropped after sending would.
#[derive(Debug)]
pub(crate) struct ForgetfulPayer(pub(crate) DevPayer);

#[async_trait]
impl Payer for ForgetfulPayer {
    fn network(&self) -> Network {
        self.0.network()
    }
    async fn pay(&self, invoice: &Invoice, max_fee_msat: u64) -> Result<Payment, PayError> {
        self.0.pay(invoice, max_fee_msat).await?;
        Err(PayError::Unknown("connection lost after sending".into()))
    }
    async fn status(&self, hash: &PaymentHash) -> Result<PaymentStatus, PayError> {
        self.0.status(hash).await
    }
}

#[tokio::test]
async fn an_unknown_outcome_is_resolved_by_status_and_never_paid_again() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let payer = Arc::new(ForgetfulPayer(DevPayer::new(&gw.base).unwrap()));
    let fx = client_with(payer, &gw.base, |_| {});
    let url = format!("{}/v1/demo", gw.base);
    let err = fx.client.fetch(FetchRequest::get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::PaymentUnknown { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 3);
    let budget = fx.client.budget().unwrap();
    assert_eq!(
        (budget.spent_msat, budget.reserved_msat),
        (0, 31_000),
        "held while unknown"
    );
    // The next fetch asks the backend, finds the payment succeeded, and
    // uses the token it bought: no second payment.
    let resp = fx.client.fetch(FetchRequest::get(&url)).await.unwrap();
    assert_eq!(resp.status, 200);
    assert!(!resp.receipt.unwrap().paid);
    assert_eq!(gw.node.settlements(), 1);
    let budget = fx.client.budget().unwrap();
    assert_eq!((budget.spent_msat, budget.reserved_msat), (21_000, 0));
}

/// A wallet that receives a payment request late, as one over Nostr
/// Wallet Connect can (the reference wallet service ignores a request's
/// expiry, and relays may store requests): the answer to `pay` is lost,
/// the wallet knows nothing of the payment when asked, and it pays when
/// the test says `deliver`. `final_unknown` is what the payer tells the
/// client of such an answer ([`Payer::unknown_is_final`]).
#[derive(Debug)]
struct LateWallet {
    dev: DevPayer,
    late: std::sync::Mutex<Option<Invoice>>,
    final_unknown: bool,
}

impl LateWallet {
    fn new(base: &str, final_unknown: bool) -> Self {
        LateWallet {
            dev: DevPayer::new(base).unwrap(),
            late: Default::default(),
            final_unknown,
        }
    }

    async fn deliver(&self) {
        let invoice = self
            .late
            .lock()
            .unwrap()
            .take()
            .expect("a request to deliver");
        self.dev.pay(&invoice, 0).await.unwrap();
    }
}

#[async_trait]
impl Payer for LateWallet {
    fn network(&self) -> Network {
        self.dev.network()
    }
    async fn pay(&self, invoice: &Invoice, _max_fee_msat: u64) -> Result<Payment, PayError> {
        *self.late.lock().unwrap() = Some(invoice.clone());
        Err(PayError::Unknown("the wallet did not answer".into()))
    }
    async fn status(&self, hash: &PaymentHash) -> Result<PaymentStatus, PayError> {
        self.dev.status(hash).await
    }
    fn unknown_is_final(&self) -> bool {
        self.final_unknown
    }
}

/// A client on `payer` whose store reads a clock the test moves.
fn client_with_clock(
    payer: Arc<dyn Payer>,
    allowed: &str,
) -> (Fixture, Arc<Store>, Arc<l402_mcp::store::ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = Arc::new(l402_mcp::store::ManualClock::new(now));
    let store =
        Arc::new(Store::open_with_clock(dir.path().join("store.sqlite"), clock.clone()).unwrap());
    let config = ClientConfig {
        allowed_origins: vec![allowed.to_string()],
        ..Default::default()
    };
    let client = Arc::new(L402Client::new(config, payer, store.clone()).unwrap());
    (Fixture { client, _dir: dir }, store, clock)
}

#[tokio::test]
async fn an_unanswered_payment_the_wallet_does_not_know_is_held_until_its_invoice_expires() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let url = format!("{}/v1/demo", gw.base);
    let past_grace = ClientConfig::default().payment_timeout.as_secs() * 2;

    // A payer whose "unknown" is final (lnd): past the grace period an
    // unknown payment is released. That is the behaviour that, for a
    // wallet paying late, would let the same purchase be paid twice.
    let lnd_like = Arc::new(LateWallet::new(&gw.base, true));
    let (fx, _store, clock) = client_with_clock(lnd_like.clone(), &gw.base);
    let err = fx.client.fetch(FetchRequest::get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::PaymentUnknown { .. }), "{err:?}");
    clock.advance(past_grace);
    assert_eq!(fx.client.recover().await.unwrap().released, 1);

    // A wallet over NWC: not released while its invoice can still be paid.
    let wallet = Arc::new(LateWallet::new(&gw.base, false));
    let (fx, _store, clock) = client_with_clock(wallet.clone(), &gw.base);
    let err = fx.client.fetch(FetchRequest::get(&url)).await.unwrap_err();
    let FetchError::PaymentUnknown { payment_hash, .. } = err else {
        panic!("{err:?}")
    };
    clock.advance(past_grace);
    let report = fx.client.recover().await.unwrap();
    assert_eq!(
        (report.released, report.still_pending),
        (0, 1),
        "{report:?}"
    );
    let budget = fx.client.budget().unwrap();
    assert_eq!((budget.spent_msat, budget.reserved_msat), (0, 31_000));

    // The wallet pays late: the next look finds it, the token is usable,
    // and the request is served without a second payment.
    wallet.deliver().await;
    assert_eq!(fx.client.recover().await.unwrap().succeeded, 1);
    let resp = fx.client.fetch(FetchRequest::get(&url)).await.unwrap();
    assert_eq!(resp.status, 200);
    assert!(!resp.receipt.unwrap().paid);
    assert_eq!(gw.node.settlements(), 1);
    let budget = fx.client.budget().unwrap();
    assert_eq!((budget.spent_msat, budget.reserved_msat), (21_000, 0));
    drop(fx);

    // A wallet that never pays: held until ten minutes past the invoice's
    // expiry, then released (no wallet can pay an expired invoice).
    let wallet = Arc::new(LateWallet::new(&gw.base, false));
    let (fx, store2, clock) = client_with_clock(wallet.clone(), &gw.base);
    let err = fx.client.fetch(FetchRequest::get(&url)).await.unwrap_err();
    let FetchError::PaymentUnknown {
        payment_hash: held, ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_ne!(held, payment_hash);
    let expires = store2
        .get_by_hash(&held)
        .unwrap()
        .unwrap()
        .invoice()
        .parse::<Invoice>()
        .unwrap()
        .expires_at_unix();
    clock.set(expires + l402_mcp::client::EXPIRED_MARGIN.as_secs() - 5);
    assert_eq!(fx.client.recover().await.unwrap().still_pending, 1);
    clock.set(expires + l402_mcp::client::EXPIRED_MARGIN.as_secs() + 1);
    assert_eq!(fx.client.recover().await.unwrap().released, 1);
    let budget = fx.client.budget().unwrap();
    assert_eq!((budget.spent_msat, budget.reserved_msat), (0, 0));
    assert_eq!(
        gw.node.settlements(),
        1,
        "the never-delivered one paid nothing"
    );
}

/// Pays through the dev node and reports a routing fee `extra_msat` above
/// the real one, as a wallet over NWC (which takes no fee limit) may.
#[derive(Debug)]
struct DearWallet {
    dev: DevPayer,
    extra_msat: u64,
}

#[async_trait]
impl Payer for DearWallet {
    fn network(&self) -> Network {
        self.dev.network()
    }
    async fn pay(&self, invoice: &Invoice, max_fee_msat: u64) -> Result<Payment, PayError> {
        let mut p = self.dev.pay(invoice, max_fee_msat).await?;
        p.fee_msat += self.extra_msat;
        Ok(p)
    }
    async fn status(&self, hash: &PaymentHash) -> Result<PaymentStatus, PayError> {
        self.dev.status(hash).await
    }
}

#[tokio::test]
async fn a_fee_above_the_reserve_is_recorded_said_in_the_receipt_and_counted() {
    let gw = TestGateway::start(demo_with_route(single_use_get("/v1/once", 21))).await;
    let url = format!("{}/v1/once", gw.base);
    // A 100-sat budget, 1 sat reserved for fees, a wallet charging more.
    let dear = |extra_msat| {
        let payer = Arc::new(DearWallet {
            dev: DevPayer::new(&gw.base).unwrap(),
            extra_msat,
        });
        client_with(payer, &gw.base, |c| {
            c.session_budget_msat = 100_000;
            c.fee_limit_msat = 1_000;
        })
    };
    let fx = dear(60_000);
    let resp = fx.client.fetch(FetchRequest::get(&url)).await.unwrap();
    assert_eq!(resp.status, 200);
    let receipt = resp.receipt.unwrap();
    assert_eq!((receipt.amount_msat, receipt.fee_msat), (21_000, 60_000));
    assert_eq!(receipt.budget_left_msat, 19_000);
    let note = receipt
        .note
        .expect("the receipt says the fee was above the reserve");
    assert!(
        note.contains("60 sats") && note.contains("1 sats"),
        "{note}"
    );
    let budget = fx.client.budget().unwrap();
    assert_eq!((budget.spent_msat, budget.left_msat), (81_000, 19_000));

    // The next payment (21 sats + 1 reserved) does not fit what is left.
    let err = fx.client.fetch(FetchRequest::get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::Refused(_)), "{err:?}");
    assert!(
        err.to_string().contains("19 sats left of 100 sats"),
        "{err}"
    );
    assert_eq!(gw.node.settlements(), 1);

    // A fee that overruns the budget itself: recorded as charged, and
    // nothing is left (never a negative or wrapped figure).
    let fx = dear(200_000);
    let resp = fx.client.fetch(FetchRequest::get(&url)).await.unwrap();
    assert_eq!(resp.receipt.unwrap().budget_left_msat, 0);
    let budget = fx.client.budget().unwrap();
    assert_eq!((budget.spent_msat, budget.left_msat), (221_000, 0));
    let err = fx.client.fetch(FetchRequest::get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::Refused(_)), "{err:?}");
}

#[derive(Debug)]
struct FixedApprover(l402_mcp::client::Approval, AtomicUsize);

#[async_trait]
impl l402_mcp::client::Approver for FixedApprover {
    async fn approve(&self, _r: &l402_mcp::client::ApprovalRequest) -> l402_mcp::client::Approval {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.clone()
    }
}

#[tokio::test]
async fn payments_above_the_threshold_need_approval() {
    use l402_mcp::client::Approval;
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let url = format!("{}/v1/data", gw.base); // 100 sats
    let threshold = |c: &mut ClientConfig| c.approve_above_msat = Some(50_000);

    // Nobody to ask: refused with a sentence naming the flag.
    let fx = dev_client(&gw, threshold);
    let err = fx.client.fetch(FetchRequest::get(&url)).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Refused(Refusal::ApprovalUnavailable { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("--approve-above"), "{err}");

    // Declined.
    let no = Arc::new(FixedApprover(
        Approval::Declined("too dear".into()),
        AtomicUsize::new(0),
    ));
    let fx = dev_client(&gw, threshold);
    let client = Arc::try_unwrap(fx.client)
        .unwrap()
        .with_approver(no.clone());
    let err = client.fetch(FetchRequest::get(&url)).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Refused(Refusal::NotApproved { ref reason, .. }) if reason == "too dear"),
        "{err:?}"
    );
    assert_eq!(gw.node.settlements(), 0);

    // Approved; and below the threshold nobody is asked.
    let yes = Arc::new(FixedApprover(Approval::Approved, AtomicUsize::new(0)));
    let fx = dev_client(&gw, threshold);
    let client = Arc::try_unwrap(fx.client)
        .unwrap()
        .with_approver(yes.clone());
    assert_eq!(
        client.fetch(FetchRequest::get(&url)).await.unwrap().status,
        200
    );
    assert_eq!(
        client
            .fetch(FetchRequest::get(format!("{}/v1/demo", gw.base)))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        yes.1.load(Ordering::SeqCst),
        1,
        "asked once, for the 100-sat route only"
    );
    assert_eq!(gw.node.settlements(), 2);
}

#[tokio::test]
async fn each_service_of_an_origin_keeps_its_own_token() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let fx = dev_client(&gw, |_| {});
    let paid = |path: &'static str| {
        let c = fx.client.clone();
        let url = format!("{}{path}", gw.base);
        async move {
            let r = c.fetch(FetchRequest::get(url)).await.unwrap();
            assert_eq!(r.status, 200, "{path}");
            r.receipt.unwrap().paid
        }
    };
    assert!(paid("/v1/demo").await);
    assert!(
        paid("/v1/data").await,
        "another service: a token of its own"
    );
    assert!(!paid("/v1/demo").await, "the first token still works");
    assert!(!paid("/v1/data").await);
    assert_eq!(gw.node.settlements(), 2);
    // Neither token was marked stale by the other service's refusal.
    let statuses: Vec<String> = fx
        .client
        .tokens()
        .await
        .unwrap()
        .iter()
        .map(|t| t.status.to_string())
        .collect();
    assert_eq!(statuses, ["paid", "paid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_use_token_is_presented_first_by_the_session_that_paid_for_it() {
    let mut config = demo_with_route(single_use_get("/once", 5));
    config.rate_limit.burst = 1000;
    config.rate_limit.challenges_per_minute = 1000;
    let gw = TestGateway::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("store.sqlite")).unwrap());
    // Sessions of one store, as the MCP server's are: each its own client.
    let clients: Vec<Arc<L402Client>> = (0..6)
        .map(|i| {
            let config = ClientConfig {
                session: format!("s{i}"),
                allowed_origins: vec![gw.base.clone()],
                payments_per_minute: 1000,
                ..Default::default()
            };
            let payer = Arc::new(DevPayer::new(&gw.base).unwrap());
            Arc::new(L402Client::new(config, payer, store.clone()).unwrap())
        })
        .collect();
    let url = format!("{}/once", gw.base);
    for round in 0..15 {
        let fetches = clients.iter().map(|c| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.fetch(FetchRequest::get(url)).await })
        });
        for (i, r) in futures_util::future::join_all(fetches)
            .await
            .into_iter()
            .enumerate()
        {
            let resp = r.unwrap().unwrap();
            let receipt = resp.receipt.clone();
            // Whoever paid got the answer it paid for.
            assert_eq!(resp.status, 200, "round {round}, session {i}: {receipt:?}");
        }
    }
    assert_eq!(gw.node.settlements(), 90, "one purchase per answer");
}

/// A payer that pays through the dev node, then holds its answer until
/// told to give it: the money has moved, and its buyer has not recorded
/// the payment yet (the moment another process's recovery can see it).
#[derive(Debug)]
struct AnswerLaterPayer {
    inner: DevPayer,
    paid: tokio::sync::Notify,
    go: tokio::sync::Notify,
}

#[async_trait]
impl Payer for AnswerLaterPayer {
    fn network(&self) -> Network {
        self.inner.network()
    }
    async fn pay(&self, invoice: &Invoice, max_fee_msat: u64) -> Result<Payment, PayError> {
        let paid = self.inner.pay(invoice, max_fee_msat).await;
        self.paid.notify_one();
        self.go.notified().await;
        paid
    }
    async fn status(&self, hash: &PaymentHash) -> Result<PaymentStatus, PayError> {
        self.inner.status(hash).await
    }
}

/// Found by twenty agents in other processes on one single-use route: an
/// agent starting while another's payment had gone through, but was not
/// recorded yet, resolved that payment (its recovery asks the node, which
/// says it succeeded), found the token usable and presented it first. The
/// buyer, who paid, got "already used". Recovery now keeps a payment it
/// resolves for its buyer, as the buyer would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_recovering_a_payment_under_way_never_takes_its_token_from_the_buyer() {
    let gw = TestGateway::start(demo_with_route(single_use_get("/once", 50))).await;
    let url = format!("{}/once", gw.base);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let config = |session: &str| ClientConfig {
        allowed_origins: vec![gw.base.clone()],
        session: session.to_string(),
        ..Default::default()
    };
    let payer = Arc::new(AnswerLaterPayer {
        inner: DevPayer::new(&gw.base).unwrap(),
        paid: tokio::sync::Notify::new(),
        go: tokio::sync::Notify::new(),
    });
    // Two clients on one store file: two processes.
    let buyer = Arc::new(
        L402Client::new(
            config("buyer"),
            payer.clone(),
            Arc::new(Store::open(&path).unwrap()),
        )
        .unwrap(),
    );
    let other = Arc::new(
        L402Client::new(
            config("other"),
            Arc::new(DevPayer::new(&gw.base).unwrap()),
            Arc::new(Store::open(&path).unwrap()),
        )
        .unwrap(),
    );
    let b = buyer.clone();
    let u = url.clone();
    let bought = tokio::spawn(async move { b.fetch(FetchRequest::get(u)).await });
    payer.paid.notified().await; // the money moved; the buyer has not recorded it
    let o = other.clone();
    let u = url.clone();
    let second = tokio::spawn(async move { o.fetch(FetchRequest::get(u)).await });
    tokio::time::sleep(Duration::from_millis(700)).await; // it recovers and tries meanwhile
    payer.go.notify_one();

    let bought = bought.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();
    let receipt = bought.receipt.as_ref().unwrap();
    assert!(receipt.paid, "{receipt:?}");
    assert_eq!(
        (bought.status, receipt.note.as_deref()),
        (200, None),
        "the buyer paid and was refused: {}",
        String::from_utf8_lossy(&bought.body)
    );
    assert_eq!(second.status, 200);
    assert!(
        second.receipt.as_ref().unwrap().paid,
        "the other agent rode on the buyer's payment"
    );
    assert_eq!(gw.node.settlements(), 2);
}

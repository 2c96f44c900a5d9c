//! The gateway, in process (`router().oneshot`) and over real sockets on
//! 127.0.0.1:0, paying through its embedded dev node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use l402_mcp::gateway::{Gateway, GatewayConfig, load_or_create_root_key};
use l402_mcp::l402::{Challenge, Credential, RootKey, Scheme};
use l402_mcp::lightning::dev::DevNode;
use l402_mcp::lightning::{Invoice, Network, Preimage};
use serde_json::Value;
use tower::ServiceExt;

use crate::common::{TestGateway, pay_dev};

fn gateway_for_oneshot() -> Arc<Gateway> {
    let node = Arc::new(DevNode::new());
    Arc::new(Gateway::new(GatewayConfig::demo(), RootKey([9; 32]), node).unwrap())
}

async fn body_json(resp: axum::response::Response) -> Value {
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ---------------------------------------------------------------------------
// In process, no socket.

#[tokio::test]
async fn paid_route_without_credential_gets_aperture_style_402() {
    let app = gateway_for_oneshot().router();
    let resp = app
        .oneshot(Request::get("/v1/demo").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let values: Vec<String> = resp
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(values.len(), 2, "LSAT and L402 challenges: {values:?}");
    assert!(values[0].starts_with("LSAT macaroon=\""), "{}", values[0]);
    assert!(values[1].starts_with("L402 macaroon=\""), "{}", values[1]);
    assert_eq!(
        values[0]["LSAT".len()..],
        values[1]["L402".len()..],
        "same macaroon and invoice"
    );

    let challenges = Challenge::parse_all(values.iter().map(String::as_str)).unwrap();
    assert_eq!(challenges.len(), 2);
    assert_eq!(challenges[0].scheme, Scheme::Lsat);
    assert_eq!(challenges[1].scheme, Scheme::L402);
    let invoice: Invoice = challenges[1].invoice.parse().unwrap();
    assert_eq!(invoice.amount_msat(), Some(21_000));
    assert_eq!(invoice.network(), Network::Regtest);
    assert_eq!(invoice.expiry().as_secs(), 600);
    let id = challenges[1].macaroon.identifier().unwrap();
    assert_eq!(
        id.payment_hash,
        invoice.payment_hash(),
        "macaroon bound to the invoice"
    );

    let json = body_json(resp).await;
    assert_eq!(json["price_sats"], 21);
    assert_eq!(json["invoice"], challenges[1].invoice.as_str());
    assert_eq!(json["macaroon"], challenges[1].macaroon.to_base64());
    assert_eq!(json["payment_hash"], invoice.payment_hash().to_hex());
    assert_eq!(
        json["authorization_format"],
        "L402 <macaroon>:<preimage hex>"
    );
}

#[tokio::test]
async fn free_paths_need_no_payment() {
    let gw = gateway_for_oneshot();
    let resp = gw
        .clone()
        .router()
        .oneshot(Request::get("/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_json(resp).await, serde_json::json!({"status": "ok"}));

    let resp = gw
        .clone()
        .router()
        .oneshot(
            Request::get("/")
                .header(header::ACCEPT, "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let index = body_json(resp).await;
    let prices: Vec<(String, u64)> = index["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["price_sats"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        prices,
        [
            ("/v1/demo", 21),
            ("/v1/data", 100),
            ("/v1/generate", 250),
            ("/health", 0),
            ("/", 0)
        ]
        .map(|(p, s)| (p.to_string(), s))
    );

    let resp = gw
        .router()
        .oneshot(
            Request::get("/")
                .header(header::ACCEPT, "text/html,*/*")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let gw = gateway_for_oneshot();
    let resp = gw
        .clone()
        .router()
        .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = gw
        .router()
        .oneshot(Request::get("/v1/generate").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()[header::ALLOW], "POST");
}

#[tokio::test]
async fn garbage_authorization_headers_get_401_never_a_panic() {
    let gw = gateway_for_oneshot();
    let garbage = [
        "L402",
        "L402 ",
        "L402 :",
        "L402 abc",
        "L402 abc:def",
        "L402 !!!!:0000000000000000000000000000000000000000000000000000000000000000",
        "LSAT AgEEbHNhdA==:zz",
        "L402 AgEEbHNhdA==:00000000000000000000000000000000000000000000000000000000000000",
        "l402 ::::::::",
    ];
    for value in garbage {
        let resp = gw
            .clone()
            .router()
            .oneshot(
                Request::get("/v1/demo")
                    .header(header::AUTHORIZATION, value)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{value:?}");
        let json = body_json(resp).await;
        assert!(
            json["error"].as_str().unwrap().contains("not valid"),
            "{value:?}: {json}"
        );
    }
    // Bytes that are not ASCII: malformed, not absent.
    let resp = gw
        .clone()
        .router()
        .oneshot(
            Request::get("/v1/demo")
                .header(
                    header::AUTHORIZATION,
                    header::HeaderValue::from_bytes(b"L402 \xff\xfe:\x80").unwrap(),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Other schemes are not credentials: they get a challenge.
    let resp = gw
        .router()
        .oneshot(
            Request::get("/v1/demo")
                .header(header::AUTHORIZATION, "Bearer xyz")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let gw = gateway_for_oneshot();
    let resp = gw
        .router()
        .oneshot(
            Request::get("/v1/demo")
                .header("x-padding", "a".repeat(20 * 1024))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

// ---------------------------------------------------------------------------
// Over sockets.

#[tokio::test]
async fn paying_through_dev_node_buys_access_and_the_token_is_reused() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let (challenge, resp) = gw.challenge("/v1/demo").await;
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let preimage = pay_dev(&gw.base, &challenge.invoice).await;
    let credential = Credential {
        scheme: Scheme::L402,
        macaroon: challenge.macaroon,
        preimage,
    };

    for _ in 0..3 {
        let resp = gw.get_with("/v1/demo", &credential.to_string()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let json: Value = resp.json().await.unwrap();
        assert_eq!(json["paid"], true);
    }
    // The legacy scheme name works too, as aperture's clients send it.
    let lsat = Credential {
        scheme: Scheme::Lsat,
        ..credential
    };
    assert_eq!(
        gw.get_with("/v1/demo", &lsat.to_string()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_challenge_has_a_fresh_invoice() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let (a, _) = gw.challenge("/v1/demo").await;
    let (b, _) = gw.challenge("/v1/demo").await;
    assert_ne!(a.invoice, b.invoice);
    assert_ne!(
        a.macaroon.identifier().unwrap(),
        b.macaroon.identifier().unwrap()
    );
}

#[tokio::test]
async fn token_for_one_route_is_refused_on_another() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let credential = gw.buy("/v1/demo").await;
    assert_eq!(
        gw.get_with("/v1/demo", &credential).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        gw.get_with("/v1/data", &credential).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn expired_token_is_refused() {
    let now = Arc::new(AtomicU64::new(1_900_000_000));
    let clock = now.clone();
    let gw = TestGateway::start_with(GatewayConfig::demo(), move |g| {
        g.with_clock(Arc::new(move || clock.load(Ordering::SeqCst)))
    })
    .await;
    let credential = gw.buy("/v1/demo").await;
    assert_eq!(
        gw.get_with("/v1/demo", &credential).await.status(),
        StatusCode::OK
    );
    now.fetch_add(3599, Ordering::SeqCst);
    assert_eq!(
        gw.get_with("/v1/demo", &credential).await.status(),
        StatusCode::OK
    );
    now.fetch_add(1, Ordering::SeqCst);
    assert_eq!(
        gw.get_with("/v1/demo", &credential).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn tampered_macaroon_and_wrong_preimage_are_refused() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let (challenge, _) = gw.challenge("/v1/demo").await;
    let preimage = pay_dev(&gw.base, &challenge.invoice).await;

    // Wrong preimage (unpaid).
    let wrong = Credential {
        scheme: Scheme::L402,
        macaroon: challenge.macaroon.clone(),
        preimage: Preimage::random(),
    };
    assert_eq!(
        gw.get_with("/v1/demo", &wrong.to_string()).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A caveat added by the holder that widens nothing still verifies...
    let mut narrowed = challenge.macaroon.clone();
    narrowed
        .add_caveat(&"v1-demo_valid_until=1".parse().unwrap())
        .unwrap();
    let cred = Credential {
        scheme: Scheme::L402,
        macaroon: narrowed,
        preimage: preimage.clone(),
    };
    // ...but this one narrows validity into the past: refused.
    assert_eq!(
        gw.get_with("/v1/demo", &cred.to_string()).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Every single-byte change of the macaroon is refused.
    let bytes = challenge.macaroon.to_bytes();
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &b);
        let header = format!("L402 {b64}:{}", preimage.to_hex());
        let status = gw.get_with("/v1/demo", &header).await.status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "byte {i} flipped");
    }

    // The untouched credential works.
    let good = Credential {
        scheme: Scheme::L402,
        macaroon: challenge.macaroon,
        preimage,
    };
    assert_eq!(
        gw.get_with("/v1/demo", &good.to_string()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn token_minted_under_another_root_key_is_refused() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let other = TestGateway::start(GatewayConfig::demo()).await;
    let credential = other.buy("/v1/demo").await;
    assert_eq!(
        gw.get_with("/v1/demo", &credential).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn single_use_token_is_refused_the_second_time() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let credential = gw.buy_with("/v1/generate", reqwest::Method::POST).await;
    let post = |body: &'static str| {
        gw.client
            .post(format!("{}/v1/generate", gw.base))
            .header(header::AUTHORIZATION, &credential)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };
    let resp = post(r#"{"prompt": "pay per call"}"#).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let json: Value = resp.json().await.unwrap();
    assert_eq!(json["prompt"], "pay per call");
    assert!(
        json["completion"]
            .as_str()
            .unwrap()
            .starts_with("call per pay")
    );
    let resp = post(r#"{"prompt": "again"}"#).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let json: Value = resp.json().await.unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("already used"),
        "{json}"
    );
}

#[tokio::test]
async fn dev_node_settles_an_invoice_only_once() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let (challenge, _) = gw.challenge("/v1/demo").await;
    let pay = || {
        gw.client
            .post(format!("{}/dev/pay", gw.base))
            .json(&serde_json::json!({ "invoice": challenge.invoice }))
            .send()
    };
    assert_eq!(pay().await.unwrap().status(), StatusCode::OK);
    let second = pay().await.unwrap();
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let json: Value = second.json().await.unwrap();
    assert!(json["error"].is_string());
}

#[tokio::test]
async fn challenges_are_rate_limited_per_client() {
    let mut config = GatewayConfig::demo();
    config.rate_limit.challenges_per_minute = 1;
    config.rate_limit.burst = 3;
    let gw = TestGateway::start(config).await;
    for _ in 0..3 {
        assert_eq!(
            gw.get("/v1/demo").await.status(),
            StatusCode::PAYMENT_REQUIRED
        );
    }
    let resp = gw.get("/v1/demo").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Free paths and paid credentials are not challenges: not limited.
    assert_eq!(gw.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn proxy_mode_forwards_method_body_and_headers_but_never_the_credential() {
    let upstream = crate::common::EchoUpstream::start().await;
    let config = GatewayConfig::from_toml(&format!(
        r#"
        [[routes]]
        path = "/api"
        match = "prefix"
        method = "ANY"
        price_sats = 5
        upstream = "{}"

        [[routes]]
        path = "/open"
        free = true
        upstream = "{}"
        "#,
        upstream.base, upstream.base
    ))
    .unwrap();
    let gw = TestGateway::start(config).await;

    // Free proxied path.
    let resp = gw.get("/open?x=1").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["path"], "/open");
    assert_eq!(echo["query"], "x=1");

    // Paid: a POST with a 300 KB body arrives intact.
    let credential = gw.buy_with("/api/items", reqwest::Method::POST).await;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let resp = gw
        .client
        .post(format!("{}/api/items?sort=asc", gw.base))
        .header(header::AUTHORIZATION, &credential)
        .header("x-custom", "kept")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-upstream"], "echo");
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/api/items");
    assert_eq!(echo["query"], "sort=asc");
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(
        echo["body_sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body))
    );
    assert_eq!(echo["headers"]["x-custom"], "kept");
    assert!(
        echo["headers"].get("authorization").is_none(),
        "credential leaked upstream: {echo}"
    );

    // Upstream status codes pass through.
    let resp = gw.get_with("/api/status/418", &credential).await;
    assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT);
}

#[tokio::test]
async fn upstream_down_is_a_502_sentence() {
    let config = GatewayConfig::from_toml(
        "[[routes]]\npath = \"/down\"\nfree = true\nupstream = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let gw = TestGateway::start(config).await;
    let resp = gw.get("/down").await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let json: Value = resp.json().await.unwrap();
    assert!(json["error"].as_str().unwrap().contains("upstream"));
}

#[test]
fn root_key_is_created_private_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let a = load_or_create_root_key(dir.path()).unwrap();
    let b = load_or_create_root_key(dir.path()).unwrap();
    assert_eq!(a.0, b.0);
    let path = dir.path().join(l402_mcp::gateway::ROOT_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_root_key(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let credential = gw.buy_with("/v1/generate", reqwest::Method::POST).await;
    let resp = gw
        .client
        .post(format!("{}/v1/generate", gw.base))
        .header(header::AUTHORIZATION, &credential)
        .body(vec![b'a'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_hanging_upstream_times_out_with_a_sentence() {
    // An upstream that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let config = GatewayConfig::from_toml(&format!(
        "[limits]\nrequest_timeout_secs = 1\n[[routes]]\npath = \"/slow\"\nfree = true\nupstream = \"http://{addr}\"\n"
    ))
    .unwrap();
    let gw = TestGateway::start(config).await;
    let started = std::time::Instant::now();
    let resp = gw.get("/slow").await;
    assert!(
        [StatusCode::GATEWAY_TIMEOUT, StatusCode::REQUEST_TIMEOUT].contains(&resp.status()),
        "{}",
        resp.status()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

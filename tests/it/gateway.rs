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
            ("/v1/charge", 5),
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
        // Hop-by-hop: what Connection names, and the proxy's own headers.
        .header(header::CONNECTION, "keep-alive, X-Hop")
        .header("x-hop", "for the gateway only")
        .header("keep-alive", "timeout=5")
        .header(header::PROXY_AUTHORIZATION, "Basic Zm9vOmJhcg==")
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
    for hop in ["x-hop", "keep-alive", "proxy-authorization"] {
        assert!(
            echo["headers"].get(hop).is_none(),
            "hop-by-hop header {hop} went upstream: {echo}"
        );
    }
    assert_eq!(
        echo["headers"]["host"],
        upstream.base.trim_start_matches("http://"),
        "the upstream is asked for under its own name"
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

/// POSTs 2 MiB, sent chunked (no Content-Length), to `path` with
/// `credential`: over the demo's 1 MiB cap.
async fn post_oversized_chunked(
    gw: &TestGateway,
    path: &str,
    credential: &str,
) -> reqwest::Response {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..32).map(|_| Ok(vec![b'a'; 64 * 1024])).collect();
    gw.client
        .post(format!("{}{path}", gw.base))
        .header(header::AUTHORIZATION, credential)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer to an oversized chunked POST {path}: {e:?}"))
}

/// A body sent chunked (no Content-Length) over the cap gets the 413 and its
/// sentence too, not a broken pipe: the gateway reads the rest (within
/// bounds) before it answers. On a single-use route the token is not
/// spent by the refused request.
#[tokio::test]
async fn an_oversized_chunked_body_gets_413_and_keeps_the_token() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let credential = gw.buy_with("/v1/generate", reqwest::Method::POST).await;
    for round in 0..5 {
        let resp = post_oversized_chunked(&gw, "/v1/generate", &credential).await;
        assert_eq!(
            resp.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "round {round}"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("larger than"),
            "{body}"
        );
    }
    // Refused before it was served: the single-use token still buys one answer.
    let resp = gw
        .client
        .post(format!("{}/v1/generate", gw.base))
        .header(header::AUTHORIZATION, &credential)
        .body("a prompt")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// The same through a single-use proxy route: the upstream never answers
/// a body that broke off at the cap, so the claim is released, the client
/// gets the 413 (not "upstream not reached"), and the token still buys
/// one forwarded request.
#[tokio::test]
async fn an_oversized_chunked_body_to_a_proxied_route_gets_413_and_keeps_the_token() {
    let upstream = crate::common::EchoUpstream::start().await;
    let config = GatewayConfig::from_toml(&format!(
        r#"
        [[routes]]
        path = "/api"
        method = "POST"
        price_sats = 5
        token = "single-use"
        upstream = "{}"
        "#,
        upstream.base
    ))
    .unwrap();
    let gw = TestGateway::start(config).await;
    let credential = gw.buy_with("/api", reqwest::Method::POST).await;
    for round in 0..3 {
        let resp = post_oversized_chunked(&gw, "/api", &credential).await;
        assert_eq!(
            resp.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "round {round}"
        );
    }
    let resp = gw
        .client
        .post(format!("{}/api", gw.base))
        .header(header::AUTHORIZATION, &credential)
        .body("small")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["body_len"], 5);
}

/// An upstream that closes each connection right after its answer, without
/// saying so (no `Connection: close`), as one whose keep-alive runs out: a
/// pooled connection it closed is never a 502; the request, not written
/// yet, goes on a new connection.
#[tokio::test]
async fn an_upstream_closing_idle_connections_never_turns_into_a_502() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // and close, without having said so
            });
        }
    });
    let config = GatewayConfig::from_toml(&format!(
        "[[routes]]\npath = \"/up\"\nfree = true\nupstream = \"{upstream}\"\n"
    ))
    .unwrap();
    let gw = TestGateway::start(config).await;
    for i in 0..200 {
        let resp = gw.get("/up").await;
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
}

/// An upstream connection is reused whatever the answer's framing: a
/// body of known length, a chunked one, none at all (204, `Content-Length:
/// 0`, the answer to a HEAD). An answer whose body is never polled (it has
/// none) must give its connection back too, or each such request costs a
/// new connection (a pool that took connections back when their body was
/// read to its end, tried once, opened 30 here).
#[tokio::test]
async fn upstream_connections_are_reused_whatever_the_answers_framing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                loop {
                    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&got[..end]).into_owned();
                    got.drain(..end + 4);
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let answer: &[u8] = if line.starts_with("HEAD ") {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
                    } else if line.contains("/up/chunked ") {
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"
                    } else if line.contains("/up/none ") {
                        b"HTTP/1.1 204 No Content\r\n\r\n"
                    } else if line.contains("/up/empty ") {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
                    };
                    if conn.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let config = GatewayConfig::from_toml(&format!(
        "[[routes]]\npath = \"/up\"\nmatch = \"prefix\"\nmethod = \"ANY\"\nfree = true\nupstream = \"{upstream}\"\n"
    ))
    .unwrap();
    let gw = TestGateway::start(config).await;
    for round in 0..10 {
        for (path, status, body) in [
            ("/up/length", 200, "hello"),
            ("/up/chunked", 200, "hello"),
            ("/up/none", 204, ""),
            ("/up/empty", 200, ""),
        ] {
            let resp = gw.get(path).await;
            assert_eq!(resp.status().as_u16(), status, "{path}, round {round}");
            assert_eq!(resp.text().await.unwrap(), body, "{path}, round {round}");
        }
        let resp = gw
            .client
            .head(format!("{}/up/length", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "HEAD, round {round}");
        assert_eq!(resp.headers()[header::CONTENT_LENGTH], "5");
    }
    // One client connection, one request at a time: one upstream connection.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
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
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let json: Value = resp.json().await.unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("in time"),
        "{json}"
    );
}

// ---------------------------------------------------------------------------
// Money safety at the edges (issue 9).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use l402_mcp::gateway::{SpentSet, SpentSetError, SqliteSpentSet};
use l402_mcp::l402::{Caveat, Identifier, mint};
use l402_mcp::lightning::PaymentHash;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that records every path it receives (raw, as sent) and
/// answers `{"path": …}`; it can be told to stall its next answers.
struct RecordingUpstream {
    base: String,
    paths: Arc<Mutex<Vec<String>>>,
    stall: Arc<AtomicU64>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl RecordingUpstream {
    async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    async fn start_on(addr: &str) -> Self {
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let stall = Arc::new(AtomicU64::new(0));
        let (seen, stalls) = (paths.clone(), stall.clone());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (seen, stalls) = (seen.clone(), stalls.clone());
            async move {
                let path = req.uri().path().to_string();
                seen.lock().unwrap().push(path.clone());
                let ms = stalls.swap(0, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                axum::Json(serde_json::json!({ "path": path }))
            }
        });
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let local = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        RecordingUpstream {
            base: format!("http://{local}"),
            paths,
            stall,
            _shutdown: tx,
        }
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

/// One HTTP/1.1 request written byte for byte (reqwest would normalise
/// the path first), answered on a fresh connection: (status, body).
async fn raw_request(
    addr: std::net::SocketAddr,
    line: &str,
    authorization: Option<&str>,
) -> (u16, String) {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!("{line} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn dot_segments_and_encoded_separators_never_reach_a_paid_upstream() {
    let upstream = RecordingUpstream::start().await;
    let base = format!("{}/base", upstream.base);
    let config = GatewayConfig::from_toml(&format!(
        r#"
        [[routes]]
        path = "/public"
        match = "prefix"
        free = true
        upstream = "{base}"

        [[routes]]
        path = "/paid"
        match = "prefix"
        price_sats = 500
        upstream = "{base}"

        [[routes]]
        path = "/cheap"
        match = "prefix"
        price_sats = 1
        upstream = "{base}"

        [[routes]]
        path = "/weather"
        price_sats = 500
        upstream = "{base}"

        [[routes]]
        path = "/"
        match = "prefix"
        free = true
        service = "everything-else"
        upstream = "{base}"
        "#
    ))
    .unwrap();
    let gw = TestGateway::start(config).await;
    let cheap = gw.buy("/cheap/x").await;

    // What is served for free or for 1 sat arrives under its own prefix.
    let (status, _) = raw_request(gw.addr, "GET /public/x", None).await;
    assert_eq!(status, 200);
    let (status, _) = raw_request(gw.addr, "GET /cheap/x?q=1", Some(&cheap)).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.paths(), ["/base/public/x", "/base/cheap/x"]);

    // Every way around the paywall that was tried.
    let free_attacks = [
        "/public/../paid/secret",
        "/public/%2e%2e/paid/secret",
        "/public/%2E%2E/paid/secret",
        "/public/.%2e/paid/secret",
        "/public/%2e./paid/secret",
        "/public/..%2fpaid/secret",
        "/public/..%2Fpaid/secret",
        "/public/%2e%2e%2fpaid%2fsecret",
        "/public/..%5cpaid/secret",
        "/public/..\\paid/secret",
        "/public/..;/paid/secret",
        "/public/./../paid/secret",
        "/public//../paid/secret",
        "/public/../../paid/secret",
        "/public/../../../etc/passwd",
        "/public/%00/../paid/secret",
        "/public/%zz/../paid/secret",
        "//paid/secret",
        "/./paid/secret",
        "/p%61id/secret",
        "/%70aid/secret",
        "/weather/..",
    ];
    let cheap_attacks = [
        "/cheap/../paid/x",
        "/cheap/..%2fweather",
        "/cheap/%2e%2e/weather",
        "/cheap/..%2f..%2fweather",
        "/cheap/%2e%2e%2fweather",
        "/cheap/../weather",
        "/cheap/..;/weather",
        "/cheap/.%2E/paid/x",
    ];
    let mut tried = 0;
    for path in free_attacks {
        let (status, body) = raw_request(gw.addr, &format!("GET {path}"), None).await;
        assert!([400, 402].contains(&status), "{path}: {status} {body}");
        if status == 400 {
            let json: Value = serde_json::from_str(&body)
                .unwrap_or_else(|_| panic!("{path}: not JSON: {body:?}"));
            assert!(json["error"].is_string(), "{path}: {body}");
        }
        tried += 1;
    }
    for path in cheap_attacks {
        let (status, body) = raw_request(gw.addr, &format!("GET {path}"), Some(&cheap)).await;
        assert!(
            [400, 401, 402].contains(&status),
            "{path} with the 1-sat token: {status} {body}"
        );
        tried += 1;
    }
    assert_eq!(tried, free_attacks.len() + cheap_attacks.len());

    // Nothing reached the upstream outside the prefix it was matched for,
    // nor outside the upstream's base path.
    let seen = upstream.paths();
    assert_eq!(
        seen,
        ["/base/public/x", "/base/cheap/x"],
        "paths the upstream received"
    );

    // Percent-encodings of other characters are forwarded as they came, and
    // stay under the prefix they were matched for.
    let (status, _) = raw_request(gw.addr, "GET /public/%252e%252e/a%20b", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        upstream.paths().last().unwrap(),
        "/base/public/%252e%252e/a%20b"
    );
}

fn wx_config() -> GatewayConfig {
    GatewayConfig::from_toml(
        r#"
        [[routes]]
        path = "/wx/basic"
        service = "wx"
        price_sats = 10
        demo = "demo"

        [[routes]]
        path = "/wx/premium"
        service = "wx"
        capability = "premium"
        price_sats = 500
        demo = "data"
        "#,
    )
    .unwrap()
}

#[tokio::test]
async fn a_capability_added_by_the_holder_opens_nothing_more() {
    let gw = TestGateway::start(wx_config()).await;
    let basic = gw.buy("/wx/basic").await;
    assert_eq!(
        gw.get_with("/wx/basic", &basic).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        gw.get_with("/wx/premium", &basic).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // The holder appends `wx_capabilities=premium`: a valid HMAC extension.
    let credential = Credential::from_header_values([basic.as_str()])
        .unwrap()
        .unwrap();
    let mut widened = credential.macaroon.clone();
    widened
        .add_caveat(&Caveat::new("wx_capabilities", "premium"))
        .unwrap();
    let widened = Credential {
        macaroon: widened,
        ..credential.clone()
    }
    .to_string();
    assert_eq!(
        gw.get_with("/wx/premium", &widened).await.status(),
        StatusCode::UNAUTHORIZED,
        "a 10-sat token widened by its holder opened the 500-sat route"
    );
    assert_eq!(
        gw.get_with("/wx/basic", &widened).await.status(),
        StatusCode::UNAUTHORIZED,
        "the widening caveat does not narrow the minted (empty) set"
    );

    // What was bought still opens what it was bought for.
    let premium = gw.buy("/wx/premium").await;
    assert_eq!(
        gw.get_with("/wx/premium", &premium).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        gw.get_with("/wx/basic", &premium).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_minted_without_capabilities_cannot_be_widened_either() {
    // A token as the gateway minted them before capabilities were always
    // explicit: services and expiry only. Its holder adds a capability.
    let root = RootKey([4; 32]);
    let node = Arc::new(DevNode::new());
    let gw = Arc::new(Gateway::new(wx_config(), root.clone(), node).unwrap());
    let preimage = Preimage::random();
    let id = Identifier::new(preimage.payment_hash());
    let far = 4_000_000_000u64;
    let mut macaroon = mint(
        &root,
        &id,
        &[Caveat::services(["wx"]), Caveat::valid_until("wx", far)],
    );
    let legacy = Credential::new(macaroon.clone(), preimage.clone()).to_string();
    macaroon
        .add_caveat(&Caveat::capabilities("wx", ["premium"]))
        .unwrap();
    let widened = Credential::new(macaroon, preimage).to_string();
    let status = |path: &'static str, auth: String| {
        let app = gw.clone().router();
        async move {
            app.oneshot(
                Request::get(path)
                    .header(header::AUTHORIZATION, auth)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
        }
    };
    assert_eq!(status("/wx/basic", legacy.clone()).await, StatusCode::OK);
    assert_eq!(
        status("/wx/premium", legacy).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status("/wx/premium", widened).await,
        StatusCode::UNAUTHORIZED
    );
}

fn single_use_proxy(upstream: &str, timeout_secs: u64) -> GatewayConfig {
    GatewayConfig::from_toml(&format!(
        r#"
        [limits]
        request_timeout_secs = {timeout_secs}

        [[routes]]
        path = "/gen"
        method = "POST"
        price_sats = 5
        token = "single-use"
        upstream = "{upstream}"
        "#
    ))
    .unwrap()
}

async fn post(gw: &TestGateway, path: &str, auth: &str, body: &'static str) -> reqwest::Response {
    gw.client
        .post(format!("{}{path}", gw.base))
        .header(header::AUTHORIZATION, auth)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_single_use_token_is_not_spent_when_the_upstream_is_down() {
    let port = free_port();
    let gw = TestGateway::start(single_use_proxy(&format!("http://127.0.0.1:{port}"), 5)).await;
    let token = gw.buy_with("/gen", reqwest::Method::POST).await;

    let resp = post(&gw, "/gen", &token, "{}").await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let json: Value = resp.json().await.unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("upstream"),
        "{json}"
    );

    // The upstream comes up: the same token buys its one answer, once.
    let upstream = RecordingUpstream::start_on(&format!("127.0.0.1:{port}")).await;
    assert_eq!(
        post(&gw, "/gen", &token, "{}").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&gw, "/gen", &token, "{}").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(upstream.paths(), ["/gen"]);
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_with_a_json_sentence_and_spends_nothing() {
    let upstream = RecordingUpstream::start().await;
    let gw = TestGateway::start(single_use_proxy(&upstream.base, 1)).await;
    let token = gw.buy_with("/gen", reqwest::Method::POST).await;

    upstream.stall.store(3000, Ordering::SeqCst);
    let started = Instant::now();
    let resp = post(&gw, "/gen", &token, "{}").await;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(3));
    let json: Value = resp.json().await.unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("in time"),
        "{json}"
    );

    // The token was not spent on the answer that never came.
    assert_eq!(
        post(&gw, "/gen", &token, "{}").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&gw, "/gen", &token, "{}").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_hanging_upstream_on_a_free_route_is_a_504_with_a_json_sentence() {
    let upstream = RecordingUpstream::start().await;
    let config = GatewayConfig::from_toml(&format!(
        "[limits]\nrequest_timeout_secs = 1\n[[routes]]\npath = \"/slow\"\nfree = true\nupstream = \"{}\"\n",
        upstream.base
    ))
    .unwrap();
    let gw = TestGateway::start(config).await;
    upstream.stall.store(5000, Ordering::SeqCst);
    let resp = gw.get("/slow").await;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let json: Value = resp.json().await.unwrap();
    assert!(json["error"].is_string(), "{json}");
}

#[tokio::test]
async fn a_refused_prompt_does_not_spend_the_single_use_token() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let token = gw.buy_with("/v1/generate", reqwest::Method::POST).await;
    for bad in [
        r#"{"prompt": ""}"#,
        r#"{"prompt": "   "}"#,
        "not json",
        r#"{"x": 1}"#,
    ] {
        let resp = post(&gw, "/v1/generate", &token, bad).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let json: Value = resp.json().await.unwrap();
        assert!(json["error"].is_string());
    }
    let resp = post(&gw, "/v1/generate", &token, r#"{"prompt": "pay per call"}"#).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        post(&gw, "/v1/generate", &token, r#"{"prompt": "again"}"#)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn concurrent_presentations_of_a_single_use_token_get_exactly_one_answer() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = RecordingUpstream::start().await;
    let spent = Arc::new(SqliteSpentSet::open_in(dir.path()).unwrap());
    let gw = TestGateway::start_with(single_use_proxy(&upstream.base, 10), move |g| {
        g.with_spent_set(spent)
    })
    .await;
    for _ in 0..2 {
        let token = gw.buy_with("/gen", reqwest::Method::POST).await;
        let requests = (0..24).map(|_| post(&gw, "/gen", &token, "{}"));
        let statuses: Vec<StatusCode> = futures_util::future::join_all(requests)
            .await
            .into_iter()
            .map(|r| r.status())
            .collect();
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(ok, 1, "{statuses:?}");
        assert!(
            statuses
                .iter()
                .all(|s| [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(s)),
            "{statuses:?}"
        );
    }
    assert_eq!(upstream.paths().len(), 2, "one forwarded request per token");
}

#[tokio::test]
async fn concurrent_presentations_on_the_demo_route_get_exactly_one_answer() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let token = gw.buy_with("/v1/generate", reqwest::Method::POST).await;
    let requests = (0..24).map(|_| post(&gw, "/v1/generate", &token, r#"{"prompt": "hi"}"#));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
}

/// A spent-set whose store is broken.
#[derive(Debug)]
struct BrokenSpentSet;

#[async_trait::async_trait]
impl SpentSet for BrokenSpentSet {
    async fn claim(&self, _: &PaymentHash, _: u64) -> Result<bool, SpentSetError> {
        Err(SpentSetError {
            store: "test".into(),
            message: "disk I/O error".into(),
        })
    }
    async fn release(&self, _: &PaymentHash) -> Result<(), SpentSetError> {
        Ok(())
    }
    async fn prune(&self, _: u64) -> Result<(), SpentSetError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_spent_set_refuses_single_use_tokens_with_503() {
    let gw = TestGateway::start_with(GatewayConfig::demo(), |g| {
        g.with_spent_set(Arc::new(BrokenSpentSet))
    })
    .await;
    let token = gw.buy_with("/v1/generate", reqwest::Method::POST).await;
    for _ in 0..2 {
        let resp = post(&gw, "/v1/generate", &token, r#"{"prompt": "hi"}"#).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let json: Value = resp.json().await.unwrap();
        assert!(
            json["error"].as_str().unwrap().contains("not used"),
            "{json}"
        );
    }
    // Reusable tokens need no spent-set.
    let reusable = gw.buy("/v1/demo").await;
    assert_eq!(
        gw.get_with("/v1/demo", &reusable).await.status(),
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------
// The `l402-mcp gateway` process.

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");

/// A `l402-mcp gateway` child on a free loopback port; killed (by pid,
/// through its handle) when dropped.
struct GatewayProcess {
    child: std::process::Child,
    base: String,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway_command(data_dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("gateway")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("L402_GATEWAY_LISTEN")
        .env_remove("L402_GATEWAY_CONFIG")
        .env_remove("L402_LND_HOST")
        .env_remove("L402_LND_TLS_CERT")
        .env_remove("L402_LND_MACAROON")
        .env_remove("L402_NETWORK")
        .env_remove("RUST_LOG");
    cmd
}

fn start_gateway_process(
    data_dir: &std::path::Path,
    stdio: std::process::Stdio,
    stderr: std::process::Stdio,
) -> GatewayProcess {
    let port = free_port();
    let child = gateway_command(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(stdio)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut process = GatewayProcess {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            process.child.try_wait().unwrap().is_none(),
            "the gateway exited at start"
        );
        assert!(Instant::now() < deadline, "the gateway did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    process
}

async fn buy_from(base: &str, path: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let json: Value = resp.json().await.unwrap();
    let preimage = pay_dev(base, json["invoice"].as_str().unwrap()).await;
    format!(
        "L402 {}:{}",
        json["macaroon"].as_str().unwrap(),
        preimage.to_hex()
    )
}

#[tokio::test]
async fn a_used_single_use_token_stays_used_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let generate = |base: String, token: String| async move {
        reqwest::Client::new()
            .post(format!("{base}/v1/generate"))
            .header(header::AUTHORIZATION, token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(r#"{"prompt": "once"}"#)
            .send()
            .await
            .unwrap()
            .status()
    };
    let token = {
        let gw = start_gateway_process(
            dir.path(),
            std::process::Stdio::null(),
            std::process::Stdio::null(),
        );
        let token = buy_from(&gw.base, "/v1/generate").await;
        assert_eq!(
            generate(gw.base.clone(), token.clone()).await,
            StatusCode::OK
        );
        token
        // Killed here (SIGKILL: no shutdown, no flush).
    };
    assert!(dir.path().join(l402_mcp::gateway::SPENT_SET_FILE).exists());
    let gw = start_gateway_process(
        dir.path(),
        std::process::Stdio::null(),
        std::process::Stdio::null(),
    );
    assert_eq!(
        generate(gw.base.clone(), token).await,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn the_dev_node_is_refused_on_a_public_listener() {
    let dir = tempfile::tempdir().unwrap();
    let out = gateway_command(dir.path())
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("--dev-node-public"), "{stderr}");
    assert!(stderr.contains("127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[test]
fn a_missing_gateway_config_is_one_sentence_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gateway.toml");
    let out = gateway_command(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .arg("--config")
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("does not exist").count(), 1, "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}

#[tokio::test]
async fn the_gateway_keeps_serving_when_its_log_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start_gateway_process(
        dir.path(),
        std::process::Stdio::piped(),
        std::process::Stdio::piped(),
    );
    // `gateway 2>&1 | head -1`: the reader takes a line and exits.
    drop(gw.child.stdout.take());
    drop(gw.child.stderr.take());
    let client = reqwest::Client::new();
    for _ in 0..3 {
        // A challenge is logged at info: each one writes to the closed pipe.
        let resp = client
            .get(format!("{}/v1/demo", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
        let resp = client
            .get(format!("{}/health", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert!(gw.child.try_wait().unwrap().is_none(), "the gateway exited");
}

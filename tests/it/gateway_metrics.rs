//! The gateway's Prometheus metrics: a known sequence of requests, then the
//! exact counters a scrape of the metrics listener shows, and no secret in
//! it; the `gateway` command's `--metrics` listener, and its refusal of a
//! public address.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use l402_mcp::gateway::{GatewayConfig, SpentSet, SpentSetError};
use l402_mcp::l402::payment::PaymentChallenge;
use l402_mcp::l402::{Credential, Scheme, parse_payment_challenges};
use l402_mcp::lightning::{Invoice, PaymentHash, Preimage};

use crate::common::{EchoUpstream, TestGateway, pay_dev, serve_local};

/// `/paid` (10 sat, reusable), `/once` (7 sat, single-use), `/charge`
/// (5 sat, Payment), `/up` (3 sat, a proxy prefix route), `/health` (free).
fn config(upstream: &str) -> GatewayConfig {
    GatewayConfig::from_toml(&format!(
        r#"
        [rate_limit]
        challenges_per_minute = 10000
        burst = 10000

        [[routes]]
        path = "/paid"
        method = "GET"
        price_sats = 10
        demo = "demo"

        [[routes]]
        path = "/once"
        method = "GET"
        price_sats = 7
        demo = "demo"
        token = "single-use"

        [[routes]]
        path = "/charge"
        method = "GET"
        price_sats = 5
        demo = "charge"
        scheme = "payment"

        [[routes]]
        path = "/up"
        match = "prefix"
        price_sats = 3
        upstream = "{upstream}"

        [[routes]]
        path = "/health"
        method = "GET"
        free = true
        demo = "health"
        "#
    ))
    .unwrap()
}

/// One scrape: every sample line, `name{labels}` -> value.
struct Scrape {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    async fn of(metrics_base: &str) -> Self {
        let resp = reqwest::get(format!("{metrics_base}/metrics"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[reqwest::header::CONTENT_TYPE],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let text = resp.text().await.unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                (series.to_string(), value.parse().unwrap())
            })
            .collect();
        Scrape { text, samples }
    }

    /// The counters (`…_total`) that are not zero, as `series value` lines.
    fn counted(&self) -> Vec<String> {
        self.samples
            .iter()
            .filter(|(s, v)| s.contains("_total{") && **v != 0.0)
            .map(|(s, v)| format!("{s} {v}"))
            .collect()
    }

    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in\n{}", self.text))
    }
}

/// What the sequence handed out: every macaroon, preimage, payment hash,
/// invoice and credential, none of which may reach a scrape.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn l402(&mut self, credential: &str) {
        let c: Credential = credential.parse().unwrap();
        self.0.push(c.macaroon.to_base64());
        self.0.push(c.preimage.to_hex());
        self.0
            .push(c.macaroon.identifier().unwrap().payment_hash.to_hex());
        self.0.push(credential.to_string());
    }

    fn payment(&mut self, credential: &str, c: &PaymentChallenge, preimage: &Preimage) {
        let charge = c.charge().unwrap();
        let invoice: Invoice = charge.method_details.invoice.parse().unwrap();
        self.0.push(preimage.to_hex());
        self.0.push(invoice.payment_hash().to_hex());
        self.0.push(charge.method_details.invoice);
        self.0.push(c.id.clone());
        self.0.push(credential.to_string());
    }
}

/// A Payment credential for `path`: the `Authorization` value, the
/// challenge and the preimage.
async fn buy_payment(gw: &TestGateway, path: &str) -> (String, PaymentChallenge, Preimage) {
    let resp = gw.get(path).await;
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let values: Vec<String> = resp
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let c = parse_payment_challenges(values.iter().map(String::as_str))
        .remove(0)
        .unwrap();
    let preimage = pay_dev(&gw.base, &c.charge().unwrap().method_details.invoice).await;
    (c.credential(&preimage), c, preimage)
}

fn status(resp: reqwest::Response) -> u16 {
    resp.status().as_u16()
}

/// Runs the known sequence against a gateway with metrics on and returns
/// the scrape and the secrets handed out.
async fn sequence() -> (Scrape, Secrets) {
    let upstream = EchoUpstream::start().await;
    // The real time (a Payment challenge expires with its invoice), moved
    // on at the end.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = Arc::new(AtomicU64::new(start));
    let clock = now.clone();
    let gw = TestGateway::start_with(config(&upstream.base), move |g| {
        g.with_clock(Arc::new(move || clock.load(Ordering::SeqCst)))
    })
    .await;
    let (metrics, _stop) = serve_local(gw.gateway.metrics_router()).await;
    let mut secrets = Secrets::default();

    // Every series a route can touch is there before any request, at zero.
    let before = Scrape::of(&metrics).await;
    assert!(before.counted().is_empty(), "{:?}", before.counted());
    assert_eq!(
        before.get(r#"l402_gateway_revenue_msat_total{route="GET /paid"}"#),
        0.0
    );

    // A reusable token: a 402, a paid request, the token reused, then
    // refused credentials: an unpaid one, one that does not decode, and
    // another route's token.
    let paid = gw.buy("/paid").await;
    secrets.l402(&paid);
    assert_eq!(status(gw.get_with("/paid", &paid).await), 200);
    assert_eq!(status(gw.get_with("/paid", &paid).await), 200);
    let mut unpaid: Credential = paid.parse().unwrap();
    unpaid.preimage = Preimage::random();
    assert_eq!(unpaid.scheme, Scheme::L402);
    secrets.l402(&unpaid.to_string());
    assert_eq!(status(gw.get_with("/paid", &unpaid.to_string()).await), 401);
    assert_eq!(status(gw.get_with("/paid", "L402 abc:def").await), 401);
    let once = gw.buy("/once").await;
    secrets.l402(&once);
    assert_eq!(status(gw.get_with("/paid", &once).await), 401);

    // A single-use token, used and reused.
    assert_eq!(status(gw.get_with("/once", &once).await), 200);
    assert_eq!(status(gw.get_with("/once", &once).await), 401);

    // A Payment credential, used and reused (the refusal carries a fresh
    // challenge); each scheme on the other's route.
    let (charge, challenge, preimage) = buy_payment(&gw, "/charge").await;
    secrets.payment(&charge, &challenge, &preimage);
    assert_eq!(status(gw.get_with("/charge", &charge).await), 200);
    assert_eq!(status(gw.get_with("/charge", &charge).await), 402);
    assert_eq!(status(gw.get_with("/charge", &paid).await), 402);
    assert_eq!(status(gw.get_with("/paid", &charge).await), 401);

    // A proxy route: one token, two paths under the prefix, one route.
    let up = gw.buy("/up/x").await;
    secrets.l402(&up);
    assert_eq!(status(gw.get_with("/up/x", &up).await), 200);
    assert_eq!(status(gw.get_with("/up/y?q=1", &up).await), 200);

    // No route: bounded to route="none", whatever the path. The metrics
    // are not on the gateway's listener.
    assert_eq!(status(gw.get("/nope/12345").await), 404);
    assert_eq!(status(gw.get("/metrics").await), 404);
    assert_eq!(status(gw.get("/a//b").await), 400);
    let post = gw
        .client
        .post(format!("{}/health", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(status(post), 405);
    assert_eq!(status(gw.get("/health").await), 200);

    // The reusable token once it has expired.
    now.fetch_add(3600, Ordering::SeqCst);
    assert_eq!(status(gw.get_with("/paid", &paid).await), 401);

    (Scrape::of(&metrics).await, secrets)
}

#[tokio::test]
async fn a_known_sequence_of_requests_gives_exact_counters() {
    let (scrape, _) = sequence().await;
    let expected = [
        r#"l402_gateway_challenges_total{route="ANY /up/*",scheme="l402"} 1"#,
        r#"l402_gateway_challenges_total{route="GET /charge",scheme="payment"} 3"#,
        r#"l402_gateway_challenges_total{route="GET /once",scheme="l402"} 1"#,
        r#"l402_gateway_challenges_total{route="GET /paid",scheme="l402"} 1"#,
        r#"l402_gateway_credentials_accepted_total{route="ANY /up/*",scheme="l402"} 2"#,
        r#"l402_gateway_credentials_accepted_total{route="GET /charge",scheme="payment"} 1"#,
        r#"l402_gateway_credentials_accepted_total{route="GET /once",scheme="l402"} 1"#,
        r#"l402_gateway_credentials_accepted_total{route="GET /paid",scheme="l402"} 2"#,
        r#"l402_gateway_credentials_refused_total{route="GET /charge",scheme="l402",reason="scheme_mismatch"} 1"#,
        r#"l402_gateway_credentials_refused_total{route="GET /charge",scheme="payment",reason="reused"} 1"#,
        r#"l402_gateway_credentials_refused_total{route="GET /once",scheme="l402",reason="reused"} 1"#,
        r#"l402_gateway_credentials_refused_total{route="GET /paid",scheme="l402",reason="expired"} 1"#,
        r#"l402_gateway_credentials_refused_total{route="GET /paid",scheme="l402",reason="invalid"} 1"#,
        r#"l402_gateway_credentials_refused_total{route="GET /paid",scheme="l402",reason="malformed"} 1"#,
        r#"l402_gateway_credentials_refused_total{route="GET /paid",scheme="l402",reason="wrong_service"} 1"#,
        r#"l402_gateway_credentials_refused_total{route="GET /paid",scheme="payment",reason="scheme_mismatch"} 1"#,
        r#"l402_gateway_requests_total{route="ANY /up/*",status="200"} 2"#,
        r#"l402_gateway_requests_total{route="ANY /up/*",status="402"} 1"#,
        r#"l402_gateway_requests_total{route="GET /charge",status="200"} 1"#,
        r#"l402_gateway_requests_total{route="GET /charge",status="402"} 3"#,
        r#"l402_gateway_requests_total{route="GET /health",status="200"} 1"#,
        r#"l402_gateway_requests_total{route="GET /once",status="200"} 1"#,
        r#"l402_gateway_requests_total{route="GET /once",status="401"} 1"#,
        r#"l402_gateway_requests_total{route="GET /once",status="402"} 1"#,
        r#"l402_gateway_requests_total{route="GET /paid",status="200"} 2"#,
        r#"l402_gateway_requests_total{route="GET /paid",status="401"} 5"#,
        r#"l402_gateway_requests_total{route="GET /paid",status="402"} 1"#,
        r#"l402_gateway_requests_total{route="none",status="400"} 1"#,
        r#"l402_gateway_requests_total{route="none",status="404"} 2"#,
        r#"l402_gateway_requests_total{route="none",status="405"} 1"#,
        // Once per payment: the reused token and the second path under
        // /up count nothing more.
        r#"l402_gateway_revenue_msat_total{route="ANY /up/*"} 3000"#,
        r#"l402_gateway_revenue_msat_total{route="GET /charge"} 5000"#,
        r#"l402_gateway_revenue_msat_total{route="GET /once"} 7000"#,
        r#"l402_gateway_revenue_msat_total{route="GET /paid"} 10000"#,
    ];
    assert_eq!(scrape.counted(), expected);

    // One observation per presented credential that was verified (not the
    // scheme mismatches, which are refused before); the upstream's per
    // answered proxy request.
    for (series, count) in [
        (r#"route="GET /paid",scheme="l402""#, 6.0),
        (r#"route="GET /once",scheme="l402""#, 2.0),
        (r#"route="GET /charge",scheme="payment""#, 2.0),
        (r#"route="ANY /up/*",scheme="l402""#, 2.0),
    ] {
        assert_eq!(
            scrape.get(&format!(
                "l402_gateway_verification_duration_seconds_count{{{series}}}"
            )),
            count,
            "{series}"
        );
        assert_eq!(
            scrape.get(&format!(
                "l402_gateway_verification_duration_seconds_bucket{{le=\"+Inf\",{series}}}"
            )),
            count,
            "{series}"
        );
    }
    assert_eq!(
        scrape.get(r#"l402_gateway_upstream_duration_seconds_count{route="ANY /up/*"}"#),
        2.0
    );
    for (route, msat) in [
        ("GET /paid", 10_000.0),
        ("GET /once", 7_000.0),
        ("GET /charge", 5_000.0),
        ("ANY /up/*", 3_000.0),
    ] {
        assert_eq!(
            scrape.get(&format!(
                "l402_gateway_route_price_msat{{route=\"{route}\"}}"
            )),
            msat
        );
    }
    for op in ["claim", "release", "prune"] {
        assert_eq!(
            scrape.get(&format!(
                "l402_gateway_spent_set_errors_total{{op=\"{op}\"}}"
            )),
            0.0
        );
    }
    // Bounded labels: no request path but the routes' own.
    for path in ["/nope", "/12345", "/up/x", "/up/y", "/a//b", "q=1"] {
        assert!(!scrape.text.contains(path), "{path} in\n{}", scrape.text);
    }
}

#[tokio::test]
async fn no_secret_reaches_the_scrape() {
    let (scrape, secrets) = sequence().await;
    assert!(secrets.0.len() >= 20, "the sequence handed out secrets");
    for secret in &secrets.0 {
        assert!(secret.len() >= 32, "{secret}");
        // The whole value, and its first 16 characters (a prefix would do
        // as a label too).
        for needle in [secret.as_str(), &secret[..16]] {
            assert!(
                !scrape.text.contains(needle),
                "{needle} is in the scrape:\n{}",
                scrape.text
            );
        }
    }
    // The only label names are the bounded ones.
    for line in scrape.text.lines().filter(|l| !l.starts_with('#')) {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = labels.rsplit_once('}').unwrap().0;
        for pair in labels.split("\",") {
            let name = pair.split_once('=').unwrap().0;
            assert!(
                ["route", "status", "scheme", "reason", "op", "le"].contains(&name),
                "label {name} in {line}"
            );
        }
    }
}

/// A spent-set that always fails.
#[derive(Debug)]
struct Broken;

#[async_trait::async_trait]
impl SpentSet for Broken {
    async fn claim(&self, _: &PaymentHash, _: u64) -> Result<bool, SpentSetError> {
        Err(SpentSetError {
            store: "broken".into(),
            message: "down".into(),
        })
    }

    async fn release(&self, _: &PaymentHash) -> Result<(), SpentSetError> {
        Ok(())
    }

    async fn prune(&self, _: u64) -> Result<(), SpentSetError> {
        Err(SpentSetError {
            store: "broken".into(),
            message: "down".into(),
        })
    }
}

#[tokio::test]
async fn a_failing_spent_set_is_counted_and_sells_nothing() {
    let upstream = EchoUpstream::start().await;
    let gw = TestGateway::start_with(config(&upstream.base), |g| {
        g.with_spent_set(Arc::new(Broken))
    })
    .await;
    let (metrics, _stop) = serve_local(gw.gateway.metrics_router()).await;
    let once = gw.buy("/once").await;
    assert_eq!(status(gw.get_with("/once", &once).await), 503);
    // Housekeeping prunes when the gateway starts, and here once more.
    gw.gateway.housekeeping().await;
    let scrape = Scrape::of(&metrics).await;
    let prunes = r#"l402_gateway_spent_set_errors_total{op="prune"}"#;
    assert!(scrape.get(prunes) >= 1.0, "{}", scrape.text);
    let mut counted = scrape.counted();
    counted.retain(|line| !line.starts_with(prunes));
    assert_eq!(
        counted,
        [
            r#"l402_gateway_challenges_total{route="GET /once",scheme="l402"} 1"#,
            r#"l402_gateway_credentials_refused_total{route="GET /once",scheme="l402",reason="spent_set_unavailable"} 1"#,
            r#"l402_gateway_requests_total{route="GET /once",status="402"} 1"#,
            r#"l402_gateway_requests_total{route="GET /once",status="503"} 1"#,
            r#"l402_gateway_spent_set_errors_total{op="claim"} 1"#,
        ]
    );
}

#[tokio::test]
async fn the_metrics_listener_answers_only_get_metrics() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let (metrics, _stop) = serve_local(gw.gateway.metrics_router()).await;
    let client = reqwest::Client::new();
    let resp = client.get(format!("{metrics}/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"],
        "No such path; the metrics are at GET /metrics."
    );
    let resp = client
        .post(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

// ---------------------------------------------------------------------------
// The `gateway` command.

fn gateway_command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_l402-mcp"));
    cmd.arg("gateway").args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("L402_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn the_gateway_command_refuses_a_public_metrics_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, "metrics = \"0.0.0.0:9402\"\n").unwrap();
    let file = file.to_str().unwrap();
    for (args, env, addr) in [
        (vec!["--metrics", "0.0.0.0:0"], None, "0.0.0.0:0"),
        (
            vec![],
            Some(("L402_GATEWAY_METRICS", "192.168.1.5:9402")),
            "192.168.1.5:9402",
        ),
        (vec!["--config", file], None, "0.0.0.0:9402"),
    ] {
        let mut cmd = gateway_command(&args);
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir", data]);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "refusing to serve metrics on {addr}, which is not a loopback address"
            )) && stderr.contains("--metrics-public"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one sentence: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_command_serves_metrics_on_a_listener_of_their_own() {
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut child = gateway_command(&[
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "-q",
    ])
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut gateway, mut metrics) = (None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("l402-mcp gateway listening on ") {
                gateway = rest.split(' ').next().map(str::to_string);
            }
            if let Some(rest) = line.strip_prefix("  metrics (operator only): GET ") {
                metrics = rest.strip_suffix("/metrics").map(str::to_string);
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read)
        .await
        .expect("the banner names both listeners");
    let (gateway, metrics) = (gateway.unwrap(), metrics.unwrap());
    assert_ne!(gateway, metrics);

    let resp = reqwest::get(format!("{gateway}/v1/demo")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let resp = reqwest::get(format!("{gateway}/metrics")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let scrape = Scrape::of(&metrics).await;
    assert_eq!(
        scrape.counted(),
        [
            r#"l402_gateway_challenges_total{route="GET /v1/demo",scheme="l402"} 1"#,
            r#"l402_gateway_requests_total{route="GET /v1/demo",status="402"} 1"#,
            r#"l402_gateway_requests_total{route="none",status="404"} 1"#,
        ]
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn one_payment_counts_once_whichever_credential_carries_it() {
    let gw = TestGateway::start(
        GatewayConfig::from_toml(
            r#"
            [[routes]]
            path = "/both"
            method = "GET"
            price_sats = 5
            demo = "demo"
            scheme = "both"
            "#,
        )
        .unwrap(),
    )
    .await;
    let (metrics, _stop) = serve_local(gw.gateway.metrics_router()).await;
    // One 402, one invoice: the Payment credential and the L402 token
    // (reusable here) for it, and the same token under the LSAT scheme.
    let resp = gw.get("/both").await;
    assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
    let values: Vec<String> = resp
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let l402 = l402_mcp::l402::Challenge::parse_all(values.iter().map(String::as_str)).unwrap();
    let c = parse_payment_challenges(values.iter().map(String::as_str))
        .remove(0)
        .unwrap();
    let preimage = pay_dev(&gw.base, &l402[1].invoice).await;
    let token = format!("{}:{}", l402[1].macaroon.to_base64(), preimage.to_hex());
    assert_eq!(
        status(gw.get_with("/both", &c.credential(&preimage)).await),
        200
    );
    for scheme in ["L402", "LSAT", "L402"] {
        assert_eq!(
            status(gw.get_with("/both", &format!("{scheme} {token}")).await),
            200
        );
    }
    let scrape = Scrape::of(&metrics).await;
    assert_eq!(
        scrape.counted(),
        [
            r#"l402_gateway_challenges_total{route="GET /both",scheme="both"} 1"#,
            r#"l402_gateway_credentials_accepted_total{route="GET /both",scheme="l402"} 3"#,
            r#"l402_gateway_credentials_accepted_total{route="GET /both",scheme="payment"} 1"#,
            r#"l402_gateway_requests_total{route="GET /both",status="200"} 4"#,
            r#"l402_gateway_requests_total{route="GET /both",status="402"} 1"#,
            r#"l402_gateway_revenue_msat_total{route="GET /both"} 5000"#,
        ]
    );
}

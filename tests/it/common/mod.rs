//! Shared harness for the integration suite.

#![allow(dead_code)]

pub mod alby;

use std::path::PathBuf;
use std::process::Command;

/// The Python interpreter with the interop packages (pymacaroons, bolt11),
/// as set up by `scripts/python-env.sh`: `$L402_TEST_PYTHON`, else the
/// repository's `.venv`. `None` (and a loud note on stderr) when absent
/// outside CI; under CI (`CI` set) its absence fails the test, so an interop
/// test can never pass by being skipped there.
pub fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("L402_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    if candidate.exists() {
        return Some(candidate);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "interop tests need {}; run scripts/python-env.sh (CI must set it up)",
            candidate.display()
        );
    }
    eprintln!(
        "SKIPPED: interop test needs {} (run scripts/python-env.sh)",
        candidate.display()
    );
    None
}

/// Runs `tests/interop/<script>` under [`python`] with `args`, returning
/// stdout; panics with stderr when the script fails.
pub fn run_python(python: &PathBuf, script: &str, args: &[&str]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("script output is UTF-8")
}

use std::net::SocketAddr;
use std::sync::Arc;

use l402_mcp::gateway::{self, Gateway, GatewayConfig};
use l402_mcp::l402::{Challenge, RootKey};
use l402_mcp::lightning::Preimage;
use l402_mcp::lightning::dev::{self, DevNode};

/// A gateway on its own dev node, served on 127.0.0.1:0.
pub struct TestGateway {
    pub base: String,
    pub addr: SocketAddr,
    pub node: Arc<DevNode>,
    pub gateway: Arc<Gateway>,
    pub client: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestGateway {
    pub async fn start(config: GatewayConfig) -> Self {
        Self::start_with(config, |g| g).await
    }

    /// Starts a gateway after `adjust` had its say (a clock, a spent-set).
    pub async fn start_with(
        config: GatewayConfig,
        adjust: impl FnOnce(Gateway) -> Gateway,
    ) -> Self {
        let node = Arc::new(DevNode::new());
        let gw = Gateway::new(config, RootKey::random(), node.clone()).expect("valid gateway");
        let gw = Arc::new(adjust(gw));
        let app = gw.clone().router().merge(dev::router(node.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = gw.clone();
        tokio::spawn(async move {
            gateway::serve(listener, served, app, async {
                let _ = rx.await;
            })
            .await
            .expect("gateway serves");
        });
        TestGateway {
            base: format!("http://{addr}"),
            addr,
            node,
            gateway: gw,
            client: reqwest::Client::new(),
            _shutdown: tx,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_with(&self, path: &str, authorization: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
            .expect("request")
    }

    /// The L402 challenge (the second, `L402`, header) a request gets.
    pub async fn challenge_with(
        &self,
        path: &str,
        method: reqwest::Method,
    ) -> (Challenge, reqwest::Response) {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::PAYMENT_REQUIRED,
            "{path}"
        );
        let values: Vec<String> = resp
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().expect("ascii header").to_string())
            .collect();
        let mut all = Challenge::parse_all(values.iter().map(String::as_str)).expect("challenge");
        (all.pop().expect("a challenge"), resp)
    }

    pub async fn challenge(&self, path: &str) -> (Challenge, reqwest::Response) {
        self.challenge_with(path, reqwest::Method::GET).await
    }

    /// Buys a token for `path` (GET) and returns the Authorization value.
    pub async fn buy(&self, path: &str) -> String {
        self.buy_with(path, reqwest::Method::GET).await
    }

    pub async fn buy_with(&self, path: &str, method: reqwest::Method) -> String {
        let (challenge, _) = self.challenge_with(path, method).await;
        let preimage = pay_dev(&self.base, &challenge.invoice).await;
        format!(
            "L402 {}:{}",
            challenge.macaroon.to_base64(),
            preimage.to_hex()
        )
    }
}

/// Pays `invoice` through the dev node's `POST /dev/pay` at `base`.
pub async fn pay_dev(base: &str, invoice: &str) -> Preimage {
    let resp = reqwest::Client::new()
        .post(format!("{base}/dev/pay"))
        .json(&serde_json::json!({ "invoice": invoice }))
        .send()
        .await
        .expect("dev pay");
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "dev pay");
    let json: serde_json::Value = resp.json().await.expect("json");
    json["preimage"]
        .as_str()
        .expect("preimage")
        .parse()
        .expect("hex preimage")
}

/// An upstream that echoes what it received as JSON (method, path, query,
/// headers, body length and sha256), with an `x-upstream: echo` header;
/// `/.../status/<code>` answers with that status.
pub struct EchoUpstream {
    pub base: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl EchoUpstream {
    pub async fn start() -> Self {
        use axum::extract::Request;
        use axum::response::IntoResponse;
        use sha2::Digest;

        async fn echo(req: Request) -> axum::response::Response {
            let (parts, body) = req.into_parts();
            // A body that broke off (a proxy giving up on it) is a 400.
            let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
                return axum::http::StatusCode::BAD_REQUEST.into_response();
            };
            let headers: serde_json::Map<String, serde_json::Value> = parts
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
                .collect();
            let path = parts.uri.path().to_string();
            let status = path
                .rsplit_once("/status/")
                .and_then(|(_, code)| code.parse::<u16>().ok())
                .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                .unwrap_or(axum::http::StatusCode::OK);
            let json = serde_json::json!({
                "method": parts.method.as_str(),
                "path": path,
                "query": parts.uri.query().unwrap_or(""),
                "headers": headers,
                "body_len": body.len(),
                "body_sha256": hex::encode(sha2::Sha256::digest(&body)),
            });
            (status, [("x-upstream", "echo")], axum::Json(json)).into_response()
        }

        let (base, shutdown) = serve_local(axum::Router::new().fallback(echo)).await;
        EchoUpstream {
            base,
            _shutdown: shutdown,
        }
    }
}

/// Serves `app` on 127.0.0.1:0 until the returned sender is dropped;
/// returns its base URL.
pub async fn serve_local(app: axum::Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .expect("test server serves");
    });
    (format!("http://{addr}"), tx)
}

/// A Nostr relay in this process (rust-nostr's relay builder) on
/// 127.0.0.1, in memory (ephemeral events are broadcast, never stored),
/// with its rate limit raised for tests; returns it (it stops when
/// dropped) and its `ws://` URL.
pub async fn relay() -> (nostr_relay_builder::LocalRelay, String) {
    use nostr_relay_builder::builder::{RateLimit, RelayBuilder};
    let builder = RelayBuilder::default()
        .addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        .rate_limit(RateLimit {
            max_reqs: 1000,
            notes_per_minute: 100_000,
        });
    let relay = nostr_relay_builder::LocalRelay::new(builder);
    relay.run().await.expect("the relay starts");
    let url = relay.url().await.to_string();
    (relay, url)
}

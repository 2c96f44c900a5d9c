//! Gateway replicas: `l402-mcp gateway` processes that share one root key
//! (one given as a file, one as the variable) and one Redis spent-set,
//! against a real `redis-server` this harness starts on a free loopback
//! port and stops by its pid.
//!
//! `redis-server` is Debian's package (CI installs it). Missing, a test
//! prints `SKIPPED` outside CI and fails under CI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use l402_mcp::gateway::{DEFAULT_REDIS_OPERATION_TIMEOUT, REDIS_KEY_PREFIX, ROOT_KEY_ENV};
use l402_mcp::l402::parse_payment_challenges;
use serde_json::Value;

use crate::common::pay_dev;

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");

/// The shared root key of the replicas in these tests.
const KEY: &str = "5f3c1e0a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `redis-server`, or `None` (and a loud note) outside CI when it is
/// missing; under CI its absence fails the test.
fn redis_server() -> Option<PathBuf> {
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let candidate = dir.join("redis-server");
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("the replica tests need redis-server (Debian: apt-get install redis-server)");
    }
    eprintln!("SKIPPED: the replica tests need redis-server (apt-get install redis-server)");
    None
}

/// A `redis-server` on 127.0.0.1: with `--save ''` and, unless
/// `persistent`, no append-only file either; `persistent` is
/// `appendonly yes` with `appendfsync always` in `dir`, so a SIGKILL loses
/// no acknowledged write. Stopped (SIGKILL, by pid) when dropped.
struct Redis {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    persistent: bool,
    child: Option<Child>,
}

impl Redis {
    fn start(bin: &Path, dir: &Path, persistent: bool) -> Redis {
        let mut redis = Redis {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            port: free_port(),
            persistent,
            child: None,
        };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis runs").id()
    }

    /// Starts the server (again) on the same port and directory; returns
    /// once it answers PING (an append-only file is loaded by then).
    fn restart(&mut self) {
        assert!(self.child.is_none(), "redis runs already");
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no", "--logfile", ""]);
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            let child = self.child.as_mut().expect("redis runs");
            assert!(
                child.try_wait().unwrap().is_none(),
                "redis-server exited at start"
            );
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    /// SIGKILL, by pid: no shutdown, no last write.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP or SIGCONT, by pid: a Redis that hangs, then goes on.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    /// Whether the spent-set holds a claim for `payment_hash` (hex).
    async fn holds(&self, payment_hash: &str) -> bool {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let n: i64 = redis::cmd("EXISTS")
            .arg(format!("{REDIS_KEY_PREFIX}{payment_hash}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        n == 1
    }

    /// The seconds to live of `payment_hash`'s claim.
    async fn ttl(&self, payment_hash: &str) -> i64 {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("TTL")
            .arg(format!("{REDIS_KEY_PREFIX}{payment_hash}"))
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A stopped process must go on before SIGKILL is delivered.
            self.signal("-CONT");
        }
        self.kill();
    }
}

/// The routes of every replica here: `/v1/demo` reusable, `/v1/generate`
/// single-use (built-in content), `/v1/charge` the Payment scheme,
/// `/down` single-use proxied to `upstream` (nothing listens there unless
/// a test starts it). No challenge rate limit: tests buy many tokens.
fn write_config(dir: &Path, upstream: &str) -> PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            r#"
            [rate_limit]
            challenges_per_minute = 100000
            burst = 100000

            [limits]
            request_timeout_secs = 10

            [[routes]]
            path = "/v1/demo"
            method = "GET"
            price_sats = 21
            demo = "demo"

            [[routes]]
            path = "/v1/generate"
            method = "POST"
            price_sats = 250
            token = "single-use"
            demo = "generate"

            [[routes]]
            path = "/v1/charge"
            method = "GET"
            price_sats = 5
            scheme = "payment"
            demo = "charge"

            [[routes]]
            path = "/down"
            method = "POST"
            price_sats = 3
            token = "single-use"
            upstream = "{upstream}"
            "#
        ),
    )
    .unwrap();
    path
}

/// Writes `key` to `dir/<name>`, mode 0600.
fn key_file(dir: &Path, name: &str, key: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{key}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// How a replica gets its root key.
enum KeyFrom {
    /// `--root-key-file`.
    File(PathBuf),
    /// `L402_GATEWAY_ROOT_KEY`.
    Env(&'static str),
    /// Its own, in its data directory.
    DataDir,
}

/// `l402-mcp gateway` without any of the environment's gateway settings.
fn gateway_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("gateway").arg("--data-dir").arg(data_dir);
    for var in [
        "L402_GATEWAY_LISTEN",
        "L402_GATEWAY_CONFIG",
        "L402_GATEWAY_ROOT_KEY",
        "L402_GATEWAY_ROOT_KEY_FILE",
        "L402_GATEWAY_SPENT_SET",
        "L402_LND_HOST",
        "L402_LND_TLS_CERT",
        "L402_LND_MACAROON",
        "L402_NETWORK",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A `l402-mcp gateway` child on a free loopback port, its stderr in a
/// file; killed (SIGKILL, by pid) when dropped.
struct Replica {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Replica {
    fn start(dir: &Path, name: &str, config: &Path, spent_set: &str, key: KeyFrom) -> Replica {
        let data_dir = dir.join(name);
        std::fs::create_dir_all(&data_dir).unwrap();
        let log = dir.join(format!("{name}.log"));
        let port = free_port();
        let mut cmd = gateway_command(&data_dir);
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(config)
            .args(["--spent-set", spent_set]);
        match key {
            KeyFrom::File(path) => {
                cmd.arg("--root-key-file").arg(path);
            }
            KeyFrom::Env(key) => {
                cmd.env(ROOT_KEY_ENV, key);
            }
            KeyFrom::DataDir => {}
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut replica = Replica {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                replica.child.try_wait().unwrap().is_none(),
                "gateway {name} exited at start: {}",
                replica.log()
            );
            assert!(Instant::now() < deadline, "gateway {name} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        replica
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Buys an L402 token for `method path`: (Authorization value, payment
    /// hash hex).
    async fn buy(&self, method: reqwest::Method, path: &str) -> (String, String) {
        let resp = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED, "{path}");
        let json: Value = resp.json().await.unwrap();
        let preimage = pay_dev(&self.base, json["invoice"].as_str().unwrap()).await;
        (
            format!(
                "L402 {}:{}",
                json["macaroon"].as_str().unwrap(),
                preimage.to_hex()
            ),
            json["payment_hash"].as_str().unwrap().to_string(),
        )
    }

    /// Buys a `Payment` credential for `GET path`: (Authorization value,
    /// payment hash hex).
    async fn buy_charge(&self, path: &str) -> (String, String) {
        let resp = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYMENT_REQUIRED);
        let values: Vec<&str> = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        let challenge = parse_payment_challenges(values)
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        let details = challenge.charge().unwrap().method_details;
        let preimage = pay_dev(&self.base, &details.invoice).await;
        (
            challenge.credential(&preimage),
            details.payment_hash.unwrap(),
        )
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two replicas, `a` (key from a 0600 file) and `b` (the same key from the
/// variable), with `redis` as their spent-set.
fn two_replicas(dir: &Path, redis: &Redis, upstream: &str) -> (Replica, Replica) {
    let config = write_config(dir, upstream);
    let key = key_file(dir, "root-key", KEY);
    let a = Replica::start(dir, "a", &config, &redis.url(), KeyFrom::File(key));
    let b = Replica::start(dir, "b", &config, &redis.url(), KeyFrom::Env(KEY));
    (a, b)
}

async fn generate(client: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    client
        .post(format!("{base}/v1/generate"))
        .header(header::AUTHORIZATION, token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"prompt": "once"}"#)
        .send()
        .await
        .unwrap()
}

async fn get(client: &reqwest::Client, base: &str, path: &str, auth: &str) -> reqwest::Response {
    client
        .get(format!("{base}{path}"))
        .header(header::AUTHORIZATION, auth)
        .send()
        .await
        .unwrap()
}

async fn post_down(client: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    client
        .post(format!("{base}/down"))
        .header(header::AUTHORIZATION, token)
        .body("{}")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_token_minted_by_one_replica_is_accepted_by_the_other() {
    let Some(bin) = redis_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&bin, dir.path(), false);
    let (a, b) = two_replicas(dir.path(), &redis, "http://127.0.0.1:9");
    let client = reqwest::Client::new();

    // Reusable: bought on A, good on both, as often as wanted.
    let (token, _) = a.buy(reqwest::Method::GET, "/v1/demo").await;
    for base in [&b.base, &a.base, &b.base] {
        let resp = get(&client, base, "/v1/demo", &token).await;
        assert_eq!(resp.status(), StatusCode::OK, "{base}: {}", b.log());
    }

    // Single-use: bought on B, spent on A, then refused on both.
    let (once, hash) = b.buy(reqwest::Method::POST, "/v1/generate").await;
    assert_eq!(
        generate(&client, &a.base, &once).await.status(),
        StatusCode::OK
    );
    assert!(redis.holds(&hash).await, "the claim is in Redis");
    let ttl = redis.ttl(&hash).await;
    assert!(
        (86_400..=86_400 + 300 + 5).contains(&ttl),
        "the claim outlives the token (24 h) by the skew margin: {ttl}"
    );
    for base in [&b.base, &a.base] {
        let resp = generate(&client, base, &once).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{base}");
        let json: Value = resp.json().await.unwrap();
        assert!(
            json["error"].as_str().unwrap().contains("already used"),
            "{json}"
        );
    }

    // A replica with a key of its own shares the Redis but not the tokens.
    let config = write_config(dir.path(), "http://127.0.0.1:9");
    let c = Replica::start(dir.path(), "c", &config, &redis.url(), KeyFrom::DataDir);
    assert_eq!(
        get(&client, &c.base, "/v1/demo", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let logs = format!("{}{}{}", a.log(), b.log(), c.log());
    assert!(!logs.contains(KEY), "the root key reached a log: {logs}");
}

/// `n` presentations of `auth` at once, alternating between the replicas.
async fn stampede(
    replicas: [&Replica; 2],
    n: usize,
    send: impl Fn(reqwest::Client, String) -> futures_util::future::BoxFuture<'static, StatusCode>,
) -> Vec<StatusCode> {
    let client = reqwest::Client::new();
    let all = (0..n).map(|i| send(client.clone(), replicas[i % 2].base.clone()));
    futures_util::future::join_all(all).await
}

#[tokio::test]
async fn fifty_presentations_of_one_single_use_credential_over_two_replicas_get_one_answer() {
    let Some(bin) = redis_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&bin, dir.path(), false);
    let (a, b) = two_replicas(dir.path(), &redis, "http://127.0.0.1:9");

    for round in 0..3 {
        let (token, hash) = a.buy(reqwest::Method::POST, "/v1/generate").await;
        let statuses = stampede([&a, &b], 50, |client, base| {
            let token = token.clone();
            Box::pin(async move { generate(&client, &base, &token).await.status() })
        })
        .await;
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(ok, 1, "round {round}: {statuses:?}");
        assert!(
            statuses
                .iter()
                .all(|s| [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(s)),
            "round {round}: {statuses:?}"
        );
        assert!(redis.holds(&hash).await);
    }

    // A Payment credential: one request, whichever replica it reaches.
    let (credential, _) = b.buy_charge("/v1/charge").await;
    let statuses = stampede([&a, &b], 50, |client, base| {
        let credential = credential.clone();
        Box::pin(async move {
            get(&client, &base, "/v1/charge", &credential)
                .await
                .status()
        })
    })
    .await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::OK, StatusCode::PAYMENT_REQUIRED].contains(s)),
        "{statuses:?}"
    );
}

/// The 503 of a single-use request while the spent-set cannot answer,
/// asserted, and how long it took.
async fn refused_unavailable(resp: reqwest::Response, started: Instant) -> Duration {
    let took = started.elapsed();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let json: Value = resp.json().await.unwrap();
    assert_eq!(
        json["error"],
        "The gateway cannot check single-use tokens right now; the token was not used. \
         Retry later.",
    );
    took
}

#[tokio::test]
async fn a_dead_redis_fails_single_use_closed_while_reusable_tokens_keep_working() {
    let Some(bin) = redis_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(&bin, dir.path(), true);
    let (a, b) = two_replicas(dir.path(), &redis, "http://127.0.0.1:9");
    let client = reqwest::Client::new();

    let (reusable, _) = a.buy(reqwest::Method::GET, "/v1/demo").await;
    let (spent, spent_hash) = a.buy(reqwest::Method::POST, "/v1/generate").await;
    let (fresh, fresh_hash) = b.buy(reqwest::Method::POST, "/v1/generate").await;
    let (charge, _) = a.buy_charge("/v1/charge").await;
    assert_eq!(
        generate(&client, &b.base, &spent).await.status(),
        StatusCode::OK
    );
    assert!(redis.holds(&spent_hash).await);

    // Redis dies (SIGKILL: no shutdown; appendfsync always wrote the claim).
    redis.kill();
    for base in [&a.base, &b.base] {
        let started = Instant::now();
        let took = refused_unavailable(generate(&client, base, &fresh).await, started).await;
        eprintln!("{base}: 503 after {took:?} with Redis dead");
        assert!(
            took < DEFAULT_REDIS_OPERATION_TIMEOUT + Duration::from_secs(2),
            "a dead Redis held the request {took:?}"
        );
        // The Payment scheme: the same, as a problem document.
        let resp = get(&client, base, "/v1/charge", &charge).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(resp.headers().get("payment-receipt").is_none());
        let json: Value = resp.json().await.unwrap();
        assert_eq!(json["status"], 503, "{json}");
        assert_eq!(json["type"], "about:blank", "{json}");
        let detail = json["detail"].as_str().unwrap();
        assert!(detail.contains("it was not used"), "{json}");
        assert_eq!(json["error"], detail, "{json}");
        // Reusable tokens are stateless: Redis is none of their business.
        let started = Instant::now();
        let resp = get(&client, base, "/v1/demo", &reusable).await;
        assert_eq!(resp.status(), StatusCode::OK, "{base}");
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    assert!(a.log().contains("spent-set failed"), "{}", a.log());

    // Redis comes back on the same port, from its append-only file: what
    // was claimed stays claimed, everywhere; what was not is good once.
    redis.restart();
    for base in [&a.base, &b.base] {
        assert_eq!(
            generate(&client, base, &spent).await.status(),
            StatusCode::UNAUTHORIZED,
            "{base}: a token used before the restart was accepted again"
        );
    }
    assert_eq!(
        generate(&client, &a.base, &fresh).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        generate(&client, &b.base, &fresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(redis.holds(&fresh_hash).await);
    assert_eq!(
        get(&client, &b.base, "/v1/charge", &charge).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&client, &a.base, "/v1/charge", &charge).await.status(),
        StatusCode::PAYMENT_REQUIRED
    );
}

#[tokio::test]
async fn a_redis_restarted_without_persistence_forgets_its_claims() {
    // What the README warns about: `--save ''` and no append-only file.
    let Some(bin) = redis_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(&bin, dir.path(), false);
    let (a, b) = two_replicas(dir.path(), &redis, "http://127.0.0.1:9");
    let client = reqwest::Client::new();
    assert!(
        a.log().contains("Redis keeps no append-only file"),
        "{}",
        a.log()
    );
    let (token, _) = a.buy(reqwest::Method::POST, "/v1/generate").await;
    assert_eq!(
        generate(&client, &a.base, &token).await.status(),
        StatusCode::OK
    );
    redis.kill();
    redis.restart();
    assert_eq!(
        generate(&client, &b.base, &token).await.status(),
        StatusCode::OK,
        "an empty Redis knows no claim"
    );
}

#[tokio::test]
async fn a_stalled_redis_is_a_503_in_bounded_time_and_the_unseen_claim_is_undone() {
    let Some(bin) = redis_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&bin, dir.path(), false);
    let (a, b) = two_replicas(dir.path(), &redis, "http://127.0.0.1:9");
    let client = reqwest::Client::new();
    let (token, hash) = a.buy(reqwest::Method::POST, "/v1/generate").await;
    let (reusable, _) = a.buy(reqwest::Method::GET, "/v1/demo").await;

    // Redis hangs (SIGSTOP): it holds the connection, answers nothing.
    redis.signal("-STOP");
    let started = Instant::now();
    let took = refused_unavailable(generate(&client, &a.base, &token).await, started).await;
    eprintln!("503 after {took:?} with Redis stopped");
    assert!(
        took < DEFAULT_REDIS_OPERATION_TIMEOUT + Duration::from_secs(2),
        "a hanging Redis held the request {took:?}"
    );
    assert_eq!(
        get(&client, &b.base, "/v1/demo", &reusable).await.status(),
        StatusCode::OK
    );
    // Give the replica a moment to queue its cleanup, then let Redis run
    // what it was sent: the claim, then its conditional delete.
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.signal("-CONT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !redis.holds(&hash).await,
        "the claim that got no answer is still there: the 503 said `not used`, \
         and the token would be refused"
    );
    assert_eq!(
        generate(&client, &b.base, &token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        generate(&client, &a.base, &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_claim_whose_upstream_never_answered_is_released_for_every_replica() {
    let Some(bin) = redis_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(&bin, dir.path(), false);
    let port = free_port();
    let (a, b) = two_replicas(dir.path(), &redis, &format!("http://127.0.0.1:{port}"));
    let client = reqwest::Client::new();
    let (token, hash) = a.buy(reqwest::Method::POST, "/down").await;

    // Nothing listens upstream: 502, and the claim is given back.
    for base in [&a.base, &b.base] {
        let resp = post_down(&client, base, &token).await;
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY, "{base}");
        assert!(!redis.holds(&hash).await, "the claim was kept");
    }

    // The upstream comes up: the token buys its one answer, on either.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = axum::Router::new().fallback(|| async { "answered" });
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    let resp = post_down(&client, &b.base, &token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "answered");
    assert!(redis.holds(&hash).await, "an answered claim is kept");
    assert_eq!(
        post_down(&client, &a.base, &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let _ = stop.send(());
    server.await.unwrap();
}

/// Runs `gateway` with `args` (and `env`) to its refusal: its exit code
/// and stderr.
fn refusal(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = gateway_command(&dir.join("data"));
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_replica_refuses_to_start_on_a_key_or_spent_set_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let loose = key_file(d, "loose", KEY);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let short = key_file(d, "short", &KEY[..40]);
    let good = key_file(d, "good", KEY);
    let missing = d.join("missing");
    let dead = format!("redis://127.0.0.1:{}", free_port());
    // (flags, environment, the one line on stderr)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, String);
    let cases: Vec<Case> = vec![
        #[cfg(unix)]
        (
            vec!["--root-key-file", loose.to_str().unwrap()],
            vec![],
            format!(
                "error: root key file {p}: is readable by other users (mode 644); run \
                 `chmod 600 {p}`",
                p = loose.display()
            ),
        ),
        (
            vec!["--root-key-file", short.to_str().unwrap()],
            vec![],
            format!(
                "error: root key file {}: holds 40 characters, not 64 hex digits; it must \
                 hold the 32-byte key as 64 hex digits (make one with `openssl rand -hex 32`)",
                short.display()
            ),
        ),
        (
            vec!["--root-key-file", missing.to_str().unwrap()],
            vec![],
            format!(
                "error: root key file {p}: does not exist; make the key once with `(umask \
                 077; openssl rand -hex 32 > {p})` and give every replica that same file, or \
                 check --root-key-file (L402_GATEWAY_ROOT_KEY_FILE)",
                p = missing.display()
            ),
        ),
        (
            vec![],
            vec![(ROOT_KEY_ENV, &KEY[1..])],
            "error: the environment variable L402_GATEWAY_ROOT_KEY holds 63 characters, not \
             64 hex digits; set it to the 32-byte key as 64 hex digits (make one with \
             `openssl rand -hex 32`)"
                .to_string(),
        ),
        (
            vec!["--root-key-file", good.to_str().unwrap()],
            vec![(ROOT_KEY_ENV, KEY)],
            format!(
                "error: the root key is given twice, in L402_GATEWAY_ROOT_KEY and as the \
                 file {} (--root-key-file or L402_GATEWAY_ROOT_KEY_FILE); keep one",
                good.display()
            ),
        ),
        (
            vec!["--spent-set", "rediss://:hunter2@127.0.0.1:6380"],
            vec![],
            "error: --spent-set (or L402_GATEWAY_SPENT_SET) is unusable: the spent-set \
             rediss://:***@127.0.0.1:6380 asks for TLS, which this build does not speak to \
             Redis; reach Redis over a private network or a unix socket \
             (redis+unix:///path/to/redis.sock), or through a TLS tunnel listening on \
             127.0.0.1"
                .to_string(),
        ),
        (
            vec!["--root-key-file", good.to_str().unwrap()],
            vec![("L402_GATEWAY_SPENT_SET", &dead)],
            format!(
                "error: the spent-set {dead} failed: cannot reach Redis (Connection refused \
                 (os error 111)); start it, or check --spent-set (L402_GATEWAY_SPENT_SET)"
            ),
        ),
    ];
    for (args, env, want) in cases {
        let (code, stderr) = refusal(d, &args, &env);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end(), want, "{args:?}");
        assert!(!stderr.contains(&KEY[4..40]), "the key was shown: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "the password was shown: {stderr}"
        );
        assert!(!stderr.contains("gateway listening"), "{stderr}");
    }
    // `--help` never shows the spent-set variable's value (it may hold a
    // password).
    let out = gateway_command(d)
        .arg("--help")
        .env("L402_GATEWAY_SPENT_SET", "redis://:hunter2@127.0.0.1:1")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--spent-set"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

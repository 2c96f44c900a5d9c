//! The bounded accept loop (src/listen.rs) under the gateway and under
//! `serve --http`: slow and idle clients are let go, connections past the
//! cap are refused, and MCP sessions past their cap get a 503.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use l402_mcp::client::ClientConfig;
use l402_mcp::gateway::GatewayConfig;
use l402_mcp::lightning::dev::DevPayer;
use l402_mcp::listen::ConnectionLimits;
use l402_mcp::mcp::{HttpLimits, HttpOptions, McpServer};
use l402_mcp::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::TestGateway;

fn gateway_with_limits(header_read_timeout_secs: u64, max_connections: usize) -> GatewayConfig {
    let mut config = GatewayConfig::demo();
    config.limits.header_read_timeout_secs = header_read_timeout_secs;
    config.limits.max_connections = max_connections;
    config
}

/// Writes `prefix` and then one more byte every `every` until the server
/// closes the connection; returns how long that took (or panics after
/// `give_up`).
pub(crate) async fn trickle_until_closed(
    addr: SocketAddr,
    prefix: &[u8],
    every: Duration,
    give_up: Duration,
) -> Duration {
    let started = Instant::now();
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(prefix).await.unwrap();
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            started.elapsed() < give_up,
            "the server kept a trickling connection for {give_up:?}"
        );
        match tokio::time::timeout(every, sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue, // an error answer, then the close
            Err(_) => {
                if sock.write_all(b"X").await.is_err() {
                    return started.elapsed();
                }
            }
        }
    }
}

/// True when the server closes `sock` within `within` (EOF or reset).
async fn closed_within(sock: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let gw = TestGateway::start(gateway_with_limits(1, 64)).await;
    let took = trickle_until_closed(
        gw.addr,
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        Duration::from_millis(300),
        Duration::from_secs(10),
    )
    .await;
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_header_read_timeout() {
    let gw = TestGateway::start(gateway_with_limits(1, 64)).await;
    // A connection that never sends a byte.
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    // A keep-alive connection after its first answer.
    let mut kept = TcpStream::connect(gw.addr).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut silent, Duration::from_secs(4)).await);
    assert!(closed_within(&mut kept, Duration::from_secs(4)).await);
}

#[tokio::test]
async fn connections_past_the_cap_are_refused_with_a_503() {
    let cap = 8;
    let gw = TestGateway::start(gateway_with_limits(30, cap)).await;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let mut extra = TcpStream::connect(gw.addr).await.unwrap();
        let _ = extra
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 503"),
            "an extra connection got {text:?}"
        );
        if !text.is_empty() {
            let body = text.split_once("\r\n\r\n").unwrap().1;
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(json["error"].as_str().unwrap().contains("too many"));
        }
    }
    // Existing connections keep working.
    held[0]
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = held[0].read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // One closes: a new one is served again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = reqwest::Client::new()
            .get(format!("{}/health", gw.base))
            .send()
            .await;
        if resp.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came free");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `serve --http`'s server in process, on 127.0.0.1:0, paying nothing.
struct McpHttp {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn mcp_http(limits: HttpLimits) -> McpHttp {
    let payer = Arc::new(DevPayer::new("http://127.0.0.1:9").unwrap());
    let store = Arc::new(Store::open_in_memory().unwrap());
    let server = McpServer::new(ClientConfig::default(), payer, store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        server
            .serve_http_limited(listener, &HttpOptions::default(), limits, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    McpHttp { addr, _stop: tx }
}

fn initialize() -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "limits-test", "version": "0"}
        }
    })
}

#[tokio::test]
async fn mcp_sessions_past_the_cap_get_a_503_and_open_ones_keep_working() {
    let srv = mcp_http(HttpLimits {
        max_sessions: 2,
        ..HttpLimits::default()
    })
    .await;
    let base = format!("http://{}", srv.addr);
    let client = reqwest::Client::new();

    // Two sessions: one legacy SSE stream, one Streamable HTTP session.
    let mut sse = client.get(format!("{base}/sse")).send().await.unwrap();
    assert_eq!(sse.status(), reqwest::StatusCode::OK);
    let first = sse.chunk().await.unwrap().unwrap();
    let first = String::from_utf8_lossy(&first).to_string();
    let endpoint = first
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap()
        .to_string();
    let init = client
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), reqwest::StatusCode::OK);
    let session_id = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    drop(init);

    // A third, either way, is refused with a sentence.
    let refused = client
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = refused.json().await.unwrap();
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("sessions are open"),
        "{json}"
    );
    let refused = client.get(format!("{base}/sse")).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);

    // The open ones still work.
    let posted = client
        .post(format!("{base}{endpoint}"))
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), reqwest::StatusCode::ACCEPTED);
    let ping = client
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session_id)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), reqwest::StatusCode::ACCEPTED);

    // The SSE stream closes: a new session fits again.
    drop(sse);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = client.get(format!("{base}/sse")).send().await.unwrap();
        if again.status() == reqwest::StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed SSE session still counts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serve_http_lets_a_trickling_client_go() {
    let srv = mcp_http(HttpLimits {
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        },
        ..HttpLimits::default()
    })
    .await;
    let took = trickle_until_closed(
        srv.addr,
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        Duration::from_millis(300),
        Duration::from_secs(10),
    )
    .await;
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
}

/// A router that answers with the name of the thread that served it, and
/// `/slow` after a pause.
fn thread_names() -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/",
            get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "finished"
            }),
        )
}

/// HTTP/1.1 GET on a connection of its own; the body.
async fn get_once(addr: SocketAddr, path: &str) -> String {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    sock.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[tokio::test]
async fn workers_serve_on_threads_of_their_own_and_stop_when_dropped() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let workers = std::num::NonZeroUsize::new(2).unwrap();
    let served = tokio::spawn(l402_mcp::listen::serve_on_workers(
        listener,
        thread_names(),
        ConnectionLimits::default(),
        workers,
        std::future::pending(),
    ));
    for _ in 0..20 {
        let name = get_once(addr, "/").await;
        assert!(name.starts_with("http-worker-"), "served on {name:?}");
    }
    // Dropping the server stops its workers, and with them the listener.
    served.abort();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the workers kept listening after the server was dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn workers_finish_the_answers_under_way_at_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(l402_mcp::listen::serve_on_workers(
        listener,
        thread_names(),
        ConnectionLimits::default(),
        std::num::NonZeroUsize::new(3).unwrap(),
        async move {
            let _ = stopped.await;
        },
    ));
    let slow = tokio::spawn(get_once(addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.send(()).unwrap();
    assert_eq!(slow.await.unwrap(), "finished");
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("the server returns once the answers are finished")
        .unwrap()
        .expect("and returns Ok");
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

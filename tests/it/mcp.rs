//! `l402-mcp serve` driven by real MCP clients: the official Python SDK
//! over stdio, Streamable HTTP and SSE (tests/interop/mcp_client.py), the
//! MCP Inspector CLI, and raw JSON-RPC on stdio.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use l402_mcp::gateway::GatewayConfig;

use crate::common::{TestGateway, python, run_python};

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");

/// `serve`'s settings for a test: the gateway's dev node, a store of its
/// own, and no config file or environment from the machine.
fn serve_args(base: &str, dir: &Path) -> Vec<String> {
    vec![
        "serve".into(),
        "--dev-node".into(),
        base.into(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--config".into(),
        dir.join("none.toml").display().to_string(),
    ]
}

/// A `serve --http` child, killed when dropped.
struct HttpServe {
    child: Child,
    addr: String,
}

impl Drop for HttpServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_http(base: &str, dir: &Path, extra: &[&str]) -> HttpServe {
    let mut child = Command::new(BIN)
        .args(serve_args(base, dir))
        .args(["--http", "127.0.0.1:0"])
        .args(extra)
        .env_remove("L402_MCP_AUTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve --http");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve --http exited before listening")
            .expect("stderr line");
        if let Some(rest) = line.split("Streamable HTTP at http://").nth(1) {
            break rest.split('/').next().expect("address").to_string();
        }
    };
    // Keep draining stderr so that the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    HttpServe { child, addr }
}

async fn python_scenario(scenario: &str, transport: &str, base: &str, rest: Vec<String>) -> String {
    let Some(py) = python() else {
        return String::new();
    };
    let mut args: Vec<String> = vec![
        "--scenario".into(),
        scenario.into(),
        "--transport".into(),
        transport.into(),
        "--gateway".into(),
        base.into(),
    ];
    args.extend(rest);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python(&py, "mcp_client.py", &args)
    })
    .await
    .expect("python task")
}

fn stdio_command(base: &str, dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["--".to_string(), BIN.to_string(), "-q".to_string()];
    v.extend(serve_args(base, dir));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_over_stdio_uses_every_tool() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = python_scenario(
        "full",
        "stdio",
        &gw.base,
        stdio_command(&gw.base, dir.path(), &[]),
    )
    .await;
    if !out.is_empty() {
        assert!(out.contains("\"ok\": true"), "{out}");
        // Newer clients probe server/discover and fall back to the handshake.
        assert!(
            out.contains("\"protocol_version\": \"2025-11-25\""),
            "{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_over_streamable_http_with_a_token() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_http(&gw.base, dir.path(), &["--auth-token", "s3cret"]);
    let url = format!("http://{}/mcp", serve.addr);

    // Without the token (or with another), nothing gets through.
    let http = reqwest::Client::new();
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    for auth in [None, Some("Bearer wrong"), Some("Basic czNjcmV0")] {
        let mut req = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert!(resp.headers().contains_key("www-authenticate"));
    }
    let sse = http
        .get(format!("http://{}/sse", serve.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 401);
    // A rebound Host is refused even with the token.
    let rebound = http
        .post(&url)
        .header("host", "attacker.example")
        .header("authorization", "Bearer s3cret")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);

    let out = python_scenario(
        "full",
        "http",
        &gw.base,
        vec!["--url".into(), url, "--token".into(), "s3cret".into()],
    )
    .await;
    assert!(out.is_empty() || out.contains("\"ok\": true"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_over_legacy_sse() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_http(&gw.base, dir.path(), &[]);
    let url = format!("http://{}/sse", serve.addr);
    let out = python_scenario("full", "sse", &gw.base, vec!["--url".into(), url]).await;
    assert!(out.is_empty() || out.contains("\"ok\": true"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_http_sessions_at_once_have_separate_budgets() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let dir = tempfile::tempdir().unwrap();
    // 300 sats each, no fee: one 250-sat purchase per session.
    let serve = serve_http(&gw.base, dir.path(), &["--budget", "300", "--max-fee", "0"]);
    let url = format!("http://{}/mcp", serve.addr);
    let out = python_scenario("two-sessions", "http", &gw.base, vec!["--url".into(), url]).await;
    assert!(out.is_empty() || out.contains("\"ok\": true"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_through_elicitation() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let dir = tempfile::tempdir().unwrap();
    let cmd = stdio_command(&gw.base, dir.path(), &["--approve-above", "10"]);
    let out = python_scenario("approve", "stdio", &gw.base, cmd).await;
    assert!(out.is_empty() || out.contains("\"ok\": true"), "{out}");
}

#[test]
fn a_public_address_without_a_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(serve_args("http://127.0.0.1:9", dir.path()))
        .args(["--http", "0.0.0.0:0"])
        .env_remove("L402_MCP_AUTH_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--auth-token"),
        "{err}"
    );
}

#[test]
fn serve_without_a_payer_says_how_to_configure_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .env_remove("L402_DEV_NODE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dev-node"));
}

/// Sends `messages` (one JSON-RPC message each) to a stdio server run
/// with -vvv, waits for a response to each request, closes stdin, and
/// returns every stdout line.
fn stdio_exchange(args: &[String], messages: &[serde_json::Value]) -> Vec<String> {
    let mut child = Command::new(BIN)
        .arg("-vvv")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    for m in messages {
        writeln!(stdin, "{m}").unwrap();
        stdin.flush().unwrap();
        let Some(id) = m.get("id") else { continue };
        loop {
            let line = stdout.next().expect("a response").unwrap();
            let done = serde_json::from_str::<serde_json::Value>(&line)
                .map(|v| v.get("id") == Some(id))
                .unwrap_or(false);
            lines.push(line);
            if done {
                break;
            }
        }
    }
    drop(stdin);
    lines.extend(stdout.map(|l| l.unwrap()));
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "serve exited with {status} after stdin closed"
    );
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn stdout_carries_nothing_but_mcp_even_at_trace_level() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let dir = tempfile::tempdir().unwrap();
    let args = serve_args(&gw.base, dir.path());
    let url = format!("{}/v1/demo", gw.base);
    let messages = vec![
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "l402_fetch", "arguments": {"url": url},
            "_meta": {"progressToken": "p1"}}}),
        serde_json::json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "l402_fetch", "arguments": {"url": url, "max_cost_sats": 1}}}),
        serde_json::json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "l402_fetch", "arguments": {"nope": 1}}}),
        serde_json::json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {
            "name": "no_such_tool", "arguments": {}}}),
    ];
    let lines = tokio::task::spawn_blocking(move || stdio_exchange(&args, &messages))
        .await
        .unwrap();
    let mut by_id = std::collections::HashMap::new();
    let mut progress = 0;
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
        if v["method"] == "notifications/progress" {
            progress += 1;
        }
        if let Some(id) = v.get("id").and_then(|i| i.as_i64()) {
            by_id.insert(id, v);
        }
    }
    assert_eq!(by_id[&1]["result"]["serverInfo"]["name"], "l402-mcp");
    assert_eq!(by_id[&2]["result"]["tools"].as_array().unwrap().len(), 4);
    let paid = &by_id[&3]["result"];
    assert_eq!(paid["isError"], false, "{paid}");
    assert_eq!(paid["structuredContent"]["receipt"]["amount_sats"], 21.0);
    assert!(progress >= 2, "progress notifications: {progress}");
    // The token bought above covers the origin: the low cap never bites;
    // a cap refusal is a tool result, not a JSON-RPC error.
    assert!(by_id[&4].get("result").is_some(), "{}", by_id[&4]);
    // Arguments that do not match the schema: an input error the model can
    // correct, so a tool result with isError (as rmcp and the 2025-11-25
    // spec have it); an unknown tool cannot be processed: a JSON-RPC error.
    assert_eq!(by_id[&5]["result"]["isError"], true, "{}", by_id[&5]);
    assert!(by_id[&6].get("error").is_some(), "{}", by_id[&6]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_is_a_tool_result_with_is_error() {
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let dir = tempfile::tempdir().unwrap();
    let args = serve_args(&gw.base, dir.path());
    let messages = vec![
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "l402_fetch",
            "arguments": {"url": format!("{}/v1/data", gw.base), "max_cost_sats": 50}}}),
    ];
    let lines = tokio::task::spawn_blocking(move || stdio_exchange(&args, &messages))
        .await
        .unwrap();
    let reply: serde_json::Value = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["id"] == 2)
        .unwrap();
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("asks 100 sats; the per-request cap is 50 sats"),
        "{text}"
    );
    assert!(text.contains("Nothing was paid"), "{text}");
}

/// The MCP Inspector CLI, installed by scripts/mcp-inspector.sh into a
/// cache directory (it needs Node 22). Outside CI a missing install skips.
fn inspector() -> Option<PathBuf> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/mcp-inspector.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--path")
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !path.is_empty() {
        return Some(PathBuf::from(path));
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "the MCP Inspector is not installed: run scripts/mcp-inspector.sh --install ({})",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("SKIPPED: the MCP Inspector is not installed (scripts/mcp-inspector.sh --install)");
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_inspector_cli_lists_and_calls_tools() {
    let Some(inspector) = inspector() else { return };
    let gw = TestGateway::start(GatewayConfig::demo()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = vec![BIN.to_string(), "-q".to_string()];
    server.extend(serve_args(&gw.base, dir.path()));
    let run = move |extra: Vec<String>| {
        let server = server.clone();
        let inspector = inspector.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new("bash")
                    .arg(&inspector)
                    .arg("--cli")
                    .args(&extra)
                    .arg("--")
                    .args(&server)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let listed = run(vec!["--method".into(), "tools/list".into()]).await;
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("inspector prints JSON");
    let names: Vec<&str> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");

    let called = run(vec![
        "--method".into(),
        "tools/call".into(),
        "--tool-name".into(),
        "preview_cost".into(),
        "--tool-arg".into(),
        format!("url={}/v1/demo", gw.base),
    ])
    .await;
    let text = String::from_utf8_lossy(&called.stdout);
    assert!(
        called.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&called.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("inspector prints JSON");
    assert_eq!(v["structuredContent"]["price_sats"], 21.0, "{v}");
}

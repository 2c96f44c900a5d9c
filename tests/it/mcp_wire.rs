//! The edges of JSON-RPC, on every transport `serve` speaks: a message
//! that is not JSON, one that is not a request, one whose `tools/call`
//! params do not fit the MCP schema. Each answer is checked for its exact
//! code and id, on stdio (2025-11-25 after `initialize`, and 2026-07-28
//! with `_meta` on every request), on Streamable HTTP (a 2025-11-25
//! session, and 2026-07-28) and on the legacy HTTP+SSE transport.

use std::path::Path;
use std::process::Stdio as Piped;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");

/// Nothing listens there: no case pays, so no node is needed.
const NO_NODE: &str = "http://127.0.0.1:9";

/// How long an answer may take before the case fails as unanswered.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The 2026-07-28 `_meta` every request of that revision carries.
fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

fn initialize(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "wire-test", "version": "1"}}})
}

fn serve_args(dir: &Path) -> Vec<String> {
    vec![
        "serve".into(),
        "--dev-node".into(),
        NO_NODE.into(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--config".into(),
        "/dev/null".into(),
    ]
}

/// The revision a case is sent under.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Revision {
    /// The `initialize` handshake first (a session on HTTP and SSE).
    Handshake,
    /// No handshake; `_meta` on every request (2026-07-28).
    PerRequest,
}

/// What a case must get back.
#[derive(Debug, Clone)]
struct Expect {
    code: i64,
    id: Value,
    /// The HTTP status on Streamable HTTP.
    status: u16,
}

fn expect(code: i64, id: Value, status: u16) -> Expect {
    Expect { code, id, status }
}

/// Checks that `answer` is a JSON-RPC error with `expected`'s code and id
/// (`"id": null` present, not omitted, when the id cannot be read) and a
/// message that is a sentence, not a bare method name.
fn assert_error(answer: &Value, expected: &Expect, case: &str) {
    assert_eq!(answer["jsonrpc"], "2.0", "{case}: {answer}");
    assert_eq!(
        answer["error"]["code"], expected.code,
        "{case}: wrong code in {answer}"
    );
    let id = answer
        .as_object()
        .and_then(|o| o.get("id"))
        .unwrap_or_else(|| panic!("{case}: the answer has no \"id\" member: {answer}"));
    assert_eq!(id, &expected.id, "{case}: wrong id in {answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(' ') && message.len() > 20,
        "{case}: the message is not a sentence: {answer}"
    );
}

// -------------------------------------------------------------------------
// stdio

/// A stdio `serve`, killed by its pid when dropped.
struct StdioServe {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    revision: Revision,
    _dir: tempfile::TempDir,
}

impl StdioServe {
    async fn start(revision: Revision) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(serve_args(dir.path()))
            .env_remove("RUST_LOG")
            .stdin(Piped::piped())
            .stdout(Piped::piped())
            .stderr(Piped::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn serve");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut serve = StdioServe {
            child,
            stdin,
            stdout,
            revision,
            _dir: dir,
        };
        if revision == Revision::Handshake {
            serve.send(&initialize("2025-11-25").to_string()).await;
            let answer = serve.answer("initialize").await;
            assert_eq!(answer["id"], "init", "{answer}");
            assert_eq!(answer["result"]["protocolVersion"], "2025-11-25");
            serve
                .send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
                .await;
        }
        serve
    }

    async fn send(&mut self, line: &str) {
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next line on stdout, which must be JSON.
    async fn answer(&mut self, case: &str) -> Value {
        let line = tokio::time::timeout(ANSWER_WITHIN, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("{case}: no answer on stdout within {ANSWER_WITHIN:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("{case}: stdout closed"));
        serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!("{case}: stdout carries a line that is not JSON ({e}): {line}")
        })
    }

    /// Sends `line` and checks the answer against `expected`; then checks
    /// that the session still answers a ping.
    async fn case(&mut self, line: &str, expected: &Expect, case: &str) {
        self.send(line).await;
        let answer = self.answer(case).await;
        assert_error(&answer, expected, case);
        let ping = match self.revision {
            Revision::PerRequest => json!({"jsonrpc": "2.0", "id": "after", "method": "ping",
                "params": {"_meta": meta()}}),
            Revision::Handshake => json!({"jsonrpc": "2.0", "id": "after", "method": "ping"}),
        };
        self.send(&ping.to_string()).await;
        let pong = self.answer(case).await;
        assert_eq!(pong["id"], "after", "{case}: the session broke: {pong}");
        assert!(pong.get("result").is_some(), "{case}: {pong}");
    }
}

impl Drop for StdioServe {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn on_stdio(revision: Revision, line: &str, expected: &Expect, case: &str) {
    let mut serve = StdioServe::start(revision).await;
    serve
        .case(line, expected, &format!("stdio {revision:?}: {case}"))
        .await;
}

// -------------------------------------------------------------------------
// HTTP: Streamable HTTP at /mcp and the legacy transport at /sse + /message

/// A `serve --http` child, killed by its pid when dropped.
struct HttpServe {
    child: std::process::Child,
    addr: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for HttpServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HttpServe {
    fn start() -> Self {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(BIN)
            .args(serve_args(dir.path()))
            .args(["--http", "127.0.0.1:0"])
            .env_remove("L402_MCP_AUTH_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Piped::null())
            .stdout(Piped::null())
            .stderr(Piped::piped())
            .spawn()
            .expect("spawn serve --http");
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("serve --http exited before listening")
                .unwrap();
            if let Some(rest) = line.split("Streamable HTTP at http://").nth(1) {
                break rest.split('/').next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        HttpServe {
            child,
            addr,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A 2025-11-25 session on /mcp: its id.
    async fn session(&self) -> String {
        let resp = self
            .post_mcp(&initialize("2025-11-25").to_string(), &[])
            .await;
        assert_eq!(resp.status(), 200);
        let id = resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let _ = resp.text().await;
        let done = self
            .post_mcp(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                &[
                    ("mcp-session-id", &id),
                    ("mcp-protocol-version", "2025-11-25"),
                ],
            )
            .await;
        assert_eq!(done.status(), 202);
        id
    }

    async fn post_mcp(&self, body: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// Posts `body` to /mcp under `revision` and returns the status and
    /// the JSON-RPC message that answers it (the last `data:` of an event
    /// stream, or the JSON body).
    async fn exchange(&self, revision: Revision, body: &str) -> (u16, Value) {
        let session;
        let mut headers: Vec<(&str, &str)> = Vec::new();
        let (method, name) = {
            let v: Value = serde_json::from_str(body).unwrap_or_default();
            (
                v["method"].as_str().map(str::to_string),
                v["params"]["name"].as_str().map(str::to_string),
            )
        };
        match revision {
            Revision::Handshake => {
                session = self.session().await;
                headers.push(("mcp-session-id", &session));
                headers.push(("mcp-protocol-version", "2025-11-25"));
            }
            Revision::PerRequest => {
                headers.push(("mcp-protocol-version", "2026-07-28"));
                if let Some(m) = &method {
                    headers.push(("mcp-method", m));
                }
                if let Some(n) = &name {
                    headers.push(("mcp-name", n));
                }
            }
        }
        let resp = self.post_mcp(body, &headers).await;
        read_answer(resp).await
    }
}

async fn read_answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let event_stream = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    let json = if event_stream {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .rfind(|d| !d.is_empty())
            .unwrap_or("null")
            .to_string()
    } else {
        text
    };
    let answer = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("HTTP {status}: the body is not JSON ({e}): {json}"));
    (status, answer)
}

async fn on_mcp(revision: Revision, body: &str, expected: &Expect, case: &str) {
    let serve = HttpServe::start();
    let case = format!("HTTP /mcp {revision:?}: {case}");
    let (got, answer) = serve.exchange(revision, body).await;
    assert_eq!(got, expected.status, "{case}: HTTP status, answer {answer}");
    assert_error(&answer, expected, &case);
}

/// An open legacy SSE session: where to post, and the `message` events.
struct SseSession {
    post_url: String,
    events: tokio::sync::mpsc::Receiver<Value>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for SseSession {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl SseSession {
    async fn open(serve: &HttpServe) -> Self {
        let mut resp = serve.http.get(serve.url("/sse")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let (endpoint_tx, endpoint_rx) = tokio::sync::oneshot::channel::<String>();
        let (tx, events) = tokio::sync::mpsc::channel(16);
        let reader = tokio::spawn(async move {
            let mut endpoint_tx = Some(endpoint_tx);
            let mut buf = String::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let event: String = buf.drain(..end + 2).collect();
                    let kind = event.lines().find_map(|l| l.strip_prefix("event:"));
                    let data: String = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim)
                        .collect();
                    match kind.map(str::trim) {
                        Some("endpoint") => {
                            if let Some(t) = endpoint_tx.take() {
                                let _ = t.send(data);
                            }
                        }
                        Some("message") => {
                            let _ = tx.send(serde_json::from_str(&data).unwrap()).await;
                        }
                        _ => {}
                    }
                }
            }
        });
        let endpoint = tokio::time::timeout(ANSWER_WITHIN, endpoint_rx)
            .await
            .expect("an endpoint event")
            .unwrap();
        let mut session = SseSession {
            post_url: serve.url(&endpoint),
            events,
            reader,
        };
        let resp = session
            .post(serve, &initialize("2024-11-05").to_string())
            .await;
        assert_eq!(resp.status(), 202);
        let answer = session.event("initialize").await;
        assert_eq!(answer["id"], "init", "{answer}");
        let resp = session
            .post(
                serve,
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            )
            .await;
        assert_eq!(resp.status(), 202);
        session
    }

    async fn post(&self, serve: &HttpServe, body: &str) -> reqwest::Response {
        serve
            .http
            .post(&self.post_url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn event(&mut self, case: &str) -> Value {
        tokio::time::timeout(ANSWER_WITHIN, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("{case}: no event within {ANSWER_WITHIN:?}"))
            .expect("the event stream is open")
    }
}

/// Where the legacy transport delivers a refusal: a request whose id can
/// be read gets its error on the event stream, as every other answer (the
/// post itself is accepted); a message without a readable id has nothing
/// to be matched with, so the post itself is refused with the error.
async fn on_sse(body: &str, expected: &Expect, case: &str) {
    let serve = HttpServe::start();
    let mut sse = SseSession::open(&serve).await;
    let case = format!("SSE /message: {case}");
    let resp = sse.post(&serve, body).await;
    let answer = if expected.id.is_null() {
        let (status, answer) = read_answer(resp).await;
        assert_eq!(status, 400, "{case}: {answer}");
        answer
    } else {
        assert_eq!(resp.status(), 202, "{case}: {:?}", resp.text().await);
        sse.event(&case).await
    };
    assert_error(&answer, expected, &case);
    // The session still answers.
    let resp = sse
        .post(&serve, r#"{"jsonrpc":"2.0","id":"after","method":"ping"}"#)
        .await;
    assert_eq!(resp.status(), 202);
    let pong = sse.event(&case).await;
    assert_eq!(pong["id"], "after", "{case}: {pong}");
}

// -------------------------------------------------------------------------
// the cases, each on every transport

/// Where a case is sent.
#[derive(Debug, Clone, Copy)]
enum Via {
    Stdio(Revision),
    Http(Revision),
    /// The legacy transport, always after `initialize`.
    Sse,
}

impl Via {
    fn revision(self) -> Revision {
        match self {
            Via::Stdio(r) | Via::Http(r) => r,
            Via::Sse => Revision::Handshake,
        }
    }
}

async fn check(via: Via, body: &str, expected: &Expect) {
    match via {
        Via::Stdio(revision) => on_stdio(revision, body, expected, body).await,
        Via::Http(revision) => on_mcp(revision, body, expected, body).await,
        Via::Sse => on_sse(body, expected, body).await,
    }
}

/// One test per transport for `$case`, an `async fn(Via)`.
macro_rules! on_every_transport {
    ($case:ident) => {
        mod $case {
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn stdio_after_initialize() {
                super::$case(Via::Stdio(Revision::Handshake)).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn stdio_per_request_2026_07_28() {
                super::$case(Via::Stdio(Revision::PerRequest)).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn streamable_http_session() {
                super::$case(Via::Http(Revision::Handshake)).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn streamable_http_per_request_2026_07_28() {
                super::$case(Via::Http(Revision::PerRequest)).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn legacy_sse() {
                super::$case(Via::Sse).await;
            }
        }
    };
}

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// `params` for a `tools/call` under `via`'s revision: `_meta` added on
/// 2026-07-28.
fn call(via: Via, id: Value, params: Value) -> String {
    let mut params = params;
    if via.revision() == Revision::PerRequest {
        params["_meta"] = meta();
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string()
}

on_every_transport!(a_message_that_is_not_json_is_a_parse_error_with_a_null_id);
async fn a_message_that_is_not_json_is_a_parse_error_with_a_null_id(via: Via) {
    let e = expect(PARSE_ERROR, Value::Null, 400);
    for body in ["not json", r#"{"jsonrpc":"2.0","id":1,"#] {
        check(via, body, &e).await;
    }
}

on_every_transport!(an_invalid_request_whose_id_cannot_be_read_has_a_null_id);
async fn an_invalid_request_whose_id_cannot_be_read_has_a_null_id(via: Via) {
    let e = expect(INVALID_REQUEST, Value::Null, 400);
    for body in [
        // An id that is neither a string nor an integer.
        r#"{"jsonrpc":"2.0","method":"tools/call","id":{"x":1}}"#,
        // A batch: MCP has none since 2025-06-18.
        r#"[{"jsonrpc":"2.0","id":12,"method":"ping"}]"#,
    ] {
        check(via, body, &e).await;
    }
}

on_every_transport!(an_invalid_request_whose_id_can_be_read_is_answered_with_that_id);
async fn an_invalid_request_whose_id_can_be_read_is_answered_with_that_id(via: Via) {
    for (body, id) in [
        (r#"{"jsonrpc":"1.0","id":11,"method":"ping"}"#, json!(11)),
        (
            r#"{"jsonrpc":"2.0","id":"s-13","method":"tools/call","params":"x"}"#,
            json!("s-13"),
        ),
    ] {
        check(via, body, &expect(INVALID_REQUEST, id, 400)).await;
    }
}

on_every_transport!(tools_call_arguments_that_are_not_an_object_are_invalid_params);
async fn tools_call_arguments_that_are_not_an_object_are_invalid_params(via: Via) {
    let body = call(
        via,
        json!(8),
        json!({"name": "list_tokens", "arguments": []}),
    );
    check(via, &body, &expect(INVALID_PARAMS, json!(8), 200)).await;
}

on_every_transport!(a_tools_call_without_a_tool_name_is_invalid_params);
async fn a_tools_call_without_a_tool_name_is_invalid_params(via: Via) {
    let body = call(via, json!("n"), json!({"arguments": {}}));
    check(via, &body, &expect(INVALID_PARAMS, json!("n"), 200)).await;
}

/// A `tools/call` without params. Only the revisions with a handshake:
/// on 2026-07-28 missing params are a missing `_meta`, which rmcp already
/// answers with -32602 (see the guard below).
async fn a_tools_call_without_params_is_invalid_params(via: Via) {
    let body = r#"{"jsonrpc":"2.0","method":"tools/call","id":7}"#;
    check(via, body, &expect(INVALID_PARAMS, json!(7), 200)).await;
}

mod a_tools_call_without_params_is_invalid_params {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn stdio_after_initialize() {
        super::a_tools_call_without_params_is_invalid_params(Via::Stdio(Revision::Handshake)).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn streamable_http_session() {
        super::a_tools_call_without_params_is_invalid_params(Via::Http(Revision::Handshake)).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn legacy_sse() {
        super::a_tools_call_without_params_is_invalid_params(Via::Sse).await;
    }
}

/// A guard, not a fix: on 2026-07-28 a `tools/call` without params keeps
/// rmcp's own -32602 about the missing `_meta` (a 400 on HTTP, as that
/// revision requires for a malformed `_meta`).
#[tokio::test(flavor = "multi_thread")]
async fn a_2026_tools_call_without_params_keeps_the_missing_meta_error() {
    let body = r#"{"jsonrpc":"2.0","method":"tools/call","id":7}"#;
    let e = expect(INVALID_PARAMS, json!(7), 400);
    check(Via::Stdio(Revision::PerRequest), body, &e).await;
    check(Via::Http(Revision::PerRequest), body, &e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_is_not_sent_as_json_is_refused_with_415_and_a_json_rpc_error() {
    let serve = HttpServe::start();
    let session = serve.session().await;
    let resp = serve
        .http
        .post(serve.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "text/plain")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    let (status, answer) = read_answer(resp).await;
    assert_eq!(status, 415, "{answer}");
    assert_error(&answer, &expect(-32000, Value::Null, 415), "text/plain");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("application/json") && message.contains("text/plain"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn well_formed_messages_still_reach_the_tools() {
    // What is fine passes through unchanged: a call that fits the schema
    // gets its tool result, on stdio and on HTTP, in both revisions.
    for revision in [Revision::Handshake, Revision::PerRequest] {
        let via = Via::Stdio(revision);
        let body = call(
            via,
            json!(21),
            json!({"name": "list_tokens", "arguments": {}}),
        );
        let mut serve = StdioServe::start(revision).await;
        serve.send(&body).await;
        let answer = serve.answer("list_tokens").await;
        assert_eq!(answer["id"], 21, "{answer}");
        assert_eq!(answer["result"]["isError"], false, "{answer}");

        let http = HttpServe::start();
        let (status, answer) = http.exchange(revision, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["id"], 21, "{answer}");
        assert_eq!(answer["result"]["isError"], false, "{answer}");
    }
}

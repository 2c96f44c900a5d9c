//! The edges of JSON-RPC that rmcp answers wrongly, answered here before
//! rmcp sees the message.
//!
//! This module owns what a peer sent that is not a message rmcp can
//! dispatch, on every transport (stdio, Streamable HTTP at `/mcp`, the
//! legacy `/message`):
//!
//! - **Not JSON** is a parse error, -32700 with `"id": null` (JSON-RPC 2.0
//!   §4.2 and §5.1). rmcp's stdio transport drops such a line without an
//!   answer, and its HTTP server answers a plain-text 415.
//! - **JSON that is not a JSON-RPC message** is an invalid request, -32600,
//!   with the message's id when it can be read (a string or an integer),
//!   else `"id": null`. rmcp answers -32600 without any id.
//! - **A method this server serves whose params do not fit the MCP
//!   schema** (`tools/call` without params, without a tool name, with
//!   `"arguments": []`, ...) is invalid params, -32602, with a sentence
//!   saying what was wrong. rmcp's untagged request union takes such a
//!   request for a custom method and answers -32601 "tools/call".
//!
//! Everything else goes to rmcp unchanged (on stdio, the very message this
//! module parsed; on HTTP, the body as it came). Where rmcp refuses a
//! request for something that comes first it keeps the word: one without
//! a session and without the 2026-07-28 `_meta` (rmcp asks for the one or
//! the other), and on HTTP one whose `MCP-Protocol-Version` or
//! `Mcp-Method` header disagrees with its body (rmcp's -32020).
//!
//! `"id": null` is JSON-RPC 2.0's word for an id that cannot be read (the
//! member is required). MCP's schema, from 2025-11-25 on, types the id of
//! an error as optional and never null, and rmcp omits it; a client
//! cannot match either to a request, and this module follows JSON-RPC.
//!
//! Over stdio, the answers this module writes and rmcp's go through one
//! writer, a line at a time, so they never interleave and stdout carries
//! JSON-RPC messages only. After [`QUIET_AFTER`] parse errors in a row the
//! transport stops answering them (it logs them) until a message parses:
//! a peer that answers our error with more garbage cannot start a storm
//! (rust-sdk#938 is that storm, between a client and a server that logged
//! to stdout).
//!
//! Over HTTP, a parse error or an invalid request is a `400 Bad Request`
//! with the JSON-RPC error as its body; invalid params are an ordinary
//! JSON-RPC answer to the request (`200`, `application/json`), as rmcp
//! answers one it produced itself. A body sent with another `Content-Type`
//! than `application/json` stays a 415, now with a JSON-RPC error body.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BytesMut};
use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequest, ClientJsonRpcMessage, ClientRequest, DiscoverRequest, ErrorCode, ErrorData,
    InitializeRequest, ListToolsRequest, PingRequest, RequestId,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

// -------------------------------------------------------------------------
// defaults

/// The longest stdio line read, newline included: rmcp's own bound, so
/// that what rmcp would take, this transport takes. A longer line is
/// dropped, and answered.
pub(crate) const MAX_LINE: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;

/// The largest HTTP body read: rmcp's default `max_request_body_bytes`
/// (4 MiB), so that a body rmcp would take, the check before it takes.
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;

/// Parse errors in a row answered on stdio before the transport goes
/// quiet about them: enough for a client to see what it does wrong, few
/// enough that two peers cannot keep each other busy.
pub(crate) const QUIET_AFTER: u32 = 8;

/// JSON-RPC's code for a server error of the transport (a body of the
/// wrong media type or size): the TypeScript SDK's code for the same
/// refusals.
const TRANSPORT_ERROR: ErrorCode = ErrorCode(-32000);

/// The methods this server serves. A request for one of them that rmcp
/// reads as a custom request is one whose params do not fit the schema;
/// one for another method (`prompts/get` here) rightly gets rmcp's -32601.
const SERVED: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
];

/// A UTF-8 byte order mark, which RFC 8259 §8.1 lets a parser ignore (and
/// rmcp's stdio transport drops).
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

// -------------------------------------------------------------------------
// the check

/// What to do with one message a peer sent.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Hand it to rmcp: it is a message rmcp reads as the peer meant it.
    Pass(Box<ClientJsonRpcMessage>),
    /// Drop it without an answer: a notification of a method MCP does not
    /// define, which rmcp drops too (for compatibility with peers that
    /// send their own, such as LSP's).
    Ignore,
    /// Answer it with this error.
    Refuse(Refusal),
}

/// A JSON-RPC error answering a message that cannot be processed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    pub code: ErrorCode,
    /// The message's id, or `Value::Null` when it cannot be read.
    pub id: Value,
    /// A sentence saying what was wrong.
    pub message: String,
}

impl Refusal {
    fn new(code: ErrorCode, id: Value, message: impl Into<String>) -> Self {
        Refusal {
            code,
            id,
            message: message.into(),
        }
    }

    /// The JSON-RPC error response, its members in the order rmcp writes
    /// them.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Response<'a> {
            jsonrpc: &'static str,
            id: &'a Value,
            error: Error<'a>,
        }
        #[derive(serde::Serialize)]
        struct Error<'a> {
            code: i32,
            message: &'a str,
        }
        let response = Response {
            jsonrpc: "2.0",
            id: &self.id,
            error: Error {
                code: self.code.0,
                message: &self.message,
            },
        };
        // A struct of strings, a number and a `Value`: it serializes.
        serde_json::to_vec(&response).unwrap_or_default()
    }

    /// The id as rmcp's type, when it is one rmcp can carry.
    pub(crate) fn request_id(&self) -> Option<RequestId> {
        match &self.id {
            Value::String(s) => Some(RequestId::String(s.as_str().into())),
            Value::Number(n) => n.as_i64().map(RequestId::Number),
            _ => None,
        }
    }

    /// The same error as rmcp's message, for a transport that carries
    /// those (the legacy SSE stream); `None` when the id is not one rmcp
    /// can carry.
    pub(crate) fn to_message(&self) -> Option<rmcp::model::ServerJsonRpcMessage> {
        let id = self.request_id()?;
        Some(rmcp::model::ServerJsonRpcMessage::error(
            ErrorData::new(self.code, self.message.clone(), None),
            Some(id),
        ))
    }

    /// The HTTP answer: a parse error or an invalid request cannot be
    /// accepted (400); invalid params answer a request that was read, so
    /// they are an ordinary JSON-RPC answer (200), as rmcp's own are.
    pub(crate) fn into_http(self) -> Response {
        let status = if self.code == ErrorCode::INVALID_PARAMS {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        self.into_http_with_status(status)
    }

    /// The HTTP answer with `status`, the JSON-RPC error as its body.
    pub(crate) fn into_http_with_status(self, status: StatusCode) -> Response {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            self.to_bytes(),
        )
            .into_response()
    }
}

/// Where a message came from, for the params check: whether rmcp would
/// dispatch the request at all, or first refuse it for what is around it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scope<'a> {
    /// The message belongs to a session: a stdio process after
    /// `initialize`, an SSE session, an HTTP request with `Mcp-Session-Id`.
    pub in_session: bool,
    /// The HTTP request's headers; `None` on stdio and SSE.
    pub headers: Option<&'a HeaderMap>,
}

impl Scope<'_> {
    /// A message on stdio or SSE.
    pub(crate) fn stream(in_session: bool) -> Self {
        Scope {
            in_session,
            headers: None,
        }
    }
}

/// Checks one message (a stdio line without its newline, an HTTP body).
///
/// A request with malformed params is left to rmcp when rmcp refuses it
/// for something else first: outside a session, one without the
/// 2026-07-28 `_meta` (rmcp asks for the one or the other); on HTTP, one
/// whose `MCP-Protocol-Version` or `Mcp-Method` header does not agree
/// with its body (rmcp's -32020, which 2026-07-28 requires).
pub(crate) fn check(bytes: &[u8], scope: Scope<'_>) -> Verdict {
    let bytes = strip_bom(bytes);
    match serde_json::from_slice::<ClientJsonRpcMessage>(bytes) {
        Ok(message) => match malformed_params(&message, bytes, scope) {
            Some(refusal) => Verdict::Refuse(refusal),
            None => Verdict::Pass(Box::new(message)),
        },
        Err(error) => unreadable(bytes, &error),
    }
}

pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes)
}

/// A message rmcp parsed: a request for a served method that rmcp could
/// only read as a custom request has params that do not fit the schema.
fn malformed_params(
    message: &ClientJsonRpcMessage,
    bytes: &[u8],
    scope: Scope<'_>,
) -> Option<Refusal> {
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    let ClientRequest::CustomRequest(custom) = &request.request else {
        return None;
    };
    let method = custom.method.as_str();
    if !SERVED.contains(&method) {
        return None;
    }
    // The raw params, `_meta` and all (rmcp moves `_meta` out of them).
    let raw: Value = serde_json::from_slice(bytes).ok()?;
    let params = raw.get("params");
    // `initialize` opens a session, so it is never left to the session
    // check. A 2026-07-28 request is ours once its headers agree with it;
    // any other is ours inside a session.
    // At 2026-07-28 `initialize` is a removed method, and rmcp answers it
    // so (-32601, 404 on HTTP): a request that names that revision, in its
    // `_meta` or its `MCP-Protocol-Version` header, is left to it.
    let sessionless = request_version(params).is_some_and(|v| v >= NO_INITIALIZE)
        || scope
            .headers
            .and_then(|h| h.get("mcp-protocol-version"))
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() >= NO_INITIALIZE);
    let ours = if method == "initialize" {
        !sessionless
    } else {
        match request_version(params) {
            Some(version) => scope
                .headers
                .is_none_or(|h| headers_agree(h, version, method)),
            None => scope.in_session,
        }
    };
    if !ours {
        return None;
    }
    let id = match &request.id {
        RequestId::Number(n) => json!(n),
        RequestId::String(s) => json!(s.as_ref()),
    };
    Some(Refusal::new(
        ErrorCode::INVALID_PARAMS,
        id,
        describe_params(method, params),
    ))
}

/// The first revision without `initialize`.
const NO_INITIALIZE: &str = "2026-07-28";

/// The protocol revision `params._meta` names, as every 2026-07-28
/// request does.
fn request_version(params: Option<&Value>) -> Option<&str> {
    params?
        .get("_meta")?
        .get("io.modelcontextprotocol/protocolVersion")?
        .as_str()
}

/// Whether the HTTP headers a 2026-07-28 request must carry agree with
/// its body: `MCP-Protocol-Version` with its `_meta`, `Mcp-Method` with
/// its method.
fn headers_agree(headers: &HeaderMap, version: &str, method: &str) -> bool {
    let is = |name: &str, want: &str| {
        let mut values = headers.get_all(name).iter();
        values
            .next()
            .is_some_and(|v| v.as_bytes() == want.as_bytes())
            && values.next().is_none()
    };
    is("mcp-protocol-version", version) && is("mcp-method", method)
}

/// What is wrong with the params of a request for `method`.
fn describe_params(method: &str, params: Option<&Value>) -> String {
    if method == "tools/call" {
        match params {
            None => {
                return "tools/call needs params: an object with the tool's \"name\" and its \
                        \"arguments\", such as {\"name\": \"list_tokens\", \"arguments\": {}}"
                    .into();
            }
            Some(p) if !p.is_object() => {
                return format!(
                    "the params of tools/call must be an object with the tool's \"name\" and \
                     its \"arguments\", not {}",
                    kind(p)
                );
            }
            Some(p) => match (p.get("name"), p.get("arguments")) {
                (None, _) => {
                    return "the params of tools/call need the tool's \"name\": one of the \
                            tools tools/list lists"
                        .into();
                }
                (Some(name), _) if !name.is_string() => {
                    return format!(
                        "the tool's \"name\" in tools/call must be a string, not {}",
                        kind(name)
                    );
                }
                (_, Some(arguments)) if !arguments.is_object() && !arguments.is_null() => {
                    return format!(
                        "the \"arguments\" of tools/call must be an object with one member \
                         per argument (an empty object when there are none), not {}",
                        kind(arguments)
                    );
                }
                _ => {}
            },
        }
    }
    if let Some(p) = params
        && !p.is_object()
    {
        return format!(
            "the params of {method} must be an object (MCP names its parameters), not {}",
            kind(p)
        );
    }
    match schema_error(method, params) {
        Some(e) if params.is_none() => format!("{method} needs params: {e}"),
        Some(e) => format!("the params of {method} do not fit the MCP schema: {e}"),
        None => format!("the params of {method} do not fit the MCP schema"),
    }
}

/// serde's word on why `params` do not make a `method` request.
fn schema_error(method: &str, params: Option<&Value>) -> Option<String> {
    let mut request = json!({ "method": method });
    if let Some(p) = params {
        request["params"] = p.clone();
    }
    fn error<T: serde::de::DeserializeOwned>(request: Value) -> Option<String> {
        serde_json::from_value::<T>(request)
            .err()
            .map(|e| e.to_string())
    }
    match method {
        "initialize" => error::<InitializeRequest>(request),
        "ping" => error::<PingRequest>(request),
        "server/discover" => error::<DiscoverRequest>(request),
        "tools/list" => error::<ListToolsRequest>(request),
        "tools/call" => error::<CallToolRequest>(request),
        _ => None,
    }
}

/// A message rmcp cannot parse: not JSON, or JSON that is not a message.
fn unreadable(bytes: &[u8], error: &serde_json::Error) -> Verdict {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return Verdict::Refuse(Refusal::new(
                ErrorCode::PARSE_ERROR,
                Value::Null,
                format!(
                    "the message is not JSON ({e}); send each JSON-RPC 2.0 message as one JSON \
                     object (on stdio, one per line)"
                ),
            ));
        }
    };
    if is_ignored_notification(&value) {
        return Verdict::Ignore;
    }
    Verdict::Refuse(invalid(&value, error))
}

/// A notification (no `id`) of a method MCP does not define, or of a
/// `notifications/` method it does not define: rmcp drops those it cannot
/// parse, and so does this check.
fn is_ignored_notification(value: &Value) -> bool {
    let Some(method) = value.get("method").and_then(Value::as_str) else {
        return false;
    };
    value.get("id").is_none()
        && (!is_standard_method(method)
            || (method.starts_with("notifications/") && !is_standard_notification(method)))
}

/// rmcp's list of MCP's methods (`is_standard_method` in its
/// `transport/async_rw.rs`).
fn is_standard_method(method: &str) -> bool {
    matches!(
        method,
        "initialize"
            | "ping"
            | "server/discover"
            | "prompts/get"
            | "prompts/list"
            | "resources/list"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "resources/templates/list"
            | "subscriptions/listen"
            | "tools/call"
            | "tools/list"
            | "completion/complete"
            | "elicitation/create"
            | "logging/setLevel"
            | "roots/list"
            | "sampling/createMessage"
    ) || is_standard_notification(method)
}

fn is_standard_notification(method: &str) -> bool {
    matches!(
        method,
        "notifications/cancelled"
            | "notifications/initialized"
            | "notifications/message"
            | "notifications/progress"
            | "notifications/prompts/list_changed"
            | "notifications/resources/list_changed"
            | "notifications/resources/updated"
            | "notifications/roots/list_changed"
            | "notifications/subscriptions/acknowledged"
            | "notifications/tools/list_changed"
    )
}

/// The id to answer with: the message's when it is one (a string, or an
/// integer of at most 64 bits), else null.
fn readable_id(value: &Value) -> Value {
    match value.get("id") {
        Some(id @ Value::String(_)) => id.clone(),
        Some(id @ Value::Number(n)) if n.is_i64() => id.clone(),
        _ => Value::Null,
    }
}

/// Why JSON is not a JSON-RPC message, as the first rule it breaks.
fn invalid(value: &Value, error: &serde_json::Error) -> Refusal {
    let id = readable_id(value);
    let refuse = |message: String| Refusal::new(ErrorCode::INVALID_REQUEST, id.clone(), message);
    let Some(object) = value.as_object() else {
        return refuse(if value.is_array() {
            "a batch (a JSON array of messages) is not supported: MCP has had no batches since \
             2025-06-18; send each message on its own"
                .into()
        } else {
            format!("a JSON-RPC message is a JSON object, not {}", kind(value))
        });
    };
    match object.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        Some(other) => {
            return refuse(format!("\"jsonrpc\" must be \"2.0\", not {}", shown(other)));
        }
        None => return refuse("the message has no \"jsonrpc\": \"2.0\" member".into()),
    }
    if let Some(given) = object.get("id")
        && id.is_null()
    {
        return refuse(format!(
            "\"id\" must be a string or an integer of at most 64 bits, not {}",
            kind(given)
        ));
    }
    match object.get("method") {
        Some(Value::String(method)) => {
            if let Some(params) = object.get("params")
                && !params.is_object()
            {
                // By-position params are JSON-RPC, but no MCP method
                // takes them: for a method served here that is invalid
                // params; otherwise the request itself is not MCP's.
                if params.is_array() && !id.is_null() && SERVED.contains(&method.as_str()) {
                    return Refusal::new(
                        ErrorCode::INVALID_PARAMS,
                        id.clone(),
                        describe_params(method, Some(params)),
                    );
                }
                return refuse(format!(
                    "\"params\" must be an object (MCP names its parameters), not {}",
                    kind(params)
                ));
            }
            refuse(format!(
                "the {method} message does not fit the MCP schema: {error}"
            ))
        }
        Some(other) => refuse(format!("\"method\" must be a string, not {}", kind(other))),
        None => match (object.get("result"), object.get("error")) {
            (None, None) => refuse(
                "the message has no \"method\" (as a request or a notification has) and no \
                 \"result\" or \"error\" (as a response has)"
                    .into(),
            ),
            (Some(_), Some(_)) => {
                refuse("a response has a \"result\" or an \"error\", not both".into())
            }
            _ => refuse(format!("the response does not fit the MCP schema: {error}")),
        },
    }
}

/// A JSON value's kind, for a sentence: "an array", "null".
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            if n.is_i64() {
                "an integer"
            } else {
                "an integer larger than 64 bits can hold"
            }
        }
        Value::Number(_) => "a number with a fraction",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short value for a sentence: a string quoted, anything else by kind.
fn shown(value: &Value) -> Cow<'static, str> {
    match value {
        Value::String(s) if s.len() <= 16 => format!("{s:?}").into(),
        other => kind(other).into(),
    }
}

// -------------------------------------------------------------------------
// stdio

/// The stdio transport: rmcp's line protocol with the checks above.
pub(crate) fn stdio() -> WireStdio<tokio::io::Stdin, tokio::io::Stdout> {
    WireStdio::new(tokio::io::stdin(), tokio::io::stdout())
}

/// A newline-delimited JSON-RPC transport over `R` and `W`.
///
/// `receive` reads a line at a time (at most [`MAX_LINE`] bytes), answers
/// what the checks refuse, and returns the rest; `send` writes rmcp's
/// messages. Both write through one [`LineWriter`] behind a lock, so lines
/// never interleave.
pub(crate) struct WireStdio<R, W> {
    read: BufReader<R>,
    /// The line being read; kept across a cancelled `receive`, which rmcp
    /// polls inside a `select!`.
    line: Vec<u8>,
    max_line: usize,
    /// Dropping the rest of a line longer than `max_line`.
    discarding: bool,
    writer: Arc<Mutex<Option<LineWriter<W>>>>,
    /// A refusal to write before reading on; kept across a cancelled
    /// `receive`.
    pending: Option<Vec<u8>>,
    /// Bytes queued in the writer whose write a cancelled `receive` left
    /// unfinished.
    unflushed: bool,
    /// An `initialize` request has been passed to rmcp.
    in_session: bool,
    /// Parse errors in a row.
    parse_errors: u32,
}

impl<R, W> std::fmt::Debug for WireStdio<R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireStdio")
            .field("in_session", &self.in_session)
            .field("parse_errors", &self.parse_errors)
            .finish_non_exhaustive()
    }
}

/// What one bounded line read found.
enum LineRead {
    Line,
    Oversized,
    Eof,
    Failed(std::io::Error),
}

impl<R, W> WireStdio<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    pub(crate) fn new(read: R, write: W) -> Self {
        WireStdio {
            read: BufReader::new(read),
            line: Vec::new(),
            max_line: MAX_LINE,
            discarding: false,
            writer: Arc::new(Mutex::new(Some(LineWriter::new(write)))),
            pending: None,
            unflushed: false,
            in_session: false,
            parse_errors: 0,
        }
    }

    #[cfg(test)]
    fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line;
        self
    }

    /// Reads one line into `self.line`, never holding more than
    /// `max_line` bytes of it (rmcp's algorithm: `read_until` cannot be
    /// bounded). Cancel-safe: nothing is consumed from the reader that is
    /// not also in `self.line`.
    async fn read_line(&mut self) -> LineRead {
        loop {
            let (consumed, done) = {
                let available = match self.read.fill_buf().await {
                    Ok(a) => a,
                    Err(e) => return LineRead::Failed(e),
                };
                if available.is_empty() {
                    return LineRead::Eof;
                }
                let newline = available.iter().position(|b| *b == b'\n');
                let take = newline.map_or(available.len(), |i| i + 1);
                if self.discarding {
                    if newline.is_some() {
                        self.discarding = false;
                    }
                    (take, None)
                } else if self.line.len().saturating_add(take) > self.max_line {
                    self.line.clear();
                    self.discarding = newline.is_none();
                    (take, Some(LineRead::Oversized))
                } else {
                    self.line.extend_from_slice(&available[..take]);
                    (take, newline.map(|_| LineRead::Line))
                }
            };
            self.read.consume(consumed);
            if let Some(done) = done {
                return done;
            }
        }
    }

    /// Writes the pending refusal, and whatever a cancelled call left
    /// unwritten. `false` when stdout is gone.
    async fn flush_pending(&mut self) -> bool {
        if self.pending.is_none() && !self.unflushed {
            return true;
        }
        let writer = self.writer.clone();
        let mut guard = writer.lock().await;
        let Some(out) = guard.as_mut() else {
            return false;
        };
        if let Some(line) = self.pending.take() {
            out.queue(&line);
        }
        self.unflushed = true;
        if out.write_queued().await.is_err() {
            return false;
        }
        self.unflushed = false;
        true
    }

    /// Queues the answer to a refused line, or goes quiet about a run of
    /// parse errors.
    fn refuse(&mut self, refusal: Refusal) {
        if refusal.code == ErrorCode::PARSE_ERROR {
            self.parse_errors = self.parse_errors.saturating_add(1);
            if self.parse_errors > QUIET_AFTER {
                if self.parse_errors == QUIET_AFTER + 1 {
                    tracing::warn!(
                        "{QUIET_AFTER} lines in a row on stdin were not JSON; the next ones are \
                         dropped without an answer until a message parses"
                    );
                }
                return;
            }
        }
        tracing::debug!(code = refusal.code.0, id = %refusal.id, "{}", refusal.message);
        let mut line = refusal.to_bytes();
        line.push(b'\n');
        self.pending = Some(line);
    }
}

impl<R, W> Transport<RoleServer> for WireStdio<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn name() -> Cow<'static, str> {
        "stdio".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let writer = self.writer.clone();
        async move {
            let mut line = serde_json::to_vec(&item)?;
            line.push(b'\n');
            let mut guard = writer.lock().await;
            let Some(out) = guard.as_mut() else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the stdio transport is closed",
                ));
            };
            out.queue(&line);
            out.write_queued().await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            if !self.flush_pending().await {
                return None;
            }
            match self.read_line().await {
                LineRead::Line => {}
                LineRead::Oversized => {
                    tracing::warn!(
                        max = self.max_line,
                        "a line on stdin is longer than the most this server reads; dropped"
                    );
                    self.refuse(Refusal::new(
                        ErrorCode::INVALID_REQUEST,
                        Value::Null,
                        format!(
                            "the message is longer than {} bytes, the most this server reads, \
                             and was dropped; send a shorter one",
                            self.max_line
                        ),
                    ));
                    continue;
                }
                LineRead::Eof => return None,
                LineRead::Failed(e) => {
                    tracing::error!(error = %e, "cannot read stdin");
                    return None;
                }
            }
            let verdict = {
                let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                (!strip_bom(line).is_empty()).then(|| check(line, Scope::stream(self.in_session)))
            };
            self.line.clear();
            match verdict {
                None | Some(Verdict::Ignore) => {}
                Some(Verdict::Pass(message)) => {
                    self.parse_errors = 0;
                    if let ClientJsonRpcMessage::Request(r) = message.as_ref()
                        && matches!(r.request, ClientRequest::InitializeRequest(_))
                    {
                        self.in_session = true;
                    }
                    return Some(*message);
                }
                Some(Verdict::Refuse(refusal)) => self.refuse(refusal),
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        drop(self.writer.lock().await.take());
        Ok(())
    }
}

/// One writer for every line on stdout: whole lines are queued, then
/// written. A write cancelled halfway leaves the rest queued, and the next
/// write finishes it before anything else, so lines never interleave.
struct LineWriter<W> {
    out: W,
    queued: BytesMut,
}

impl<W: AsyncWrite + Unpin> LineWriter<W> {
    fn new(out: W) -> Self {
        LineWriter {
            out,
            queued: BytesMut::new(),
        }
    }

    fn queue(&mut self, line: &[u8]) {
        self.queued.extend_from_slice(line);
    }

    async fn write_queued(&mut self) -> std::io::Result<()> {
        while self.queued.has_remaining() {
            if self.out.write_buf(&mut self.queued).await? == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
        }
        self.out.flush().await
    }
}

// -------------------------------------------------------------------------
// HTTP

/// The check in front of rmcp's Streamable HTTP server: a `POST /mcp`
/// whose body is not JSON, not a JSON-RPC message, or a request whose
/// params do not fit the schema is answered here; any other request goes
/// on with its body as it came.
///
/// rmcp's order is kept: a request that does not accept both JSON and an
/// event stream goes on to rmcp's 406 untouched; then the media type
/// (a 415, here with a JSON-RPC body); then the body.
pub(crate) async fn streamable_http(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let ours = request.method() == Method::POST && (path == "/mcp" || path.starts_with("/mcp/"));
    if !ours || !accepts_json_and_event_stream(request.headers()) {
        return next.run(request).await;
    }
    if let Some(refused) = media_type_refusal(request.headers()) {
        return refused;
    }
    let (mut parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return body_refusal(&e),
    };
    let skip = body.len() - strip_bom(&body).len();
    let body = if skip > 0 {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len() - skip));
        body.slice(skip..)
    } else {
        body
    };
    let scope = Scope {
        in_session: parts.headers.contains_key("mcp-session-id"),
        headers: Some(&parts.headers),
    };
    match check(&body, scope) {
        Verdict::Pass(_) => next.run(Request::from_parts(parts, Body::from(body))).await,
        Verdict::Ignore => StatusCode::ACCEPTED.into_response(),
        Verdict::Refuse(refusal) => {
            tracing::debug!(code = refusal.code.0, id = %refusal.id, "{}", refusal.message);
            refusal.into_http()
        }
    }
}

/// Whether `Accept` lists both `application/json` and `text/event-stream`
/// (neither with weight 0), as rmcp requires before it reads a body.
fn accepts_json_and_event_stream(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q") && is_zero_weight(v.trim())
                })
            });
            if refused {
                continue;
            }
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

/// `0`, `0.0` ... `0.000`: a weight that refuses a media range (RFC 9110
/// §12.4.2). A malformed weight refuses nothing, as in rmcp.
fn is_zero_weight(weight: &str) -> bool {
    let (whole, fraction) = weight.split_once('.').unwrap_or((weight, ""));
    whole == "0" && fraction.len() <= 3 && fraction.bytes().all(|b| b == b'0')
}

/// A 415 with a JSON-RPC body when the body is not sent as JSON.
fn media_type_refusal(headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = given.as_deref().is_some_and(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/json")
    });
    if is_json {
        return None;
    }
    let came = match &given {
        Some(v) => format!("this one came as {v}"),
        None => "this one came without a Content-Type".into(),
    };
    Some(
        Refusal::new(
            TRANSPORT_ERROR,
            Value::Null,
            format!("send the JSON-RPC message with Content-Type: application/json; {came}"),
        )
        .into_http_with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
    )
}

/// The answer to a body that could not be read whole.
fn body_refusal(error: &axum::Error) -> Response {
    let too_large = std::error::Error::source(error)
        .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
    if too_large {
        return Refusal::new(
            TRANSPORT_ERROR,
            Value::Null,
            format!(
                "the body is larger than {MAX_BODY} bytes, the most this server reads; send a \
                 smaller message"
            ),
        )
        .into_http_with_status(StatusCode::PAYLOAD_TOO_LARGE);
    }
    Refusal::new(
        TRANSPORT_ERROR,
        Value::Null,
        format!("the body could not be read ({error}); send it again"),
    )
    .into_http_with_status(StatusCode::BAD_REQUEST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// The code and id a message is refused with.
    fn refused(text: &str, in_session: bool) -> (i32, Value) {
        match check(text.as_bytes(), Scope::stream(in_session)) {
            Verdict::Refuse(r) => (r.code.0, r.id),
            other => panic!("{text}: not refused but {other:?}"),
        }
    }

    fn passes(text: &str, in_session: bool) -> bool {
        matches!(
            check(text.as_bytes(), Scope::stream(in_session)),
            Verdict::Pass(_)
        )
    }

    const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

    #[test]
    fn what_is_not_json_is_a_parse_error_with_a_null_id() {
        for text in ["not json", "{", r#"{"id":1,"#, r#"{"a":1} x"#, "\u{1}"] {
            assert_eq!(refused(text, true), (-32700, Value::Null), "{text}");
        }
    }

    #[test]
    fn an_invalid_request_keeps_its_id_when_it_can_be_read() {
        let cases: &[(&str, Value)] = &[
            (r#"{"jsonrpc":"1.0","id":11,"method":"ping"}"#, json!(11)),
            (r#"{"id":"a","method":"ping"}"#, json!("a")),
            (r#"{"jsonrpc":"2.0","id":10}"#, json!(10)),
            (r#"{"jsonrpc":"2.0","id":3,"method":7}"#, json!(3)),
            (
                r#"{"jsonrpc":"2.0","id":"s","method":"tools/call","params":"x"}"#,
                json!("s"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":4,"result":{},"error":{"code":1,"message":"m"}}"#,
                json!(4),
            ),
            (
                r#"{"jsonrpc":"2.0","method":"tools/call","id":{"x":1}}"#,
                Value::Null,
            ),
            (
                r#"{"jsonrpc":"2.0","method":"ping","id":null}"#,
                Value::Null,
            ),
            (r#"{"jsonrpc":"2.0","method":"ping","id":1.5}"#, Value::Null),
            (
                r#"{"jsonrpc":"2.0","method":"ping","id":18446744073709551615}"#,
                Value::Null,
            ),
            (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, Value::Null),
            ("[]", Value::Null),
            ("5", Value::Null),
            (r#""text""#, Value::Null),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":"x"}"#,
                Value::Null,
            ),
        ];
        for (text, id) in cases {
            assert_eq!(refused(text, true), (-32600, id.clone()), "{text}");
        }
    }

    #[test]
    fn malformed_params_of_a_served_method_are_invalid_params() {
        for text in [
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":5}}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"t","arguments":[]}}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"t","arguments":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":[]}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}"#,
        ] {
            assert_eq!(refused(text, true), (-32602, json!(7)), "{text}");
        }
    }

    #[test]
    fn the_sentence_says_what_was_wrong() {
        let message = |text: &str| match check(text.as_bytes(), Scope::stream(true)) {
            Verdict::Refuse(r) => r.message,
            other => panic!("{other:?}"),
        };
        assert!(
            message(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#)
                .starts_with("tools/call needs params")
        );
        assert!(
            message(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"t","arguments":[]}}"#)
                .contains("must be an object with one member per argument (an empty object when there are none), not an array")
        );
        assert!(
            message(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{}}}"#)
                .contains("need the tool's \"name\"")
        );
        assert_eq!(
            message(r#"{"jsonrpc":"1.0","id":11,"method":"ping"}"#),
            "\"jsonrpc\" must be \"2.0\", not \"1.0\""
        );
        assert!(message("[]").contains("batch"));
        assert!(message("not json").starts_with("the message is not JSON (expected ident"));
        assert!(
            message(r#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}"#)
                .contains("protocolVersion")
        );
    }

    #[test]
    fn outside_a_session_malformed_params_without_meta_are_left_to_rmcp() {
        // rmcp answers those with -32602 about the missing `_meta` (or,
        // on HTTP, asks for a session).
        assert!(passes(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#,
            false
        ));
        // With the 2026-07-28 `_meta`, the params are what is wrong.
        let with_meta = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"t","arguments":[],{META}}}}}"#
        );
        assert_eq!(refused(&with_meta, false), (-32602, json!(7)));
        // `initialize` opens the session: always checked.
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#, false),
            (-32602, json!(1))
        );
        // ...but at 2026-07-28 it is a removed method, rmcp's to answer
        // (-32601; 404 on HTTP), as the conformance suite checks.
        assert!(passes(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
            false
        ));
    }

    #[test]
    fn well_formed_messages_and_unserved_methods_pass() {
        let with_meta = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"t","arguments":{{}},{META}}}}}"#
        );
        for text in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":null}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"nope":1}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":"e1","result":{"action":"accept"}}"#,
            // Not served here: rmcp's -32601 is the right answer.
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"vendor/thing","params":{}}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
            &with_meta,
        ] {
            assert!(passes(text, true), "{text}");
        }
    }

    #[test]
    fn unknown_notifications_that_do_not_parse_are_dropped_as_rmcp_drops_them() {
        for text in [
            r#"{"jsonrpc":"2.0","method":"notifications/vendor","params":"x"}"#,
            r#"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":"x"}"#,
        ] {
            assert!(
                matches!(check(text.as_bytes(), Scope::stream(true)), Verdict::Ignore),
                "{text}"
            );
        }
    }

    #[test]
    fn the_body_limit_is_rmcps() {
        assert_eq!(
            MAX_BODY,
            rmcp::transport::StreamableHttpServerConfig::default().max_request_body_bytes
        );
    }

    #[test]
    fn accept_must_list_json_and_event_stream() {
        let accepts = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            accepts_json_and_event_stream(&h)
        };
        assert!(accepts("application/json, text/event-stream"));
        assert!(accepts("text/event-stream;q=0.5, Application/JSON"));
        assert!(!accepts("application/json"));
        assert!(!accepts("*/*"));
        assert!(!accepts("application/json;q=0, text/event-stream"));
        assert!(!accepts("application/json;q=0.000, text/event-stream"));
        assert!(accepts("application/json;q=0.01, text/event-stream"));
    }

    /// A router with the check in front of a handler that echoes the
    /// body it got, as rmcp would get it.
    fn echo() -> axum::Router {
        axum::Router::new()
            .route(
                "/mcp",
                axum::routing::post(|body: axum::body::Bytes| async move { body }),
            )
            .layer(axum::middleware::from_fn(streamable_http))
    }

    async fn post(content_type: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        post_with(content_type, &[], body).await
    }

    async fn post_with(
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        use tower::ServiceExt;
        let mut request = axum::http::Request::post("/mcp")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::CONTENT_TYPE, content_type);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request.body(Body::from(body)).unwrap();
        let response = echo().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    fn error_of(body: &[u8]) -> (i64, Value) {
        let v: Value = serde_json::from_slice(body).unwrap();
        (v["error"]["code"].as_i64().unwrap(), v["id"].clone())
    }

    #[tokio::test]
    async fn http_passes_a_good_body_through_as_it_came() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#.to_vec();
        let (status, got) = post("application/json; charset=utf-8", body.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got, body);
        // A byte order mark is dropped, as rmcp's stdio transport drops it.
        let mut with_bom = UTF8_BOM.to_vec();
        with_bom.extend_from_slice(&body);
        assert_eq!(post("application/json", with_bom).await.1, body);
    }

    #[tokio::test]
    async fn http_answers_what_the_check_refuses() {
        let (status, got) = post("application/json", b"not json".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&got), (-32700, Value::Null));
        let (status, got) = post(
            "application/json",
            br#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&got), (-32600, json!(3)));
        let (status, _) = post(
            "application/json",
            br#"{"jsonrpc":"2.0","method":"notifications/vendor","params":1}"#.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn http_leaves_a_request_whose_headers_disagree_to_rmcp() {
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"t","arguments":[],{META}}}}}"#
        );
        // Without (or with contradicting) standard headers, rmcp's -32020
        // comes first: the body goes on as it came.
        for headers in [
            &[][..],
            &[
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/call"),
            ][..],
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
            ][..],
        ] {
            let (status, got) =
                post_with("application/json", headers, call.clone().into_bytes()).await;
            assert_eq!(
                (status, got),
                (StatusCode::OK, call.clone().into_bytes()),
                "{headers:?}"
            );
        }
        let headers = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
        ];
        let (status, got) = post_with("application/json", &headers, call.into_bytes()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(error_of(&got), (-32602, json!(7)));
    }

    #[tokio::test]
    async fn http_refuses_another_media_type_and_a_body_too_large() {
        let (status, got) = post("text/plain", b"{}".to_vec()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(error_of(&got), (-32000, Value::Null));
        let (status, got) = post("application/json", vec![b' '; MAX_BODY + 1]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(error_of(&got), (-32000, Value::Null));
    }

    /// A transport over an in-memory pipe: what the test writes is the
    /// peer's stdin; the returned reader is the peer's view of stdout.
    fn piped(
        max_line: usize,
    ) -> (
        WireStdio<tokio::io::DuplexStream, tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
    ) {
        let (stdin, peer_in) = tokio::io::duplex(1 << 16);
        let (stdout, peer_out) = tokio::io::duplex(1 << 16);
        let t = WireStdio::new(stdin, stdout).with_max_line(max_line);
        (t, peer_in, peer_out)
    }

    async fn stdout_lines(mut out: tokio::io::DuplexStream) -> Vec<Value> {
        let mut text = String::new();
        out.read_to_string(&mut text).await.unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("stdout carries JSON only"))
            .collect()
    }

    #[tokio::test]
    async fn refusals_and_rmcps_messages_share_stdout_line_by_line() {
        let (mut t, mut peer_in, peer_out) = piped(MAX_LINE);
        peer_in
            .write_all(b"not json\r\n\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n")
            .await
            .unwrap();
        drop(peer_in);
        let got = t.receive().await.expect("the ping");
        assert!(matches!(got, ClientJsonRpcMessage::Request(_)));
        let reply = rmcp::model::ServerJsonRpcMessage::response(
            rmcp::model::ServerResult::empty(()),
            RequestId::Number(1),
        );
        t.send(reply).await.unwrap();
        assert!(t.receive().await.is_none(), "stdin closed");
        t.close().await.unwrap();
        drop(t);
        let lines = stdout_lines(peer_out).await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["error"]["code"], -32700);
        assert_eq!(lines[0]["id"], Value::Null);
        assert_eq!(lines[1]["id"], 1);
        assert!(lines[1].get("result").is_some());
    }

    #[tokio::test]
    async fn a_run_of_parse_errors_is_answered_only_so_far() {
        let (mut t, mut peer_in, peer_out) = piped(MAX_LINE);
        let mut input = "garbage\n".repeat(QUIET_AFTER as usize + 5);
        input.push_str("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\nagain\n");
        peer_in.write_all(input.as_bytes()).await.unwrap();
        drop(peer_in);
        assert!(t.receive().await.is_some());
        assert!(t.receive().await.is_none());
        drop(t);
        let lines = stdout_lines(peer_out).await;
        // QUIET_AFTER answers, then silence until the ping parsed, then
        // one more.
        assert_eq!(lines.len(), QUIET_AFTER as usize + 1, "{lines:?}");
        assert!(lines.iter().all(|l| l["error"]["code"] == -32700));
    }

    #[tokio::test]
    async fn a_line_longer_than_the_bound_is_dropped_and_answered() {
        let (mut t, mut peer_in, peer_out) = piped(64);
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}\n",
            "x".repeat(200)
        );
        peer_in.write_all(long.as_bytes()).await.unwrap();
        peer_in
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n")
            .await
            .unwrap();
        drop(peer_in);
        let Some(ClientJsonRpcMessage::Request(r)) = t.receive().await else {
            panic!("the short ping");
        };
        assert_eq!(r.id, RequestId::Number(2));
        assert!(t.receive().await.is_none());
        drop(t);
        let lines = stdout_lines(peer_out).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["error"]["code"], -32600);
        assert_eq!(lines[0]["id"], Value::Null);
    }

    #[tokio::test]
    async fn malformed_params_are_checked_once_initialize_has_passed() {
        let (mut t, mut peer_in, peer_out) = piped(MAX_LINE);
        let call = b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\"}\n";
        // Before initialize, left to rmcp (which asks for `_meta`).
        peer_in.write_all(call).await.unwrap();
        peer_in
            .write_all(
                br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            )
            .await
            .unwrap();
        peer_in.write_all(b"\n").await.unwrap();
        peer_in.write_all(call).await.unwrap();
        drop(peer_in);
        assert!(t.receive().await.is_some(), "the first call passes");
        assert!(t.receive().await.is_some(), "initialize passes");
        assert!(t.receive().await.is_none(), "the second call is refused");
        drop(t);
        let lines = stdout_lines(peer_out).await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["error"]["code"], -32602);
        assert_eq!(lines[0]["id"], 7);
    }
}

//! The legacy HTTP+SSE transport (MCP 2024-11-05), for clients that still
//! use it; rmcp no longer ships a server for it, so it is built here on
//! rmcp's [`Transport`] trait.
//!
//! `GET /sse` opens an event stream whose first event, `endpoint`, names
//! where to post: `/message?sessionId=<id>`. Each JSON-RPC message the
//! client posts there is answered `202 Accepted` and handed to the
//! session; everything the server sends (responses, notifications,
//! requests such as an approval prompt) comes back as a `message` event on
//! the stream. Closing the stream ends the session.
//!
//! A posted message goes through the same check as on the other
//! transports ([`super::wire`]): one the check refuses is answered with
//! its JSON-RPC error on the stream when its id can be read (so that the
//! client's pending request gets it, as any answer), else in a `400` to
//! the post itself.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use rmcp::RoleServer;
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::agents::Caller;
use super::wire::{self, Verdict};
use super::{McpServer, Transport as HandlerTransport};

/// Messages queued per direction before the sender waits.
const QUEUE: usize = 64;
/// A comment on an idle stream this often keeps proxies from closing it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The open SSE sessions: id to the session's queues.
#[derive(Default)]
pub(crate) struct SseSessions {
    map: Mutex<HashMap<String, Queues>>,
}

/// One session's queues: the inbound one to the rmcp service, and the
/// outbound one to the event stream, for an answer the check gives itself
/// (weak, so that the stream still ends when the service's sender goes).
#[derive(Clone)]
struct Queues {
    /// Whose session it is: a message for it must come from the same
    /// caller (the same agent's token).
    caller: Caller,
    inbound: mpsc::Sender<ClientJsonRpcMessage>,
    outbound: mpsc::WeakSender<ServerJsonRpcMessage>,
}

impl SseSessions {
    /// Sessions open now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queues>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the SSE routes need.
#[derive(Clone)]
pub(crate) struct SseState {
    pub server: McpServer,
    pub sessions: Arc<SseSessions>,
    pub shutdown: CancellationToken,
}

/// One SSE session's side of the rmcp service: messages posted by the
/// client in, messages for the event stream out.
pub(crate) struct SseTransport {
    inbound: mpsc::Receiver<ClientJsonRpcMessage>,
    outbound: mpsc::Sender<ServerJsonRpcMessage>,
}

/// The event stream is gone: nothing more can be sent.
#[derive(Debug, thiserror::Error)]
#[error("the SSE stream is closed")]
pub(crate) struct StreamClosed;

impl Transport<RoleServer> for SseTransport {
    type Error = StreamClosed;

    fn name() -> Cow<'static, str> {
        "SSE".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let outbound = self.outbound.clone();
        async move { outbound.send(item).await.map_err(|_| StreamClosed) }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        self.inbound.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inbound.close();
        Ok(())
    }
}

/// Removes the session when its event stream is dropped (the client
/// disconnected): the inbound queue closes and the rmcp service ends.
struct Unregister {
    sessions: Arc<SseSessions>,
    id: String,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
        tracing::debug!(session = %self.id, "SSE stream closed");
    }
}

/// `GET /sse`: a new session and its event stream.
pub(crate) async fn connect(
    State(state): State<SseState>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Response {
    let id = format!("{:032x}", rand::random::<u128>());
    let (in_tx, in_rx) = mpsc::channel(QUEUE);
    let (out_tx, out_rx) = mpsc::channel::<ServerJsonRpcMessage>(QUEUE);
    state.sessions.lock().insert(
        id.clone(),
        Queues {
            caller,
            inbound: in_tx,
            outbound: out_tx.downgrade(),
        },
    );

    let handler = state.server.handler(HandlerTransport::Sse, Some(caller));
    tracing::info!(session = handler.session_name(), "SSE session opened");
    let transport = SseTransport {
        inbound: in_rx,
        outbound: out_tx,
    };
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        match handler.serve(transport).await {
            Ok(running) => {
                let cancel = running.cancellation_token();
                tokio::select! {
                    _ = running.waiting() => {}
                    () = shutdown.cancelled() => cancel.cancel(),
                }
            }
            Err(e) => tracing::info!(error = %e, "SSE session ended before initialize"),
        }
    });

    let unregister = Unregister {
        sessions: state.sessions.clone(),
        id: id.clone(),
    };
    let endpoint = stream::once(async move {
        Ok::<_, Infallible>(
            Event::default()
                .event("endpoint")
                .data(format!("/message?sessionId={id}")),
        )
    });
    let messages = stream::unfold((out_rx, unregister), |(mut rx, unregister)| async move {
        let message = rx.recv().await?;
        let event = match serde_json::to_string(&message) {
            Ok(json) => Event::default().event("message").data(json),
            Err(e) => {
                tracing::warn!(error = %e, "cannot serialize an MCP message");
                Event::default().comment("unserializable message dropped")
            }
        };
        Some((Ok(event), (rx, unregister)))
    });
    let shutdown = state.shutdown;
    let events = endpoint
        .chain(messages)
        .take_until(async move { shutdown.cancelled().await });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// `POST /message`'s query.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageQuery {
    #[serde(rename = "sessionId")]
    session_id: String,
}

/// `POST /message?sessionId=…`: one JSON-RPC message for a session.
pub(crate) async fn post(
    State(state): State<SseState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(q): Query<MessageQuery>,
    body: Bytes,
) -> Response {
    let found = state
        .sessions
        .lock()
        .get(&q.session_id)
        .filter(|queues| queues.caller == caller)
        .cloned();
    let Some(queues) = found else {
        return (
            StatusCode::NOT_FOUND,
            "no such session: open an event stream with GET /sse first",
        )
            .into_response();
    };
    let gone = || (StatusCode::GONE, "the session has ended").into_response();
    let message = match wire::check(&body, wire::Scope::stream(true)) {
        Verdict::Pass(m) => *m,
        Verdict::Ignore => return StatusCode::ACCEPTED.into_response(),
        Verdict::Refuse(refusal) => {
            tracing::debug!(code = refusal.code.0, id = %refusal.id, "{}", refusal.message);
            let Some(answer) = refusal.to_message() else {
                return refusal.into_http_with_status(StatusCode::BAD_REQUEST);
            };
            let Some(outbound) = queues.outbound.upgrade() else {
                return gone();
            };
            return match outbound.send(answer).await {
                Ok(()) => StatusCode::ACCEPTED.into_response(),
                Err(_) => gone(),
            };
        }
    };
    match queues.inbound.send(message).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(_) => gone(),
    }
}

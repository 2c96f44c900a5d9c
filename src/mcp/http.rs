//! MCP over HTTP: Streamable HTTP at `/mcp` (rmcp's server), the legacy
//! HTTP+SSE transport at `/sse` and `/message`, and the guard in front of
//! both.
//!
//! The guard checks, in order:
//!
//! 1. `Host` (DNS-rebinding protection): on a loopback address only
//!    `localhost`, `127.0.0.1` and `[::1]` are accepted, plus the names
//!    given with `--allowed-host`; on another address, the names given
//!    (any, when none is given: the bearer token then stands guard).
//! 2. `Origin`, when a browser sends one: loopback origins and the ones
//!    given with `--allowed-origin`.
//! 3. The bearer token (`Authorization: Bearer …`), compared in constant
//!    time, when one is configured. One is required to listen on an
//!    address that is not loopback.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::agents::{self, Agent, Caller};
use super::sse::{self, SseSessions, SseState};
use super::{McpServer, ServeError, Transport};

/// The HTTP transports' settings.
#[derive(Clone, Default)]
pub struct HttpOptions {
    /// The bearer token clients must present; required on a non-loopback
    /// address.
    pub auth_token: Option<String>,
    /// Host names (or `host:port`) accepted besides the loopback names.
    pub allowed_hosts: Vec<String>,
    /// Browser origins (`scheme://host[:port]`) accepted besides loopback
    /// ones.
    pub allowed_origins: Vec<String>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<set>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

impl HttpOptions {
    /// Checks these options for a listener on `bind`: a token is required
    /// on a non-loopback address, and the origins must parse.
    pub fn validate(&self, bind: SocketAddr) -> Result<(), HttpError> {
        Guard::new(bind, self, &[]).map(drop)
    }

    /// [`validate`](Self::validate) for `server`, whose agents' tokens
    /// count as tokens.
    pub fn validate_for(&self, server: &McpServer, bind: SocketAddr) -> Result<(), HttpError> {
        Guard::new(bind, self, server.agents()).map(drop)
    }
}

/// Why the HTTP transports cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A non-loopback address without a token would let anyone who can
    /// reach it spend the budget.
    #[error(
        "{0} is not a loopback address: set a bearer token (--auth-token or L402_MCP_AUTH_TOKEN) \
         so that only clients holding it can spend the budget"
    )]
    TokenRequired(SocketAddr),
    /// An empty token would match an empty header.
    #[error("the bearer token is empty")]
    EmptyToken,
    /// An `--allowed-origin` that is not an origin.
    #[error("{0:?} is not an origin; write it as scheme://host[:port]")]
    BadOrigin(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })
}

/// The router serving `server` at `/mcp`, `/sse` and `/message` behind the
/// guard, for a listener on `bind`, with at most [`DEFAULT_MAX_SESSIONS`]
/// sessions. Sessions end when `shutdown` is cancelled.
pub fn router(
    server: &McpServer,
    bind: SocketAddr,
    options: &HttpOptions,
    shutdown: CancellationToken,
) -> Result<Router, HttpError> {
    router_limited(server, bind, options, shutdown, DEFAULT_MAX_SESSIONS)
}

/// [`router`] with at most `max_sessions` MCP sessions (Streamable HTTP
/// and SSE together) open at once.
pub fn router_limited(
    server: &McpServer,
    bind: SocketAddr,
    options: &HttpOptions,
    shutdown: CancellationToken,
    max_sessions: usize,
) -> Result<Router, HttpError> {
    let guard = Arc::new(Guard::new(bind, options, server.agents())?);

    // Host and Origin are the guard's job, for all three routes alike.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_cancellation_token(shutdown.child_token());
    let factory = server.clone();
    let cap = SessionCap::new(max_sessions);
    let streamable = StreamableHttpService::new(
        move || Ok(factory.handler(Transport::Http, None)),
        Arc::new(cap.session_manager()),
        config,
    );
    let sse_state = SseState {
        server: server.clone(),
        sessions: Arc::new(SseSessions::default()),
        shutdown,
    };
    let cap = cap.with_sse(sse_state.sessions.clone());
    Ok(Router::new()
        .route("/sse", get(sse::connect))
        .route("/message", post(sse::post))
        .with_state(sse_state)
        .nest_service("/mcp", streamable)
        .layer(middleware::from_fn(super::wire::streamable_http))
        .layer(middleware::from_fn_with_state(Arc::new(cap), cap_sessions))
        .layer(middleware::from_fn_with_state(guard, check)))
}

impl McpServer {
    /// Serves MCP over HTTP on `listener` until `shutdown` resolves, within
    /// the default [`HttpLimits`].
    pub async fn serve_http(
        &self,
        listener: TcpListener,
        options: &HttpOptions,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.serve_http_limited(listener, options, HttpLimits::default(), shutdown)
            .await
    }

    /// [`serve_http`](Self::serve_http) within `limits`.
    pub async fn serve_http_limited(
        &self,
        listener: TcpListener,
        options: &HttpOptions,
        limits: HttpLimits,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = listener.local_addr().map_err(HttpError::Serve)?;
        let stop = CancellationToken::new();
        let app = router_limited(self, addr, options, stop.clone(), limits.max_sessions)?;
        let stopping = stop.clone();
        crate::listen::serve(listener, app, limits.connections, async move {
            shutdown.await;
            stopping.cancel();
        })
        .await
        .map_err(HttpError::Serve)?;
        Ok(())
    }
}

// -------------------------------------------------------------------------
// the guard

struct Guard {
    token: Option<String>,
    /// The agents' tokens; when there are any, every request needs one
    /// of them or the operator's.
    agents: Vec<Agent>,
    host_origin: HostOriginCheck,
}

/// Steps 1 and 2 of the guard, `Host` and `Origin`: shared with the
/// dashboard (`crate::dashboard`), which adds its own authentication.
#[derive(Debug, Clone)]
pub(crate) struct HostOriginCheck {
    loopback_bind: bool,
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl HostOriginCheck {
    /// The checks for a listener on `bind`, with the operator's extra
    /// hosts and origins (`--allowed-host`, `--allowed-origin`).
    pub(crate) fn new(
        bind: SocketAddr,
        allowed_hosts: &[String],
        allowed_origins: &[String],
    ) -> Result<Self, HttpError> {
        let origins = allowed_origins
            .iter()
            .map(|o| normalize_origin(o).ok_or_else(|| HttpError::BadOrigin(o.clone())))
            .collect::<Result<_, _>>()?;
        Ok(HostOriginCheck {
            loopback_bind: bind.ip().is_loopback(),
            hosts: allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            origins,
        })
    }

    /// Whether `origin` (a browser's `Origin` value) is one the operator
    /// allowed with `--allowed-origin`.
    pub(crate) fn origin_allowed(&self, origin: &str) -> bool {
        normalize_origin(origin).is_some_and(|o| self.origins.contains(&o))
    }

    /// `Host`, then `Origin` when there is one: a status and a sentence
    /// when refused.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        // 1. Host.
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|h| h.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let name = host_name(&host);
        let host_ok = self.hosts.iter().any(|h| *h == host || *h == name)
            || is_loopback_name(name)
            || (!self.loopback_bind && self.hosts.is_empty());
        if !host_ok {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not allowed (DNS-rebinding protection); the operator can \
                     allow it with --allowed-host"
                ),
            ));
        }
        // 2. Origin.
        if let Some(origin) = headers.get(header::ORIGIN) {
            let text = origin.to_str().unwrap_or_default();
            let ok = normalize_origin(text).is_some_and(|o| {
                self.origins.contains(&o)
                    || url::Url::parse(&o)
                        .ok()
                        .and_then(|u| {
                            u.host_str()
                                .map(|h| is_loopback_name(h.trim_matches(['[', ']'])))
                        })
                        .unwrap_or(false)
            }) || (text == "null" && self.origins.iter().any(|o| o == "null"));
            if !ok {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "Origin {text:?} is not allowed; the operator can allow it with \
                         --allowed-origin"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Guard {
    fn new(bind: SocketAddr, options: &HttpOptions, agents: &[Agent]) -> Result<Self, HttpError> {
        let loopback_bind = bind.ip().is_loopback();
        match options.auth_token.as_deref() {
            Some("") => return Err(HttpError::EmptyToken),
            None if !loopback_bind && agents.is_empty() => {
                return Err(HttpError::TokenRequired(bind));
            }
            _ => {}
        }
        Ok(Guard {
            token: options.auth_token.clone(),
            agents: agents.to_vec(),
            host_origin: HostOriginCheck::new(
                bind,
                &options.allowed_hosts,
                &options.allowed_origins,
            )?,
        })
    }

    fn check(&self, headers: &HeaderMap) -> Result<Caller, Refused> {
        // 1. Host, 2. Origin.
        self.host_origin
            .check(headers)
            .map_err(|(status, sentence)| refuse(status, sentence))?;
        // 3. The bearer token: the operator's, or an agent's.
        if self.token.is_none() && self.agents.is_empty() {
            return Ok(Caller::Server);
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .unwrap_or_default();
        agents::identify(given, self.token.as_deref(), &self.agents).ok_or_else(|| {
            refuse(
                StatusCode::UNAUTHORIZED,
                "a bearer token is required: send Authorization: Bearer <token>".to_string(),
            )
        })
    }
}

/// Paths an MCP client probes for OAuth (discovery and dynamic client
/// registration) when a server answers 401. This server uses no OAuth:
/// they are a 404 with a sentence, before the bearer token is asked for,
/// so that the client says "bearer token required" instead of reporting a
/// failed OAuth registration.
fn is_oauth_probe(path: &str) -> bool {
    path.starts_with("/.well-known/oauth-")
        || path.starts_with("/.well-known/openid-configuration")
        || path == "/register"
        || path == "/authorize"
        || path == "/token"
}

async fn check(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    if is_oauth_probe(request.uri().path()) {
        return refuse(
            StatusCode::NOT_FOUND,
            "this MCP server uses no OAuth: send the bearer token its operator gave you as \
             Authorization: Bearer <token> (or connect over loopback, where none is needed \
             unless the operator set one)"
                .to_string(),
        )
        .into_response();
    }
    match guard.check(request.headers()) {
        Ok(caller) => {
            // Whose budget pays: the handlers read it from the request.
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refused) => {
            tracing::info!(
                path = %request.uri().path(),
                status = refused.status.as_u16(),
                "HTTP request refused by the guard"
            );
            refused.into_response()
        }
    }
}

/// A request the guard turns away: a status and a sentence.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    sentence: String,
}

fn refuse(status: StatusCode, sentence: String) -> Refused {
    Refused { status, sentence }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.sentence })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"l402-mcp\""),
            );
        }
        r
    }
}

/// The host part of a `Host` value: `[::1]:80` -> `::1`, `a.b:80` -> `a.b`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://host[:port]`, lower-case, default port dropped; `None` when
/// it is not an http(s) origin.
fn normalize_origin(text: &str) -> Option<String> {
    if text.trim() == "null" {
        return Some("null".into());
    }
    let url = url::Url::parse(text.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

// -------------------------------------------------------------------------
// limits: connections (crate::listen) and the number of open sessions

/// MCP sessions (Streamable HTTP and SSE together) open at once: each has
/// its own budget and holds a task and queues, so their number is bounded;
/// a handful of agents on one machine is far below it.
pub const DEFAULT_MAX_SESSIONS: usize = 64;

/// The bounds of the HTTP transports.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Header-read timeout and connection cap ([`crate::listen`]).
    pub connections: crate::listen::ConnectionLimits,
    /// MCP sessions open at once; a new one past it gets 503.
    pub max_sessions: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connections: crate::listen::ConnectionLimits::default(),
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

/// Counts open sessions: Streamable HTTP ones through [`CountedSessions`]
/// (rmcp's manager keeps a session that timed out in its map, so its map
/// is not a count), SSE ones in their registry.
struct SessionCap {
    max: usize,
    http: Arc<std::sync::atomic::AtomicUsize>,
    sse: Option<Arc<SseSessions>>,
    /// Held while a request that may open a session runs to its response
    /// head, so that two at once cannot both pass a cap with one free slot.
    opening: tokio::sync::Mutex<()>,
}

impl SessionCap {
    fn new(max: usize) -> Self {
        SessionCap {
            max: max.max(1),
            http: Arc::default(),
            sse: None,
            opening: tokio::sync::Mutex::new(()),
        }
    }

    fn session_manager(&self) -> CountedSessions {
        CountedSessions {
            inner: LocalSessionManager::default(),
            live: self.http.clone(),
        }
    }

    fn with_sse(mut self, sessions: Arc<SseSessions>) -> Self {
        self.sse = Some(sessions);
        self
    }

    fn open(&self) -> usize {
        self.http.load(std::sync::atomic::Ordering::SeqCst)
            + self.sse.as_ref().map_or(0, |s| s.len())
    }
}

/// Refuses a request that would open a session (`POST /mcp` without
/// `Mcp-Session-Id`, `GET /sse`) when the cap is reached; requests of open
/// sessions always pass.
async fn cap_sessions(
    State(cap): State<Arc<SessionCap>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let opens = (request.method() == axum::http::Method::POST
        && path.starts_with("/mcp")
        && !request.headers().contains_key("mcp-session-id"))
        || (request.method() == axum::http::Method::GET && path == "/sse");
    if !opens {
        return next.run(request).await;
    }
    let _opening = cap.opening.lock().await;
    let open = cap.open();
    if open >= cap.max {
        tracing::warn!(
            open,
            max = cap.max,
            "new MCP session refused: too many open"
        );
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{open} MCP sessions are open, the most this server allows; close one (or \
                 wait for an idle one to time out) and retry"
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// rmcp's local session manager, counting the sessions whose transport is
/// alive (a session's transport is dropped when it ends, however it ends).
struct CountedSessions {
    inner: LocalSessionManager,
    live: Arc<std::sync::atomic::AtomicUsize>,
}

/// A session transport that keeps its session counted while it lives.
struct Counted<T> {
    inner: T,
    live: Arc<std::sync::atomic::AtomicUsize>,
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        self.live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl<T: rmcp::transport::Transport<rmcp::RoleServer>> rmcp::transport::Transport<rmcp::RoleServer>
    for Counted<T>
{
    type Error = T::Error;

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<rmcp::RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    fn receive(
        &mut self,
    ) -> impl Future<Output = Option<rmcp::service::RxJsonRpcMessage<rmcp::RoleServer>>> + Send
    {
        self.inner.receive()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

mod counted_sessions {
    //! The delegation of every [`SessionManager`] method to the inner one.
    use super::*;
    use futures_util::Stream;
    use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
    use rmcp::transport::streamable_http_server::session::{
        EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
    };

    type Inner = LocalSessionManager;
    type Error = <Inner as SessionManager>::Error;

    impl SessionManager for CountedSessions {
        type Error = Error;
        type Transport = Counted<<Inner as SessionManager>::Transport>;

        async fn create_session(&self) -> Result<(SessionId, Self::Transport), Error> {
            let (id, inner) = self.inner.create_session().await?;
            self.live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let live = self.live.clone();
            Ok((id, Counted { inner, live }))
        }

        async fn initialize_session(
            &self,
            id: &SessionId,
            message: ClientJsonRpcMessage,
        ) -> Result<ServerJsonRpcMessage, Error> {
            self.inner.initialize_session(id, message).await
        }

        async fn has_session(&self, id: &SessionId) -> Result<bool, Error> {
            self.inner.has_session(id).await
        }

        async fn close_session(&self, id: &SessionId) -> Result<(), Error> {
            self.inner.close_session(id).await
        }

        async fn create_stream(
            &self,
            id: &SessionId,
            message: ClientJsonRpcMessage,
        ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Error> {
            self.inner.create_stream(id, message).await
        }

        async fn accept_message(
            &self,
            id: &SessionId,
            message: ClientJsonRpcMessage,
        ) -> Result<(), Error> {
            self.inner.accept_message(id, message).await
        }

        async fn create_standalone_stream(
            &self,
            id: &SessionId,
        ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Error> {
            self.inner.create_standalone_stream(id).await
        }

        async fn resume(
            &self,
            id: &SessionId,
            last_event_id: String,
        ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Error> {
            self.inner.resume(id, last_event_id).await
        }

        async fn restore_session(
            &self,
            id: SessionId,
        ) -> Result<RestoreOutcome<Self::Transport>, Error> {
            Ok(match self.inner.restore_session(id).await? {
                RestoreOutcome::Restored(inner) => {
                    self.live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let live = self.live.clone();
                    RestoreOutcome::Restored(Counted { inner, live })
                }
                RestoreOutcome::AlreadyPresent => RestoreOutcome::AlreadyPresent,
                // NotSupported, and whatever a later rmcp adds: nothing to
                // count.
                _ => RestoreOutcome::NotSupported,
            })
        }

        fn event_store(&self) -> Option<Arc<dyn EventStore>> {
            self.inner.event_store()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn loopback(options: HttpOptions) -> Guard {
        Guard::new("127.0.0.1:8403".parse().unwrap(), &options, &[]).unwrap()
    }

    #[test]
    fn a_public_address_needs_a_token() {
        let addr: SocketAddr = "0.0.0.0:8403".parse().unwrap();
        assert!(matches!(
            Guard::new(addr, &HttpOptions::default(), &[]),
            Err(HttpError::TokenRequired(_))
        ));
        let with = HttpOptions {
            auth_token: Some("t".into()),
            ..HttpOptions::default()
        };
        assert!(Guard::new(addr, &with, &[]).is_ok());
    }

    #[test]
    fn loopback_hosts_pass_and_rebound_names_do_not() {
        let g = loopback(HttpOptions::default());
        for host in [
            "127.0.0.1:8403",
            "localhost:8403",
            "[::1]:8403",
            "localhost",
        ] {
            assert!(g.check(&headers(&[("host", host)])).is_ok(), "{host}");
        }
        let refused = g
            .check(&headers(&[("host", "evil.example:8403")]))
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(g.check(&HeaderMap::new()).is_err());
    }

    #[test]
    fn origins_must_be_loopback_or_allowed() {
        let g = loopback(HttpOptions {
            allowed_origins: vec!["https://app.example".into()],
            ..HttpOptions::default()
        });
        let ok = |o: &str| {
            g.check(&headers(&[("host", "127.0.0.1:8403"), ("origin", o)]))
                .is_ok()
        };
        assert!(ok("http://localhost:6274"));
        assert!(ok("http://127.0.0.1:3000"));
        assert!(ok("https://app.example"));
        assert!(ok("https://app.example:443"));
        assert!(!ok("https://evil.example"));
        assert!(!ok("null"));
    }

    #[test]
    fn the_token_is_required_when_set() {
        let g = loopback(HttpOptions {
            auth_token: Some("s3cret".into()),
            ..HttpOptions::default()
        });
        let host = ("host", "127.0.0.1:8403");
        let refused = g.check(&headers(&[host])).unwrap_err();
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        let response = refused.into_response();
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        assert!(
            g.check(&headers(&[host, ("authorization", "Bearer wrong")]))
                .is_err()
        );
        assert!(
            g.check(&headers(&[host, ("authorization", "Bearer s3cret")]))
                .is_ok()
        );
        assert!(
            g.check(&headers(&[host, ("authorization", "bearer s3cret")]))
                .is_ok()
        );
    }
}

//! Proxy mode: forward a paid request to the route's upstream, as aperture
//! does, streaming both bodies. The client's `Authorization` header (its
//! L402 credential) never goes upstream, nor do hop-by-hop headers.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::uri::Authority;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::Gateway;
use super::answer::json_error;

/// The clients that reach upstreams. Plain `http://` upstreams (the usual
/// case: the API beside the gateway) go over hyper's HTTP/1 connections
/// directly, kept per thread ([`PLAIN`]) with the request's own body type:
/// no pool lock, no checkout, and each upstream parsed once, when the
/// gateway starts ([`PlainUpstream`]); this measured 16.1 µs per proxied
/// request against 18.8 for hyper-util's pooled client
/// (docs/PERFORMANCE.md). `https://` ones through reqwest with rustls.
#[derive(Debug)]
pub(super) struct Upstreams {
    tls: reqwest::Client,
    /// The routes' `http://` upstreams, by the base URL as configured.
    plain: HashMap<String, PlainUpstream>,
}

/// An `http://` upstream base, parsed once: what each request to it needs
/// (where to connect, the `Host` it is sent with, the path it goes under)
/// without a URL parse or an allocation of its own.
#[derive(Debug)]
struct PlainUpstream {
    /// Unique in the process: where this thread's idle connections to it
    /// are kept ([`PLAIN`]), without hashing the authority per request.
    id: usize,
    authority: Authority,
    host: HeaderValue,
    /// The base path, without its trailing `/` (empty for the root).
    base_path: String,
}

impl PlainUpstream {
    /// `None` for what is not an `http://` URL with a host that [`Uri`]
    /// reads (reqwest reaches those, as it does `https://`).
    fn parse(base: &str) -> Option<Self> {
        let uri: Uri = base.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let authority = uri.authority()?.clone();
        let host = HeaderValue::from_str(authority.as_str()).ok()?;
        let base_path = uri.path().trim_end_matches('/').to_owned();
        static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
        Some(PlainUpstream {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            authority,
            host,
            base_path,
        })
    }
}

impl Upstreams {
    /// The clients for `bases`, the routes' upstream base URLs.
    pub fn new<'a>(
        timeout: Duration,
        bases: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, reqwest::Error> {
        let tls = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(timeout)
            .build()?;
        let plain = bases
            .into_iter()
            .filter_map(|b| Some((b.to_owned(), PlainUpstream::parse(b)?)))
            .collect();
        Ok(Upstreams { tls, plain })
    }
}

thread_local! {
    /// Idle-or-busy HTTP/1 connections to `http://` upstreams, by
    /// [`PlainUpstream::id`], one set per thread. A gateway worker
    /// ([`crate::listen::serve_on_workers`]) is one thread with its own
    /// runtime: the connections its requests open are driven on it, so a
    /// proxied request is served start to end on one thread, with no wakeup
    /// crossing to another, and no pool lock.
    static PLAIN: std::cell::RefCell<Vec<Vec<Pooled>>> =
        std::cell::RefCell::default();
}

/// A connection in the pool, and when it was last given a request.
struct Pooled {
    conn: SendRequest<Body>,
    used: tokio::time::Instant,
}

/// At most this many connections are kept per upstream and thread.
const MAX_POOLED: usize = 512;

/// A connection unused this long is closed, as hyper's pool did: a load
/// balancer or NAT between here and the upstream may have dropped it
/// without a word, and a request written into it would hang until the
/// request timeout.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A connection to `upstream` ready for a request: an idle one from this
/// thread's pool (closed ones, and those unused since [`IDLE_TIMEOUT`]
/// before `now`, are dropped), else a new one.
async fn ready_connection(
    upstream: &PlainUpstream,
    now: tokio::time::Instant,
) -> Result<SendRequest<Body>, Box<dyn std::error::Error + Send + Sync>> {
    let idle = PLAIN.with(|pool| {
        let mut pool = pool.borrow_mut();
        let conns = pool.get_mut(upstream.id)?;
        conns.retain(|c| !c.conn.is_closed() && now.duration_since(c.used) < IDLE_TIMEOUT);
        let i = conns.iter().position(|c| c.conn.is_ready())?;
        Some(conns.swap_remove(i).conn)
    });
    if let Some(conn) = idle {
        return Ok(conn);
    }
    Box::pin(ready_connection_new(&upstream.authority)).await
}

/// A new connection to `authority`. Its callers box it: the connect and
/// handshake states are large, and a request on a pooled connection (the
/// usual case) should not carry them.
async fn ready_connection_new(
    authority: &Authority,
) -> Result<SendRequest<Body>, Box<dyn std::error::Error + Send + Sync>> {
    // `host()` keeps an IPv6 literal's brackets, as `connect` wants them.
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| "connecting to the upstream timed out")??;
    stream.set_nodelay(true)?;
    let (conn, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = driver.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(conn)
}

/// Puts `conn` back in this thread's pool: it takes its next request once
/// the answer under way on it has been read. `used` is when the request
/// it carries started, not a fresh clock read: earlier than now by at most
/// the request timeout, so a connection is at worst closed that much
/// before [`IDLE_TIMEOUT`], never after.
fn keep_connection(upstream: &PlainUpstream, conn: SendRequest<Body>, used: tokio::time::Instant) {
    PLAIN.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() <= upstream.id {
            pool.resize_with(upstream.id + 1, Vec::new);
        }
        let conns = &mut pool[upstream.id];
        if conns.len() < MAX_POOLED {
            conns.push(Pooled { conn, used });
        }
    });
}

/// A body that fails once its deadline passes: the upstream's answer, body
/// included, is bounded by the request timeout as the head is.
struct Timed<B> {
    inner: B,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> hyper::body::Body for Timed<B>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(
                "the upstream's answer took longer than the request timeout".into(),
            )));
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// plus the credential; `Connection` first ([`strip_hop_by_hop`] reads it).
const DROPPED_LEN: usize = 9;
const DROPPED: [HeaderName; DROPPED_LEN] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::AUTHORIZATION,
];

/// Removes from `headers` what must not cross the proxy: the hop-by-hop
/// headers, whatever the `Connection` header names as hop-by-hop, and the
/// credential. In place: the map received is the map sent on, with no copy
/// of the headers that stay.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names present (a handful) finds which of the
    // dropped ones are there; only those are removed. A removal hashes its
    // name, and most of the ten are absent from most messages.
    let mut present = [false; DROPPED_LEN];
    let mut keep_alive = false;
    for name in headers.keys() {
        match DROPPED.iter().position(|d| d == name) {
            Some(i) => present[i] = true,
            None => keep_alive |= name == "keep-alive",
        }
    }
    // DROPPED[0] is `Connection`: what it names goes too. Read only when
    // there is one: the hot path allocates nothing for it.
    if present[0] {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, present) in DROPPED.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
    if keep_alive {
        headers.remove("keep-alive");
    }
}

/// Joins the upstream base (`http://host:port[/base]`, or its path alone)
/// with the path the route matched (canonical: no dot or empty segments,
/// no encoded dots or slashes, see [`super::paywall::canonical_path`]) and
/// the request's query. The result stays under the base: nothing in `path`
/// can climb out of it. Both upstream paths join with it.
fn under_base(base: &str, path: &str, req: &Request) -> String {
    let base = base.trim_end_matches('/');
    let query = req.uri().query();
    let mut joined =
        String::with_capacity(base.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    joined.push_str(base);
    joined.push_str(path);
    if let Some(q) = query {
        joined.push('?');
        joined.push_str(q);
    }
    joined
}

/// Forwards the request, answer body included, within `deadline` (the
/// request's own: one timer bounds the head and then the body); `started`
/// is when the forwarding began (the caller's clock read, reused). `Ok`: the
/// upstream answered (any status: the answer is delivered); `Err`: it could
/// not be reached, failed or ran out of time before answering, and nothing
/// was delivered.
pub(super) async fn forward(
    gw: &Gateway,
    upstream: &str,
    path: &str,
    req: Request,
    started: std::time::Instant,
    deadline: tokio::time::Instant,
) -> Result<Response, Response> {
    match gw.upstream.plain.get(upstream) {
        Some(plain) => {
            let started = tokio::time::Instant::from_std(started);
            forward_plain(upstream, plain, path, req, started, deadline).await
        }
        // Boxed: a TLS request costs far more than the allocation, and the
        // plain path's future stays the size of its own states.
        None => Box::pin(forward_tls(gw, upstream, path, req, deadline)).await,
    }
}

/// [`forward`] through reqwest (`https://`, and whatever [`PlainUpstream`]
/// does not read).
async fn forward_tls(
    gw: &Gateway,
    upstream: &str,
    path: &str,
    req: Request,
    deadline: tokio::time::Instant,
) -> Result<Response, Response> {
    let url = under_base(upstream, path, &req);
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let stream = body.into_data_stream();
    let request = gw
        .upstream
        .tls
        .request(parts.method, &url)
        .headers(parts.headers)
        .timeout(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .body(reqwest::Body::wrap_stream(stream));

    let upstream_resp = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(upstream = %upstream, error = %e, "upstream request failed");
            return Err(unreachable(e.is_timeout()));
        }
    };

    let status = upstream_resp.status();
    let mut headers = upstream_resp.headers().clone();
    strip_hop_by_hop(&mut headers);
    let body = Body::from_stream(upstream_resp.bytes_stream().map_err(std::io::Error::other));
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// The answer when the upstream could not be reached or did not answer.
fn unreachable(timeout: bool) -> Response {
    if timeout {
        json_error(
            StatusCode::GATEWAY_TIMEOUT,
            "The upstream service did not answer in time.",
        )
    } else {
        json_error(
            StatusCode::BAD_GATEWAY,
            "The upstream service could not be reached.",
        )
    }
}

/// [`forward`] to an `http://` upstream over this thread's connections.
async fn forward_plain(
    upstream: &str,
    plain: &PlainUpstream,
    path: &str,
    req: Request,
    started: tokio::time::Instant,
    deadline: tokio::time::Instant,
) -> Result<Response, Response> {
    // On the connection: the path under the base and the query (origin
    // form), and the upstream's Host.
    let target = under_base(&plain.base_path, path, &req);
    let target = match Uri::try_from(target) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(upstream = %upstream, error = %e, "upstream request target does not parse");
            return Err(unreachable(false));
        }
    };
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert(header::HOST, plain.host.clone());
    parts.uri = target;
    // Whatever the client's version, the upstream is spoken to in HTTP/1.1.
    parts.version = axum::http::Version::HTTP_11;
    parts.extensions = Default::default();
    let out = axum::http::Request::from_parts(parts, body);
    // One timer for the whole answer: the head must come before it fires,
    // and then the body, which carries it on.
    let mut deadline = Box::pin(tokio::time::sleep_until(deadline));
    let sent = async {
        let mut conn = ready_connection(plain, started).await?;
        let answer = conn.try_send_request(out);
        keep_connection(plain, conn, started);
        match answer.await {
            Ok(r) => Ok(r),
            // A pooled connection the upstream closed meanwhile (its idle
            // keep-alive ran out) fails before the request is written:
            // hyper hands the request back, and it goes once more on a
            // connection of its own. Once written, it is never sent again.
            Err(mut e) => match e.take_message() {
                Some(out) => {
                    tracing::debug!(error = %e.error(), "pooled upstream connection closed; retrying on a new one");
                    let mut conn = Box::pin(ready_connection_new(&plain.authority)).await?;
                    let answer = conn.send_request(out);
                    keep_connection(plain, conn, started);
                    Ok(answer.await?)
                }
                None => Err(Box::new(e.into_error()) as Box<dyn std::error::Error + Send + Sync>),
            },
        }
    };
    let answer = tokio::select! {
        biased;
        answer = sent => match answer {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(upstream = %upstream, error = %e, "upstream request failed");
                return Err(unreachable(false));
            }
        },
        () = deadline.as_mut() => {
            tracing::warn!(upstream = %upstream, "upstream request timed out");
            return Err(unreachable(true));
        }
    };
    let (mut parts, incoming) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The answer's version and extensions stay behind: they describe the
    // upstream connection, not the message.
    parts.version = axum::http::Version::default();
    parts.extensions = Default::default();
    Ok(Response::from_parts(
        parts,
        Body::new(Timed {
            inner: incoming,
            deadline,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_upstreams_are_parsed_once_into_where_to_connect_the_host_and_the_base_path() {
        let up = PlainUpstream::parse("http://127.0.0.1:9000/base/").unwrap();
        assert_eq!(up.authority.as_str(), "127.0.0.1:9000");
        assert_eq!(up.host, "127.0.0.1:9000");
        assert_eq!(up.base_path, "/base");
        let root = PlainUpstream::parse("http://[::1]:8080").unwrap();
        assert_eq!(root.authority.host(), "[::1]");
        assert_eq!(root.base_path, "");
        // reqwest reaches these.
        assert!(PlainUpstream::parse("https://api.example/v1").is_none());
        assert!(PlainUpstream::parse("not a url").is_none());
    }

    #[test]
    fn hop_by_hop_headers_and_the_credential_are_stripped_in_place() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Trace-Hop"),
            ("connection", "Upgrade"),
            ("x-trace-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("authorization", "L402 mac:pre"),
            ("host", "gateway.example"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("content-type", "application/json"),
            ("x-custom", "kept"),
            ("x-custom", "twice"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<_> = headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "content-type: application/json",
                "x-custom: kept",
                "x-custom: twice"
            ]
        );
    }
}

//! The accept loop every HTTP listener here runs (the gateway, and
//! `serve --http`), with bounds a client cannot talk its way past.
//!
//! `axum::serve` waits forever for a request's headers and keeps any
//! number of connections: one client trickling a header byte every few
//! seconds, or opening a few hundred idle connections, holds the server's
//! sockets and memory. Here each connection is HTTP/1.1 through hyper with
//!
//! - a header-read timeout: a request's headers must be in within
//!   [`ConnectionLimits::header_read_timeout`], counted from when the
//!   connection opens and again from when the previous answer was sent, so
//!   the same bound closes idle keep-alive connections;
//! - a cap on open connections ([`ConnectionLimits::max_connections`]):
//!   one past it is answered `503` with a JSON sentence and closed at once;
//! - graceful shutdown: when `shutdown` resolves, the listener closes, idle
//!   connections are closed, and the answers under way are finished.
//!
//! Every request carries `ConnectInfo<SocketAddr>` (the
//! gateway's rate limiter keys on it).

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A request's headers must arrive within this many seconds of the
/// connection opening (or of the previous answer): ample for any real
/// client on any network, short enough that a trickling one lets go.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Open connections at most: far more than an agent's burst, few enough
/// that the process stays within a default `ulimit -n` of 1024 with room
/// for upstream connections, the store and logs.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// What one connection, and all of them together, may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time allowed for a request's headers, from the connection's start
    /// or the previous answer (so also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// What a connection past the cap gets before it is closed.
fn over_capacity() -> Vec<u8> {
    let body = r#"{"error": "The server has too many open connections; retry in a moment."}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         connection: close\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then finishes the answers under way. The connections are driven by the
/// runtime this is awaited on.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    accept_loop(listener, app, limits, permits, shutdown).await
}

/// [`serve`] on `workers` threads of their own, each with a single-threaded
/// runtime accepting from the same socket and driving the connections it
/// accepted, start to end (and whatever those spawn, such as a proxy's
/// upstream connections). A request then never waits for another thread
/// to be woken: on a busy 2-core machine a proxied request costs about a
/// quarter less CPU than on one work-stealing runtime (docs/PERFORMANCE.md).
/// The connection cap is shared by all workers. Dropping the returned
/// future stops the workers too, as `shutdown` would.
pub async fn serve_on_workers(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    workers: NonZeroUsize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let socket = listener.into_std()?;
    let stop = CancellationToken::new();
    // Stops the workers however this future ends, dropped included.
    let _stop_on_drop = stop.clone().drop_guard();
    let mut ended = Vec::with_capacity(workers.get());
    for i in 0..workers.get() {
        let socket = socket.try_clone()?;
        let (app, permits, stop) = (app.clone(), permits.clone(), stop.clone());
        let (done, end) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("http-worker-{i}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            tokio::spawn(keep_a_timer_due());
                            let listener = TcpListener::from_std(socket)?;
                            accept_loop(listener, app, limits, permits, stop.cancelled_owned())
                                .await
                        })
                    });
                let _ = done.send(result);
            })?;
        ended.push(end);
    }
    drop(socket);

    let mut shutdown = std::pin::pin!(shutdown);
    // A worker that ends before the shutdown could not run (its runtime or
    // its socket failed): stop the others and say why.
    let early = tokio::select! {
        () = &mut shutdown => None,
        (result, i, _) = futures_util::future::select_all(ended.iter_mut()) => Some((i, result)),
    };
    stop.cancel();
    let mut result = match &early {
        Some((_, Ok(Err(e)))) => Err(std::io::Error::new(e.kind(), e.to_string())),
        Some((_, Err(_))) => Err(std::io::Error::other("an HTTP worker thread died")),
        _ => Ok(()),
    };
    // Every other worker finishes its answers under way first.
    for (i, end) in ended.into_iter().enumerate() {
        if early.as_ref().is_some_and(|(first, _)| *first == i) {
            continue;
        }
        let ended = end.await;
        if result.is_ok() {
            result = match ended {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::other("an HTTP worker thread died")),
            };
        }
    }
    result
}

/// Keeps a timer due within the next second in this runtime's timer wheel.
/// Tokio's timer wakes its driver (a write to the runtime's eventfd, and an
/// early return from its next `epoll_wait`) whenever a timer is registered
/// that is due before the driver's next planned wake, even from the
/// runtime's own thread; with no timer nearer than a request's own deadline
/// that was a system call for about one request in five on a busy proxy
/// (docs/PERFORMANCE.md). A tick a second costs nothing beside it.
async fn keep_a_timer_due() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    permits: Arc<Semaphore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, or a connection reset while
                    // queued: not the listener's end. Pause, go on.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%remote, limit = limits.max_connections, "connection refused: too many open");
            // Best effort, never waiting: a fresh socket's send buffer
            // takes these bytes, and dropping the stream closes it.
            let _ = stream.try_write(&over_capacity());
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            app.clone()
                .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(remote));
                    req
                });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_over_capacity_answer_is_well_formed() {
        let bytes = over_capacity();
        let text = std::str::from_utf8(&bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("too many"));
    }
}

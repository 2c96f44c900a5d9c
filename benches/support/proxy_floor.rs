//! A reference for `scripts/bench-proxy-cpu.sh`: the barest reverse proxy
//! hyper makes, built the way the gateway's proxy mode is (one
//! single-threaded runtime per CPU accepting from one socket, hyper's HTTP/1
//! server, hyper's HTTP/1 client connections kept per thread, each driven by
//! a task of its own) and doing nothing else: no routing, no credential, no
//! metrics, no timeouts, no header filtering but the `Authorization` header.
//! What it costs per request is what hyper and tokio cost; what the gateway
//! costs above it is ours.
//!
//! Not for use: it has no bounds of any kind.
//!
//!   cargo run --release --example proxy-floor -- 127.0.0.1:LISTEN 127.0.0.1:UPSTREAM

use std::cell::RefCell;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::AUTHORIZATION;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

thread_local! {
    static UPSTREAM: RefCell<String> = RefCell::default();
    static POOL: RefCell<Vec<SendRequest<Incoming>>> = RefCell::default();
}

async fn connection() -> Result<SendRequest<Incoming>, Error> {
    let idle = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.retain(|c| !c.is_closed());
        let i = pool.iter().rposition(|c| c.is_ready())?;
        Some(pool.swap_remove(i))
    });
    if let Some(conn) = idle {
        return Ok(conn);
    }
    let stream = TcpStream::connect(UPSTREAM.with(|u| u.borrow().clone())).await?;
    stream.set_nodelay(true)?;
    let (conn, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(driver);
    Ok(conn)
}

async fn forward(req: Request<Incoming>) -> Result<Response<Incoming>, Error> {
    let (mut parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = Uri::try_from(target)?;
    parts.headers.remove(AUTHORIZATION);
    let mut conn = connection().await?;
    let answer = conn.send_request(Request::from_parts(parts, body));
    POOL.with(|pool| pool.borrow_mut().push(conn));
    Ok(answer.await?)
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        return Err("usage: proxy-floor LISTEN_ADDR UPSTREAM_ADDR".into());
    };
    let socket = std::net::TcpListener::bind(listen)?;
    socket.set_nonblocking(true)?;
    let workers = std::thread::available_parallelism()?.get();
    let mut threads = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (socket, upstream) = (socket.try_clone()?, upstream.clone());
        threads.push(std::thread::spawn(move || -> std::io::Result<()> {
            UPSTREAM.with(|u| *u.borrow_mut() = upstream);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = TcpListener::from_std(socket)?;
                loop {
                    let (stream, _) = listener.accept().await?;
                    stream.set_nodelay(true)?;
                    tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                        TokioIo::new(stream),
                        hyper::service::service_fn(forward),
                    ));
                }
            })
        }));
    }
    for thread in threads {
        thread.join().map_err(|_| "a worker panicked")??;
    }
    Ok(())
}

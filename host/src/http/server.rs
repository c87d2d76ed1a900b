//! The HTTP listener: accepts TCP connections under a cap and serves each with hyper,
//! with a bound on how long a client may take to send its request headers.
//!
//! `axum::serve` has neither bound, so a client that opens thousands of connections
//! and sends a byte of header now and then (slowloris) would hold them all. Here a
//! connection over [`ServerLimits::max_connections`] is closed as soon as it is
//! accepted, and one whose headers are not complete within
//! [`ServerLimits::header_timeout`] is closed by hyper — a silent one too, and an
//! idle keep-alive one. Each client address is bounded too ([`super::per_ip`]): its
//! open connections, and its requests per second. HTTP/1.1 only (browsers speak HTTP/2
//! only over TLS, which a proxy in front terminates).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::per_ip::{PerIp, PerIpLimits};
use crate::session::stats::{self, Counter};
use crate::transport::IceTcp;

/// Bounds on the clients of the HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Most TCP connections open at once (WebSockets, once upgraded, no longer count:
    /// the stream's concurrency limit bounds them).
    pub max_connections: usize,
    /// A connection must send each request's headers within this, counted from when
    /// the server starts waiting for them (so an idle keep-alive connection is closed
    /// after this too).
    pub header_timeout: Duration,
    /// Bounds per client address.
    pub per_ip: PerIpLimits,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            per_ip: PerIpLimits::default(),
        }
    }
}

/// Serve `app` over HTTP/1.1 on `listener` until `stop` resolves, then stop
/// accepting, let each connection finish the request under way, and return once
/// every one has (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ServerLimits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with_ice_tcp(listener, app, limits, None, stop).await
}

/// Like [`serve`], on the media port: a connection whose first byte starts an
/// ICE-TCP frame goes to `ice_tcp` (see [`crate::transport::tcp`]), which serves it
/// on its own task, beyond this listener's connection count and shutdown.
pub async fn serve_with_ice_tcp(
    listener: TcpListener,
    app: axum::Router,
    limits: ServerLimits,
    ice_tcp: Option<IceTcp>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_ip = PerIp::new(limits.per_ip);
    let tasks = TaskTracker::new();
    let stopping = CancellationToken::new();
    tasks.spawn(forget_idle_addresses(per_ip.clone(), stopping.clone()));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accepting an HTTP connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats::count(Counter::HttpConnectionsRefused);
            tracing::debug!(%peer, "HTTP connection refused: {} open", limits.max_connections);
            drop(tcp);
            continue;
        };
        let Some(ip_slot) = per_ip.connection(peer.ip()) else {
            tracing::debug!(%peer, "HTTP connection refused: its address holds {} open", limits.per_ip.connections);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service =
            TowerToHyperService::new(rate_limited(app.clone(), per_ip.clone(), peer.ip()));
        let builder = builder.clone();
        let stopping = stopping.clone();
        let ice_tcp = ice_tcp.clone();
        let header_timeout = limits.header_timeout;
        tasks.spawn(async move {
            if let Some(ice_tcp) = ice_tcp {
                // The first byte tells ICE-TCP from HTTP; a client silent for the
                // header timeout is closed, as hyper would.
                let mut first = [0u8; 1];
                let peeked = tokio::select! {
                    r = tokio::time::timeout(header_timeout, tcp.peek(&mut first)) => r,
                    () = stopping.cancelled() => return,
                };
                match peeked {
                    Ok(Ok(1..)) if crate::transport::tcp::starts_ice_tcp(first[0]) => {
                        drop((slot, ip_slot));
                        ice_tcp.spawn(tcp, peer);
                        return;
                    }
                    Ok(Ok(1..)) => {}
                    _ => return,
                }
            }
            let conn = builder
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => Some(r),
                () = stopping.cancelled() => None,
            };
            let result = match ended {
                Some(r) => r,
                None => {
                    // Finish the request under way, take no more.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
            drop((slot, ip_slot));
        });
    }
    drop(listener);
    stopping.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// How often addresses whose request bucket is full again are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

async fn forget_idle_addresses(per_ip: Arc<PerIp>, stopping: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(FORGET_EVERY) => per_ip.forget_idle(),
            () = stopping.cancelled() => return,
        }
    }
}

/// `app`, answering `429 Too Many Requests` to requests past `peer`'s rate.
fn rate_limited(
    app: axum::Router,
    per_ip: Arc<PerIp>,
    peer: std::net::IpAddr,
) -> impl tower::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    use axum::response::IntoResponse;
    use tower::ServiceExt;
    tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let allowed = per_ip.request(peer, req.headers());
        let app = app.clone();
        async move {
            if !allowed {
                return Ok((
                    http::StatusCode::TOO_MANY_REQUESTS,
                    [(http::header::RETRY_AFTER, "1")],
                    axum::Json(serde_json::json!({
                        "error": "rate_limited",
                        "message": "too many requests from your address; retry in a second",
                    })),
                )
                    .into_response());
            }
            app.oneshot(req.map(axum::body::Body::new)).await
        }
    })
}

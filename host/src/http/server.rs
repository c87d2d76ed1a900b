//! The HTTP listener: accepts TCP connections under a cap and serves each with hyper,
//! with a bound on how long a client may take to send its request headers.
//!
//! `axum::serve` has neither bound, so a client that opens thousands of connections
//! and sends a byte of header now and then (slowloris) would hold them all. Here a
//! connection over [`ServerLimits::max_connections`] is closed as soon as it is
//! accepted, and one whose headers are not complete within
//! [`ServerLimits::header_timeout`] is closed by hyper (HTTP/1) or never gets a
//! stream served (HTTP/2 keeps its own flow-control bounds).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::session::stats::{self, Counter};

/// Bounds on the clients of the HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Most TCP connections open at once (WebSockets, once upgraded, no longer count:
    /// the stream's concurrency limit bounds them).
    pub max_connections: usize,
    /// A connection must send its request headers within this.
    pub header_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Serve `app` on `listener` until `stop` resolves, then stop accepting and wait for
/// the requests under way (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ServerLimits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
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
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

//! One UDP socket for all peers: a receive task routes each datagram to its peer by
//! remote address, learning new addresses from the ICE ufrag in STUN requests.
//!
//! The task runs on the tokio runtime that bound the socket, so a datagram reaches its
//! connection's task without a thread switch, and every datagram waiting in the socket
//! is routed on one wake-up.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};

use super::stun;

/// Datagrams queued per peer before new ones are dropped (UDP semantics).
const PEER_QUEUE: usize = 512;

/// A datagram received for a peer.
#[derive(Debug)]
pub struct Datagram {
    /// Who sent it.
    pub source: SocketAddr,
    /// When it arrived.
    pub at: Instant,
    /// The payload.
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Routes {
    by_addr: HashMap<SocketAddr, mpsc::Sender<Datagram>>,
    by_ufrag: HashMap<String, mpsc::Sender<Datagram>>,
}

struct Shared {
    socket: UdpSocket,
    local: SocketAddr,
    routes: Mutex<Routes>,
    /// Ends the receive task.
    stop: Notify,
}

/// The shared socket. Cloning is cheap; the receive task stops when the last clone goes.
#[derive(Clone)]
pub struct UdpMux {
    shared: Arc<Shared>,
    _guard: Arc<StopGuard>,
}

struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.stop.notify_one();
    }
}

impl UdpMux {
    /// Bind the socket and start its receive task on the current tokio runtime (call
    /// it from within one).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        let shared = Arc::new(Shared {
            socket,
            local,
            routes: Mutex::new(Routes::default()),
            stop: Notify::new(),
        });
        tokio::spawn(receive_loop(shared.clone()));
        Ok(Self {
            _guard: Arc::new(StopGuard(shared.clone())),
            shared,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// Route datagrams for the ICE ufrag `ufrag` (the server side's) to the returned socket.
    pub fn register(&self, ufrag: &str) -> PeerSocket {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let mut routes = self.shared.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.by_ufrag.insert(ufrag.to_string(), tx);
        PeerSocket {
            shared: self.shared.clone(),
            ufrag: ufrag.to_string(),
            rx,
        }
    }
}

/// A peer's view of the shared socket: its own datagrams in, sends out.
pub struct PeerSocket {
    shared: Arc<Shared>,
    ufrag: String,
    rx: mpsc::Receiver<Datagram>,
}

impl PeerSocket {
    /// The next datagram for this peer (cancel-safe).
    pub async fn recv(&mut self) -> Option<Datagram> {
        self.rx.recv().await
    }

    /// Send a datagram; errors are logged, as UDP loss is normal.
    pub fn send(&self, to: SocketAddr, data: &[u8]) {
        // Never waits: when the socket's send buffer is full the datagram is dropped,
        // as the network would.
        if let Err(e) = self.shared.socket.try_send_to(data, to) {
            tracing::debug!(%to, "udp send failed: {e}");
        }
    }

    /// The shared socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }
}

impl Drop for PeerSocket {
    fn drop(&mut self) {
        let mut routes = self.shared.routes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = routes.by_ufrag.remove(&self.ufrag) {
            routes.by_addr.retain(|_, t| !t.same_channel(&tx));
        }
    }
}

async fn receive_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            ready = shared.socket.readable() => {
                if let Err(e) = ready {
                    tracing::debug!("udp socket failed: {e}");
                    return;
                }
            }
            () = shared.stop.notified() => return,
        }
        // Route every datagram that is waiting, then wait again.
        loop {
            let (n, source) = match shared.socket.try_recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("udp receive failed: {e}");
                    continue;
                }
            };
            route(&shared, source, &buf[..n]);
        }
    }
}

/// Hand a datagram to the peer its source address (or STUN ufrag) belongs to.
fn route(shared: &Shared, source: SocketAddr, data: &[u8]) {
    let tx = {
        let mut routes = shared.routes.lock().unwrap_or_else(|e| e.into_inner());
        match routes.by_addr.get(&source) {
            Some(tx) => Some(tx.clone()),
            None => {
                let found = stun::server_ufrag(data)
                    .and_then(|u| routes.by_ufrag.get(u))
                    .cloned();
                if let Some(tx) = &found {
                    routes.by_addr.insert(source, tx.clone());
                }
                found
            }
        }
    };
    if let Some(tx) = tx {
        let _ = tx.try_send(Datagram {
            source,
            at: Instant::now(),
            data: data.to_vec(),
        });
    }
}

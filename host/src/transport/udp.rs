//! One UDP socket for all peers.
//!
//! ## Threading model
//!
//! The socket is read by its own OS thread, not by a tokio task. Media encoding
//! and decoding run on the tokio workers and one encode can hold a worker for
//! tens of milliseconds; with the receive loop on that runtime, every other peer's
//! packets would wait in the kernel for as long. The receive thread only reads
//! datagrams and routes each into its peer's bounded channel, so a datagram is
//! queued for its peer as soon as it arrives, whatever the workers are doing.
//!
//! ```text
//!   kernel ──recv──► receive thread ──try_send──► peer channel ──► session task
//!                    (route by address              (bounded;        (Peer::receive)
//!                     or STUN ufrag)                 full: drop)
//!
//!   session task ──PeerSocket::send──► sendto(MSG_DONTWAIT) ──► kernel
//! ```
//!
//! * **Receiving** blocks in `recv_from` with a short read timeout, so the thread
//!   notices when it should stop. It never waits for a peer: a full channel drops
//!   the datagram (UDP semantics) and counts it in [`UdpStats::dropped_full`].
//! * **Routing** is by source address; an unknown address is learned from a STUN
//!   Binding request whose USERNAME names the peer (the server side's ufrag) and
//!   whose MESSAGE-INTEGRITY its ICE password verifies. Anything else from an
//!   unknown address is dropped and counted ([`UdpStats::dropped_unverified`]).
//! * **Sending** happens on the caller's thread, never waits, and drops the
//!   datagram when the socket's send buffer is full, as the network would.
//! * **Stopping**: the thread ends when the last [`UdpMux`] clone is dropped.
//!   [`PeerSocket`]s may outlive it; their sends keep working until they drop.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::stun;
use crate::session::stats::{self, Counter};

/// Datagrams queued per peer before new ones are dropped (UDP semantics).
const PEER_QUEUE: usize = 512;

/// How often the receive thread looks at its stop flag when no datagram arrives.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The largest datagram read; WebRTC keeps its packets under the path MTU.
const MAX_DATAGRAM: usize = 2048;

/// A datagram received for a peer.
#[derive(Debug)]
pub struct Datagram {
    /// Who sent it.
    pub source: SocketAddr,
    /// Whether it came framed over an ICE-TCP connection (see `tcp.rs`), not in UDP.
    pub tcp: bool,
    /// When it arrived.
    pub at: Instant,
    /// The payload.
    pub data: Vec<u8>,
}

/// Counters of the receive thread, since the socket was bound.
///
/// `received == routed + dropped_unknown + dropped_full`, give or take the
/// datagram being routed while the counters are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams read from the socket.
    pub received: u64,
    /// Datagrams queued for a peer.
    pub routed: u64,
    /// Datagrams dropped because no peer owns their source address or STUN ufrag
    /// (or the peer was going away).
    pub dropped_unknown: u64,
    /// Datagrams dropped because their peer's queue was full: its task is not
    /// keeping up.
    pub dropped_full: u64,
    /// STUN requests from an unknown address that named a live peer but failed
    /// its MESSAGE-INTEGRITY: dropped, and no route learned (also counted in
    /// `dropped_unknown`).
    pub dropped_unverified: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    routed: AtomicU64,
    dropped_unknown: AtomicU64,
    dropped_full: AtomicU64,
    dropped_unverified: AtomicU64,
}

/// A live peer, as its server-side ufrag finds it.
struct Registered {
    tx: mpsc::Sender<Datagram>,
    /// The peer's ICE password: the key of its STUN requests' MESSAGE-INTEGRITY.
    password: Box<[u8]>,
}

#[derive(Default)]
struct Routes {
    by_addr: HashMap<SocketAddr, mpsc::Sender<Datagram>>,
    by_ufrag: HashMap<String, Registered>,
    /// ICE-TCP connections by remote address: their peer's ufrag and their writer.
    tcp: HashMap<SocketAddr, (String, mpsc::Sender<Vec<u8>>)>,
}

struct Shared {
    /// Blocking, with a read timeout: only the receive thread reads it, and sends
    /// pass `MSG_DONTWAIT` (see [`PeerSocket::send`]).
    socket: UdpSocket,
    local: SocketAddr,
    routes: Mutex<Routes>,
    counters: Counters,
    /// Ends the receive thread.
    stop: AtomicBool,
}

/// The shared socket. Cloning is cheap; the receive thread stops when the last
/// clone goes.
#[derive(Clone)]
pub struct UdpMux {
    shared: Arc<Shared>,
    _guard: Arc<StopGuard>,
}

struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
        // Wake the thread now rather than at its next read timeout: an empty
        // datagram to ourselves, which routing ignores.
        let wake = match self.0.local {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv6Addr::LOCALHOST, a.port()))
            }
            a => a,
        };
        let _ = send_nonblocking(&self.0.socket, &[], wake);
    }
}

impl UdpMux {
    /// Bind the socket and start its receive thread.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(STOP_POLL))?;
        let local = socket.local_addr()?;
        let shared = Arc::new(Shared {
            socket,
            local,
            routes: Mutex::new(Routes::default()),
            counters: Counters::default(),
            stop: AtomicBool::new(false),
        });
        let thread = shared.clone();
        std::thread::Builder::new()
            .name(format!("udp-{}", local.port()))
            .spawn(move || receive_loop(&thread))?;
        Ok(Self {
            _guard: Arc::new(StopGuard(shared.clone())),
            shared,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// What the receive thread has read and routed so far.
    pub fn stats(&self) -> UdpStats {
        let c = &self.shared.counters;
        UdpStats {
            received: c.received.load(Ordering::Relaxed),
            routed: c.routed.load(Ordering::Relaxed),
            dropped_unknown: c.dropped_unknown.load(Ordering::Relaxed),
            dropped_full: c.dropped_full.load(Ordering::Relaxed),
            dropped_unverified: c.dropped_unverified.load(Ordering::Relaxed),
        }
    }

    /// The live peer a STUN request is for, with its ufrag, if the request's
    /// MESSAGE-INTEGRITY verifies with that peer's password.
    pub(crate) fn peer_of(
        &self,
        stun_request: &[u8],
    ) -> Result<(String, mpsc::Sender<Datagram>), Unrouted> {
        let routes = self.shared.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes
            .peer_of(stun_request)
            .map(|(ufrag, tx)| (ufrag.to_string(), tx.clone()))
    }

    /// Send what the peer of `ufrag` transmits to `remote` over TCP through `writer`,
    /// until the peer goes or [`UdpMux::remove_tcp`].
    pub(crate) fn add_tcp(&self, remote: SocketAddr, ufrag: &str, writer: mpsc::Sender<Vec<u8>>) {
        let mut routes = self.shared.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.tcp.insert(remote, (ufrag.to_string(), writer));
    }

    /// Forget the ICE-TCP connection from `remote`.
    pub(crate) fn remove_tcp(&self, remote: SocketAddr) {
        let mut routes = self.shared.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.tcp.remove(&remote);
    }

    /// Route datagrams for the ICE ufrag `ufrag` (the server side's) to the returned
    /// socket: from each address whose STUN request `password` (the server side's
    /// ICE password) verifies.
    pub fn register(&self, ufrag: &str, password: &str) -> PeerSocket {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let mut routes = self.shared.routes.lock().unwrap_or_else(|e| e.into_inner());
        let password = password.as_bytes().into();
        routes
            .by_ufrag
            .insert(ufrag.to_string(), Registered { tx, password });
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

    /// The next datagram for this peer if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Datagram> {
        self.rx.try_recv().ok()
    }

    /// Send a datagram; errors are logged, as UDP loss is normal.
    pub fn send(&self, to: SocketAddr, data: &[u8]) {
        // A dual-stack socket (bound to `[::]`) reaches IPv4 peers at their
        // v4-mapped address; peers see them as plain IPv4 (see [`canonical`]).
        let to = match to {
            SocketAddr::V4(v4) if self.shared.local.is_ipv6() => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            to => to,
        };
        // Never waits: when the socket's send buffer is full the datagram is dropped,
        // as the network would.
        if let Err(e) = send_nonblocking(&self.shared.socket, data, to) {
            tracing::debug!(%to, "udp send failed: {e}");
        }
    }

    /// Send a frame over this peer's ICE-TCP connection from `to`; dropped when
    /// there is none or its queue is full (the connection is not keeping up).
    pub fn send_tcp(&self, to: SocketAddr, data: &[u8]) {
        let writer = {
            let routes = self.shared.routes.lock().unwrap_or_else(|e| e.into_inner());
            routes
                .tcp
                .get(&to)
                .filter(|(ufrag, _)| *ufrag == self.ufrag)
                .map(|(_, w)| w.clone())
        };
        if let Some(writer) = writer {
            let _ = writer.try_send(data.to_vec());
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
        if let Some(peer) = routes.by_ufrag.remove(&self.ufrag) {
            routes.by_addr.retain(|_, t| !t.same_channel(&peer.tx));
        }
        // Its ICE-TCP connections close once their writer is dropped.
        routes.tcp.retain(|_, (ufrag, _)| *ufrag != self.ufrag);
    }
}

/// `sendto` that fails with `WouldBlock` instead of waiting, on a socket that
/// stays blocking for its receive thread. (`set_nonblocking` on a `try_clone`
/// would not do: the flag belongs to the open file, which the clone shares.)
#[cfg(unix)]
fn send_nonblocking(socket: &UdpSocket, data: &[u8], to: SocketAddr) -> io::Result<usize> {
    socket2::SockRef::from(socket).send_to_with_flags(data, &to.into(), libc::MSG_DONTWAIT)
}

/// Elsewhere a UDP send waits only while the send buffer is full.
#[cfg(not(unix))]
fn send_nonblocking(socket: &UdpSocket, data: &[u8], to: SocketAddr) -> io::Result<usize> {
    socket.send_to(data, to)
}

fn receive_loop(shared: &Shared) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.stop.load(Ordering::Acquire) {
        let (n, source) = match shared.socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // Such as an ICMP error reported on the socket: log, and do not spin
                // if it persists.
                tracing::debug!("udp receive failed: {e}");
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        if n == 0 {
            // Our own wake-up (or nothing worth routing).
            continue;
        }
        shared.counters.received.fetch_add(1, Ordering::Relaxed);
        route(shared, canonical(source), &buf[..n]);
    }
}

/// A source address as peers see it: an IPv4 client of a dual-stack socket arrives
/// as `[::ffff:a.b.c.d]`, and is `a.b.c.d` to ICE (its candidates name it so).
fn canonical(source: SocketAddr) -> SocketAddr {
    match source {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => source,
        },
        v4 => v4,
    }
}

/// Why a STUN request found no peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unrouted {
    /// Not STUN, or without a USERNAME.
    NotStun,
    /// No live peer has the ufrag it names.
    UnknownUfrag,
    /// A live peer's ufrag, but its MESSAGE-INTEGRITY does not verify with that
    /// peer's password (or it has none, or is not a Binding request).
    Unverified,
}

impl Unrouted {
    /// Said to the client's log and the host's.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Unrouted::NotStun => "the first frame is not a STUN request",
            Unrouted::UnknownUfrag => "no live peer has that ufrag",
            Unrouted::Unverified => "the STUN request's MESSAGE-INTEGRITY does not verify",
        }
    }
}

impl Routes {
    fn peer_of<'a>(
        &self,
        request: &'a [u8],
    ) -> Result<(&'a str, &mpsc::Sender<Datagram>), Unrouted> {
        let ufrag = stun::server_ufrag(request).ok_or(Unrouted::NotStun)?;
        let peer = self.by_ufrag.get(ufrag).ok_or(Unrouted::UnknownUfrag)?;
        if !stun::verified(request, &peer.password) {
            return Err(Unrouted::Unverified);
        }
        Ok((ufrag, &peer.tx))
    }
}

/// Hand a datagram to the peer its source address belongs to, or, from an unknown
/// address, to the peer whose password signs its STUN request (learning the route).
fn route(shared: &Shared, source: SocketAddr, data: &[u8]) {
    let counters = &shared.counters;
    let tx = {
        let mut routes = shared.routes.lock().unwrap_or_else(|e| e.into_inner());
        match routes.by_addr.get(&source) {
            Some(tx) => Some(tx.clone()),
            None => match routes.peer_of(data) {
                Ok((_, tx)) => {
                    let tx = tx.clone();
                    routes.by_addr.insert(source, tx.clone());
                    Some(tx)
                }
                Err(why) => {
                    if why == Unrouted::Unverified {
                        counters.dropped_unverified.fetch_add(1, Ordering::Relaxed);
                        stats::count(Counter::StunUnverified);
                    }
                    None
                }
            },
        }
    };
    let Some(tx) = tx else {
        counters.dropped_unknown.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let datagram = Datagram {
        source,
        tcp: false,
        at: Instant::now(),
        data: data.to_vec(),
    };
    match tx.try_send(datagram) {
        Ok(()) => counters.routed.fetch_add(1, Ordering::Relaxed),
        Err(mpsc::error::TrySendError::Full(_)) => {
            counters.dropped_full.fetch_add(1, Ordering::Relaxed)
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            counters.dropped_unknown.fetch_add(1, Ordering::Relaxed)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(mux: &UdpMux, done: impl Fn(&UdpStats) -> bool) -> UdpStats {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stats = mux.stats();
            if done(&stats) || Instant::now() > deadline {
                return stats;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    use crate::transport::stun::tests::binding_request;

    #[test]
    fn routes_by_ufrag_then_address_and_counts_drops() {
        let mux = UdpMux::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut peer = mux.register("srv", "srv-password");
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = mux.local_addr();

        // Unknown address, no STUN: dropped.
        client.send_to(b"hello", to).unwrap();
        let s = wait_for(&mux, |s| s.dropped_unknown == 1);
        assert_eq!((s.received, s.routed, s.dropped_unknown), (1, 0, 1));

        // A STUN request naming our ufrag but not signed with its password (or
        // signed with another) teaches nothing: it and what follows are dropped.
        client
            .send_to(&binding_request("srv:cli", None), to)
            .unwrap();
        client
            .send_to(&binding_request("srv:cli", Some(b"guess")), to)
            .unwrap();
        client.send_to(b"media", to).unwrap();
        let s = wait_for(&mux, |s| s.dropped_unknown == 4);
        assert_eq!((s.received, s.routed, s.dropped_unverified), (4, 0, 2));

        // A signed one teaches the route; later datagrams follow it.
        client
            .send_to(&binding_request("srv:cli", Some(b"srv-password")), to)
            .unwrap();
        client.send_to(b"media", to).unwrap();
        let s = wait_for(&mux, |s| s.routed == 2);
        assert_eq!((s.received, s.routed, s.dropped_full), (6, 2, 0));
        assert_eq!(
            peer.try_recv().unwrap().source,
            client.local_addr().unwrap()
        );
        assert_eq!(peer.try_recv().unwrap().data, b"media");

        // Replies leave from the shared socket.
        peer.send(client.local_addr().unwrap(), b"reply");
        let mut buf = [0; 16];
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"reply"[..], to));

        // A peer that does not read: its queue fills, the rest is dropped.
        // (In batches, so that the kernel's own buffer does not drop any.)
        let mut sent = 6;
        while sent < 6 + PEER_QUEUE as u64 + 10 {
            for _ in 0..32 {
                client.send_to(b"x", to).unwrap();
            }
            sent += 32;
            wait_for(&mux, |s| s.received == sent);
        }
        let s = mux.stats();
        assert_eq!(s.received, sent, "{s:?}");
        assert_eq!(s.routed + s.dropped_full, sent - 4);
        assert!(s.dropped_full > 0, "{s:?}");

        // Gone peer: its address no longer routes.
        drop(peer);
        client.send_to(b"late", to).unwrap();
        let before = s.dropped_unknown;
        let s = wait_for(&mux, |s| s.dropped_unknown == before + 1);
        assert_eq!(s.dropped_unknown, before + 1);
    }

    #[test]
    fn thread_stops_with_the_last_mux() {
        let mux = UdpMux::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let weak = Arc::downgrade(&mux.shared);
        let clone = mux.clone();
        drop(mux);
        std::thread::sleep(Duration::from_millis(20));
        assert!(weak.upgrade().is_some(), "a clone still holds it");
        drop(clone);
        let deadline = Instant::now() + Duration::from_secs(2);
        while weak.upgrade().is_some() {
            assert!(Instant::now() < deadline, "receive thread did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

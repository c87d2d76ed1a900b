//! ICE-TCP, passive (RFC 6544): clients on networks that block UDP reach a peer over
//! TCP on the media port.
//!
//! The media port is also the HTTP port (the default, `udp` unset), and the HTTP
//! listener hands a connection here when its first byte is zero: an RFC 4571 frame
//! (a 16-bit big-endian length, then one datagram) of a STUN request is at most a
//! few hundred bytes, so it starts with `0x00`, which no HTTP request does.
//!
//! ```text
//!   client ──TCP──► HTTP listener ──first byte 0x00──► IceTcp::spawn
//!                                                      │ first frame: STUN, names the peer's ufrag,
//!                                                      │ signed with its ICE password
//!                                                      ▼
//!   frames in ──► Datagram { tcp: true } ──► peer channel ──► session task (str0m)
//!   frames out ◄── writer task ◄── PeerSocket::send_tcp ◄── str0m's TCP transmits
//! ```
//!
//! Bounds: at most [`MAX_CONNECTIONS`] at once (more are closed at once), the first
//! frame within [`FIRST_FRAME_TIMEOUT`] and a STUN request for a live peer, signed
//! with its ICE password (anything else closes the connection), frames of at most
//! [`MAX_FRAME`] bytes (a longer one closes it), and [`WRITE_QUEUE`] frames queued towards a slow reader (more are
//! dropped, as UDP would). A connection ends with its peer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Semaphore, mpsc};

use super::udp::{Datagram, UdpMux, Unrouted};
use crate::session::stats::{self, Counter};

/// ICE-TCP connections open at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Longest frame taken (WebRTC keeps its datagrams under the path MTU).
pub const MAX_FRAME: usize = 2048;
/// How long a new connection has to send its first frame.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued towards one client before new ones are dropped.
pub const WRITE_QUEUE: usize = 256;

/// Whether a connection whose first byte is `first` speaks ICE-TCP (not HTTP).
pub fn starts_ice_tcp(first: u8) -> bool {
    first == 0
}

/// The ICE-TCP side of the media port: hands framed datagrams to the peers of `mux`.
#[derive(Clone)]
pub struct IceTcp {
    mux: UdpMux,
    slots: Arc<Semaphore>,
}

impl IceTcp {
    /// ICE-TCP for the peers of `mux`.
    pub fn new(mux: UdpMux) -> Self {
        Self {
            mux,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// Serve the connection from `remote` on its own task, which ends with its peer
    /// (or at the first bad frame).
    pub fn spawn(&self, stream: TcpStream, remote: SocketAddr) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            stats::count(Counter::IceTcpRefused);
            tracing::debug!(%remote, "ICE-TCP connection refused: {MAX_CONNECTIONS} open");
            return;
        };
        let mux = self.mux.clone();
        tokio::spawn(async move {
            if let Err(why) = serve(&mux, stream, remote).await {
                stats::count(Counter::IceTcpRefused);
                tracing::debug!(%remote, "ICE-TCP connection closed: {why}");
            }
            mux.remove_tcp(remote);
            drop(slot);
        });
    }
}

/// Read one RFC 4571 frame into `buf`; `Ok(false)` when the client closed.
async fn read_frame(rd: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Result<bool, &'static str> {
    let mut len = [0u8; 2];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(_) => return Err("read failed"),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 || len > MAX_FRAME {
        return Err("frame length outside 1..=2048");
    }
    buf.resize(len, 0);
    rd.read_exact(buf).await.map_err(|_| "frame cut short")?;
    Ok(true)
}

async fn serve(mux: &UdpMux, stream: TcpStream, remote: SocketAddr) -> Result<(), &'static str> {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = Vec::with_capacity(MAX_FRAME);
    match tokio::time::timeout(FIRST_FRAME_TIMEOUT, read_frame(&mut rd, &mut buf)).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Ok(()),
        Ok(Err(why)) => return Err(why),
        Err(_) => return Err("no first frame in time"),
    }
    let (ufrag, peer) = mux.peer_of(&buf).map_err(|why| {
        if why == Unrouted::Unverified {
            stats::count(Counter::StunUnverified);
        }
        why.reason()
    })?;
    let (writer, mut frames) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    mux.add_tcp(remote, &ufrag, writer);

    let deliver = |data: &[u8]| {
        let d = Datagram {
            source: remote,
            tcp: true,
            at: Instant::now(),
            data: data.to_vec(),
        };
        // A full queue drops the frame (the peer is behind), as UDP would.
        !matches!(peer.try_send(d), Err(mpsc::error::TrySendError::Closed(_)))
    };
    let reading = async {
        if !deliver(&buf) {
            return Ok(());
        }
        loop {
            if !read_frame(&mut rd, &mut buf).await? || !deliver(&buf) {
                return Ok(());
            }
        }
    };
    let writing = async {
        let mut out = Vec::with_capacity(MAX_FRAME + 2);
        // Ends when the peer goes: its socket drops the writer.
        while let Some(frame) = frames.recv().await {
            let Ok(len) = u16::try_from(frame.len()) else {
                continue;
            };
            out.clear();
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&frame);
            if wr.write_all(&out).await.is_err() {
                break;
            }
        }
        Ok(())
    };
    tokio::select! {
        r = reading => r,
        r = writing => r,
    }
}

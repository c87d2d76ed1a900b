//! WebRTC transport: one UDP socket shared by every peer, and a sans-IO str0m
//! peer connection per client driven by the session's task.

mod peer;
mod stun;
mod udp;

pub use peer::{OfferError, Peer, PeerEvent, TrackKinds, shared_cert};
pub use udp::{Datagram, PeerSocket, UdpMux, UdpStats};

//! WebRTC transport: one UDP socket shared by every peer (and ICE-TCP on the same
//! port for clients that cannot use UDP), a sans-IO str0m
//! peer connection per client driven by the session's task, and the STUN and TURN
//! servers handed to clients so that they can reach that socket from behind NAT.

pub mod ice_servers;
mod peer;
mod stun;
pub mod tcp;
mod udp;

pub use ice_servers::{IceServer, IceServers};
pub use peer::{OfferError, Peer, PeerEvent, Route, TrackKinds, shared_cert};
pub use tcp::IceTcp;
pub use udp::{Datagram, PeerSocket, UdpMux, UdpStats};

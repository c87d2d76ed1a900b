//! The operator's side of outbound access: which private networks may be reached
//! and the bounds every request is held to, whatever a grant or a guest asks.

use std::time::Duration;

use ipnet::IpNet;

/// Bounds and network exceptions for every outbound request of every stream.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    /// Networks that may be reached although they are loopback, private, link-local
    /// or otherwise not public (e.g. `127.0.0.1/32` for a service on this machine).
    pub allow_networks: Vec<IpNet>,
    /// Longest TCP (and TLS) connect; a guest's own setting is clamped to it.
    pub connect_timeout: Duration,
    /// Longest wait for a response's headers.
    pub first_byte_timeout: Duration,
    /// Longest silence while a body arrives.
    pub between_bytes_timeout: Duration,
    /// Largest request body a guest may send, in bytes.
    pub max_request_body: u64,
    /// Largest response body a guest may receive, in bytes; the rest is cut with an error.
    pub max_response_body: u64,
    /// Requests one connection's handler may have open at once.
    pub max_in_flight_per_connection: usize,
    /// Requests all connections of one stream may have open at once.
    pub max_in_flight_per_stream: usize,
    /// Bytes (sent and received) one connection's handler may move per minute.
    pub max_bytes_per_minute: u64,
    /// Refused requests after which the instance is ended (cause `outbound-abuse`).
    pub max_violations: u32,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            allow_networks: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(30),
            between_bytes_timeout: Duration::from_secs(30),
            max_request_body: 4 << 20,
            max_response_body: 16 << 20,
            max_in_flight_per_connection: 8,
            max_in_flight_per_stream: 64,
            max_bytes_per_minute: 64 << 20,
            max_violations: 32,
        }
    }
}

impl OutboundPolicy {
    /// A guest's timeout, clamped to the operator's.
    pub(crate) fn clamp(asked: Option<Duration>, bound: Duration) -> Duration {
        asked.map_or(bound, |d| d.min(bound))
    }
}

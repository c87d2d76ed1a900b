//! Bounds per client address on the HTTP listener: how many connections one address
//! holds open, and how many requests it makes per second (a token bucket: a burst,
//! then a steady rate), so that one anonymous client cannot take the listener's
//! connection cap or flood offers, candidates and `rtc_configuration` (each of which
//! costs the host work or mints a TURN credential) while others are served.
//!
//! Addresses are counted by client: an IPv4 address, or the /64 an IPv6 address is in
//! (one host usually holds a whole /64). Behind a reverse proxy every client has the
//! proxy's address; with [`PerIpLimits::trust_forwarded_for`] the request rate is
//! counted by the last address of `X-Forwarded-For` (the one the proxy appended)
//! instead. A refused connection is closed at accept; a refused request answers
//! `429 Too Many Requests` with `Retry-After`. Both are counted in
//! `wasmrtc_client_refused_total` (`ip_connections`, `ip_rate`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::session::stats::{self, Counter};

/// Bounds per client address; a zero turns that bound off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerIpLimits {
    /// Most connections one address holds open at once.
    pub connections: usize,
    /// Requests per second one address may make, on average.
    pub requests_per_second: u32,
    /// Requests one address may make at once above that rate.
    pub burst: u32,
    /// Count requests by the last `X-Forwarded-For` address (only behind a proxy that
    /// sets it: a client could otherwise pick its own key).
    pub trust_forwarded_for: bool,
}

impl Default for PerIpLimits {
    fn default() -> Self {
        Self {
            connections: 256,
            requests_per_second: 50,
            burst: 200,
            trust_forwarded_for: false,
        }
    }
}

/// The client a request or connection is counted against: an IPv4 address, or an
/// IPv6 /64 (an IPv4-mapped IPv6 address is its IPv4 one).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The per-address state of one listener.
pub struct PerIp {
    limits: PerIpLimits,
    rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its address; released when dropped.
pub struct ConnectionSlot {
    per_ip: Arc<PerIp>,
    key: Option<IpAddr>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut open = self.per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&key);
            }
        }
    }
}

impl PerIp {
    /// The state for `limits`.
    pub fn new(limits: PerIpLimits) -> Arc<Self> {
        let rate = NonZeroU32::new(limits.requests_per_second).map(|per_second| {
            let burst =
                NonZeroU32::new(limits.burst.max(limits.requests_per_second)).unwrap_or(per_second);
            RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        Arc::new(Self {
            limits,
            rate,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Count a new connection from `peer`; `None` (and counted) when the address
    /// already holds [`PerIpLimits::connections`]. The map holds only addresses with a
    /// connection open, so it is bounded by the listener's connection cap.
    pub fn connection(self: &Arc<Self>, peer: IpAddr) -> Option<ConnectionSlot> {
        if self.limits.connections == 0 {
            return Some(ConnectionSlot {
                per_ip: self.clone(),
                key: None,
            });
        }
        let key = client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_default();
        if *n >= self.limits.connections {
            stats::count(Counter::IpConnectionsRefused);
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            per_ip: self.clone(),
            key: Some(key),
        })
    }

    /// Whether a request from `peer` (with these headers) is within its address's rate;
    /// refusals are counted.
    pub fn request(&self, peer: IpAddr, headers: &http::HeaderMap) -> bool {
        let Some(rate) = &self.rate else { return true };
        let ip = if self.limits.trust_forwarded_for {
            forwarded_for(headers).unwrap_or(peer)
        } else {
            peer
        };
        let allowed = rate.check_key(&client_key(ip)).is_ok();
        if !allowed {
            stats::count(Counter::IpRateRefused);
        }
        allowed
    }

    /// Forget addresses whose bucket is full again (call now and then: it bounds the
    /// rate limiter's memory by the addresses seen within the last burst's refill).
    pub fn forget_idle(&self) {
        if let Some(rate) = &self.rate {
            rate.retain_recent();
            rate.shrink_to_fit();
        }
    }
}

/// The last address of `X-Forwarded-For`: the one the proxy in front appended.
fn forwarded_for(headers: &http::HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    last.to_str().ok()?.rsplit(',').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn connections_are_capped_per_address_and_released() {
        let per_ip = PerIp::new(PerIpLimits {
            connections: 2,
            ..PerIpLimits::default()
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let first = per_ip.connection(ip).unwrap();
        let _second = per_ip.connection(ip).unwrap();
        assert!(per_ip.connection(ip).is_none());
        assert!(per_ip.connection(other).is_some());
        drop(first);
        assert!(per_ip.connection(ip).is_some());
    }

    #[test]
    fn requests_past_the_burst_are_refused_per_address() {
        let per_ip = PerIp::new(PerIpLimits {
            requests_per_second: 1,
            burst: 5,
            ..PerIpLimits::default()
        });
        let (ip, other): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let none = http::HeaderMap::new();
        let allowed = (0..20).filter(|_| per_ip.request(ip, &none)).count();
        assert_eq!(allowed, 5);
        assert!(per_ip.request(other, &none));
        // Spoofed X-Forwarded-For is ignored unless trusted.
        let mut spoofed = http::HeaderMap::new();
        spoofed.insert("x-forwarded-for", "198.51.100.9".parse().unwrap());
        assert!(!per_ip.request(ip, &spoofed));
    }

    #[test]
    fn behind_a_trusted_proxy_the_forwarded_address_is_the_key() {
        let per_ip = PerIp::new(PerIpLimits {
            requests_per_second: 1,
            burst: 1,
            trust_forwarded_for: true,
            ..PerIpLimits::default()
        });
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let from = |client: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(
                "x-forwarded-for",
                format!("203.0.113.50, {client}").parse().unwrap(),
            );
            h
        };
        assert!(per_ip.request(proxy, &from("198.51.100.1")));
        assert!(!per_ip.request(proxy, &from("198.51.100.1")));
        assert!(per_ip.request(proxy, &from("198.51.100.2")));
    }
}

//! Which resolved addresses a handler may connect to: public unicast ones, and the
//! operator's explicit exceptions. Checked after the host's own DNS resolution, on
//! the address actually connected to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is not public, or `None` when it is.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_reason(v4);
            }
            v6_reason(v6)
        }
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() || a == 0 {
        "unspecified"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        // 169.254.169.254 is every cloud's instance-metadata service.
        "link-local (cloud metadata)"
    } else if a == 100 && (64..128).contains(&b) {
        "shared address space"
    } else if a == 192 && b == 0 && c == 0 {
        "IETF protocol assignments"
    } else if ip.is_documentation() || (a == 198 && (18..20).contains(&b)) {
        "reserved"
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        "multicast or reserved"
    } else {
        return None;
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if first & 0xfe00 == 0xfc00 {
        // Includes fd00:ec2::254, a cloud metadata address.
        "unique local"
    } else if first & 0xffc0 == 0xfe80 {
        "link-local"
    } else if ip.is_multicast() {
        "multicast"
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        "NAT64"
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        "documentation"
    } else {
        return None;
    })
}

/// Whether the host may connect to `ip`: public, or inside an allowed network.
pub fn permitted(ip: IpAddr, allow: &[IpNet]) -> Result<(), &'static str> {
    match non_public(ip) {
        None => Ok(()),
        Some(_) if allow.iter().any(|n| n.contains(&ip)) => Ok(()),
        Some(why) => Err(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_metadata_addresses_are_refused_unless_allowed() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(permitted(ip, &[]).is_err(), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "1.1.1.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(permitted(ip, &[]), Ok(()), "{ip}");
        }
        let allow: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert_eq!(permitted("127.0.0.1".parse().unwrap(), &allow), Ok(()));
        assert!(permitted("127.0.0.2".parse().unwrap(), &allow).is_err());
        assert!(permitted("169.254.169.254".parse().unwrap(), &allow).is_err());
    }
}

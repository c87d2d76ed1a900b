//! Just enough STUN to route a binding request to its peer: the USERNAME attribute
//! names the peer, and MESSAGE-INTEGRITY proves the sender knows its ICE password.
//!
//! A route (source address → peer) is learned only from a request that passes
//! [`verified`]: otherwise anyone who saw or guessed a ufrag could point datagrams
//! from any address at a peer's queue. str0m checks the same integrity again when
//! the peer handles the request.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// STUN's magic cookie (RFC 5389).
const MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// Message type of a Binding request.
const BINDING_REQUEST: u16 = 0x0001;
/// Attribute type of USERNAME.
const USERNAME: u16 = 0x0006;
/// Attribute type of MESSAGE-INTEGRITY (HMAC-SHA1, 20 bytes).
const MESSAGE_INTEGRITY: u16 = 0x0008;
/// Length of the STUN header.
const HEADER: usize = 20;

/// The attributes of a STUN message: `(type, value, offset of the attribute)`.
fn attributes(packet: &[u8]) -> Option<impl Iterator<Item = (u16, &[u8], usize)>> {
    if packet.len() < HEADER || packet[0] & 0xC0 != 0 || packet[4..8] != MAGIC {
        return None;
    }
    let mut at = HEADER;
    Some(std::iter::from_fn(move || {
        let head = packet.get(at..at + 4)?;
        let kind = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let value = packet.get(at + 4..at + 4 + len)?;
        let this = at;
        at += 4 + len.div_ceil(4) * 4;
        Some((kind, value, this))
    }))
}

/// The server-side ICE ufrag of a STUN message (`USERNAME` = `server:client`), if
/// the datagram is STUN and carries one. Not proof of anything: see [`verified`].
pub(crate) fn server_ufrag(packet: &[u8]) -> Option<&str> {
    let (_, username, _) = attributes(packet)?.find(|(kind, _, _)| *kind == USERNAME)?;
    std::str::from_utf8(username).ok()?.split(':').next()
}

/// Whether `packet` is a Binding request whose MESSAGE-INTEGRITY is signed with
/// `password` (ICE's short-term credential, RFC 8445 §7.2.2: the key is the
/// receiving side's password).
///
/// The HMAC covers the message up to the attribute, with the header's length
/// field counting up to the end of it (RFC 5389 §15.4); FINGERPRINT may follow.
pub(crate) fn verified(packet: &[u8], password: &[u8]) -> bool {
    // `attributes` checks the header is there.
    let Some(mut attrs) = attributes(packet) else {
        return false;
    };
    if u16::from_be_bytes([packet[0], packet[1]]) != BINDING_REQUEST {
        return false;
    }
    let Some((_, tag, at)) = attrs.find(|(kind, _, _)| *kind == MESSAGE_INTEGRITY) else {
        return false;
    };
    if tag.len() != 20 {
        return false;
    }
    let Ok(length) = u16::try_from(at + 4 + 20 - HEADER) else {
        return false;
    };
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(password).expect("HMAC takes any key");
    mac.update(&packet[..2]);
    mac.update(&length.to_be_bytes());
    mac.update(&packet[4..at]);
    // Constant time: a mismatch says nothing about how much of the tag was right.
    mac.verify_slice(tag).is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Binding request from `username`, signed with `password` when given,
    /// ending with a FINGERPRINT-shaped attribute (which the HMAC does not cover).
    pub(crate) fn binding_request(username: &str, password: Option<&[u8]>) -> Vec<u8> {
        let mut p = vec![0x00, 0x01, 0, 0];
        p.extend(MAGIC);
        p.extend([7u8; 12]);
        p.extend(USERNAME.to_be_bytes());
        p.extend(u16::try_from(username.len()).unwrap().to_be_bytes());
        p.extend(username.as_bytes());
        p.resize(p.len().div_ceil(4) * 4, 0);
        if let Some(password) = password {
            let length = u16::try_from(p.len() + 24 - HEADER).unwrap();
            p[2..4].copy_from_slice(&length.to_be_bytes());
            let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(password).unwrap();
            mac.update(&p);
            let tag = mac.finalize().into_bytes();
            p.extend(MESSAGE_INTEGRITY.to_be_bytes());
            p.extend(20u16.to_be_bytes());
            p.extend(tag);
        }
        p.extend([0x80, 0x28, 0x00, 0x04, 1, 2, 3, 4]);
        let length = u16::try_from(p.len() - HEADER).unwrap();
        p[2..4].copy_from_slice(&length.to_be_bytes());
        p
    }

    #[test]
    fn finds_the_server_ufrag() {
        let p = binding_request("abcd:efg", None);
        assert_eq!(server_ufrag(&p), Some("abcd"));
        assert_eq!(server_ufrag(&p[..22]), None);
        assert_eq!(server_ufrag(b"not stun at all, just bytes"), None);
    }

    #[test]
    fn integrity_is_checked_with_the_receivers_password() {
        let signed = binding_request("srv:cli", Some(b"server-password"));
        assert!(verified(&signed, b"server-password"));
        assert!(!verified(&signed, b"another-password"));
        assert!(!verified(
            &binding_request("srv:cli", None),
            b"server-password"
        ));
        // Any change to the covered bytes breaks it, as does a cut tag.
        let mut forged = signed.clone();
        forged[HEADER + 4] = b'x';
        assert!(!verified(&forged, b"server-password"));
        assert!(!verified(&signed[..signed.len() - 14], b"server-password"));
        // Only Binding requests route.
        let mut response = signed.clone();
        response[1] = 0x01;
        response[0] = 0x01;
        assert!(!verified(&response, b"server-password"));
    }

    /// RFC 5769 §2.1: a Binding request signed with "VOkJxbRl1RmTxUk/WvJxBt".
    #[test]
    fn rfc5769_sample_request_verifies() {
        let sample: [u8; 108] = [
            0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
            0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e,
            0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24,
            0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1,
            0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68,
            0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
            0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5,
            0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
        ];
        assert_eq!(server_ufrag(&sample), Some("evtj"));
        assert!(verified(&sample, b"VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(!verified(&sample, b"VOkJxbRl1RmTxUk/WvJxBu"));
    }
}

//! Just enough STUN to route a binding request to its peer: the USERNAME attribute.

/// STUN's magic cookie (RFC 5389).
const MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// Attribute type of USERNAME.
const USERNAME: u16 = 0x0006;

/// The server-side ICE ufrag of a STUN message (`USERNAME` = `server:client`), if
/// the datagram is STUN and carries one.
pub(crate) fn server_ufrag(packet: &[u8]) -> Option<&str> {
    if packet.len() < 20 || packet[0] & 0xC0 != 0 || packet[4..8] != MAGIC {
        return None;
    }
    let mut rest = &packet[20..];
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        let padded = 4 + len.div_ceil(4) * 4;
        rest = rest.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_server_ufrag() {
        let mut p = vec![0x00, 0x01, 0x00, 0x10];
        p.extend(MAGIC);
        p.extend([7u8; 12]);
        // USERNAME "abcd:efg" (8 bytes)
        p.extend([0x00, 0x06, 0x00, 0x08]);
        p.extend(b"abcd:efg");
        assert_eq!(server_ufrag(&p), Some("abcd"));
        assert_eq!(server_ufrag(&p[..22]), None);
        assert_eq!(server_ufrag(b"not stun at all, just bytes"), None);
    }
}

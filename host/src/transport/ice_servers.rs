//! STUN and TURN servers handed to clients, so that clients behind NAT (or on
//! networks that block UDP) can reach the host's one media port.
//!
//! The host itself answers with its host candidate only; what clients need beyond it
//! is an [`IceServers`] set: static servers (a STUN server, or a TURN server with
//! fixed credentials), and optionally a TURN server sharing a secret with the host
//! ([`TurnRest`]), for which short-lived credentials are minted on every request with
//! the TURN REST scheme of coturn's `use-auth-secret` (also used by Cloudflare and
//! Twilio):
//!
//! ```text
//! username   = "<unix time of expiry>:<random id>"
//! credential = base64(HMAC-SHA1(secret, username))
//! ```
//!
//! The TURN server recomputes the credential from the username and its copy of the
//! secret, and refuses it once the expiry has passed. The secret never leaves the
//! host: it is not serialized and not printed by `Debug`.
//!
//! [`IceServers::configuration`] gives FastRTC's `rtc_configuration` shape,
//! `{"iceServers": [{"urls": […], "username": …, "credential": …}]}`.

use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

/// Most ICE servers handed to a client (static ones and the minted one together).
pub const MAX_SERVERS: usize = 16;
/// Most URLs of one server.
pub const MAX_URLS: usize = 8;
/// Longest URL, username or static credential, in bytes.
pub const MAX_STRING: usize = 512;
/// Longest shared TURN secret, in bytes.
pub const MAX_SECRET: usize = 4096;
/// Lifetimes a minted credential may have, in seconds.
pub const TTL_SECONDS: RangeInclusive<u64> = 60..=86_400;
/// Lifetime of a minted credential when none is set.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IceError {
    /// More servers than [`MAX_SERVERS`].
    #[error("{0} ICE servers: at most {MAX_SERVERS}")]
    TooManyServers(usize),
    /// A static server without URLs.
    #[error("`servers[{0}]`: `urls` is empty")]
    NoUrls(usize),
    /// A static server with more URLs than [`MAX_URLS`].
    #[error("`servers[{index}]`: {count} URLs, at most {MAX_URLS}")]
    TooManyUrls {
        /// The server.
        index: usize,
        /// Its URLs.
        count: usize,
    },
    /// A URL that is not a STUN or TURN URL this host accepts.
    #[error("`{key}`: {url:?} {reason}")]
    BadUrl {
        /// Where it is (`servers[0].urls`, `turn_urls`).
        key: String,
        /// The URL (cut to [`MAX_STRING`]).
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A string longer than [`MAX_STRING`].
    #[error("`{0}` is longer than {MAX_STRING} bytes")]
    TooLong(String),
    /// A static `turn:`/`turns:` server lacks its username or credential (browsers
    /// refuse such a configuration outright).
    #[error("`servers[{0}]`: a TURN server needs both `username` and `credential`")]
    MissingCredentials(usize),
    /// A `username` without a `credential` or the other way round.
    #[error("`servers[{0}]`: give both `username` and `credential`, or neither")]
    HalfCredentials(usize),
    /// A minted-credential lifetime outside [`TTL_SECONDS`].
    #[error("`turn_ttl`: {0} s is outside 60..=86400 s")]
    Ttl(u64),
    /// No `turn_urls` for a shared secret.
    #[error("`turn_urls` is empty: a shared TURN secret needs the TURN server's URLs")]
    NoTurnUrls,
    /// An empty shared secret.
    #[error("the shared TURN secret is empty")]
    EmptySecret,
    /// A shared secret longer than [`MAX_SECRET`].
    #[error("the shared TURN secret is longer than {MAX_SECRET} bytes")]
    SecretTooLong,
    /// Relayed candidates only, but no TURN server to relay them.
    #[error("`transport_policy = \"relay\"` needs a TURN server (`turn_urls` or a `turn:` server)")]
    RelayWithoutTurn,
}

/// One entry of `iceServers`, as the browser's `RTCIceServer`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:`, `stuns:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// The TURN username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl IceServer {
    /// Whether one of the URLs is a TURN relay.
    pub fn is_turn(&self) -> bool {
        self.urls.iter().any(|u| is_turn_url(u))
    }

    fn check(&self, index: usize) -> Result<(), IceError> {
        if self.urls.is_empty() {
            return Err(IceError::NoUrls(index));
        }
        if self.urls.len() > MAX_URLS {
            return Err(IceError::TooManyUrls {
                index,
                count: self.urls.len(),
            });
        }
        for url in &self.urls {
            check_url(url, &format!("servers[{index}].urls"))?;
        }
        for (key, v) in [
            ("username", &self.username),
            ("credential", &self.credential),
        ] {
            if v.as_ref().is_some_and(|v| v.len() > MAX_STRING) {
                return Err(IceError::TooLong(format!("servers[{index}].{key}")));
            }
        }
        match (&self.username, &self.credential) {
            (Some(_), None) | (None, Some(_)) => Err(IceError::HalfCredentials(index)),
            (None, None) if self.is_turn() => Err(IceError::MissingCredentials(index)),
            _ => Ok(()),
        }
    }
}

fn is_turn_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("turn:") || lower.starts_with("turns:")
}

/// Check one URL (RFC 7064/7065): scheme `stun:`, `stuns:`, `turn:` or `turns:`, a
/// host name or IP address with an optional port, and for TURN at most the query
/// `?transport=udp` or `?transport=tcp`. `key` names where it is in errors.
pub fn check_url(url: &str, key: &str) -> Result<(), IceError> {
    let bad = |reason| IceError::BadUrl {
        key: key.to_string(),
        url: url.chars().take(MAX_STRING).collect(),
        reason,
    };
    if url.len() > MAX_STRING {
        return Err(IceError::TooLong(key.to_string()));
    }
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(bad("has no scheme (stun:, stuns:, turn: or turns:)"));
    };
    let turn = match scheme.to_ascii_lowercase().as_str() {
        "stun" | "stuns" => false,
        "turn" | "turns" => true,
        _ => return Err(bad("is not a stun:, stuns:, turn: or turns: URL")),
    };
    if rest.starts_with("//") {
        return Err(bad(
            "must not have `//` after the scheme (write turn:host:port)",
        ));
    }
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    match query {
        None => {}
        Some(_) if !turn => return Err(bad("takes no query: only TURN URLs have ?transport=")),
        Some(q)
            if q.eq_ignore_ascii_case("transport=udp")
                || q.eq_ignore_ascii_case("transport=tcp") => {}
        Some(_) => {
            return Err(bad(
                "has a query other than ?transport=udp or ?transport=tcp",
            ));
        }
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((ip, after)) = v6.split_once(']') else {
            return Err(bad("has an unclosed [IPv6 address"));
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("has an invalid IPv6 address"));
        }
        match after {
            "" => (ip, None),
            p => match p.strip_prefix(':') {
                Some(p) => (ip, Some(p)),
                None => return Err(bad("has text after its IPv6 address")),
            },
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let label_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !label_ok {
            return Err(bad(
                "needs a host name or IP address (letters, digits, - and .)",
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(bad("has a port outside 1..=65535"));
    }
    Ok(())
}

/// The secret a TURN server shares with the host (coturn's `static-auth-secret`).
/// Its `Debug` never shows it.
#[derive(Clone)]
pub struct TurnSecret(Vec<u8>);

impl TurnSecret {
    /// The secret as read from a file or a variable: a trailing line break is not
    /// part of it.
    pub fn new(text: &str) -> Result<Self, IceError> {
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return Err(IceError::EmptySecret);
        }
        if text.len() > MAX_SECRET {
            return Err(IceError::SecretTooLong);
        }
        Ok(Self(text.as_bytes().to_vec()))
    }
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(<redacted>)")
    }
}

/// The TURN REST credential of `username`: base64(HMAC-SHA1(secret, username)).
pub fn rest_credential(secret: &[u8], username: &str) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A TURN server sharing a secret with the host: credentials are minted per request.
#[derive(Debug, Clone)]
pub struct TurnRest {
    urls: Vec<String>,
    secret: TurnSecret,
    ttl: Duration,
}

impl TurnRest {
    /// The server at `urls` (`turn:` or `turns:`), credentials valid `ttl` seconds
    /// (within [`TTL_SECONDS`]).
    pub fn new(urls: Vec<String>, secret: TurnSecret, ttl_seconds: u64) -> Result<Self, IceError> {
        if urls.is_empty() {
            return Err(IceError::NoTurnUrls);
        }
        if urls.len() > MAX_URLS {
            return Err(IceError::BadUrl {
                key: "turn_urls".into(),
                url: format!("({} URLs)", urls.len()),
                reason: "is too many: at most 8",
            });
        }
        for url in &urls {
            check_url(url, "turn_urls")?;
            if !is_turn_url(url) {
                return Err(IceError::BadUrl {
                    key: "turn_urls".into(),
                    url: url.clone(),
                    reason: "is not a turn: or turns: URL",
                });
            }
        }
        if !TTL_SECONDS.contains(&ttl_seconds) {
            return Err(IceError::Ttl(ttl_seconds));
        }
        Ok(Self {
            urls,
            secret,
            ttl: Duration::from_secs(ttl_seconds),
        })
    }

    /// Credentials valid from `now` for the server's `ttl`, with a fresh random id.
    pub fn mint(&self, now: SystemTime) -> IceServer {
        self.mint_for(now, &format!("{:016x}", rand::random::<u64>()))
    }

    /// Credentials valid from `now` for the server's `ttl` naming `id` after the expiry.
    pub fn mint_for(&self, now: SystemTime, id: &str) -> IceServer {
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let expiry = (since_epoch + self.ttl).as_secs();
        let username = format!("{expiry}:{id}");
        IceServer {
            urls: self.urls.clone(),
            credential: Some(rest_credential(&self.secret.0, &username)),
            username: Some(username),
        }
    }
}

/// Every ICE server the host hands to clients; empty by default.
#[derive(Debug, Clone, Default)]
pub struct IceServers {
    statics: Vec<IceServer>,
    rest: Option<TurnRest>,
    relay_only: bool,
}

impl IceServers {
    /// `statics` as they are, and a server whose credentials are minted per request.
    pub fn new(statics: Vec<IceServer>, rest: Option<TurnRest>) -> Result<Self, IceError> {
        let count = statics.len() + usize::from(rest.is_some());
        if count > MAX_SERVERS {
            return Err(IceError::TooManyServers(count));
        }
        for (i, s) in statics.iter().enumerate() {
            s.check(i)?;
        }
        Ok(Self {
            statics,
            rest,
            relay_only: false,
        })
    }

    /// Ask clients to use relayed candidates only (`iceTransportPolicy: "relay"`):
    /// to check a TURN deployment, or to keep clients' addresses from the host.
    /// Needs a TURN server.
    pub fn relay_only(mut self) -> Result<Self, IceError> {
        if !self.has_turn() {
            return Err(IceError::RelayWithoutTurn);
        }
        self.relay_only = true;
        Ok(self)
    }

    /// Whether each configuration carries freshly minted TURN credentials.
    pub fn mints_credentials(&self) -> bool {
        self.rest.is_some()
    }

    /// Whether one of the servers is a TURN relay.
    pub fn has_turn(&self) -> bool {
        self.rest.is_some() || self.statics.iter().any(IceServer::is_turn)
    }

    /// The servers for one client at `now`: the static ones, then one with freshly
    /// minted credentials.
    pub fn servers(&self, now: SystemTime) -> Vec<IceServer> {
        let mut out = self.statics.clone();
        out.extend(self.rest.as_ref().map(|r| r.mint(now)));
        out
    }

    /// FastRTC's `rtc_configuration`: `{"iceServers": [...]}`, with
    /// `"iceTransportPolicy": "relay"` when [`IceServers::relay_only`] asked for it.
    /// It is an `RTCConfiguration`: clients pass it to `new RTCPeerConnection`.
    pub fn configuration(&self, now: SystemTime) -> serde_json::Value {
        let mut v = serde_json::json!({ "iceServers": self.servers(now) });
        if self.relay_only {
            v["iceTransportPolicy"] = "relay".into();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(ttl: u64) -> TurnRest {
        TurnRest::new(
            vec!["turn:127.0.0.1:3478?transport=udp".into()],
            TurnSecret::new("north\n").unwrap(),
            ttl,
        )
        .unwrap()
    }

    #[test]
    fn ice_hmac_sha1_matches_known_answers() {
        // RFC 2202, test case 2.
        assert_eq!(
            rest_credential(b"Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
        assert_eq!(
            rest_credential(b"north", "1700003600:a1b2c3d4e5f60718"),
            "AukvhE65JI1hSM/yItsV2WOrERs="
        );
    }

    #[test]
    fn ice_minted_credentials_expire_after_the_ttl() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let s = rest(3600).mint_for(now, "a1b2c3d4e5f60718");
        assert_eq!(s.username.as_deref(), Some("1700003600:a1b2c3d4e5f60718"));
        // The trailing line break of the secret file is not part of the secret.
        assert_eq!(
            s.credential.as_deref(),
            Some("AukvhE65JI1hSM/yItsV2WOrERs=")
        );
        assert_eq!(s.urls, ["turn:127.0.0.1:3478?transport=udp"]);
        let a = rest(60).mint(now);
        let b = rest(60).mint(now);
        let (user_a, user_b) = (a.username.unwrap(), b.username.unwrap());
        assert!(user_a.starts_with("1700000060:"), "{user_a}");
        assert_ne!(user_a, user_b, "every mint has its own id");
        assert_ne!(a.credential, b.credential);
    }

    #[test]
    fn ice_secret_is_never_shown() {
        let r = rest(600);
        let servers = IceServers::new(vec![], Some(r.clone())).unwrap();
        let json = servers.configuration(SystemTime::now()).to_string();
        assert!(!json.contains("north"), "{json}");
        for text in [
            format!("{r:?}"),
            format!("{servers:?}"),
            format!("{:?}", r.mint(SystemTime::now())),
        ] {
            assert!(!text.contains("north"), "{text}");
            assert!(!text.contains("AukvhE"), "{text}");
        }
        assert!(format!("{r:?}").contains("<redacted>"));
    }

    #[test]
    fn ice_configuration_has_fastrtc_shape() {
        let stun = IceServer {
            urls: vec!["stun:stun.example.org:3478".into()],
            username: None,
            credential: None,
        };
        let servers = IceServers::new(vec![stun], Some(rest(600))).unwrap();
        assert!(servers.has_turn());
        let v = servers.configuration(SystemTime::now());
        let list = v["iceServers"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0],
            serde_json::json!({"urls": ["stun:stun.example.org:3478"]})
        );
        assert!(list[1]["username"].as_str().unwrap().contains(':'));
        assert!(list[1]["credential"].is_string());
        assert_eq!(
            IceServers::default().configuration(SystemTime::now()),
            serde_json::json!({"iceServers": []})
        );
    }

    #[test]
    fn ice_urls_and_bounds_are_checked() {
        for ok in [
            "stun:stun.example.org",
            "stun:stun.example.org:3478",
            "stuns:192.0.2.1:5349",
            "turn:[2001:db8::1]:3478?transport=udp",
            "turns:turn.example.org:443?transport=tcp",
            "TURN:turn.example.org",
        ] {
            check_url(ok, "k").unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://example.org",
            "stun:",
            "stun://example.org",
            "stun:example.org?transport=udp",
            "turn:example.org?transport=sctp",
            "turn:example.org:0",
            "turn:example.org:99999",
            "turn:exa mple.org",
            "turn:[::1",
            "turn:a@example.org",
        ] {
            assert!(check_url(bad, "k").is_err(), "{bad} was accepted");
        }
        assert!(matches!(
            check_url(&format!("stun:{}", "a".repeat(600)), "k"),
            Err(IceError::TooLong(_))
        ));
        let turn_without = IceServer {
            urls: vec!["turn:turn.example.org".into()],
            username: None,
            credential: None,
        };
        assert_eq!(
            IceServers::new(vec![turn_without.clone()], None).unwrap_err(),
            IceError::MissingCredentials(0)
        );
        let many = vec![
            IceServer {
                urls: vec!["stun:stun.example.org".into()],
                username: None,
                credential: None,
            };
            16
        ];
        assert!(IceServers::new(many.clone(), None).is_ok());
        assert_eq!(
            IceServers::new(many, Some(rest(600))).unwrap_err(),
            IceError::TooManyServers(17)
        );
        let secret = || TurnSecret::new("s").unwrap();
        assert_eq!(
            TurnRest::new(vec!["turn:x".into()], secret(), 59).unwrap_err(),
            IceError::Ttl(59)
        );
        assert!(TurnRest::new(vec!["turn:x".into()], secret(), 86_401).is_err());
        assert!(TurnRest::new(vec!["stun:x".into()], secret(), 600).is_err());
        assert_eq!(
            TurnRest::new(vec![], secret(), 600).unwrap_err(),
            IceError::NoTurnUrls
        );
        assert_eq!(TurnSecret::new("\n").unwrap_err(), IceError::EmptySecret);
    }
}

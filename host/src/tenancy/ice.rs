//! A tenant's own STUN and TURN servers for one of its streams, set through the admin
//! API (`PUT /api/streams/{name}/ice`) and stored with the stream.
//!
//! The body has the shape of a `[stream.ice]` table, except that `turn_secret` is the
//! shared secret itself (a tenant has no access to the host's `[secrets]`). The secret
//! is write-only: it is stored, used to mint credentials per client, and never
//! returned, logged or counted ([`StreamIce::redacted`]). Servers set here replace the
//! tenant's (`[tenant.ice]`) and the host's (`[ice]`) for that stream's clients, from
//! the next `rtc_configuration` request on.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::IceEntry;
use crate::transport::{IceServer, IceServers};

/// ICE servers of one stream, as a tenant set them.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamIce {
    /// Servers handed out as written (`{"urls": […], "username": …, "credential": …}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<IceServer>,
    /// URLs of a TURN server sharing `turn_secret` with the host (coturn's
    /// `use-auth-secret`): credentials are minted from it per client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turn_urls: Vec<String>,
    /// That server's shared secret (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_secret: Option<String>,
    /// Seconds minted credentials are valid (default 3600, within 60..=86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_ttl: Option<u64>,
    /// `"all"` (the default) or `"relay"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_policy: Option<String>,
}

impl std::fmt::Debug for StreamIce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamIce({})", self.redacted())
    }
}

impl StreamIce {
    /// The servers clients get, checked against the same bounds as the configuration
    /// file's (`transport::ice_servers`); the error names the offending key.
    pub fn servers(&self) -> Result<IceServers, String> {
        let entry = IceEntry {
            servers: self.servers.clone(),
            turn_urls: self.turn_urls.clone(),
            turn_secret: None,
            turn_ttl: self.turn_ttl,
            transport_policy: self.transport_policy.clone(),
            tcp: None,
        };
        entry.build(self.turn_secret.as_deref())
    }

    /// What the API shows: everything but the shared secret, whose presence is
    /// `"turn_secret_set": true`.
    pub fn redacted(&self) -> Value {
        let mut shown = self.clone();
        let secret_set = shown.turn_secret.take().is_some();
        let mut v = serde_json::to_value(&shown).unwrap_or_else(|_| json!({}));
        if secret_set {
            v["turn_secret_set"] = json!(true);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_servers_come_from_the_secret_which_is_never_shown() {
        let ice: StreamIce = serde_json::from_value(json!({
            "servers": [{"urls": ["stun:stun.example.com:3478"]}],
            "turn_urls": ["turn:turn.example.com:3478?transport=udp"],
            "turn_secret": "s3cret-value",
            "turn_ttl": 600,
        }))
        .unwrap();
        let servers = ice.servers().unwrap();
        assert!(servers.mints_credentials());
        let shown = ice.redacted().to_string();
        assert!(!shown.contains("s3cret-value"), "{shown}");
        assert!(shown.contains("\"turn_secret_set\":true"), "{shown}");
        assert!(!format!("{ice:?}").contains("s3cret-value"));
    }

    #[test]
    fn mistakes_name_their_key() {
        let no_secret = StreamIce {
            turn_urls: vec!["turn:turn.example.com".into()],
            ..StreamIce::default()
        };
        assert!(no_secret.servers().unwrap_err().contains("turn_secret"));
        let bad_policy = StreamIce {
            transport_policy: Some("sometimes".into()),
            ..StreamIce::default()
        };
        assert!(
            bad_policy
                .servers()
                .unwrap_err()
                .contains("transport_policy")
        );
        let unknown: Result<StreamIce, _> = serde_json::from_value(json!({"tcp": false}));
        assert!(unknown.unwrap_err().to_string().contains("tcp"));
    }
}

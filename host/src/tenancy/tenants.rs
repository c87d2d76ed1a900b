//! Tenants, as declared in the host's configuration file, and their bearer tokens.
//!
//! ```toml
//! data_dir = "data"                  # where streams and components are kept
//!
//! [[tenant]]
//! name = "acme"
//! token_sha256 = "9f86d081884c7d65…"  # `printf %s "$TOKEN" | sha256sum`
//! max_streams = 10                   # streams the tenant may create
//! max_connections = 50               # concurrent connections across its streams
//! memory_mb = 64                     # per instance (one instance per connection)
//! cpu_ms_per_call = 20               # CPU budget of one handler call
//! max_component_mb = 16              # largest upload
//! max_versions = 20                  # versions kept per stream (older inactive ones go)
//! max_stored_mb = 256                # stored components across the tenant's versions
//! # what the tenant's own outbound grants may name (PUT /api/streams/{s}/outbound)
//! outbound_ceiling = ["https://api.openai.com", "https://*.groq.com:443"]
//! max_secrets = 32                   # secrets the tenant may hold (PUT /api/secrets/{name})
//! max_secret_bytes = 4096            # longest secret value
//! max_outbound_in_flight = 64        # outbound requests at once across its streams
//! ```
//!
//! Only the SHA-256 of a token is configured; a request's `Authorization: Bearer`
//! token is hashed and compared with every tenant's hash in constant time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::store::Retention;
use crate::runtime::outbound::{HostPattern, MAX_GRANT_ENTRIES, MAX_GRANT_VALUE};
use crate::session::Admission;
use crate::transport::IceServers;

/// One `[[tenant]]` of the configuration file.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Name, unique in the file: letters, digits, `-` and `_`. It is part of the
    /// tenant's stream URLs (`/t/{tenant}/{stream}/…`).
    pub name: String,
    /// Lower-case hex SHA-256 of the tenant's bearer token.
    pub token_sha256: String,
    /// Streams the tenant may have.
    #[serde(default = "defaults::max_streams")]
    pub max_streams: usize,
    /// Connections at once across all the tenant's streams.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Largest linear memory of one instance, in MiB.
    #[serde(default = "defaults::memory_mb")]
    pub memory_mb: u64,
    /// CPU budget of one handler call, in milliseconds.
    #[serde(default = "defaults::cpu_ms_per_call")]
    pub cpu_ms_per_call: u64,
    /// Largest component the tenant may upload, in MiB.
    #[serde(default = "defaults::max_component_mb")]
    pub max_component_mb: u64,
    /// Versions kept per stream (at least 2): an upload past them removes the oldest
    /// ones other than the active one.
    #[serde(default = "defaults::max_versions")]
    pub max_versions: usize,
    /// MiB of distinct components the tenant's stored versions may take; an upload
    /// past them is refused (`403 quota_exceeded`).
    #[serde(default = "defaults::max_stored_mb")]
    pub max_stored_mb: u64,
    /// STUN and TURN servers the clients of the tenant's streams get, instead of the
    /// host's `[ice]` (`[tenant.ice]`; a shared TURN secret names a host `[secrets]` entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice: Option<crate::config::IceEntry>,
    /// The hosts the tenant's own outbound grants may name or fall under, as grant
    /// patterns (`https://api.openai.com`, `https://*.groq.com:443`). Empty (the
    /// default): the tenant may grant nothing.
    #[serde(default)]
    pub outbound_ceiling: Vec<String>,
    /// Secrets the tenant may hold.
    #[serde(default = "defaults::max_secrets")]
    pub max_secrets: usize,
    /// Longest secret value, in bytes (at most 4096).
    #[serde(default = "defaults::max_secret_bytes")]
    pub max_secret_bytes: usize,
    /// Outbound requests in flight at once across all the tenant's streams.
    #[serde(default = "defaults::max_outbound_in_flight")]
    pub max_outbound_in_flight: usize,
}

/// The quotas of a tenant that declares none.
pub mod defaults {
    /// Streams.
    pub fn max_streams() -> usize {
        10
    }
    /// Connections across streams.
    pub fn max_connections() -> usize {
        50
    }
    /// MiB per instance.
    pub fn memory_mb() -> u64 {
        64
    }
    /// Milliseconds of CPU per call.
    pub fn cpu_ms_per_call() -> u64 {
        50
    }
    /// MiB per component.
    pub fn max_component_mb() -> u64 {
        16
    }
    /// Versions kept per stream.
    pub fn max_versions() -> usize {
        20
    }
    /// MiB of stored components per tenant.
    pub fn max_stored_mb() -> u64 {
        256
    }
    /// Secrets per tenant.
    pub fn max_secrets() -> usize {
        32
    }
    /// Bytes per secret value.
    pub fn max_secret_bytes() -> usize {
        4096
    }
    /// Outbound requests in flight across the tenant's streams.
    pub fn max_outbound_in_flight() -> usize {
        64
    }
}

impl TenantConfig {
    /// A tenant with the default quotas.
    pub fn new(name: &str, token: &str) -> Self {
        Self {
            name: name.to_string(),
            token_sha256: token_sha256(token),
            max_streams: defaults::max_streams(),
            max_connections: defaults::max_connections(),
            memory_mb: defaults::memory_mb(),
            cpu_ms_per_call: defaults::cpu_ms_per_call(),
            max_component_mb: defaults::max_component_mb(),
            max_versions: defaults::max_versions(),
            max_stored_mb: defaults::max_stored_mb(),
            ice: None,
            outbound_ceiling: Vec::new(),
            max_secrets: defaults::max_secrets(),
            max_secret_bytes: defaults::max_secret_bytes(),
            max_outbound_in_flight: defaults::max_outbound_in_flight(),
        }
    }

    /// Largest instance memory in bytes.
    pub fn memory_bytes(&self) -> usize {
        mib(self.memory_mb)
    }

    /// CPU budget per call.
    pub fn cpu_per_call(&self) -> Duration {
        Duration::from_millis(self.cpu_ms_per_call)
    }

    /// Largest upload in bytes.
    pub fn max_component_bytes(&self) -> usize {
        mib(self.max_component_mb)
    }

    /// What the store keeps of the tenant's uploads.
    pub fn retention(&self) -> Retention {
        Retention {
            versions_per_stream: self.max_versions,
            tenant_bytes: self.max_stored_mb.saturating_mul(1 << 20),
        }
    }

    /// What is wrong with the entry, if anything.
    pub fn check(&self) -> Result<(), String> {
        if !is_valid_name(&self.name) {
            return Err(format!(
                "tenant name {:?} must be 1 to 64 letters, digits, - or _",
                self.name
            ));
        }
        if parse_hex32(&self.token_sha256).is_none() {
            return Err(format!(
                "tenant `{}`: token_sha256 must be 64 hex digits (the SHA-256 of the token, e.g. from `printf %s \"$TOKEN\" | sha256sum`)",
                self.name
            ));
        }
        for (key, v) in [
            ("max_connections", self.max_connections as u64),
            ("memory_mb", self.memory_mb),
            ("cpu_ms_per_call", self.cpu_ms_per_call),
            ("max_component_mb", self.max_component_mb),
        ] {
            if v == 0 {
                return Err(format!("tenant `{}`: {key} must be at least 1", self.name));
            }
        }
        if self.max_versions < 2 {
            return Err(format!(
                "tenant `{}`: max_versions must be at least 2 (the active version and a new one)",
                self.name
            ));
        }
        if self.max_stored_mb < self.max_component_mb {
            return Err(format!(
                "tenant `{}`: max_stored_mb ({}) must be at least max_component_mb ({})",
                self.name, self.max_stored_mb, self.max_component_mb
            ));
        }
        if self.max_outbound_in_flight == 0 {
            return Err(format!(
                "tenant `{}`: max_outbound_in_flight must be at least 1 (an empty outbound_ceiling grants nothing)",
                self.name
            ));
        }
        if !(1..=MAX_GRANT_VALUE).contains(&self.max_secret_bytes) {
            return Err(format!(
                "tenant `{}`: max_secret_bytes must be 1 to {MAX_GRANT_VALUE}",
                self.name
            ));
        }
        self.ceiling()?;
        Ok(())
    }

    /// The parsed `outbound_ceiling`, or what is wrong with an entry.
    pub fn ceiling(&self) -> Result<Vec<HostPattern>, String> {
        if self.outbound_ceiling.len() > MAX_GRANT_ENTRIES {
            return Err(format!(
                "tenant `{}`: outbound_ceiling has more than {MAX_GRANT_ENTRIES} entries",
                self.name
            ));
        }
        self.outbound_ceiling
            .iter()
            .map(|p| {
                HostPattern::parse(p)
                    .map_err(|e| format!("tenant `{}`: outbound_ceiling: {e}", self.name))
            })
            .collect()
    }
}

fn mib(n: u64) -> usize {
    usize::try_from(n.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}

/// Names of tenants and streams: 1 to 64 ASCII letters, digits, `-` and `_`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Lower-case hex SHA-256 of `token`: what `token_sha256` holds.
pub fn token_sha256(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The SHA-256 of a bearer token, as configured (`token_sha256`,
/// `metrics_token_sha256`): the token itself is never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Parses 64 hex digits (either case); `None` if `hex` is anything else.
    pub fn parse(hex: &str) -> Option<Self> {
        parse_hex32(&hex.to_ascii_lowercase()).map(Self)
    }

    /// Whether `token` hashes to this, compared in constant time.
    pub fn matches(&self, token: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        constant_time_eq(&self.0, &hash)
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Equality that takes the same time wherever the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A configured tenant and its live connection quota.
#[derive(Debug)]
pub struct Tenant {
    /// The configuration entry.
    pub config: TenantConfig,
    hash: [u8; 32],
    /// Shared by all the tenant's streams: `max_connections` across them.
    pub admission: Admission,
    /// The tenant's ICE servers, when its entry sets them ([`Tenants::set_ice`]).
    pub ice: Option<Arc<IceServers>>,
    /// `outbound_ceiling`, parsed.
    pub outbound_ceiling: Vec<HostPattern>,
    /// Shared by all the tenant's streams: `max_outbound_in_flight` requests across them.
    pub outbound_in_flight: Arc<tokio::sync::Semaphore>,
}

impl Tenant {
    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// Every configured tenant.
#[derive(Debug, Default, Clone)]
pub struct Tenants {
    by_name: HashMap<String, Arc<Tenant>>,
}

impl Tenants {
    /// Check the entries (valid, unique names and tokens) and set up their quotas.
    pub fn new(configs: Vec<TenantConfig>) -> Result<Self, String> {
        let mut by_name = HashMap::new();
        let mut hashes = Vec::new();
        for config in configs {
            config.check()?;
            let hash =
                parse_hex32(&config.token_sha256.to_ascii_lowercase()).expect("checked above");
            if hashes.contains(&hash) {
                return Err(format!(
                    "tenant `{}` has the same token as another tenant",
                    config.name
                ));
            }
            hashes.push(hash);
            let tenant = Tenant {
                admission: Admission::new(Some(config.max_connections)),
                ice: None,
                outbound_ceiling: config.ceiling()?,
                outbound_in_flight: Arc::new(tokio::sync::Semaphore::new(
                    config.max_outbound_in_flight,
                )),
                hash,
                config,
            };
            let name = tenant.config.name.clone();
            if by_name.insert(name.clone(), Arc::new(tenant)).is_some() {
                return Err(format!("tenant `{name}` is declared twice"));
            }
        }
        Ok(Self { by_name })
    }

    /// Hand the clients of tenant `name`'s streams `servers` (read from its entry's
    /// `ice` with the host's secrets). Call it before the tenants are shared.
    pub fn set_ice(&mut self, name: &str, servers: IceServers) -> Result<(), String> {
        let tenant = self
            .by_name
            .get_mut(name)
            .ok_or_else(|| format!("no tenant `{name}`"))?;
        Arc::get_mut(tenant)
            .ok_or_else(|| format!("tenant `{name}` is already in use"))?
            .ice = Some(Arc::new(servers));
        Ok(())
    }

    /// The tenant of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.by_name.get(name)
    }

    /// Every tenant, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        let mut all: Vec<_> = self.by_name.values().collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all.into_iter()
    }

    /// Whether there is no tenant.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The tenant whose token this is (every tenant is compared, in constant time).
    pub fn authenticate(&self, token: &str) -> Option<&Arc<Tenant>> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for tenant in self.by_name.values() {
            if constant_time_eq(&tenant.hash, &hash) {
                found = Some(tenant);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_hash() {
        let tenants = Tenants::new(vec![
            TenantConfig::new("a", "token-a"),
            TenantConfig::new("b", "token-b"),
        ])
        .unwrap();
        assert_eq!(tenants.authenticate("token-a").unwrap().name(), "a");
        assert_eq!(tenants.authenticate("token-b").unwrap().name(), "b");
        assert!(tenants.authenticate("token-c").is_none());
        assert!(tenants.authenticate("").is_none());
        assert_eq!(
            token_sha256("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        let mut t = TenantConfig::new("a", "x");
        t.token_sha256 = "abc".into();
        assert!(t.check().unwrap_err().contains("64 hex digits"));
        assert!(TenantConfig::new("a b", "x").check().is_err());
        let dup = Tenants::new(vec![
            TenantConfig::new("a", "x"),
            TenantConfig::new("b", "x"),
        ]);
        assert!(dup.unwrap_err().contains("same token"));
        let twice = Tenants::new(vec![
            TenantConfig::new("a", "x"),
            TenantConfig::new("a", "y"),
        ]);
        assert!(twice.unwrap_err().contains("twice"));
    }

    #[test]
    fn the_outbound_ceiling_and_secret_bounds_are_checked() {
        let mut t = TenantConfig::new("a", "x");
        assert!(t.ceiling().unwrap().is_empty(), "nothing by default");
        t.outbound_ceiling = vec![
            "https://api.openai.com".into(),
            "https://*.groq.com:443".into(),
        ];
        assert_eq!(t.ceiling().unwrap().len(), 2);
        t.outbound_ceiling.push("ftp://files.example.com".into());
        let e = t.check().unwrap_err();
        assert!(
            e.contains("ftp://files.example.com") && e.contains("outbound_ceiling"),
            "{e}"
        );
        t.outbound_ceiling.pop();
        t.max_secret_bytes = 4097;
        assert!(t.check().unwrap_err().contains("max_secret_bytes"));
        t.max_secret_bytes = 4096;
        t.max_outbound_in_flight = 0;
        assert!(t.check().unwrap_err().contains("max_outbound_in_flight"));
        t.max_outbound_in_flight = 2;
        let toml = "name = \"a\"\ntoken_sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\noutbound_ceiling = [\"http://127.0.0.1:*\"]\nmax_outbound_in_flight = 2\n";
        let parsed: TenantConfig = toml::from_str(toml).unwrap();
        assert_eq!(parsed.max_secrets, 32);
        assert_eq!(parsed.max_secret_bytes, 4096);
        let tenants = Tenants::new(vec![parsed]).unwrap();
        let a = tenants.get("a").unwrap();
        assert_eq!(a.outbound_ceiling.len(), 1);
        assert_eq!(a.outbound_in_flight.available_permits(), 2);
    }
}

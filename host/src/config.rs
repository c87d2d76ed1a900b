//! The host's configuration file: `wasmrtc serve --config wasmrtc.toml`.
//!
//! ```toml
//! listen = "127.0.0.1:8000"      # HTTP; WebRTC media uses the same address over UDP
//! # udp = "0.0.0.0:8000"         # or its own UDP address
//! # advertise = "203.0.113.7"    # the address put in SDP answers (behind NAT)
//!
//! [[stream]]
//! name = "echo"
//! component = "handlers/echo.wasm"   # relative to this file
//! # prefix = "/streams/echo"        # the default is /streams/{name}
//! concurrency_limit = 4
//! time_limit = 60                   # seconds
//! ```
//!
//! Tenants who upload their own handlers over the admin API (`wasmrtc::tenancy`) are
//! declared with `[[tenant]]` (see [`TenantConfig`]); their streams and components
//! are kept under `data_dir` (relative to this file), and the host serves them again
//! after a restart. A file may declare streams, tenants or both.
//!
//! ```toml
//! data_dir = "data"
//!
//! [[tenant]]
//! name = "acme"
//! token_sha256 = "…"                # printf %s "$TOKEN" | sha256sum
//! max_streams = 10
//! ```
//!
//! `metrics_token_sha256 = "…"` makes `/metrics` ask for
//! `Authorization: Bearer <token>`.
//!
//! A `[breaker]` table sets when new connections to a component whose instances keep
//! failing are refused (see [`crate::runtime::breaker`]); every key is optional:
//!
//! ```toml
//! [breaker]
//! failures = 5          # failed instances within `window` that open it; 0 = never
//! window = 10           # seconds
//! cooldown = 5          # seconds of the first refusal; doubles on each reopening
//! max_cooldown = 300    # seconds
//! ```
//!
//! Outbound HTTP (see [`crate::runtime::outbound`]) is granted per stream; secrets
//! are read by the host at start-up and injected by a grant's header rule, and the
//! `[outbound]` table holds the operator's bounds for every stream:
//!
//! ```toml
//! [secrets]
//! openai = { env = "OPENAI_API_KEY" }     # or { file = "secrets/openai" }
//!
//! [outbound]
//! allow_networks = ["127.0.0.1/32"]       # non-public networks that may be reached
//! max_response_body = 16777216            # bytes
//!
//! [[stream]]
//! name = "agent"
//! component = "agent.wasm"
//! [stream.outbound]
//! allowed_hosts = [
//!   "https://*.groq.com",
//!   { url = "https://api.openai.com", headers = { authorization = "Bearer {{secret.openai}}" } },
//! ]
//! variables = { MODEL = "gpt-4o-mini" }   # the guest's environment
//! ```
//!
//! Clients behind NAT reach the host through the STUN and TURN servers of the
//! `[ice]` table (every stream's, unless a stream sets its own `[stream.ice]`),
//! handed out at `GET {prefix}/rtc_configuration` (see [`crate::transport::ice_servers`]):
//!
//! ```toml
//! advertise = ["203.0.113.7", "2001:db8::7"]   # one IP or several
//!
//! [secrets]
//! turn = { file = "secrets/turn" }          # coturn's static-auth-secret
//!
//! [ice]
//! servers = [{ urls = ["stun:stun.example.org:3478"] }]
//! turn_urls = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"]
//! turn_secret = "turn"                      # credentials minted per client
//! turn_ttl = 3600                           # seconds they are valid
//! # transport_policy = "relay"              # clients use the relay only
//! # tcp = false                             # no ICE-TCP on the media port
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::runtime::breaker::BreakerPolicy;
use crate::runtime::outbound::{OutboundGrant, OutboundPolicy, Secrets};
pub use crate::tenancy::TenantConfig;
use crate::transport::ice_servers::{self, IceServer, IceServers, TurnRest, TurnSecret};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// HTTP address.
    pub listen: Option<SocketAddr>,
    /// UDP address for WebRTC media, if not the HTTP one.
    pub udp: Option<SocketAddr>,
    /// Addresses put in SDP answers: one IP or a list.
    pub advertise: Option<Advertise>,
    /// STUN and TURN servers handed to clients.
    #[serde(default)]
    pub ice: IceEntry,
    /// The streams.
    #[serde(default, rename = "stream")]
    pub streams: Vec<StreamEntry>,
    /// Where tenants' streams and components are kept; needed with `[[tenant]]`.
    /// Relative to the file (absolute or relative to the current directory once loaded).
    pub data_dir: Option<PathBuf>,
    /// Tenants of the admin API.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
    /// SHA-256 (64 hex digits) of the bearer token `/metrics` asks for; without it
    /// `/metrics` answers anyone.
    pub metrics_token_sha256: Option<String>,
    /// The failure breaker's policy.
    #[serde(default)]
    pub breaker: BreakerEntry,
    /// Video encoding.
    #[serde(default)]
    pub video: VideoEntry,
    /// The HTTP listener's bounds.
    #[serde(default)]
    pub http: HttpEntry,
    /// Phone calls through Twilio.
    #[serde(default)]
    pub telephone: TelephoneEntry,
    /// Bounds of every stream's outbound requests.
    #[serde(default)]
    pub outbound: OutboundPolicyEntry,
    /// Secrets grant rules may inject, by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretEntry>,
}

/// `advertise = "203.0.113.7"` or `advertise = ["203.0.113.7", "2001:db8::7"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Advertise {
    /// One address.
    One(IpAddr),
    /// Several.
    Many(Vec<IpAddr>),
}

impl Advertise {
    /// The addresses.
    pub fn ips(&self) -> Vec<IpAddr> {
        match self {
            Advertise::One(ip) => vec![*ip],
            Advertise::Many(ips) => ips.clone(),
        }
    }
}

/// An `[ice]` (or `[stream.ice]`, `[tenant.ice]`) table: the STUN and TURN servers
/// clients get.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct IceEntry {
    /// Servers handed out as written: `{ urls = […], username = …, credential = … }`.
    #[serde(default)]
    pub servers: Vec<IceServer>,
    /// URLs of a TURN server sharing `turn_secret` with the host.
    #[serde(default)]
    pub turn_urls: Vec<String>,
    /// The `[secrets]` entry holding that server's shared secret (coturn's
    /// `static-auth-secret`): credentials are minted from it per client.
    pub turn_secret: Option<String>,
    /// Seconds minted credentials are valid (default 3600, within 60..=86400).
    pub turn_ttl: Option<u64>,
    /// `"all"` (the default) or `"relay"`: clients use relayed candidates only.
    pub transport_policy: Option<String>,
    /// Whether the host offers ICE-TCP on the media port when it shares the HTTP
    /// port (default true). Host-wide: only in `[ice]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<bool>,
}

impl IceEntry {
    /// The servers the table declares, with the shared secret from `secrets`.
    pub fn servers(&self, secrets: &Secrets) -> Result<IceServers, String> {
        let secret =
            match &self.turn_secret {
                Some(name) => Some(secrets.get(name).ok_or_else(|| {
                    format!("`turn_secret`: `{name}` is not declared in [secrets]")
                })?),
                None => None,
            };
        self.build(secret)
    }

    /// The servers, `secret` standing for the shared one (its text, not a name).
    pub(crate) fn build(&self, secret: Option<&str>) -> Result<IceServers, String> {
        let rest = match (secret, self.turn_urls.is_empty()) {
            (None, true) => None,
            (None, false) => {
                return Err(
                    "`turn_urls` needs `turn_secret` (or give the server in `servers` with its credentials)"
                        .into(),
                );
            }
            (Some(secret), _) => Some(
                TurnRest::new(
                    self.turn_urls.clone(),
                    TurnSecret::new(secret).map_err(|e| e.to_string())?,
                    self.turn_ttl.unwrap_or(ice_servers::DEFAULT_TTL.as_secs()),
                )
                .map_err(|e| e.to_string())?,
            ),
        };
        let servers = IceServers::new(self.servers.clone(), rest).map_err(|e| e.to_string())?;
        match self.transport_policy.as_deref() {
            None | Some("all") => Ok(servers),
            Some("relay") => servers.relay_only().map_err(|e| e.to_string()),
            Some(other) => Err(format!(
                "`transport_policy`: {other:?} is neither \"all\" nor \"relay\""
            )),
        }
    }

    /// Check the table without reading secrets: `declared` are the `[secrets]` names.
    fn check(&self, declared: &BTreeMap<String, SecretEntry>) -> Result<(), String> {
        if let Some(name) = &self.turn_secret
            && !declared.contains_key(name)
        {
            return Err(format!(
                "`turn_secret`: `{name}` is not declared in [secrets]"
            ));
        }
        self.build(self.turn_secret.as_ref().map(|_| "placeholder"))
            .map(drop)
    }
}

/// The `[outbound]` table: each key absent keeps the default of [`OutboundPolicy`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundPolicyEntry {
    /// Non-public networks (CIDR) handlers may reach, e.g. `"127.0.0.1/32"`.
    #[serde(default)]
    pub allow_networks: Vec<String>,
    /// Seconds.
    pub connect_timeout: Option<f64>,
    /// Seconds.
    pub first_byte_timeout: Option<f64>,
    /// Seconds.
    pub between_bytes_timeout: Option<f64>,
    /// Bytes.
    pub max_request_body: Option<u64>,
    /// Bytes.
    pub max_response_body: Option<u64>,
    /// Requests open at once per connection.
    pub max_in_flight_per_connection: Option<usize>,
    /// Requests open at once per stream.
    pub max_in_flight_per_stream: Option<usize>,
    /// Bytes sent and received per connection per minute.
    pub max_bytes_per_minute: Option<u64>,
    /// Refused requests after which an instance is ended.
    pub max_violations: Option<u32>,
}

impl OutboundPolicyEntry {
    /// The policy the table declares, or what is wrong with it.
    pub fn policy(&self) -> Result<OutboundPolicy, String> {
        let mut p = OutboundPolicy::default();
        for net in &self.allow_networks {
            p.allow_networks.push(net.parse().map_err(|_| {
                format!(
                    "[outbound] key `allow_networks`: `{net}` is not a network like 127.0.0.1/32"
                )
            })?);
        }
        for (key, v, slot) in [
            (
                "connect_timeout",
                self.connect_timeout,
                &mut p.connect_timeout,
            ),
            (
                "first_byte_timeout",
                self.first_byte_timeout,
                &mut p.first_byte_timeout,
            ),
            (
                "between_bytes_timeout",
                self.between_bytes_timeout,
                &mut p.between_bytes_timeout,
            ),
        ] {
            if let Some(v) = v {
                if !positive_seconds(v) {
                    return Err(format!(
                        "[outbound] key `{key}`: must be a positive number of seconds"
                    ));
                }
                *slot = Duration::from_secs_f64(v);
            }
        }
        p.max_request_body = self.max_request_body.unwrap_or(p.max_request_body);
        p.max_response_body = self.max_response_body.unwrap_or(p.max_response_body);
        p.max_bytes_per_minute = self.max_bytes_per_minute.unwrap_or(p.max_bytes_per_minute);
        p.max_in_flight_per_connection = self
            .max_in_flight_per_connection
            .unwrap_or(p.max_in_flight_per_connection);
        p.max_in_flight_per_stream = self
            .max_in_flight_per_stream
            .unwrap_or(p.max_in_flight_per_stream);
        p.max_violations = self.max_violations.unwrap_or(p.max_violations);
        Ok(p)
    }
}

/// Where the host reads one secret: an environment variable or a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretEntry {
    /// The variable's name.
    pub env: Option<String>,
    /// The file, relative to the configuration file.
    pub file: Option<PathBuf>,
}

impl HostConfig {
    /// Whether anything uses a secret: a grant of a stream or a shared TURN secret.
    pub fn needs_secrets(&self) -> bool {
        self.ice.turn_secret.is_some()
            || self.telephone.twilio_auth_token.is_some()
            || self
                .tenants
                .iter()
                .any(|t| t.ice.as_ref().is_some_and(|i| i.turn_secret.is_some()))
            || self.streams.iter().any(|s| {
                s.outbound.is_some() || s.ice.as_ref().is_some_and(|i| i.turn_secret.is_some())
            })
    }

    /// Read every secret the `[secrets]` table names (never printed).
    pub fn read_secrets(&self) -> Result<Secrets, String> {
        let mut pairs = Vec::new();
        for (name, entry) in &self.secrets {
            pairs.push((name.clone(), entry.read(name)?));
        }
        Secrets::new(pairs).map_err(|e| e.to_string())
    }
}

impl SecretEntry {
    /// The secret held in the file at `path` (a `serve` flag's `--*-file`).
    pub fn in_file(path: &Path) -> Self {
        Self {
            env: None,
            file: Some(path.to_path_buf()),
        }
    }

    /// The value of the secret `name` (named in errors) from its variable or file.
    pub fn read(&self, name: &str) -> Result<String, String> {
        match (&self.env, &self.file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| format!("secret `{name}`: environment variable `{var}` is not set")),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| format!("secret `{name}`: cannot read {}: {e}", file.display())),
            _ => Err(format!(
                "secret `{name}`: give exactly one of `env` and `file`"
            )),
        }
    }
}

/// A `[stream.outbound]` table (also the JSON body of a tenant's
/// `PUT /api/streams/{name}/outbound`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundEntry {
    /// Destinations, as URLs or `{ url, headers }` rules.
    #[serde(default)]
    pub allowed_hosts: Vec<AllowedHost>,
    /// Plain variables: the guest's environment.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// One entry of `allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum AllowedHost {
    /// `"https://api.example.com"`.
    Url(String),
    /// `{ url = "…", headers = { name = "template" } }`.
    Rule {
        /// The destination.
        url: String,
        /// Headers the host sets there (may use `{{secret.NAME}}`).
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

impl OutboundEntry {
    /// The grant the table declares, checked.
    pub fn grant(&self) -> Result<OutboundGrant, String> {
        let hosts = self
            .allowed_hosts
            .iter()
            .map(|h| match h {
                AllowedHost::Url(url) => (url.clone(), BTreeMap::new()),
                AllowedHost::Rule { url, headers } => (url.clone(), headers.clone()),
            })
            .collect();
        OutboundGrant::new(hosts, self.variables.clone()).map_err(|e| e.to_string())
    }
}

/// The `[http]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpEntry {
    /// Most HTTP connections open at once (default 4096); more are closed at accept.
    pub max_connections: Option<usize>,
    /// Seconds a client has to send its request headers (default 10).
    pub header_timeout: Option<f64>,
    /// Most HTTP connections one client address holds open (default 256; 0: no bound).
    pub per_ip_connections: Option<usize>,
    /// Requests per second one client address may make on average (default 50; 0: no bound).
    pub per_ip_requests_per_second: Option<u32>,
    /// Requests one client address may make at once above that rate (default 200).
    pub per_ip_burst: Option<u32>,
    /// Count requests by the last `X-Forwarded-For` address (default false; only
    /// behind a proxy that appends it).
    pub trust_forwarded_for: Option<bool>,
}

/// The `[telephone]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelephoneEntry {
    /// The `[secrets]` entry holding the Twilio account's auth token: with it, every
    /// stream's `telephone/incoming` and `telephone/handler` take only requests Twilio
    /// signed (`X-Twilio-Signature`).
    pub twilio_auth_token: Option<String>,
}

impl TelephoneEntry {
    /// The auth token, read from `secrets` (the `[secrets]` table's values).
    pub fn auth_token(
        &self,
        secrets: &Secrets,
    ) -> Result<Option<crate::http::TwilioAuthToken>, String> {
        let Some(name) = &self.twilio_auth_token else {
            return Ok(None);
        };
        let text = secrets.get(name).ok_or_else(|| {
            format!("[telephone] `twilio_auth_token`: `{name}` is not declared in [secrets]")
        })?;
        crate::http::TwilioAuthToken::new(text)
            .map(Some)
            .map_err(|e| format!("[telephone] `twilio_auth_token` (secret `{name}`): {e}"))
    }
}

/// The `[video]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoEntry {
    /// libvpx `cpu-used` of the VP8 sent to clients, -16..=16 (default 16, the
    /// fastest; 14 takes about three times as long; `--bench media` prints time and PSNR).
    pub vp8_cpu_used: Option<i32>,
    /// Largest client picture decoded, as `[width, height]` (default `[1920, 1080]`):
    /// a frame announcing more is dropped before decoding and the client warned.
    pub max_size: Option<[u32; 2]>,
}

/// The `[breaker]` table: each key absent keeps the default of [`BreakerPolicy`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerEntry {
    /// Failed instances within `window` that open the breaker; 0 never opens it.
    pub failures: Option<usize>,
    /// The window, in seconds.
    pub window: Option<f64>,
    /// The first cool-down, in seconds.
    pub cooldown: Option<f64>,
    /// The longest cool-down, in seconds.
    pub max_cooldown: Option<f64>,
}

impl BreakerEntry {
    /// The policy the table declares (checked by [`load`]).
    pub fn policy(&self) -> BreakerPolicy {
        let default = BreakerPolicy::default();
        let secs = |v: Option<f64>, d| {
            v.and_then(|v| Duration::try_from_secs_f64(v).ok())
                .unwrap_or(d)
        };
        BreakerPolicy {
            threshold: self.failures.unwrap_or(default.threshold),
            window: secs(self.window, default.window),
            first_cooldown: secs(self.cooldown, default.first_cooldown),
            max_cooldown: secs(self.max_cooldown, default.max_cooldown),
        }
    }

    fn check(&self) -> Result<(), String> {
        for (key, v) in [
            ("window", self.window),
            ("cooldown", self.cooldown),
            ("max_cooldown", self.max_cooldown),
        ] {
            if let Some(v) = v
                && !positive_seconds(v)
            {
                return Err(format!(
                    "[breaker] key `{key}`: must be a positive number of seconds"
                ));
            }
        }
        Ok(())
    }
}

/// One `[[stream]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamEntry {
    /// Name, unique in the file: letters, digits, `-` and `_`.
    pub name: Spanned<String>,
    /// Path of the component, relative to the file.
    pub component: Spanned<PathBuf>,
    /// Mount prefix; `/streams/{name}` when absent.
    pub prefix: Option<Spanned<String>>,
    /// FastRTC's `concurrency_limit`.
    pub concurrency_limit: Option<usize>,
    /// FastRTC's `time_limit`, in seconds.
    pub time_limit: Option<f64>,
    /// Seconds an offer may take to connect (default 30).
    pub connect_timeout: Option<f64>,
    /// What the stream's handler may reach.
    pub outbound: Option<OutboundEntry>,
    /// The stream's own STUN and TURN servers, instead of the host's `[ice]`.
    pub ice: Option<IceEntry>,
}

/// A configuration file that cannot be used, naming file, line and key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// What is wrong, with line and key.
    pub message: String,
}

impl StreamEntry {
    /// The prefix the stream is mounted at.
    pub fn prefix(&self) -> String {
        match &self.prefix {
            Some(p) => p.get_ref().trim_end_matches('/').to_string(),
            None => format!("/streams/{}", self.name.get_ref()),
        }
    }
}

/// Whether `v` is a number of seconds a [`Duration`] holds and that is above zero.
fn positive_seconds(v: f64) -> bool {
    v > 0.0 && Duration::try_from_secs_f64(v).is_ok()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Read and check a configuration file; component paths come back absolute or
/// relative to the current directory.
pub fn load(path: &Path) -> Result<HostConfig, ConfigError> {
    let file = path.display().to_string();
    let err = |message: String| ConfigError {
        file: file.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut config: HostConfig =
        toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
    if config.streams.is_empty() && config.tenants.is_empty() {
        return Err(err("no [[stream]] or [[tenant]] declared".into()));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    if !config.tenants.is_empty() {
        let Some(dir) = &config.data_dir else {
            return Err(err(
                "[[tenant]] needs `data_dir`, the directory where their streams are kept".into(),
            ));
        };
        config.data_dir = Some(base.join(dir));
        crate::tenancy::Tenants::new(config.tenants.clone()).map_err(err)?;
    }
    if let Some(hash) = &config.metrics_token_sha256
        && crate::tenancy::TokenHash::parse(hash).is_none()
    {
        return Err(err(
            "metrics_token_sha256 must be 64 hex digits (e.g. from `printf %s \"$TOKEN\" | sha256sum`)"
                .into(),
        ));
    }
    config.breaker.check().map_err(err)?;
    config.outbound.policy().map_err(err)?;
    if let Some(name) = &config.telephone.twilio_auth_token
        && !config.secrets.contains_key(name)
    {
        return Err(err(format!(
            "[telephone] `twilio_auth_token`: `{name}` is not declared in [secrets]"
        )));
    }
    config
        .ice
        .check(&config.secrets)
        .map_err(|e| err(format!("[ice] {e}")))?;
    for t in &config.tenants {
        if let Some(ice) = &t.ice {
            if ice.tcp.is_some() {
                return Err(err(format!(
                    "tenant `{}`, [tenant.ice] `tcp`: ICE-TCP is host-wide; set it in [ice]",
                    t.name
                )));
            }
            ice.check(&config.secrets)
                .map_err(|e| err(format!("tenant `{}`, [tenant.ice] {e}", t.name)))?;
        }
    }
    if let Some(ips) = config.advertise.as_ref().map(Advertise::ips)
        && (ips.is_empty() || ips.len() > crate::MAX_ADVERTISED)
    {
        return Err(err(format!(
            "`advertise`: {} addresses; give 1 to {}",
            ips.len(),
            crate::MAX_ADVERTISED
        )));
    }
    for entry in config.secrets.values_mut() {
        if let Some(file) = &entry.file {
            entry.file = Some(base.join(file));
        }
    }
    if let Some(v) = config.video.vp8_cpu_used
        && !(-16..=16).contains(&v)
    {
        return Err(err(format!(
            "[video] key `vp8_cpu_used`: {v} is outside -16..=16"
        )));
    }
    let mut names = std::collections::HashSet::new();
    let mut prefixes = std::collections::HashSet::new();
    for s in &mut config.streams {
        let name = s.name.get_ref();
        let at = |span: std::ops::Range<usize>, key: &str, what: String| {
            err(format!(
                "line {}, key `{key}`: {what}",
                line_of(&text, span.start)
            ))
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(at(
                s.name.span(),
                "name",
                format!("{name:?} must be letters, digits, - or _"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(at(
                s.name.span(),
                "name",
                format!("stream `{name}` is declared twice"),
            ));
        }
        if let Some(p) = &s.prefix
            && !p.get_ref().starts_with('/')
        {
            return Err(at(
                p.span(),
                "prefix",
                format!("{:?} must start with /", p.get_ref()),
            ));
        }
        let prefix = s.prefix();
        if !config.tenants.is_empty()
            && ["/t", "/api", "/metrics"]
                .iter()
                .any(|r| prefix == *r || prefix.starts_with(&format!("{r}/")))
        {
            let span = s.prefix.as_ref().map_or(s.name.span(), Spanned::span);
            return Err(at(
                span,
                "prefix",
                format!("prefix {prefix:?} is taken by tenants' streams, /api or /metrics"),
            ));
        }
        if !prefixes.insert(prefix.clone()) {
            let span = s.prefix.as_ref().map_or(s.name.span(), Spanned::span);
            return Err(at(
                span,
                "prefix",
                format!("prefix {prefix:?} is used twice"),
            ));
        }
        let component = base.join(s.component.get_ref());
        if !component.is_file() {
            return Err(at(
                s.component.span(),
                "component",
                format!("{} is not a file", component.display()),
            ));
        }
        let span = s.component.span();
        s.component = Spanned::new(span, component);
        if let Some(outbound) = &s.outbound {
            let grant = outbound
                .grant()
                .map_err(|e| err(format!("stream `{name}`: {e}")))?;
            if let Some(secret) = grant.secrets().find(|n| !config.secrets.contains_key(*n)) {
                return Err(err(format!(
                    "stream `{name}`: `{{{{secret.{secret}}}}}` is not declared in [secrets]"
                )));
            }
        }
        if let Some(ice) = &s.ice {
            if ice.tcp.is_some() {
                return Err(err(format!(
                    "stream `{name}`, [stream.ice] `tcp`: ICE-TCP is host-wide; set it in [ice]"
                )));
            }
            ice.check(&config.secrets)
                .map_err(|e| err(format!("stream `{name}`, [stream.ice] {e}")))?;
        }
        for (key, v) in [
            ("time_limit", s.time_limit),
            ("connect_timeout", s.connect_timeout),
        ] {
            if let Some(v) = v
                && !positive_seconds(v)
            {
                return Err(err(format!(
                    "stream `{name}`, key `{key}`: must be a positive number of seconds"
                )));
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(tag: &str, text: &str) -> Result<HostConfig, ConfigError> {
        let dir = std::env::temp_dir().join(format!("wasmrtc-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wasmrtc.toml");
        std::fs::write(&path, text).unwrap();
        let r = load(&path);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    const TENANT: &str = "[[tenant]]\nname = \"acme\"\ntoken_sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nmax_streams = 3\n";

    #[test]
    fn tenants_need_a_data_dir_and_get_default_quotas() {
        let err = load_text("no-dir", TENANT).unwrap_err();
        assert!(err.message.contains("data_dir"), "{err}");
        let config = load_text("tenant", &format!("data_dir = \"data\"\n{TENANT}")).unwrap();
        assert!(config.streams.is_empty());
        assert!(config.data_dir.unwrap().ends_with("data"));
        let t = &config.tenants[0];
        assert_eq!((t.name.as_str(), t.max_streams), ("acme", 3));
        assert_eq!(
            t.max_component_mb,
            crate::tenancy::tenants::defaults::max_component_mb()
        );
    }

    #[test]
    fn the_breaker_table_sets_its_policy_and_refuses_bad_seconds() {
        let head = format!("data_dir = \"d\"\n{TENANT}");
        let c = load_text(
            "breaker",
            &format!("{head}[breaker]\nfailures = 2\ncooldown = 30\n"),
        )
        .unwrap();
        let p = c.breaker.policy();
        assert_eq!(p.threshold, 2);
        assert_eq!(p.first_cooldown, Duration::from_secs(30));
        assert_eq!(p.window, BreakerPolicy::default().window);
        let e = load_text("breaker-bad", &format!("{head}[breaker]\nwindow = -1\n")).unwrap_err();
        assert!(e.message.contains("`window`"), "{}", e.message);
        let e = load_text(
            "breaker-huge",
            &format!("{head}[breaker]\ncooldown = 1e30\n"),
        )
        .unwrap_err();
        assert!(e.message.contains("`cooldown`"), "{}", e.message);
        let e = load_text("breaker-key", &format!("{head}[breaker]\nfailure = 1\n")).unwrap_err();
        assert!(e.message.contains("failure"), "{}", e.message);
    }

    #[test]
    fn the_video_table_sets_the_vp8_speed_within_its_range() {
        let head = format!("data_dir = \"d\"\n{TENANT}");
        let c = load_text("video", &format!("{head}[video]\nvp8_cpu_used = 16\n")).unwrap();
        assert_eq!(c.video.vp8_cpu_used, Some(16));
        let e = load_text("video-bad", &format!("{head}[video]\nvp8_cpu_used = 17\n")).unwrap_err();
        assert!(e.message.contains("vp8_cpu_used"), "{}", e.message);
    }

    #[test]
    fn outbound_grants_policies_and_secrets_are_checked() {
        let dir =
            std::env::temp_dir().join(format!("wasmrtc-config-outbound-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("h.wasm"), b"").unwrap();
        let stream = "[[stream]]\nname = \"a\"\ncomponent = \"h.wasm\"\n[stream.outbound]\n";
        let try_load = |text: &str| {
            let p = dir.join("c.toml");
            std::fs::write(&p, text).unwrap();
            load(&p)
        };
        let c = try_load(&format!(
            "[secrets]\nk = {{ env = \"WASMRTC_TEST_UNSET\" }}\n[outbound]\nallow_networks = [\"127.0.0.1/32\"]\n{stream}allowed_hosts = [\"http://127.0.0.1:*\", {{ url = \"https://api.example.com\", headers = {{ authorization = \"Bearer {{{{secret.k}}}}\" }} }}]\nvariables = {{ MODEL = \"m\" }}\n"
        ))
        .unwrap();
        let grant = c.streams[0].outbound.as_ref().unwrap().grant().unwrap();
        assert_eq!(grant.hosts.len(), 2);
        assert_eq!(c.outbound.policy().unwrap().allow_networks.len(), 1);
        let e = c.read_secrets().unwrap_err();
        assert!(e.contains("WASMRTC_TEST_UNSET"), "{e}");
        let e = try_load(&format!("{stream}allowed_hosts = [\"https://*\"]\n")).unwrap_err();
        assert!(e.message.contains("wildcard"), "{e}");
        let e = try_load(&format!(
            "{stream}allowed_hosts = [{{ url = \"https://x.example\", headers = {{ a = \"{{{{secret.none}}}}\" }} }}]\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("[secrets]"), "{e}");
        let e = try_load(&format!("[outbound]\nallow_networks = [\"lan\"]\n{stream}")).unwrap_err();
        assert!(e.message.contains("allow_networks"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_tenants_are_refused() {
        let bad_hash = TENANT.replace("9f86", "zz86");
        let err = load_text("bad-hash", &format!("data_dir = \"d\"\n{bad_hash}")).unwrap_err();
        assert!(err.message.contains("64 hex digits"), "{err}");
        let err = load_text(
            "unknown-key",
            &format!("data_dir = \"d\"\n{TENANT}colour = 1\n"),
        )
        .unwrap_err();
        assert!(err.message.contains("colour"), "{err}");
        let taken = format!(
            "data_dir = \"d\"\n{TENANT}[[stream]]\nname = \"x\"\ncomponent = \"x.wasm\"\nprefix = \"/api/x\"\n"
        );
        let err = load_text("taken", &taken).unwrap_err();
        assert!(err.message.contains("is taken"), "{err}");
        let err = load_text(
            "bad-metrics-hash",
            &format!("data_dir = \"d\"\nmetrics_token_sha256 = \"abc\"\n{TENANT}"),
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("metrics_token_sha256 must be 64 hex digits"),
            "{err}"
        );
        let err = load_text("empty", "listen = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.message.contains("[[tenant]]"), "{err}");
    }
}

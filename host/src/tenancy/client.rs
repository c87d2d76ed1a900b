//! A small client of the admin API, behind `wasmrtc deploy`, `wasmrtc streams` and
//! `wasmrtc rollback`. Plain HTTP: put a TLS-terminating proxy in front of a host
//! reached over the network.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// A client of one server, as one tenant.
pub struct Client {
    http: reqwest::Client,
    server: String,
    token: String,
}

/// What the server answered: status and JSON body (`Null` when not JSON).
struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {}", self.status))
    }

    /// The body if the status is a success, else a readable error.
    fn ok(self, what: &str) -> anyhow::Result<Value> {
        match self.status {
            200..=299 => Ok(self.body),
            401 => bail!(
                "{what}: the server refused the token (401: {})",
                self.message()
            ),
            status => bail!("{what}: {} (HTTP {status})", self.message()),
        }
    }
}

impl Client {
    /// A client of `server` (`http://host:port`) with a tenant's bearer `token`.
    pub fn new(server: &str, token: &str) -> anyhow::Result<Self> {
        let server = server.trim_end_matches('/').to_string();
        if server.starts_with("https://") {
            bail!(
                "{server}: this client speaks plain HTTP only; use http:// (through an SSH tunnel or a TLS-terminating proxy)"
            );
        }
        if !server.starts_with("http://") {
            bail!("{server}: the server must be a URL like http://127.0.0.1:8000");
        }
        if token.is_empty() {
            bail!("no token: pass --token or set WASMRTC_TOKEN");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()?;
        Ok(Self {
            http,
            server,
            token: token.to_string(),
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Reply> {
        let reply = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(e, what))?;
        let status = reply.status().as_u16();
        let bytes = reply
            .bytes()
            .await
            .map_err(|e| anyhow!("{what}: the reply was cut short: {e}"))?;
        Ok(Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    fn unreachable(&self, e: reqwest::Error, what: &str) -> anyhow::Error {
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        if e.is_connect() {
            anyhow!("{what}: cannot reach {}: {cause}", self.server)
        } else if e.is_timeout() {
            anyhow!("{what}: {} did not answer in time", self.server)
        } else {
            anyhow!("{what}: request to {} failed: {cause}", self.server)
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// The tenant's quotas and streams (`GET /api/streams`).
    pub async fn streams(&self) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url("/api/streams")), "listing streams")
            .await?
            .ok("listing streams")
    }

    /// Upload `file` as a new version of `stream` (created first if it does not exist)
    /// and activate it. The server's answer to the upload.
    pub async fn deploy(&self, stream: &str, file: &Path) -> anyhow::Result<Value> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let what = format!("deploying {} to `{stream}`", file.display());
        // The tenant's quota, checked here too: a server refusing a large body before
        // reading it may reset the connection before its answer arrives.
        let listing = self.streams().await?;
        if let Some(mb) = listing
            .pointer("/quotas/max_component_mb")
            .and_then(Value::as_u64)
            && bytes.len() as u64 > mb << 20
        {
            bail!(
                "{what}: the component is {} bytes, more than your quota of {mb} MiB",
                bytes.len()
            );
        }
        let exists = listing
            .get("streams")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter()
                    .any(|s| s.get("name").and_then(Value::as_str) == Some(stream))
            });
        if !exists {
            self.send(
                self.http
                    .post(self.url("/api/streams"))
                    .json(&json!({"name": stream})),
                &what,
            )
            .await?
            .ok(&format!("creating stream `{stream}`"))?;
        }
        let path = format!("/api/streams/{stream}/versions");
        self.send(
            self.http
                .post(self.url(&path))
                .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                .body(bytes),
            &what,
        )
        .await?
        .ok(&what)
    }

    /// Undo the last activation of `stream`.
    pub async fn rollback(&self, stream: &str) -> anyhow::Result<Value> {
        let what = format!("rolling back `{stream}`");
        let path = format!("/api/streams/{stream}/rollback");
        self.send(self.http.post(self.url(&path)), &what)
            .await?
            .ok(&what)
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }
}

/// The `wasmrtc streams` table.
pub fn streams_table(listing: &Value) -> String {
    let mut out = format!(
        "tenant {}: {} connection(s) now\n",
        listing.get("tenant").and_then(Value::as_str).unwrap_or("?"),
        listing
            .get("connections")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    );
    let streams = listing
        .get("streams")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if streams.is_empty() {
        out += "no streams\n";
        return out;
    }
    out += &format!(
        "{:<24} {:>7} {:>11}  {}\n",
        "STREAM", "ACTIVE", "CONNECTIONS", "URL"
    );
    for s in streams {
        let active = s
            .get("active_version")
            .and_then(Value::as_u64)
            .map_or("-".to_string(), |v| format!("v{v}"));
        out += &format!(
            "{:<24} {:>7} {:>11}  {}{}\n",
            s.get("name").and_then(Value::as_str).unwrap_or("?"),
            active,
            s.get("connections").and_then(Value::as_u64).unwrap_or(0),
            s.get("url").and_then(Value::as_str).unwrap_or(""),
            s.get("error")
                .and_then(Value::as_str)
                .map(|e| format!("  (error: {e})"))
                .unwrap_or_default(),
        );
    }
    out
}

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

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// HTTP address.
    pub listen: Option<SocketAddr>,
    /// UDP address for WebRTC media, if not the HTTP one.
    pub udp: Option<SocketAddr>,
    /// Address put in SDP answers.
    pub advertise: Option<IpAddr>,
    /// The streams.
    #[serde(default, rename = "stream")]
    pub streams: Vec<StreamEntry>,
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
    if config.streams.is_empty() {
        return Err(err("no [[stream]] declared".into()));
    }
    let base = path.parent().unwrap_or(Path::new("."));
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
        for (key, v) in [
            ("time_limit", s.time_limit),
            ("connect_timeout", s.connect_timeout),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(err(format!(
                    "stream `{name}`, key `{key}`: must be a positive number of seconds"
                )));
            }
        }
    }
    Ok(config)
}

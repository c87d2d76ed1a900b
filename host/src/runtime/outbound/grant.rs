//! What one stream may reach: its allowed hosts, the headers the host adds for each,
//! and the plain variables its guest may read.

use std::collections::BTreeMap;

/// A scheme a grant may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `http://`.
    Http,
    /// `https://`.
    Https,
}

impl Scheme {
    /// The scheme's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// A host name pattern: a name, `*.suffix` (any name under the suffix) or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostName {
    Exact(String),
    Subdomains(String),
}

/// One allowed destination, `scheme://host[:port]`, matched on a request's final URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Scheme,
    host: HostName,
    /// `None` = any port (`:*`).
    port: Option<u16>,
    text: String,
}

/// A grant entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbound grant `{entry}`: {why}")]
pub struct GrantError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub why: String,
}

fn bad(entry: &str, why: impl Into<String>) -> GrantError {
    GrantError {
        entry: entry.to_string(),
        why: why.into(),
    }
}

/// A host name as the allowlist compares it: lower case, no trailing dot, IPv6
/// without brackets.
pub(crate) fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.')
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

impl HostPattern {
    /// Parse `https://api.openai.com`, `https://*.groq.com:443`, `http://127.0.0.1:*`.
    pub fn parse(text: &str) -> Result<Self, GrantError> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad(text, "must start with http:// or https://"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(bad(text, format!("scheme `{other}` is not http or https"))),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad(
                text,
                "names a scheme, a host and a port only (no path, query or user)",
            ));
        }
        // IPv6 literals are bracketed: split the port after the closing bracket.
        let (host, port) = match rest.rfind(':') {
            Some(i)
                if !rest[i..].contains(']')
                    && (rest.starts_with('[') || !rest[..i].contains(':')) =>
            {
                (&rest[..i], Some(&rest[i + 1..]))
            }
            _ => (rest, None),
        };
        let port = match port {
            None => Some(scheme.default_port()),
            Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad(text, format!("port `{p}` is not 1-65535 or *")))?,
            ),
        };
        let host = normalize_host(host);
        if host.is_empty() {
            return Err(bad(text, "has no host"));
        }
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(bad(text, "a wildcard is `*.` before a domain"));
            }
            HostName::Subdomains(suffix.to_string())
        } else if host.contains('*') {
            return Err(bad(
                text,
                "a wildcard may only open the host (`*.example.com`); every host is not grantable",
            ));
        } else {
            HostName::Exact(host)
        };
        Ok(Self {
            scheme,
            host,
            port,
            text: text.to_string(),
        })
    }

    /// Whether a request to `scheme://host:port` matches.
    pub fn matches(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        if scheme != self.scheme || self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = normalize_host(host);
        match &self.host {
            HostName::Exact(h) => *h == host,
            HostName::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }

    /// Whether every request this pattern allows, `ceiling` allows too.
    pub fn within(&self, ceiling: &HostPattern) -> bool {
        if self.scheme != ceiling.scheme {
            return false;
        }
        if let Some(cp) = ceiling.port
            && self.port != Some(cp)
        {
            return false;
        }
        match (&self.host, &ceiling.host) {
            // A port-less pattern fits only a port-less ceiling (checked above),
            // which ignores the port.
            (HostName::Exact(h), _) => ceiling.matches(self.scheme, h, self.port.unwrap_or(0)),
            (HostName::Subdomains(s), HostName::Subdomains(c)) => {
                s == c || s.ends_with(&format!(".{c}"))
            }
            (HostName::Subdomains(_), HostName::Exact(_)) => false,
        }
    }

    /// The pattern as written (also its metrics label).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Headers the host sets on requests to one allowed destination. Values may name
/// secrets as `{{secret.NAME}}`; they are filled in by the host after the request
/// has left the guest, so the guest never sees them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderRule {
    /// (lower-case name, template).
    pub headers: Vec<(http::HeaderName, String)>,
}

impl HeaderRule {
    /// The secret names the templates use.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().flat_map(|(_, t)| secret_names(t))
    }
}

/// The `NAME`s of every `{{secret.NAME}}` in a template.
pub(crate) fn secret_names(template: &str) -> impl Iterator<Item = &str> {
    template
        .split("{{secret.")
        .skip(1)
        .filter_map(|part| part.split_once("}}").map(|(name, _)| name))
}

/// Whether a secret name is acceptable: 1-64 of letters, digits, `-` and `_`.
pub fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One allowed destination and the headers the host adds there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    /// Where.
    pub pattern: HostPattern,
    /// What the host adds.
    pub headers: HeaderRule,
}

/// Everything one stream is granted beyond its sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundGrant {
    /// Allowed destinations, in order; the first match applies.
    pub hosts: Vec<HostRule>,
    /// Plain variables the guest reads as environment variables.
    pub variables: BTreeMap<String, String>,
}

/// Most hosts, headers and variables one grant may hold.
pub const MAX_GRANT_ENTRIES: usize = 64;
/// Longest header template or variable value, in bytes.
pub const MAX_GRANT_VALUE: usize = 4096;

impl OutboundGrant {
    /// Build a grant from its parts, checking every entry.
    pub fn new(
        hosts: Vec<(String, BTreeMap<String, String>)>,
        variables: BTreeMap<String, String>,
    ) -> Result<Self, GrantError> {
        if hosts.len() > MAX_GRANT_ENTRIES || variables.len() > MAX_GRANT_ENTRIES {
            return Err(bad(
                "outbound",
                format!("at most {MAX_GRANT_ENTRIES} hosts and {MAX_GRANT_ENTRIES} variables"),
            ));
        }
        let mut rules = Vec::new();
        for (url, headers) in hosts {
            let pattern = HostPattern::parse(&url)?;
            if headers.len() > MAX_GRANT_ENTRIES {
                return Err(bad(&url, format!("at most {MAX_GRANT_ENTRIES} headers")));
            }
            let mut rule = HeaderRule::default();
            for (name, template) in headers {
                let header = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| bad(&url, format!("`{name}` is not a header name")))?;
                if template.len() > MAX_GRANT_VALUE {
                    return Err(bad(
                        &url,
                        format!("header `{name}` is over {MAX_GRANT_VALUE} bytes"),
                    ));
                }
                for secret in secret_names(&template) {
                    if !valid_secret_name(secret) {
                        return Err(bad(
                            &url,
                            format!("`{{{{secret.{secret}}}}}` is not a secret name"),
                        ));
                    }
                }
                rule.headers.push((header, template));
            }
            rules.push(HostRule {
                pattern,
                headers: rule,
            });
        }
        for (k, v) in &variables {
            let ok_name = !k.is_empty()
                && k.len() <= 64
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok_name {
                return Err(bad(k, "a variable name is 1-64 letters, digits and `_`"));
            }
            if v.len() > MAX_GRANT_VALUE {
                return Err(bad(
                    k,
                    format!("a variable is at most {MAX_GRANT_VALUE} bytes"),
                ));
            }
        }
        Ok(Self {
            hosts: rules,
            variables,
        })
    }

    /// The rule a request to `scheme://host:port` falls under.
    pub fn rule_for(&self, scheme: Scheme, host: &str, port: u16) -> Option<&HostRule> {
        self.hosts
            .iter()
            .find(|r| r.pattern.matches(scheme, host, port))
    }

    /// The hosts this grant names outside `ceiling` (empty when it fits).
    pub fn outside(&self, ceiling: &[HostPattern]) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|r| !ceiling.iter().any(|c| r.pattern.within(c)))
            .map(|r| r.pattern.as_str().to_string())
            .collect()
    }

    /// Every secret name the grant's headers use.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().flat_map(|r| r.headers.secrets())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_scheme_host_and_port() {
        let p = HostPattern::parse("https://api.openai.com").unwrap();
        assert!(p.matches(Scheme::Https, "api.openai.com", 443));
        assert!(p.matches(Scheme::Https, "API.OpenAI.com.", 443));
        assert!(!p.matches(Scheme::Http, "api.openai.com", 443));
        assert!(!p.matches(Scheme::Https, "api.openai.com", 8443));
        assert!(!p.matches(Scheme::Https, "evil-api.openai.com", 443));

        let w = HostPattern::parse("https://*.groq.com:443").unwrap();
        assert!(w.matches(Scheme::Https, "api.groq.com", 443));
        assert!(w.matches(Scheme::Https, "a.b.groq.com", 443));
        assert!(!w.matches(Scheme::Https, "groq.com", 443));
        assert!(!w.matches(Scheme::Https, "evilgroq.com", 443));

        let any = HostPattern::parse("http://127.0.0.1:*").unwrap();
        assert!(any.matches(Scheme::Http, "127.0.0.1", 9000));
        let v6 = HostPattern::parse("http://[::1]:8080").unwrap();
        assert!(v6.matches(Scheme::Http, "[::1]", 8080));
        assert!(v6.matches(Scheme::Http, "::1", 8080));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (text, why) in [
            ("api.openai.com", "must start with"),
            ("ftp://x.com", "not http or https"),
            ("https://x.com/v1", "no path"),
            ("https://user@x.com", "no path"),
            ("https://x.com:0", "not 1-65535"),
            ("https://*", "wildcard"),
            ("https://a.*.com", "wildcard"),
            ("https://", "no host"),
        ] {
            let e = HostPattern::parse(text).unwrap_err();
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn a_grant_fits_its_ceiling_or_names_what_does_not() {
        let ceiling = vec![
            HostPattern::parse("https://*.openai.com").unwrap(),
            HostPattern::parse("http://127.0.0.1:*").unwrap(),
        ];
        let g = OutboundGrant::new(
            vec![
                ("https://api.openai.com".into(), BTreeMap::new()),
                ("https://*.eu.openai.com".into(), BTreeMap::new()),
                ("http://127.0.0.1:9000".into(), BTreeMap::new()),
                ("https://api.groq.com".into(), BTreeMap::new()),
                ("https://*.com".into(), BTreeMap::new()),
            ],
            BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            g.outside(&ceiling),
            vec!["https://api.groq.com", "https://*.com"]
        );
    }

    #[test]
    fn header_templates_name_their_secrets() {
        let g = OutboundGrant::new(
            vec![(
                "https://api.openai.com".into(),
                [(
                    "authorization".to_string(),
                    "Bearer {{secret.openai}}".to_string(),
                )]
                .into(),
            )],
            [(
                "API_BASE".to_string(),
                "https://api.openai.com/v1".to_string(),
            )]
            .into(),
        )
        .unwrap();
        assert_eq!(g.secrets().collect::<Vec<_>>(), vec!["openai"]);
        let e = OutboundGrant::new(
            vec![(
                "https://api.openai.com".into(),
                [("authorization".to_string(), "{{secret.a b}}".to_string())].into(),
            )],
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a secret name"), "{e}");
    }
}

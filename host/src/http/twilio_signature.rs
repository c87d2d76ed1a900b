//! Twilio's request signature (`X-Twilio-Signature`): with the account's auth token
//! set ([`crate::Transport::with_twilio_auth_token`]), a call's webhook and its Media
//! Streams WebSocket are served only to requests Twilio signed, so nobody else can
//! place calls into a handler (and spend its instances) by posting to the URL.
//!
//! The signature is `base64(HMAC-SHA1(auth_token, url + params))`: `url` is the full
//! URL Twilio requested (scheme, host, port as configured, path, query) and `params`
//! the form parameters of a POST, sorted by name (then value), each name followed by
//! its value with no separator. A WebSocket handshake has no parameters. The URL is
//! rebuilt from the request as the TwiML's is ([`super::telephone`]), and since
//! Twilio may sign it with or without the scheme's default port, both are tried.
//! The comparison is constant-time ([`Mac::verify_slice`]).

use std::fmt;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The longest signature header taken (a real one is 28 characters).
const MAX_SIGNATURE: usize = 256;

/// An account's auth token; never shown by `Debug`.
#[derive(Clone)]
pub struct TwilioAuthToken(String);

impl fmt::Debug for TwilioAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TwilioAuthToken(..)")
    }
}

/// Why an auth token cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the Twilio auth token must be 1..=256 printable ASCII characters")]
pub struct BadAuthToken;

impl TwilioAuthToken {
    /// The token as the Twilio console shows it (surrounding whitespace dropped).
    pub fn new(token: &str) -> Result<Self, BadAuthToken> {
        let token = token.trim();
        if token.is_empty() || token.len() > 256 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BadAuthToken);
        }
        Ok(Self(token.to_owned()))
    }

    /// Whether `signature` signs `url` with `params` (a POST's form parameters).
    pub fn verifies(&self, signature: &str, url: &str, params: &[(String, String)]) -> bool {
        if signature.len() > MAX_SIGNATURE {
            return false;
        }
        let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim())
        else {
            return false;
        };
        let mut sorted: Vec<&(String, String)> = params.iter().collect();
        sorted.sort();
        url_variants(url).into_iter().any(|url| {
            let mut mac =
                Hmac::<Sha1>::new_from_slice(self.0.as_bytes()).expect("HMAC takes any key");
            mac.update(url.as_bytes());
            for (name, value) in &sorted {
                mac.update(name.as_bytes());
                mac.update(value.as_bytes());
            }
            mac.verify_slice(&expected).is_ok()
        })
    }
}

/// `url`, and `url` with its scheme's default port added (or removed when present).
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let default = match scheme {
        "https" | "wss" => "443",
        "http" | "ws" => "80",
        _ => return variants,
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    // The port follows the last colon, unless that colon is inside an IPv6 literal.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let other = match port {
        Some(p) if p == default => host.to_owned(),
        Some(_) => return variants,
        None => format!("{host}:{default}"),
    };
    variants.push(format!("{scheme}://{other}{path}"));
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twilio's documented example: this URL, these parameters and the auth token
    /// `12345` give `0/KCTR6DLpKmkAf8muzZqo1nDgQ=`.
    #[test]
    fn twilios_documented_example_verifies() {
        let token = TwilioAuthToken::new("12345").unwrap();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut reversed = params.clone();
        reversed.reverse();
        assert!(token.verifies("0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, &reversed));
        assert!(!token.verifies("0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, &params[1..]));
        assert!(!token.verifies("0/KCTR6DLpKmkAf8muzZqo1nDgR=", url, &params));
        assert!(!token.verifies("not base64!", url, &params));
        let other = TwilioAuthToken::new("54321").unwrap();
        assert!(!other.verifies("0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, &params));
    }

    #[test]
    fn the_default_port_may_be_signed_or_not() {
        assert_eq!(
            url_variants("wss://a.example/x?y=1"),
            ["wss://a.example/x?y=1", "wss://a.example:443/x?y=1"]
        );
        assert_eq!(
            url_variants("https://a.example:443/x"),
            ["https://a.example:443/x", "https://a.example/x"]
        );
        assert_eq!(
            url_variants("ws://127.0.0.1:8000/x"),
            ["ws://127.0.0.1:8000/x"]
        );
        assert_eq!(
            url_variants("https://[::1]/x"),
            ["https://[::1]/x", "https://[::1]:443/x"]
        );
    }

    #[test]
    fn tokens_are_checked_and_never_shown() {
        assert!(TwilioAuthToken::new("").is_err());
        assert!(TwilioAuthToken::new("a b").is_err());
        let t = TwilioAuthToken::new(" abc\n").unwrap();
        assert_eq!(format!("{t:?}"), "TwilioAuthToken(..)");
    }
}

//! Phone calls through Twilio: `POST {prefix}/telephone/incoming` answers the call with
//! TwiML that connects it to `WS {prefix}/telephone/handler` (Twilio Media Streams).
//!
//! The stream URL in the TwiML is built from the request, keeping the port (FastRTC
//! drops it):
//! - host: the first `X-Forwarded-Host`, else `Host`, else the request URI's authority;
//! - scheme: `wss` when the first `X-Forwarded-Proto` is `https` (or `wss`), `ws` when it
//!   is `http` (or `ws`); without that header, `ws` for a loopback host (`localhost`,
//!   `127.0.0.0/8`, `::1`: local testing, where nothing terminates TLS) and `wss` for
//!   any other host (Twilio needs TLS; the host is assumed to sit behind a proxy that
//!   terminates it);
//! - path: the prefix the stream is mounted at, then `/telephone/handler`.
//!
//! With the account's auth token set, both routes check `X-Twilio-Signature` over the
//! URL rebuilt the same way (`https`/`wss` as above) before anything else
//! ([`super::twilio_signature`]).

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{OriginalUri, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::twilio_signature::TwilioAuthToken;
use crate::Stream;
use crate::session::stats::{self, Counter};
use crate::session::{Flavour, FormatRequest};

const INCOMING: &str = "/telephone/incoming";
const HANDLER: &str = "/telephone/handler";

/// TwiML connecting the call to this stream's media socket (503 while the host is
/// shutting down: the call is not answered; 403 when a set auth token did not sign it).
pub(crate) async fn incoming(
    State(stream): State<Stream>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if stream.inner.transport.lifecycle.is_draining() {
        return super::websocket::shutting_down();
    }
    let (secure, authority) = match origin(&headers, &uri) {
        Ok(origin) => origin,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(token) = &stream.inner.transport.twilio {
        let scheme = if secure { "https" } else { "http" };
        let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        if let Err(refusal) = check_signature(token, &headers, scheme, &authority, &uri, &params) {
            return refusal.into_response();
        }
    }
    let scheme = if secure { "wss" } else { "ws" };
    let prefix = uri.path().strip_suffix(INCOMING).unwrap_or("");
    let url = format!("{scheme}://{authority}{prefix}{HANDLER}");
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Connecting to the AI assistant.</Say><Connect><Stream url="{}" /></Connect><Say>The call has been disconnected.</Say></Response>"#,
        xml_escape(&url)
    );
    ([(CONTENT_TYPE, "application/xml")], body).into_response()
}

/// Twilio Media Streams (403 when a set auth token did not sign the handshake).
pub(crate) async fn handler(
    State(stream): State<Stream>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if stream.inner.transport.lifecycle.is_draining() {
        return super::websocket::shutting_down();
    }
    if let Some(token) = &stream.inner.transport.twilio {
        let (secure, authority) = match origin(&headers, &uri) {
            Ok(origin) => origin,
            Err(refusal) => return refusal.into_response(),
        };
        let scheme = if secure { "wss" } else { "ws" };
        if let Err(refusal) = check_signature(token, &headers, scheme, &authority, &uri, &[]) {
            return refusal.into_response();
        }
    }
    super::websocket::upgrade(ws, stream, Flavour::Telephone, FormatRequest::default())
}

/// A request refused, with why.
type Refusal = (StatusCode, &'static str);

/// Whether the client reached the host over TLS, and the authority it used (see the
/// module's doc).
fn origin(headers: &HeaderMap, uri: &Uri) -> Result<(bool, Authority), Refusal> {
    let Some(host) = first(headers, "x-forwarded-host")
        .or_else(|| first(headers, HOST.as_str()))
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
    else {
        return Err((StatusCode::BAD_REQUEST, "the request has no Host header"));
    };
    let Ok(authority) = host.parse::<Authority>() else {
        return Err((
            StatusCode::BAD_REQUEST,
            "the Host header is not a valid host",
        ));
    };
    let secure = match first(headers, "x-forwarded-proto")
        .map(|p| p.to_ascii_lowercase())
        .as_deref()
    {
        Some("https" | "wss") => true,
        Some("http" | "ws") => false,
        _ => !is_loopback(authority.host()),
    };
    Ok((secure, authority))
}

/// `403` (and counted) unless `X-Twilio-Signature` signs, with `params`, the URL the
/// client requested: `scheme`, `authority`, then the request's path and query.
fn check_signature(
    token: &TwilioAuthToken,
    headers: &HeaderMap,
    scheme: &str,
    authority: &Authority,
    uri: &Uri,
    params: &[(String, String)],
) -> Result<(), Refusal> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{scheme}://{authority}{path}");
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    if signature.is_some_and(|s| token.verifies(s, &url, params)) {
        return Ok(());
    }
    stats::count(Counter::TwilioSignatureRefused);
    tracing::info!(
        url,
        signed = signature.is_some(),
        "telephone request refused: X-Twilio-Signature is missing or does not sign it"
    );
    Err((
        StatusCode::FORBIDDEN,
        "X-Twilio-Signature is missing or does not sign this request with the account's auth token",
    ))
}

/// The first value of a header that may hold a comma-separated list (proxies append).
fn first(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_owned())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "127.1.2.3", "[::1]", "LOCALHOST"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1", "[2001:db8::1]"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn escapes_xml() {
        assert_eq!(xml_escape(r#"a&b<"'>"#), "a&amp;b&lt;&quot;&apos;&gt;");
    }
}

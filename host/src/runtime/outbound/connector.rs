//! The host's own `wasi:http` sender: grant check on the final URI, the host's own
//! DNS resolution and address check, connect, TLS, one HTTP/1.1 exchange, with every
//! timeout, cap and count of [`super::OutboundPolicy`].

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::body::{Capped, Direction};
use super::metrics::{self, Outcome};
use super::{ConnectionBudget, HostRule, Outbound, OutboundPolicy, Scheme, permitted};

/// The response and the future that drives its connection.
type Sent = (
    Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// Bytes moved by one connection's handler in the current minute.
#[derive(Debug, Default)]
pub(crate) struct Window {
    started: Option<Instant>,
    used: u64,
}

impl ConnectionBudget {
    /// Count `n` bytes; `false` once this minute's allowance is spent.
    pub(crate) fn spend(&self, n: u64) -> bool {
        let mut w = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if w.started
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(60))
        {
            w.started = Some(now);
            w.used = 0;
        }
        w.used = w.used.saturating_add(n);
        w.used <= self.max_bytes_per_minute
    }
}

/// Where a request goes, read from its URI alone.
struct Target {
    scheme: Scheme,
    /// As the allowlist compares it (lower case, IPv6 unbracketed).
    host: String,
    port: u16,
    authority: Authority,
}

impl Target {
    fn of(uri: &Uri) -> Option<Self> {
        let scheme = match uri.scheme_str()? {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return None,
        };
        let authority = uri.authority()?.clone();
        if authority.as_str().contains('@') {
            return None;
        }
        let host = super::grant::normalize_host(authority.host());
        if host.is_empty() {
            return None;
        }
        let port = authority.port_u16().unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        Some(Self {
            scheme,
            host,
            port,
            authority,
        })
    }

    fn url(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.authority)
    }
}

/// Send one request of a handler of `access`'s stream.
pub(crate) async fn send(
    access: Arc<Outbound>,
    conn: Arc<ConnectionBudget>,
    request: Request<WasiBody>,
    options: RequestOptions,
) -> Result<Sent, Error> {
    let stream = access.stream.clone();
    let Some(target) = Target::of(request.uri()) else {
        let url = request.uri().to_string();
        return Err(deny(
            &conn,
            &stream,
            &url,
            "not an http(s) URL with a host",
            Error::HttpRequestUriInvalid,
        ));
    };
    let Some(rule) = access
        .grant
        .rule_for(target.scheme, &target.host, target.port)
    else {
        return Err(deny(
            &conn,
            &stream,
            &target.url(),
            "not in the stream's grant",
            Error::HttpRequestDenied,
        ));
    };
    let label = rule.pattern.as_str().to_string();
    let result = attempt(&access, &conn, rule, &target, request, options, &label).await;
    let outcome = match &result {
        Ok(_) => Outcome::Ok,
        Err(e) => classify(e),
    };
    metrics::count(&stream, &label, outcome);
    if let Err(e) = &result {
        if outcome == Outcome::AddressRefused {
            conn.violations.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(stream = %stream, url = %target.url(), error = %e, "outbound request failed");
    }
    result
}

/// Refuse a request its grant does not cover: a violation, logged and counted
/// under `denied`.
fn deny(conn: &ConnectionBudget, stream: &Arc<str>, url: &str, why: &str, error: Error) -> Error {
    conn.violations.fetch_add(1, Ordering::Relaxed);
    metrics::count(stream, "denied", Outcome::Denied);
    tracing::warn!(stream = %stream, url = %url, "outbound request refused: {why}");
    error
}

/// The metrics outcome of an error.
pub(crate) fn classify(e: &Error) -> Outcome {
    match e {
        Error::HttpRequestDenied | Error::HttpRequestUriInvalid => Outcome::Denied,
        Error::DestinationIpProhibited => Outcome::AddressRefused,
        Error::ConnectionLimitReached => Outcome::Limited,
        Error::ConnectionTimeout
        | Error::ConnectionReadTimeout
        | Error::HttpResponseTimeout
        | Error::DnsTimeout => Outcome::Timeout,
        Error::HttpRequestBodySize(_) | Error::HttpResponseBodySize(_) => Outcome::TooLarge,
        _ => Outcome::Failed,
    }
}

async fn attempt(
    access: &Outbound,
    conn: &Arc<ConnectionBudget>,
    rule: &HostRule,
    target: &Target,
    request: Request<WasiBody>,
    options: RequestOptions,
    label: &str,
) -> Result<Sent, Error> {
    let policy = &access.policy;
    let own = conn
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::ConnectionLimitReached)?;
    let streamwide = access
        .stream_in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::ConnectionLimitReached)?;
    let tenantwide = match &access.tenant_in_flight {
        Some(shared) => Some(
            shared
                .clone()
                .try_acquire_owned()
                .map_err(|_| Error::ConnectionLimitReached)?,
        ),
        None => None,
    };
    if !conn.spend(0) {
        return Err(Error::ConnectionLimitReached);
    }
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > policy.max_request_body) {
        return Err(Error::HttpRequestBodySize(Some(policy.max_request_body)));
    }

    let connect_timeout = OutboundPolicy::clamp(options.connect_timeout, policy.connect_timeout);
    let deadline = tokio::time::Instant::now() + connect_timeout;
    let io = tokio::time::timeout_at(deadline, connect(policy, target))
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    let (mut sender, connection) = tokio::time::timeout_at(
        deadline,
        hyper::client::conn::http1::handshake::<_, Capped<WasiBody>>(TokioIo::new(io)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // The connection must be driven while the request is sent and its response
    // awaited; it is aborted with the returned driver (or at once on an error here).
    let task = tokio::spawn(connection);
    let guard = AbortOnDrop(task.abort_handle());

    let (mut parts, body) = request.into_parts();
    parts.uri = Uri::from(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    let host = HeaderValue::from_str(target.authority.as_str())
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    parts.headers.insert(http::header::HOST, host);
    for (name, template) in &rule.headers.headers {
        let value = HeaderValue::from_str(&access.secrets.fill(template)).map_err(|_| {
            Error::InternalError(Some(format!("grant header `{name}` is not a valid value")))
        })?;
        parts.headers.insert(name.clone(), value);
    }
    let body = Capped::new(
        body,
        Direction::Request,
        policy.max_request_body,
        None,
        conn.clone(),
        Vec::new(),
        None,
    );
    let first_byte = OutboundPolicy::clamp(options.first_byte_timeout, policy.first_byte_timeout);
    let response = tokio::time::timeout(
        first_byte,
        sender.send_request(Request::from_parts(parts, body)),
    )
    .await
    .map_err(|_| Error::HttpResponseTimeout)??;

    let (parts, incoming) = response.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > policy.max_response_body) {
        return Err(Error::HttpResponseBodySize(Some(n)));
    }
    let between =
        OutboundPolicy::clamp(options.between_bytes_timeout, policy.between_bytes_timeout);
    let body = Capped::new(
        incoming,
        Direction::Response,
        policy.max_response_body,
        Some(between),
        conn.clone(),
        [own, streamwide].into_iter().chain(tenantwide).collect(),
        Some((access.stream.clone(), label.to_string())),
    )
    .boxed_unsync();
    let driver: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async move {
        let _guard = guard;
        match task.await {
            Ok(done) => done.map_err(Error::Hyper),
            Err(_) => Ok(()),
        }
    });
    Ok((Response::from_parts(parts, body), driver))
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A byte stream to the destination, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Resolve (by the host), check every address, connect to a permitted one, and
/// wrap it in TLS for `https`.
async fn connect(policy: &OutboundPolicy, target: &Target) -> Result<Box<dyn Io>, Error> {
    let addresses: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    let mut refused = Vec::new();
    let mut last = None;
    for addr in &addresses {
        if let Err(why) = permitted(addr.ip(), &policy.allow_networks) {
            refused.push(format!("{} ({why})", addr.ip()));
            continue;
        }
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return match target.scheme {
                    Scheme::Http => Ok(Box::new(tcp)),
                    Scheme::Https => tls(tcp, &target.host).await,
                };
            }
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        return Err(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
            _ => Error::Connect(e),
        });
    }
    tracing::warn!(host = %target.host, refused = %refused.join(", "), "outbound request refused: the name resolves only to addresses that are not public");
    Err(Error::DestinationIpProhibited)
}

/// TLS client settings: rustls with the webpki root certificates.
static TLS: LazyLock<Option<TlsConnector>> = LazyLock::new(|| {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(TlsConnector::from(Arc::new(config)))
});

async fn tls(tcp: TcpStream, host: &str) -> Result<Box<dyn Io>, Error> {
    let connector = TLS
        .as_ref()
        .ok_or_else(|| Error::InternalError(Some("TLS is not available".into())))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    match connector.connect(name, tcp).await {
        Ok(stream) => Ok(Box::new(stream)),
        Err(e) => {
            let certificate = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
            Err(if certificate {
                Error::TlsCertificateError
            } else {
                Error::TlsProtocolError
            })
        }
    }
}

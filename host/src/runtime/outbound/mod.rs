//! Outbound HTTP for handlers: `wasi:http/outgoing-handler` under an operator's grant.
//!
//! A handler reaches the network only through this module. The path of one request:
//!
//! 1. The guest builds a request and calls `outgoing-handler.handle`; wasmtime's
//!    `wasi:http` turns it into an [`http::Request`] and calls
//!    [`OutboundHooks::send_request`] (never wasmtime's default sender).
//! 2. [`connector::send`] matches the request's final URI (scheme, host, port) against
//!    the stream's [`OutboundGrant`]; the guest's `Host` header is ignored (it is a
//!    forbidden header and is rewritten from the URI).
//! 3. The host resolves the name itself and refuses loopback, private, link-local and
//!    metadata addresses unless the operator's [`OutboundPolicy::allow_networks`]
//!    names them; it connects only to an address it checked.
//! 4. The grant's header rule is applied: `{{secret.NAME}}` is filled from
//!    [`Secrets`] after the request has left the guest, so a key never enters guest
//!    memory and goes only to the host its rule names.
//! 5. Timeouts (connect, first byte, between bytes) are the guest's, clamped to the
//!    operator's; bodies are capped both ways; in-flight requests are capped per
//!    connection, per stream and (for a tenant's streams) per tenant, bytes per
//!    minute per connection.
//!
//! Every outcome is counted ([`metrics`]); refusals count as violations, and an
//! instance past [`OutboundPolicy::max_violations`] is ended with the failure cause
//! `outbound-abuse`. Redirects are not followed by the host: a guest that follows one
//! makes a new request, checked like the first. Dropping an instance drops its
//! resource table and with it every request in flight.

mod address;
mod body;
mod connector;
mod grant;
pub mod metrics;
mod policy;
mod secrets;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::Semaphore;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

pub use address::{non_public, permitted};
pub use grant::{
    GrantError, HeaderRule, HostPattern, HostRule, MAX_GRANT_ENTRIES, MAX_GRANT_VALUE,
    OutboundGrant, Scheme, valid_secret_name,
};
pub use policy::OutboundPolicy;
pub use secrets::{SecretError, Secrets};

/// One stream's outbound access: its grant, the operator's policy, the secrets its
/// rules name and the stream-wide in-flight bound. Shared by all its connections.
#[derive(Debug)]
pub struct Outbound {
    pub(crate) stream: Arc<str>,
    pub(crate) grant: OutboundGrant,
    pub(crate) policy: OutboundPolicy,
    pub(crate) secrets: Secrets,
    pub(crate) stream_in_flight: Arc<Semaphore>,
    /// Shared by every stream of the stream's tenant, if it has one.
    pub(crate) tenant_in_flight: Option<Arc<Semaphore>>,
}

/// Why an outbound grant cannot be applied to a stream.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// A rule names a secret the host does not hold.
    #[error(
        "outbound grant of stream `{stream}` uses `{{{{secret.{secret}}}}}`, which is not configured"
    )]
    MissingSecret {
        /// The stream.
        stream: String,
        /// The secret's name.
        secret: String,
    },
}

impl Outbound {
    /// Check that every secret the grant's rules name is held, and build the access.
    pub fn new(
        stream: &str,
        grant: OutboundGrant,
        policy: OutboundPolicy,
        secrets: Secrets,
    ) -> Result<Arc<Self>, OutboundError> {
        Self::build(stream, grant, policy, secrets, None)
    }

    /// Like [`Outbound::new`], for a stream of a tenant whose streams share
    /// `tenant_in_flight`: a request needs one of its permits too, held until its
    /// response body ends.
    pub fn within_tenant(
        stream: &str,
        grant: OutboundGrant,
        policy: OutboundPolicy,
        secrets: Secrets,
        tenant_in_flight: Arc<Semaphore>,
    ) -> Result<Arc<Self>, OutboundError> {
        Self::build(stream, grant, policy, secrets, Some(tenant_in_flight))
    }

    fn build(
        stream: &str,
        grant: OutboundGrant,
        policy: OutboundPolicy,
        secrets: Secrets,
        tenant_in_flight: Option<Arc<Semaphore>>,
    ) -> Result<Arc<Self>, OutboundError> {
        if let Some(missing) = grant.secrets().find(|s| secrets.get(s).is_none()) {
            return Err(OutboundError::MissingSecret {
                stream: stream.to_string(),
                secret: missing.to_string(),
            });
        }
        let stream_in_flight = Arc::new(Semaphore::new(policy.max_in_flight_per_stream));
        Ok(Arc::new(Self {
            stream: stream.into(),
            grant,
            policy,
            secrets,
            stream_in_flight,
            tenant_in_flight,
        }))
    }

    /// The grant.
    pub fn grant(&self) -> &OutboundGrant {
        &self.grant
    }
}

/// The `wasi:http` hooks of one instance: its stream's access (none: every request
/// is refused) and this connection's own in-flight, byte and violation counts.
pub(crate) struct OutboundHooks {
    pub(crate) access: Option<Arc<Outbound>>,
    pub(crate) conn: Arc<ConnectionBudget>,
}

/// What one connection's handler has used.
#[derive(Debug)]
pub(crate) struct ConnectionBudget {
    pub(crate) in_flight: Arc<Semaphore>,
    pub(crate) bytes: std::sync::Mutex<connector::Window>,
    pub(crate) max_bytes_per_minute: u64,
    pub(crate) violations: AtomicU32,
}

impl OutboundHooks {
    pub(crate) fn new(access: Option<Arc<Outbound>>) -> Self {
        let (per_connection, max_bytes_per_minute) = access.as_ref().map_or((0, 0), |a| {
            (
                a.policy.max_in_flight_per_connection,
                a.policy.max_bytes_per_minute,
            )
        });
        Self {
            access,
            conn: Arc::new(ConnectionBudget {
                in_flight: Arc::new(Semaphore::new(per_connection)),
                bytes: std::sync::Mutex::new(connector::Window::default()),
                max_bytes_per_minute,
                violations: AtomicU32::new(0),
            }),
        }
    }

    /// Why the instance must end, once it has been refused too often.
    pub(crate) fn abuse(&self) -> Option<String> {
        let access = self.access.as_ref()?;
        let n = self.conn.violations.load(Ordering::Relaxed);
        (n > access.policy.max_violations).then(|| {
            format!(
                "{n} outbound requests refused (more than {})",
                access.policy.max_violations
            )
        })
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        drop(fut);
        let access = self.access.clone();
        let conn = self.conn.clone();
        Box::new(async move {
            let Some(access) = access else {
                conn.violations.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("outbound request refused: the stream has no outbound grant");
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            };
            connector::send(access, conn, request, options.unwrap_or_default()).await
        })
    }
}

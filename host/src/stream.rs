//! The library's front door: a [`Stream`] is a handler component plus limits, served
//! over WebRTC and mounted on an axum router under a prefix.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::Stream as FuturesStream;
use tokio::sync::{broadcast, mpsc};

use crate::lifecycle::Lifecycle;
use crate::runtime::{HandlerComponent, StreamSpec};
use crate::session::{
    Admission, Command, ConnectionHandle, Connections, MaxPicture, Outputs, Slot,
};
use crate::transport::{IceServers, IceTcp, UdpMux};

/// Most addresses a host advertises (see [`Transport::with_advertised`]).
pub const MAX_ADVERTISED: usize = 8;

/// Why a stream refused a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The stream (or its tenant) is at its concurrency limit.
    Limit(crate::session::LimitReached),
    /// The handler's instances keep failing: refused for this much longer.
    Failing(Duration),
}

/// Limits of a stream (FastRTC's `concurrency_limit` and `time_limit`).
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Most connections at once across every transport; `None` = bounded only by the
    /// host's instance pool. (FastRTC's default is 1.)
    pub concurrency_limit: Option<usize>,
    /// Longest a connection may last once up; the client is warned a few seconds before.
    pub time_limit: Option<Duration>,
    /// A WebRTC offer whose connection is not up within this is dropped (FastRTC: 30 s).
    pub connect_timeout: Duration,
    /// The stream's own STUN and TURN servers; `None` hands out the host's
    /// ([`Transport::with_ice_servers`]).
    pub ice: Option<Arc<IceServers>>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            concurrency_limit: None,
            time_limit: None,
            connect_timeout: Duration::from_secs(30),
            ice: None,
        }
    }
}

/// What every stream of a host shares: one UDP socket for WebRTC, and the host's
/// [`Lifecycle`] (its connection tasks and shutdown signal).
#[derive(Clone)]
pub struct Transport {
    pub(crate) mux: UdpMux,
    /// The socket's addresses as clients reach it; never empty.
    pub(crate) advertised: Arc<[SocketAddr]>,
    /// The STUN and TURN servers handed to clients of streams that set none.
    pub(crate) ice: Arc<IceServers>,
    /// ICE-TCP on the media port, when the HTTP listener shares it.
    pub(crate) ice_tcp: Option<IceTcp>,
    pub(crate) lifecycle: Lifecycle,
    /// libvpx `cpu-used` of the VP8 sent to clients (see [`Transport::with_vp8_cpu_used`]).
    pub(crate) vp8_cpu_used: i32,
    /// The largest client picture decoded (see [`Transport::with_max_picture`]).
    pub(crate) max_picture: MaxPicture,
    /// The Twilio auth token telephone requests must be signed with, when set.
    pub(crate) twilio: Option<crate::http::TwilioAuthToken>,
}

impl Transport {
    /// Bind the UDP socket at `listen`; `advertise` is the address put in answers
    /// (defaults to the bound address; set it behind NAT or when binding 0.0.0.0).
    /// Call it from within a tokio runtime: the socket's receive task runs there.
    pub fn bind(listen: SocketAddr, advertise: Option<std::net::IpAddr>) -> std::io::Result<Self> {
        let mux = UdpMux::bind(listen)?;
        let local = mux.local_addr();
        let ip = advertise.unwrap_or(if local.ip().is_unspecified() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            local.ip()
        });
        Ok(Self {
            advertised: Arc::new([SocketAddr::new(ip, local.port())]),
            ice: Arc::new(IceServers::default()),
            ice_tcp: None,
            mux,
            lifecycle: Lifecycle::new(),
            vp8_cpu_used: crate::media::Vp8Settings::default().cpu_used,
            max_picture: crate::session::DEFAULT_MAX_PICTURE,
            twilio: None,
        })
    }

    /// Encode the VP8 sent to clients at libvpx speed `cpu_used` (clamped to
    /// -16..=16; the default is 16, the fastest). Lower is slower: `--bench
    /// media` prints the time and PSNR of each setting. Set it before streams are made.
    pub fn with_vp8_cpu_used(mut self, cpu_used: i32) -> Self {
        self.vp8_cpu_used = cpu_used.clamp(-16, 16);
        self
    }

    /// The largest client picture decoded, `width` x `height` in either orientation
    /// (default 1920x1080): a keyframe announcing more is dropped before decoding and
    /// the client warned. Sides are kept within 16..=16383.
    pub fn with_max_picture(mut self, width: u32, height: u32) -> Self {
        self.max_picture = MaxPicture {
            width: width.clamp(16, 16383),
            height: height.clamp(16, 16383),
        };
        self
    }

    /// Serve `{prefix}/telephone/incoming` and `/telephone/handler` only to requests
    /// signed with this Twilio account's auth token (`X-Twilio-Signature`); others get
    /// `403` and are counted.
    pub fn with_twilio_auth_token(mut self, token: crate::http::TwilioAuthToken) -> Self {
        self.twilio = Some(token);
        self
    }

    /// Put a host candidate at each of `ips` (on the socket's port) in answers,
    /// instead of the one `bind` chose: a public IP behind 1:1 NAT, an IPv6 address
    /// next to an IPv4 one (bind `[::]` for both), at most [`MAX_ADVERTISED`].
    /// An empty list keeps the current one.
    pub fn with_advertised(mut self, ips: &[std::net::IpAddr]) -> Result<Self, String> {
        if ips.len() > MAX_ADVERTISED {
            return Err(format!(
                "{} advertised addresses: at most {MAX_ADVERTISED}",
                ips.len()
            ));
        }
        if !ips.is_empty() {
            let port = self.mux.local_addr().port();
            self.advertised = ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect();
        }
        Ok(self)
    }

    /// Hand `servers` to the clients of every stream that sets none of its own
    /// (`GET {prefix}/rtc_configuration`, and the built-in page).
    pub fn with_ice_servers(mut self, servers: IceServers) -> Self {
        self.ice = Arc::new(servers);
        self
    }

    /// Offer a passive ICE-TCP candidate next to each UDP one, for clients whose
    /// network blocks UDP. The HTTP listener must be on the media port and hand over
    /// its ICE-TCP connections ([`crate::http::server::serve_with_ice_tcp`] with
    /// [`Transport::ice_tcp`]).
    pub fn with_ice_tcp(mut self) -> Self {
        self.ice_tcp = Some(IceTcp::new(self.mux.clone()));
        self
    }

    /// The ICE-TCP side of the media port, if [`Transport::with_ice_tcp`] set it.
    pub fn ice_tcp(&self) -> Option<&IceTcp> {
        self.ice_tcp.as_ref()
    }

    /// The address clients send media to (the first advertised one).
    pub fn advertised(&self) -> SocketAddr {
        self.advertised[0]
    }

    /// The host's lifecycle: [`Lifecycle::shutdown`] drains every stream served over
    /// this transport.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }
}

/// Errors of the input and output hooks.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// No live connection has this id.
    #[error("unknown connection")]
    UnknownConnection,
    /// The stream has no input of this name.
    #[error("unknown input `{0}`")]
    UnknownInput(String),
    /// A value does not fit its input.
    #[error("input `{name}`: {reason}")]
    Invalid {
        /// The input.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// A stream: handler + modality + mode (from the component's spec) + limits.
/// Cloning is cheap and shares the stream.
#[derive(Clone)]
pub struct Stream {
    pub(crate) inner: Arc<StreamInner>,
}

pub(crate) struct StreamInner {
    pub(crate) name: String,
    pub(crate) component: RwLock<HandlerComponent>,
    /// How many times [`Stream::replace_component`] swapped it.
    swaps: AtomicU64,
    /// Whether open connections move to a swapped-in handler ([`Stream::set_live_reload`]).
    live_reload: AtomicBool,
    /// What `wasmrtc dev` says of its builds (`GET {prefix}/dev/status`).
    dev_status: RwLock<Option<serde_json::Value>>,
    pub(crate) config: StreamConfig,
    /// The stream's own ICE servers: `config.ice` until [`Stream::set_ice_servers`].
    ice: RwLock<Option<Arc<IceServers>>>,
    pub(crate) admission: Admission,
    pub(crate) connections: Connections,
    pub(crate) transport: Transport,
}

impl Stream {
    /// A stream serving `component` over `transport`.
    pub fn new(component: HandlerComponent, transport: Transport, config: StreamConfig) -> Self {
        let admission = Admission::new(config.concurrency_limit);
        Self::with_admission(component, transport, config, admission)
    }

    /// Like [`Stream::new`], but every connection also takes a slot of `parent` (e.g. a
    /// tenant's quota of connections across its streams).
    pub fn new_within(
        component: HandlerComponent,
        transport: Transport,
        config: StreamConfig,
        parent: &Admission,
    ) -> Self {
        let admission = Admission::new(config.concurrency_limit).within(parent);
        Self::with_admission(component, transport, config, admission)
    }

    fn with_admission(
        component: HandlerComponent,
        transport: Transport,
        config: StreamConfig,
        admission: Admission,
    ) -> Self {
        Self {
            inner: Arc::new(StreamInner {
                name: component.name().to_string(),
                admission,
                component: RwLock::new(component),
                swaps: AtomicU64::new(0),
                live_reload: AtomicBool::new(false),
                dev_status: RwLock::new(None),
                ice: RwLock::new(config.ice.clone()),
                config,
                connections: Connections::with_lifecycle(&transport.lifecycle),
                transport,
            }),
        }
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The handler serving new connections.
    pub fn component(&self) -> HandlerComponent {
        self.inner
            .component
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Serve new connections with `component` from now on (hot swap); connections
    /// already open keep the instance they started with. Returns the previous one.
    pub fn replace_component(&self, component: HandlerComponent) -> HandlerComponent {
        let mut slot = self
            .inner
            .component
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let previous = std::mem::replace(&mut *slot, component);
        self.inner.swaps.fetch_add(1, Ordering::Release);
        previous
    }

    /// How many times the handler was swapped ([`Stream::replace_component`]).
    pub fn swaps(&self) -> u64 {
        self.inner.swaps.load(Ordering::Acquire)
    }

    /// With `true`, open connections move to a swapped-in handler before their next
    /// call (a fresh instance, given the connection's inputs), as long as its spec and
    /// turn-taking are the ones the connection started with; otherwise they keep
    /// theirs. For `wasmrtc dev`: a hosted stream keeps the default (`false`), where
    /// open connections finish on the version they started with.
    pub fn set_live_reload(&self, on: bool) {
        self.inner.live_reload.store(on, Ordering::Release);
    }

    /// Publish `wasmrtc dev`'s build status at `GET {prefix}/dev/status` (without it,
    /// that route answers `{"state": "off"}`, so the page stops asking).
    pub fn set_dev_status(&self, status: serde_json::Value) {
        *self
            .inner
            .dev_status
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(status);
    }

    /// The build status [`Stream::set_dev_status`] published, with the open connections.
    pub fn dev_status(&self) -> serde_json::Value {
        let status = self
            .inner
            .dev_status
            .read()
            .unwrap_or_else(|e| e.into_inner());
        match status.clone() {
            Some(mut s) => {
                s["connections"] = self.active_connections().into();
                s
            }
            None => serde_json::json!({"state": "off"}),
        }
    }

    /// What a new connection's handler task needs to follow swaps, when
    /// [`Stream::set_live_reload`] is on.
    pub(crate) fn reload_for(&self, connection: &str) -> Option<crate::session::Reload> {
        self.inner
            .live_reload
            .load(Ordering::Acquire)
            .then(|| crate::session::Reload::new(self.clone(), connection))
    }

    /// The handler's spec.
    pub fn spec(&self) -> StreamSpec {
        self.component().spec().clone()
    }

    /// The stream's limits.
    pub fn config(&self) -> &StreamConfig {
        &self.inner.config
    }

    /// The STUN and TURN servers this stream's clients get: its own, or the host's.
    pub fn ice_servers(&self) -> Arc<IceServers> {
        let own = self.inner.ice.read().unwrap_or_else(|e| e.into_inner());
        own.clone()
            .unwrap_or_else(|| self.inner.transport.ice.clone())
    }

    /// Hand `servers` (`None`: the host's) to this stream's clients from the next
    /// `rtc_configuration` request on (a tenant changing them through the admin API).
    pub fn set_ice_servers(&self, servers: Option<Arc<IceServers>>) {
        *self.inner.ice.write().unwrap_or_else(|e| e.into_inner()) = servers;
    }

    /// Connections now admitted (connecting or connected).
    pub fn active_connections(&self) -> usize {
        self.inner.admission.active()
    }

    /// The admission controller: active and refused counts, and the limit (which may be
    /// changed on a live stream with [`Admission::set_limit`]).
    pub fn admission(&self) -> &Admission {
        &self.inner.admission
    }

    /// Admit one more connection on any transport: refused while the handler's failure
    /// breaker is open (see [`crate::runtime::breaker`]) or at the concurrency limit.
    pub(crate) fn admit(&self) -> Result<Slot, Refusal> {
        if let Some(left) = self.component().stats().refusing() {
            return Err(Refusal::Failing(left));
        }
        self.inner.admission.try_admit().map_err(Refusal::Limit)
    }

    /// Ids of the live connections.
    pub fn connection_ids(&self) -> Vec<String> {
        self.inner.connections.ids()
    }

    /// Mount the stream's routes (`/webrtc/offer`, `/input_hook`, `/outputs`) under
    /// `prefix` (`""` for the root) on `router`, which the caller may extend.
    pub fn mount(&self, router: axum::Router, prefix: &str) -> axum::Router {
        let routes = crate::http::stream_routes(self.clone());
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            router.merge(routes)
        } else {
            // `nest_service`, unlike `nest`, also matches `{prefix}/`, where the UI page is.
            router.nest_service(prefix, routes)
        }
    }

    pub(crate) fn handle(&self, id: &str) -> Result<ConnectionHandle, HookError> {
        self.inner
            .connections
            .get(id)
            .ok_or(HookError::UnknownConnection)
    }

    /// Set named inputs of a connection (FastRTC's `set_input`); others keep their
    /// values. Values are checked against the spec the connection started with (after
    /// a hot swap, not necessarily [`Stream::spec`]); the handler sees the full list
    /// before its next call. Of concurrent calls, the last to take effect is the last
    /// the handler sees.
    pub async fn set_input(
        &self,
        id: &str,
        values: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), HookError> {
        self.handle(id)?.set_input(values).await
    }

    /// The outputs of a connection as they are emitted (FastRTC's `output_stream`);
    /// the stream ends when the connection ends.
    pub fn output_stream(
        &self,
        id: &str,
    ) -> Result<impl FuturesStream<Item = Outputs> + Send + 'static, HookError> {
        let rx = self.handle(id)?.outputs.subscribe();
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(v) => return Some((v, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }

    /// Close a connection.
    pub async fn close(&self, id: &str) -> Result<(), HookError> {
        let handle = self.handle(id)?;
        handle
            .commands
            .send(Command::Close)
            .await
            .map_err(|_| HookError::UnknownConnection)
    }

    /// A fresh handle for a new connection whose instance has `spec`, with inputs at
    /// their defaults.
    pub(crate) fn new_handle(
        &self,
        spec: &StreamSpec,
    ) -> (ConnectionHandle, mpsc::Receiver<Command>) {
        ConnectionHandle::new(spec)
    }
}

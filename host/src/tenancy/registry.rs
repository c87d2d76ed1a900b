//! The live map of hosted streams, (tenant, name) → [`Stream`], kept in step with the
//! [`ComponentStore`], and the per-request dispatch to them.
//!
//! URL scheme: a tenant's stream `s` is served at `/t/{tenant}/{s}/…`, with the same
//! routes as any stream (`/t/acme/gain/webrtc/offer`, `/t/acme/gain/websocket/offer`,
//! `/t/acme/gain/input_hook`, `/t/acme/gain/outputs`, the page at `/t/acme/gain/`).
//! Axum routers are fixed once built, so one nested service takes everything under
//! `/t`, looks the stream up per request and hands the request, with the prefix cut
//! off, to that stream's own router (built once per stream by [`Stream::mount`]).
//!
//! Every change (create, delete, upload, activate, roll back, limits) is made under
//! one admin lock: first durably in the store, then in memory, so the live map always
//! shows what a restart would restore.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::ServiceExt;

use super::ice::StreamIce;
use super::outbound::StreamGrant;
use super::store::{Added, ComponentStore, StoreError, StreamLimits, VersionRecord};
use super::tenants::{Tenant, Tenants, TokenHash};
use crate::runtime::outbound::OutboundPolicy;
use crate::runtime::{HandlerComponent, InstanceLimits, LoadError, Runtime, StatsSnapshot};
use crate::transport::IceServers;
use crate::{Stream, StreamConfig, Transport};

/// The URL prefix of tenants' streams.
pub const STREAMS_PREFIX: &str = "/t";

/// Why a hosting operation failed; [`super::api`] maps each to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum HostingError {
    /// No such stream or version (for this tenant).
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Over one of the tenant's quotas.
    #[error("{0}")]
    Quota(String),
    /// A request that makes no sense (bad name, bad limits).
    #[error("{0}")]
    Invalid(String),
    /// The component was refused by validation.
    #[error("{0}")]
    Rejected(#[from] LoadError),
    /// The component is larger than the tenant may upload.
    #[error("component is {size} bytes, more than the tenant's limit of {limit} bytes")]
    TooLarge {
        /// Bytes sent (or announced).
        size: usize,
        /// The quota.
        limit: usize,
    },
    /// The store failed.
    #[error("{0}")]
    Store(StoreError),
}

impl From<StoreError> for HostingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Quota(m) => Self::Quota(m),
            other => Self::Store(other),
        }
    }
}

/// Calls, failures, call durations and instance memory of a stream, across its versions.
pub type Totals = StatsSnapshot;

#[derive(Clone)]
struct Served {
    stream: Stream,
    router: Router,
    version: u64,
}

/// One hosted stream in memory.
pub struct LiveStream {
    tenant: Arc<Tenant>,
    name: String,
    limits: RwLock<StreamLimits>,
    /// The tenant's own ICE servers for this stream, as set and as built.
    ice: RwLock<Option<(StreamIce, Arc<IceServers>)>>,
    /// Its outbound grant, if the tenant set one ([`super::outbound`]).
    pub(super) outbound: RwLock<Option<StreamGrant>>,
    /// `None` until a version is active.
    served: RwLock<Option<Served>>,
    /// Versions loaded in this process that may still have connections (the active
    /// one, the one it replaced, and any with live instances), with the runtime's
    /// default limits; the served component is a `with_limits` copy sharing the stats.
    loaded: Mutex<BTreeMap<u64, HandlerComponent>>,
    /// Counters of versions dropped from `loaded`.
    retired: Mutex<Totals>,
    /// Why the active version could not be restored at start-up.
    error: RwLock<Option<String>>,
}

pub(super) fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

impl LiveStream {
    /// The owner.
    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// The stream's name (unique per tenant).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it is served: `/t/{tenant}/{name}/`.
    pub fn url(&self) -> String {
        format!("{STREAMS_PREFIX}/{}/{}/", self.tenant.name(), self.name)
    }

    /// Its limits as set by the tenant.
    pub fn limits(&self) -> StreamLimits {
        read(&self.limits).clone()
    }

    /// The ICE servers the tenant set for this stream, if any (the shared secret is
    /// in it: show it with [`StreamIce::redacted`]).
    pub fn ice(&self) -> Option<StreamIce> {
        read(&self.ice).as_ref().map(|(set, _)| set.clone())
    }

    /// The ICE servers its clients get: its own, else its tenant's (`None`: the host's).
    fn ice_servers(&self) -> Option<Arc<IceServers>> {
        read(&self.ice)
            .as_ref()
            .map(|(_, built)| built.clone())
            .or_else(|| self.tenant.ice.clone())
    }

    /// The version new connections get.
    pub fn active_version(&self) -> Option<u64> {
        read(&self.served).as_ref().map(|s| s.version)
    }

    /// The live stream, once a version is active.
    pub fn stream(&self) -> Option<Stream> {
        read(&self.served).as_ref().map(|s| s.stream.clone())
    }

    /// Why the active version could not be restored at start-up, if it could not.
    pub fn error(&self) -> Option<String> {
        read(&self.error).clone()
    }

    /// Connections now admitted.
    pub fn active_connections(&self) -> usize {
        self.stream().map_or(0, |s| s.active_connections())
    }

    /// Connections refused by a concurrency limit (the stream's or the tenant's).
    pub fn admissions_refused(&self) -> u64 {
        self.stream().map_or(0, |s| s.admission().refused())
    }

    /// Live connections by the version their handler instance runs.
    pub fn connections_by_version(&self) -> BTreeMap<u64, Vec<String>> {
        lock(&self.loaded)
            .iter()
            .map(|(v, c)| (*v, c.stats().live_connections()))
            .filter(|(_, ids)| !ids.is_empty())
            .collect()
    }

    /// Calls and failures across every version served since start-up.
    pub fn totals(&self) -> Totals {
        let mut totals = lock(&self.retired).clone();
        for c in lock(&self.loaded).values() {
            totals.add(&c.stats().snapshot());
        }
        totals
    }

    fn router(&self) -> Option<Router> {
        read(&self.served).as_ref().map(|s| s.router.clone())
    }
}

/// The hosted streams of every tenant.
#[derive(Clone)]
pub struct Registry {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    runtime: Runtime,
    transport: Transport,
    tenants: Tenants,
    store: Arc<dyn ComponentStore>,
    live: RwLock<HashMap<(String, String), Arc<LiveStream>>>,
    pub(super) admin: tokio::sync::Mutex<()>,
    /// The operator's bounds on tenants' streams' outbound requests.
    pub(super) outbound_policy: OutboundPolicy,
    /// (tenant, "accepted" | "rejected") → uploads.
    uploads: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// The token `/metrics` asks for, if any.
    metrics_token: std::sync::OnceLock<TokenHash>,
}

fn stream_config(limits: &StreamLimits, live: &LiveStream) -> StreamConfig {
    StreamConfig {
        concurrency_limit: limits.concurrency_limit,
        time_limit: limits.time_limit.map(Duration::from_secs_f64),
        ice: live.ice_servers(),
        ..StreamConfig::default()
    }
}

fn instance_limits(
    tenant: &Tenant,
    limits: &StreamLimits,
    base: &InstanceLimits,
) -> InstanceLimits {
    let memory_mb = limits
        .memory_mb
        .unwrap_or(tenant.config.memory_mb)
        .min(tenant.config.memory_mb);
    let cpu_ms = limits
        .cpu_ms_per_call
        .unwrap_or(tenant.config.cpu_ms_per_call)
        .min(tenant.config.cpu_ms_per_call);
    InstanceLimits {
        memory_bytes: usize::try_from(memory_mb << 20).unwrap_or(usize::MAX),
        cpu_per_call: Duration::from_millis(cpu_ms),
        ..base.clone()
    }
}

/// Check limits a tenant asks for against its quotas.
pub fn check_limits(tenant: &Tenant, limits: &StreamLimits) -> Result<(), HostingError> {
    let q = &tenant.config;
    let bad = |m: String| Err(HostingError::Invalid(m));
    if let Some(n) = limits.concurrency_limit {
        if n == 0 {
            return bad("concurrency_limit must be at least 1".into());
        }
        if n > q.max_connections {
            return bad(format!(
                "concurrency_limit {n} is above the tenant's max_connections of {}",
                q.max_connections
            ));
        }
    }
    if let Some(t) = limits.time_limit
        && !(t.is_finite() && t > 0.0 && t < 1e9)
    {
        return bad("time_limit must be a positive number of seconds".into());
    }
    for (key, v, quota) in [
        ("memory_mb", limits.memory_mb, q.memory_mb),
        ("cpu_ms_per_call", limits.cpu_ms_per_call, q.cpu_ms_per_call),
    ] {
        match v {
            Some(0) => return bad(format!("{key} must be at least 1")),
            Some(v) if v > quota => {
                return bad(format!("{key} {v} is above the tenant's quota of {quota}"));
            }
            _ => {}
        }
    }
    Ok(())
}

impl Registry {
    /// Open the hosting of `tenants` on `store`: record the tenants, clear half-written
    /// uploads, and serve every stored stream of a configured tenant at its active
    /// version. A version that no longer loads is logged and shown in the API; its
    /// stream serves nothing until another version is activated.
    pub async fn open(
        runtime: Runtime,
        transport: Transport,
        tenants: Tenants,
        store: Arc<dyn ComponentStore>,
    ) -> Result<Self, StoreError> {
        Self::open_with_outbound(
            runtime,
            transport,
            tenants,
            store,
            OutboundPolicy::default(),
        )
        .await
    }

    /// [`Registry::open`], holding the tenants' streams' outbound requests to the
    /// operator's `outbound_policy` (the `[outbound]` table: `allow_networks`, timeouts, caps).
    pub async fn open_with_outbound(
        runtime: Runtime,
        transport: Transport,
        tenants: Tenants,
        store: Arc<dyn ComponentStore>,
        outbound_policy: OutboundPolicy,
    ) -> Result<Self, StoreError> {
        let registry = Self {
            inner: Arc::new(Inner {
                runtime,
                transport,
                tenants,
                store,
                live: RwLock::default(),
                admin: tokio::sync::Mutex::new(()),
                uploads: Mutex::default(),
                metrics_token: std::sync::OnceLock::new(),
                outbound_policy,
            }),
        };
        let tenants: Vec<_> = registry.inner.tenants.iter().cloned().collect();
        let records = registry
            .blocking(move |s| {
                let removed = s.collect_garbage()?;
                if removed > 0 {
                    tracing::info!("store: removed {removed} unreferenced or half-written files");
                }
                for t in &tenants {
                    s.upsert_tenant(&t.config)?;
                }
                s.streams(None)
            })
            .await?;
        for record in records {
            let Some(tenant) = registry.inner.tenants.get(&record.tenant).cloned() else {
                tracing::warn!(
                    tenant = %record.tenant, stream = %record.name,
                    "stream of a tenant no longer configured: not served"
                );
                continue;
            };
            let live = registry.insert_live(tenant, &record.name, record.limits.clone());
            if let Some(ice) = record.ice {
                // Checked when set; a bound tightened since then leaves the stream on
                // its tenant's and the host's servers, and says so.
                match ice.servers() {
                    Ok(built) => *write(&live.ice) = Some((ice, Arc::new(built))),
                    Err(e) => {
                        tracing::error!(
                            tenant = %record.tenant, stream = %record.name,
                            "the stream's ICE servers are no longer valid: {e}"
                        );
                        *write(&live.error) = Some(format!("ice: {e}"));
                    }
                }
            }
            if let Some(grant) = record.outbound {
                registry.restore_outbound(&live, grant).await?;
            }
            if let Some(version) = record.active_version {
                match registry.load_version(&live, version).await {
                    Ok(component) => {
                        registry.serve(&live, version, component);
                        tracing::info!(
                            tenant = %record.tenant, stream = %record.name, version,
                            "restored at {}", live.url()
                        );
                    }
                    Err(e) => {
                        tracing::error!(
                            tenant = %record.tenant, stream = %record.name, version,
                            "cannot restore the active version: {e}"
                        );
                        *write(&live.error) = Some(format!("version {version}: {e}"));
                    }
                }
            }
        }
        Ok(registry)
    }

    /// The configured tenants.
    pub fn tenants(&self) -> &Tenants {
        &self.inner.tenants
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ComponentStore> {
        &self.inner.store
    }

    /// Run store operations on a blocking thread.
    pub async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn ComponentStore) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
    }

    /// Run a store operation on the stream `name` of `tenant` on a blocking thread.
    pub(super) async fn on_stream<R: Send + 'static>(
        &self,
        tenant: &str,
        name: &str,
        f: impl FnOnce(&dyn ComponentStore, &str, &str) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (t, n) = (tenant.to_string(), name.to_string());
        self.blocking(move |s| f(s, &t, &n)).await
    }

    /// A stream's stored versions, oldest first.
    pub async fn versions(&self, live: &LiveStream) -> Result<Vec<VersionRecord>, HostingError> {
        Ok(self
            .on_stream(live.tenant.name(), &live.name, |s, t, n| s.versions(t, n))
            .await?)
    }

    /// A tenant's stream.
    pub fn get(&self, tenant: &str, name: &str) -> Option<Arc<LiveStream>> {
        read(&self.inner.live)
            .get(&(tenant.to_string(), name.to_string()))
            .cloned()
    }

    /// A tenant's streams (every tenant's with `None`), by tenant and name.
    pub fn list(&self, tenant: Option<&str>) -> Vec<Arc<LiveStream>> {
        let mut all: Vec<_> = read(&self.inner.live)
            .values()
            .filter(|l| tenant.is_none_or(|t| l.tenant.name() == t))
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.tenant.name(), &a.name).cmp(&(b.tenant.name(), &b.name)));
        all
    }

    /// Uploads per (tenant, "accepted" | "rejected").
    pub fn uploads(&self) -> BTreeMap<(String, &'static str), u64> {
        lock(&self.inner.uploads).clone()
    }

    /// Count an upload of `tenant` as `"accepted"` or `"rejected"`.
    pub fn count_upload(&self, tenant: &str, result: &'static str) {
        *lock(&self.inner.uploads)
            .entry((tenant.to_string(), result))
            .or_default() += 1;
    }

    fn insert_live(
        &self,
        tenant: Arc<Tenant>,
        name: &str,
        limits: StreamLimits,
    ) -> Arc<LiveStream> {
        let live = Arc::new(LiveStream {
            name: name.to_string(),
            limits: RwLock::new(limits),
            ice: RwLock::new(None),
            outbound: RwLock::new(None),
            served: RwLock::new(None),
            loaded: Mutex::default(),
            retired: Mutex::default(),
            error: RwLock::new(None),
            tenant,
        });
        write(&self.inner.live).insert(
            (live.tenant.name().to_string(), name.to_string()),
            live.clone(),
        );
        live
    }

    fn live_or_404(&self, tenant: &Tenant, name: &str) -> Result<Arc<LiveStream>, HostingError> {
        self.get(tenant.name(), name)
            .ok_or_else(|| HostingError::NotFound(format!("no stream `{name}`")))
    }

    /// Take the admin lock, then find the tenant's stream.
    pub(super) async fn locked(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, Arc<LiveStream>), HostingError> {
        let admin = self.inner.admin.lock().await;
        Ok((admin, self.live_or_404(tenant, name)?))
    }

    /// Read a stored version and load it (validation included).
    async fn load_version(
        &self,
        live: &LiveStream,
        version: u64,
    ) -> Result<HandlerComponent, HostingError> {
        let cached = lock(&live.loaded).get(&version).cloned();
        if let Some(c) = cached {
            live.require_grant(&c)?;
            return Ok(c);
        }
        let bytes = self
            .on_stream(live.tenant.name(), &live.name, move |s, tenant, name| {
                let versions = s.versions(tenant, name)?;
                let record = versions
                    .iter()
                    .find(|v| v.version == version)
                    .ok_or_else(|| {
                        StoreError::NotFound(format!("stream `{name}` has no version {version}"))
                    })?;
                s.component(&record.sha256)
            })
            .await?;
        let full = format!("{}/{}", live.tenant.name(), live.name);
        let component = self
            .inner
            .runtime
            .load_for_tenant(live.tenant.name(), &full, bytes)
            .await?;
        live.require_grant(&component)?;
        Ok(component)
    }

    /// Serve `component` (with the stream's limits and outbound grant) to new
    /// connections as `version`; the version it replaces, if one was served.
    fn serve(&self, live: &LiveStream, version: u64, component: HandlerComponent) -> Option<u64> {
        let replaced = live.active_version();
        let limits = live.limits();
        let limited = live.granted(&component).with_limits(instance_limits(
            &live.tenant,
            &limits,
            component.limits(),
        ));
        {
            let mut loaded = lock(&live.loaded);
            loaded.insert(version, component);
            // Drop versions nobody runs any more (keeping the one just replaced, which a
            // connection being set up right now may still be instantiating).
            let idle: Vec<u64> = loaded
                .iter()
                .filter(|(v, c)| {
                    **v != version && Some(**v) != replaced && c.stats().live_instances() == 0
                })
                .map(|(v, _)| *v)
                .collect();
            let mut retired = lock(&live.retired);
            for v in idle {
                if let Some(c) = loaded.remove(&v) {
                    retired.add(&c.stats().snapshot());
                }
            }
        }
        let mut served = write(&live.served);
        match served.as_mut() {
            Some(s) => {
                s.stream.replace_component(limited);
                s.version = version;
            }
            None => {
                let stream = Stream::new_within(
                    limited,
                    self.inner.transport.clone(),
                    stream_config(&limits, live),
                    &live.tenant.admission,
                );
                let router = stream.mount(Router::new(), "");
                *served = Some(Served {
                    stream,
                    router,
                    version,
                });
            }
        }
        *write(&live.error) = None;
        replaced
    }

    /// Create a stream (no version yet).
    pub async fn create(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
        limits: StreamLimits,
    ) -> Result<Arc<LiveStream>, HostingError> {
        if !super::tenants::is_valid_name(name) {
            return Err(HostingError::Invalid(format!(
                "stream name {name:?} must be 1 to 64 letters, digits, - or _"
            )));
        }
        check_limits(tenant, &limits)?;
        let _admin = self.inner.admin.lock().await;
        if self.get(tenant.name(), name).is_some() {
            return Err(HostingError::Conflict(format!(
                "stream `{name}` already exists"
            )));
        }
        let count = self.list(Some(tenant.name())).len();
        if count >= tenant.config.max_streams {
            return Err(HostingError::Quota(format!(
                "the tenant's quota of {} streams is reached",
                tenant.config.max_streams
            )));
        }
        let l = limits.clone();
        self.on_stream(tenant.name(), name, move |s, t, n| {
            s.create_stream(t, n, &l)
        })
        .await?;
        tracing::info!(tenant = %tenant.name(), stream = %name, "stream created");
        Ok(self.insert_live(tenant.clone(), name, limits))
    }

    /// Delete a stream: it stops taking connections, its open connections are closed,
    /// and its versions are forgotten.
    pub async fn delete(&self, tenant: &Arc<Tenant>, name: &str) -> Result<(), HostingError> {
        let (_admin, live) = self.locked(tenant, name).await?;
        self.on_stream(tenant.name(), name, |s, t, n| s.delete_stream(t, n))
            .await?;
        write(&self.inner.live).remove(&(tenant.name().to_string(), name.to_string()));
        if let Some(stream) = live.stream() {
            for id in stream.connection_ids() {
                let _ = stream.close(&id).await;
            }
        }
        tracing::info!(tenant = %tenant.name(), stream = %name, "stream deleted");
        Ok(())
    }

    /// Upload a version: validate it (size, compile, imports, `describe`, spec), store it
    /// durably, and (with `activate`) switch new connections to it. A refused upload
    /// changes nothing.
    pub async fn upload(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
        bytes: Vec<u8>,
        activate: bool,
    ) -> Result<(Added, HandlerComponent), HostingError> {
        let r: Result<_, HostingError> = async {
            let live = self.live_or_404(tenant, name)?;
            let limit = tenant.config.max_component_bytes();
            if bytes.len() > limit {
                return Err(HostingError::TooLarge {
                    size: bytes.len(),
                    limit,
                });
            }
            let full = format!("{}/{}", tenant.name(), name);
            let component = self
                .inner
                .runtime
                .load_for_tenant(tenant.name(), &full, bytes.clone())
                .await?;

            // The stream may have been deleted (or re-created) while the upload was checked.
            let (_admin, current) = self.locked(tenant, name).await?;
            if !Arc::ptr_eq(&current, &live) {
                return Err(HostingError::Conflict(format!(
                    "stream `{name}` was re-created during the upload"
                )));
            }
            live.require_grant(&component)?;
            let retention = tenant.config.retention();
            let added = self
                .on_stream(tenant.name(), name, move |s, t, n| {
                    s.add_version(t, n, &bytes, activate, retention)
                })
                .await?;
            if !added.removed.is_empty() {
                tracing::info!(
                    tenant = %tenant.name(), stream = %name, removed = ?added.removed,
                    "older versions removed (max_versions = {})", retention.versions_per_stream
                );
            }
            if activate {
                self.serve(&live, added.record.version, component.clone());
            }
            Ok((added, component))
        }
        .await;
        match &r {
            Ok((Added { record: v, .. }, _)) => {
                self.count_upload(tenant.name(), "accepted");
                tracing::info!(
                    tenant = %tenant.name(), stream = %name, version = v.version,
                    sha256 = %v.sha256, active = activate, "version uploaded"
                );
            }
            Err(HostingError::NotFound(_)) => {}
            Err(e) => {
                self.count_upload(tenant.name(), "rejected");
                tracing::info!(tenant = %tenant.name(), stream = %name, "upload refused: {e}");
            }
        }
        r
    }

    /// Make a stored version the one new connections get.
    pub async fn activate(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
        version: u64,
    ) -> Result<(), HostingError> {
        let (_admin, live) = self.locked(tenant, name).await?;
        self.switch_to(&live, version, move |s, t, n| {
            s.activate(t, n, version).map(|()| version)
        })
        .await?;
        tracing::info!(tenant = %tenant.name(), stream = %name, version, "version activated");
        Ok(())
    }

    /// Undo the last activation: new connections get the version active before it.
    /// Returns (the version that was active, the one active now).
    pub async fn rollback(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
    ) -> Result<(Option<u64>, u64), HostingError> {
        let (_admin, live) = self.locked(tenant, name).await?;
        let target = self
            .on_stream(tenant.name(), name, |s, t, n| s.rollback_target(t, n))
            .await?
            .ok_or_else(|| {
                HostingError::Conflict(format!(
                    "stream `{name}` has no earlier version to roll back to"
                ))
            })?;
        let (from, now) = self
            .switch_to(&live, target, |s, t, n| s.rollback(t, n))
            .await?;
        tracing::info!(tenant = %tenant.name(), stream = %name, from = ?from, to = now, "rolled back");
        Ok((from, now))
    }

    /// Load `version` of `live`, record the switch to it in the store with `commit`
    /// (which answers the version now active) and serve that to new connections.
    /// Returns (the version that was active, the one active now).
    async fn switch_to(
        &self,
        live: &LiveStream,
        version: u64,
        commit: impl FnOnce(&dyn ComponentStore, &str, &str) -> Result<u64, StoreError> + Send + 'static,
    ) -> Result<(Option<u64>, u64), HostingError> {
        let component = self.load_version(live, version).await?;
        let now = self
            .on_stream(live.tenant.name(), &live.name, commit)
            .await?;
        Ok((self.serve(live, now, component), now))
    }

    /// Change a stream's limits. Memory, CPU and concurrency apply to new connections at
    /// once; `time_limit` is fixed once a version is served.
    pub async fn set_limits(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
        limits: StreamLimits,
    ) -> Result<(), HostingError> {
        check_limits(tenant, &limits)?;
        let (_admin, live) = self.locked(tenant, name).await?;
        let served = read(&live.served).clone();
        if served.is_some() && limits.time_limit != live.limits().time_limit {
            return Err(HostingError::Conflict(
                "time_limit cannot change while the stream is served; delete and re-create the stream to change it".into(),
            ));
        }
        let l = limits.clone();
        self.on_stream(tenant.name(), name, move |s, t, n| s.set_limits(t, n, &l))
            .await?;
        *write(&live.limits) = limits.clone();
        if let Some(served) = served {
            served
                .stream
                .admission()
                .set_limit(limits.concurrency_limit);
            let base = lock(&live.loaded).get(&served.version).cloned();
            if let Some(base) = base {
                let limited = live.granted(&base).with_limits(instance_limits(
                    &live.tenant,
                    &limits,
                    base.limits(),
                ));
                served.stream.replace_component(limited);
            }
        }
        Ok(())
    }

    /// Hand new connections of `live` its active version again, rebuilt with its
    /// current limits and outbound grant (open connections keep theirs).
    pub(super) fn refresh_served(&self, live: &LiveStream) {
        let Some(served) = read(&live.served).clone() else {
            return;
        };
        let base = lock(&live.loaded).get(&served.version).cloned();
        if let Some(base) = base {
            let limits = live.limits();
            let limited = live.granted(&base).with_limits(instance_limits(
                &live.tenant,
                &limits,
                base.limits(),
            ));
            served.stream.replace_component(limited);
        }
    }

    /// The component new connections of `live` get now, if a version is served.
    pub(super) fn served_component(&self, live: &LiveStream) -> Option<HandlerComponent> {
        let version = live.active_version()?;
        lock(&live.loaded).get(&version).cloned()
    }

    /// Set (or with `None` clear) the stream's own STUN and TURN servers; its clients
    /// get them from their next `rtc_configuration` request, connections already up
    /// are not touched. Checked against the same bounds as the configuration file's.
    pub async fn set_ice(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
        ice: Option<StreamIce>,
    ) -> Result<(), HostingError> {
        let built = match &ice {
            Some(ice) => {
                Some(Arc::new(ice.servers().map_err(|e| {
                    HostingError::Invalid(format!("bad ice servers: {e}"))
                })?))
            }
            None => None,
        };
        let (_admin, live) = self.locked(tenant, name).await?;
        let stored = ice.clone();
        self.on_stream(tenant.name(), name, move |s, t, n| {
            s.set_ice(t, n, stored.as_ref())
        })
        .await?;
        *write(&live.ice) = ice.zip(built);
        if let Some(stream) = live.stream() {
            stream.set_ice_servers(live.ice_servers());
        }
        tracing::info!(tenant = %tenant.name(), stream = %name, "ICE servers changed");
        Ok(())
    }

    /// Make `/metrics` answer only requests with `Authorization: Bearer <token>` for a
    /// token with this hash (the first call wins).
    pub fn protect_metrics(&self, token: TokenHash) {
        let _ = self.inner.metrics_token.set(token);
    }

    /// The token `/metrics` asks for, if [`Registry::protect_metrics`] set one.
    pub fn metrics_token(&self) -> Option<&TokenHash> {
        self.inner.metrics_token.get()
    }

    /// The router of the hosting: tenants' streams under `/t`, the admin API under
    /// `/api` and Prometheus metrics at `/metrics` (with `statics`, the streams of the
    /// configuration file, labelled `tenant=""`).
    pub fn router(&self, statics: &[(String, Stream)]) -> Router {
        let registry = self.clone();
        let dispatch = tower::service_fn(move |req: Request<Body>| {
            let registry = registry.clone();
            async move { Ok::<_, Infallible>(registry.dispatch(req).await) }
        });
        Router::new()
            .nest_service(STREAMS_PREFIX, dispatch)
            .merge(super::api::routes(self.clone()))
            .merge(super::metrics::routes(self.clone(), statics.to_vec()))
    }

    /// Forward a request under `/t` (the prefix already cut off by the nesting) to the
    /// router of the stream it names.
    async fn dispatch(&self, mut req: Request<Body>) -> Response {
        let path = req.uri().path().trim_start_matches('/').to_string();
        let mut parts = path.splitn(3, '/');
        let (tenant, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let rest = format!("/{}", parts.next().unwrap_or(""));
        let not_found = || {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "not_found", "message": "no such stream"})),
            )
                .into_response()
        };
        let Some(live) = self.get(tenant, name) else {
            return not_found();
        };
        let Some(router) = live.router() else {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "error": "no_active_version",
                    "message": format!("stream `{name}` has no active version"),
                })),
            )
                .into_response();
        };
        let target = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest,
        };
        match target.parse::<Uri>() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return not_found(),
        }
        match router.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}

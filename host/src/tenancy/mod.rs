//! Multi-tenant hosting: tenants upload, validate and hot-swap stream handlers over HTTP (DESIGN §5).

pub mod api;
pub mod client;
pub mod ice;
pub mod metrics;
pub mod outbound;
pub mod registry;
pub mod secrets;
pub mod store;
pub mod tenants;

pub use ice::StreamIce;
pub use registry::{HostingError, LiveStream, Registry, STREAMS_PREFIX};
pub use store::{
    ComponentStore, SecretRecord, SqliteStore, StoreError, StreamLimits, VersionRecord,
};
pub use tenants::{Tenant, TenantConfig, Tenants, TokenHash, token_sha256};

//! The shared engine: pooling allocator, copy-on-write memories, epoch ticker,
//! compiled-code cache, the linker offering WASI (only [`super::wasi::INTERFACES`],
//! deny-by-default) and `host`, the instance pool's shares and the compile gate of
//! tenants' uploads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::component::{Component, Linker};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use super::bindings::ConversationalComponent as Bindings;
use super::compile_gate::CompileGate;
use super::pool_share::PoolShares;
use super::state::StoreState;
use super::wasi::{self, Imports};
use super::{HandlerComponent, LoadError, RuntimeConfig};

/// The handler runtime: one per process, shared by every stream.
///
/// Cloning is cheap and shares the engine.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
    pub(crate) config: RuntimeConfig,
    /// Who holds the instance pool.
    pub(crate) shares: Arc<PoolShares>,
    /// Bounds on compiling tenants' uploads.
    gate: CompileGate,
    ticker: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl Runtime {
    /// Build the engine and start its epoch ticker thread.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances.saturating_mul(4))
            .total_memories(config.max_instances.saturating_mul(2))
            .total_tables(config.max_instances.saturating_mul(4))
            .total_stacks(config.max_instances)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_core_instances_per_component(64)
            .max_memory_size(config.max_memory_bytes)
            .max_core_instance_size(4 << 20)
            .max_component_instance_size(4 << 20);

        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .max_wasm_stack(1 << 20)
            .async_stack_size(2 << 20);
        if let Some(dir) = &config.cache_dir {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            wasm.cache(Some(Cache::new(cache).map_err(|e| anyhow::anyhow!("{e}"))?));
        }
        let engine = Engine::new(&wasm).map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Bindings::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            let tick = config.epoch_tick;
            std::thread::Builder::new()
                .name("wasmrtc-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                shares: Arc::new(PoolShares::new(
                    config.max_instances,
                    config.tenant_pool_percent,
                )),
                gate: CompileGate::new(config.compile_slots, config.compile_timeout),
                config,
                ticker: Some(ticker),
                stop,
            }),
        })
    }

    /// The configuration the runtime was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Load a handler component from bytes: check its size, format and imports,
    /// compile, link and `describe` it.
    ///
    /// `name` names the stream in logs. Compilation runs on a blocking thread.
    pub async fn load(&self, name: &str, bytes: Vec<u8>) -> Result<HandlerComponent, LoadError> {
        let inner = self.inner.clone();
        let (component, imports) = tokio::task::spawn_blocking(move || compile(&inner, &bytes))
            .await
            .map_err(|e| LoadError::Invalid(format!("compiler task failed: {e}")))??;
        HandlerComponent::link(self.inner.clone(), name, component, imports, None).await
    }

    /// Load a tenant's component (an upload, or a version it stored): as
    /// [`load`](Self::load), through the compile gate (one compilation at a time
    /// per tenant, [`RuntimeConfig::compile_slots`] on the host, each within
    /// [`RuntimeConfig::compile_timeout`]). Its instances count against the
    /// tenant's share of the instance pool ([`RuntimeConfig::tenant_pool_percent`]).
    pub async fn load_for_tenant(
        &self,
        tenant: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<HandlerComponent, LoadError> {
        let inner = self.inner.clone();
        // Refused before taking the tenant's turn: nothing to compile.
        let imports = precheck(&inner, &bytes)?;
        let component = self
            .inner
            .gate
            .run(tenant, move || build(&inner, &bytes))
            .await?;
        let owner = Some(Arc::from(tenant));
        HandlerComponent::link(self.inner.clone(), name, component, imports, owner).await
    }

    /// Load a handler component from a file.
    pub async fn load_file(
        &self,
        name: &str,
        path: impl AsRef<std::path::Path>,
    ) -> Result<HandlerComponent, LoadError> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Io {
                path: path.display().to_string(),
                source,
            })?;
        self.load(name, bytes).await
    }
}

/// Layer-1 (component) WebAssembly preamble after the magic number.
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
/// Core module preamble after the magic number.
const MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

/// Size, format and import checks, then compilation (through the code cache).
fn compile(inner: &Inner, bytes: &[u8]) -> Result<(Component, Imports), LoadError> {
    let imports = precheck(inner, bytes)?;
    Ok((build(inner, bytes)?, imports))
}

/// Compilation alone (through the code cache), of bytes [`precheck`] passed.
fn build(inner: &Inner, bytes: &[u8]) -> Result<Component, LoadError> {
    Component::new(&inner.engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))
}

/// The checks made on the bytes alone (size, format, imports), before compiling.
fn precheck(inner: &Inner, bytes: &[u8]) -> Result<Imports, LoadError> {
    let limit = inner.config.max_component_bytes;
    if bytes.len() > limit {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    if bytes[4..8] == MODULE_VERSION {
        return Err(LoadError::CoreModule);
    }
    if bytes[4..8] != COMPONENT_VERSION {
        return Err(LoadError::Invalid(format!(
            "unknown WebAssembly version {:02x?}",
            &bytes[4..8]
        )));
    }
    wasi::check_imports(bytes)
}

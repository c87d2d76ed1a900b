//! A loaded handler component: compiled, linked, described and checked, ready to
//! instantiate once per connection.

use std::sync::Arc;

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::bindings::HandlerComponentPre as BindingsPre;
use super::engine::Inner;
use super::{CallError, HandlerInstance, InstanceLimits, LoadError, StreamSpec, spec};

/// A handler ready to serve connections. Cloning is cheap.
#[derive(Clone)]
pub struct HandlerComponent {
    pub(crate) inner: Arc<ComponentInner>,
}

pub(crate) struct ComponentInner {
    pub(crate) runtime: Arc<Inner>,
    pub(crate) pre: BindingsPre<super::state::StoreState>,
    pub(crate) name: Arc<str>,
    pub(crate) spec: StreamSpec,
    pub(crate) limits: InstanceLimits,
    /// Shared with every copy made by `with_limits`.
    pub(crate) stats: Arc<super::ComponentStats>,
}

/// Whether the host offers an import of this name.
fn offered(name: &str) -> bool {
    let (package, version) = name.split_once('@').unwrap_or((name, ""));
    let wasi = package.starts_with("wasi:") && version.starts_with("0.2.");
    let ours = matches!(package, "wasmrtc:handler/host" | "wasmrtc:handler/types")
        && version.starts_with("0.1.");
    wasi || ours
}

impl HandlerComponent {
    pub(crate) async fn link(
        runtime: Arc<Inner>,
        name: &str,
        component: Component,
    ) -> Result<Self, LoadError> {
        let ty = component.component_type();
        for (import, item) in ty.imports(&runtime.engine) {
            let is_instance = matches!(item.ty, ComponentItem::ComponentInstance(_));
            if !is_instance || !offered(import) {
                return Err(LoadError::ForbiddenImport(import.to_string()));
            }
        }
        let pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = BindingsPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let limits = runtime.config.default_limits.clone();

        // Describe in a throwaway instance, with an empty spec's limits.
        let mut probe = Self {
            inner: Arc::new(ComponentInner {
                runtime,
                pre,
                name: name.into(),
                spec: placeholder_spec(),
                limits,
                stats: Arc::default(),
            }),
        };
        let described = probe
            .instantiate_raw("describe")
            .await
            .map_err(LoadError::Describe)?
            .describe()
            .await
            .map_err(LoadError::Describe)?;
        let problems = spec::validate(&described);
        if !problems.is_empty() {
            return Err(LoadError::Spec(problems));
        }
        let inner = Arc::get_mut(&mut probe.inner).expect("probe is not shared yet");
        inner.spec = described;
        Ok(probe)
    }

    /// The stream spec the handler described.
    pub fn spec(&self) -> &StreamSpec {
        &self.inner.spec
    }

    /// The stream name given at load time.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The limits new instances get.
    pub fn limits(&self) -> &InstanceLimits {
        &self.inner.limits
    }

    /// Calls, failures and live instances of this component (shared with its
    /// `with_limits` copies).
    pub fn stats(&self) -> &Arc<super::ComponentStats> {
        &self.inner.stats
    }

    /// The same component with other per-instance limits (memory is capped by the pool).
    pub fn with_limits(&self, mut limits: InstanceLimits) -> Self {
        limits.memory_bytes = limits
            .memory_bytes
            .min(self.inner.runtime.config.max_memory_bytes);
        Self {
            inner: Arc::new(ComponentInner {
                runtime: self.inner.runtime.clone(),
                pre: self.inner.pre.clone(),
                name: self.inner.name.clone(),
                spec: self.inner.spec.clone(),
                limits,
                stats: self.inner.stats.clone(),
            }),
        }
    }

    /// A fresh instance for one connection, with its inputs set to their defaults.
    pub async fn instantiate(&self, connection: &str) -> Result<HandlerInstance, CallError> {
        let mut instance = self.instantiate_raw(connection).await?;
        if !self.inner.spec.inputs.is_empty() {
            instance
                .set_inputs(&spec::default_values(&self.inner.spec))
                .await?;
        }
        Ok(instance)
    }

    async fn instantiate_raw(&self, connection: &str) -> Result<HandlerInstance, CallError> {
        HandlerInstance::new(self, connection).await
    }
}

/// Stands in for the spec while `describe` runs (no outputs may be emitted then).
fn placeholder_spec() -> StreamSpec {
    StreamSpec {
        modality: super::Modality::Audio,
        mode: super::Mode::SendReceive,
        inputs: Vec::new(),
        outputs: Vec::new(),
        input_sample_rate: 48_000,
        output_sample_rate: 24_000,
        video_format: super::PixelFormat::Bgr24,
        fps: 30,
    }
}

//! A loaded handler component: compiled, linked, described and checked, ready to
//! instantiate once per connection.

use std::sync::Arc;

use wasmtime::component::{Component, InstancePre};

use super::bindings::{HandlerIndices, RepliesIndices, TurnsIndices};
use super::engine::Inner;
use super::outbound::Outbound;
use super::state::StoreState;
use super::wasi::Imports;
use super::{CallError, HandlerInstance, InstanceLimits, LoadError, StreamSpec, TurnTaking, spec};

/// A handler ready to serve connections. Cloning is cheap.
#[derive(Clone)]
pub struct HandlerComponent {
    pub(crate) inner: Arc<ComponentInner>,
}

pub(crate) struct ComponentInner {
    pub(crate) runtime: Arc<Inner>,
    pub(crate) pre: InstancePre<StoreState>,
    /// Where the `handler` functions are (required).
    pub(crate) handler: HandlerIndices,
    /// Where the `turns` functions are, if the component exports them.
    pub(crate) turns: Option<TurnsIndices>,
    /// Where the `replies` functions are (0.1.2), if the component exports them.
    pub(crate) replies: Option<RepliesIndices>,
    pub(crate) name: Arc<str>,
    pub(crate) spec: StreamSpec,
    /// The turn-taking settings, if the handler turned it on.
    pub(crate) turn_taking: Option<TurnTaking>,
    pub(crate) limits: InstanceLimits,
    /// Shared with every copy made by `with_limits`.
    pub(crate) stats: Arc<super::ComponentStats>,
    /// The first `wasi:http` interface the component imports, if any.
    pub(crate) http_import: Option<String>,
    /// The stream's outbound access (`None`: every request is refused).
    pub(crate) outbound: Option<Arc<Outbound>>,
    /// The tenant whose share of the instance pool the instances count against
    /// (`None`: a stream of the host's own configuration).
    pub(crate) owner: Option<Arc<str>>,
}

impl HandlerComponent {
    pub(crate) async fn link(
        runtime: Arc<Inner>,
        name: &str,
        component: Component,
        imports: Imports,
        owner: Option<Arc<str>>,
    ) -> Result<Self, LoadError> {
        // The imports were checked on the bytes, before compiling (`wasi::check_imports`).
        let http_import = imports.http;
        let pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        // Looked up by semver-compatible name: a 0.1.0 export serves 0.1.1.
        let handler = HandlerIndices::new(&pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let turns = TurnsIndices::new(&pre).ok();
        let replies = RepliesIndices::new(&pre).ok();
        let limits = runtime.config.default_limits.clone();
        let stats = Arc::new(super::ComponentStats::new(runtime.config.breaker));

        // Describe in a throwaway instance, with an empty spec's limits.
        let mut probe = Self {
            inner: Arc::new(ComponentInner {
                runtime,
                pre,
                handler,
                turns,
                replies,
                name: name.into(),
                spec: placeholder_spec(),
                turn_taking: None,
                limits,
                stats,
                http_import,
                outbound: None,
                owner,
            }),
        };
        let mut instance = probe
            .instantiate_raw("describe")
            .await
            .map_err(LoadError::Describe)?;
        let described = instance.describe().await.map_err(LoadError::Describe)?;
        let turn_taking = if instance.has_turns() {
            instance.turn_taking().await.map_err(LoadError::Describe)?
        } else {
            None
        };
        drop(instance);
        let mut problems = spec::validate(&described);
        if let Some(t) = &turn_taking {
            problems.extend(spec::validate_turn_taking(&described, t));
        }
        if !problems.is_empty() {
            return Err(LoadError::Spec(problems));
        }
        let inner = Arc::get_mut(&mut probe.inner).expect("probe is not shared yet");
        inner.spec = described;
        inner.turn_taking = turn_taking;
        Ok(probe)
    }

    /// The stream spec the handler described.
    pub fn spec(&self) -> &StreamSpec {
        &self.inner.spec
    }

    /// The handler's turn-taking settings, when it replies to whole utterances.
    pub fn turn_taking(&self) -> Option<&TurnTaking> {
        self.inner.turn_taking.as_ref()
    }

    /// Whether the component exports `replies` (0.1.2): pending turn replies, a
    /// greeting at start, replies to text.
    pub fn has_replies(&self) -> bool {
        self.inner.replies.is_some()
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

    /// The `wasi:http` interface the component imports, if it imports one.
    pub fn http_import(&self) -> Option<&str> {
        self.inner.http_import.as_deref()
    }

    /// The same component with its stream's outbound access (or none). A component
    /// that imports `wasi:http` is refused without one, naming the missing grant.
    pub fn with_outbound(&self, outbound: Option<Arc<Outbound>>) -> Result<Self, LoadError> {
        if outbound.is_none()
            && let Some(import) = &self.inner.http_import
        {
            return Err(LoadError::MissingGrant {
                stream: self.inner.name.to_string(),
                import: import.clone(),
            });
        }
        Ok(self.rebuilt(self.inner.limits.clone(), outbound))
    }

    /// The same component with other per-instance limits (memory is capped by the pool).
    pub fn with_limits(&self, mut limits: InstanceLimits) -> Self {
        limits.memory_bytes = limits
            .memory_bytes
            .min(self.inner.runtime.config.max_memory_bytes);
        self.rebuilt(limits, self.inner.outbound.clone())
    }

    fn rebuilt(&self, limits: InstanceLimits, outbound: Option<Arc<Outbound>>) -> Self {
        Self {
            inner: Arc::new(ComponentInner {
                runtime: self.inner.runtime.clone(),
                pre: self.inner.pre.clone(),
                handler: self.inner.handler.clone(),
                turns: self.inner.turns.clone(),
                replies: self.inner.replies.clone(),
                name: self.inner.name.clone(),
                spec: self.inner.spec.clone(),
                turn_taking: self.inner.turn_taking,
                limits,
                stats: self.inner.stats.clone(),
                http_import: self.inner.http_import.clone(),
                outbound,
                owner: self.inner.owner.clone(),
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

//! Errors of loading a component and of calling an instance.

use std::time::Duration;

/// Why a component was refused at load or upload time.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes do not start with the WebAssembly magic number.
    #[error("not a WebAssembly file (it does not start with \\0asm)")]
    NotWasm,
    /// A core module was given where a component is needed.
    #[error(
        "this is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component is larger than the host accepts.
    #[error("component is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the component.
        size: usize,
        /// The host's limit.
        limit: usize,
    },
    /// The bytes are not a valid component (truncated, corrupt…).
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component imports something the host does not offer (checked on its
    /// bytes, before compiling).
    #[error(
        "component imports `{0}`, which wasmrtc does not offer: a handler may import only wasmrtc:handler/host, wasmrtc:handler/types and the WASI 0.2 interfaces the README's sandbox section lists (clocks, random, io, cli streams; filesystem and sockets without access; wasi:http with a grant)"
    )]
    ForbiddenImport(String),
    /// The component imports an interface the host offers, in a version it does not.
    #[error("component imports `{import}`, but this host implements {supported}")]
    ImportVersion {
        /// The import.
        import: String,
        /// What the host implements, e.g. `wasi:io/poll@0.2.x`.
        supported: String,
    },
    /// Compiling the component took longer than the host allows.
    #[error(
        "compiling the component took longer than {limit:?}: make it smaller (fewer or smaller functions)"
    )]
    CompileTimeout {
        /// The limit.
        limit: std::time::Duration,
    },
    /// The tenant already has a compilation running (one at a time per tenant).
    #[error(
        "tenant `{tenant}` already has an upload being compiled: wait for it to finish, then retry"
    )]
    CompileBusy {
        /// The tenant.
        tenant: String,
    },
    /// Every compiler slot of the host stayed busy longer than the host waits.
    #[error("the host is busy compiling other components (waited {waited:?}): retry later")]
    CompilerBusy {
        /// How long the upload waited for a slot.
        waited: std::time::Duration,
    },
    /// The component does not fit the handler world (missing export, wrong version…).
    #[error("component does not implement wasmrtc:handler/handler@0.1.x: {0}")]
    Link(String),
    /// `describe` failed.
    #[error("`describe` failed: {0}")]
    Describe(#[source] CallError),
    /// The stream spec returned by `describe` is not acceptable.
    #[error("the stream spec is not acceptable: {}", .0.join("; "))]
    Spec(Vec<String>),
    /// The component imports `wasi:http` but its stream has no outbound grant.
    #[error(
        "component imports `{import}` but stream `{stream}` has no outbound grant: the operator grants hosts per stream with `[stream.outbound] allowed_hosts = [\"https://…\"]` in the configuration file (hosted tenants' streams have none)"
    )]
    MissingGrant {
        /// The stream.
        stream: String,
        /// The `wasi:http` import.
        import: String,
    },
    /// The component file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Path of the file.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// What ended an instance; a stable label for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureCause {
    /// Used more CPU than its per-call budget.
    CpuBudget,
    /// Did not return within the wall-clock deadline.
    WallClock,
    /// Tried to grow memory or tables past the cap.
    Memory,
    /// Misused a host call (flooded events, wrong arity…).
    HostCallAbuse,
    /// Trapped on its own (panic, unreachable, out-of-bounds…).
    Trap,
    /// Could not be instantiated.
    Instantiate,
    /// Made more refused outbound requests than the policy's `max_violations`.
    OutboundAbuse,
}

impl FailureCause {
    /// The label, e.g. `cpu-budget`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CpuBudget => "cpu-budget",
            Self::WallClock => "wall-clock",
            Self::Memory => "memory",
            Self::HostCallAbuse => "host-call-abuse",
            Self::Trap => "trap",
            Self::Instantiate => "instantiate",
            Self::OutboundAbuse => "outbound-abuse",
        }
    }
}

/// Why a call into a handler instance failed. After any of these the instance is dead.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The call used more CPU than its budget.
    #[error("handler used more than its CPU budget of {budget:?} in `{call}`")]
    CpuBudget {
        /// The export that was running.
        call: &'static str,
        /// The budget.
        budget: Duration,
    },
    /// The call did not return in time.
    #[error("handler did not return from `{call}` within {limit:?}")]
    WallClock {
        /// The export that was running.
        call: &'static str,
        /// The deadline.
        limit: Duration,
    },
    /// The guest tried to grow memory or a table past its cap.
    #[error("handler exceeded its memory cap of {cap} bytes in `{call}`")]
    Memory {
        /// The export that was running.
        call: &'static str,
        /// The cap in bytes.
        cap: usize,
    },
    /// The guest misused a host call.
    #[error("handler misused the host interface in `{call}`: {reason}")]
    HostCallAbuse {
        /// The export that was running.
        call: &'static str,
        /// What it did.
        reason: String,
    },
    /// The guest trapped.
    #[error("handler trapped in `{call}`: {message}")]
    Trap {
        /// The export that was running.
        call: &'static str,
        /// The trap, with the guest's last line of stderr when there is one.
        message: String,
    },
    /// The guest kept making outbound requests its grant or the policy refuses.
    #[error("handler ended in `{call}`: {reason}")]
    OutboundAbuse {
        /// The export that was running.
        call: &'static str,
        /// How many were refused.
        reason: String,
    },
    /// An earlier call failed; the instance cannot be used any more.
    #[error("handler instance stopped after an earlier failure")]
    Dead,
    /// A fresh instance could not be created.
    #[error("cannot start a handler instance: {0}")]
    Instantiate(String),
    /// The host's instance pool, or the owner's share of it, is full: nothing the
    /// handler did, so it does not count against its breaker.
    #[error("no room for another handler instance: {0}")]
    HostFull(String),
}

impl CallError {
    /// The cause label for metrics.
    pub fn cause(&self) -> FailureCause {
        match self {
            Self::CpuBudget { .. } => FailureCause::CpuBudget,
            Self::WallClock { .. } => FailureCause::WallClock,
            Self::Memory { .. } => FailureCause::Memory,
            Self::HostCallAbuse { .. } => FailureCause::HostCallAbuse,
            Self::Trap { .. } | Self::Dead => FailureCause::Trap,
            Self::Instantiate(_) | Self::HostFull(_) => FailureCause::Instantiate,
            Self::OutboundAbuse { .. } => FailureCause::OutboundAbuse,
        }
    }

    /// Whether the host, not the guest, is why the instance could not start (its
    /// pool or the owner's share of it is full): answered `503 host_full`.
    pub fn is_host_full(&self) -> bool {
        matches!(self, Self::HostFull(_))
    }
}

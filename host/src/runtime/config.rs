//! Sizing of the engine's instance pool and the per-instance limits.

use std::path::PathBuf;
use std::time::Duration;

use super::breaker::BreakerPolicy;

/// Limits applied to every instance of a handler (per connection, per call).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceLimits {
    /// Largest linear memory an instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Largest number of table elements an instance may grow a table to.
    pub table_elements: usize,
    /// CPU time one call may use, counted in epoch ticks of [`RuntimeConfig::epoch_tick`].
    pub cpu_per_call: Duration,
    /// Wall-clock time one call may take, including time the guest spends blocked.
    pub wall_per_call: Duration,
    /// Host events (outputs, notifications…) one call may raise before it is stopped.
    pub events_per_call: usize,
    /// Bytes of event payload one call may raise before it is stopped.
    pub event_bytes_per_call: usize,
    /// Guest stdout/stderr lines per second forwarded to the log; the rest is counted and dropped.
    pub log_lines_per_second: u32,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 128 << 20,
            table_elements: 100_000,
            cpu_per_call: Duration::from_millis(50),
            wall_per_call: Duration::from_secs(2),
            events_per_call: 256,
            event_bytes_per_call: 1 << 20,
            log_lines_per_second: 20,
        }
    }
}

/// Configuration of the shared engine.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Instances alive at once across all streams (the pooling allocator's size).
    pub max_instances: u32,
    /// Upper bound for any instance's memory; [`InstanceLimits::memory_bytes`] may be lower.
    pub max_memory_bytes: usize,
    /// Largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// Interval of the epoch ticker that meters CPU use and yields to other tasks.
    pub epoch_tick: Duration,
    /// Directory of the compiled-code cache; `None` disables it. The cache owns it:
    /// its periodic clean-up deletes every file in it that it did not write, so it
    /// must not be shared with anything else.
    pub cache_dir: Option<PathBuf>,
    /// Limits for instances of handlers that do not set their own.
    pub default_limits: InstanceLimits,
    /// When new connections to a component whose instances keep failing are refused.
    pub breaker: BreakerPolicy,
    /// Percentage of `max_instances` one tenant's streams may hold at once (1..=100);
    /// past it new connections of that tenant are answered `503 host_full`.
    pub tenant_pool_percent: u8,
    /// Time a tenant's upload may spend compiling before it is refused.
    pub compile_timeout: Duration,
    /// Tenants' uploads compiled at once on the host (one per tenant at a time).
    pub compile_slots: usize,
    /// Most bytes one `wasi:random` call may ask for; a larger call ends the instance
    /// as `host-call-abuse`.
    pub random_bytes_per_call: u64,
    /// Host resources (streams, pollables, sockets, requests) one instance may hold at once.
    pub resources_per_instance: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 256 << 20,
            max_component_bytes: 64 << 20,
            epoch_tick: Duration::from_millis(1),
            cache_dir: default_cache_dir(),
            default_limits: InstanceLimits::default(),
            breaker: BreakerPolicy::default(),
            tenant_pool_percent: 50,
            compile_timeout: Duration::from_secs(30),
            compile_slots: std::thread::available_parallelism().map_or(1, |n| n.get()),
            random_bytes_per_call: super::wasi::RANDOM_BYTES_PER_CALL,
            resources_per_instance: super::wasi::RESOURCES_PER_INSTANCE,
        }
    }
}

/// `$XDG_CACHE_HOME/wasmrtc/compiled` or `$HOME/.cache/wasmrtc/compiled`: a
/// directory of its own, since the cache's clean-up removes files it does not know.
fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("wasmrtc").join("compiled"))
}

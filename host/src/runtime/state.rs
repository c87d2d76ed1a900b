//! What a store holds for one connection: WASI context, limits, meters and the event queue.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::events::EventQueue;
use super::guest_log::GuestLog;
use super::limits::{CpuMeter, MemoryLimiter};
use super::outbound::{Outbound, OutboundHooks};
use super::{InstanceLimits, RuntimeConfig};

/// The data of one instance's `Store`.
pub(crate) struct StoreState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryLimiter,
    pub(crate) cpu: CpuMeter,
    pub(crate) events: EventQueue,
    pub(crate) stderr: GuestLog,
    pub(crate) http: WasiHttpCtx,
    /// Outbound requests go through these (all refused without a grant).
    pub(crate) outbound: OutboundHooks,
    /// Most bytes one `wasi:random` call may ask for.
    pub(crate) random_limit: u64,
}

impl StoreState {
    /// A deny-by-default WASI context (no dirs, args, sockets) with stdout and stderr
    /// going to the rate-limited guest log. With a grant, its variables are the
    /// guest's environment and `wasi:http` requests go through its hooks.
    pub(crate) fn new(
        limits: &InstanceLimits,
        config: &RuntimeConfig,
        outputs: usize,
        stream: &str,
        connection: &str,
        outbound: Option<Arc<Outbound>>,
    ) -> Self {
        let stdout = GuestLog::new(stream, connection, "stdout", limits.log_lines_per_second);
        let stderr = GuestLog::new(stream, connection, "stderr", limits.log_lines_per_second);
        let mut builder = WasiCtx::builder();
        if let Some(access) = &outbound {
            for (k, v) in &access.grant().variables {
                builder.env(k, v);
            }
        }
        let wasi = builder
            .stdout(stdout)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(config.resources_per_instance);
        Self {
            wasi,
            table,
            memory: MemoryLimiter::new(limits),
            cpu: CpuMeter::new(limits.cpu_per_call),
            events: EventQueue::new(limits, outputs),
            stderr,
            http: WasiHttpCtx::new(),
            outbound: OutboundHooks::new(outbound),
            random_limit: config.random_bytes_per_call,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

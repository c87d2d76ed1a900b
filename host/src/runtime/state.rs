//! What a store holds for one connection: WASI context, limits, meters and the event queue.

use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::InstanceLimits;
use super::events::EventQueue;
use super::guest_log::GuestLog;
use super::limits::{CpuMeter, MemoryLimiter};

/// The data of one instance's `Store`.
pub(crate) struct StoreState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryLimiter,
    pub(crate) cpu: CpuMeter,
    pub(crate) events: EventQueue,
    pub(crate) stderr: GuestLog,
}

impl StoreState {
    /// A deny-by-default WASI context (no dirs, env, args, network) with stdout and
    /// stderr going to the rate-limited guest log.
    pub(crate) fn new(
        limits: &InstanceLimits,
        tick: Duration,
        outputs: usize,
        stream: &str,
        connection: &str,
    ) -> Self {
        let stdout = GuestLog::new(stream, connection, "stdout", limits.log_lines_per_second);
        let stderr = GuestLog::new(stream, connection, "stderr", limits.log_lines_per_second);
        let wasi = WasiCtx::builder()
            .stdout(stdout)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryLimiter::new(limits),
            cpu: CpuMeter::new(limits.cpu_per_call, tick),
            events: EventQueue::new(limits, outputs),
            stderr,
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

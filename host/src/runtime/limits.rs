//! Per-store meters: the memory/table limiter and the CPU budget of a call.

use std::time::Duration;

use wasmtime::{ResourceLimiter, Result};

use super::InstanceLimits;

/// Caps memory and table growth of one store and remembers when a cap was hit,
/// so that the resulting trap can be reported as a memory overrun.
pub(crate) struct MemoryLimiter {
    cap: usize,
    table_elements: usize,
    /// Bytes of linear memory currently in use (all memories of the store).
    pub(crate) in_use: usize,
    /// Set when the guest asked for more than the cap.
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limits: &InstanceLimits) -> Self {
        Self {
            cap: limits.memory_bytes,
            table_elements: limits.table_elements,
            in_use: 0,
            exceeded: false,
        }
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        let total = self.in_use - current.min(self.in_use) + desired;
        if total > self.cap {
            self.exceeded = true;
            wasmtime::bail!(
                "memory cap of {} bytes exceeded (asked for {total})",
                self.cap
            );
        }
        self.in_use = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> Result<bool> {
        if desired > self.table_elements {
            self.exceeded = true;
            wasmtime::bail!("table cap of {} elements exceeded", self.table_elements);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// Counts the epoch ticks a call runs for; past the budget the call is interrupted.
pub(crate) struct CpuMeter {
    budget_ticks: u64,
    budget: Duration,
    ticks: u64,
    /// Set when the current call ran out of budget.
    pub(crate) exceeded: bool,
}

impl CpuMeter {
    pub(crate) fn new(budget: Duration, tick: Duration) -> Self {
        let budget_ticks = (budget.as_nanos() / tick.as_nanos().max(1)).max(1) as u64;
        Self {
            budget_ticks,
            budget,
            ticks: 0,
            exceeded: false,
        }
    }

    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    /// Start metering a new call.
    pub(crate) fn reset(&mut self) {
        self.ticks = 0;
        self.exceeded = false;
    }

    /// One tick passed while the guest ran: `true` if it may go on.
    pub(crate) fn tick(&mut self) -> bool {
        self.ticks += 1;
        if self.ticks > self.budget_ticks {
            self.exceeded = true;
        }
        !self.exceeded
    }
}

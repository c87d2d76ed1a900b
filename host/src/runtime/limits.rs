//! Per-store meters: the memory/table limiter and the CPU budget of a call.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// The CPU budget of a call, charged with the time the call really ran.
///
/// The guest runs only while its call's future is polled, so the call is wrapped in
/// [`metered`], which adds up the thread's CPU time of each poll: guest code, the
/// host work its calls cause (a 32 MiB `memory.fill`, random bytes, resource
/// bookkeeping) and nothing else. Time spent waiting (the guest blocked in a clock
/// poll or a request, or descheduled after yielding) costs nothing; the wall-clock
/// deadline bounds it. The epoch callback ([`CpuMeter::tick`]) checks the budget
/// at every tick and interrupts the call once it is spent.
///
/// The clock also keeps the time the call was held up by the host (ready to run
/// but not polled, after each yield), so that a wall-clock overrun the host caused
/// is not held against the guest.
pub(crate) struct CpuMeter {
    budget: Duration,
    clock: Arc<CallClock>,
    /// Set when the current call ran out of budget.
    pub(crate) exceeded: bool,
}

impl CpuMeter {
    pub(crate) fn new(budget: Duration) -> Self {
        Self {
            budget,
            clock: Arc::default(),
            exceeded: false,
        }
    }

    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    /// The clock the call's future is [`metered`] with.
    pub(crate) fn clock(&self) -> Arc<CallClock> {
        self.clock.clone()
    }

    /// Start metering a new call.
    pub(crate) fn reset(&mut self) {
        self.exceeded = false;
        self.clock.reset();
    }

    /// An epoch tick passed while the guest ran: `true` if it may go on (and yields).
    pub(crate) fn tick(&mut self) -> bool {
        if self.clock.used() > self.budget {
            self.exceeded = true;
        }
        self.clock.yielding();
        !self.exceeded
    }
}

/// Time accounting of the call in progress, shared by the store's meter and the
/// future driving the call.
#[derive(Debug, Default)]
pub(crate) struct CallClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    /// CPU time of the finished polls of this call.
    used: Duration,
    /// The thread's CPU clock when the poll in progress started.
    poll_started: Option<Duration>,
    /// The guest yielded in the poll in progress.
    yielded: bool,
    /// Since when the call has been ready to run but not polled (the call's start,
    /// or the end of a poll that yielded).
    held_since: Option<Instant>,
    /// Time the call spent ready to run but not polled.
    held: Duration,
}

impl CallClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call starts now: nothing used, held up by the host until first polled.
    pub(crate) fn reset(&self) {
        *self.lock() = ClockState {
            held_since: Some(Instant::now()),
            ..ClockState::default()
        };
    }

    /// CPU time used by the call so far, the poll in progress included.
    pub(crate) fn used(&self) -> Duration {
        let s = self.lock();
        let running = s
            .poll_started
            .map(|start| thread_cpu().saturating_sub(start))
            .unwrap_or_default();
        s.used + running
    }

    /// Time the call was ready to run but not polled, so far.
    pub(crate) fn held(&self) -> Duration {
        let s = self.lock();
        s.held + s.held_since.map(|t| t.elapsed()).unwrap_or_default()
    }

    fn yielding(&self) {
        self.lock().yielded = true;
    }

    fn enter(&self) {
        let mut s = self.lock();
        if let Some(since) = s.held_since.take() {
            s.held += since.elapsed();
        }
        s.yielded = false;
        s.poll_started = Some(thread_cpu());
    }

    fn leave(&self, pending: bool) {
        let mut s = self.lock();
        if let Some(start) = s.poll_started.take() {
            s.used += thread_cpu().saturating_sub(start);
        }
        // A guest that yielded is ready again at once: until its next poll it waits
        // for the host, not for anything it asked for.
        if pending && s.yielded {
            s.held_since = Some(Instant::now());
        }
    }
}

/// Drive `call` (the future of one guest call), charging each poll to `clock`.
pub(crate) async fn metered<F: Future>(clock: &CallClock, call: F) -> F::Output {
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| {
        clock.enter();
        let r = call.as_mut().poll(cx);
        clock.leave(r.is_pending());
        r
    })
    .await
}

/// The CPU time of the current thread (a poll runs on one thread from start to end).
#[cfg(unix)]
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or_default(),
        u32::try_from(t.tv_nsec).unwrap_or_default(),
    )
}

/// Elsewhere, the elapsed time: a poll preempted by the system is charged too.
#[cfg(not(unix))]
fn thread_cpu() -> Duration {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_poll_busy_on_cpu_is_charged_and_waiting_is_not() {
        let clock = CallClock::default();
        clock.reset();
        metered(&clock, tokio::time::sleep(Duration::from_millis(50))).await;
        let idle = clock.used();
        metered(&clock, async {
            let start = thread_cpu();
            while thread_cpu() - start < Duration::from_millis(30) {
                std::hint::black_box(0u64);
            }
        })
        .await;
        let busy = clock.used() - idle;
        assert!(idle < Duration::from_millis(20), "sleeping cost {idle:?}");
        assert!(busy >= Duration::from_millis(30), "spinning cost {busy:?}");
    }
}

//! Counters of one loaded component, shared by its instances: calls, failures by
//! cause, and the connections whose instance is alive (for metrics and the admin API).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::FailureCause;

/// Every cause, in the order [`ComponentStats::failures`] reports them.
pub const FAILURE_CAUSES: [FailureCause; 6] = [
    FailureCause::CpuBudget,
    FailureCause::WallClock,
    FailureCause::Memory,
    FailureCause::HostCallAbuse,
    FailureCause::Trap,
    FailureCause::Instantiate,
];

/// Counters of a component (and of every copy made by
/// [`with_limits`](super::HandlerComponent::with_limits), which shares them).
#[derive(Debug, Default)]
pub struct ComponentStats {
    calls: AtomicU64,
    failures: [AtomicU64; FAILURE_CAUSES.len()],
    /// Connection id → instances alive for it (normally one).
    live: Mutex<HashMap<String, usize>>,
}

impl ComponentStats {
    /// Calls made into instances of the component.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Instances that failed, by cause (every cause, zeros included).
    pub fn failures(&self) -> [(FailureCause, u64); FAILURE_CAUSES.len()] {
        std::array::from_fn(|i| (FAILURE_CAUSES[i], self.failures[i].load(Ordering::Relaxed)))
    }

    /// Ids of the connections with a live instance of the component.
    pub fn live_connections(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Number of live instances.
    pub fn live_instances(&self) -> usize {
        self.lock().values().sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn called(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, cause: FailureCause) {
        if let Some(i) = FAILURE_CAUSES.iter().position(|c| *c == cause) {
            self.failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn started(&self, connection: &str) {
        *self.lock().entry(connection.to_string()).or_default() += 1;
    }

    pub(crate) fn ended(&self, connection: &str) {
        let mut live = self.lock();
        if let Some(n) = live.get_mut(connection) {
            *n -= 1;
            if *n == 0 {
                live.remove(connection);
            }
        }
    }
}

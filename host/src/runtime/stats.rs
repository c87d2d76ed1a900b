//! Counters of one loaded component, shared by its instances: calls and their
//! duration, failures by cause, linear memory in use, and the connections whose
//! instance is alive (for metrics and the admin API).
//!
//! Only failures the guest caused feed the component's breaker: a full instance
//! pool is not a failure at all ([`super::CallError::HostFull`]), and a wall-clock
//! overrun the host caused (the call held up, ready to run, by a loaded host) is
//! counted by cause but not held against the component ([`Culprit::Host`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::FailureCause;
use super::breaker::{Breaker, BreakerPolicy};

/// Every cause, in the order [`ComponentStats::failures`] reports them.
pub const FAILURE_CAUSES: [FailureCause; 7] = [
    FailureCause::CpuBudget,
    FailureCause::WallClock,
    FailureCause::Memory,
    FailureCause::HostCallAbuse,
    FailureCause::Trap,
    FailureCause::Instantiate,
    FailureCause::OutboundAbuse,
];

/// Upper bounds, in seconds, of the buckets of the call-duration histogram (a last,
/// unbounded bucket follows): a 20 ms audio call takes microseconds, a 640x480 video
/// call a few hundred, a guest near its CPU budget tens of milliseconds.
pub const CALL_SECONDS_BUCKETS: [f64; 10] = [
    10e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3,
];

/// Who caused an instance's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Culprit {
    /// The guest: counts against its breaker.
    Guest,
    /// The host (its load): counted by cause, not against the breaker.
    Host,
}

/// Counters of a component (and of every copy made by
/// [`with_limits`](super::HandlerComponent::with_limits), which shares them).
#[derive(Debug, Default)]
pub struct ComponentStats {
    calls: AtomicU64,
    failures: [AtomicU64; FAILURE_CAUSES.len()],
    /// Calls by duration: one count per bucket of [`CALL_SECONDS_BUCKETS`], then the rest.
    call_buckets: [AtomicU64; CALL_SECONDS_BUCKETS.len() + 1],
    call_nanos: AtomicU64,
    /// Linear memory of the live instances, summed.
    memory_bytes: AtomicU64,
    /// The most linear memory one instance has had.
    memory_peak: AtomicU64,
    /// Failures the host caused (counted in `failures` too, not by the breaker).
    host_caused: AtomicU64,
    /// Refuses new connections while instances keep failing.
    breaker: Mutex<Breaker>,
    /// Connection id → instances alive for it (normally one).
    live: Mutex<HashMap<String, usize>>,
}

impl ComponentStats {
    /// Zeroed counters, and a closed breaker that follows `policy`.
    pub(crate) fn new(policy: BreakerPolicy) -> Self {
        Self {
            breaker: Mutex::new(Breaker::new(policy)),
            ..Self::default()
        }
    }

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

    /// A copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            calls: self.calls(),
            failures: std::array::from_fn(|i| self.failures[i].load(Ordering::Relaxed)),
            call_buckets: std::array::from_fn(|i| self.call_buckets[i].load(Ordering::Relaxed)),
            call_seconds: self.call_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            memory_bytes: self.memory_bytes.load(Ordering::Relaxed),
            memory_peak: self.memory_peak.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn called(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// A call (successful or not) took `took`.
    pub(crate) fn timed(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = CALL_SECONDS_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(CALL_SECONDS_BUCKETS.len());
        self.call_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.call_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// An instance's linear memory went from `before` to `after` bytes (0 → n when it
    /// starts, n → 0 when it ends).
    pub(crate) fn memory_moved(&self, before: usize, after: usize) {
        let (before, after) = (before as u64, after as u64);
        if after > before {
            self.memory_bytes
                .fetch_add(after - before, Ordering::Relaxed);
            self.memory_peak.fetch_max(after, Ordering::Relaxed);
        } else if before > after {
            self.memory_bytes
                .fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// An instance failed through its guest's fault.
    pub(crate) fn failed(&self, cause: FailureCause) {
        self.failed_by(cause, Culprit::Guest);
    }

    /// An instance failed by `cause`; only a guest's failure counts against the breaker.
    pub(crate) fn failed_by(&self, cause: FailureCause, culprit: Culprit) {
        if let Some(i) = FAILURE_CAUSES.iter().position(|c| *c == cause) {
            self.failures[i].fetch_add(1, Ordering::Relaxed);
        }
        if culprit == Culprit::Host {
            self.host_caused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failed(Instant::now());
    }

    /// Failures the host caused (included in [`failures`](Self::failures)), which
    /// the breaker does not count.
    pub fn host_caused_failures(&self) -> u64 {
        self.host_caused.load(Ordering::Relaxed)
    }

    /// How much longer new connections are refused because instances of the component
    /// keep failing (see [`super::breaker`]), if they are.
    pub fn refusing(&self) -> Option<Duration> {
        self.breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open_at(Instant::now())
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

/// The counters of one or more components at one moment (see [`ComponentStats`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Calls made into instances.
    pub calls: u64,
    /// Failed instances by cause, in the order of [`FAILURE_CAUSES`].
    pub failures: [u64; FAILURE_CAUSES.len()],
    /// Calls per duration bucket of [`CALL_SECONDS_BUCKETS`] (not cumulative), then
    /// the calls longer than the last bound.
    pub call_buckets: [u64; CALL_SECONDS_BUCKETS.len() + 1],
    /// Time spent in calls, in seconds.
    pub call_seconds: f64,
    /// Linear memory of the live instances, summed, in bytes.
    pub memory_bytes: u64,
    /// The most linear memory one instance has had, in bytes.
    pub memory_peak: u64,
}

impl StatsSnapshot {
    /// Adds another component's counters: sums, except the peak (the larger one).
    pub fn add(&mut self, other: &StatsSnapshot) {
        self.calls += other.calls;
        for (a, b) in self.failures.iter_mut().zip(other.failures) {
            *a += b;
        }
        for (a, b) in self.call_buckets.iter_mut().zip(other.call_buckets) {
            *a += b;
        }
        self.call_seconds += other.call_seconds;
        self.memory_bytes += other.memory_bytes;
        self.memory_peak = self.memory_peak.max(other.memory_peak);
    }

    /// Failures by cause.
    pub fn by_cause(&self) -> impl Iterator<Item = (FailureCause, u64)> + '_ {
        FAILURE_CAUSES
            .iter()
            .copied()
            .zip(self.failures.iter().copied())
    }

    /// Calls whose duration was recorded (every finished call).
    pub fn calls_timed(&self) -> u64 {
        self.call_buckets.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_the_host_caused_are_counted_but_never_open_the_breaker() {
        let stats = ComponentStats::new(BreakerPolicy {
            threshold: 2,
            ..BreakerPolicy::default()
        });
        for _ in 0..10 {
            stats.failed_by(FailureCause::WallClock, Culprit::Host);
        }
        assert_eq!(stats.refusing(), None);
        assert_eq!(stats.host_caused_failures(), 10);
        assert_eq!(stats.snapshot().failures[1], 10);
        stats.failed(FailureCause::WallClock);
        stats.failed(FailureCause::WallClock);
        assert!(stats.refusing().is_some());
    }

    #[test]
    fn calls_land_in_their_bucket_and_memory_follows_instances() {
        let stats = ComponentStats::default();
        stats.timed(Duration::from_micros(3));
        stats.timed(Duration::from_micros(120));
        stats.timed(Duration::from_secs(1));
        stats.memory_moved(0, 1 << 20);
        stats.memory_moved(0, 2 << 20);
        stats.memory_moved(2 << 20, 3 << 20);
        stats.memory_moved(1 << 20, 0);
        let s = stats.snapshot();
        assert_eq!(s.call_buckets[0], 1);
        assert_eq!(s.call_buckets[3], 1);
        assert_eq!(s.call_buckets[CALL_SECONDS_BUCKETS.len()], 1);
        assert_eq!(s.call_buckets.iter().sum::<u64>(), 3);
        assert!((s.call_seconds - 1.000123).abs() < 1e-9);
        assert_eq!(s.memory_bytes, 3 << 20);
        assert_eq!(s.memory_peak, 3 << 20);
    }
}

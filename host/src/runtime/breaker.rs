//! The failure breaker of a component: when its instances keep getting killed (traps,
//! budgets, memory caps, host-call abuse), new connections are refused for a cool-down
//! instead of paying for a handshake and an instance that will die again.
//!
//! By default ([`BreakerPolicy::default`]) [`THRESHOLD`] failures within [`WINDOW`]
//! open the breaker for [`FIRST_COOLDOWN`]; each time it opens again before [`CALM`]
//! has passed the cool-down doubles, up to [`MAX_COOLDOWN`]. Open connections are not
//! touched, and a new version of the component (a new upload) starts with a closed
//! breaker. The host's operator sets another policy in `RuntimeConfig::breaker`
//! (the configuration file's `[breaker]` table).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Failures within [`WINDOW`] that open the breaker.
pub const THRESHOLD: usize = 5;
/// The window in which [`THRESHOLD`] failures open the breaker.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The first cool-down.
pub const FIRST_COOLDOWN: Duration = Duration::from_secs(5);
/// The longest cool-down.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(300);
/// Time without opening after which the cool-down starts again from [`FIRST_COOLDOWN`].
pub const CALM: Duration = Duration::from_secs(600);

/// When a component's breaker opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Failures within `window` that open the breaker; 0 never opens it.
    pub threshold: usize,
    /// The window in which `threshold` failures open the breaker.
    pub window: Duration,
    /// The first cool-down.
    pub first_cooldown: Duration,
    /// The longest cool-down (each opening within [`CALM`] of the last doubles it).
    pub max_cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            threshold: THRESHOLD,
            window: WINDOW,
            first_cooldown: FIRST_COOLDOWN,
            max_cooldown: MAX_COOLDOWN,
        }
    }
}

/// Why a connection is refused while the breaker is open for `left` more.
pub fn refusal_message(left: Duration) -> String {
    format!(
        "this stream's handler keeps failing; new connections are refused for {} s",
        left.as_secs() + 1
    )
}

/// The breaker's state (behind the component's stats lock).
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    policy: BreakerPolicy,
    /// Times of the failures within the window, oldest first.
    recent: VecDeque<Instant>,
    /// Until when new connections are refused.
    open_until: Option<Instant>,
    /// The last cool-down, and when the breaker last opened.
    last: Option<(Duration, Instant)>,
}

impl Breaker {
    /// A closed breaker following `policy`.
    pub(crate) fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// An instance failed at `now`.
    pub(crate) fn failed(&mut self, now: Instant) {
        let policy = self.policy;
        if policy.threshold == 0 {
            return;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() < policy.threshold || self.open_at(now).is_some() {
            return;
        }
        let cooldown = match self.last {
            Some((previous, opened)) if now.duration_since(opened) < CALM => {
                (previous * 2).min(policy.max_cooldown)
            }
            _ => policy.first_cooldown.min(policy.max_cooldown),
        };
        self.open_until = Some(now + cooldown);
        self.last = Some((cooldown, now));
        self.recent.clear();
    }

    /// How long new connections are still refused at `now`, if they are.
    pub(crate) fn open_at(&self, now: Instant) -> Option<Duration> {
        self.open_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_a_burst_of_failures_and_backs_off() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for i in 0..THRESHOLD - 1 {
            b.failed(t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(b.open_at(t0), None, "below the threshold");
        b.failed(t0 + Duration::from_millis(10));
        let left = b.open_at(t0 + Duration::from_millis(10)).expect("open");
        assert_eq!(left, FIRST_COOLDOWN);
        let reopened = t0 + FIRST_COOLDOWN + Duration::from_secs(1);
        assert_eq!(b.open_at(reopened), None, "closed after the cool-down");
        for i in 0..THRESHOLD {
            b.failed(reopened + Duration::from_millis(i as u64));
        }
        assert_eq!(
            b.open_at(reopened + Duration::from_millis(4)),
            Some(2 * FIRST_COOLDOWN),
            "the second opening lasts twice as long"
        );
    }

    #[test]
    fn a_policy_sets_the_threshold_and_cooldowns_and_zero_turns_it_off() {
        let t0 = Instant::now();
        let policy = BreakerPolicy {
            threshold: 2,
            window: Duration::from_secs(1),
            first_cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(40),
        };
        let mut b = Breaker::new(policy);
        b.failed(t0);
        assert_eq!(b.open_at(t0), None);
        b.failed(t0);
        assert_eq!(b.open_at(t0), Some(Duration::from_secs(30)));
        let later = t0 + Duration::from_secs(31);
        b.failed(later);
        b.failed(later);
        assert_eq!(
            b.open_at(later),
            Some(Duration::from_secs(40)),
            "doubled, capped"
        );

        let mut off = Breaker::new(BreakerPolicy {
            threshold: 0,
            ..policy
        });
        for _ in 0..100 {
            off.failed(t0);
        }
        assert_eq!(off.open_at(t0), None);
    }

    #[test]
    fn failures_spread_out_never_open_it() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for i in 0..100 {
            let t = t0 + WINDOW * i / (THRESHOLD as u32 - 2);
            b.failed(t);
            assert_eq!(b.open_at(t), None, "failure {i}");
        }
    }
}

//! The failure breaker of a component: when its instances keep getting killed (traps,
//! budgets, memory caps, host-call abuse), new connections are refused for a cool-down
//! instead of paying for a handshake and an instance that will die again.
//!
//! [`THRESHOLD`] failures within [`WINDOW`] open the breaker for [`FIRST_COOLDOWN`];
//! each time it opens again before [`CALM`] has passed the cool-down doubles, up to
//! [`MAX_COOLDOWN`]. Open connections are not touched, and a new version of the
//! component (a new upload) starts with a closed breaker.

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
    /// Times of the failures within the window, oldest first.
    recent: VecDeque<Instant>,
    /// Until when new connections are refused.
    open_until: Option<Instant>,
    /// The last cool-down, and when the breaker last opened.
    last: Option<(Duration, Instant)>,
}

impl Breaker {
    /// An instance failed at `now`.
    pub(crate) fn failed(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() < THRESHOLD || self.open_at(now).is_some() {
            return;
        }
        let cooldown = match self.last {
            Some((previous, opened)) if now.duration_since(opened) < CALM => {
                (previous * 2).min(MAX_COOLDOWN)
            }
            _ => FIRST_COOLDOWN,
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

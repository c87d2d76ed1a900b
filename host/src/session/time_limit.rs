//! A stream's `time_limit` on one connection: a warning a few seconds before the end,
//! then the end. Every transport keeps one and sends what it says.

use std::time::{Duration, Instant};

use super::messages;

/// Why the connection ended, as `end_stream` and close frames say it.
pub(crate) const REACHED: &str = "time limit reached";

/// The clock of one connection's time limit.
#[derive(Debug)]
pub(crate) struct TimeLimit {
    limit: Duration,
    deadline: Instant,
    warned: bool,
}

/// What the time limit asks of the connection now.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Send this `warning` message (once).
    Warn(String),
    /// The limit is reached: send `end_stream` and close.
    Expired,
}

impl TimeLimit {
    /// The clock of a connection that started (connected) at `started`; `None`
    /// without a limit.
    pub(crate) fn start(limit: Option<Duration>, started: Instant) -> Option<Self> {
        limit.map(|limit| Self {
            limit,
            deadline: started + limit,
            warned: false,
        })
    }

    /// The warning comes this long before the end: 5 s, or half of a shorter limit.
    fn warn_before(&self) -> Duration {
        (self.limit / 2).min(Duration::from_secs(5))
    }

    /// When [`TimeLimit::check`] has something to say next.
    pub(crate) fn next_wake(&self) -> Instant {
        if self.warned {
            self.deadline
        } else {
            self.deadline - self.warn_before()
        }
    }

    /// What is due at `now`: the warning once, then the end.
    pub(crate) fn check(&mut self, now: Instant) -> Option<Step> {
        if now >= self.deadline {
            return Some(Step::Expired);
        }
        if self.warned || now < self.deadline - self.warn_before() {
            return None;
        }
        self.warned = true;
        let left = self
            .deadline
            .saturating_duration_since(now)
            .as_secs_f64()
            .round();
        Some(Step::Warn(messages::warning(&format!(
            "Time limit of {} s: this stream closes in {left} s.",
            self.limit.as_secs_f64()
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_five_seconds_before_then_expires() {
        let t0 = Instant::now();
        let mut limit = TimeLimit::start(Some(Duration::from_secs(30)), t0).unwrap();
        assert_eq!(limit.next_wake(), t0 + Duration::from_secs(25));
        assert_eq!(limit.check(t0 + Duration::from_secs(24)), None);
        let Some(Step::Warn(text)) = limit.check(t0 + Duration::from_secs(25)) else {
            panic!("expected the warning");
        };
        assert!(text.contains("closes in 5 s"), "{text}");
        assert_eq!(limit.next_wake(), t0 + Duration::from_secs(30));
        assert_eq!(limit.check(t0 + Duration::from_secs(26)), None);
        assert_eq!(
            limit.check(t0 + Duration::from_secs(30)),
            Some(Step::Expired)
        );
    }

    #[test]
    fn a_short_limit_warns_at_half_time_and_none_means_no_clock() {
        let t0 = Instant::now();
        let limit = TimeLimit::start(Some(Duration::from_secs(4)), t0).unwrap();
        assert_eq!(limit.next_wake(), t0 + Duration::from_secs(2));
        assert!(TimeLimit::start(None, t0).is_none());
    }
}

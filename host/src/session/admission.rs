//! The admission controller of one stream: at most `concurrency_limit` connections,
//! across every transport, each holding a [`Slot`] released when it is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Refusal: the stream is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("concurrency limit of {limit} reached")]
pub struct LimitReached {
    /// The limit.
    pub limit: usize,
}

/// Counts a stream's connections against its limit.
#[derive(Debug, Clone)]
pub struct Admission {
    limit: Option<usize>,
    active: Arc<AtomicUsize>,
}

/// One admitted connection; dropping it frees the slot, on every exit path.
#[derive(Debug)]
pub struct Slot {
    active: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// `None` admits any number (bounded only by the host's instance pool).
    pub fn new(limit: Option<usize>) -> Self {
        Self {
            limit,
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The configured limit.
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// Connections holding a slot now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Take a slot if one is free.
    pub fn try_admit(&self) -> Result<Slot, LimitReached> {
        let mut current = self.active.load(Ordering::Acquire);
        loop {
            if let Some(limit) = self.limit
                && current >= limit
            {
                return Err(LimitReached { limit });
            }
            match self.active.compare_exchange(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Slot {
                        active: self.active.clone(),
                    });
                }
                Err(now) => current = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_released() {
        let a = Admission::new(Some(2));
        let s1 = a.try_admit().unwrap();
        let _s2 = a.try_admit().unwrap();
        assert_eq!(a.try_admit().unwrap_err(), LimitReached { limit: 2 });
        drop(s1);
        assert!(a.try_admit().is_ok());
        assert_eq!(Admission::new(None).try_admit().map(|_| ()), Ok(()));
    }
}

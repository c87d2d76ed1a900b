//! The admission controller of one stream: at most `concurrency_limit` connections,
//! across every transport, each holding a [`Slot`] released when it is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Refusal: the stream is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("concurrency limit of {limit} reached")]
pub struct LimitReached {
    /// The limit.
    pub limit: usize,
}

/// Counts a stream's connections against its limit, and the refusals. Clones share
/// the counts and the limit.
#[derive(Debug, Clone)]
pub struct Admission {
    /// `usize::MAX` = no limit.
    limit: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    refused: Arc<AtomicU64>,
    /// Every admission also takes a slot here (e.g. a tenant's quota across its streams).
    parent: Option<Box<Admission>>,
}

/// One admitted connection; dropping it frees the slot, on every exit path.
#[derive(Debug)]
pub struct Slot {
    active: Arc<AtomicUsize>,
    _parent: Option<Box<Slot>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn encode(limit: Option<usize>) -> usize {
    limit.unwrap_or(usize::MAX)
}

impl Admission {
    /// `None` admits any number (bounded only by the host's instance pool).
    pub fn new(limit: Option<usize>) -> Self {
        Self {
            limit: Arc::new(AtomicUsize::new(encode(limit))),
            active: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(AtomicU64::new(0)),
            parent: None,
        }
    }

    /// This controller, admitting only when `parent` admits too.
    pub fn within(mut self, parent: &Admission) -> Self {
        self.parent = Some(Box::new(parent.clone()));
        self
    }

    /// The configured limit.
    pub fn limit(&self) -> Option<usize> {
        Some(self.limit.load(Ordering::Acquire)).filter(|l| *l != usize::MAX)
    }

    /// Change the limit; connections already admitted stay.
    pub fn set_limit(&self, limit: Option<usize>) {
        self.limit.store(encode(limit), Ordering::Release);
    }

    /// Connections holding a slot now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Connections refused so far (here or by the parent).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Take a slot if one is free (here and in the parent).
    pub fn try_admit(&self) -> Result<Slot, LimitReached> {
        let r = self.admit_here().and_then(|mut slot| {
            if let Some(parent) = &self.parent {
                slot._parent = Some(Box::new(parent.try_admit()?));
            }
            Ok(slot)
        });
        if r.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn admit_here(&self) -> Result<Slot, LimitReached> {
        let mut current = self.active.load(Ordering::Acquire);
        loop {
            if let Some(limit) = self.limit()
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
                        _parent: None,
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
        assert_eq!(a.refused(), 1);
    }

    #[test]
    fn a_parent_bounds_its_children_and_limits_change() {
        let tenant = Admission::new(Some(2));
        let x = Admission::new(Some(2)).within(&tenant);
        let y = Admission::new(None).within(&tenant);
        let _a = x.try_admit().unwrap();
        let b = y.try_admit().unwrap();
        assert_eq!(y.try_admit().unwrap_err(), LimitReached { limit: 2 });
        assert_eq!((x.active(), y.active(), tenant.active()), (1, 1, 2));
        assert_eq!((y.refused(), tenant.refused()), (1, 1));
        drop(b);
        assert_eq!((y.active(), tenant.active()), (0, 1));
        x.set_limit(Some(1));
        assert_eq!(x.try_admit().unwrap_err(), LimitReached { limit: 1 });
        x.set_limit(None);
        assert_eq!(x.limit(), None);
        assert!(x.try_admit().is_ok());
    }
}

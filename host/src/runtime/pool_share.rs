//! Who holds the engine's instance pool: every live instance takes a [`Share`],
//! counted against the whole pool and against its owner (the tenant whose stream
//! it serves). A tenant may hold at most its share of the pool, so one tenant's
//! load (or a flood of offers to its streams) cannot take every instance; streams
//! of the host's own configuration have no owner and only the whole pool bounds them.
//!
//! A full pool or share is the host's answer, not the guest's failure: it is
//! refused as [`CallError::HostFull`] before wasmtime is asked for an instance, and
//! does not count against the component's breaker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::CallError;

/// The pool's occupancy, by owner.
#[derive(Debug)]
pub(crate) struct PoolShares {
    /// Instances the pool holds.
    total: usize,
    /// Instances one owner may hold.
    per_owner: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    all: usize,
    by_owner: HashMap<Arc<str>, usize>,
}

/// One instance's place in the pool, given back when dropped.
#[derive(Debug)]
pub(crate) struct Share {
    shares: Arc<PoolShares>,
    owner: Option<Arc<str>>,
}

impl PoolShares {
    /// A pool of `total` instances, of which one owner may hold `percent` %.
    pub(crate) fn new(total: u32, percent: u8) -> Self {
        let total = total as usize;
        let per_owner = (total * usize::from(percent.clamp(1, 100))).div_ceil(100);
        Self {
            total,
            per_owner: per_owner.max(1),
            held: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a place for an instance of `owner`'s stream, or say why there is none.
    pub(crate) fn take(self: &Arc<Self>, owner: Option<&Arc<str>>) -> Result<Share, CallError> {
        let mut held = self.lock();
        if held.all >= self.total {
            return Err(CallError::HostFull(format!(
                "all {} instances of the host's pool are in use",
                self.total
            )));
        }
        if let Some(owner) = owner {
            let n = held.by_owner.get(owner).copied().unwrap_or(0);
            if n >= self.per_owner {
                return Err(CallError::HostFull(format!(
                    "tenant `{owner}` holds {n} instances, its share of the host's pool"
                )));
            }
            *held.by_owner.entry(owner.clone()).or_default() += 1;
        }
        held.all += 1;
        Ok(Share {
            shares: self.clone(),
            owner: owner.cloned(),
        })
    }

    /// Instances held now (by everyone, by `owner`).
    #[cfg(test)]
    fn held(&self, owner: &str) -> (usize, usize) {
        let held = self.lock();
        (held.all, held.by_owner.get(owner).copied().unwrap_or(0))
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.shares.lock();
        held.all = held.all.saturating_sub(1);
        if let Some(owner) = &self.owner
            && let Some(n) = held.by_owner.get_mut(owner)
        {
            *n -= 1;
            if *n == 0 {
                held.by_owner.remove(owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_gets_its_share_and_the_pool_its_total() {
        let shares = Arc::new(PoolShares::new(4, 50));
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let a1 = shares.take(Some(&a)).unwrap();
        let _a2 = shares.take(Some(&a)).unwrap();
        let e = shares.take(Some(&a)).unwrap_err();
        assert!(
            e.is_host_full() && e.to_string().contains("tenant `a`"),
            "{e}"
        );
        let _b1 = shares.take(Some(&b)).unwrap();
        let _own = shares.take(None).unwrap();
        let e = shares.take(Some(&b)).unwrap_err();
        assert!(e.to_string().contains("all 4 instances"), "{e}");
        drop(a1);
        assert_eq!(shares.held("a"), (3, 1));
        let _b2 = shares.take(Some(&b)).unwrap();
        assert_eq!(shares.held("b"), (4, 2));
    }
}

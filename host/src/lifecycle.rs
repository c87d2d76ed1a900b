//! The host's life: which connection tasks are running, and whether the host is
//! shutting down.
//!
//! A [`Lifecycle`] lives in the [`Transport`](crate::Transport), so every stream of a
//! host (tenants' streams included) shares one. It tracks the task of every
//! connection (WebRTC sessions through [`Lifecycle::spawn`], upgraded WebSockets
//! through [`Lifecycle::track`]) and carries the host's shutdown signal.
//!
//! The shutdown sequence (`wasmrtc serve` on Ctrl-C or SIGTERM):
//!
//! 1. [`Lifecycle::shutdown`]: the host starts draining. From then on
//!    [`Lifecycle::is_draining`] is true and [`Lifecycle::draining`] futures resolve.
//!    New offers, WebSocket upgrades and calls are refused with HTTP 503
//!    (`server_shutting_down`). Every live connection is sent
//!    [`Command::Shutdown`](crate::session::Command::Shutdown) through the streams'
//!    [`Connections`](crate::session::Connections) (a connection registered later,
//!    by a request already past the refusal, is sent it on registration); the session
//!    tells its client (`end_stream`, then the data channel or the WebSocket's close
//!    frame) and ends. Sessions may also select on [`Lifecycle::draining`]
//!    themselves.
//! 2. The HTTP server stops accepting connections and finishes the requests under
//!    way (axum's graceful shutdown; upgraded WebSockets are not its concern but
//!    this tracker's).
//! 3. [`Lifecycle::wait`] waits, up to a bound, for every tracked task to end.
//! 4. The process exits, whether or not every task ended in time: the bound is
//!    what keeps a stuck handler from holding the host up.

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

/// Why a connection ends when the host shuts down, as its client is told
/// (`end_stream`'s data, the WebSocket close reason).
pub const SHUTDOWN_REASON: &str = "server shutting down";

/// What the host does on [`Lifecycle::shutdown`] for a set of connections (the
/// streams' [`Connections`](crate::session::Connections)): tell each to close.
pub(crate) trait OnShutdown: Send + Sync {
    /// The host is shutting down: tell every live connection.
    fn shutdown(&self);
}

/// The connection tasks of a host and its shutdown signal. Cloning is cheap and
/// shares them.
#[derive(Clone, Default)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tracker: TaskTracker,
    token: CancellationToken,
    /// Told once, on shutdown; a dropped set of connections is pruned.
    hooks: Mutex<Vec<Weak<dyn OnShutdown>>>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("draining", &self.is_draining())
            .field("active", &self.active())
            .finish()
    }
}

impl Lifecycle {
    /// A host that is running, with no task yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `fut` as a tokio task tracked until it ends (a connection's session).
    /// Call it from within a tokio runtime.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        // The task runs detached; the tracker, not the handle, keeps count of it.
        drop(self.inner.tracker.spawn(fut));
    }

    /// `fut`, tracked until it completes or is dropped (for a future someone else
    /// spawns, such as a WebSocket's after its upgrade).
    pub fn track<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> + use<F> {
        self.inner.tracker.track_future(fut)
    }

    /// Whether the host is shutting down ([`Lifecycle::shutdown`] was called).
    pub fn is_draining(&self) -> bool {
        self.inner.token.is_cancelled()
    }

    /// A future that resolves when the host starts shutting down (at once if it has);
    /// a session selects on it to end early.
    pub fn draining(&self) -> WaitForCancellationFutureOwned {
        self.inner.token.clone().cancelled_owned()
    }

    /// Start shutting down: [`Lifecycle::is_draining`] turns true, [`Lifecycle::draining`]
    /// futures resolve, every live connection is told to close, and
    /// [`Lifecycle::wait`] may resolve once the tracked tasks are gone. Tasks may
    /// still be spawned and tracked (a request already under way) and are waited for
    /// too. Calling it again does nothing more.
    pub fn shutdown(&self) {
        self.inner.token.cancel();
        self.inner.tracker.close();
        let hooks = std::mem::take(&mut *self.hooks());
        for hook in hooks.iter().filter_map(Weak::upgrade) {
            hook.shutdown();
        }
    }

    /// Wait up to `bound` for every tracked task to end; true if they all did. It
    /// can only be true after [`Lifecycle::shutdown`] (before it, more tasks may come).
    pub async fn wait(&self, bound: Duration) -> bool {
        tokio::time::timeout(bound, self.inner.tracker.wait())
            .await
            .is_ok()
    }

    /// Tracked tasks now alive.
    pub fn active(&self) -> usize {
        self.inner.tracker.len()
    }

    /// Have `hook` told on shutdown (at once if the host is already draining). The
    /// lifecycle keeps only a weak reference: dropping the hook unregisters it.
    pub(crate) fn on_shutdown(&self, hook: Weak<dyn OnShutdown>) {
        {
            let mut hooks = self.hooks();
            if !self.is_draining() {
                hooks.retain(|h| h.strong_count() > 0);
                hooks.push(hook);
                return;
            }
        }
        if let Some(hook) = hook.upgrade() {
            hook.shutdown();
        }
    }

    fn hooks(&self) -> std::sync::MutexGuard<'_, Vec<Weak<dyn OnShutdown>>> {
        self.inner.hooks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl OnShutdown for Counter {
        fn shutdown(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Counter {
        fn get(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn weak(c: &Arc<Counter>) -> Weak<dyn OnShutdown> {
        let hook: Arc<dyn OnShutdown> = c.clone();
        Arc::downgrade(&hook)
    }

    #[tokio::test]
    async fn draining_resolves_on_shutdown_only() {
        let life = Lifecycle::new();
        assert!(!life.is_draining());
        let draining = life.draining();
        let early = tokio::time::timeout(Duration::from_millis(20), life.draining()).await;
        assert!(early.is_err(), "resolved before shutdown");
        let clone = life.clone();
        clone.shutdown();
        assert!(life.is_draining());
        tokio::time::timeout(Duration::from_secs(1), draining)
            .await
            .expect("resolves on shutdown");
        // A future taken afterwards resolves at once; shutting down again is harmless.
        life.shutdown();
        tokio::time::timeout(Duration::from_secs(1), life.draining())
            .await
            .expect("resolves at once");
    }

    #[tokio::test]
    async fn waits_for_spawned_and_tracked_tasks() {
        let life = Lifecycle::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let session = life.draining();
        life.spawn(async move {
            session.await;
            // A session winds down after being told.
            tokio::time::sleep(Duration::from_millis(20)).await;
        });
        let tracked = life.track(async move {
            let _ = rx.await;
            7
        });
        let tracked = tokio::spawn(tracked);
        assert_eq!(life.active(), 2);
        // Before shutdown the tracker is open: waiting cannot succeed.
        assert!(!life.wait(Duration::from_millis(20)).await);
        life.shutdown();
        // The tracked future is still waiting for its message.
        assert!(!life.wait(Duration::from_millis(100)).await);
        assert_eq!(life.active(), 1);
        tx.send(()).unwrap();
        assert_eq!(tracked.await.unwrap(), 7);
        assert!(life.wait(Duration::from_secs(1)).await);
        assert_eq!(life.active(), 0);
    }

    #[tokio::test]
    async fn a_task_outliving_the_bound_is_reported() {
        let life = Lifecycle::new();
        life.spawn(std::future::pending());
        life.shutdown();
        assert!(!life.wait(Duration::from_millis(50)).await);
        assert_eq!(life.active(), 1);
    }

    #[tokio::test]
    async fn a_dropped_tracked_future_stops_counting() {
        let life = Lifecycle::new();
        let fut = life.track(std::future::pending::<()>());
        assert_eq!(life.active(), 1);
        drop(fut);
        life.shutdown();
        assert!(life.wait(Duration::from_millis(50)).await);
    }

    #[test]
    fn hooks_are_told_once_and_late_ones_at_once() {
        let life = Lifecycle::new();
        let (a, gone, late) = (
            Arc::new(Counter::default()),
            Arc::new(Counter::default()),
            Arc::new(Counter::default()),
        );
        life.on_shutdown(weak(&a));
        life.on_shutdown(weak(&gone));
        drop(gone);
        // Registering prunes hooks whose owner is gone.
        life.on_shutdown(weak(&a));
        assert_eq!(life.hooks().len(), 2);
        assert_eq!(a.get(), 0);
        life.shutdown();
        assert_eq!(a.get(), 2, "each registration is told");
        life.shutdown();
        assert_eq!(a.get(), 2, "a second shutdown tells no one again");
        life.on_shutdown(weak(&late));
        assert_eq!(late.get(), 1, "registered while draining: told at once");
        assert!(life.hooks().is_empty());
    }
}

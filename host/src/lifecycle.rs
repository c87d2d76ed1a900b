//! Interim: replaced by the lifecycle branch.
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// The host's sessions and their shutdown.
#[derive(Clone)]
pub struct Lifecycle {
    tx: Arc<watch::Sender<bool>>,
}
impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}
impl Lifecycle {
    /// A lifecycle that is not draining.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(false).0),
        }
    }
    /// Spawn a session.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        tokio::spawn(fut);
    }
    /// Track a future.
    pub fn track<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> {
        fut
    }
    /// Whether shutdown started.
    pub fn is_draining(&self) -> bool {
        *self.tx.borrow()
    }
    /// Resolves when shutdown starts.
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|d| *d).await;
        }
    }
    /// Start shutting down.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }
}

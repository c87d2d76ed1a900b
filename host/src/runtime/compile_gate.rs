//! The bounds on compiling tenants' uploads: one compilation at a time per tenant,
//! at most [`CompileGate::slots`] on the host, each on a blocking thread (never a
//! runtime worker) and answered within a time limit.
//!
//! A second upload of a tenant whose first is still compiling is refused at once
//! ([`LoadError::CompileBusy`], `429 upload_in_progress`) rather than queued, so a
//! tenant cannot pile up request bodies waiting for the compiler. An upload waits
//! for a host slot at most as long as the compile time limit
//! ([`LoadError::CompilerBusy`], `503 compiler_busy`). A compilation past the limit
//! is answered [`LoadError::CompileTimeout`]; the compiler cannot be stopped half-way,
//! so its thread runs to its end still holding the tenant's turn and the host slot:
//! the bounds keep holding while it does.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::LoadError;

/// Compilations of tenants' uploads: per-tenant turns and host-wide slots.
#[derive(Debug)]
pub(crate) struct CompileGate {
    slots: Arc<Semaphore>,
    /// Tenants with a compilation running.
    busy: Arc<Mutex<HashSet<String>>>,
    timeout: Duration,
}

/// A tenant's turn, given back when the compilation (not the request) ends.
struct Turn {
    busy: Arc<Mutex<HashSet<String>>>,
    tenant: String,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.tenant);
    }
}

impl CompileGate {
    /// `slots` compilations at once on the host (at least one), each answered within `timeout`.
    pub(crate) fn new(slots: usize, timeout: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            busy: Arc::default(),
            timeout,
        }
    }

    /// Run `compile` for `tenant` within the bounds.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        tenant: &str,
        compile: impl FnOnce() -> Result<R, LoadError> + Send + 'static,
    ) -> Result<R, LoadError> {
        let turn = {
            let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
            if !busy.insert(tenant.to_string()) {
                return Err(LoadError::CompileBusy {
                    tenant: tenant.to_string(),
                });
            }
            Turn {
                busy: self.busy.clone(),
                tenant: tenant.to_string(),
            }
        };
        let asked = Instant::now();
        let slot =
            match tokio::time::timeout(self.timeout, self.slots.clone().acquire_owned()).await {
                Ok(Ok(slot)) => slot,
                // The semaphore is never closed.
                Ok(Err(_)) | Err(_) => {
                    return Err(LoadError::CompilerBusy {
                        waited: asked.elapsed(),
                    });
                }
            };
        let job = tokio::task::spawn_blocking(move || {
            let r = compile();
            drop((slot, turn));
            r
        });
        match tokio::time::timeout(self.timeout, job).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(LoadError::Invalid(format!("the compiler failed: {e}"))),
            Err(_) => Err(LoadError::CompileTimeout {
                limit: self.timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_turn_per_tenant_and_the_limit_answers_while_the_job_runs_on() {
        let gate = Arc::new(CompileGate::new(2, Duration::from_millis(200)));
        let (release, wait) = mpsc::channel::<()>();
        let first = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.run("acme", move || {
                    let _ = wait.recv();
                    Ok(())
                })
                .await
            })
        };
        // Until the first job has its turn, a second one may get it first; wait for it.
        for _ in 0..100 {
            if gate.busy.lock().unwrap().contains("acme") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let second = gate.run("acme", || Ok(())).await;
        assert!(
            matches!(second, Err(LoadError::CompileBusy { ref tenant }) if tenant == "acme"),
            "{second:?}"
        );
        gate.run("other", || Ok(()))
            .await
            .expect("another tenant compiles meanwhile");
        let first = first.await.unwrap();
        assert!(
            matches!(first, Err(LoadError::CompileTimeout { .. })),
            "{first:?}"
        );
        assert!(
            matches!(
                gate.run("acme", || Ok(())).await,
                Err(LoadError::CompileBusy { .. })
            ),
            "the timed-out job still holds the tenant's turn"
        );
        release.send(()).unwrap();
        for _ in 0..100 {
            if gate.run("acme", || Ok(())).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the tenant's turn never came back");
    }
}

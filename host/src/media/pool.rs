//! The codec pool: a few OS threads, one per core, that run the CPU-heavy codec work of
//! every connection (VP8/H.264 decode and encode, colour conversion) off tokio's worker
//! threads. A 640x480 VP8 encode takes milliseconds; on a runtime worker it would delay
//! every other connection's packets, timers and handler replies by as much.
//!
//! The queue is bounded: when it is full a job is refused at once
//! ([`PoolError::Busy`]) and the caller drops the frame (and counts it), as a network
//! drops what it cannot carry. A job that panics is reported ([`PoolError::Panicked`])
//! and its thread goes on. A job whose caller stopped waiting before it started is
//! skipped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

/// Jobs waiting in the global pool at most, beyond those running.
pub const GLOBAL_QUEUE: usize = 256;

/// Why a job did not give its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue was full: the job was not run.
    #[error("the codec pool is busy")]
    Busy,
    /// The job panicked.
    #[error("a codec job panicked")]
    Panicked,
}

/// Counts of a pool since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Jobs accepted into the queue.
    pub queued: u64,
    /// Jobs run to the end (panicked ones included).
    pub completed: u64,
    /// Jobs refused because the queue was full.
    pub busy_rejections: u64,
    /// Jobs that panicked.
    pub panics: u64,
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    completed: AtomicU64,
    busy: AtomicU64,
    panics: AtomicU64,
}

/// A fixed set of threads running codec jobs from one bounded queue.
pub struct CodecPool {
    jobs: SyncSender<Job>,
    counters: Arc<Counters>,
    threads: usize,
}

impl CodecPool {
    /// A pool of `threads` threads (at least one) and room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        for n in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("wasmrtc-codec-{n}"))
                .spawn(move || work(&rx))
                .expect("start a codec thread");
        }
        Self {
            jobs,
            counters,
            threads,
        }
    }

    /// The process's pool: one thread per core, [`GLOBAL_QUEUE`] waiting jobs.
    pub fn global() -> &'static CodecPool {
        static POOL: OnceLock<CodecPool> = OnceLock::new();
        POOL.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            CodecPool::new(cores, GLOBAL_QUEUE)
        })
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Run `job` on a pool thread and wait for its result without blocking the runtime.
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, PoolError> {
        let (tx, rx) = oneshot::channel();
        let counters = self.counters.clone();
        let wrapped: Job = Box::new(move || {
            if tx.is_closed() {
                // The caller stopped waiting: nothing would read the result.
                return;
            }
            let result = catch_unwind(AssertUnwindSafe(job)).map_err(|_| {
                counters.panics.fetch_add(1, Ordering::Relaxed);
                PoolError::Panicked
            });
            counters.completed.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(result);
        });
        match self.jobs.try_send(wrapped) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.busy.fetch_add(1, Ordering::Relaxed);
                return Err(PoolError::Busy);
            }
        }
        rx.await.unwrap_or(Err(PoolError::Panicked))
    }

    /// The pool's counts so far.
    pub fn stats(&self) -> PoolStats {
        let c = &self.counters;
        PoolStats {
            queued: c.queued.load(Ordering::Relaxed),
            completed: c.completed.load(Ordering::Relaxed),
            busy_rejections: c.busy.load(Ordering::Relaxed),
            panics: c.panics.load(Ordering::Relaxed),
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[tokio::test]
    async fn jobs_run_off_the_runtime_and_give_their_results() {
        let pool = CodecPool::new(2, 4);
        let name = pool
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("wasmrtc-codec-"));
        assert_eq!(pool.run(|| 6 * 7).await, Ok(42));
        assert_eq!(pool.stats().completed, 2);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = Arc::new(CodecPool::new(1, 1));
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let p = pool.clone();
        // One job holds the only thread, a second waits in the queue.
        let running = tokio::spawn(async move { p.run(move || b.wait()).await });
        while pool.stats().queued < 1 {
            tokio::task::yield_now().await;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let p = pool.clone();
        let waiting = tokio::spawn(async move { p.run(|| 1).await });
        while pool.stats().queued < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| 2).await, Err(PoolError::Busy));
        assert_eq!(pool.stats().busy_rejections, 1);
        barrier.wait();
        assert!(running.await.unwrap().is_ok());
        assert_eq!(waiting.await.unwrap(), Ok(1));
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_pool_goes_on() {
        let pool = CodecPool::new(1, 4);
        let r: Result<(), _> = pool.run(|| panic!("codec bug")).await;
        assert_eq!(r, Err(PoolError::Panicked));
        assert_eq!(pool.run(|| 5).await, Ok(5));
        assert_eq!(pool.stats().panics, 1);
    }
}

//! Process-wide time spent per stage of the media path, for the load generator's
//! CPU split: transport (str0m and UDP; base64 on WebSocket and telephone), codec
//! (Opus, VP8, μ-law, resampling, colour, voice detection) and handler (calls into
//! the sandbox). Wall time measured around each piece of work, on every transport.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A stage of the media path.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// str0m and the UDP socket; base64 of WebSocket media.
    Transport,
    /// Codecs, resampling, colour conversion, voice detection.
    Codec,
    /// Calls into the handler instance.
    Handler,
}

static NANOS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Add the time since `start` to `stage`.
pub fn add(stage: Stage, start: Instant) {
    NANOS[stage as usize].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Time `f` as work of `stage`.
pub fn time<R>(stage: Stage, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let r = f();
    add(stage, start);
    r
}

/// Await `f` as work of `stage`.
pub async fn timed<F: std::future::Future>(stage: Stage, f: F) -> F::Output {
    let start = Instant::now();
    let r = f.await;
    add(stage, start);
    r
}

/// Nanoseconds spent so far per stage, as JSON.
pub fn snapshot() -> serde_json::Value {
    let get = |s: Stage| NANOS[s as usize].load(Ordering::Relaxed);
    serde_json::json!({
        "transport_ns": get(Stage::Transport),
        "codec_ns": get(Stage::Codec),
        "handler_ns": get(Stage::Handler),
    })
}

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

/// A count kept for the whole process.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// Client video frames replaced by a newer one before the handler saw them
    /// (the handler is slower than real time).
    VideoDropped,
    /// Client audio frames dropped because the handler was too far behind.
    AudioDropped,
    /// Encoded client video frames dropped before decoding (the codec pool was
    /// behind); the decoder then waits for a keyframe.
    VideoDecodeDropped,
    /// Handler video frames not encoded because a newer one replaced them.
    VideoEncodeDropped,
    /// HTTP connections closed at accept: the listener's connection cap was reached.
    HttpConnectionsRefused,
    /// Trickled candidates refused (too long, too many, or the early buffer full).
    CandidatesRefused,
    /// Client video frames announcing a picture over the stream's maximum size.
    VideoTooLarge,
    /// WebRTC connections up over the client's host candidate.
    IceHost,
    /// … over its server-reflexive candidate (through a NAT, found by STUN).
    IceServerReflexive,
    /// … over a peer-reflexive address (learned from its checks).
    IcePeerReflexive,
    /// … through a TURN relay.
    IceRelay,
    /// WebRTC offers answered whose connection was not up within the connect timeout.
    IceTimeout,
    /// TURN credentials minted for clients (`GET {prefix}/rtc_configuration`).
    TurnCredentials,
    /// ICE-TCP connections closed for a bound: too many open, no or bad first frame,
    /// an oversized frame.
    IceTcpRefused,
    /// WebRTC connections up over ICE-TCP rather than UDP.
    IceOverTcp,
    /// HTTP connections closed at accept: their address held its cap of open ones.
    IpConnectionsRefused,
    /// HTTP requests answered 429: their address was past its request rate.
    IpRateRefused,
    /// Telephone requests without a valid `X-Twilio-Signature`.
    TwilioSignatureRefused,
    /// STUN requests from an unknown address naming a live peer whose
    /// MESSAGE-INTEGRITY did not verify: no route learned (UDP, and ICE-TCP first frames).
    StunUnverified,
}

static COUNTS: [AtomicU64; 19] = [const { AtomicU64::new(0) }; 19];

/// Count one `counter` event.
pub fn count(counter: Counter) {
    COUNTS[counter as usize].fetch_add(1, Ordering::Relaxed);
}

/// The count of `counter` so far.
pub fn counted(counter: Counter) -> u64 {
    COUNTS[counter as usize].load(Ordering::Relaxed)
}

/// Nanoseconds spent so far per stage, and the drop counts, as JSON.
pub fn snapshot() -> serde_json::Value {
    let get = |s: Stage| NANOS[s as usize].load(Ordering::Relaxed);
    serde_json::json!({
        "transport_ns": get(Stage::Transport),
        "codec_ns": get(Stage::Codec),
        "handler_ns": get(Stage::Handler),
        "video_frames_dropped": counted(Counter::VideoDropped),
        "audio_frames_dropped": counted(Counter::AudioDropped),
        "video_decode_dropped": counted(Counter::VideoDecodeDropped),
        "video_encode_dropped": counted(Counter::VideoEncodeDropped),
        "codec_pool": crate::media::CodecPool::global().stats(),
    })
}

//! The command line of `wasmrtc-loadgen`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
pub use wasmrtc::media::VideoCodec;

/// Load generator for wasmrtc: many concurrent clients of one stream, measured.
#[derive(Debug, Clone, Parser)]
#[command(name = "wasmrtc-loadgen", version)]
pub struct Cli {
    /// What each client sends and expects back.
    #[arg(long, value_enum, default_value_t = Mode::Audio)]
    pub mode: Mode,
    /// What to measure: stream counts held (`ramp`), the cost of simultaneous joins
    /// (`join`), or, against a server with two tenants, a handler swapped under load
    /// (`hot-swap`) or hostile handlers beside healthy streams (`isolation`).
    #[arg(long, value_enum, default_value_t = Scenario::Ramp)]
    pub scenario: Scenario,
    /// Stream counts of the ramp, ascending; clients are added between steps.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pub streams: Vec<usize>,
    /// Simultaneous joins of the `join` scenario.
    #[arg(long, default_value_t = 100)]
    pub joins: usize,
    /// The WebRTC client implementation.
    #[arg(long, value_enum, default_value_t = ClientKind::Str0m)]
    pub client: ClientKind,
    /// Seconds measured per ramp step (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds between the last join of a step and the start of its measurement.
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// Clients that join at once while a ramp step fills up.
    #[arg(long, default_value_t = 20)]
    pub batch: usize,
    /// The video codec of `--mode video` both ways, `vp8` or `h264` (the client offers
    /// only this one).
    #[arg(long, default_value_t = VideoCodec::Vp8)]
    pub codec: VideoCodec,
    /// Video streams whose returned frames are decoded to read the frame counter
    /// (latency); the others only count frames.
    #[arg(long, default_value_t = 4)]
    pub decode_streams: usize,
    /// Minimum frames per second of every stream for a step to count as held
    /// (default: 48 for audio and WebSocket, 29 for video).
    #[arg(long)]
    pub min_fps: Option<f64>,
    /// Maximum p50 round trip for an audio step to count as held, in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    pub max_p50_ms: f64,
    /// Run every step of the ramp even after one was not held (by default it stops there).
    #[arg(long)]
    pub keep_going: bool,
    /// Attach to a running server at this URL instead of starting one.
    #[arg(long, requires = "pid")]
    pub server: Option<String>,
    /// The process id of the server given with `--server` (for its CPU and memory).
    #[arg(long, requires = "server")]
    pub pid: Option<u32>,
    /// The `wasmrtc` binary to start (default: the one next to this executable).
    #[arg(long)]
    pub wasmrtc: Option<PathBuf>,
    /// The handler component the started server serves (default: `echo` for audio and
    /// WebSocket, `flip` for video, built from `examples-guests/`).
    #[arg(long)]
    pub guest: Option<PathBuf>,
    /// CPUs the started server is pinned to (`taskset -c` syntax).
    #[arg(long, default_value = "0")]
    pub host_cpus: String,
    /// CPU this load generator pins itself to; `none` leaves it unpinned.
    #[arg(long, default_value = "1")]
    pub client_cpu: String,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The media of each stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// WebRTC, Opus audio both ways: 20 ms packets, a loud burst every 500 ms.
    Audio,
    /// WebRTC, 640x480 video at 30 fps both ways (VP8 or H.264, `--codec`) with a frame
    /// counter drawn in the picture.
    Video,
    /// FastRTC's WebSocket audio (`/websocket/offer`, base64 μ-law), bursts as for audio.
    Ws,
}

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Hold each stream count of `--streams` in turn and say which were held.
    Ramp,
    /// `--joins` clients join at once: setup time and server CPU per join.
    Join,
    /// The first `--streams` count of connections holds tenant a's `gain` v1 while v2 is
    /// uploaded; as many join after, and again after a rollback.
    HotSwap,
    /// The first `--streams` count of tenant a's `echo` streams, measured calm and then
    /// while `--joins` (at most 30) attackers reconnect to tenant b's hostile handlers.
    Isolation,
}

/// Which WebRTC stack the clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientKind {
    /// str0m (sans-IO), every peer a task on one thread: the cheap client.
    Str0m,
    /// webrtc-rs (the test suite's `TestPeer`), audio only, no latency: for comparison.
    WebrtcRs,
}

impl ClientKind {
    /// The name printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Str0m => "str0m",
            ClientKind::WebrtcRs => "webrtc-rs",
        }
    }
}

impl Cli {
    /// The frame-rate threshold of a held stream.
    pub fn min_fps(&self) -> f64 {
        self.min_fps.unwrap_or(match self.mode {
            Mode::Audio | Mode::Ws => 48.0,
            Mode::Video => 29.0,
        })
    }
}

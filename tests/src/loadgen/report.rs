//! What each client measured, and the figures of a step: frame rates, round trips,
//! setup times, server and client CPU, printed as a table and kept as JSON.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::host::{ProcSample, Stages};

/// Counters of one stream, updated by its client.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Frames (audio packets, video frames, WebSocket 20 ms of audio) received.
    pub received: u64,
    /// Frames sent.
    pub sent: u64,
    /// Round trips measured since the last [`StreamStats::take_rtts`].
    pub rtts: Vec<Duration>,
    /// Offer (or WebSocket connect) to the first media received.
    pub setup: Option<Duration>,
    /// Why the client stopped, if it failed.
    pub failed: Option<String>,
    /// Peak amplitude of each returned burst (WebSocket clients, which see PCM).
    pub burst_peaks: Vec<u16>,
    /// When media last arrived.
    pub last_media: Option<std::time::Instant>,
    /// Longest wait between two media arrivals since the last reset.
    pub max_gap: Duration,
}

impl StreamStats {
    /// Media arrived at `now`: the gap since the last arrival counts towards `max_gap`.
    pub fn media_at(&mut self, now: std::time::Instant) {
        if let Some(last) = self.last_media {
            self.max_gap = self.max_gap.max(now - last);
        }
        self.last_media = Some(now);
    }
}

/// A stream's counters, shared between its client task and the measurement.
pub type Shared = Arc<Mutex<StreamStats>>;

/// Lock a stream's counters (a poisoned lock still holds usable counters).
pub fn lock(s: &Shared) -> std::sync::MutexGuard<'_, StreamStats> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `q` quantile (0..=1) of sorted values; 0 when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The state of every stream at the start of a measurement window.
pub struct Window {
    received: Vec<u64>,
    server: ProcSample,
    client: ProcSample,
    stages: Stages,
    started: std::time::Instant,
}

impl Window {
    /// Open a window: note the counters and clear the round trips.
    pub fn open(
        streams: &[Shared],
        server: ProcSample,
        client: ProcSample,
        stages: Stages,
    ) -> Self {
        let received = streams
            .iter()
            .map(|s| {
                let mut s = lock(s);
                s.rtts.clear();
                s.received
            })
            .collect();
        Self {
            received,
            server,
            client,
            stages,
            started: std::time::Instant::now(),
        }
    }

    /// Close the window and compute the step's figures.
    pub fn close(
        self,
        streams: &[Shared],
        server: ProcSample,
        client: ProcSample,
        stages: Stages,
        criteria: &Criteria,
    ) -> Step {
        let secs = self.started.elapsed().as_secs_f64();
        let mut fps = Vec::new();
        let mut rtts = Vec::new();
        let mut setups = Vec::new();
        let mut failed = 0;
        let mut first_error = None;
        for (s, before) in streams.iter().zip(&self.received) {
            let s = lock(s);
            if let Some(e) = &s.failed {
                failed += 1;
                first_error.get_or_insert_with(|| e.clone());
            }
            fps.push((s.received - before) as f64 / secs);
            rtts.extend(s.rtts.iter().map(|&d| ms(d)));
            setups.extend(s.setup.map(ms));
        }
        let n = streams.len().max(1) as f64;
        let stages = stages.since(&self.stages);
        let server_cpu = server.cpu.saturating_sub(self.server.cpu);
        let per_stream = |d: Duration| d.as_secs_f64() / secs / n * 1e3; // ms of CPU per s
        let rest = server_cpu.saturating_sub(stages.total());
        let fps = sorted(fps);
        let rtts = sorted(rtts);
        let setups = sorted(setups);
        let below = fps.iter().filter(|&&f| f < criteria.min_fps).count();
        let p50 = quantile(&rtts, 0.5);
        let rtt_ok = criteria
            .max_p50_ms
            .is_none_or(|max| !rtts.is_empty() && p50 < max);
        Step {
            streams: streams.len(),
            seconds: secs,
            failed,
            first_error,
            fps_min: fps.first().copied().unwrap_or(0.0),
            fps_p50: quantile(&fps, 0.5),
            fps_mean: fps.iter().sum::<f64>() / n,
            below_min_fps: below,
            rtt_samples: rtts.len(),
            rtt_p50_ms: p50,
            rtt_p99_ms: quantile(&rtts, 0.99),
            setup_p50_ms: quantile(&setups, 0.5),
            setup_p99_ms: quantile(&setups, 0.99),
            server_cpu_pct: server_cpu.as_secs_f64() / secs * 100.0,
            server_ms_per_stream: per_stream(server_cpu),
            transport_ms: per_stream(stages.transport),
            codec_ms: per_stream(stages.codec),
            handler_ms: per_stream(stages.handler),
            rest_ms: per_stream(rest),
            server_rss_mib: server.rss_kib as f64 / 1024.0,
            client_cpu_pct: client.cpu.saturating_sub(self.client.cpu).as_secs_f64() / secs * 100.0,
            held: failed == 0 && below == 0 && rtt_ok,
        }
    }
}

/// When a step counts as held.
#[derive(Debug, Clone, Copy)]
pub struct Criteria {
    /// Every stream receives at least this many frames per second.
    pub min_fps: f64,
    /// The median round trip is under this (when round trips are measured).
    pub max_p50_ms: Option<f64>,
}

/// The figures of one ramp step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Concurrent streams.
    pub streams: usize,
    /// Length of the measurement window.
    pub seconds: f64,
    /// Streams whose client failed.
    pub failed: usize,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Lowest per-stream received frame rate.
    pub fps_min: f64,
    /// Median per-stream received frame rate.
    pub fps_p50: f64,
    /// Mean per-stream received frame rate.
    pub fps_mean: f64,
    /// Streams under the frame-rate threshold.
    pub below_min_fps: usize,
    /// Round trips measured.
    pub rtt_samples: usize,
    /// Median round trip, ms.
    pub rtt_p50_ms: f64,
    /// 99th percentile round trip, ms.
    pub rtt_p99_ms: f64,
    /// Median setup time (offer to first media), ms, over every stream so far.
    pub setup_p50_ms: f64,
    /// 99th percentile setup time, ms.
    pub setup_p99_ms: f64,
    /// Server CPU, percent of one core.
    pub server_cpu_pct: f64,
    /// Server CPU per stream, ms per second.
    pub server_ms_per_stream: f64,
    /// Of which transport (str0m, UDP), ms per second per stream.
    pub transport_ms: f64,
    /// Of which codecs, ms per second per stream.
    pub codec_ms: f64,
    /// Of which handler calls, ms per second per stream.
    pub handler_ms: f64,
    /// The rest (HTTP, scheduling, pacing, ...), ms per second per stream.
    pub rest_ms: f64,
    /// Server resident memory at the end of the window, MiB.
    pub server_rss_mib: f64,
    /// This load generator's CPU, percent of one core.
    pub client_cpu_pct: f64,
    /// Whether the step met the criteria.
    pub held: bool,
}

impl Step {
    /// The step as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "streams": self.streams,
            "seconds": self.seconds,
            "failed": self.failed,
            "first_error": self.first_error,
            "fps": {"min": self.fps_min, "p50": self.fps_p50, "mean": self.fps_mean, "below_threshold": self.below_min_fps},
            "rtt_ms": {"samples": self.rtt_samples, "p50": self.rtt_p50_ms, "p99": self.rtt_p99_ms},
            "setup_ms": {"p50": self.setup_p50_ms, "p99": self.setup_p99_ms},
            "server": {
                "cpu_pct_of_core": self.server_cpu_pct,
                "cpu_ms_per_s_per_stream": {
                    "total": self.server_ms_per_stream,
                    "transport": self.transport_ms,
                    "codec": self.codec_ms,
                    "handler": self.handler_ms,
                    "rest": self.rest_ms,
                },
                "rss_mib": self.server_rss_mib,
            },
            "client_cpu_pct_of_core": self.client_cpu_pct,
            "held": self.held,
        })
    }
}

/// Print the ramp's table.
pub fn print_steps(steps: &[Step]) {
    println!(
        "{:>7} {:>4} {:>15} {:>15} {:>13} {:>7} {:>31} {:>8} {:>7} {:>5}",
        "streams",
        "fail",
        "fps min/p50",
        "rtt p50/p99 ms",
        "setup p50/p99",
        "srv cpu",
        "ms/s/stream tot=tr+co+ha+rest",
        "srv rss",
        "cli cpu",
        "held"
    );
    for s in steps {
        println!(
            "{:>7} {:>4} {:>7.1}/{:<7.1} {:>7.1}/{:<7.1} {:>6.0}/{:<6.0} {:>6.0}% {:>6.2}={:.2}+{:.2}+{:.2}+{:.2} {:>5.0}MiB {:>6.0}% {:>5}",
            s.streams,
            s.failed,
            s.fps_min,
            s.fps_p50,
            s.rtt_p50_ms,
            s.rtt_p99_ms,
            s.setup_p50_ms,
            s.setup_p99_ms,
            s.server_cpu_pct,
            s.server_ms_per_stream,
            s.transport_ms,
            s.codec_ms,
            s.handler_ms,
            s.rest_ms,
            s.server_rss_mib,
            s.client_cpu_pct,
            if s.held { "yes" } else { "no" },
        );
        if let Some(e) = &s.first_error {
            println!("        first failure: {e}");
        }
    }
}

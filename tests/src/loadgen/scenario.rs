//! The scenarios: a ramp of stream counts (which were held) and simultaneous joins
//! (setup time and server CPU per join).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{Cli, ClientKind, Mode};
use crate::host::{self, Server};
use crate::media::{AudioCycle, VideoLoop};
use crate::report::{self, Criteria, Shared, Step, StreamStats, Window, lock};
use crate::{rtc_peer, webrtc_rs_peer, ws_client};

/// Longest wait for a client to get its first media back.
const SETUP_TIMEOUT: Duration = Duration::from_secs(40);

/// The clients of one run against one server.
pub struct Load<'a> {
    cli: &'a Cli,
    server: &'a Server,
    http: reqwest::Client,
    audio: Option<Arc<AudioCycle>>,
    video: Option<Arc<VideoLoop>>,
    stop: watch::Sender<bool>,
    streams: Vec<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl<'a> Load<'a> {
    /// Prepare the media the mode sends (encoded once for every client).
    pub fn new(cli: &'a Cli, server: &'a Server) -> anyhow::Result<Self> {
        let audio = matches!(cli.mode, Mode::Audio | Mode::Ws)
            .then(AudioCycle::new)
            .transpose()?
            .map(Arc::new);
        let video = (cli.mode == Mode::Video)
            .then(|| VideoLoop::new(cli.codec))
            .transpose()?
            .map(Arc::new);
        if let Some(v) = &video {
            println!(
                "video loop: {} frames of {}, {} bytes per frame on average",
                v.frames.len(),
                v.codec.name(),
                v.mean_bytes()
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build()?;
        Ok(Self {
            cli,
            server,
            http,
            audio,
            video,
            stop: watch::channel(false).0,
            streams: Vec::new(),
            tasks: Vec::new(),
        })
    }

    /// Start one more client.
    fn spawn(&mut self) -> Shared {
        let stats: Shared = Arc::new(std::sync::Mutex::new(StreamStats::default()));
        let base = self.server.url.clone();
        let stop = self.stop.subscribe();
        let task = match (self.cli.mode, self.cli.client) {
            (Mode::Ws, _) => tokio::spawn(ws_client::run(
                base,
                self.audio.clone().expect("audio prepared"),
                stats.clone(),
                stop,
            )),
            (Mode::Audio, ClientKind::WebrtcRs) => {
                tokio::spawn(webrtc_rs_peer::run(base, stats.clone(), stop))
            }
            (Mode::Audio, ClientKind::Str0m) => tokio::spawn(rtc_peer::run(
                self.http.clone(),
                base,
                rtc_peer::Send::Audio(self.audio.clone().expect("audio prepared")),
                stats.clone(),
                stop,
            )),
            (Mode::Video, _) => {
                let decode = self.streams.len() < self.cli.decode_streams;
                tokio::spawn(rtc_peer::run(
                    self.http.clone(),
                    base,
                    rtc_peer::Send::Video(self.video.clone().expect("video prepared"), decode),
                    stats.clone(),
                    stop,
                ))
            }
        };
        self.streams.push(stats.clone());
        self.tasks.push(task);
        stats
    }

    /// Wait until every client in `streams` got media back or failed; whether all did in time.
    async fn wait_setup(streams: &[Shared], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let pending = streams.iter().filter(|s| {
                let s = lock(s);
                s.setup.is_none() && s.failed.is_none()
            });
            if pending.count() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn criteria(&self) -> Criteria {
        // Round trips count for WebRTC audio; WebSocket streams are held when they keep
        // real time (their round trip is printed).
        let rtt = self.cli.mode == Mode::Audio && self.cli.client == ClientKind::Str0m;
        Criteria {
            min_fps: self.cli.min_fps(),
            max_p50_ms: rtt.then_some(self.cli.max_p50_ms),
        }
    }

    async fn samples(&self) -> anyhow::Result<(host::ProcSample, host::ProcSample, host::Stages)> {
        Ok((
            host::sample(Some(self.server.pid))?,
            host::sample(None)?,
            host::stages(&self.http, &self.server.url).await,
        ))
    }

    /// Hold each stream count of `--streams` in turn, adding clients `--batch` at a time.
    pub async fn ramp(&mut self) -> anyhow::Result<(Vec<Step>, Value)> {
        let idle = host::sample(Some(self.server.pid))?;
        println!("server idle: RSS {:.1} MiB", idle.rss_kib as f64 / 1024.0);
        let mut steps = Vec::new();
        let mut counts = self.cli.streams.clone();
        counts.sort_unstable();
        for target in counts {
            while self.streams.len() < target {
                let n = self.cli.batch.max(1).min(target - self.streams.len());
                let batch: Vec<Shared> = (0..n).map(|_| self.spawn()).collect();
                Self::wait_setup(&batch, SETUP_TIMEOUT).await;
            }
            tokio::time::sleep(Duration::from_secs_f64(self.cli.warmup)).await;
            let (srv, cli, stages) = self.samples().await?;
            let window = Window::open(&self.streams, srv, cli, stages);
            tokio::time::sleep(Duration::from_secs_f64(self.cli.duration)).await;
            let (srv, cli, stages) = self.samples().await?;
            let step = window.close(&self.streams, srv, cli, stages, &self.criteria());
            let rss_per_stream =
                (srv.rss_kib.saturating_sub(idle.rss_kib)) as f64 / target.max(1) as f64;
            println!(
                "{target} streams: fps min {:.1}, rtt p50 {:.1} ms, server CPU {:.0}%, loadgen CPU {:.0}%, RSS +{:.0} KiB per stream -> {}",
                step.fps_min,
                step.rtt_p50_ms,
                step.server_cpu_pct,
                step.client_cpu_pct,
                rss_per_stream,
                if step.held { "held" } else { "not held" }
            );
            let held = step.held;
            steps.push(step);
            if !held && !self.cli.keep_going {
                break;
            }
        }
        let extra = json!({"server_idle_rss_mib": idle.rss_kib as f64 / 1024.0});
        Ok((steps, extra))
    }

    /// `--joins` clients join at once: setup times, server CPU and memory per join.
    pub async fn join(&mut self) -> anyhow::Result<Value> {
        let n = self.cli.joins;
        let (srv0, cli0, _) = self.samples().await?;
        let started = Instant::now();
        let batch: Vec<Shared> = (0..n).map(|_| self.spawn()).collect();
        let complete = Self::wait_setup(&batch, SETUP_TIMEOUT).await;
        let elapsed = started.elapsed();
        let (srv1, cli1, _) = self.samples().await?;
        let setups: Vec<f64> = {
            let mut v: Vec<f64> = batch
                .iter()
                .filter_map(|s| lock(s).setup)
                .map(|d| d.as_secs_f64() * 1e3)
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let failed: Vec<String> = batch
            .iter()
            .filter_map(|s| lock(s).failed.clone())
            .collect();
        let server_ms = srv1.cpu.saturating_sub(srv0.cpu).as_secs_f64() * 1e3;
        let client_ms = cli1.cpu.saturating_sub(cli0.cpu).as_secs_f64() * 1e3;
        let result = json!({
            "joins": n,
            "joined": setups.len(),
            "failed": failed.len(),
            "first_error": failed.first(),
            "all_within_timeout": complete,
            "wall_ms": elapsed.as_secs_f64() * 1e3,
            "setup_ms": {"p50": report::quantile(&setups, 0.5), "p99": report::quantile(&setups, 0.99), "max": setups.last()},
            "server_cpu_ms_per_join": server_ms / n.max(1) as f64,
            "client_cpu_ms_per_join": client_ms / n.max(1) as f64,
            "server_rss_kib_per_join": srv1.rss_kib.saturating_sub(srv0.rss_kib) as f64 / n.max(1) as f64,
        });
        println!(
            "{n} simultaneous joins: {} joined, {} failed, in {:.0} ms; setup p50 {:.0} ms, p99 {:.0} ms; server CPU {:.1} ms per join (media of the joined streams included), loadgen CPU {:.1} ms per join, server RSS +{:.0} KiB per join",
            setups.len(),
            failed.len(),
            elapsed.as_secs_f64() * 1e3,
            report::quantile(&setups, 0.5),
            report::quantile(&setups, 0.99),
            server_ms / n.max(1) as f64,
            client_ms / n.max(1) as f64,
            srv1.rss_kib.saturating_sub(srv0.rss_kib) as f64 / n.max(1) as f64,
        );
        if let Some(e) = failed.first() {
            println!("  first failure: {e}");
        }
        Ok(result)
    }

    /// Stop every client (each closes its connection) and wait for them briefly.
    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

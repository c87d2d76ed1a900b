//! The hosting scenarios, against a server started with two tenants: a hot swap under
//! load (old connections keep version 1, new ones get version 2, rollback restores 1)
//! and isolation under load (tenant `a`'s streams keep their frame rate while tenant
//! `b`'s hostile handlers are killed over and over).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmrtc_tests::guests;

use crate::cli::{Cli, Mode};
use crate::host::{self, Server};
use crate::media::AudioCycle;
use crate::report::{Shared, StreamStats, lock, quantile};
use crate::{rtc_peer, ws_client};

/// Bearer tokens of the two tenants.
const TOKENS: [(&str, &str); 2] = [("a", "loadgen-token-a"), ("b", "loadgen-token-b")];

/// Pause of an attacker between two connection attempts.
const RETRY: Duration = Duration::from_millis(100);

/// A burst returned by `gain` at factor 1 peaks near the 20 000 sent; at factor 2 it
/// clips near 32 000. Peaks between the two bounds are counted as neither.
const V1_BELOW: u16 = 25_000;
const V2_ABOVE: u16 = 29_000;

/// A server with tenants `a` and `b`, its configuration in a temporary directory.
pub struct Hosting {
    /// The server.
    pub server: Server,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Drop for Hosting {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Hosting {
    /// Start `wasmrtc serve --config` with the two tenants (quotas large enough for the
    /// load) pinned to `cpus`.
    pub fn start(wasmrtc: &Path, cpus: &str, connections: usize) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "wasmrtc-loadgen-{}-{}",
            std::process::id(),
            wasmrtc_tests::peer::new_webrtc_id()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mut config = "data_dir = \"data\"\n".to_string();
        for (name, token) in TOKENS {
            config.push_str(&format!(
                "\n[[tenant]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nmax_connections = {}\n",
                wasmrtc::tenancy::token_sha256(token),
                connections.max(1) * 2
            ));
        }
        let file = dir.join("host.toml");
        std::fs::write(&file, config)?;
        let server = Server::start_config(wasmrtc, &file, cpus)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Self { server, dir, http })
    }

    async fn api(
        &self,
        tenant: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let token = TOKENS.iter().find(|(n, _)| *n == tenant).map(|(_, t)| *t);
        let mut req = self
            .http
            .request(method, format!("{}/api{path}", self.server.url))
            .bearer_auth(token.context("unknown tenant")?);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let reply = req.send().await?;
        let status = reply.status();
        let value: Value = reply.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path}: {status} {value}");
        }
        Ok(value)
    }

    /// Create `stream` for `tenant` (if needed) and upload `component` as its next
    /// version, active at once; the version number.
    async fn deploy(&self, tenant: &str, stream: &str, component: &str) -> anyhow::Result<u64> {
        let exists = self
            .api(
                tenant,
                reqwest::Method::GET,
                &format!("/streams/{stream}"),
                None,
            )
            .await
            .is_ok();
        if !exists {
            self.api(
                tenant,
                reqwest::Method::POST,
                "/streams",
                Some(json!({"name": stream})),
            )
            .await?;
        }
        let bytes = std::fs::read(component).with_context(|| format!("read {component}"))?;
        let token = TOKENS.iter().find(|(n, _)| *n == tenant).map(|(_, t)| *t);
        let reply = self
            .http
            .post(format!("{}/api/streams/{stream}/versions", self.server.url))
            .bearer_auth(token.context("unknown tenant")?)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await?;
        let status = reply.status();
        let value: Value = reply.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("upload {component} to {tenant}/{stream}: {status} {value}");
        }
        value["version"].as_u64().context("no version in the reply")
    }

    fn stream_url(&self, tenant: &str, stream: &str) -> String {
        format!("{}/t/{tenant}/{stream}", self.server.url)
    }

    /// Failures of `tenant`'s handlers by cause, from `/metrics`.
    async fn failures(&self, tenant: &str) -> Vec<(String, u64)> {
        let text = match self
            .http
            .get(format!("{}/metrics", self.server.url))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => return Vec::new(),
        };
        let prefix = format!("wasmrtc_handler_failures_total{{tenant=\"{tenant}\",");
        let mut by_cause: Vec<(String, u64)> = Vec::new();
        for line in text.lines().filter(|l| l.starts_with(&prefix)) {
            let cause = line
                .split("cause=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?");
            let n: u64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            match by_cause.iter_mut().find(|(c, _)| c == cause) {
                Some((_, total)) => *total += n,
                None => by_cause.push((cause.to_string(), n)),
            }
        }
        by_cause.retain(|(_, n)| *n > 0);
        by_cause
    }
}

/// Clients of one group (same stream, joined together).
struct Group {
    stats: Vec<Shared>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Group {
    /// `n` clients of the stream at `base`: WebSocket clients in `ws` mode, str0m WebRTC
    /// peers otherwise.
    fn spawn(
        n: usize,
        base: &str,
        ws: bool,
        cycle: &Arc<AudioCycle>,
        http: &reqwest::Client,
    ) -> Self {
        let stop = watch::channel(false).0;
        let mut group = Group {
            stats: Vec::new(),
            tasks: Vec::new(),
            stop,
        };
        for _ in 0..n {
            let stats: Shared = Arc::new(std::sync::Mutex::new(StreamStats::default()));
            let rx = group.stop.subscribe();
            let task = if ws {
                tokio::spawn(ws_client::run(
                    base.to_string(),
                    cycle.clone(),
                    stats.clone(),
                    rx,
                ))
            } else {
                tokio::spawn(rtc_peer::run(
                    http.clone(),
                    base.to_string(),
                    rtc_peer::Send::Audio(cycle.clone()),
                    stats.clone(),
                    rx,
                ))
            };
            group.stats.push(stats);
            group.tasks.push(task);
        }
        group
    }

    /// Wait until every client got media back or failed (at most `timeout`).
    async fn joined(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline
            && self.stats.iter().any(|s| {
                let s = lock(s);
                s.setup.is_none() && s.failed.is_none()
            })
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn received(&self) -> Vec<u64> {
        self.stats.iter().map(|s| lock(s).received).collect()
    }

    fn failed(&self) -> Vec<String> {
        self.stats
            .iter()
            .filter_map(|s| lock(s).failed.clone())
            .collect()
    }

    /// Forget the peaks and gaps seen so far.
    fn reset(&self) {
        for s in &self.stats {
            let mut s = lock(s);
            s.burst_peaks.clear();
            s.max_gap = Duration::ZERO;
        }
    }

    /// Bursts since the last reset at version 1's level, at version 2's, and in total.
    fn levels(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for s in &self.stats {
            for &p in &lock(s).burst_peaks {
                counts.0 += usize::from(p < V1_BELOW);
                counts.1 += usize::from(p > V2_ABOVE);
                counts.2 += 1;
            }
        }
        counts
    }

    /// The longest gap between two arrivals on any client since the last reset.
    fn max_gap(&self) -> Duration {
        self.stats
            .iter()
            .map(|s| lock(s).max_gap)
            .max()
            .unwrap_or_default()
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// Frames per second of each stream between two counts.
fn rates(before: &[u64], after: &[u64], seconds: f64) -> Vec<f64> {
    let mut v: Vec<f64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b) as f64 / seconds)
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Hold `--streams` connections on `gain` version 1 (factor 1), upload version 2
/// (factor 2), open as many new connections, then roll back and open a third group;
/// says which level each group's bursts came back at and whether any stream stalled.
/// WebSocket clients (`--mode ws`) read levels exactly; WebRTC peers only count frames.
pub async fn hot_swap(cli: &Cli, wasmrtc: &Path) -> anyhow::Result<Value> {
    let n = cli.streams.first().copied().unwrap_or(10);
    let ws = cli.mode == Mode::Ws;
    let hosting = Hosting::start(wasmrtc, &cli.host_cpus, 3 * n)?;
    let cycle = Arc::new(AudioCycle::new()?);
    let measure = Duration::from_secs_f64(cli.duration);
    let v1 = hosting.deploy("a", "gain", guests::GAIN).await?;
    let url = hosting.stream_url("a", "gain");

    let old = Group::spawn(n, &url, ws, &cycle, &hosting.http);
    old.joined(Duration::from_secs(40)).await;
    tokio::time::sleep(Duration::from_secs_f64(cli.warmup)).await;
    old.reset();
    let swap_at = Instant::now();
    let v2 = hosting.deploy("a", "gain", guests::GAIN_V2).await?;
    let swap_ms = swap_at.elapsed().as_secs_f64() * 1e3;
    let new = Group::spawn(n, &url, ws, &cycle, &hosting.http);
    new.joined(Duration::from_secs(40)).await;
    new.reset();
    let (old0, new0) = (old.received(), new.received());
    tokio::time::sleep(measure).await;
    let (old_rates, new_rates) = (
        rates(&old0, &old.received(), measure.as_secs_f64()),
        rates(&new0, &new.received(), measure.as_secs_f64()),
    );
    let (old_gap, new_gap) = (old.max_gap(), new.max_gap());
    let (old_levels, new_levels) = (old.levels(), new.levels());

    hosting
        .api("a", reqwest::Method::POST, "/streams/gain/rollback", None)
        .await?;
    let back = Group::spawn(n, &url, ws, &cycle, &hosting.http);
    back.joined(Duration::from_secs(40)).await;
    back.reset();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back_levels = back.levels();

    let groups = [
        (
            "on v1 through the swap",
            &old,
            old_levels,
            Some((&old_rates, old_gap)),
        ),
        (
            "joined after v2",
            &new,
            new_levels,
            Some((&new_rates, new_gap)),
        ),
        ("joined after rollback", &back, back_levels, None),
    ];
    println!(
        "hot swap of a/gain v{v1} -> v{v2} (upload, validation and switch: {swap_ms:.0} ms) under {n} {} streams",
        if ws { "WebSocket" } else { "WebRTC" }
    );
    println!(
        "{:<24} {:>6} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "group", "conns", "failed", "bursts", "at v1", "at v2", "min fps", "max gap"
    );
    let mut out = Vec::new();
    for (name, group, (at_v1, at_v2, bursts), flow) in &groups {
        let failed = group.failed();
        let (min_fps, gap_ms) = flow.map_or((None, None), |(r, g)| {
            (r.first().copied(), Some(g.as_secs_f64() * 1e3))
        });
        println!(
            "{:<24} {:>6} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9}",
            name,
            group.stats.len(),
            failed.len(),
            bursts,
            at_v1,
            at_v2,
            min_fps.map_or("-".into(), |f| format!("{f:.1}")),
            gap_ms.map_or("-".into(), |g| format!("{g:.0} ms")),
        );
        out.push(json!({
            "group": name, "connections": group.stats.len(), "failed": failed.len(),
            "first_error": failed.first(), "bursts": bursts, "at_v1": at_v1, "at_v2": at_v2,
            "min_fps": min_fps, "max_gap_ms": gap_ms,
        }));
    }
    if !ws {
        println!("(WebRTC peers count frames but do not decode levels: use --mode ws for levels)");
    }
    let ok = old.failed().is_empty()
        && new.failed().is_empty()
        && back.failed().is_empty()
        && (!ws || (old_levels.1 == 0 && new_levels.0 == 0 && back_levels.1 == 0));
    println!(
        "hot swap {}",
        if ok {
            "kept every connection at its version"
        } else {
            "FAILED: see the table"
        }
    );
    for g in [old, new, back] {
        g.stop().await;
    }
    Ok(json!({"swap_ms": swap_ms, "groups": out, "ok": ok}))
}

/// Hold `--streams` echo streams of tenant `a`, measure their frame rate, then let
/// `--joins` attackers connect to tenant `b`'s hostile handlers (busy loop, memory
/// bomb, output flood) over and over (100 ms after each attempt ends) and measure `a`'s
/// frame rate again.
pub async fn isolation(cli: &Cli, wasmrtc: &Path) -> anyhow::Result<Value> {
    let n = cli.streams.first().copied().unwrap_or(10);
    let attackers = cli.joins.clamp(1, 30);
    let ws = cli.mode == Mode::Ws;
    let hosting = Hosting::start(wasmrtc, &cli.host_cpus, n + attackers)?;
    let cycle = Arc::new(AudioCycle::new()?);
    let measure = Duration::from_secs_f64(cli.duration);
    hosting.deploy("a", "echo", guests::ECHO).await?;
    let hostile = [
        ("loop", guests::HOSTILE_LOOP),
        ("memory", guests::HOSTILE_MEMORY),
        ("flood", guests::HOSTILE_FLOOD),
    ];
    for (name, path) in hostile {
        hosting.deploy("b", name, path).await?;
    }

    let victims = Group::spawn(
        n,
        &hosting.stream_url("a", "echo"),
        ws,
        &cycle,
        &hosting.http,
    );
    victims.joined(Duration::from_secs(40)).await;
    tokio::time::sleep(Duration::from_secs_f64(cli.warmup)).await;
    let rtts = |g: &Group| {
        let mut v: Vec<f64> = g
            .stats
            .iter()
            .flat_map(|s| std::mem::take(&mut lock(s).rtts))
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    rtts(&victims);
    let cpu = || -> anyhow::Result<(host::ProcSample, host::ProcSample)> {
        Ok((host::sample(Some(hosting.server.pid))?, host::sample(None)?))
    };
    // Shares of a core used by the server and by this process between two samples.
    let shares = |a: (host::ProcSample, host::ProcSample),
                  b: (host::ProcSample, host::ProcSample)| {
        let secs = measure.as_secs_f64();
        (
            b.0.cpu.saturating_sub(a.0.cpu).as_secs_f64() / secs * 100.0,
            b.1.cpu.saturating_sub(a.1.cpu).as_secs_f64() / secs * 100.0,
        )
    };
    let (before, c0) = (victims.received(), cpu()?);
    tokio::time::sleep(measure).await;
    let calm = rates(&before, &victims.received(), measure.as_secs_f64());
    let calm_cpu = shares(c0, cpu()?);
    let calm_rtt = rtts(&victims);

    // Attackers: each reconnects to a hostile stream as soon as its last attempt ended.
    let stop = watch::channel(false).0;
    let attempts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..attackers {
        let base = hosting.stream_url("b", hostile[i % hostile.len()].0);
        let (http, cycle, attempts) = (hosting.http.clone(), cycle.clone(), attempts.clone());
        let mut stop_rx = stop.subscribe();
        tasks.push(tokio::spawn(async move {
            while !*stop_rx.borrow() {
                attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let stats: Shared = Arc::new(std::sync::Mutex::new(StreamStats::default()));
                let run = if ws {
                    tokio::spawn(ws_client::run(
                        base.clone(),
                        cycle.clone(),
                        stats,
                        stop_rx.clone(),
                    ))
                } else {
                    tokio::spawn(rtc_peer::run(
                        http.clone(),
                        base.clone(),
                        rtc_peer::Send::Audio(cycle.clone()),
                        stats,
                        stop_rx.clone(),
                    ))
                };
                tokio::select! {
                    _ = run => {}
                    _ = stop_rx.changed() => break,
                }
                // Retry like a client would, not in a tight loop.
                tokio::time::sleep(RETRY).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    victims.reset();
    let (before, c0) = (victims.received(), cpu()?);
    tokio::time::sleep(measure).await;
    let attacked = rates(&before, &victims.received(), measure.as_secs_f64());
    let attacked_cpu = shares(c0, cpu()?);
    let attacked_rtt = rtts(&victims);
    let gap = victims.max_gap();
    let _ = stop.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let kills = hosting.failures("b").await;
    let a_failures = hosting.failures("a").await;
    let failed = victims.failed();
    let made = attempts.load(std::sync::atomic::Ordering::Relaxed);

    println!(
        "isolation: {n} {} echo streams of tenant a; {attackers} attackers reconnecting to tenant b's loop, memory and flood handlers",
        if ws { "WebSocket" } else { "WebRTC" }
    );
    println!(
        "{:<16} {:>9} {:>9} {:>10} {:>10} {:>11} {:>12}",
        "tenant a", "min fps", "mean fps", "p50 rtt", "p99 rtt", "server CPU", "loadgen CPU"
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    for (name, fps, rtt, (server, client)) in [
        ("calm", &calm, &calm_rtt, calm_cpu),
        ("under attack", &attacked, &attacked_rtt, attacked_cpu),
    ] {
        println!(
            "{:<16} {:>9.1} {:>9.1} {:>7.0} ms {:>7.0} ms {:>10.0}% {:>11.0}%",
            name,
            fps.first().copied().unwrap_or(0.0),
            mean(fps),
            quantile(rtt, 0.5),
            quantile(rtt, 0.99),
            server,
            client,
        );
    }
    let kill_text: Vec<String> = kills.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!(
        "tenant b: {made} hostile connections, instances killed: {}; tenant a: {} streams failed, handler failures {:?}, longest gap {:.0} ms",
        if kill_text.is_empty() {
            "none".to_string()
        } else {
            kill_text.join(", ")
        },
        failed.len(),
        a_failures,
        gap.as_secs_f64() * 1e3,
    );
    victims.stop().await;
    Ok(json!({
        "streams": n, "attackers": attackers, "hostile_connections": made,
        "killed_by_cause": kills.iter().map(|(c, n)| json!({"cause": c, "count": n})).collect::<Vec<_>>(),
        "calm": {"min_fps": calm.first(), "mean_fps": mean(&calm), "rtt_p50_ms": quantile(&calm_rtt, 0.5), "rtt_p99_ms": quantile(&calm_rtt, 0.99), "server_cpu_pct": calm_cpu.0, "loadgen_cpu_pct": calm_cpu.1},
        "attacked": {"min_fps": attacked.first(), "mean_fps": mean(&attacked), "rtt_p50_ms": quantile(&attacked_rtt, 0.5), "rtt_p99_ms": quantile(&attacked_rtt, 0.99), "max_gap_ms": gap.as_secs_f64() * 1e3, "server_cpu_pct": attacked_cpu.0, "loadgen_cpu_pct": attacked_cpu.1},
        "tenant_a_failed": failed.len(),
        "tenant_a_handler_failures": a_failures.iter().map(|(c, n)| json!({"cause": c, "count": n})).collect::<Vec<_>>(),
    }))
}

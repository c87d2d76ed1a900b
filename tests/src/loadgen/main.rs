//! `wasmrtc-loadgen`: many concurrent clients of one wasmrtc stream — WebRTC audio echo,
//! WebRTC video flip or WebSocket audio — against a server it starts pinned to one core
//! (or one it attaches to), printing frame rates, round trips, setup times and the CPU
//! and memory of the server (per media stage) and of itself.

mod cli;
mod host;
mod media;
mod report;
mod rtc_peer;
mod scenario;
mod tenancy;
mod webrtc_rs_peer;
mod ws_client;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;

use cli::{Cli, ClientKind, Mode, Scenario, VideoCodec};
use host::Server;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.client_cpu != "none" {
        let cpu: usize = cli
            .client_cpu
            .parse()
            .context("--client-cpu takes a CPU index or `none`")?;
        host::pin_self(cpu)?;
    }
    if cli.client == ClientKind::WebrtcRs && cli.mode != Mode::Audio {
        bail!("--client webrtc-rs is for --mode audio only");
    }
    if cli.codec != VideoCodec::Vp8 && cli.mode != Mode::Video {
        bail!("--codec is for --mode video only");
    }
    // One thread: every client is a task, so the load generator uses at most one core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // On Ctrl-C or SIGTERM the run is dropped, and with it the server it started.
    let signal = runtime.block_on(async {
        tokio::select! {
            r = run(cli) => r.map(|()| None),
            s = stopped() => Ok(Some(s)),
        }
    })?;
    if let Some(s) = signal {
        eprintln!("wasmrtc-loadgen: stopped by {s}");
        std::process::exit(130);
    }
    Ok(())
}

/// The first of SIGINT and SIGTERM.
async fn stopped() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn default_wasmrtc() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("executable directory")?
        .join(format!("wasmrtc{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        bail!(
            "no wasmrtc binary at {} (build it, or pass --wasmrtc)",
            path.display()
        );
    }
    Ok(path)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(cli.scenario, Scenario::HotSwap | Scenario::Isolation) {
        return run_hosting(&cli).await;
    }
    let server = match (&cli.server, cli.pid) {
        (Some(url), Some(pid)) => Server::attach(url, pid),
        _ => {
            let wasmrtc = match &cli.wasmrtc {
                Some(p) => p.clone(),
                None => default_wasmrtc()?,
            };
            let guest = cli.guest.clone().unwrap_or_else(|| {
                PathBuf::from(match cli.mode {
                    Mode::Audio | Mode::Ws => wasmrtc_tests::guests::ECHO,
                    Mode::Video => wasmrtc_tests::guests::FLIP,
                })
            });
            Server::start(&wasmrtc, &guest, &cli.host_cpus)?
        }
    };
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // The machine's CPUs (this process is pinned to one, so not its affinity).
    let cpus = std::fs::read_to_string("/proc/cpuinfo").map_or(0, |c| {
        c.lines().filter(|l| l.starts_with("processor")).count()
    });
    println!(
        "wasmrtc-loadgen: mode {:?}{}, client {}, server {} (pid {}, {}), loadgen on CPU {}; {} CPUs, load average {}",
        cli.mode,
        video_codec(&cli).map_or(String::new(), |c| format!(" ({c})")),
        if cli.mode == Mode::Ws {
            "tokio-tungstenite"
        } else {
            cli.client.name()
        },
        server.url,
        server.pid,
        if server.owned() {
            format!("started, pinned to CPUs {}", cli.host_cpus)
        } else {
            "attached".into()
        },
        cli.client_cpu,
        cpus,
        load_avg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );

    let mut load = scenario::Load::new(&cli, &server)?;
    let outcome = match cli.scenario {
        Scenario::Ramp => load.ramp().await.map(|(steps, extra)| {
            println!();
            report::print_steps(&steps);
            let held = steps.iter().filter(|s| s.held).map(|s| s.streams).max();
            println!(
                "most streams held: {}",
                held.map_or("none".to_string(), |n| n.to_string())
            );
            json!({
                "steps": steps.iter().map(report::Step::to_json).collect::<Vec<_>>(),
                "max_streams_held": held,
                "extra": extra,
            })
        }),
        Scenario::Join => load.join().await,
        Scenario::HotSwap | Scenario::Isolation => unreachable!("handled by run_hosting"),
    };
    load.stop().await;
    let results = outcome?;
    if let Some(path) = &cli.json {
        let doc = json!({
            "mode": format!("{:?}", cli.mode).to_lowercase(),
            "codec": video_codec(&cli),
            "scenario": format!("{:?}", cli.scenario).to_lowercase(),
            "client": if cli.mode == Mode::Ws { "tokio-tungstenite" } else { cli.client.name() },
            "server": {"url": server.url, "pid": server.pid, "started": server.owned(), "cpus": cli.host_cpus},
            "loadgen_cpu": cli.client_cpu,
            "machine": {"cpus": cpus, "load_average": load_avg.trim()},
            "criteria": {"min_fps": cli.min_fps(), "max_p50_rtt_ms": cli.max_p50_ms},
            "results": results,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("write {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// The video codec of the run, if it sends video.
fn video_codec(cli: &Cli) -> Option<&'static str> {
    (cli.mode == Mode::Video).then(|| cli.codec.name())
}

/// The scenarios that start their own server with tenants.
async fn run_hosting(cli: &Cli) -> anyhow::Result<()> {
    if cli.mode == Mode::Video {
        bail!("--scenario hot-swap and isolation use audio: --mode audio or ws");
    }
    let wasmrtc = match &cli.wasmrtc {
        Some(p) => p.clone(),
        None => default_wasmrtc()?,
    };
    let results = match cli.scenario {
        Scenario::HotSwap => tenancy::hot_swap(cli, &wasmrtc).await?,
        _ => tenancy::isolation(cli, &wasmrtc).await?,
    };
    if let Some(path) = &cli.json {
        let doc = json!({
            "mode": format!("{:?}", cli.mode).to_lowercase(),
            "scenario": format!("{:?}", cli.scenario).to_lowercase(),
            "results": results,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("write {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

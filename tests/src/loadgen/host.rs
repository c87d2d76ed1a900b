//! The server under load: started pinned to its CPUs (or attached to), and sampled from
//! `/proc` (CPU time, resident memory) and its `/stats` route (time per media stage).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// A server the load generator started; killed when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its process id.
    pub pid: u32,
    child: Option<Child>,
}

impl Server {
    /// Start `wasmrtc serve GUEST` on 127.0.0.1 (a free port), pinned with
    /// `taskset -c CPUS`, and wait until it prints its address.
    pub fn start(wasmrtc: &Path, guest: &Path, cpus: &str) -> anyhow::Result<Self> {
        Self::launch(wasmrtc, &[guest.as_os_str()], cpus)
    }

    /// Start `wasmrtc serve --config FILE` (streams and tenants) the same way.
    pub fn start_config(wasmrtc: &Path, config: &Path, cpus: &str) -> anyhow::Result<Self> {
        Self::launch(wasmrtc, &["--config".as_ref(), config.as_os_str()], cpus)
    }

    fn launch(wasmrtc: &Path, args: &[&std::ffi::OsStr], cpus: &str) -> anyhow::Result<Self> {
        let mut child = Command::new("taskset")
            .args(["-c", cpus])
            .arg(wasmrtc)
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            // Every simulated client comes from 127.0.0.1: no per-address bounds.
            .args(["--per-ip-connections", "0", "--per-ip-rate", "0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start taskset -c {cpus} {}", wasmrtc.display()))?;
        let pid = child.id();
        let stderr = child.stderr.take().context("server stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Read the address, then keep draining the log so the server never blocks on it.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving on ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap_or("").to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Ok(url));
                    }
                } else if line.starts_with("error") {
                    eprintln!("server: {line}");
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Err(line));
                    }
                }
            }
        });
        let mut server = Self {
            url: String::new(),
            pid,
            child: Some(child),
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(url)) => server.url = url,
            Ok(Err(line)) => bail!("the server failed to start: {line}"),
            Err(_) => bail!("the server did not print its address within 120 s"),
        }
        Ok(server)
    }

    /// A server started by someone else.
    pub fn attach(url: &str, pid: u32) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            pid,
            child: None,
        }
    }

    /// Whether the load generator started this server.
    pub fn owned(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time and resident memory of a process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User plus system CPU time since the process started.
    pub cpu: Duration,
    /// Resident set size in KiB.
    pub rss_kib: u64,
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Read `/proc/<pid>/stat` (utime + stime) and `/proc/<pid>/status` (VmRSS);
/// `pid` `None` is this process.
pub fn sample(pid: Option<u32>) -> anyhow::Result<ProcSample> {
    let dir = pid.map_or_else(|| "/proc/self".to_string(), |p| format!("/proc/{p}"));
    let stat = std::fs::read_to_string(format!("{dir}/stat"))
        .with_context(|| format!("read {dir}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd {dir}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("{dir}/stat has no field {n}"))
    };
    let ticks = field(14)? + field(15)?;
    let cpu = Duration::from_nanos(ticks * 1_000_000_000 / clock_ticks());
    let status = std::fs::read_to_string(format!("{dir}/status"))
        .with_context(|| format!("read {dir}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok(ProcSample { cpu, rss_kib })
}

/// Time the server spent per media stage (from `GET /stats`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stages {
    /// str0m and the UDP socket.
    pub transport: Duration,
    /// Codecs, resampling, colour conversion.
    pub codec: Duration,
    /// Calls into the handler.
    pub handler: Duration,
}

impl Stages {
    /// `self - earlier`, stage by stage.
    pub fn since(&self, earlier: &Stages) -> Stages {
        Stages {
            transport: self.transport.saturating_sub(earlier.transport),
            codec: self.codec.saturating_sub(earlier.codec),
            handler: self.handler.saturating_sub(earlier.handler),
        }
    }

    /// The sum of the stages.
    pub fn total(&self) -> Duration {
        self.transport + self.codec + self.handler
    }
}

/// `GET {url}/stats`; zeros when the server does not answer it.
pub async fn stages(http: &reqwest::Client, url: &str) -> Stages {
    let value: Value = match http.get(format!("{url}/stats")).send().await {
        Ok(r) => r.json().await.unwrap_or(json!({})),
        Err(_) => json!({}),
    };
    let ns = |k: &str| Duration::from_nanos(value.get(k).and_then(Value::as_u64).unwrap_or(0));
    Stages {
        transport: ns("transport_ns"),
        codec: ns("codec_ns"),
        handler: ns("handler_ns"),
    }
}

/// Pin this process (the calling thread and every thread created after) to `cpu`.
pub fn pin_self(cpu: usize) -> anyhow::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).context("CPU index")?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .with_context(|| format!("pin to CPU {cpu}"))?;
    Ok(())
}

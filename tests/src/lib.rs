//! Shared pieces of wasmrtc's end-to-end tests and benchmarks: paths of the example
//! guests (built from source by `build.rs`), the WebRTC test peer, checks of the
//! example guests over it, and signal measurements.

pub mod admin;
pub mod checks;
pub mod peer;
pub mod signal;
pub mod speech;
pub mod wav;

/// Paths of the example guests, built for wasm32-wasip2 in release mode.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

use wasmrtc::runtime::{Runtime, RuntimeConfig};

/// A runtime for tests, with the default limits and a compiled-code cache under `target/`.
pub fn test_runtime() -> Runtime {
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasmtime-cache");
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// Build a target of the `wasmrtc` package (`--bin NAME` or `--example NAME`) in
/// release mode and return its path next to this test binary's target directory.
fn built(kind: &str, name: &str, subdir: &str) -> std::path::PathBuf {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "wasmrtc", kind, name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "building {kind} {name} failed");
    // The test binary lives in target/release/deps/; binaries in target/release/.
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    dir.join(subdir)
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The `wasmrtc` binary of this build (built on first use), for tests of the CLI.
pub fn wasmrtc_bin() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| built("--bin", "wasmrtc", "")).clone()
}

/// The `custom_app` example of the host crate, built.
pub fn custom_app_example() -> std::path::PathBuf {
    built("--example", "custom_app", "examples")
}

/// A `wasmrtc serve` process started by a test, killed (SIGKILL) and reaped when
/// dropped, so a failing test leaves no server behind.
pub struct HostProcess {
    /// The process.
    pub child: std::process::Child,
    /// Its HTTP address, as `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `wasmrtc` with `args` (which must make it serve on 127.0.0.1:0), echo its
/// log as `[host] …` and wait for the address it says it serves on.
pub fn start_host<I, S>(args: I) -> HostProcess
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = std::process::Command::new(wasmrtc_bin());
    cmd.args(args);
    start_process(cmd)
}

/// Like [`start_host`], for a command set up by the caller (its environment, folder).
pub fn start_process(mut cmd: std::process::Command) -> HostProcess {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .env("RUST_LOG", "wasmrtc=info,warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start wasmrtc serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[host] {line}");
            if !sent && let Some(rest) = line.split("serving on ").nth(1) {
                let url = rest.split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send(url);
                sent = true;
            }
        }
    });
    let base = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the host did not start");
    HostProcess { child, base }
}

/// A fresh empty directory under the system's temporary one, named after the test
/// `area` and `tag` (unique per process and call).
pub fn scratch_dir(area: &str, tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "wasmrtc-{area}-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// `wasmrtc serve --config <config>` (the file must listen on 127.0.0.1:0).
pub fn start_host_with_config(config: &std::path::Path) -> HostProcess {
    start_host([
        std::ffi::OsStr::new("serve"),
        "--config".as_ref(),
        config.as_os_str(),
    ])
}

/// Run `wasmrtc serve --config <config>` to its end: for files the host must refuse.
pub fn serve_config_output(config: &std::path::Path) -> std::process::Output {
    std::process::Command::new(wasmrtc_bin())
        .args(["serve", "--config"])
        .arg(config)
        .output()
        .expect("run wasmrtc serve")
}

/// A host's `/metrics` text once `done` holds of it, or the last one after 20 s
/// (counters move just after the event they count).
pub async fn metrics_until(base: &str, done: impl Fn(&str) -> bool) -> String {
    let mut text = metrics_text(base).await;
    for _ in 0..200 {
        if done(&text) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        text = metrics_text(base).await;
    }
    text
}

/// The text a host's `GET /metrics` answers (without a token).
pub async fn metrics_text(base: &str) -> String {
    let url = format!("{base}/metrics");
    reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

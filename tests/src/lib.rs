//! Shared pieces of wasmrtc's end-to-end tests and benchmarks: paths of the example
//! guests (built from source by `build.rs`), the WebRTC test peer, checks of the
//! example guests over it, and signal measurements.

pub mod checks;
pub mod peer;
pub mod signal;
pub mod speech;

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

//! Shared pieces of wasmrtc's end-to-end tests and benchmarks: paths of the example
//! guests (built from source by `build.rs`) and signal measurements.

pub mod signal;

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

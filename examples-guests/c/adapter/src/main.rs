//! Writes the preview1 reactor adapter bytes to the file named by the first argument.

use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .expect("usage: dump-adapter OUT.wasm");
    std::fs::write(&out, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER).expect("write the adapter");
}

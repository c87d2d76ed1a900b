//! wasmrtc: real-time media streams whose handlers are sandboxed WebAssembly components.
pub mod runtime;

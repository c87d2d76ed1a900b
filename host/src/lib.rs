//! wasmrtc: real-time audio/video streams, FastRTC-compatible on the wire, whose
//! handlers are sandboxed WebAssembly components.
//!
//! The data path is transport → media → session → runtime → media → transport, with
//! http beside it: [`transport`] (one UDP socket, str0m peers), [`media`] (codecs,
//! resampling, colour), [`session`] (one per connection), [`runtime`] (the wasm
//! sandbox) and [`http`] (FastRTC's routes). [`Stream`] ties them together;
//! [`tenancy`] hosts the streams of many tenants, uploaded and swapped over HTTP.

pub mod config;
pub mod http;
pub mod lifecycle;
pub mod media;
pub mod runtime;
pub mod session;
mod stream;
pub mod tenancy;
pub mod transport;

pub use lifecycle::Lifecycle;
pub use stream::{HookError, Stream, StreamConfig, Transport};

//! wasmrtc: real-time audio/video streams, FastRTC-compatible on the wire, whose
//! handlers are sandboxed WebAssembly components.
//!
//! The data path is transport → media → session → runtime → media → transport, with
//! http beside it: [`transport`] (one UDP socket, str0m peers), [`media`] (codecs,
//! resampling, colour), [`session`] (one per connection), [`runtime`] (the wasm
//! sandbox) and [`http`] (FastRTC's routes). [`Stream`] ties them together;
//! [`tenancy`] hosts the streams of many tenants, uploaded and swapped over HTTP;
//! [`lifecycle`] tracks every connection's task and drains them on shutdown;
//! [`authoring`] is the handler author's side: project templates, builds, offline runs
//! over files (the session core in virtual time) and rebuild-on-save.
//!
//! Invariants of a connection:
//! - Its rules (pacing, playback, turn-taking, time limit, close, message order) live
//!   in one sans-IO state machine, the session core, driven by explicit time; the
//!   transports only move bytes for it.
//! - Nothing on the media path waits for the handler: its calls run on the
//!   connection's own task, through bounded queues, and video codecs run on the codec
//!   pool ([`media::CodecPool`]), off the runtime's workers.
//! - str0m is drained after every input it is given ([`transport::Peer`]).
//! - Every connection is registered before its instance starts and removed by a drop
//!   guard, on every exit path.

pub mod authoring;
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
pub use stream::{HookError, MAX_ADVERTISED, Stream, StreamConfig, Transport};

//! Sessions: one per connection, between the transport and the handler instance.
//! Admission, inputs, outputs, time limit and lifecycle live here.

mod admission;
mod audio;
mod effects;
pub mod messages;
mod playback;
mod registry;
pub mod stats;
mod time_limit;
pub mod turns;
mod video;
mod webrtc;
mod websocket;

pub use admission::{Admission, LimitReached, Slot};
pub use registry::{Command, ConnectionHandle, Connections, Outputs};
pub(crate) use webrtc::{SessionSettings, WebRtcSession};
pub(crate) use websocket::{Flavour, FormatRequest, MAX_MESSAGE, WsIn, WsOut, WsSession};

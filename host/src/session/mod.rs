//! Sessions: one per connection, between the transport and the handler instance.
//!
//! Every connection, whatever its transport, is one [`core::Core`]: a sans-IO state
//! machine that owns pacing, the playback queue, turn-taking, the time limit, close
//! semantics and the order of FastRTC's messages. Around it, a transport adapter
//! (`webrtc`, `websocket`) moves media and messages, and the connection's handler
//! instance runs on its own task (`handler_task`). Admission, the registry of live
//! connections and the process-wide stats live here too.

mod admission;
mod audio;
mod core;
mod effects;
mod handler_task;
pub mod messages;
mod playback;
mod registry;
pub mod stats;
mod time_limit;
pub mod turns;
mod video;
mod webrtc;
mod websocket;
mod ws_events;

pub use admission::{Admission, LimitReached, Slot};
pub(crate) use audio::OPUS_RATE;
pub(crate) use core::{Core, CoreConfig};
// What `wasmrtc run` (crate::authoring::run) drives a core with, in virtual time.
pub(crate) use self::core::{Action, Answer, Call, CallKind, NextAudio, Reply};
pub(crate) use effects::apply as apply_effects;
pub(crate) use handler_task::make as make_call;
pub(crate) use handler_task::{HandlerTask, Reload};
pub(crate) use registry::parse_inputs;
pub use registry::{
    Command, ConnectionHandle, Connections, EARLY_BYTES, EarlyError, MAX_CANDIDATE_BYTES,
    MAX_CANDIDATES, MAX_ID_BYTES, Outputs, RegisterError,
};
pub use video::{DEFAULT_MAX_PICTURE, MaxPicture};
pub(crate) use video::{frame as handler_frame, picture as frame_picture};
pub(crate) use webrtc::WebRtcSession;
pub(crate) use websocket::{Flavour, FormatRequest, MAX_MESSAGE, WsIn, WsOut, WsSession};

//! Write wasmrtc stream handlers in Rust: the WIT bindings, a [`Handler`] trait whose
//! methods all have defaults, and one macro, [`export_handler!`], to export it.
//!
//! A handler is built with `cargo build --release --target wasm32-wasip2` into a
//! component the host loads. The host creates one instance per connection, so the
//! fields of your handler value are that connection's state.
//!
//! # A complete handler
//!
//! Audio send-receive with a slider that scales the samples:
//!
//! ```no_run
//! use std::collections::VecDeque;
//! use wasmrtc_guest::*;
//!
//! struct Gain { factor: f64, queue: VecDeque<AudioFrame> }
//!
//! impl Default for Gain {
//!     fn default() -> Self { Gain { factor: 1.0, queue: VecDeque::new() } }
//! }
//!
//! impl Handler for Gain {
//!     fn describe() -> StreamSpec {
//!         StreamSpec::new(Modality::Audio, Mode::SendReceive)
//!             .input(InputSpec::slider("gain", "Gain", 0.0, 2.0, 0.01, 1.0))
//!     }
//!     fn set_inputs(&mut self, values: Vec<Value>) {
//!         self.factor = values.first().and_then(Value::as_f64).unwrap_or(1.0);
//!     }
//!     fn on_audio(&mut self, mut frame: AudioFrame) {
//!         for s in &mut frame.samples {
//!             *s = (f64::from(*s) * self.factor).clamp(-32768.0, 32767.0) as i16;
//!         }
//!         self.queue.push_back(frame);
//!     }
//!     fn next_audio(&mut self) -> Option<AudioFrame> {
//!         self.queue.pop_front()
//!     }
//! }
//!
//! export_handler!(Gain);
//! ```

#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "conversational-component",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "wasmrtc_guest::bindings",
        generate_all,
    });
}

mod spec;
mod turns;

pub use bindings::exports::wasmrtc::handler::replies::ReplyChunk;
pub use bindings::exports::wasmrtc::handler::turns::TurnTaking;
pub use bindings::wasmrtc::handler::types::{
    AudioFrame, Control, Dropdown, InputSpec, Modality, Mode, NotifyLevel, NumberBox, OutputKind,
    OutputSpec, PixelFormat, Slider, StreamSpec, Value, VideoFrame,
};

use bindings::wasmrtc::handler::host;

/// A stream handler. Implement only the methods your modality and mode need:
///
/// | modality × mode | methods the host calls |
/// |---|---|
/// | video send-receive / send | [`on_video`](Handler::on_video) per frame |
/// | video receive | [`next_video`](Handler::next_video) at the spec's `fps` |
/// | audio send-receive | [`on_audio`](Handler::on_audio), then [`next_audio`](Handler::next_audio) when playback runs low |
/// | audio send | [`on_audio`](Handler::on_audio) |
/// | audio receive | [`next_audio`](Handler::next_audio) |
/// | audio-video send-receive | all of the above but `next_video` |
/// | audio send-receive with turn-taking | [`on_utterance`](Handler::on_utterance) per turn, then [`next_audio`](Handler::next_audio) until it returns `None`; [`on_interrupt`](Handler::on_interrupt) when the caller speaks over the reply |
///
/// Turn-taking (FastRTC's `ReplyOnPause`) is on when [`describe_turns`](Handler::describe_turns)
/// returns settings: the host detects speech, hands over each utterance, and plays the
/// reply; `on_audio` is not called then.
///
/// The value is created with [`Default`] when the connection's instance is created.
pub trait Handler: Default + 'static {
    /// The stream's spec: modality, mode, inputs, outputs, rates.
    fn describe() -> StreamSpec;

    /// Every input value in declared order; called first with the defaults.
    fn set_inputs(&mut self, values: Vec<Value>) {
        let _ = values;
    }

    /// Audio from the client at the spec's `input_sample_rate`.
    fn on_audio(&mut self, frame: AudioFrame) {
        let _ = frame;
    }

    /// Audio for the client at the spec's `output_sample_rate`, any length; `None` = nothing now.
    fn next_audio(&mut self) -> Option<AudioFrame> {
        None
    }

    /// Video from the client; return `Some` to send a frame back now.
    fn on_video(&mut self, frame: VideoFrame) -> Option<VideoFrame> {
        let _ = frame;
        None
    }

    /// Video for the client in receive mode, called at the spec's `fps`.
    fn next_video(&mut self) -> Option<VideoFrame> {
        None
    }

    /// Turn-taking settings; `Some` makes the host hand over whole utterances
    /// (audio send-receive streams only). Called once at load, after `describe`.
    fn describe_turns() -> Option<TurnTaking> {
        None
    }

    /// The caller's whole utterance at the spec's `input_sample_rate`; prepare the
    /// reply, which the host then takes from [`next_audio`](Handler::next_audio)
    /// until it returns `None`.
    fn on_utterance(&mut self, utterance: AudioFrame) {
        let _ = utterance;
    }

    /// The caller spoke during an interruptible reply: the host already dropped what
    /// it had queued; drop the rest of the reply.
    fn on_interrupt(&mut self) {}

    /// The next piece of a turn-taking reply. Return [`ReplyChunk::Pending`] while the
    /// reply waits on something (a request in flight): the host asks again on its next
    /// tick, 20 ms later, and media keeps flowing meanwhile. The default takes
    /// [`next_audio`](Handler::next_audio): `Some` plays, `None` ends the reply.
    fn next_reply(&mut self) -> ReplyChunk {
        match self.next_audio() {
            Some(frame) => ReplyChunk::Audio(frame),
            None => ReplyChunk::Done,
        }
    }

    /// The connection started (FastRTC's `startup_fn`): return `true` to start a reply
    /// now (a greeting), taken from [`next_reply`](Handler::next_reply). Only with
    /// turn-taking on.
    fn on_start(&mut self) -> bool {
        false
    }

    /// A text message from the client: return `true` to start a reply to it, taken
    /// from [`next_reply`](Handler::next_reply). Only with turn-taking on.
    fn on_text(&mut self, text: String) -> bool {
        let _ = text;
        false
    }
}

/// Publish additional outputs, one value per declared output, in declared order.
pub fn emit_outputs(values: &[Value]) {
    host::emit_outputs(values);
}

/// Send a message to the client at the given level.
pub fn notify(level: NotifyLevel, message: &str) {
    host::notify(level, message);
}

/// Send a warning to the client (`{"type":"warning","message":…}`).
pub fn warn(message: &str) {
    host::notify(NotifyLevel::Warning, message);
}

/// End this connection after the current call; the client gets `end_stream` with `reason`.
pub fn close_stream(reason: &str) {
    host::close_stream(reason);
}

/// Drop the audio already queued for playback to the client (barge-in).
pub fn clear_audio() {
    host::clear_audio();
}

impl Value {
    /// The value as a number, if it is a number or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The value as text, if it is text or JSON.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Json(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

/// Export a [`Handler`] as the component's `handler` interface.
///
/// Use once per component, at the crate root: `export_handler!(MyHandler);`.
#[macro_export]
macro_rules! export_handler {
    ($ty:ty) => {
        const _: () = {
            use $crate::bindings::exports::wasmrtc::handler::handler::Guest;
            use $crate::bindings::exports::wasmrtc::handler::replies::Guest as RepliesGuest;
            use $crate::bindings::exports::wasmrtc::handler::turns::Guest as TurnsGuest;
            use $crate::{
                AudioFrame, Handler, ReplyChunk, StreamSpec, TurnTaking, Value, VideoFrame,
            };

            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<Option<$ty>> = const { ::std::cell::RefCell::new(None) };
            }

            fn with<R>(f: impl FnOnce(&mut $ty) -> R) -> R {
                STATE.with(|cell| {
                    let mut slot = cell.borrow_mut();
                    f(slot.get_or_insert_with(<$ty as Default>::default))
                })
            }

            struct Export;

            impl Guest for Export {
                fn describe() -> StreamSpec {
                    <$ty as Handler>::describe()
                }
                fn set_inputs(values: Vec<Value>) {
                    with(|h| h.set_inputs(values))
                }
                fn on_audio(frame: AudioFrame) {
                    with(|h| h.on_audio(frame))
                }
                fn next_audio() -> Option<AudioFrame> {
                    with(|h| h.next_audio())
                }
                fn on_video(frame: VideoFrame) -> Option<VideoFrame> {
                    with(|h| h.on_video(frame))
                }
                fn next_video() -> Option<VideoFrame> {
                    with(|h| h.next_video())
                }
            }

            impl TurnsGuest for Export {
                fn describe_turns() -> Option<TurnTaking> {
                    <$ty as Handler>::describe_turns()
                }
                fn on_utterance(utterance: AudioFrame) {
                    with(|h| h.on_utterance(utterance))
                }
                fn on_interrupt() {
                    with(|h| h.on_interrupt())
                }
            }

            impl RepliesGuest for Export {
                fn next_reply() -> ReplyChunk {
                    with(|h| h.next_reply())
                }
                fn on_start() -> bool {
                    with(|h| h.on_start())
                }
                fn on_text(text: String) -> bool {
                    with(|h| h.on_text(text))
                }
            }

            $crate::bindings::export_bindings!(Export with_types_in $crate::bindings);
        };
    };
}

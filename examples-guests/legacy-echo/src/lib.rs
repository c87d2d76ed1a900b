//! The echo handler on the frozen 0.1.0 contract: plays the client's audio back.

wit_bindgen::generate!({
    path: "wit",
    world: "handler-component",
    generate_all,
});

use std::cell::RefCell;
use std::collections::VecDeque;

use exports::wasmrtc::handler::handler::Guest;
use wasmrtc::handler::host;
use wasmrtc::handler::types::{
    AudioFrame, Modality, Mode, NotifyLevel, PixelFormat, StreamSpec, Value, VideoFrame,
};

/// At most this many frames are queued (1 s of 20 ms frames).
const MAX_QUEUED: usize = 50;

thread_local! {
    static QUEUE: RefCell<VecDeque<AudioFrame>> = const { RefCell::new(VecDeque::new()) };
    static STARTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

struct LegacyEcho;

impl Guest for LegacyEcho {
    fn describe() -> StreamSpec {
        StreamSpec {
            modality: Modality::Audio,
            mode: Mode::SendReceive,
            inputs: Vec::new(),
            outputs: Vec::new(),
            input_sample_rate: 48_000,
            output_sample_rate: 48_000,
            video_format: PixelFormat::Bgr24,
            fps: 30,
        }
    }

    fn set_inputs(_values: Vec<Value>) {}

    fn on_audio(frame: AudioFrame) {
        QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            if q.is_empty() && !STARTED.replace(true) {
                // Uses the 0.1.0 host import, so the component really imports it.
                host::notify(NotifyLevel::Log, "legacy echo on wasmrtc:handler@0.1.0");
            }
            if q.len() == MAX_QUEUED {
                q.pop_front();
            }
            q.push_back(frame);
        });
    }

    fn next_audio() -> Option<AudioFrame> {
        QUEUE.with(|q| q.borrow_mut().pop_front())
    }

    fn on_video(_frame: VideoFrame) -> Option<VideoFrame> {
        None
    }

    fn next_video() -> Option<VideoFrame> {
        None
    }
}

export!(LegacyEcho);

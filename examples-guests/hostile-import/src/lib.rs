//! Hostile on purpose: imports `fixture:evil/raw-socket`, which the host does not offer,
//! so instantiating (or even accepting) this component must fail.

// The wasmrtc WIT comes first: later paths may depend on earlier ones.
wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "fixture:evil/evil",
    generate_all,
});

use exports::wasmrtc::handler::handler::Guest;
use fixture::evil::raw_socket;
use wasmrtc::handler::types::{
    AudioFrame, Modality, Mode, PixelFormat, StreamSpec, Value, VideoFrame,
};

struct Evil;

impl Guest for Evil {
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

    fn on_audio(_frame: AudioFrame) {
        // Really call the import, so the linker keeps it in the component.
        raw_socket::connect("10.0.0.1:80");
    }

    fn next_audio() -> Option<AudioFrame> {
        None
    }

    fn on_video(_frame: VideoFrame) -> Option<VideoFrame> {
        None
    }

    fn next_video() -> Option<VideoFrame> {
        None
    }
}

export!(Evil);

//! Hostile on purpose: `on_audio` panics (a wasm trap) on the first frame.

use wasmrtc_guest::*;

#[derive(Default)]
struct HostileTrap;

impl Handler for HostileTrap {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
    }

    fn on_audio(&mut self, _frame: AudioFrame) {
        // A trap ends the instance, so every frame this instance sees is its first.
        panic!("hostile-trap: refusing the first frame");
    }
}

export_handler!(HostileTrap);

//! Hostile on purpose: `on_audio` sleeps for an hour (blocked in a WASI clock poll, not on CPU).

use std::time::Duration;
use wasmrtc_guest::*;

#[derive(Default)]
struct HostileSleep;

impl Handler for HostileSleep {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
    }

    fn on_audio(&mut self, _frame: AudioFrame) {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

export_handler!(HostileSleep);

//! Hostile on purpose: `on_audio` and `on_video` never return, spinning on the CPU.

use wasmrtc_guest::*;

#[derive(Default)]
struct HostileLoop;

impl Handler for HostileLoop {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
    }

    fn on_audio(&mut self, _frame: AudioFrame) {
        spin()
    }

    fn on_video(&mut self, _frame: VideoFrame) -> Option<VideoFrame> {
        spin()
    }
}

/// Busy-loop forever; `black_box` keeps the optimizer from removing the loop body.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        core::hint::black_box(&mut counter);
        counter = counter.wrapping_add(1);
    }
}

export_handler!(HostileLoop);

//! Audio send-receive: plays the client's audio back to it, in order.

use std::collections::VecDeque;
use wasmrtc_guest::*;

/// At most this many frames are queued (1 s of 20 ms frames); older ones are dropped.
const MAX_QUEUED: usize = 50;

#[derive(Default)]
struct Echo {
    queue: VecDeque<AudioFrame>,
}

impl Handler for Echo {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive).sample_rates(48_000, 48_000)
    }

    fn on_audio(&mut self, frame: AudioFrame) {
        if self.queue.len() == MAX_QUEUED {
            self.queue.pop_front();
        }
        self.queue.push_back(frame);
    }

    fn next_audio(&mut self) -> Option<AudioFrame> {
        self.queue.pop_front()
    }
}

export_handler!(Echo);

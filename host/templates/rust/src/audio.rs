//! Audio send-receive: plays the caller's audio back, scaled by a "gain" slider.

use std::collections::VecDeque;
use wasmrtc_guest::*;

/// At most this many frames are queued (1 s of 20 ms frames); older ones are dropped.
const MAX_QUEUED: usize = 50;

struct Gain {
    factor: f32,
    queue: VecDeque<AudioFrame>,
}

impl Default for Gain {
    fn default() -> Self {
        Gain {
            factor: 1.0,
            queue: VecDeque::new(),
        }
    }
}

impl Handler for Gain {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
            .sample_rates(48_000, 48_000)
            .input(InputSpec::slider("gain", "Gain", 0.0, 2.0, 0.01, 1.0))
    }

    fn set_inputs(&mut self, values: Vec<Value>) {
        if let Some(gain) = values.first().and_then(Value::as_f64) {
            self.factor = gain as f32;
        }
    }

    fn on_audio(&mut self, mut frame: AudioFrame) {
        for s in &mut frame.samples {
            // Float-to-int `as` saturates, so loud samples clip instead of wrapping.
            *s = (f32::from(*s) * self.factor).round_ties_even() as i16;
        }
        if self.queue.len() == MAX_QUEUED {
            self.queue.pop_front();
        }
        self.queue.push_back(frame);
    }

    fn next_audio(&mut self) -> Option<AudioFrame> {
        self.queue.pop_front()
    }
}

export_handler!(Gain);

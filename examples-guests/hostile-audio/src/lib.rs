//! Hostile on purpose: `next_audio` returns audio the host must refuse, picked by the
//! "mode" slider: 0 a valid 20 ms frame, 1 a rate of 1 kHz (below 8 kHz), 2 two
//! seconds of samples in one frame, 3 nine channels, 4 a rate of 1 MHz.

use wasmrtc_guest::*;

#[derive(Default)]
struct HostileAudio {
    mode: u32,
}

impl Handler for HostileAudio {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
            .input(InputSpec::slider("mode", "Mode", 0.0, 4.0, 1.0, 0.0))
    }

    fn set_inputs(&mut self, values: Vec<Value>) {
        if let Some(mode) = values.first().and_then(Value::as_f64) {
            self.mode = mode as u32;
        }
    }

    fn next_audio(&mut self) -> Option<AudioFrame> {
        let (sample_rate, channels, samples) = match self.mode {
            1 => (1_000, 1, 20),
            2 => (48_000, 1, 96_000),
            3 => (48_000, 9, 960 * 9),
            4 => (1_000_000, 1, 20_000),
            _ => (48_000, 1, 960),
        };
        Some(AudioFrame {
            sample_rate,
            channels,
            samples: vec![0; samples],
        })
    }
}

export_handler!(HostileAudio);

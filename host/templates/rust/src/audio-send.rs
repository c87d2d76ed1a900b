//! Audio send: measures the caller's audio and emits its level (dBFS) four times a
//! second. Nothing is sent back.

use wasmrtc_guest::*;

const RATE: u32 = 16_000;
/// Samples per measurement: 250 ms.
const WINDOW: usize = RATE as usize / 4;

#[derive(Default)]
struct Meter {
    /// Sum of squares of the window so far.
    energy: f64,
    /// Samples in the window so far.
    samples: usize,
}

impl Handler for Meter {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::Send)
            .sample_rates(RATE, RATE)
            .output(OutputSpec::new("level", "Level (dBFS)", OutputKind::Number))
    }

    fn on_audio(&mut self, frame: AudioFrame) {
        let channels = usize::from(frame.channels.max(1));
        // The first channel only.
        for &s in frame.samples.iter().step_by(channels) {
            self.energy += f64::from(s) * f64::from(s);
            self.samples += 1;
            if self.samples == WINDOW {
                let rms = (self.energy / WINDOW as f64).sqrt() / 32768.0;
                let level = if rms > 0.0 { 20.0 * rms.log10() } else { -120.0 };
                emit_outputs(&[Value::Number((level * 10.0).round() / 10.0)]);
                self.energy = 0.0;
                self.samples = 0;
            }
        }
    }
}

export_handler!(Meter);

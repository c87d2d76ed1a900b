//! Audio send: measures the client's audio and emits its level (dBFS) and its pitch
//! (Hz, from zero crossings) four times a second. Nothing is sent back.

use wasmrtc_guest::*;

const RATE: u32 = 16_000;
/// Samples per measurement: 250 ms.
const WINDOW: usize = RATE as usize / 4;
/// Below this level (dBFS) the pitch is not measured.
const SILENCE_DB: f64 = -60.0;

#[derive(Default)]
struct Meter {
    /// Sum of squares of the window so far.
    energy: f64,
    /// Sign changes from negative to non-negative in the window so far.
    crossings: u32,
    samples: usize,
    last: i16,
}

impl Handler for Meter {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::Send)
            .sample_rates(RATE, RATE)
            .output(OutputSpec::new("level", "Level (dBFS)", OutputKind::Number))
            .output(OutputSpec::new("pitch", "Pitch (Hz)", OutputKind::Number))
    }

    fn on_audio(&mut self, frame: AudioFrame) {
        let channels = usize::from(frame.channels.max(1));
        // The first channel only.
        for &s in frame.samples.iter().step_by(channels) {
            self.energy += f64::from(s) * f64::from(s);
            if self.last < 0 && s >= 0 {
                self.crossings += 1;
            }
            self.last = s;
            self.samples += 1;
            if self.samples == WINDOW {
                self.emit();
            }
        }
    }
}

impl Meter {
    fn emit(&mut self) {
        let rms = (self.energy / self.samples as f64).sqrt();
        let level = if rms > 0.0 {
            20.0 * (rms / f64::from(i16::MAX)).log10()
        } else {
            -120.0
        };
        let seconds = self.samples as f64 / f64::from(RATE);
        let pitch = if level > SILENCE_DB {
            Value::Number(f64::from(self.crossings) / seconds)
        } else {
            Value::None
        };
        emit_outputs(&[Value::Number((level * 10.0).round() / 10.0), pitch]);
        self.energy = 0.0;
        self.crossings = 0;
        self.samples = 0;
    }
}

export_handler!(Meter);

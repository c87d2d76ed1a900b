//! Audio receive: a sine tone with "frequency" and "volume" inputs. The caller sends
//! nothing.

use std::f64::consts::TAU;
use wasmrtc_guest::*;

const RATE: u32 = 48_000;
/// Samples per `next_audio` call: 20 ms, mono.
const FRAME: usize = RATE as usize / 50;

struct Tone {
    frequency: f64,
    volume: f64,
    /// Position in the current cycle, in `0.0..1.0`, carried across calls so the
    /// waveform never jumps.
    phase: f64,
}

impl Default for Tone {
    fn default() -> Self {
        Tone {
            frequency: 440.0,
            volume: 0.5,
            phase: 0.0,
        }
    }
}

impl Handler for Tone {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::Receive)
            .sample_rates(RATE, RATE)
            .input(InputSpec::number(
                "frequency",
                "Frequency (Hz)",
                Some(20.0),
                Some(20_000.0),
                440.0,
            ))
            .input(InputSpec::slider("volume", "Volume", 0.0, 1.0, 0.01, 0.5))
    }

    fn set_inputs(&mut self, values: Vec<Value>) {
        let mut values = values.iter().map(Value::as_f64);
        if let Some(Some(f)) = values.next() {
            self.frequency = f;
        }
        if let Some(Some(v)) = values.next() {
            self.volume = v;
        }
    }

    fn next_audio(&mut self) -> Option<AudioFrame> {
        let step = self.frequency / f64::from(RATE);
        let amplitude = self.volume * f64::from(i16::MAX);
        let mut samples = vec![0i16; FRAME];
        for s in &mut samples {
            *s = ((TAU * self.phase).sin() * amplitude) as i16;
            self.phase = (self.phase + step).fract();
        }
        Some(AudioFrame {
            sample_rate: RATE,
            channels: 1,
            samples,
        })
    }
}

export_handler!(Tone);

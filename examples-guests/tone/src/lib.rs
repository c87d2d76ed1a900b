//! Audio receive: a sine generator with frequency and volume inputs, and an optional
//! duration after which it warns the client, then ends the stream.

use std::f64::consts::TAU;
use wasmrtc_guest::*;

const RATE: u32 = 48_000;
/// Samples per `next_audio` call: 20 ms, mono.
const FRAME: usize = RATE as usize / 50;

/// Seconds before the end at which the client is warned.
const WARN_BEFORE: f64 = 1.0;

struct Tone {
    frequency: f64,
    volume: f64,
    /// Seconds to play; 0 plays until the client leaves.
    duration: f64,
    /// Samples generated so far.
    played: u64,
    warned: bool,
    /// Position in the current cycle, in `0.0..1.0`. Carried across calls and frequency
    /// changes so the waveform never jumps.
    phase: f64,
}

impl Default for Tone {
    fn default() -> Self {
        Tone {
            frequency: 440.0,
            volume: 0.5,
            duration: 0.0,
            played: 0,
            warned: false,
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
            .input(InputSpec::number(
                "duration",
                "Duration (s, 0 = endless)",
                Some(0.0),
                Some(3600.0),
                0.0,
            ))
    }

    fn set_inputs(&mut self, values: Vec<Value>) {
        let mut values = values.iter().map(Value::as_f64);
        if let Some(Some(f)) = values.next() {
            self.frequency = f;
        }
        if let Some(Some(v)) = values.next() {
            self.volume = v;
        }
        if let Some(Some(d)) = values.next() {
            self.duration = d;
            self.warned = false;
        }
    }

    fn next_audio(&mut self) -> Option<AudioFrame> {
        if self.duration > 0.0 {
            let elapsed = self.played as f64 / f64::from(RATE);
            if elapsed >= self.duration {
                close_stream("the tone has played for its duration");
                return None;
            }
            if !self.warned && elapsed >= self.duration - WARN_BEFORE {
                self.warned = true;
                warn("the tone ends in 1 second");
            }
        }
        self.played += FRAME as u64;
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

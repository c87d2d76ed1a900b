//! Turn-taking: plays each of the caller's utterances back, at an adjustable speed.

use wasmrtc_guest::*;

/// Rate of the utterances the host hands over.
const IN_RATE: u32 = 16_000;
/// Rate of the reply.
const OUT_RATE: u32 = 24_000;
/// Samples of reply per `next_audio` (100 ms), so an interruption drops the rest here.
const CHUNK: usize = OUT_RATE as usize / 10;

struct Parrot {
    speed: f64,
    /// The utterance being played back.
    utterance: Vec<i16>,
    /// Position in `utterance`, in input samples.
    position: f64,
}

impl Default for Parrot {
    fn default() -> Self {
        Parrot {
            speed: 1.0,
            utterance: Vec::new(),
            position: 0.0,
        }
    }
}

impl Parrot {
    /// The sample at fractional position `at`, linearly interpolated.
    fn sample_at(&self, at: f64) -> i16 {
        let i = at as usize;
        let frac = at - i as f64;
        let a = f64::from(self.utterance[i]);
        let b = f64::from(*self.utterance.get(i + 1).unwrap_or(&self.utterance[i]));
        (a + (b - a) * frac).round() as i16
    }
}

impl Handler for Parrot {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
            .sample_rates(IN_RATE, OUT_RATE)
            .input(InputSpec::number(
                "speed",
                "Playback speed",
                Some(0.5),
                Some(2.0),
                1.0,
            ))
            .output(OutputSpec::new(
                "heard",
                "Utterance (s)",
                OutputKind::Number,
            ))
    }

    fn describe_turns() -> Option<TurnTaking> {
        Some(
            TurnTaking::default()
                .pause_ms(500)
                .min_speech_ms(200)
                .max_utterance_ms(15_000)
                .interruptible(true),
        )
    }

    fn set_inputs(&mut self, values: Vec<Value>) {
        self.speed = values
            .first()
            .and_then(Value::as_f64)
            .unwrap_or(1.0)
            .clamp(0.5, 2.0);
    }

    fn on_utterance(&mut self, utterance: AudioFrame) {
        let channels = usize::from(utterance.channels.max(1));
        let seconds =
            utterance.samples.len() as f64 / channels as f64 / f64::from(utterance.sample_rate);
        emit_outputs(&[Value::Number((seconds * 100.0).round() / 100.0)]);
        // Mono, and any rate the host might send is read at its own pace.
        self.utterance = utterance
            .samples
            .iter()
            .step_by(channels)
            .copied()
            .collect();
        self.position = 0.0;
    }

    fn next_audio(&mut self) -> Option<AudioFrame> {
        // Input samples per output sample: the speed, times the rate ratio.
        let step = self.speed * f64::from(IN_RATE) / f64::from(OUT_RATE);
        let last = self.utterance.len().checked_sub(1)? as f64;
        if self.position > last {
            self.utterance.clear();
            return None;
        }
        let mut samples = Vec::with_capacity(CHUNK);
        while samples.len() < CHUNK && self.position <= last {
            samples.push(self.sample_at(self.position));
            self.position += step;
        }
        Some(AudioFrame {
            sample_rate: OUT_RATE,
            channels: 1,
            samples,
        })
    }

    fn on_interrupt(&mut self) {
        self.utterance.clear();
        self.position = 0.0;
    }
}

export_handler!(Parrot);

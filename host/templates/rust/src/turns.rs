//! Turn-taking (FastRTC's `ReplyOnPause`): when the caller pauses, plays their
//! utterance back to them and emits its length.

use wasmrtc_guest::*;

/// Rate of the utterances the host hands over, and of the reply.
const RATE: u32 = 16_000;
/// Samples of reply per `next_audio` (100 ms): an interruption drops the rest here.
const CHUNK: usize = RATE as usize / 10;

#[derive(Default)]
struct Parrot {
    /// The reply still to play.
    reply: Vec<i16>,
    /// Position in `reply`.
    position: usize,
}

impl Handler for Parrot {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
            .sample_rates(RATE, RATE)
            .output(OutputSpec::new("heard", "Utterance (s)", OutputKind::Number))
    }

    fn describe_turns() -> Option<TurnTaking> {
        Some(TurnTaking::default().pause_ms(500).interruptible(true))
    }

    fn on_utterance(&mut self, utterance: AudioFrame) {
        let channels = usize::from(utterance.channels.max(1));
        // Mono: the first channel only.
        self.reply = utterance.samples.iter().step_by(channels).copied().collect();
        self.position = 0;
        let seconds = self.reply.len() as f64 / f64::from(utterance.sample_rate);
        emit_outputs(&[Value::Number((seconds * 100.0).round() / 100.0)]);
    }

    fn next_audio(&mut self) -> Option<AudioFrame> {
        let rest = self.reply.get(self.position..).filter(|r| !r.is_empty())?;
        let samples = rest[..rest.len().min(CHUNK)].to_vec();
        self.position += samples.len();
        Some(AudioFrame {
            sample_rate: RATE,
            channels: 1,
            samples,
        })
    }

    fn on_interrupt(&mut self) {
        self.reply.clear();
        self.position = 0;
    }
}

export_handler!(Parrot);

//! Replies that wait (the `replies` export of WIT 0.1.2), without a network: each
//! reply is "thought about" for a few ticks (`pending`, as a handler waiting on a
//! service would answer), then played as a tone.
//!
//! - on start: a greeting, 800 ms at 440 Hz;
//! - on text: 660 Hz, 200 ms plus 50 ms per character (2 s at most), and the text as
//!   the `said` output;
//! - on each utterance: 330 Hz for 500 ms.

use wasmrtc_guest::*;

const RATE: u32 = 24_000;
/// Samples per reply chunk (100 ms).
const CHUNK: usize = RATE as usize / 10;
/// `next-reply` calls answered `pending` before a reply's audio starts.
const THINKING: u32 = 5;

#[derive(Default)]
struct Greeter {
    /// Pending answers left before the current reply plays.
    thinking: u32,
    /// The current reply's tone: frequency and samples left.
    tone: Option<(f64, usize)>,
    /// Samples of the current reply played.
    played: usize,
}

impl Greeter {
    fn reply(&mut self, hz: f64, ms: usize) -> bool {
        self.thinking = THINKING;
        self.tone = Some((hz, ms * RATE as usize / 1000));
        self.played = 0;
        true
    }
}

impl Handler for Greeter {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Audio, Mode::SendReceive)
            .sample_rates(16_000, RATE)
            .output(OutputSpec::new("said", "You wrote", OutputKind::Text))
    }

    fn describe_turns() -> Option<TurnTaking> {
        Some(TurnTaking::default().pause_ms(500).interruptible(true))
    }

    fn on_start(&mut self) -> bool {
        self.reply(440.0, 800)
    }

    fn on_text(&mut self, text: String) -> bool {
        emit_outputs(&[Value::Text(text.clone())]);
        let ms = (200 + 50 * text.chars().count()).min(2_000);
        self.reply(660.0, ms)
    }

    fn on_utterance(&mut self, _utterance: AudioFrame) {
        self.reply(330.0, 500);
    }

    fn next_reply(&mut self) -> ReplyChunk {
        if self.thinking > 0 {
            self.thinking -= 1;
            return ReplyChunk::Pending;
        }
        let Some((hz, left)) = self.tone.as_mut() else {
            return ReplyChunk::Done;
        };
        if *left == 0 {
            self.tone = None;
            return ReplyChunk::Done;
        }
        let n = CHUNK.min(*left);
        *left -= n;
        let hz = *hz;
        let start = self.played;
        self.played += n;
        let samples = (start..start + n)
            .map(|i| {
                let t = i as f64 / f64::from(RATE);
                (8_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect();
        ReplyChunk::Audio(AudioFrame {
            sample_rate: RATE,
            channels: 1,
            samples,
        })
    }

    fn on_interrupt(&mut self) {
        self.tone = None;
        self.thinking = 0;
    }
}

export_handler!(Greeter);

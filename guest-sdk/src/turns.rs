//! Turn-taking settings with FastRTC-like defaults.

use crate::TurnTaking;

impl Default for TurnTaking {
    /// Reply after 600 ms of silence, count speech from 200 ms, hand over at most 30 s
    /// at once, let the caller interrupt.
    fn default() -> Self {
        TurnTaking {
            pause_ms: 600,
            min_speech_ms: 200,
            max_utterance_ms: 30_000,
            interruptible: true,
        }
    }
}

impl TurnTaking {
    /// Set the silence that ends the caller's turn (100..=5000 ms).
    pub fn pause_ms(mut self, ms: u32) -> Self {
        self.pause_ms = ms;
        self
    }

    /// Set the shortest speech that counts as a turn (16..=2000 ms).
    pub fn min_speech_ms(mut self, ms: u32) -> Self {
        self.min_speech_ms = ms;
        self
    }

    /// Set the longest utterance handed over without waiting for a pause (1000..=60000 ms).
    pub fn max_utterance_ms(mut self, ms: u32) -> Self {
        self.max_utterance_ms = ms;
        self
    }

    /// Set whether the caller's speech cuts a reply.
    pub fn interruptible(mut self, yes: bool) -> Self {
        self.interruptible = yes;
        self
    }
}

//! Turn-taking (FastRTC's `ReplyOnPause`), the same for every transport: voice-activity
//! detection on the client's audio, the caller's utterance collected from the start of
//! speech to the pause, then the handler's reply, which the caller may interrupt.
//!
//! [`Turns`] is the state machine; it takes the client's audio at the handler's input
//! rate and says what happened ([`TurnEvent`]); the session core turns the events into
//! FastRTC's log messages and the `turns` calls.
//!
//! Detection runs `earshot` on 16 ms frames at 16 kHz, with hysteresis: speech starts
//! once frames scoring at least 0.8 outnumber the others by `min-speech-ms` (a gap of
//! [`ONSET_GAP_MS`] starts the count afresh), so noise the detector half believes in
//! never starts a turn, and a turn goes on while frames score at least 0.5; the utterance
//! then reaches back [`PRE_ROLL_MS`] before the first voiced frame, and ends once
//! `pause-ms` of unvoiced frames follow, or at `max-utterance-ms`.

use std::collections::VecDeque;

use crate::media::{MediaError, Resampler};
use crate::runtime::{AudioFrame, TurnTaking};

/// Rate the voice-activity detector works at.
const VAD_RATE: u32 = 16_000;
/// Samples per detector frame (16 ms at 16 kHz).
const VAD_FRAME: usize = 256;
/// Milliseconds per detector frame.
const VAD_FRAME_MS: u32 = 16;
/// Score from which a frame keeps a turn going (earshot's suggested threshold).
const VOICED: f32 = 0.5;
/// Score from which a frame counts towards starting a turn. Higher than [`VOICED`]:
/// codec-coloured noise can hold earshot's score around 0.7 for seconds, while speech
/// sits above 0.8 for most of its frames.
const ONSET_VOICED: f32 = 0.8;
/// Audio kept from before the first voiced frame, so the utterance does not start clipped.
pub const PRE_ROLL_MS: u32 = 300;
/// A gap this long in speech that has not reached `min-speech-ms` yet drops it.
pub const ONSET_GAP_MS: u32 = 240;
/// Longest stretch of an onset kept for the utterance (beyond the pre-roll).
const MAX_ONSET_MS: u32 = 5_000;
/// Audio kept after the last voiced frame, so the utterance does not end clipped.
const TAIL_MS: u32 = 100;

/// What the caller did, as far as the handler's turns go.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEvent {
    /// The caller started talking (FastRTC's `started_talking`).
    StartedTalking,
    /// The caller talked over an interruptible reply: drop the reply.
    Interrupted,
    /// The caller's turn ended (`pause_detected`): the whole utterance.
    Utterance(AudioFrame),
}

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the caller to talk.
    Listening,
    /// The caller is talking; audio goes into the utterance.
    Talking,
    /// The handler's reply is playing; `asking` while `next-audio` has more.
    Replying { asking: bool },
}

/// Speech that has begun but not yet lasted `min-speech-ms`.
#[derive(Debug, Clone, Copy)]
struct Onset {
    voiced_ms: u32,
    gap_ms: u32,
}

/// The turn-taking state machine of one connection.
pub struct Turns {
    settings: TurnTaking,
    /// The handler's input rate: the rate of the audio given to [`Turns::hear`].
    rate: u32,
    to_vad: Resampler,
    vad: Box<earshot::Detector>,
    /// 16 kHz audio waiting for a whole detector frame.
    pending: Vec<i16>,
    phase: Phase,
    /// While listening: the last [`PRE_ROLL_MS`] of audio, plus any onset.
    recent: VecDeque<i16>,
    onset: Option<Onset>,
    /// While talking: the utterance so far.
    utterance: Vec<i16>,
    /// Samples of `utterance` up to the end of the last voiced frame.
    speech_end: usize,
    silence_ms: u32,
}

impl std::fmt::Debug for Turns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turns")
            .field("settings", &self.settings)
            .field("rate", &self.rate)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

fn samples(ms: u32, rate: u32) -> usize {
    (u64::from(ms) * u64::from(rate) / 1000) as usize
}

impl Turns {
    /// A state machine for audio at `rate` Hz (the handler's input rate), mono.
    pub fn new(settings: TurnTaking, rate: u32) -> Result<Self, MediaError> {
        Ok(Self {
            settings,
            rate,
            to_vad: Resampler::new(rate, VAD_RATE, 1)?,
            vad: earshot::Detector::default_boxed(),
            pending: Vec::with_capacity(VAD_FRAME * 4),
            phase: Phase::Listening,
            recent: VecDeque::new(),
            onset: None,
            utterance: Vec::new(),
            speech_end: 0,
            silence_ms: 0,
        })
    }

    /// The settings this machine runs with.
    pub fn settings(&self) -> &TurnTaking {
        &self.settings
    }

    /// Whether the caller is talking now (after `started_talking`, before the pause).
    pub fn is_talking(&self) -> bool {
        self.phase == Phase::Talking
    }

    /// Whether a reply is under way (from the utterance until its playback finished).
    pub fn is_replying(&self) -> bool {
        matches!(self.phase, Phase::Replying { .. })
    }

    /// Whether the session should ask the handler for reply audio (`next-audio`).
    pub fn wants_reply_audio(&self) -> bool {
        self.phase == Phase::Replying { asking: true }
    }

    /// `next-audio` returned nothing: the reply is complete once its audio has played.
    /// `true` when this ends a reply that was asking for audio: the session then
    /// finishes its queued audio (flushed, padded) so all of it plays.
    pub fn reply_complete(&mut self) -> bool {
        if !self.wants_reply_audio() {
            return false;
        }
        self.phase = Phase::Replying { asking: false };
        true
    }

    /// The session's playback queue is empty: `true` once when this ends a complete
    /// reply (send `playback_finished`); the machine listens again.
    pub fn playback_idle(&mut self) -> bool {
        if self.phase != (Phase::Replying { asking: false }) {
            return false;
        }
        if !self.settings.interruptible {
            // The detector did not hear the reply's time: start afresh.
            self.vad.reset();
            self.to_vad.reset();
            self.pending.clear();
            self.recent.clear();
        }
        self.onset = None;
        self.phase = Phase::Listening;
        true
    }

    /// Enter a reply as if an utterance had just ended: a greeting, a reply to text.
    pub(crate) fn begin_reply(&mut self) {
        // Whatever the caller had begun to say is not this reply's question.
        self.utterance.clear();
        self.onset = None;
        self.silence_ms = 0;
        self.phase = Phase::Replying { asking: true };
    }

    /// Take the client's audio (at the handler's input rate, mono) and say what happened.
    pub fn hear(&mut self, frame: &[i16]) -> Result<Vec<TurnEvent>, MediaError> {
        let mut events = Vec::new();
        if self.is_replying() && !self.settings.interruptible {
            // FastRTC ignores the caller while a reply that cannot be cut is playing.
            return Ok(events);
        }
        match self.phase {
            Phase::Talking => self.utterance.extend_from_slice(frame),
            _ => {
                self.recent.extend(frame);
                // Bounded even when an onset neither dies out nor becomes speech.
                let onset = if self.onset.is_some() {
                    MAX_ONSET_MS
                } else {
                    0
                };
                let keep = samples(PRE_ROLL_MS + onset, self.rate);
                let extra = self.recent.len().saturating_sub(keep);
                self.recent.drain(..extra);
            }
        }
        let resampled = self.to_vad.process(frame)?;
        self.pending.extend_from_slice(&resampled);
        let whole = self.pending.len() / VAD_FRAME * VAD_FRAME;
        let mut at = 0;
        while at < whole {
            let score = self.vad.predict_i16(&self.pending[at..at + VAD_FRAME]);
            at += VAD_FRAME;
            self.step(score, &mut events);
        }
        self.pending.drain(..whole);
        Ok(events)
    }

    /// One detector frame with its voice score.
    fn step(&mut self, score: f32, events: &mut Vec<TurnEvent>) {
        match self.phase {
            Phase::Talking => {
                let voiced = score >= VOICED;
                if voiced {
                    self.silence_ms = 0;
                    self.speech_end = self.utterance.len();
                } else {
                    self.silence_ms += VAD_FRAME_MS;
                }
                let too_long =
                    self.utterance.len() >= samples(self.settings.max_utterance_ms, self.rate);
                if self.silence_ms >= self.settings.pause_ms || too_long {
                    let end = if too_long {
                        self.utterance.len()
                    } else {
                        (self.speech_end + samples(TAIL_MS, self.rate)).min(self.utterance.len())
                    };
                    let mut utterance = std::mem::take(&mut self.utterance);
                    utterance.truncate(end);
                    events.push(TurnEvent::Utterance(AudioFrame {
                        sample_rate: self.rate,
                        channels: 1,
                        samples: utterance,
                    }));
                    self.phase = Phase::Replying { asking: true };
                    self.recent.clear();
                    self.onset = None;
                }
            }
            Phase::Listening | Phase::Replying { .. } => {
                let voiced = score >= ONSET_VOICED;
                let onset = match (self.onset, voiced) {
                    (None, false) => return,
                    (None, true) => Onset {
                        voiced_ms: 0,
                        gap_ms: 0,
                    },
                    (Some(o), _) => o,
                };
                let onset = if voiced {
                    Onset {
                        voiced_ms: onset.voiced_ms + VAD_FRAME_MS,
                        gap_ms: 0,
                    }
                } else {
                    // Each unvoiced frame takes one voiced frame back: noise that the
                    // detector now and then finds voiced never adds up to speech.
                    Onset {
                        voiced_ms: onset.voiced_ms.saturating_sub(VAD_FRAME_MS),
                        gap_ms: onset.gap_ms + VAD_FRAME_MS,
                    }
                };
                if onset.gap_ms >= ONSET_GAP_MS {
                    self.onset = None;
                    return;
                }
                self.onset = Some(onset);
                if onset.voiced_ms >= self.settings.min_speech_ms {
                    if self.is_replying() {
                        events.push(TurnEvent::Interrupted);
                    }
                    events.push(TurnEvent::StartedTalking);
                    self.phase = Phase::Talking;
                    self.utterance = self.recent.drain(..).collect();
                    self.speech_end = self.utterance.len();
                    self.silence_ms = 0;
                    self.onset = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    fn settings() -> TurnTaking {
        TurnTaking {
            pause_ms: 400,
            min_speech_ms: 200,
            max_utterance_ms: 5_000,
            interruptible: true,
        }
    }

    /// 20 ms of digital silence.
    fn silence() -> Vec<i16> {
        vec![0; samples(20, RATE)]
    }

    fn feed(turns: &mut Turns, frames: impl IntoIterator<Item = Vec<i16>>) -> Vec<TurnEvent> {
        frames
            .into_iter()
            .flat_map(|f| turns.hear(&f).expect("hear"))
            .collect()
    }

    #[test]
    fn silence_is_no_turn() {
        let mut turns = Turns::new(settings(), RATE).unwrap();
        let events = feed(&mut turns, (0..150).map(|_| silence()));
        assert!(events.is_empty(), "{events:?}");
        assert!(!turns.is_talking() && !turns.is_replying());
    }

    #[test]
    fn sparse_voiced_frames_are_no_turn() {
        let mut turns = Turns::new(settings(), RATE).unwrap();
        let mut events = Vec::new();
        // One voiced frame in three, for ten seconds: what noise looks like at worst.
        for i in 0..625 {
            turns.step(if i % 3 == 0 { 0.9 } else { 0.1 }, &mut events);
        }
        assert!(events.is_empty(), "{events:?}");
        // Voicing that hovers without becoming speech keeps a bounded amount of audio.
        for i in 0..5_000 {
            turns.step(if i % 2 == 0 { 0.9 } else { 0.1 }, &mut events);
            let _ = turns.hear(&silence());
        }
        assert!(events.is_empty(), "{events:?}");
        assert!(turns.recent.len() <= samples(PRE_ROLL_MS + MAX_ONSET_MS, RATE));
        // Noise the detector half believes in, for ten seconds.
        for _ in 0..625 {
            turns.step(0.75, &mut events);
        }
        assert!(events.is_empty(), "{events:?}");
        // Sustained voicing is speech.
        for _ in 0..13 {
            turns.step(0.9, &mut events);
        }
        assert_eq!(events, vec![TurnEvent::StartedTalking]);
    }

    #[test]
    fn reply_lifecycle_is_listen_reply_drain_listen() {
        let mut turns = Turns::new(settings(), RATE).unwrap();
        // Force the phases the detector would reach, to check the reply's bookkeeping.
        turns.phase = Phase::Replying { asking: true };
        assert!(turns.wants_reply_audio());
        assert!(!turns.playback_idle(), "the reply is still being asked for");
        assert!(turns.reply_complete(), "ends the asking");
        assert!(!turns.reply_complete(), "once");
        assert!(!turns.wants_reply_audio() && turns.is_replying());
        assert!(turns.playback_idle(), "complete and played: finished");
        assert!(!turns.playback_idle(), "finished only once");
        assert!(!turns.is_replying());
    }

    #[test]
    fn an_utterance_reaches_back_before_the_speech_and_stops_after_the_pause() {
        let mut turns = Turns::new(settings(), RATE).unwrap();
        let mut events = Vec::new();
        for voiced in [false, true, true, true, false, false, false] {
            turns.step(if voiced { 0.9 } else { 0.1 }, &mut events);
        }
        // min-speech 200 ms needs 13 voiced frames of 16 ms; 3 are not a turn.
        assert!(events.is_empty());
        for _ in 0..13 {
            turns.step(0.9, &mut events);
        }
        assert_eq!(events, vec![TurnEvent::StartedTalking]);
        turns.utterance.extend(vec![1; samples(300, RATE)]);
        for _ in 0..25 {
            turns.step(0.1, &mut events);
        }
        match events.last() {
            Some(TurnEvent::Utterance(u)) => {
                assert_eq!(u.sample_rate, RATE);
                assert!(!u.samples.is_empty());
            }
            other => panic!("no utterance: {other:?}"),
        }
        assert!(turns.wants_reply_audio());
        // Speech over the reply interrupts it.
        events.clear();
        for _ in 0..13 {
            turns.step(0.9, &mut events);
        }
        assert_eq!(
            events,
            vec![TurnEvent::Interrupted, TurnEvent::StartedTalking]
        );
        assert!(turns.is_talking());
    }

    #[test]
    fn a_reply_that_cannot_be_cut_ignores_the_caller() {
        let mut turns = Turns::new(
            TurnTaking {
                interruptible: false,
                ..settings()
            },
            RATE,
        )
        .unwrap();
        turns.phase = Phase::Replying { asking: true };
        let loud: Vec<i16> = (0..samples(20, RATE))
            .map(|i| if i % 2 == 0 { 20_000 } else { -20_000 })
            .collect();
        let events = feed(&mut turns, (0..100).map(|_| loud.clone()));
        assert!(events.is_empty());
        assert!(turns.is_replying());
    }
}

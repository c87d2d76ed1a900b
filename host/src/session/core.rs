//! The session core: one sans-IO state machine per connection, the same for every
//! transport.
//!
//! A [`Core`] knows nothing of sockets, codecs or the sandbox. The transport adapter
//! (WebRTC in `webrtc.rs`, WebSocket and telephone in `websocket.rs`) feeds it what
//! happened, each input stamped with the time it happened at, and then drains what to
//! do with [`Core::poll_action`]:
//!
//! ```text
//!  adapter                          Core                          handler task
//!  client_audio(now, frame) ──▶ ┐                           ┌──▶ Call::Audio
//!  client_video(now, frame) ──▶ │  pacing, playback queue,  │    Call::NextAudio …
//!  set_inputs / client_text ──▶ │  turn-taking, time limit, ├──▶ (the adapter forwards
//!  connected / client_ready ──▶ │  close, message order     │     calls to the task)
//!  handler_reply(now, reply) ─▶ │                           │
//!  handle_timeout(now) ───────▶ ┘                           │
//!        ◀── Action::Message / Audio / Video / Mark / ClearAudio / Close
//! ```
//!
//! Invariants, as in str0m:
//! - **Drain after every input.** Every input may queue actions; the adapter calls
//!   [`Core::poll_action`] until it returns `None` before it waits again, then sleeps
//!   until [`Core::poll_timeout`] (or the next input) and calls
//!   [`Core::handle_timeout`].
//! - **Time is explicit.** The core never reads the clock; `now` comes with every input,
//!   so its unit tests drive it with made-up time.
//! - **The handler is never awaited.** The core hands calls out ([`Action::Call`]) and
//!   takes their results later ([`Core::handler_reply`]); at most [`MAX_IN_FLIGHT`]
//!   calls are outstanding, so the handler task's queue is bounded. Client video is
//!   latest-wins: while a video call is in flight only the newest frame waits, and
//!   replaced frames are counted as dropped. Client audio beyond the bound is dropped
//!   and counted (the WebSocket adapter stops reading instead, see [`Core::backlogged`]).
//! - **After [`Action::Close`] nothing else comes out**, and inputs are ignored.
//!
//! What the core settles once for every transport:
//! - a handler's `close-stream` sends `end_stream`, stops calling the handler, plays out
//!   the audio already queued (at most [`CLOSE_PLAYOUT`]) and then closes;
//! - the time limit warns, then sends `end_stream` and `update_connection: closed`;
//! - `close` from the server (or the host shutting down) sends its message and closes
//!   at once;
//! - a failed call sends the effects raised before the failure, then the `error`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::effects::Effects;
use super::messages;
use super::playback::{FRAME, Playback};
use super::stats;
use super::time_limit::{self, Step, TimeLimit};
use super::turns::{TurnEvent, Turns};
use crate::media::MediaError;
use crate::runtime::{
    AudioFrame, CallError, FailureCause, Modality, Mode, StreamSpec, TurnTaking, Value, VideoFrame,
};

/// Most handler calls outstanding at once (the handler task's queue holds them all).
pub(crate) const MAX_IN_FLIGHT: usize = 48;
/// Longest a handler's `close-stream` waits for queued audio to play out.
pub(crate) const CLOSE_PLAYOUT: Duration = Duration::from_secs(10);
/// A turn-taking reply that has produced no audio for this long warns the client once.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Marks (WebSocket/Twilio) waiting for their audio at once; later ones are dropped.
pub(crate) const MAX_MARKS: usize = 256;
/// Most audio one [`Call::NextAudio`] asks for: it asks for what played since the
/// last ask, so a handler stalled by a slow call refills the queue in one go.
pub(crate) const MAX_AUDIO_BATCH: Duration = Duration::from_millis(500);
/// Longest client text passed to a handler's `on-text` (longer text is only echoed).
pub(crate) const MAX_TEXT_BYTES: usize = 4096;
/// After a gap longer than this, pacing restarts from now instead of bursting.
const MAX_LAG: Duration = Duration::from_millis(200);
/// Why the host is closing every connection.
pub(crate) use crate::lifecycle::SHUTDOWN_REASON as SHUTTING_DOWN;

/// What a connection is, as far as the core goes.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    /// The spec the connection's instance was made from (not the stream's current one).
    pub(crate) spec: StreamSpec,
    /// The handler's turn-taking settings, when it replies to whole utterances.
    pub(crate) turn_taking: Option<TurnTaking>,
    /// Rate of the audio the client is sent ([`Action::Audio`]).
    pub(crate) playback_rate: u32,
    /// Longest the connection may last once up.
    pub(crate) time_limit: Option<Duration>,
    /// A connection that is not up by then is closed.
    pub(crate) connect_timeout: Duration,
    /// The handler exports `replies` (0.1.2): with turn-taking, it is greeted when the
    /// connection starts, told the client's text, and `response_starting` waits for
    /// its reply's first audio.
    pub(crate) replies: bool,
}

/// A call for the handler task to make on the connection's instance.
#[derive(Debug)]
pub(crate) enum Call {
    /// `set-inputs` with the full list.
    SetInputs(Vec<Value>),
    /// `on-audio` with one client frame.
    Audio(AudioFrame),
    /// `on-utterance` with the caller's whole turn.
    Utterance(AudioFrame),
    /// `on-interrupt`: the caller talked over the reply.
    Interrupt,
    /// `next-audio`, repeated until it has returned this much audio or nothing (a
    /// handler behind real time catches up in one call, see [`MAX_AUDIO_BATCH`]).
    NextAudio(Duration),
    /// `next-reply` during a turn-taking reply, repeated as `NextAudio` is until it
    /// has returned this much audio, `pending` or `done` (without the `replies`
    /// export the instance answers it with `next-audio`).
    NextReply(Duration),
    /// `on-start`: the connection is up (and has its first inputs): a greeting?
    Greet,
    /// `on-text` with the client's text: a reply to it?
    Text(String),
    /// `on-video` with one client frame.
    Video(VideoFrame),
    /// `next-video`.
    NextVideo,
}

impl Call {
    /// Which call this is.
    pub(crate) fn kind(&self) -> CallKind {
        match self {
            Call::SetInputs(_) => CallKind::SetInputs,
            Call::Audio(_) => CallKind::Audio,
            Call::Utterance(_) => CallKind::Utterance,
            Call::Interrupt => CallKind::Interrupt,
            Call::NextAudio(_) | Call::NextReply(_) => CallKind::NextAudio,
            Call::Greet => CallKind::Greet,
            Call::Text(_) => CallKind::Text,
            Call::Video(_) => CallKind::Video,
            Call::NextVideo => CallKind::NextVideo,
        }
    }
}

/// Which call a [`Reply`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// The instance's start-up (its events only; it is not a [`Call`]).
    Start,
    /// [`Call::SetInputs`].
    SetInputs,
    /// [`Call::Audio`].
    Audio,
    /// [`Call::Utterance`].
    Utterance,
    /// [`Call::Interrupt`].
    Interrupt,
    /// [`Call::NextAudio`] or [`Call::NextReply`] (both answer with audio).
    NextAudio,
    /// [`Call::Greet`].
    Greet,
    /// [`Call::Text`].
    Text,
    /// [`Call::Video`].
    Video,
    /// [`Call::NextVideo`].
    NextVideo,
}

/// What `next-audio` said.
#[derive(Debug)]
pub(crate) enum NextAudio {
    /// More audio.
    Frame(AudioFrame),
    /// Nothing now, more may come (a turn reply still being made): ask again on the
    /// next tick (`next-reply`'s `pending`).
    Pending,
    /// Nothing more (ends a turn reply).
    Done,
}

/// The result of a call.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The call returns nothing.
    Done,
    /// `next-audio`'s answers, in order: frames, maybe ended by `Pending` or `Done`.
    Audio(Vec<NextAudio>),
    /// `on-video` / `next-video`'s frame, if any.
    Video(Option<VideoFrame>),
    /// `on-start` / `on-text`: whether a reply starts now.
    Began(bool),
}

/// A finished call: what it returned and the effects of the events it raised (outputs
/// are already published by then).
#[derive(Debug)]
pub(crate) struct Reply {
    /// The call answered.
    pub(crate) kind: CallKind,
    /// Its result.
    pub(crate) result: Result<Answer, CallError>,
    /// What its host events mean for the connection.
    pub(crate) effects: Effects,
}

/// Why a connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The handler closed the stream (its queued audio has played).
    HandlerClosed,
    /// A handler call failed (the client got an `error`).
    HandlerFailed(FailureCause),
    /// The stream's time limit.
    TimeLimit,
    /// The connection was not up within the connect timeout.
    ConnectTimeout,
    /// The server closed it (`Stream::close`).
    Requested,
    /// The host is shutting down.
    Shutdown,
}

impl CloseReason {
    /// A short text for logs and close frames.
    pub(crate) fn text(&self) -> &'static str {
        match self {
            CloseReason::HandlerClosed => "the handler closed the stream",
            CloseReason::HandlerFailed(_) => "handler failed",
            CloseReason::TimeLimit => time_limit::REACHED,
            CloseReason::ConnectTimeout => "not connected in time",
            CloseReason::Requested => "closed by the server",
            CloseReason::Shutdown => SHUTTING_DOWN,
        }
    }
}

/// What the adapter is to do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Hand this call to the handler task.
    Call(Call),
    /// Send this FastRTC control message (data channel or WebSocket text).
    Message(String),
    /// Send 20 ms of audio, mono at the playback rate; `position` counts samples of the
    /// playback clock (silences included), e.g. for RTP time.
    Audio {
        /// The samples.
        samples: Vec<i16>,
        /// Where they start on the playback clock.
        position: u64,
    },
    /// Encode and send this frame.
    Video(VideoFrame),
    /// The audio queued before this mark has been sent: answer it.
    Mark(String),
    /// Queued audio was dropped (barge-in); WebSocket clients are told (`clear`).
    ClearAudio,
    /// End the connection; nothing follows.
    Close(CloseReason),
}

/// Counters of one connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CoreStats {
    /// Client video frames replaced by a newer one before the handler saw them.
    pub(crate) video_dropped: u64,
    /// Client audio frames dropped because the handler was too far behind.
    pub(crate) audio_dropped: u64,
    /// Calls handed out.
    pub(crate) calls: u64,
}

/// Audio on its way to the client: the playback queue and its real-time clock.
struct Out {
    playback: Playback,
    /// When the next 20 ms are due; `None` until the first.
    next_send: Option<Instant>,
    /// The playback clock, in samples (silence included).
    position: u64,
    /// Samples of real audio sent (for marks).
    sent: u64,
}

/// The state machine of one connection.
pub(crate) struct Core {
    id: String,
    spec: StreamSpec,
    actions: VecDeque<Action>,
    created: Instant,
    connect_timeout: Duration,
    time_limit_setting: Option<Duration>,
    connected: bool,
    time_limit: Option<TimeLimit>,
    /// Handler audio for the client, once it is known the client takes audio.
    out: Option<Out>,
    playback_rate: u32,
    /// Turn-taking, when the handler asked for it and takes audio.
    turns: Option<Turns>,
    /// Whether the client's audio and video go to the handler.
    takes_audio: bool,
    takes_video: bool,
    /// Whether the handler's video is sent (send-receive and receive).
    gives_video: bool,
    /// The client can take video (a negotiated outgoing track).
    video_out: bool,
    in_flight: usize,
    next_audio_in_flight: bool,
    /// When `next-audio` was last asked.
    last_audio_ask: Option<Instant>,
    /// The `next-audio` in flight was asked before a barge-in: its audio is dropped.
    stale_next_audio: bool,
    /// `next-audio` had nothing: ask again on the next playback tick.
    audio_dry: bool,
    video_in_flight: bool,
    /// The newest client frame waiting for the video call in flight.
    video_waiting: Option<VideoFrame>,
    next_video_in_flight: bool,
    next_video_due: Option<Instant>,
    /// A turn reply that has asked and got nothing since then.
    reply_waiting_since: Option<Instant>,
    reply_warned: bool,
    /// The handler exports `replies`.
    replies: bool,
    /// The keys of the warnings [`Core::warn_once`] has sent.
    warned: std::collections::HashSet<&'static str>,
    /// The greeting (`on-start`) waits for the connection and its first inputs.
    greet_due: bool,
    /// Inputs have been handed to the handler since the connection was made.
    inputs_set: bool,
    /// `response_starting` waits for the reply's first audio (`replies` handlers).
    announce_reply: bool,
    /// Inputs that came while the handler was backlogged.
    inputs_waiting: Option<Vec<Value>>,
    /// The handler closed the stream: play out, then close (by this deadline).
    closing: Option<Instant>,
    closed: bool,
    marks: VecDeque<(u64, String)>,
    stats: CoreStats,
}

impl Core {
    /// The core of connection `id`, created at `now`.
    pub(crate) fn new(id: &str, config: CoreConfig, now: Instant) -> Result<Self, MediaError> {
        let spec = config.spec;
        let audio = spec.modality != Modality::Video;
        let video = spec.modality != Modality::Audio;
        let takes = spec.mode != Mode::Receive;
        let gives = spec.mode != Mode::Send;
        let turns = match config.turn_taking {
            Some(t) if audio && takes => Some(Turns::new(t, spec.input_sample_rate)?),
            _ => None,
        };
        let greet_due = config.replies && turns.is_some();
        Ok(Self {
            id: id.to_string(),
            actions: VecDeque::new(),
            created: now,
            connect_timeout: config.connect_timeout,
            time_limit_setting: config.time_limit,
            connected: false,
            time_limit: None,
            out: None,
            playback_rate: config.playback_rate,
            turns,
            takes_audio: audio && takes,
            takes_video: video && takes,
            gives_video: video && gives,
            video_out: false,
            in_flight: 0,
            next_audio_in_flight: false,
            stale_next_audio: false,
            last_audio_ask: None,
            audio_dry: false,
            video_in_flight: false,
            video_waiting: None,
            next_video_in_flight: false,
            next_video_due: None,
            reply_waiting_since: None,
            reply_warned: false,
            replies: config.replies,
            warned: Default::default(),
            greet_due,
            inputs_set: false,
            announce_reply: false,
            inputs_waiting: None,
            closing: None,
            closed: false,
            marks: VecDeque::new(),
            stats: CoreStats::default(),
            spec,
        })
    }

    /// The next thing to do, if any. Drain it after every input.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Core::handle_timeout`] has something to do next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        if !self.connected {
            at(self.created + self.connect_timeout);
            return wake;
        }
        if let Some(l) = &self.time_limit {
            at(l.next_wake());
        }
        if let Some(out) = &self.out {
            // An idle queue still ticks, so that the next audio starts on time and a
            // dry `next-audio` is asked again.
            if let Some(t) = out.next_send {
                at(t);
            }
        }
        if let Some(t) = self.next_video_due {
            at(t);
        }
        if let Some(t) = self.closing {
            at(t);
        }
        if let Some(t) = self.reply_waiting_since
            && !self.reply_warned
        {
            at(t + REPLY_TIMEOUT);
        }
        wake
    }

    /// Whether the handler is as far behind as the core lets it be: a transport that
    /// can push back (WebSocket) stops reading the client until this clears.
    pub(crate) fn backlogged(&self) -> bool {
        self.in_flight >= MAX_IN_FLIGHT
    }

    /// The connection's counters.
    pub(crate) fn stats(&self) -> CoreStats {
        self.stats
    }

    /// The connection is up (WebRTC: ICE and DTLS; WebSocket: `start`), at `now`.
    /// `audio_out`: the client takes audio; `video_out`: it takes video.
    pub(crate) fn connected(
        &mut self,
        now: Instant,
        audio_out: bool,
        video_out: bool,
    ) -> Result<(), MediaError> {
        if self.closed || self.connected {
            return Ok(());
        }
        self.connected = true;
        self.time_limit = TimeLimit::start(self.time_limit_setting, now);
        let gives_audio = self.spec.modality != Modality::Video && self.spec.mode != Mode::Send;
        if gives_audio && audio_out {
            self.out = Some(Out {
                playback: Playback::new(self.playback_rate),
                next_send: None,
                position: 0,
                sent: 0,
            });
        }
        self.video_out = video_out && self.gives_video;
        if self.video_out && self.spec.mode == Mode::Receive {
            self.next_video_due = Some(now);
        }
        self.handle_timeout(now);
        self.maybe_greet();
        Ok(())
    }

    /// The client can take control messages now (WebRTC: its data channel opened;
    /// WebSocket: right after `start`): ask for its inputs, as FastRTC does.
    pub(crate) fn client_ready(&mut self) {
        if !self.closed && !self.spec.inputs.is_empty() {
            self.message(messages::send_input());
        }
    }

    /// Tell the client something went wrong on the host's side of its media (a
    /// `warning`), once per connection for each `key`.
    pub(crate) fn warn_once(&mut self, key: &'static str, text: &str) {
        if !self.closed && self.warned.insert(key) {
            self.message(messages::warning(text));
        }
    }

    /// Text the client sent on its data channel: echoed as FastRTC does, and passed to
    /// a turn-taking handler that exports `replies` (`on-text`), up to [`MAX_TEXT_BYTES`].
    pub(crate) fn client_text(&mut self, text: &str) {
        if self.closed {
            return;
        }
        self.message(messages::echo(text));
        if !self.replies || self.turns.is_none() || !self.accepting() {
            return;
        }
        if text.len() > MAX_TEXT_BYTES {
            self.message(messages::warning(&format!(
                "Text longer than {MAX_TEXT_BYTES} bytes is not passed to the handler."
            )));
        } else if self.backlogged() {
            self.message(messages::warning(
                "The handler is busy: the text was not passed to it.",
            ));
        } else {
            self.call(Call::Text(text.to_string()));
        }
    }

    /// New input values (the full list) for the handler.
    pub(crate) fn set_inputs(&mut self, values: Vec<Value>) {
        if !self.accepting() {
            return;
        }
        if self.backlogged() {
            // The newest list waits for room (the last update wins).
            self.inputs_waiting = Some(values);
        } else {
            self.call(Call::SetInputs(values));
            self.inputs_set = true;
            self.maybe_greet();
        }
    }

    /// Greet once the connection is up and, when the handler has inputs, has them
    /// (FastRTC's `startup_fn` waits for the client's arguments the same way).
    fn maybe_greet(&mut self) {
        if self.greet_due
            && self.connected
            && self.accepting()
            && (self.spec.inputs.is_empty() || self.inputs_set)
        {
            self.greet_due = false;
            self.call(Call::Greet);
        }
    }

    /// One frame of client audio at the handler's input rate.
    pub(crate) fn client_audio(&mut self, now: Instant, frame: AudioFrame) {
        if !self.accepting() || !self.takes_audio {
            return;
        }
        let Some(turns) = self.turns.as_mut() else {
            if self.backlogged() {
                self.stats.audio_dropped += 1;
                stats::count(stats::Counter::AudioDropped);
            } else {
                self.call(Call::Audio(frame));
            }
            return;
        };
        let events = match stats::time(stats::Stage::Codec, || turns.hear(&frame.samples)) {
            Ok(events) => events,
            Err(e) => {
                tracing::debug!(connection = %self.id, "voice detection failed: {e}");
                return;
            }
        };
        for event in events {
            match event {
                TurnEvent::StartedTalking => self.message(messages::started_talking()),
                TurnEvent::Interrupted => {
                    self.clear_audio();
                    self.reply_waiting_since = None;
                    self.announce_reply = false;
                    self.call(Call::Interrupt);
                }
                TurnEvent::Utterance(utterance) => {
                    self.message(messages::pause_detected());
                    self.reply_waiting_since = None;
                    self.reply_warned = false;
                    self.call(Call::Utterance(utterance));
                }
            }
        }
        self.pump(now);
    }

    /// One frame of client video, decoded to the handler's format.
    pub(crate) fn client_video(&mut self, frame: VideoFrame) {
        if !self.accepting() || !self.takes_video {
            return;
        }
        if self.video_in_flight {
            if self.video_waiting.replace(frame).is_some() {
                self.stats.video_dropped += 1;
                stats::count(stats::Counter::VideoDropped);
            }
        } else {
            self.video_in_flight = true;
            self.call(Call::Video(frame));
        }
    }

    /// A mark (WebSocket/Twilio): answered once the audio queued before it has been sent.
    pub(crate) fn mark(&mut self, name: String) {
        if self.closed {
            return;
        }
        let Some(out) = &self.out else {
            self.actions.push_back(Action::Mark(name));
            return;
        };
        if self.marks.len() >= MAX_MARKS {
            tracing::debug!(connection = %self.id, "too many marks waiting: one dropped");
            return;
        }
        let frame = out.playback.frame_len();
        let at = out.sent + (out.playback.queued_samples() / frame * frame) as u64;
        self.marks.push_back((at, name));
        self.answer_marks();
    }

    /// The server closes the connection (`Stream::close`).
    pub(crate) fn close_requested(&mut self) {
        if !self.closed {
            self.message(messages::connection_closed());
            self.close(CloseReason::Requested);
        }
    }

    /// The host is shutting down: tell the client, then close.
    pub(crate) fn shutdown(&mut self) {
        if !self.closed {
            self.message(messages::end_stream(SHUTTING_DOWN));
            self.message(messages::connection_closed());
            self.close(CloseReason::Shutdown);
        }
    }

    /// A call the adapter handed out has finished.
    pub(crate) fn handler_reply(&mut self, now: Instant, reply: Reply) {
        if self.closed {
            return;
        }
        if reply.kind != CallKind::Start {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        if let Some(values) = self.inputs_waiting.take() {
            self.set_inputs(values);
        }
        match reply.kind {
            CallKind::NextAudio => self.next_audio_in_flight = false,
            CallKind::Video => self.video_in_flight = false,
            CallKind::NextVideo => self.next_video_in_flight = false,
            _ => {}
        }
        self.apply(reply.effects, now);
        let answer = match reply.result {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(connection = %self.id, cause = e.cause().as_str(), "handler failed: {e}");
                self.message(messages::error(&e.to_string()));
                self.close(CloseReason::HandlerFailed(e.cause()));
                return;
            }
        };
        if self.closed {
            return;
        }
        match (reply.kind, answer) {
            (CallKind::NextAudio, Answer::Audio(answers)) => {
                for next in answers {
                    self.next_audio(now, next);
                }
            }
            (CallKind::Utterance, _) => {
                if self.replies {
                    self.announce_reply = true;
                } else {
                    self.message(messages::response_starting());
                }
                self.audio_dry = false;
            }
            (CallKind::Greet | CallKind::Text, Answer::Began(true)) => self.begin_reply(),
            (CallKind::Video, Answer::Video(frame)) => {
                if let Some(f) = frame
                    && self.spec.mode == Mode::SendReceive
                    && self.video_out
                {
                    self.actions.push_back(Action::Video(f));
                }
                if let Some(waiting) = self.video_waiting.take()
                    && self.accepting()
                {
                    self.video_in_flight = true;
                    self.call(Call::Video(waiting));
                }
            }
            (CallKind::NextVideo, Answer::Video(Some(f))) if self.video_out => {
                self.actions.push_back(Action::Video(f));
            }
            _ => self.audio_dry = false,
        }
        self.pump(now);
    }

    /// Timers: connect timeout, time limit, pacing, receive-mode video, close play-out.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if !self.connected {
            if now >= self.created + self.connect_timeout {
                self.message(messages::connection_closed());
                self.close(CloseReason::ConnectTimeout);
            }
            return;
        }
        match self.time_limit.as_mut().and_then(|l| l.check(now)) {
            Some(Step::Expired) => {
                self.message(messages::end_stream(time_limit::REACHED));
                self.message(messages::connection_closed());
                self.close(CloseReason::TimeLimit);
                return;
            }
            Some(Step::Warn(text)) => self.message(text),
            None => {}
        }
        if let Some(t) = self.closing
            && now >= t
        {
            self.close(CloseReason::HandlerClosed);
            return;
        }
        if let Some(since) = self.reply_waiting_since
            && !self.reply_warned
            && now >= since + REPLY_TIMEOUT
        {
            self.reply_warned = true;
            self.message(messages::warning(&format!(
                "The reply is taking longer than {} s.",
                REPLY_TIMEOUT.as_secs()
            )));
        }
        self.send_due_audio(now);
        if let Some(due) = self.next_video_due
            && now >= due
        {
            let period = Duration::from_secs(1) / self.spec.fps.max(1);
            self.next_video_due = Some(if due + period < now {
                now + period
            } else {
                due + period
            });
            if !self.next_video_in_flight && self.accepting() {
                self.next_video_in_flight = true;
                self.call(Call::NextVideo);
            }
        }
        self.pump(now);
    }

    fn accepting(&self) -> bool {
        !self.closed && self.closing.is_none()
    }

    fn message(&mut self, text: String) {
        self.actions.push_back(Action::Message(text));
    }

    fn call(&mut self, call: Call) {
        self.in_flight += 1;
        self.stats.calls += 1;
        self.actions.push_back(Action::Call(call));
    }

    fn close(&mut self, reason: CloseReason) {
        if !self.closed {
            self.closed = true;
            self.actions.push_back(Action::Close(reason));
        }
    }

    /// Carry out the effects of a call: messages, barge-in, close.
    fn apply(&mut self, fx: Effects, now: Instant) {
        for m in fx.messages {
            self.message(m);
        }
        if fx.clear_audio {
            self.clear_audio();
        }
        if fx.close.is_some() && self.closing.is_none() {
            // `end_stream` is among the messages; play out what is queued, then close.
            self.closing = Some(now + CLOSE_PLAYOUT);
        }
    }

    /// A reply the handler started itself (a greeting, a reply to text): one under way
    /// is cut as a barge-in would cut it.
    fn begin_reply(&mut self) {
        let Some(turns) = self.turns.as_mut() else {
            return;
        };
        let cut = turns.is_replying();
        turns.begin_reply();
        if cut {
            self.clear_audio();
        }
        self.announce_reply = true;
        self.audio_dry = false;
        self.reply_waiting_since = None;
        self.reply_warned = false;
    }

    /// `response_starting`, once per reply, when it has its first audio (or ends).
    fn announce(&mut self) {
        if std::mem::take(&mut self.announce_reply) {
            self.message(messages::response_starting());
        }
    }

    fn clear_audio(&mut self) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        out.playback.clear();
        // A `next-audio` asked before the barge-in answers with audio of the old reply.
        self.stale_next_audio = self.next_audio_in_flight;
        self.actions.push_back(Action::ClearAudio);
        // Marks still waiting are answered right after, as Twilio does.
        for (_, name) in std::mem::take(&mut self.marks) {
            self.actions.push_back(Action::Mark(name));
        }
    }

    fn next_audio(&mut self, now: Instant, next: NextAudio) {
        if !matches!(next, NextAudio::Frame(_)) {
            self.stale_next_audio = false;
        }
        match next {
            NextAudio::Frame(_) if std::mem::take(&mut self.stale_next_audio) => {}
            NextAudio::Frame(frame) => {
                self.reply_waiting_since = None;
                self.audio_dry = false;
                self.announce();
                if let Some(out) = self.out.as_mut()
                    && let Err(e) = stats::time(stats::Stage::Codec, || out.playback.push(frame))
                {
                    tracing::debug!(connection = %self.id, "bad handler audio: {e}");
                }
            }
            NextAudio::Pending => {
                self.audio_dry = true;
                if self.turns.as_ref().is_some_and(Turns::wants_reply_audio) {
                    self.reply_waiting_since.get_or_insert(now);
                }
            }
            NextAudio::Done => {
                self.audio_dry = true;
                self.reply_waiting_since = None;
                self.announce();
                self.end_of_reply();
            }
        }
    }

    /// `next-audio` had nothing more: during a turn-taking reply, that completes the
    /// reply (its last audio is queued to play in full).
    fn end_of_reply(&mut self) {
        if self.turns.as_mut().is_some_and(Turns::reply_complete)
            && let Some(out) = self.out.as_mut()
            && let Err(e) = out.playback.finish()
        {
            tracing::debug!(connection = %self.id, "bad handler audio: {e}");
        }
    }

    /// Ask for audio while little is queued; tell when a reply has played; close once
    /// a closing handler's audio has played.
    fn pump(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Some(t) = self.turns.as_mut()
            && self.out.is_none()
            && t.wants_reply_audio()
        {
            // The client takes no audio: the reply has nowhere to play.
            t.reply_complete();
        }
        let wants = self.accepting()
            && self.connected
            && !self.next_audio_in_flight
            && !self.audio_dry
            && !self.backlogged()
            && self.out.as_ref().is_some_and(|o| o.playback.wants_audio())
            && self.turns.as_ref().is_none_or(Turns::wants_reply_audio);
        if wants {
            self.next_audio_in_flight = true;
            let want = self
                .last_audio_ask
                .map_or(FRAME, |t| now.saturating_duration_since(t))
                .clamp(FRAME, MAX_AUDIO_BATCH);
            self.last_audio_ask = Some(now);
            self.call(if self.turns.is_some() {
                Call::NextReply(want)
            } else {
                Call::NextAudio(want)
            });
        }
        let idle = self.out.as_ref().is_none_or(|o| o.playback.is_empty());
        if idle
            && let Some(t) = self.turns.as_mut()
            && t.playback_idle()
        {
            self.message(messages::playback_finished());
        }
        if self.closing.is_some() && idle {
            self.close(CloseReason::HandlerClosed);
        }
    }

    /// Send the audio that is due at `now`, paced in real time.
    fn send_due_audio(&mut self, now: Instant) {
        loop {
            let Some(out) = self.out.as_mut() else {
                return;
            };
            let due = match out.next_send {
                Some(t) if now + MAX_LAG < t => return,
                Some(t) if t + MAX_LAG < now => now,
                Some(t) if t > now => return,
                Some(t) => t,
                None => now,
            };
            // Nothing queued: the clock keeps ticking so the next audio starts on
            // time, and a dry `next-audio` is asked again.
            out.next_send = Some(due + FRAME);
            let position = out.position;
            out.position += out.playback.frame_len() as u64;
            let popped = out.playback.pop();
            if let Some(samples) = &popped {
                out.sent += samples.len() as u64;
            }
            self.audio_dry = false;
            let Some(samples) = popped else {
                return;
            };
            self.actions.push_back(Action::Audio { samples, position });
            self.answer_marks();
        }
    }

    fn answer_marks(&mut self) {
        let sent = self.out.as_ref().map_or(u64::MAX, |o| o.sent);
        while self.marks.front().is_some_and(|(at, _)| *at <= sent) {
            if let Some((_, name)) = self.marks.pop_front() {
                self.actions.push_back(Action::Mark(name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Control, InputSpec, PixelFormat, Slider};

    const RATE: u32 = 16_000;
    const MS: Duration = Duration::from_millis(1);

    fn spec(modality: Modality, mode: Mode) -> StreamSpec {
        StreamSpec {
            modality,
            mode,
            inputs: vec![InputSpec {
                name: "gain".into(),
                label: "Gain".into(),
                control: Control::Slider(Slider {
                    min: 0.0,
                    max: 2.0,
                    step: 0.1,
                    default: 1.0,
                }),
            }],
            outputs: Vec::new(),
            input_sample_rate: RATE,
            output_sample_rate: RATE,
            video_format: PixelFormat::Rgb24,
            fps: 10,
        }
    }

    fn core_with(spec: StreamSpec, time_limit: Option<Duration>, t0: Instant) -> Core {
        let config = CoreConfig {
            spec,
            turn_taking: None,
            playback_rate: RATE,
            time_limit,
            connect_timeout: Duration::from_secs(30),
            replies: false,
        };
        Core::new("c1", config, t0).unwrap()
    }

    fn drain(core: &mut Core) -> Vec<Action> {
        std::iter::from_fn(|| core.poll_action()).collect()
    }

    fn frame(samples: usize) -> AudioFrame {
        AudioFrame {
            sample_rate: RATE,
            channels: 1,
            samples: vec![100; samples],
        }
    }

    fn picture(n: u8) -> VideoFrame {
        VideoFrame {
            width: 2,
            height: 2,
            format: PixelFormat::Rgb24,
            data: vec![n; 12],
            timestamp_us: u64::from(n),
        }
    }

    fn reply(kind: CallKind, answer: Answer) -> Reply {
        Reply {
            kind,
            result: Ok(answer),
            effects: Effects::default(),
        }
    }

    fn with_messages(mut r: Reply, messages: &[String]) -> Reply {
        r.effects.messages = messages.to_vec();
        r
    }

    fn messages(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Message(m) => Some(m.as_str()),
                _ => None,
            })
            .collect()
    }

    fn calls(actions: &[Action]) -> Vec<CallKind> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Call(c) => Some(c.kind()),
                _ => None,
            })
            .collect()
    }

    fn audio_positions(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Audio { position, .. } => Some(*position),
                _ => None,
            })
            .collect()
    }

    fn closes(actions: &[Action]) -> Vec<CloseReason> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Close(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// An echo connection: up, with `send_input` asked.
    fn echo(t0: Instant) -> Core {
        let mut core = core_with(spec(Modality::Audio, Mode::SendReceive), None, t0);
        core.connected(t0, true, false).unwrap();
        core.client_ready();
        let first = drain(&mut core);
        assert_eq!(messages(&first), [messages::send_input()]);
        // Nothing is queued: the handler is asked for audio once.
        assert_eq!(calls(&first), [CallKind::NextAudio]);
        core.handler_reply(
            t0,
            reply(CallKind::NextAudio, Answer::Audio(vec![NextAudio::Done])),
        );
        assert!(
            drain(&mut core).is_empty(),
            "a dry next-audio waits for the tick"
        );
        core
    }

    #[test]
    fn echo_audio_is_paced_one_frame_per_20ms() {
        let t0 = Instant::now();
        let mut core = echo(t0);
        core.client_audio(t0, frame(320));
        assert_eq!(calls(&drain(&mut core)), [CallKind::Audio]);
        core.handler_reply(t0, reply(CallKind::Audio, Answer::Done));
        assert_eq!(calls(&drain(&mut core)), [CallKind::NextAudio]);
        // 60 ms of audio comes back at once.
        core.handler_reply(
            t0,
            reply(
                CallKind::NextAudio,
                Answer::Audio(vec![NextAudio::Frame(frame(960))]),
            ),
        );
        assert!(calls(&drain(&mut core)).is_empty(), "enough is queued");
        let t1 = core.poll_timeout().unwrap();
        assert_eq!(t1, t0 + 20 * MS);
        core.handle_timeout(t1);
        let a = drain(&mut core);
        assert_eq!(
            audio_positions(&a),
            [320],
            "one frame, on the playback clock"
        );
        core.handle_timeout(t1 + 5 * MS);
        assert!(audio_positions(&drain(&mut core)).is_empty(), "not due yet");
        core.handle_timeout(t1 + 40 * MS);
        let a = drain(&mut core);
        assert_eq!(audio_positions(&a), [640, 960], "a late tick catches up");
        assert_eq!(
            calls(&a),
            [CallKind::NextAudio],
            "asks again once the queue runs low"
        );
    }

    #[test]
    fn a_handler_close_plays_out_queued_audio_then_closes() {
        let t0 = Instant::now();
        let mut core = echo(t0);
        core.client_audio(t0, frame(320));
        drain(&mut core);
        let mut r = reply(CallKind::Audio, Answer::Done);
        r.effects.messages.push(messages::end_stream("bye"));
        r.effects.close = Some("bye".into());
        core.handler_reply(t0, r);
        let a = drain(&mut core);
        assert_eq!(messages(&a), [messages::end_stream("bye")]);
        // Nothing was queued: the close is immediate.
        assert_eq!(closes(&a), [CloseReason::HandlerClosed]);

        let mut core = echo(t0);
        core.handle_timeout(t0 + 20 * MS);
        assert_eq!(calls(&drain(&mut core)), [CallKind::NextAudio]);
        let mut r = reply(
            CallKind::NextAudio,
            Answer::Audio(vec![NextAudio::Frame(frame(640))]),
        );
        r.effects.messages.push(messages::end_stream("bye"));
        r.effects.close = Some("bye".into());
        core.handler_reply(t0 + 20 * MS, r);
        let a = drain(&mut core);
        assert_eq!(messages(&a), [messages::end_stream("bye")]);
        assert!(closes(&a).is_empty(), "40 ms are still queued");
        core.client_audio(t0 + 25 * MS, frame(320));
        core.set_inputs(vec![Value::Number(1.0)]);
        assert!(
            calls(&drain(&mut core)).is_empty(),
            "a closing handler gets no more calls"
        );
        // The clock ticked at 0 and 20 ms with nothing queued.
        core.handle_timeout(t0 + 40 * MS);
        assert_eq!(audio_positions(&drain(&mut core)), [640]);
        core.handle_timeout(t0 + 60 * MS);
        let a = drain(&mut core);
        assert_eq!(audio_positions(&a), [960]);
        assert_eq!(closes(&a), [CloseReason::HandlerClosed]);
        core.handle_timeout(t0 + 80 * MS);
        assert!(drain(&mut core).is_empty(), "nothing after the close");
        assert_eq!(core.poll_timeout(), None);
    }

    #[test]
    fn the_time_limit_warns_then_ends_the_stream() {
        let t0 = Instant::now();
        let mut core = core_with(
            spec(Modality::Audio, Mode::Send),
            Some(Duration::from_secs(30)),
            t0,
        );
        core.connected(t0, true, false).unwrap();
        assert!(
            drain(&mut core).is_empty(),
            "a send-only handler is never asked for audio"
        );
        assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(25)));
        core.handle_timeout(t0 + Duration::from_secs(25));
        let a = drain(&mut core);
        assert_eq!(messages(&a).len(), 1);
        assert!(
            messages(&a)[0].contains("closes in 5 s"),
            "{:?}",
            messages(&a)
        );
        core.handle_timeout(t0 + Duration::from_secs(30));
        let a = drain(&mut core);
        assert_eq!(
            messages(&a),
            [
                messages::end_stream(time_limit::REACHED),
                messages::connection_closed()
            ]
        );
        assert_eq!(closes(&a), [CloseReason::TimeLimit]);
    }

    #[test]
    fn server_close_shutdown_and_connect_timeout() {
        let t0 = Instant::now();
        let mut core = echo(t0);
        core.close_requested();
        let a = drain(&mut core);
        assert_eq!(messages(&a), [messages::connection_closed()]);
        assert_eq!(closes(&a), [CloseReason::Requested]);
        core.shutdown();
        assert!(drain(&mut core).is_empty(), "closed once");

        let mut core = echo(t0);
        core.shutdown();
        let a = drain(&mut core);
        assert_eq!(
            messages(&a),
            [
                messages::end_stream(SHUTTING_DOWN),
                messages::connection_closed()
            ]
        );
        assert_eq!(closes(&a), [CloseReason::Shutdown]);

        let mut core = core_with(spec(Modality::Audio, Mode::SendReceive), None, t0);
        assert_eq!(core.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        core.handle_timeout(t0 + Duration::from_secs(29));
        assert!(drain(&mut core).is_empty());
        core.handle_timeout(t0 + Duration::from_secs(30));
        assert_eq!(closes(&drain(&mut core)), [CloseReason::ConnectTimeout]);
    }

    #[test]
    fn client_video_is_latest_wins_while_the_handler_is_busy() {
        let t0 = Instant::now();
        let mut core = core_with(spec(Modality::Video, Mode::SendReceive), None, t0);
        core.connected(t0, false, true).unwrap();
        drain(&mut core);
        for n in 1..=4 {
            core.client_video(picture(n));
        }
        let a = drain(&mut core);
        assert!(matches!(&a[..], [Action::Call(Call::Video(f))] if f.timestamp_us == 1));
        assert_eq!(
            core.stats().video_dropped,
            2,
            "frames 2 and 3 were replaced"
        );
        core.handler_reply(t0, reply(CallKind::Video, Answer::Video(Some(picture(10)))));
        let a = drain(&mut core);
        assert!(
            matches!(&a[..], [Action::Video(out), Action::Call(Call::Video(next))]
                if out.timestamp_us == 10 && next.timestamp_us == 4),
            "{a:?}"
        );
    }

    #[test]
    fn receive_video_is_asked_at_the_specs_fps() {
        let t0 = Instant::now();
        let mut core = core_with(spec(Modality::Video, Mode::Receive), None, t0);
        core.connected(t0, false, true).unwrap();
        assert_eq!(calls(&drain(&mut core)), [CallKind::NextVideo]);
        assert_eq!(core.poll_timeout(), Some(t0 + 100 * MS));
        // Still in flight at the next tick: not asked twice.
        core.handle_timeout(t0 + 100 * MS);
        assert!(calls(&drain(&mut core)).is_empty());
        core.handler_reply(
            t0 + 150 * MS,
            reply(CallKind::NextVideo, Answer::Video(Some(picture(1)))),
        );
        assert!(matches!(&drain(&mut core)[..], [Action::Video(_)]));
        core.handle_timeout(t0 + 200 * MS);
        assert_eq!(calls(&drain(&mut core)), [CallKind::NextVideo]);
    }

    #[test]
    fn a_failed_call_sends_its_effects_then_the_error() {
        let t0 = Instant::now();
        let mut core = echo(t0);
        core.client_audio(t0, frame(320));
        drain(&mut core);
        let err = CallError::WallClock {
            call: "on-audio",
            limit: Duration::from_secs(2),
        };
        let mut r = Reply {
            kind: CallKind::Audio,
            result: Err(err),
            effects: Effects::default(),
        };
        r.effects.messages.push(messages::log("before"));
        core.handler_reply(t0, r);
        let a = drain(&mut core);
        let m = messages(&a);
        assert_eq!(m[0], messages::log("before"));
        assert!(
            m[1].starts_with(r#"{"type": "error", "message": "handler did not return"#),
            "{m:?}"
        );
        assert_eq!(
            closes(&a),
            [CloseReason::HandlerFailed(FailureCause::WallClock)]
        );
    }

    #[test]
    fn a_slow_handler_loses_audio_not_inputs_and_the_last_inputs_win() {
        let t0 = Instant::now();
        let mut core = echo(t0);
        for _ in 0..MAX_IN_FLIGHT + 3 {
            core.client_audio(t0, frame(320));
        }
        assert_eq!(calls(&drain(&mut core)).len(), MAX_IN_FLIGHT);
        assert!(core.backlogged());
        assert_eq!(core.stats().audio_dropped, 3);
        core.set_inputs(vec![Value::Number(0.5)]);
        core.set_inputs(vec![Value::Number(1.5)]);
        assert!(drain(&mut core).is_empty(), "inputs wait for room");
        core.handler_reply(t0, reply(CallKind::Audio, Answer::Done));
        let a = drain(&mut core);
        assert!(
            matches!(&a[..], [Action::Call(Call::SetInputs(v))] if v == &[Value::Number(1.5)]),
            "{a:?}"
        );
    }

    #[test]
    fn barge_in_clears_the_queue_answers_marks_and_drops_stale_audio() {
        let t0 = Instant::now();
        let mut core = echo(t0);
        core.handle_timeout(t0 + 20 * MS);
        drain(&mut core);
        core.handler_reply(
            t0 + 20 * MS,
            reply(
                CallKind::NextAudio,
                Answer::Audio(vec![NextAudio::Frame(frame(960))]),
            ),
        );
        drain(&mut core);
        core.mark("after-60ms".into());
        assert!(drain(&mut core).is_empty(), "the mark waits for its audio");
        core.handle_timeout(t0 + 40 * MS);
        core.handle_timeout(t0 + 60 * MS);
        let a = drain(&mut core);
        assert_eq!(audio_positions(&a).len(), 2);
        assert!(calls(&a).is_empty(), "20 ms are still queued");
        core.client_audio(t0 + 61 * MS, frame(320));
        assert_eq!(calls(&drain(&mut core)), [CallKind::Audio]);
        let mut r = reply(CallKind::Audio, Answer::Done);
        r.effects.clear_audio = true;
        core.handler_reply(t0 + 63 * MS, r);
        let a = drain(&mut core);
        assert!(
            matches!(&a[..2], [Action::ClearAudio, Action::Mark(m)] if m == "after-60ms"),
            "{a:?}"
        );
        // A next-audio asked before a clear answers with audio of the old reply: dropped.
        let t = t0 + 63 * MS;
        assert_eq!(calls(&a), [CallKind::NextAudio]);
        core.client_audio(t, frame(320));
        let mut clear = reply(CallKind::Audio, Answer::Done);
        clear.effects.clear_audio = true;
        drain(&mut core);
        core.handler_reply(t, with_messages(clear, &[]));
        drain(&mut core);
        core.handler_reply(
            t,
            reply(
                CallKind::NextAudio,
                Answer::Audio(vec![NextAudio::Frame(frame(320))]),
            ),
        );
        drain(&mut core);
        core.handle_timeout(t0 + 200 * MS);
        assert!(
            audio_positions(&drain(&mut core)).is_empty(),
            "the stale frame was dropped"
        );
    }

    #[test]
    fn a_pending_turn_reply_is_asked_again_and_warns_after_the_reply_timeout() {
        let t0 = Instant::now();
        let config = CoreConfig {
            spec: spec(Modality::Audio, Mode::SendReceive),
            turn_taking: Some(TurnTaking {
                pause_ms: 400,
                min_speech_ms: 200,
                max_utterance_ms: 5_000,
                interruptible: true,
            }),
            playback_rate: RATE,
            time_limit: None,
            connect_timeout: Duration::from_secs(30),
            replies: false,
        };
        let mut core = Core::new("c1", config, t0).unwrap();
        core.connected(t0, true, false).unwrap();
        assert!(
            calls(&drain(&mut core)).is_empty(),
            "no reply: no next-audio"
        );
        core.turns.as_mut().unwrap().begin_reply();
        core.handle_timeout(t0 + 20 * MS);
        assert_eq!(calls(&drain(&mut core)), [CallKind::NextAudio]);
        core.handler_reply(
            t0 + 20 * MS,
            reply(CallKind::NextAudio, Answer::Audio(vec![NextAudio::Pending])),
        );
        assert!(drain(&mut core).is_empty());
        core.handle_timeout(t0 + 40 * MS);
        assert_eq!(
            calls(&drain(&mut core)),
            [CallKind::NextAudio],
            "asked again on the tick"
        );
        core.handler_reply(
            t0 + 40 * MS,
            reply(CallKind::NextAudio, Answer::Audio(vec![NextAudio::Pending])),
        );
        drain(&mut core);
        let late = t0 + 20 * MS + REPLY_TIMEOUT;
        core.handle_timeout(late);
        let a = drain(&mut core);
        assert!(messages(&a)[0].contains("taking longer"), "{a:?}");
        core.handler_reply(
            late,
            reply(
                CallKind::NextAudio,
                Answer::Audio(vec![NextAudio::Frame(frame(100))]),
            ),
        );
        drain(&mut core);
        core.handle_timeout(late + 20 * MS);
        drain(&mut core);
        core.handler_reply(
            late + 20 * MS,
            reply(CallKind::NextAudio, Answer::Audio(vec![NextAudio::Done])),
        );
        let a = drain(&mut core);
        // The reply's last 100 samples were padded to a frame and play, then it is over.
        core.handle_timeout(late + 40 * MS);
        let b = drain(&mut core);
        assert_eq!(audio_positions(&a).len() + audio_positions(&b).len(), 1);
        let all: Vec<&str> = messages(&a).into_iter().chain(messages(&b)).collect();
        assert_eq!(all, [messages::playback_finished()]);
    }

    #[test]
    fn start_up_effects_and_client_text_come_in_order() {
        let t0 = Instant::now();
        let mut core = core_with(spec(Modality::Audio, Mode::Send), None, t0);
        core.handler_reply(
            t0,
            with_messages(
                reply(CallKind::Start, Answer::Done),
                &[messages::log("hello")],
            ),
        );
        core.client_text("handshake");
        let a = drain(&mut core);
        assert_eq!(
            messages(&a),
            [messages::log("hello"), messages::echo("handshake")]
        );
        core.set_inputs(vec![Value::Number(0.5)]);
        assert_eq!(calls(&drain(&mut core)), [CallKind::SetInputs]);
    }

    /// A turn-taking core whose handler exports `replies`, up and asked for nothing.
    fn replies_core(t0: Instant) -> Core {
        let config = CoreConfig {
            spec: spec(Modality::Audio, Mode::SendReceive),
            turn_taking: Some(TurnTaking {
                pause_ms: 400,
                min_speech_ms: 200,
                max_utterance_ms: 5_000,
                interruptible: true,
            }),
            playback_rate: RATE,
            time_limit: None,
            connect_timeout: Duration::from_secs(30),
            replies: true,
        };
        Core::new("c1", config, t0).unwrap()
    }

    fn reply_asks(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, Action::Call(Call::NextReply(_))))
            .count()
    }

    #[test]
    fn a_replies_handler_is_greeted_after_its_first_inputs_and_announces_with_audio() {
        let t0 = Instant::now();
        let mut core = replies_core(t0);
        core.connected(t0, true, false).unwrap();
        assert!(
            !calls(&drain(&mut core)).contains(&CallKind::Greet),
            "the handler has inputs: the greeting waits for them"
        );
        core.set_inputs(vec![Value::Number(1.0)]);
        assert_eq!(
            calls(&drain(&mut core)),
            [CallKind::SetInputs, CallKind::Greet]
        );
        core.handler_reply(t0, reply(CallKind::SetInputs, Answer::Done));
        core.handler_reply(t0, reply(CallKind::Greet, Answer::Began(true)));
        let a = drain(&mut core);
        assert!(
            messages(&a).is_empty(),
            "response_starting waits for the reply's first audio"
        );
        assert_eq!(reply_asks(&a), 1, "the greeting's audio is asked at once");
        core.handler_reply(
            t0,
            reply(CallKind::NextAudio, Answer::Audio(vec![NextAudio::Pending])),
        );
        core.handle_timeout(t0 + 20 * MS);
        assert_eq!(
            reply_asks(&drain(&mut core)),
            1,
            "pending: asked on the tick"
        );
        core.handler_reply(
            t0 + 20 * MS,
            reply(CallKind::NextAudio, Answer::Audio(vec![NextAudio::Pending])),
        );
        assert!(messages(&drain(&mut core)).is_empty());
        core.handle_timeout(t0 + 40 * MS);
        assert_eq!(reply_asks(&drain(&mut core)), 1, "pending: asked again");
        core.handler_reply(
            t0 + 40 * MS,
            reply(
                CallKind::NextAudio,
                Answer::Audio(vec![NextAudio::Frame(frame(320)), NextAudio::Pending]),
            ),
        );
        assert_eq!(messages(&drain(&mut core)), [messages::response_starting()]);
        // Text while the greeting plays: passed on; the reply to it cuts the greeting.
        core.client_text("what time is it?");
        let a = drain(&mut core);
        assert_eq!(messages(&a), [messages::echo("what time is it?")]);
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Call(Call::Text(t)) if t == "what time is it?")),
            "{a:?}"
        );
        core.handler_reply(t0 + 45 * MS, reply(CallKind::Text, Answer::Began(true)));
        let a = drain(&mut core);
        assert!(a.iter().any(|x| matches!(x, Action::ClearAudio)), "{a:?}");
        core.handle_timeout(t0 + 60 * MS);
        drain(&mut core);
        core.handler_reply(
            t0 + 60 * MS,
            reply(
                CallKind::NextAudio,
                Answer::Audio(vec![NextAudio::Frame(frame(320)), NextAudio::Done]),
            ),
        );
        assert_eq!(
            messages(&drain(&mut core)),
            [messages::response_starting()],
            "each reply is announced once"
        );
    }

    #[test]
    fn text_past_the_bound_is_echoed_with_a_warning_and_not_passed_on() {
        let t0 = Instant::now();
        let mut core = replies_core(t0);
        core.connected(t0, true, false).unwrap();
        drain(&mut core);
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        core.client_text(&long);
        let a = drain(&mut core);
        assert!(calls(&a).is_empty(), "{:?}", calls(&a));
        let m = messages(&a);
        assert_eq!(m[0], messages::echo(&long));
        assert!(m[1].contains("longer than 4096 bytes"), "{m:?}");
        // A handler without `replies` is not told the client's text at all.
        let mut plain = core_with(spec(Modality::Audio, Mode::SendReceive), None, t0);
        plain.connected(t0, true, false).unwrap();
        drain(&mut plain);
        plain.client_text("hi");
        assert!(!calls(&drain(&mut plain)).contains(&CallKind::Text));
    }
}

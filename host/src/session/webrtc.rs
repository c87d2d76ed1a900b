//! The task of one WebRTC connection: drives its peer, runs media through the
//! handler instance, applies inputs, publishes outputs, enforces the time limits.

use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use super::Slot;
use super::audio::{AudioIn, AudioOut};
use super::effects::{self, Effects};
use super::messages;
use super::registry::{Command, Connections, Outputs};
use super::stats::{self, Stage};
use super::time_limit::{self, Step, TimeLimit};
use super::turns::{self, Turns};
use super::video::{Decoded, VideoIn, VideoOut, codec_of};
use crate::runtime::{
    CallError, HandlerInstance, Modality, Mode, StreamSpec, TurnTaking, VideoFrame,
};
use crate::transport::{Peer, PeerEvent};

/// Timing rules of a session.
#[derive(Debug, Clone)]
pub(crate) struct SessionSettings {
    /// A connection that is not up by then is dropped (FastRTC: 30 s).
    pub(crate) connect_timeout: Duration,
    /// Longest a connection may last once up.
    pub(crate) time_limit: Option<Duration>,
}

/// How long an ending session waits for a data channel that is not open yet.
const LINGER: Duration = Duration::from_secs(5);
/// How long an ending session keeps sending so its last messages leave.
const FLUSH: Duration = Duration::from_millis(300);

/// Control messages kept until the data channel opens.
const MAX_PENDING_MESSAGES: usize = 64;

/// Why a session ends.
enum End {
    /// The peer left or failed.
    PeerGone,
    /// The handler failed; the client was told.
    Handler,
    /// The handler closed the stream.
    Closed,
    /// A deadline passed.
    Timeout,
    /// Asked to close.
    Requested,
}

/// One WebRTC connection.
pub(crate) struct WebRtcSession {
    pub(crate) id: String,
    pub(crate) stream: String,
    pub(crate) peer: Peer,
    pub(crate) instance: HandlerInstance,
    pub(crate) spec: StreamSpec,
    /// The handler's turn-taking settings, when it replies to whole utterances.
    pub(crate) turn_taking: Option<TurnTaking>,
    pub(crate) settings: SessionSettings,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) outputs: broadcast::Sender<Outputs>,
    pub(crate) connections: Connections,
    pub(crate) slot: Slot,
    pub(crate) pending: Vec<String>,
}

struct Media {
    audio_in: Option<AudioIn>,
    audio_out: Option<AudioOut>,
    video_in: Option<VideoIn>,
    video_out: Option<VideoOut>,
    next_video: Option<Instant>,
    started: Instant,
    /// Turn-taking, when the handler asked for it.
    turns: Option<Turns>,
}

impl WebRtcSession {
    /// Run until the connection ends, then clean up (the slot is released on return).
    pub(crate) async fn run(mut self) {
        let end = self.serve().await;
        let reason = match end {
            End::PeerGone => "peer left",
            End::Handler => "handler failed",
            End::Closed => "handler closed the stream",
            End::Timeout => "time limit",
            End::Requested => "closed by the server",
        };
        tracing::info!(stream = %self.stream, connection = %self.id, "connection ended: {reason}");
        if matches!(end, End::Requested | End::Timeout) {
            self.send(&messages::connection_closed());
        }
        if !matches!(end, End::PeerGone) {
            self.linger().await;
        }
        self.peer.close();
        self.connections.remove(&self.id);
        drop(self.slot);
    }

    /// Keep the peer going a little after the session ends, so that its last
    /// messages (an error, `end_stream`…) leave; messages raised before the data
    /// channel opened are delivered if it opens within [`LINGER`].
    async fn linger(&mut self) {
        let mut deadline = Instant::now()
            + if self.pending.is_empty() {
                FLUSH
            } else {
                LINGER
            };
        loop {
            let wake = self.peer.poll().min(deadline);
            while let Some(event) = self.peer.next_event() {
                match event {
                    PeerEvent::ChannelOpen => {
                        for m in std::mem::take(&mut self.pending) {
                            self.peer.send_text(&m);
                        }
                        deadline = Instant::now() + FLUSH;
                    }
                    PeerEvent::Closed => return,
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                d = self.peer.recv() => match d {
                    Some(d) => self.peer.receive(d),
                    None => return,
                },
                _ = tokio::time::sleep_until(wake.max(Instant::now()).into()) => {
                    self.peer.timeout(Instant::now());
                }
            }
        }
    }

    fn media(&self) -> Result<Media, crate::media::MediaError> {
        let (sends_audio, _) = self.peer.sends();
        let s = &self.spec;
        let audio = s.modality != Modality::Video;
        let video = s.modality != Modality::Audio;
        let takes = s.mode != Mode::Receive;
        let gives = s.mode != Mode::Send;
        Ok(Media {
            audio_in: if audio && takes {
                Some(AudioIn::new(s.input_sample_rate)?)
            } else {
                None
            },
            audio_out: if audio && gives && sends_audio {
                Some(AudioOut::new()?)
            } else {
                None
            },
            video_in: if video && takes {
                Some(VideoIn::new(s.video_format))
            } else {
                None
            },
            // The outgoing video track's codec, when there is one.
            video_out: match self.peer.video_codec().and_then(codec_of) {
                Some(codec) if video && gives => Some(VideoOut::new(codec, s.fps)),
                _ => None,
            },
            next_video: None,
            started: Instant::now(),
            turns: match self.turn_taking {
                Some(t) if audio && takes => Some(Turns::new(t, s.input_sample_rate)?),
                _ => None,
            },
        })
    }

    async fn serve(&mut self) -> End {
        let mut media = match self.media() {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(connection = %self.id, "media set-up failed: {e}");
                return End::Handler;
            }
        };
        let created = Instant::now();
        let mut connected_at: Option<Instant> = None;
        let mut time_limit: Option<TimeLimit> = None;

        loop {
            let rtc_wake = stats::time(Stage::Transport, || self.peer.poll());
            while let Some(event) = self.peer.next_event() {
                if let Some(end) = self
                    .on_peer_event(event, &mut media, &mut connected_at)
                    .await
                {
                    return end;
                }
            }
            let now = Instant::now();
            let mut wake = rtc_wake;
            match connected_at {
                None => {
                    let deadline = created + self.settings.connect_timeout;
                    if now >= deadline {
                        return End::Timeout;
                    }
                    wake = wake.min(deadline);
                }
                Some(at) => {
                    if time_limit.is_none() {
                        time_limit = TimeLimit::start(self.settings.time_limit, at);
                    }
                    if let Some(limit) = time_limit.as_mut() {
                        match limit.check(now) {
                            Some(Step::Expired) => {
                                self.send(&messages::end_stream(time_limit::REACHED));
                                return End::Timeout;
                            }
                            Some(Step::Warn(text)) => self.send(&text),
                            None => {}
                        }
                        wake = wake.min(limit.next_wake());
                    }
                    if let Some(end) = self.pump(&mut media, now).await {
                        return end;
                    }
                    if let Some(out) = &media.audio_out {
                        wake = wake.min(out.next_due());
                    }
                    if let Some(t) = media.next_video {
                        wake = wake.min(t);
                    }
                }
            }
            tokio::select! {
                d = self.peer.recv() => match d {
                    Some(d) => stats::time(Stage::Transport, || self.peer.receive(d)),
                    None => return End::PeerGone,
                },
                _ = tokio::time::sleep_until(wake.max(Instant::now()).into()) => {
                    stats::time(Stage::Transport, || self.peer.timeout(Instant::now()));
                }
                cmd = self.commands.recv() => match cmd {
                    Some(Command::SetInputs(values)) => {
                        let r = stats::timed(Stage::Handler, self.instance.set_inputs(&values)).await;
                        if let Some(end) = self.after_call(r, &mut media) {
                            return end;
                        }
                    }
                    Some(Command::Candidate(c)) => {
                        if let Err(e) = self.peer.add_remote_candidate(&c) {
                            tracing::debug!(connection = %self.id, "bad candidate: {e}");
                        }
                    }
                    Some(Command::Shutdown) => {
                        self.send(&messages::end_stream(crate::lifecycle::SHUTDOWN_REASON));
                        return End::Requested;
                    }
                    Some(Command::Close) | None => return End::Requested,
                },
            }
        }
    }

    /// Send what is due: handler audio (asking for more while little is queued) and
    /// receive-mode video at the spec's fps.
    async fn pump(&mut self, media: &mut Media, now: Instant) -> Option<End> {
        if media.audio_out.is_some() {
            let mut asks = 0;
            while media.audio_out.as_ref().is_some_and(AudioOut::wants_audio)
                && media.turns.as_ref().is_none_or(Turns::wants_reply_audio)
                && asks < 8
            {
                asks += 1;
                let frame = match stats::timed(Stage::Handler, self.instance.next_audio()).await {
                    Ok(f) => f,
                    Err(e) => return Some(self.fail(e)),
                };
                if let Some(end) = self.handle_events(media) {
                    return Some(end);
                }
                let (Some(f), Some(out)) = (frame, media.audio_out.as_mut()) else {
                    end_of_reply(media);
                    break;
                };
                if let Err(e) = stats::time(Stage::Codec, || out.push(f)) {
                    tracing::debug!("bad handler audio: {e}");
                }
            }
            while let Some(out) = media.audio_out.as_mut() {
                match stats::time(Stage::Codec, || out.due(Instant::now())) {
                    Ok(Some((packet, time))) => {
                        stats::time(Stage::Transport, || self.peer.write_audio(&packet, time))
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!("opus encode failed: {e}");
                        break;
                    }
                }
            }
        }
        if let Some(t) = media.turns.as_mut() {
            if media.audio_out.is_none() {
                // The client takes no audio: the reply has nowhere to play.
                t.reply_complete();
            }
            if media.audio_out.as_ref().is_none_or(AudioOut::is_idle) && t.playback_idle() {
                self.send(&messages::playback_finished());
            }
        }
        if self.spec.mode == Mode::Receive && media.video_out.is_some() {
            let period = Duration::from_secs(1) / self.spec.fps.max(1);
            let due = *media.next_video.get_or_insert(now);
            if now >= due {
                media.next_video = Some(if due + period < now {
                    now + period
                } else {
                    due + period
                });
                let r = stats::timed(Stage::Handler, self.instance.next_video()).await;
                match r {
                    Ok(Some(f)) => self.send_video(media, f, now),
                    Ok(None) => {}
                    Err(e) => return Some(self.fail(e)),
                }
                if let Some(end) = self.handle_events(media) {
                    return Some(end);
                }
            }
        }
        None
    }

    fn send_video(&mut self, media: &mut Media, frame: VideoFrame, now: Instant) {
        let Some(out) = media.video_out.as_mut() else {
            return;
        };
        let rtp_time = (now.duration_since(media.started).as_micros() as u64) * 9 / 100;
        let encoded = stats::time(Stage::Codec, || out.encode(frame));
        match encoded {
            Ok(frames) => {
                let start = Instant::now();
                for f in frames {
                    self.peer.write_video(&f, rtp_time);
                }
                stats::add(Stage::Transport, start);
            }
            Err(e) => tracing::debug!(connection = %self.id, "video encode failed: {e}"),
        }
    }

    async fn on_peer_event(
        &mut self,
        event: PeerEvent,
        media: &mut Media,
        connected_at: &mut Option<Instant>,
    ) -> Option<End> {
        match event {
            PeerEvent::Connected => {
                *connected_at = Some(Instant::now());
                // str0m announces the negotiated tracks (MediaAdded) only once connected.
                if let Ok(m) = self.media() {
                    *media = m;
                }
                tracing::info!(stream = %self.stream, connection = %self.id, "connected");
            }
            PeerEvent::Closed => return Some(End::PeerGone),
            PeerEvent::ChannelOpen => {
                if !self.spec.inputs.is_empty() {
                    self.send(&messages::send_input());
                }
                for m in std::mem::take(&mut self.pending) {
                    self.peer.send_text(&m);
                }
            }
            PeerEvent::ChannelText(text) => {
                self.send(&messages::echo(&text));
            }
            PeerEvent::KeyframeRequest => {
                if let Some(v) = media.video_out.as_mut() {
                    v.force_keyframe();
                }
            }
            PeerEvent::Audio { data, .. } => {
                let input = media.audio_in.as_mut()?;
                let frame = match stats::time(Stage::Codec, || input.frame(&data)) {
                    Ok(Some(f)) => f,
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::debug!("opus decode failed: {e}");
                        return None;
                    }
                };
                if let Some(end) = self.take_audio(frame, media).await {
                    return Some(end);
                }
                return self.pump(media, Instant::now()).await;
            }
            PeerEvent::Video {
                data,
                codec,
                rtp_time,
                contiguous,
            } => {
                let codec = codec_of(codec)?;
                let input = media.video_in.as_mut()?;
                let ts = rtp_time * 100 / 9;
                let decoded =
                    stats::time(Stage::Codec, || input.decode(codec, &data, contiguous, ts));
                match decoded {
                    Err(e) => {
                        tracing::debug!(connection = %self.id, "no {codec:?} decoder: {e}");
                    }
                    Ok(Decoded::Frame(frame)) => {
                        // Backpressure: when more video is already waiting, skip the
                        // handler for this frame (it was decoded to keep the reference).
                        if self.peer.has_queued_video() {
                            return None;
                        }
                        let r = stats::timed(Stage::Handler, self.instance.on_video(&frame)).await;
                        let now = Instant::now();
                        match r {
                            Ok(Some(out)) if self.spec.mode == Mode::SendReceive => {
                                self.send_video(media, out, now)
                            }
                            Ok(_) => {}
                            Err(e) => return Some(self.fail(e)),
                        }
                        return self.handle_events(media);
                    }
                    Ok(Decoded::Nothing) => {}
                    Ok(Decoded::NeedKeyframe) => self.peer.request_keyframe(),
                }
            }
        }
        None
    }

    /// Client audio for the handler: frame by frame, or through turn-taking.
    async fn take_audio(
        &mut self,
        frame: crate::runtime::AudioFrame,
        media: &mut Media,
    ) -> Option<End> {
        let Some(t) = media.turns.as_mut() else {
            let r = stats::timed(Stage::Handler, self.instance.on_audio(&frame)).await;
            return self.after_call(r, media);
        };
        let events = match stats::time(Stage::Codec, || t.hear(&frame.samples)) {
            Ok(events) => events,
            Err(e) => {
                tracing::debug!(connection = %self.id, "voice detection failed: {e}");
                return None;
            }
        };
        for event in events {
            let mut fx = Effects::default();
            let r = stats::timed(
                Stage::Handler,
                turns::respond(
                    event,
                    &mut self.instance,
                    &self.spec,
                    &self.outputs,
                    &mut fx,
                ),
            )
            .await;
            if let Some(end) = self.apply(fx, media) {
                return Some(end);
            }
            if let Err(e) = r {
                return Some(self.fail(e));
            }
        }
        None
    }

    fn after_call(&mut self, r: Result<(), CallError>, media: &mut Media) -> Option<End> {
        match r {
            Ok(()) => self.handle_events(media),
            Err(e) => Some(self.fail(e)),
        }
    }

    /// Act on what the handler raised during its last call.
    fn handle_events(&mut self, media: &mut Media) -> Option<End> {
        let fx = effects::apply(self.instance.take_events(), &self.spec, &self.outputs);
        self.apply(fx, media)
    }

    /// Carry out the effects of handler calls: messages, barge-in, close.
    fn apply(&mut self, fx: Effects, media: &mut Media) -> Option<End> {
        for m in &fx.messages {
            self.send(m);
        }
        if fx.clear_audio
            && let Some(out) = media.audio_out.as_mut()
        {
            out.clear();
        }
        fx.close.map(|_| End::Closed)
    }

    fn fail(&mut self, e: CallError) -> End {
        tracing::warn!(stream = %self.stream, connection = %self.id, cause = e.cause().as_str(), "handler failed: {e}");
        self.send(&messages::error(&e.to_string()));
        End::Handler
    }

    fn send(&mut self, text: &str) {
        // Messages before the channel opens are kept for it.
        if !self.peer.send_text(text)
            && !self.peer.has_channel()
            && self.pending.len() < MAX_PENDING_MESSAGES
        {
            self.pending.push(text.to_string());
        }
    }
}

/// `next-audio` had nothing more: during a turn-taking reply, that completes the reply
/// (its last audio is queued to play in full).
fn end_of_reply(media: &mut Media) {
    if media.turns.as_mut().is_some_and(Turns::reply_complete)
        && let Some(out) = media.audio_out.as_mut()
        && let Err(e) = out.finish()
    {
        tracing::debug!("bad handler audio: {e}");
    }
}

//! The WebRTC adapter: one task per connection between its str0m [`Peer`] and its
//! [`Core`]. It decodes the client's Opus and video, feeds the core, and carries out
//! what the core says (Opus out, video out, data-channel messages, close). The handler
//! runs on its own task ([`HandlerTask`]); video decoding and encoding run on the codec
//! pool ([`offload`]), one job each at a time, so nothing here waits on either.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::audio::{AudioIn, AudioOut};
use super::core::{Action, CloseReason, Core};
use super::handler_task::HandlerTask;
use super::registry::{Command, Registration};
use super::stats::{self, Counter, Stage};
use super::video::{Decoded, MaxPicture, VideoIn, VideoOut, codec_of, offload};
use crate::lifecycle::Lifecycle;
use crate::media::{MediaError, VideoCodec};
use crate::runtime::{Modality, Mode, StreamSpec, VideoFrame};
use crate::transport::{Peer, PeerEvent, Route};

/// How long an ending session waits for a data channel that is not open yet.
const LINGER: Duration = Duration::from_secs(5);
/// How long an ending session keeps sending so its last messages leave.
const FLUSH: Duration = Duration::from_millis(300);
/// Control messages kept until the data channel opens.
const MAX_PENDING_MESSAGES: usize = 64;
/// Encoded client frames waiting for the decoder; beyond this the backlog is dropped
/// and the decoder waits for a keyframe.
const MAX_DECODE_BACKLOG: usize = 8;

type Job<T> = Pin<Box<dyn Future<Output = Option<T>> + Send>>;
/// What an encode job gives: the encoded units and the frame's RTP time.
type Encoded = (Result<Vec<Vec<u8>>, MediaError>, u64);

/// How a session ended.
enum End {
    /// The core closed it.
    Core(CloseReason),
    /// The peer left or failed.
    PeerGone,
    /// The handler task ended without a reply (a host bug).
    HandlerGone,
}

/// One WebRTC connection.
pub(crate) struct WebRtcSession {
    pub(crate) id: String,
    pub(crate) stream: String,
    pub(crate) peer: Peer,
    pub(crate) core: Core,
    pub(crate) handler: HandlerTask,
    pub(crate) spec: StreamSpec,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) lifecycle: Lifecycle,
    /// libvpx speed of outgoing VP8 (the host's setting).
    pub(crate) vp8_cpu_used: i32,
    /// The largest client picture decoded (the host's setting).
    pub(crate) max_picture: MaxPicture,
    /// Dropped when the session ends, on every path.
    pub(crate) registration: Registration,
}

/// Messages before the data channel opens are kept for it.
struct Channel {
    pending: Vec<String>,
}

impl Channel {
    fn send(&mut self, peer: &mut Peer, text: String) {
        if !peer.send_text(&text)
            && !peer.has_channel()
            && self.pending.len() < MAX_PENDING_MESSAGES
        {
            self.pending.push(text);
        }
    }

    fn flush(&mut self, peer: &mut Peer) {
        for m in std::mem::take(&mut self.pending) {
            peer.send_text(&m);
        }
    }
}

/// Client video on its way to the handler: encoded frames waiting, one decode at a time.
struct VideoInPipe {
    decoder: Arc<Mutex<VideoIn>>,
    backlog: VecDeque<(VideoCodec, Vec<u8>, bool, u64)>,
    job: Option<Job<Result<Decoded, MediaError>>>,
    /// Frames were dropped: the next one does not follow the last decoded.
    gap: bool,
}

/// Handler video on its way to the client: one encode at a time, latest wins.
struct VideoOutPipe {
    encoder: Arc<Mutex<VideoOut>>,
    waiting: Option<(VideoFrame, u64)>,
    job: Option<Job<Encoded>>,
    keyframe: bool,
}

/// The media state of a session.
struct Media {
    audio_in: Option<AudioIn>,
    audio_out: Option<AudioOut>,
    video_in: Option<VideoInPipe>,
    video_out: Option<VideoOutPipe>,
    started: Instant,
}

async fn next<T>(job: &mut Option<Job<T>>) -> Option<T> {
    match job {
        Some(j) => {
            let r = j.as_mut().await;
            *job = None;
            r
        }
        None => std::future::pending().await,
    }
}

impl WebRtcSession {
    /// Run until the connection ends, then clean up.
    pub(crate) async fn run(mut self) {
        let mut channel = Channel {
            pending: Vec::new(),
        };
        let end = self.serve(&mut channel).await;
        let reason = match &end {
            End::Core(r) => r.text(),
            End::PeerGone => "peer left",
            End::HandlerGone => "handler task ended",
        };
        if matches!(end, End::Core(CloseReason::ConnectTimeout)) {
            stats::count(Counter::IceTimeout);
            let why = if self.peer.heard_from_client() {
                "the client's packets arrived but the connection did not come up (DTLS or ICE failed)"
            } else {
                "no packet from the client reached the media port: its network may block UDP, or it needs a TURN relay (see `[ice]`)"
            };
            tracing::warn!(stream = %self.stream, connection = %self.id, "ICE did not complete: {why}");
        }
        let counts = self.core.stats();
        tracing::info!(stream = %self.stream, connection = %self.id, calls = counts.calls, video_dropped = counts.video_dropped, audio_dropped = counts.audio_dropped, "connection ended: {reason}");
        if !matches!(end, End::PeerGone) {
            self.linger(&mut channel).await;
        }
        self.peer.close();
        drop(self.registration);
    }

    /// Keep the peer going a little after the session ends, so that its last
    /// messages (an error, `end_stream`…) leave; messages raised before the data
    /// channel opened are delivered if it opens within [`LINGER`].
    async fn linger(&mut self, channel: &mut Channel) {
        let mut deadline = Instant::now()
            + if channel.pending.is_empty() {
                FLUSH
            } else {
                LINGER
            };
        loop {
            let wake = self.peer.poll().min(deadline);
            while let Some(event) = self.peer.next_event() {
                match event {
                    PeerEvent::ChannelOpen => {
                        channel.flush(&mut self.peer);
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

    fn media(&self) -> Result<Media, MediaError> {
        let s = &self.spec;
        let takes = s.mode != Mode::Receive;
        Ok(Media {
            audio_in: if s.modality != Modality::Video && takes {
                Some(AudioIn::new(s.input_sample_rate)?)
            } else {
                None
            },
            audio_out: None,
            video_in: (s.modality != Modality::Audio && takes).then(|| VideoInPipe {
                decoder: Arc::new(Mutex::new(VideoIn::new(s.video_format, self.max_picture))),
                backlog: VecDeque::new(),
                job: None,
                gap: false,
            }),
            video_out: None,
            started: Instant::now(),
        })
    }

    async fn serve(&mut self, channel: &mut Channel) -> End {
        let mut media = match self.media() {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(connection = %self.id, "media set-up failed: {e}");
                return End::Core(CloseReason::Requested);
            }
        };
        let draining = self.lifecycle.draining();
        tokio::pin!(draining);
        loop {
            stats::time(Stage::Transport, || self.peer.poll());
            while let Some(event) = self.peer.next_event() {
                if let Some(end) = self.on_peer_event(event, &mut media, channel) {
                    return end;
                }
            }
            if let Some(end) = self.carry_out(&mut media, channel) {
                return end;
            }
            let rtc_wake = stats::time(Stage::Transport, || self.peer.poll());
            let wake = self
                .core
                .poll_timeout()
                .map_or(rtc_wake, |t| t.min(rtc_wake));
            let decoding = media.video_in.as_mut().map(|v| &mut v.job);
            let encoding = media.video_out.as_mut().map(|v| &mut v.job);
            tokio::select! {
                d = self.peer.recv() => match d {
                    Some(d) => stats::time(Stage::Transport, || self.peer.receive(d)),
                    None => return End::PeerGone,
                },
                _ = tokio::time::sleep_until(wake.max(Instant::now()).into()) => {
                    let now = Instant::now();
                    stats::time(Stage::Transport, || self.peer.timeout(now));
                    self.core.handle_timeout(now);
                }
                reply = self.handler.reply() => match reply {
                    Some(r) => self.core.handler_reply(Instant::now(), r),
                    None => return End::HandlerGone,
                },
                cmd = self.commands.recv() => match cmd {
                    Some(Command::SetInputs(values)) => self.core.set_inputs(values),
                    Some(Command::Candidate(c)) => {
                        if let Err(e) = self.peer.add_remote_candidate(&c) {
                            tracing::debug!(connection = %self.id, "bad candidate: {e}");
                        }
                    }
                    Some(Command::Shutdown) => self.core.shutdown(),
                    Some(Command::Close) | None => self.core.close_requested(),
                },
                () = &mut draining => self.core.shutdown(),
                decoded = next_opt(decoding) => self.on_decoded(decoded, &mut media),
                encoded = next_opt(encoding) => self.on_encoded(encoded, &mut media),
            }
        }
    }

    /// Carry out what the core says, until it has nothing more.
    fn carry_out(&mut self, media: &mut Media, channel: &mut Channel) -> Option<End> {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Call(call) => self.handler.call(call),
                Action::Message(text) => channel.send(&mut self.peer, text),
                Action::Audio { samples, position } => {
                    let Some(out) = media.audio_out.as_mut() else {
                        continue;
                    };
                    match stats::time(Stage::Codec, || out.encode(&samples)) {
                        Ok(packet) => stats::time(Stage::Transport, || {
                            self.peer.write_audio(&packet, position)
                        }),
                        Err(e) => tracing::debug!("opus encode failed: {e}"),
                    }
                }
                Action::Video(frame) => {
                    let rtp_time = (media.started.elapsed().as_micros() as u64) * 9 / 100;
                    if let Some(out) = media.video_out.as_mut() {
                        if out.waiting.replace((frame, rtp_time)).is_some() {
                            stats::count(Counter::VideoEncodeDropped);
                        }
                        start_encode(out);
                    }
                }
                Action::Mark(_) | Action::ClearAudio => {}
                Action::Close(reason) => return Some(End::Core(reason)),
            }
        }
        None
    }

    fn on_decoded(&mut self, decoded: Option<Result<Decoded, MediaError>>, media: &mut Media) {
        let Some(pipe) = media.video_in.as_mut() else {
            return;
        };
        match decoded {
            Some(Ok(Decoded::Frame(frame))) => self.core.client_video(frame),
            Some(Ok(Decoded::Nothing)) => {}
            Some(Ok(Decoded::NeedKeyframe)) => self.peer.request_keyframe(),
            Some(Ok(Decoded::TooLarge { width, height })) => {
                stats::count(Counter::VideoTooLarge);
                let max = self.max_picture;
                self.core.warn_once(
                    "video_size",
                    &format!(
                        "Video of {width}x{height} is larger than this host decodes ({}x{}): send a smaller picture.",
                        max.width, max.height
                    ),
                );
            }
            Some(Err(e)) => tracing::debug!(connection = %self.id, "no video decoder: {e}"),
            None => {
                // The pool refused the job: the frame is lost, start over at a keyframe.
                stats::count(Counter::VideoDecodeDropped);
                pipe.gap = true;
                self.peer.request_keyframe();
            }
        }
        start_decode(pipe);
    }

    fn on_encoded(&mut self, encoded: Option<Encoded>, media: &mut Media) {
        let Some(out) = media.video_out.as_mut() else {
            return;
        };
        match encoded {
            Some((Ok(frames), rtp_time)) => {
                let start = Instant::now();
                for f in frames {
                    self.peer.write_video(&f, rtp_time);
                }
                stats::add(Stage::Transport, start);
            }
            Some((Err(e), _)) => {
                tracing::debug!(connection = %self.id, "video encode failed: {e}")
            }
            None => stats::count(Counter::VideoEncodeDropped),
        }
        start_encode(out);
    }

    fn on_peer_event(
        &mut self,
        event: PeerEvent,
        media: &mut Media,
        channel: &mut Channel,
    ) -> Option<End> {
        match event {
            PeerEvent::Connected => {
                // str0m announces the negotiated tracks (MediaAdded) only once connected.
                let (sends_audio, _) = self.peer.sends();
                if sends_audio {
                    match AudioOut::new() {
                        Ok(out) => media.audio_out = Some(out),
                        Err(e) => tracing::error!(connection = %self.id, "opus: {e}"),
                    }
                }
                let gives_video =
                    self.spec.modality != Modality::Audio && self.spec.mode != Mode::Send;
                media.video_out = match self.peer.video_codec().and_then(codec_of) {
                    Some(codec) if gives_video => Some(VideoOutPipe {
                        encoder: Arc::new(Mutex::new(VideoOut::new(
                            codec,
                            self.spec.fps,
                            self.vp8_cpu_used,
                        ))),
                        waiting: None,
                        job: None,
                        keyframe: false,
                    }),
                    _ => None,
                };
                let now = Instant::now();
                if let Err(e) =
                    self.core
                        .connected(now, media.audio_out.is_some(), media.video_out.is_some())
                {
                    tracing::error!(connection = %self.id, "media set-up failed: {e}");
                }
                let route = self.peer.route();
                stats::count(match route {
                    Route::Host => Counter::IceHost,
                    Route::ServerReflexive => Counter::IceServerReflexive,
                    Route::PeerReflexive => Counter::IcePeerReflexive,
                    Route::Relay => Counter::IceRelay,
                });
                let protocol = if self.peer.over_tcp() {
                    stats::count(Counter::IceOverTcp);
                    "tcp"
                } else {
                    "udp"
                };
                tracing::info!(stream = %self.stream, connection = %self.id, candidate = route.as_str(), protocol, "connected");
            }
            PeerEvent::Closed => return Some(End::PeerGone),
            PeerEvent::ChannelOpen => {
                // `send_input` first, then what was raised before the channel opened.
                self.core.client_ready();
                if let Some(end) = self.carry_out(media, channel) {
                    channel.flush(&mut self.peer);
                    return Some(end);
                }
                channel.flush(&mut self.peer);
            }
            PeerEvent::ChannelText(text) => self.core.client_text(&text),
            PeerEvent::KeyframeRequest => {
                if let Some(v) = media.video_out.as_mut() {
                    v.keyframe = true;
                }
            }
            PeerEvent::Audio { data, .. } => {
                let input = media.audio_in.as_mut()?;
                match stats::time(Stage::Codec, || input.frame(&data)) {
                    Ok(Some(frame)) => self.core.client_audio(Instant::now(), frame),
                    Ok(None) => {}
                    Err(e) => tracing::debug!("opus decode failed: {e}"),
                }
            }
            PeerEvent::Video {
                data,
                codec,
                rtp_time,
                contiguous,
            } => {
                let codec = codec_of(codec)?;
                let pipe = media.video_in.as_mut()?;
                if pipe.backlog.len() >= MAX_DECODE_BACKLOG {
                    // The decoder is behind: drop what waits, restart at a keyframe.
                    for _ in pipe.backlog.drain(..) {
                        stats::count(Counter::VideoDecodeDropped);
                    }
                    pipe.gap = true;
                    self.peer.request_keyframe();
                }
                let contiguous = contiguous && !std::mem::take(&mut pipe.gap);
                pipe.backlog
                    .push_back((codec, data, contiguous, rtp_time * 100 / 9));
                start_decode(pipe);
            }
        }
        None
    }
}

async fn next_opt<T>(job: Option<&mut Option<Job<T>>>) -> Option<T> {
    match job {
        Some(j) => next(j).await,
        None => std::future::pending().await,
    }
}

/// Start decoding the oldest waiting frame, unless a decode is under way.
fn start_decode(pipe: &mut VideoInPipe) {
    if pipe.job.is_some() {
        return;
    }
    let Some((codec, data, contiguous, ts)) = pipe.backlog.pop_front() else {
        return;
    };
    let decoder = pipe.decoder.clone();
    pipe.job = Some(offload(move || {
        let mut d = decoder.lock().unwrap_or_else(|e| e.into_inner());
        stats::time(Stage::Codec, || d.decode(codec, &data, contiguous, ts))
    }));
}

/// Start encoding the newest handler frame, unless an encode is under way.
fn start_encode(out: &mut VideoOutPipe) {
    if out.job.is_some() {
        return;
    }
    let Some((frame, rtp_time)) = out.waiting.take() else {
        return;
    };
    let encoder = out.encoder.clone();
    let keyframe = std::mem::take(&mut out.keyframe);
    out.job = Some(offload(move || {
        let mut e = encoder.lock().unwrap_or_else(|e| e.into_inner());
        if keyframe {
            e.force_keyframe();
        }
        (stats::time(Stage::Codec, || e.encode(frame)), rtp_time)
    }));
}

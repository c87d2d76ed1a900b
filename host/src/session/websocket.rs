//! The task of one WebSocket connection, for both of FastRTC's flavours: audio over
//! `WS /websocket/offer` and Twilio Media Streams over `WS /telephone/handler`.
//!
//! The task is independent of the WebSocket library: it reads [`WsIn`] frames from a
//! stream and writes [`WsOut`] frames to a sink (the HTTP layer adapts axum's socket).
//! It admits the connection on `start` through the stream's admission controller,
//! registers it so the input and output hooks reach it, runs its audio through its own
//! handler instance, paces the output in real time in 20 ms chunks, and enforces the
//! stream's time limit. Every way out drops the registration and the slot.
//!
//! Wire formats:
//! - WebSocket (FastRTC): base64 8-bit μ-law mono at the handler's input rate in and its
//!   output rate out. Opt-in raw PCM: `"format": "pcm16"` (base64 little-endian i16)
//!   and/or `"sample_rate": N` (8000..=48000, both directions) in `start` or in the URL
//!   query (`?format=pcm16&sample_rate=16000`); `start` wins. The host resamples.
//! - Telephone (Twilio): base64 μ-law at 8 kHz both ways, `streamSid` on every message.
//!
//! Beyond FastRTC: `mark` is answered with the same mark once the audio queued before
//! it has been sent (Twilio's semantics, measured on the host's playback queue), and
//! when the handler calls `clear-audio` the queued audio is dropped and the client is
//! told with `{"event":"clear"}` (plus `streamSid` on the telephone); marks still
//! waiting are answered right after, as Twilio does.

use std::collections::VecDeque;
use std::fmt::Display;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{Sink, SinkExt, Stream as FrameStream, StreamExt};
use serde_json::{Map, Value as Json};
use tokio::sync::{broadcast, mpsc};

use super::effects::{self, Effects};
use super::playback::Playback;
use super::registry::{Command, Connections, Outputs};
use super::stats::{self, Stage};
use super::time_limit::{self, Step, TimeLimit};
use super::turns::{self, Turns};
use super::{Slot, messages};
use crate::Stream;
use crate::media::{MediaError, Resampler, mulaw};
use crate::runtime::{AudioFrame, CallError, HandlerInstance, Modality, Mode, StreamSpec};
use crate::stream::Refusal;

/// Largest text frame the session accepts, in bytes (the transport may cut off larger
/// frames earlier, with an error).
pub(crate) const MAX_MESSAGE: usize = 1 << 20;
/// Longest a connection may stay open without sending `start`, at most.
const MAX_START_WAIT: Duration = Duration::from_secs(30);
/// A client that does not take a frame within this is gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the client's answer to our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Longest connection id accepted (`websocket_id` or `streamSid`).
const MAX_ID: usize = 256;
/// One output chunk.
const FRAME: Duration = Duration::from_millis(20);
/// After a gap longer than this, pacing restarts from now instead of bursting.
const MAX_LAG: Duration = Duration::from_millis(200);
/// Twilio Media Streams carry 8 kHz μ-law.
const TELEPHONE_RATE: u32 = 8_000;

/// WebSocket close codes.
mod close {
    pub(super) const NORMAL: u16 = 1000;
    pub(super) const GOING_AWAY: u16 = 1001;
    pub(super) const UNSUPPORTED_DATA: u16 = 1003;
    pub(super) const POLICY: u16 = 1008;
    pub(super) const INTERNAL: u16 = 1011;
    pub(super) const TRY_AGAIN_LATER: u16 = 1013;
}

/// A frame from the client, as the transport delivers it. The end of the stream means
/// the client closed the socket or went away.
#[derive(Debug)]
pub(crate) enum WsIn {
    /// A text frame.
    Text(String),
    /// A binary frame of this many bytes (never accepted).
    Binary(usize),
    /// The transport could not read a frame (too large, protocol error…).
    Error(String),
}

/// A frame to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WsOut {
    /// A text frame.
    Text(String),
    /// A close frame; nothing is sent after it.
    Close {
        /// The close code.
        code: u16,
        /// A short reason (at most 123 bytes).
        reason: String,
    },
}

/// Which protocol the socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// FastRTC's `/websocket/offer`.
    WebSocket,
    /// Twilio Media Streams on `/telephone/handler`.
    Telephone,
}

/// The audio format asked for in the URL query (WebSocket flavour).
#[derive(Debug, Clone, Default)]
pub(crate) struct FormatRequest {
    /// `format`: `mulaw` (default) or `pcm16`.
    pub(crate) format: Option<String>,
    /// `sample_rate` in Hz.
    pub(crate) sample_rate: Option<String>,
}

/// How a session ends.
#[derive(Debug)]
enum End {
    /// Send a close frame with this code and reason.
    Close(u16, String),
    /// The client is gone; nothing more can be sent.
    Gone,
}

type Flow = Result<(), End>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    MuLaw,
    Pcm16,
}

/// The audio format on the wire.
#[derive(Debug, Clone, Copy)]
struct Wire {
    encoding: Encoding,
    in_rate: u32,
    out_rate: u32,
}

impl Encoding {
    fn decode(self, bytes: &[u8]) -> Result<Vec<i16>, String> {
        match self {
            Encoding::MuLaw => Ok(mulaw::decode_slice(bytes)),
            Encoding::Pcm16 => {
                if !bytes.len().is_multiple_of(2) {
                    return Err(format!(
                        "pcm16 payload has an odd number of bytes ({})",
                        bytes.len()
                    ));
                }
                Ok(bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect())
            }
        }
    }

    fn encode(self, samples: &[i16]) -> Vec<u8> {
        match self {
            Encoding::MuLaw => mulaw::encode_slice(samples),
            Encoding::Pcm16 => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
        }
    }
}

/// Client audio to handler frames.
struct WireIn {
    encoding: Encoding,
    resampler: Resampler,
    /// Samples per handler frame (20 ms at the handler's rate).
    chunk: usize,
}

impl WireIn {
    fn new(wire: Wire, handler_rate: u32) -> Result<Self, MediaError> {
        Ok(Self {
            encoding: wire.encoding,
            resampler: Resampler::new(wire.in_rate, handler_rate, 1)?,
            chunk: (handler_rate as usize / 50).max(1),
        })
    }

    /// Frames of at most 20 ms for the handler (none while the resampler fills up).
    fn frames(&mut self, payload: &[u8]) -> Result<Vec<AudioFrame>, String> {
        let pcm = self.encoding.decode(payload)?;
        let samples = self.resampler.process(&pcm).map_err(|e| e.to_string())?;
        let rate = self.resampler.to_rate();
        Ok(samples
            .chunks(self.chunk)
            .map(|c| AudioFrame {
                sample_rate: rate,
                channels: 1,
                samples: c.to_vec(),
            })
            .collect())
    }
}

/// Handler audio to paced 20 ms chunks on the wire.
struct WireOut {
    encoding: Encoding,
    playback: Playback,
    next_send: Option<Instant>,
    /// Samples ever sent (for marks).
    sent_total: u64,
}

impl WireOut {
    fn new(wire: Wire) -> Self {
        Self {
            encoding: wire.encoding,
            playback: Playback::new(wire.out_rate),
            next_send: None,
            sent_total: 0,
        }
    }

    /// Whether less than one chunk is queued, so the handler should be asked for more.
    fn wants_audio(&self) -> bool {
        self.playback.wants_audio()
    }

    /// Queue handler audio of any rate and channel count.
    fn push(&mut self, frame: AudioFrame) -> Result<(), MediaError> {
        self.playback.push(frame)
    }

    /// Drop everything queued (barge-in).
    fn clear(&mut self) {
        self.playback.clear();
    }

    /// The end of a reply: queue what the resampler holds, pad to a whole chunk.
    fn finish(&mut self) -> Result<(), MediaError> {
        self.playback.finish()
    }

    /// Where a mark placed now falls: after the whole chunks queued (a partial chunk
    /// waits for more audio, so a mark does not wait for it).
    fn mark_position(&self) -> u64 {
        let frame = self.playback.frame_len();
        self.sent_total + (self.playback.queued_samples() / frame * frame) as u64
    }

    fn is_empty(&self) -> bool {
        self.playback.is_empty()
    }

    /// When the next chunk is due.
    fn next_due(&self) -> Instant {
        self.next_send.unwrap_or_else(Instant::now)
    }

    /// The next chunk, encoded, if one is queued and due at `now`.
    fn due(&mut self, now: Instant) -> Option<Vec<u8>> {
        let due = match self.next_send {
            Some(t) if now + MAX_LAG < t => return None,
            Some(t) if t + MAX_LAG < now => now,
            Some(t) if t > now => return None,
            Some(t) => t,
            None => now,
        };
        // Nothing queued: keep the clock ticking so the next audio starts on time.
        self.next_send = Some(due + FRAME);
        let pcm = self.playback.pop()?;
        self.sent_total += pcm.len() as u64;
        Some(self.encoding.encode(&pcm))
    }
}

/// Removes the connection from the registry when dropped, on every exit path.
struct Registration {
    connections: Connections,
    id: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.remove(&self.id);
    }
}

/// A connection after `start`: admitted, registered, with its handler instance.
struct Live {
    id: String,
    instance: HandlerInstance,
    spec: StreamSpec,
    commands: mpsc::Receiver<Command>,
    outputs: broadcast::Sender<Outputs>,
    input: Option<WireIn>,
    output: Option<WireOut>,
    /// Turn-taking, when the handler asked for it.
    turns: Option<Turns>,
    time_limit: Option<TimeLimit>,
    /// The handler closed the stream: play out what is queued, then close.
    closing: bool,
    /// Marks waiting for the audio queued before them: (samples sent by then, name).
    marks: VecDeque<(u64, String)>,
    // Dropped last: the registry entry, then the slot.
    _registration: Registration,
    _slot: Slot,
}

/// The sending half, which knows how to address the client.
struct Tx<O> {
    sink: O,
    flavour: Flavour,
    /// The telephone's `streamSid`, quoted as JSON, once known.
    sid: Option<String>,
}

impl<O> Tx<O>
where
    O: Sink<WsOut> + Unpin,
    O::Error: Display,
{
    async fn text(&mut self, text: String) -> Flow {
        match tokio::time::timeout(SEND_TIMEOUT, self.sink.send(WsOut::Text(text))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!("websocket send failed: {e}");
                Err(End::Gone)
            }
            Err(_) => {
                tracing::debug!("websocket client stopped reading");
                Err(End::Gone)
            }
        }
    }

    /// `{"event":EVENT,["streamSid":…,]REST}` where `rest` is `,"key":value…` or empty.
    async fn event(&mut self, event: &str, rest: &str) -> Flow {
        let text = match (&self.sid, self.flavour) {
            (Some(sid), Flavour::Telephone) => {
                format!(r#"{{"event":"{event}","streamSid":{sid}{rest}}}"#)
            }
            _ => format!(r#"{{"event":"{event}"{rest}}}"#),
        };
        self.text(text).await
    }

    async fn media(&mut self, bytes: &[u8]) -> Flow {
        let payload = stats::time(Stage::Transport, || BASE64.encode(bytes));
        let rest = format!(r#","media":{{"payload":"{payload}"}}"#);
        self.event("media", &rest).await
    }

    async fn mark(&mut self, name: &str) -> Flow {
        let rest = format!(r#","mark":{{"name":{}}}"#, quote(name));
        self.event("mark", &rest).await
    }

    /// Tell the client what was wrong, then close with `code`.
    async fn reject(&mut self, code: u16, message: &str) -> End {
        tracing::debug!("websocket rejected: {message}");
        match self.text(messages::error(message)).await {
            Ok(()) => End::Close(code, message.to_string()),
            Err(end) => end,
        }
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// One WebSocket connection of `stream`.
pub(crate) struct WsSession<I, O> {
    stream: Stream,
    flavour: Flavour,
    request: FormatRequest,
    incoming: I,
    tx: Tx<O>,
    live: Option<Live>,
}

impl<I, O> WsSession<I, O>
where
    I: FrameStream<Item = WsIn> + Unpin,
    O: Sink<WsOut> + Unpin,
    O::Error: Display,
{
    pub(crate) fn new(
        stream: Stream,
        flavour: Flavour,
        request: FormatRequest,
        incoming: I,
        outgoing: O,
    ) -> Self {
        Self {
            stream,
            flavour,
            request,
            incoming,
            tx: Tx {
                sink: outgoing,
                flavour,
                sid: None,
            },
            live: None,
        }
    }

    /// Serve the connection until it ends; the slot and the registration are released
    /// before the close frame goes out.
    pub(crate) async fn run(mut self) {
        let end = self.serve().await;
        if let Some(live) = self.live.take() {
            tracing::info!(stream = %self.stream.name(), connection = %live.id, flavour = ?self.flavour, "connection ended: {end:?}");
            drop(live);
        }
        if let End::Close(code, mut reason) = end {
            // A close reason is at most 123 bytes.
            if reason.len() > 123 {
                let mut cut = 120;
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                reason.truncate(cut);
                reason.push_str("...");
            }
            let frame = WsOut::Close { code, reason };
            if let Ok(Ok(())) = tokio::time::timeout(CLOSE_WAIT, self.tx.sink.send(frame)).await {
                // Wait for the client's close frame, discarding whatever it still sends.
                let _ = tokio::time::timeout(CLOSE_WAIT, async {
                    while self.incoming.next().await.is_some() {}
                })
                .await;
            }
        }
    }

    async fn serve(&mut self) -> End {
        let start_deadline =
            Instant::now() + self.stream.config().connect_timeout.min(MAX_START_WAIT);
        loop {
            let wake = self.next_wake(start_deadline);
            let step = tokio::select! {
                frame = self.incoming.next() => match frame {
                    Some(frame) => self.on_frame(frame).await,
                    None => Err(End::Gone),
                },
                cmd = next_command(&mut self.live) => self.on_command(cmd).await,
                _ = tokio::time::sleep_until(wake.into()) => self.tick(start_deadline).await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    fn next_wake(&self, start_deadline: Instant) -> Instant {
        let Some(live) = &self.live else {
            return start_deadline;
        };
        let mut wake = Instant::now() + Duration::from_secs(3600);
        if let Some(limit) = &live.time_limit {
            wake = wake.min(limit.next_wake());
        }
        if let Some(out) = &live.output {
            wake = wake.min(out.next_due());
        }
        wake
    }

    /// Timers: the wait for `start`, the time limit, output pacing.
    async fn tick(&mut self, start_deadline: Instant) -> Flow {
        let now = Instant::now();
        let Some(live) = self.live.as_mut() else {
            if now >= start_deadline {
                return Err(self
                    .tx
                    .reject(close::POLICY, "no start event in time")
                    .await);
            }
            return Ok(());
        };
        match live.time_limit.as_mut().and_then(|l| l.check(now)) {
            Some(Step::Expired) => {
                self.tx
                    .text(messages::end_stream(time_limit::REACHED))
                    .await?;
                self.tx.text(messages::connection_closed()).await?;
                return Err(End::Close(close::NORMAL, time_limit::REACHED.into()));
            }
            Some(Step::Warn(text)) => self.tx.text(text).await?,
            None => {}
        }
        self.pump().await
    }

    async fn on_command(&mut self, cmd: Option<Command>) -> Flow {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        match cmd {
            Some(Command::SetInputs(values)) => {
                let r = stats::timed(Stage::Handler, live.instance.set_inputs(&values)).await;
                self.after_call(r).await
            }
            Some(Command::Candidate(_)) => Ok(()),
            Some(Command::Shutdown) => {
                let reason = crate::lifecycle::SHUTDOWN_REASON;
                self.tx.text(messages::end_stream(reason)).await?;
                self.tx.text(messages::connection_closed()).await?;
                Err(End::Close(close::GOING_AWAY, reason.into()))
            }
            Some(Command::Close) | None => {
                self.tx.text(messages::connection_closed()).await?;
                Err(End::Close(close::NORMAL, "closed by the server".into()))
            }
        }
    }

    async fn on_frame(&mut self, frame: WsIn) -> Flow {
        let text = match frame {
            WsIn::Text(text) => text,
            WsIn::Binary(len) => {
                return Err(self
                    .tx
                    .reject(
                        close::UNSUPPORTED_DATA,
                        &format!("binary frame ({len} bytes) where a JSON text frame was expected"),
                    )
                    .await);
            }
            WsIn::Error(e) => {
                return Err(self
                    .tx
                    .reject(close::POLICY, &format!("unreadable frame: {e}"))
                    .await);
            }
        };
        if text.len() > MAX_MESSAGE {
            return Err(self
                .tx
                .reject(
                    close::POLICY,
                    &format!(
                        "message of {} bytes is larger than the limit of {MAX_MESSAGE} bytes",
                        text.len()
                    ),
                )
                .await);
        }
        let msg = match serde_json::from_str::<Json>(&text) {
            Ok(Json::Object(map)) => map,
            Ok(_) => {
                return Err(self
                    .tx
                    .reject(close::POLICY, "frame is not a JSON object")
                    .await);
            }
            Err(e) => {
                return Err(self
                    .tx
                    .reject(close::POLICY, &format!("frame is not JSON: {e}"))
                    .await);
            }
        };
        let Some(event) = msg.get("event").and_then(Json::as_str) else {
            return Err(self
                .tx
                .reject(close::POLICY, "frame has no string \"event\" field")
                .await);
        };
        match event {
            "media" => self.on_media(&msg).await,
            "start" => self.on_start(&msg).await,
            "ping" => self.tx.event("pong", "").await,
            "mark" => self.on_mark(&msg).await,
            "stop" => Err(End::Close(close::NORMAL, "stopped by the client".into())),
            // `connected`, `dtmf` and anything newer: nothing to do.
            other => {
                tracing::trace!("ignored websocket event {other:?}");
                Ok(())
            }
        }
    }

    /// The wire format: Twilio's, or FastRTC's with the client's opt-ins.
    fn wire(&self, start: &Map<String, Json>, spec: &StreamSpec) -> Result<Wire, String> {
        if self.flavour == Flavour::Telephone {
            return Ok(Wire {
                encoding: Encoding::MuLaw,
                in_rate: TELEPHONE_RATE,
                out_rate: TELEPHONE_RATE,
            });
        }
        let format = match start.get("format") {
            None | Some(Json::Null) => self.request.format.clone(),
            Some(Json::String(s)) => Some(s.clone()),
            Some(other) => return Err(format!("\"format\" must be a string, not {other}")),
        };
        let encoding = match format.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("mulaw" | "ulaw" | "pcmu" | "mu-law") => Encoding::MuLaw,
            Some("pcm16" | "s16le" | "linear16") => Encoding::Pcm16,
            Some(other) => {
                return Err(format!(
                    "unknown format {other:?}: expected \"mulaw\" or \"pcm16\""
                ));
            }
        };
        let rate = match start.get("sample_rate") {
            None | Some(Json::Null) => self.request.sample_rate.clone(),
            Some(Json::Number(n)) => Some(n.to_string()),
            Some(Json::String(s)) => Some(s.clone()),
            Some(other) => return Err(format!("\"sample_rate\" must be a number, not {other}")),
        };
        let rate = match rate {
            None => None,
            Some(r) => match r.trim().parse::<u32>() {
                Ok(r) if (8_000..=48_000).contains(&r) => Some(r),
                _ => {
                    return Err(format!(
                        "sample_rate {r:?} is not a whole number of Hz in 8000..=48000"
                    ));
                }
            },
        };
        Ok(Wire {
            encoding,
            in_rate: rate.unwrap_or(spec.input_sample_rate),
            out_rate: rate.unwrap_or(spec.output_sample_rate),
        })
    }

    /// `start`: admit, register, instantiate.
    async fn on_start(&mut self, msg: &Map<String, Json>) -> Flow {
        if self.live.is_some() {
            return Err(self
                .tx
                .reject(close::POLICY, "start sent twice on one connection")
                .await);
        }
        let id = match self.flavour {
            Flavour::WebSocket => msg.get("websocket_id").and_then(Json::as_str),
            Flavour::Telephone => msg
                .get("start")
                .and_then(|s| s.get("streamSid"))
                .and_then(Json::as_str)
                .or_else(|| msg.get("streamSid").and_then(Json::as_str)),
        };
        let field = match self.flavour {
            Flavour::WebSocket => "websocket_id",
            Flavour::Telephone => "streamSid",
        };
        let id = match id {
            Some(id) if !id.is_empty() && id.len() <= MAX_ID => id.to_string(),
            Some(_) => {
                return Err(self
                    .tx
                    .reject(
                        close::POLICY,
                        &format!("start: {field} must be 1 to {MAX_ID} bytes"),
                    )
                    .await);
            }
            None => {
                return Err(self
                    .tx
                    .reject(close::POLICY, &format!("start has no string {field}"))
                    .await);
            }
        };
        let component = self.stream.component();
        let spec = component.spec().clone();
        if spec.modality == Modality::Video {
            return Err(self
                .tx
                .reject(
                    close::POLICY,
                    "this stream is video only; WebSocket and telephone connections carry audio",
                )
                .await);
        }
        let wire = match self.wire(msg, &spec) {
            Ok(w) => w,
            Err(e) => return Err(self.tx.reject(close::POLICY, &e).await),
        };
        if self.flavour == Flavour::Telephone {
            self.tx.sid = Some(quote(&id));
        }

        let inner = &self.stream.inner;
        let slot = match self.stream.admit() {
            Ok(slot) => slot,
            Err(Refusal::Failing(left)) => {
                let message = crate::runtime::breaker::refusal_message(left);
                self.tx
                    .text(
                        serde_json::json!({"status": "failed", "meta": {"error": "handler_unavailable", "message": message}})
                            .to_string(),
                    )
                    .await?;
                return Err(End::Close(close::TRY_AGAIN_LATER, message));
            }
            Err(Refusal::Limit(e)) => {
                self.tx
                    .text(format!(
                        r#"{{"status":"failed","meta":{{"error":"concurrency_limit_reached","limit":{}}}}}"#,
                        e.limit
                    ))
                    .await?;
                return Err(End::Close(
                    close::NORMAL,
                    "concurrency limit reached".into(),
                ));
            }
        };
        let (handle, commands) = self.stream.new_handle(&spec);
        let outputs = handle.outputs.clone();
        if inner.connections.insert(&id, handle).is_err() {
            self.tx
                .text(r#"{"status":"failed","meta":{"error":"connection_already_exists"}}"#.into())
                .await?;
            return Err(End::Close(
                close::NORMAL,
                "connection already exists".into(),
            ));
        }
        let registration = Registration {
            connections: inner.connections.clone(),
            id: id.clone(),
        };
        let instance = match component.instantiate(&id).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(stream = %inner.name, connection = %id, "handler failed to start: {e}");
                return Err(self.tx.reject(close::INTERNAL, &e.to_string()).await);
            }
        };
        let takes = spec.mode != Mode::Receive;
        let gives = spec.mode != Mode::Send;
        let input = if takes {
            match WireIn::new(wire, spec.input_sample_rate) {
                Ok(i) => Some(i),
                Err(e) => return Err(self.tx.reject(close::INTERNAL, &e.to_string()).await),
            }
        } else {
            None
        };
        let output = gives.then(|| WireOut::new(wire));
        let turns = match component.turn_taking() {
            Some(t) if takes => match Turns::new(*t, spec.input_sample_rate) {
                Ok(t) => Some(t),
                Err(e) => return Err(self.tx.reject(close::INTERNAL, &e.to_string()).await),
            },
            _ => None,
        };
        tracing::info!(stream = %inner.name, connection = %id, flavour = ?self.flavour, ?wire, "websocket started");
        let ask_inputs = self.flavour == Flavour::WebSocket && !spec.inputs.is_empty();
        self.live = Some(Live {
            id,
            instance,
            spec,
            commands,
            outputs,
            input,
            output,
            turns,
            time_limit: TimeLimit::start(self.stream.config().time_limit, Instant::now()),
            closing: false,
            marks: VecDeque::new(),
            _registration: registration,
            _slot: slot,
        });
        if ask_inputs {
            self.tx.text(messages::send_input()).await?;
        }
        // Events of the start-up calls (set-inputs to the defaults).
        self.handle_events().await
    }

    async fn on_media(&mut self, msg: &Map<String, Json>) -> Flow {
        let Some(payload) = msg
            .get("media")
            .and_then(|m| m.get("payload"))
            .and_then(Json::as_str)
        else {
            return Err(self
                .tx
                .reject(close::POLICY, "media has no string media.payload")
                .await);
        };
        let bytes = match stats::time(Stage::Transport, || BASE64.decode(payload)) {
            Ok(b) => b,
            Err(e) => {
                return Err(self
                    .tx
                    .reject(
                        close::POLICY,
                        &format!("media.payload is not valid base64: {e}"),
                    )
                    .await);
            }
        };
        let Some(live) = self.live.as_mut() else {
            return Err(self.tx.reject(close::POLICY, "media before start").await);
        };
        if live.closing {
            return Ok(());
        }
        let Some(input) = live.input.as_mut() else {
            // A receive-only handler takes no audio.
            return Ok(());
        };
        let frames = match stats::time(Stage::Codec, || input.frames(&bytes)) {
            Ok(f) => f,
            Err(e) => return Err(self.tx.reject(close::POLICY, &e).await),
        };
        for frame in frames {
            self.take_audio(frame).await?;
        }
        self.pump().await
    }

    /// Client audio for the handler: frame by frame, or through turn-taking.
    async fn take_audio(&mut self, frame: AudioFrame) -> Flow {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        let Some(t) = live.turns.as_mut() else {
            let r = stats::timed(Stage::Handler, live.instance.on_audio(&frame)).await;
            return self.after_call(r).await;
        };
        let events = match stats::time(Stage::Codec, || t.hear(&frame.samples)) {
            Ok(events) => events,
            Err(e) => {
                tracing::debug!(connection = %live.id, "voice detection failed: {e}");
                return Ok(());
            }
        };
        for event in events {
            let Some(live) = self.live.as_mut() else {
                return Ok(());
            };
            let mut fx = Effects::default();
            let r = stats::timed(
                Stage::Handler,
                turns::respond(
                    event,
                    &mut live.instance,
                    &live.spec,
                    &live.outputs,
                    &mut fx,
                ),
            )
            .await;
            self.apply(fx).await?;
            if let Err(e) = r {
                return Err(self.fail(e).await);
            }
        }
        Ok(())
    }

    async fn on_mark(&mut self, msg: &Map<String, Json>) -> Flow {
        let Some(name) = msg
            .get("mark")
            .and_then(|m| m.get("name"))
            .and_then(Json::as_str)
        else {
            tracing::debug!("mark without a name ignored");
            return Ok(());
        };
        let Some(live) = self.live.as_mut() else {
            return self.tx.mark(name).await;
        };
        let at = live.output.as_ref().map_or(0, WireOut::mark_position);
        live.marks.push_back((at, name.to_string()));
        self.send_marks().await
    }

    /// Answer the marks whose audio has all been sent.
    async fn send_marks(&mut self) -> Flow {
        loop {
            let Some(live) = self.live.as_mut() else {
                return Ok(());
            };
            let sent = live.output.as_ref().map_or(u64::MAX, |o| o.sent_total);
            match live.marks.front() {
                Some((at, _)) if *at <= sent => {}
                _ => return Ok(()),
            }
            if let Some((_, name)) = live.marks.pop_front() {
                self.tx.mark(&name).await?;
            }
        }
    }

    /// Ask the handler for audio while little is queued, and send what is due.
    async fn pump(&mut self) -> Flow {
        let mut asks = 0;
        loop {
            let Some(live) = self.live.as_mut() else {
                return Ok(());
            };
            let wants = !live.closing
                && live.output.as_ref().is_some_and(WireOut::wants_audio)
                && live.turns.as_ref().is_none_or(Turns::wants_reply_audio);
            if !wants || asks >= 8 {
                break;
            }
            asks += 1;
            let frame = match stats::timed(Stage::Handler, live.instance.next_audio()).await {
                Ok(f) => f,
                Err(e) => return Err(self.fail(e).await),
            };
            self.handle_events().await?;
            let Some(frame) = frame else {
                if let Some(live) = self.live.as_mut() {
                    live.end_of_reply();
                }
                break;
            };
            if let Some(out) = self.live.as_mut().and_then(|l| l.output.as_mut())
                && let Err(e) = stats::time(Stage::Codec, || out.push(frame))
            {
                tracing::debug!("bad handler audio: {e}");
            }
        }
        while let Some(out) = self.live.as_mut().and_then(|l| l.output.as_mut()) {
            let Some(chunk) = stats::time(Stage::Codec, || out.due(Instant::now())) else {
                break;
            };
            self.tx.media(&chunk).await?;
            self.send_marks().await?;
        }
        let finished = self.live.as_mut().is_some_and(|live| {
            let idle = live.output.as_ref().is_none_or(WireOut::is_empty);
            live.turns.as_mut().is_some_and(|t| {
                if live.output.is_none() {
                    // The client takes no audio: the reply has nowhere to play.
                    t.reply_complete();
                }
                idle && t.playback_idle()
            })
        });
        if finished {
            self.tx.text(messages::playback_finished()).await?;
        }
        match &self.live {
            Some(live) if live.closing && live.output.as_ref().is_none_or(WireOut::is_empty) => {
                Err(End::Close(
                    close::NORMAL,
                    "the handler closed the stream".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    async fn after_call(&mut self, r: Result<(), CallError>) -> Flow {
        match r {
            Ok(()) => self.handle_events().await,
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// Act on what the handler raised during its last call.
    async fn handle_events(&mut self) -> Flow {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        let fx = effects::apply(live.instance.take_events(), &live.spec, &live.outputs);
        self.apply(fx).await
    }

    /// Carry out the effects of handler calls: messages, barge-in (with `clear`), close.
    async fn apply(&mut self, fx: Effects) -> Flow {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        if fx.close.is_some() {
            live.closing = true;
        }
        let clear = fx.clear_audio && live.output.is_some();
        if let (true, Some(out)) = (clear, live.output.as_mut()) {
            out.clear();
        }
        for m in fx.messages {
            self.tx.text(m).await?;
        }
        if clear {
            self.tx.event("clear", "").await?;
            // The audio before the waiting marks is gone: answer them now.
            let marks = self
                .live
                .as_mut()
                .map(|l| std::mem::take(&mut l.marks))
                .unwrap_or_default();
            for (_, name) in marks {
                self.tx.mark(&name).await?;
            }
        }
        match &self.live {
            Some(live) if live.closing && live.output.is_none() => Err(End::Close(
                close::NORMAL,
                "the handler closed the stream".into(),
            )),
            _ => Ok(()),
        }
    }

    async fn fail(&mut self, e: CallError) -> End {
        if let Some(live) = &self.live {
            tracing::warn!(stream = %self.stream.name(), connection = %live.id, cause = e.cause().as_str(), "handler failed: {e}");
        }
        match self.tx.text(messages::error(&e.to_string())).await {
            Ok(()) => End::Close(close::INTERNAL, "handler failed".into()),
            Err(end) => end,
        }
    }
}

impl Live {
    /// `next-audio` had nothing more: during a turn-taking reply, that completes the
    /// reply (its last audio is queued to play in full).
    fn end_of_reply(&mut self) {
        if self.turns.as_mut().is_some_and(Turns::reply_complete)
            && let Some(out) = self.output.as_mut()
            && let Err(e) = out.finish()
        {
            tracing::debug!("bad handler audio: {e}");
        }
    }
}

/// The next command for a live connection; never resolves before `start`.
async fn next_command(live: &mut Option<Live>) -> Option<Command> {
    match live {
        Some(live) => live.commands.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(rate: u32, n: usize) -> AudioFrame {
        AudioFrame {
            sample_rate: rate,
            channels: 1,
            samples: vec![1000; n],
        }
    }

    #[tokio::test]
    async fn telephone_messages_carry_the_stream_sid() {
        let (sink, mut sent) = futures::channel::mpsc::unbounded::<WsOut>();
        let mut tx = Tx {
            sink,
            flavour: Flavour::Telephone,
            sid: Some(quote("MZ1")),
        };
        tx.media(&[0xFF, 0x7F]).await.unwrap();
        tx.mark("a \"b\"").await.unwrap();
        tx.event("clear", "").await.unwrap();
        tx.sid = None;
        tx.flavour = Flavour::WebSocket;
        tx.event("pong", "").await.unwrap();
        tx.media(&[0xFF]).await.unwrap();
        let end = tx.reject(close::POLICY, "bad").await;
        assert!(matches!(end, End::Close(1008, ref r) if r == "bad"));
        drop(tx);
        let mut texts = Vec::new();
        while let Some(WsOut::Text(t)) = sent.next().await {
            texts.push(t);
        }
        assert_eq!(
            texts,
            [
                r#"{"event":"media","streamSid":"MZ1","media":{"payload":"/38="}}"#,
                r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"a \"b\""}}"#,
                r#"{"event":"clear","streamSid":"MZ1"}"#,
                r#"{"event":"pong"}"#,
                r#"{"event":"media","media":{"payload":"/w=="}}"#,
                r#"{"type": "error", "message": "bad"}"#,
            ]
        );
    }

    #[test]
    fn pcm16_is_little_endian_and_rejects_odd_lengths() {
        assert_eq!(Encoding::Pcm16.encode(&[1, -2]), vec![1, 0, 0xFE, 0xFF]);
        assert_eq!(
            Encoding::Pcm16.decode(&[1, 0, 0xFE, 0xFF]).unwrap(),
            vec![1, -2]
        );
        assert!(Encoding::Pcm16.decode(&[1, 2, 3]).is_err());
        assert_eq!(
            Encoding::MuLaw.decode(&[0xFF, 0x80]).unwrap(),
            vec![0, 32124]
        );
    }

    #[test]
    fn input_is_split_into_20ms_frames_at_the_handler_rate() {
        let wire = Wire {
            encoding: Encoding::MuLaw,
            in_rate: 16_000,
            out_rate: 16_000,
        };
        let mut input = WireIn::new(wire, 16_000).unwrap();
        let frames = input.frames(&vec![0xFF; 16_000 / 50 * 3 + 10]).unwrap();
        let lens: Vec<usize> = frames.iter().map(|f| f.samples.len()).collect();
        assert_eq!(lens, vec![320, 320, 320, 10]);
        assert!(frames.iter().all(|f| f.sample_rate == 16_000));
    }

    #[test]
    fn output_is_paced_in_20ms_chunks_and_cleared_on_barge_in() {
        let wire = Wire {
            encoding: Encoding::MuLaw,
            in_rate: 8_000,
            out_rate: 8_000,
        };
        let mut out = WireOut::new(wire);
        assert!(out.wants_audio());
        out.push(frame(8_000, 400)).unwrap();
        assert!(!out.wants_audio());
        let t0 = Instant::now();
        assert_eq!(out.due(t0).map(|c| c.len()), Some(160));
        // The next chunk is due 20 ms later, not before.
        assert_eq!(out.due(t0 + Duration::from_millis(5)), None);
        assert_eq!(out.due(t0 + FRAME).map(|c| c.len()), Some(160));
        assert_eq!(out.sent_total, 320);
        // 80 samples left: less than a chunk, so a mark now is due at once.
        assert_eq!(out.mark_position(), 320);
        out.push(frame(8_000, 400)).unwrap();
        assert_eq!(out.mark_position(), 320 + 3 * 160);
        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.mark_position(), out.sent_total);
        assert_eq!(out.due(t0 + 2 * FRAME), None);
    }

    #[test]
    fn output_is_resampled_to_the_wire_rate() {
        let wire = Wire {
            encoding: Encoding::Pcm16,
            in_rate: 8_000,
            out_rate: 8_000,
        };
        let mut out = WireOut::new(wire);
        for _ in 0..10 {
            out.push(frame(48_000, 960)).unwrap();
        }
        // 200 ms at 48 kHz is about 200 ms at 8 kHz (less the resampler's block).
        let queued = out.playback.queued_samples();
        assert!((1_400..=1_600).contains(&queued), "{queued} samples");
        let chunk = out.due(Instant::now()).unwrap();
        assert_eq!(chunk.len(), 320, "160 samples of pcm16");
    }
}

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

use std::fmt::Display;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{Sink, SinkExt, Stream as FrameStream, StreamExt};
use serde_json::Value as Json;
use tokio::sync::mpsc;

use super::core::{Action, CloseReason, Core, CoreConfig, Reply, SHUTTING_DOWN};
use super::handler_task::HandlerTask;
use super::messages::{self, WsEvent};
use super::registry::{Command, Registration};
use super::stats::{self, Stage};
use super::ws_events::{self, ClientEvent};
use crate::Stream;
use crate::media::{MediaError, Resampler, mulaw};
use crate::runtime::{AudioFrame, Modality, Mode, StreamSpec};
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
const MAX_ID: usize = super::registry::MAX_ID_BYTES;
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

/// A connection after `start`: admitted, registered, with its core and handler task.
struct Live {
    id: String,
    core: Core,
    handler: HandlerTask,
    commands: mpsc::Receiver<Command>,
    encoding: Encoding,
    input: Option<WireIn>,
    // Dropped last: the registry entry.
    _registration: Registration,
}

/// The sending half, which knows how to address the client.
struct Tx<O> {
    sink: O,
    flavour: Flavour,
    /// The telephone's `streamSid`, once known.
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

    /// The telephone's `streamSid`, where it goes on every event.
    fn sid(&self) -> Option<&str> {
        match self.flavour {
            Flavour::Telephone => self.sid.as_deref(),
            Flavour::WebSocket => None,
        }
    }

    /// An event with nothing but its name (`pong`, `clear`).
    async fn event(&mut self, event: &str) -> Flow {
        let text = WsEvent::bare(event, self.sid()).to_text();
        self.text(text).await
    }

    async fn media(&mut self, bytes: &[u8]) -> Flow {
        let payload = stats::time(Stage::Transport, || BASE64.encode(bytes));
        let text = WsEvent::media(&payload, self.sid()).to_text();
        self.text(text).await
    }

    async fn mark(&mut self, name: &str) -> Flow {
        let text = WsEvent::mark(name, self.sid()).to_text();
        self.text(text).await
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
        let lifecycle = self.stream.inner.transport.lifecycle.clone();
        let draining = lifecycle.draining();
        tokio::pin!(draining);
        let mut drained = false;
        loop {
            if let Err(end) = self.carry_out().await {
                return end;
            }
            let wake = match &self.live {
                None => start_deadline,
                Some(live) => live
                    .core
                    .poll_timeout()
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            };
            // A handler that is behind stops the reading of the client (TCP pushes back).
            let reading = self.live.as_ref().is_none_or(|l| !l.core.backlogged());
            let step = tokio::select! {
                frame = self.incoming.next(), if reading => match frame {
                    Some(frame) => self.on_frame(frame).await,
                    None => Err(End::Gone),
                },
                event = live_event(&mut self.live) => match event {
                    LiveEvent::Command(cmd) => {
                        self.on_command(cmd);
                        Ok(())
                    }
                    LiveEvent::Reply(reply) => self.on_reply(reply),
                },
                _ = tokio::time::sleep_until(wake.into()) => self.tick(start_deadline).await,
                () = &mut draining, if !drained => {
                    drained = true;
                    match self.live.as_mut() {
                        Some(live) => {
                            live.core.shutdown();
                            Ok(())
                        }
                        None => Err(End::Close(close::GOING_AWAY, SHUTTING_DOWN.into())),
                    }
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Timers: the wait for `start`, then the core's.
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
        live.core.handle_timeout(now);
        Ok(())
    }

    fn on_command(&mut self, cmd: Option<Command>) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        match cmd {
            Some(Command::SetInputs(values)) => live.core.set_inputs(values),
            Some(Command::Candidate(_)) => {}
            Some(Command::Shutdown) => live.core.shutdown(),
            Some(Command::Close) | None => live.core.close_requested(),
        }
    }

    fn on_reply(&mut self, reply: Option<Reply>) -> Flow {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        match reply {
            Some(r) => {
                live.core.handler_reply(Instant::now(), r);
                Ok(())
            }
            None => Err(End::Close(close::INTERNAL, "handler task ended".into())),
        }
    }

    /// Carry out what the core says, until it has nothing more.
    async fn carry_out(&mut self) -> Flow {
        loop {
            let Some(live) = self.live.as_mut() else {
                return Ok(());
            };
            let Some(action) = live.core.poll_action() else {
                return Ok(());
            };
            match action {
                Action::Call(call) => live.handler.call(call),
                Action::Message(text) => self.tx.text(text).await?,
                Action::Audio { samples, .. } => {
                    let bytes = stats::time(Stage::Codec, || live.encoding.encode(&samples));
                    self.tx.media(&bytes).await?;
                }
                Action::Video(_) => {}
                Action::Mark(name) => self.tx.mark(&name).await?,
                Action::ClearAudio => self.tx.event("clear").await?,
                Action::Close(reason) => {
                    tracing::info!(stream = %self.stream.name(), connection = %live.id, "closing: {}", reason.text());
                    let code = match reason {
                        CloseReason::HandlerFailed(_) => close::INTERNAL,
                        CloseReason::Shutdown => close::GOING_AWAY,
                        _ => close::NORMAL,
                    };
                    return Err(End::Close(code, reason.text().into()));
                }
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
        let event = match ws_events::parse(&text) {
            Ok(event) => event,
            Err(e) => return Err(self.tx.reject(close::POLICY, &e.to_string()).await),
        };
        match event {
            ClientEvent::Media { media } => self.on_media(&media.payload).await,
            ClientEvent::Start { .. } => self.on_start(&event).await,
            ClientEvent::Ping => self.tx.event("pong").await,
            ClientEvent::Mark { .. } => self.on_mark(event.mark_name()).await,
            ClientEvent::Stop => Err(End::Close(close::NORMAL, "stopped by the client".into())),
            // `connected`, `dtmf` and anything newer: nothing to do.
            ClientEvent::Connected | ClientEvent::Dtmf | ClientEvent::Other => {
                tracing::trace!("ignored websocket event");
                Ok(())
            }
        }
    }

    /// The wire format: Twilio's, or FastRTC's with the client's opt-ins.
    fn wire(
        &self,
        format: Option<&Json>,
        sample_rate: Option<&Json>,
        spec: &StreamSpec,
    ) -> Result<Wire, String> {
        if self.flavour == Flavour::Telephone {
            return Ok(Wire {
                encoding: Encoding::MuLaw,
                in_rate: TELEPHONE_RATE,
                out_rate: TELEPHONE_RATE,
            });
        }
        let format = match format {
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
        let rate = match sample_rate {
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
    async fn on_start(&mut self, event: &ClientEvent) -> Flow {
        let ClientEvent::Start {
            websocket_id,
            format,
            sample_rate,
            ..
        } = event
        else {
            return Ok(());
        };
        if self.live.is_some() {
            return Err(self
                .tx
                .reject(close::POLICY, "start sent twice on one connection")
                .await);
        }
        let id = match self.flavour {
            Flavour::WebSocket => websocket_id.as_deref(),
            Flavour::Telephone => event.telephone_sid(),
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
        let wire = match self.wire(format.as_ref(), sample_rate.as_ref(), &spec) {
            Ok(w) => w,
            Err(e) => return Err(self.tx.reject(close::POLICY, &e).await),
        };
        if self.flavour == Flavour::Telephone {
            self.tx.sid = Some(id.clone());
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
        let registration = match inner.connections.register(&id, handle) {
            Ok((registration, _)) => registration,
            Err(e) => {
                self.tx
                    .text(format!(
                        r#"{{"status":"failed","meta":{{"error":"{}"}}}}"#,
                        e.code()
                    ))
                    .await?;
                return Err(End::Close(close::NORMAL, e.to_string()));
            }
        };
        let instance = match component.instantiate(&id).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(stream = %inner.name, connection = %id, "handler failed to start: {e}");
                return Err(self.tx.reject(close::INTERNAL, &e.to_string()).await);
            }
        };
        let takes = spec.mode != Mode::Receive;
        let input = if takes {
            match WireIn::new(wire, spec.input_sample_rate) {
                Ok(i) => Some(i),
                Err(e) => return Err(self.tx.reject(close::INTERNAL, &e.to_string()).await),
            }
        } else {
            None
        };
        let config = CoreConfig {
            spec: spec.clone(),
            turn_taking: component.turn_taking().copied(),
            playback_rate: wire.out_rate,
            time_limit: self.stream.config().time_limit,
            connect_timeout: self.stream.config().connect_timeout,
            replies: component.has_replies(),
        };
        let now = Instant::now();
        let mut core = match Core::new(&id, config, now) {
            Ok(c) => c,
            Err(e) => return Err(self.tx.reject(close::INTERNAL, &e.to_string()).await),
        };
        if let Err(e) = core.connected(now, true, false) {
            return Err(self.tx.reject(close::INTERNAL, &e.to_string()).await);
        }
        // FastRTC asks a WebSocket client for its inputs; Twilio has none to send.
        if self.flavour == Flavour::WebSocket {
            core.client_ready();
        }
        tracing::info!(stream = %inner.name, connection = %id, flavour = ?self.flavour, ?wire, "websocket started");
        let reload = self.stream.reload_for(&id);
        self.live = Some(Live {
            id,
            core,
            handler: HandlerTask::spawn(instance, spec, outputs, slot, reload),
            commands,
            encoding: wire.encoding,
            input,
            _registration: registration,
        });
        Ok(())
    }

    async fn on_media(&mut self, payload: &str) -> Flow {
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
        let Some(input) = live.input.as_mut() else {
            // A receive-only handler takes no audio.
            return Ok(());
        };
        let frames = match stats::time(Stage::Codec, || input.frames(&bytes)) {
            Ok(f) => f,
            Err(e) => return Err(self.tx.reject(close::POLICY, &e).await),
        };
        let now = Instant::now();
        for frame in frames {
            live.core.client_audio(now, frame);
        }
        Ok(())
    }

    /// Client audio for the handler: frame by frame, or through turn-taking.
    async fn on_mark(&mut self, name: Option<&str>) -> Flow {
        let Some(name) = name else {
            tracing::debug!("mark without a name ignored");
            return Ok(());
        };
        if name.len() > MAX_ID {
            let message = format!("mark name of {} bytes is longer than {MAX_ID}", name.len());
            return Err(self.tx.reject(close::POLICY, &message).await);
        }
        let Some(live) = self.live.as_mut() else {
            return self.tx.mark(name).await;
        };
        live.core.mark(name.to_string());
        Ok(())
    }
}

/// What a live connection's queues deliver.
enum LiveEvent {
    Command(Option<Command>),
    Reply(Option<Reply>),
}

async fn live_event(live: &mut Option<Live>) -> LiveEvent {
    match live {
        Some(live) => tokio::select! {
            cmd = live.commands.recv() => LiveEvent::Command(cmd),
            reply = live.handler.reply() => LiveEvent::Reply(reply),
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn telephone_messages_carry_the_stream_sid() {
        let (sink, mut sent) = futures::channel::mpsc::unbounded::<WsOut>();
        let mut tx = Tx {
            sink,
            flavour: Flavour::Telephone,
            sid: Some("MZ1".into()),
        };
        tx.media(&[0xFF, 0x7F]).await.unwrap();
        tx.mark("a \"b\"").await.unwrap();
        tx.event("clear").await.unwrap();
        tx.sid = None;
        tx.flavour = Flavour::WebSocket;
        tx.event("pong").await.unwrap();
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
}

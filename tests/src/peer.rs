//! An independent WebRTC client (webrtc-rs) that speaks FastRTC's protocol to a wasmrtc
//! server: signaling over `POST {base}/webrtc/offer`, media over RTP (Opus audio, VP8 or
//! H.264 video), control messages over a data channel labelled `text`, inputs over
//! `POST {base}/input_hook` and outputs over `GET {base}/outputs` (SSE).
//!
//! Used by the end-to-end tests and the load generator. Every wait is bounded by a
//! timeout, so a misbehaving server fails a test instead of hanging it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wasmrtc::media::{
    OpusDecoder, OpusEncoder, OpusSettings, Picture, PixelFormat, VideoDecoder, VideoEncoder,
    VideoSettings,
};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    Registry, register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender};

/// Sample rate of the audio the peer sends and keeps (Opus's clock).
pub const AUDIO_RATE: u32 = 48_000;
/// Samples in one 20 ms Opus packet.
const AUDIO_FRAME: usize = 960;
/// Payload types the peer offers.
const OPUS_PT: u8 = 111;
const VP8_PT: u8 = 96;
const H264_PT: u8 = 102;
/// Received pictures kept (the oldest are dropped; [`TestPeer::video_frames`] counts all).
const KEEP_PICTURES: usize = 16;
/// Longest run of lost audio packets concealed with silence-like PLC.
const MAX_CONCEALED: u16 = 10;

/// Serve `stream`'s routes (`/webrtc/offer`, `/input_hook`, `/outputs`) at the root of a
/// fresh HTTP server on 127.0.0.1 (a free port). The server runs until the task is
/// aborted or the runtime stops (the end of a test).
pub async fn serve(stream: wasmrtc::Stream) -> (SocketAddr, JoinHandle<()>) {
    serve_router(stream.mount(axum::Router::new(), "")).await
}

/// Load the guest at `path` into a stream with `config`, on its own UDP socket, served
/// at the root of a fresh server: (base URL, stream).
pub async fn serve_guest(path: &str, config: wasmrtc::StreamConfig) -> (String, wasmrtc::Stream) {
    let component = crate::test_runtime()
        .load_file("stream", path)
        .await
        .unwrap_or_else(|e| panic!("load {path}: {e}"));
    let transport = wasmrtc::Transport::bind("127.0.0.1:0".parse().expect("address"), None)
        .expect("bind the UDP socket");
    let stream = wasmrtc::Stream::new(component, transport, config);
    let (addr, _server) = serve(stream.clone()).await;
    (format!("http://{addr}"), stream)
}

/// Serve any router on 127.0.0.1 (a free port), e.g. several streams under prefixes.
pub async fn serve_router(router: axum::Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("test server stopped: {e}");
        }
    });
    (addr, task)
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes; whether it held.
pub async fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which way media of one kind flows, seen from the test peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Media {
    /// No m-line of this kind.
    #[default]
    None,
    /// The peer sends, the server does not (`sendonly`).
    Send,
    /// The server sends, the peer does not (`recvonly`).
    Recv,
    /// Both ways (`sendrecv`).
    SendRecv,
}

impl Media {
    fn sends(self) -> bool {
        matches!(self, Media::Send | Media::SendRecv)
    }

    fn direction(self) -> Option<RTCRtpTransceiverDirection> {
        match self {
            Media::None => None,
            Media::Send => Some(RTCRtpTransceiverDirection::Sendonly),
            Media::Recv => Some(RTCRtpTransceiverDirection::Recvonly),
            Media::SendRecv => Some(RTCRtpTransceiverDirection::Sendrecv),
        }
    }
}

/// The video codec a [`TestPeer`] offers (the only one), sends and decodes.
pub use wasmrtc::media::VideoCodec;

/// How a [`TestPeer`] connects and what it sends.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Audio direction.
    pub audio: Media,
    /// Video direction.
    pub video: Media,
    /// The `webrtc_id`; a fresh unique one when `None`.
    pub webrtc_id: Option<String>,
    /// Frequency of the sine the peer sends, in Hz.
    pub tone_hz: f64,
    /// Peak amplitude of that sine (i16 units).
    pub tone_amplitude: f64,
    /// Codec of the video both ways.
    pub video_codec: VideoCodec,
    /// Size of the video the peer sends.
    pub video_size: (u32, u32),
    /// Frames per second of the video the peer sends.
    pub fps: u32,
    /// Start sending media only once the data channel is open (so that the server can
    /// already report errors on it); otherwise as soon as the connection is up.
    pub media_after_channel: bool,
    /// Longest wait for the connection (and, with `media_after_channel`, the channel).
    pub connect_timeout: Duration,
    /// Audio to send instead of the tone (silence whenever it has nothing queued).
    pub audio_feed: Option<AudioFeed>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            audio: Media::None,
            video: Media::None,
            video_codec: VideoCodec::Vp8,
            webrtc_id: None,
            tone_hz: 1_000.0,
            tone_amplitude: 8_000.0,
            video_size: (320, 240),
            fps: 30,
            media_after_channel: true,
            connect_timeout: Duration::from_secs(15),
            audio_feed: None,
        }
    }
}

impl PeerOptions {
    /// Options with these audio and video directions, the rest default.
    pub fn new(audio: Media, video: Media) -> Self {
        Self {
            audio,
            video,
            ..Self::default()
        }
    }
}

/// Audio a [`TestPeer`] sends in place of its tone: 48 kHz mono samples, sent in real
/// time in 20 ms packets as they are queued, digital silence while none are. Clones
/// share the queue, so a test queues speech while the peer is connected.
#[derive(Debug, Clone, Default)]
pub struct AudioFeed {
    inner: Arc<Mutex<FeedState>>,
}

#[derive(Debug, Default)]
struct FeedState {
    queue: VecDeque<i16>,
    /// When the last queued sample was sent.
    drained_at: Option<Instant>,
}

impl AudioFeed {
    /// An empty feed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue `samples` (48 kHz mono) after what is queued.
    pub fn push(&self, samples: &[i16]) {
        let mut state = lock(&self.inner);
        state.queue.extend(samples);
        state.drained_at = None;
    }

    /// Samples still to send.
    pub fn queued(&self) -> usize {
        lock(&self.inner).queue.len()
    }

    /// When the last queued sample was sent, once everything queued has been.
    pub fn drained_at(&self) -> Option<Instant> {
        lock(&self.inner).drained_at
    }

    /// Wait until everything queued has been sent; when the last sample went out.
    pub async fn wait_drained(&self, timeout: Duration) -> Option<Instant> {
        poll_until(timeout, || self.drained_at().is_some()).await;
        self.drained_at()
    }

    /// The next 20 ms packet's samples: queued audio, padded with silence.
    fn next_packet(&self) -> Vec<i16> {
        let mut state = lock(&self.inner);
        let n = state.queue.len().min(AUDIO_FRAME);
        let mut pcm: Vec<i16> = state.queue.drain(..n).collect();
        if n > 0 && state.queue.is_empty() {
            state.drained_at = Some(Instant::now());
        }
        pcm.resize(AUDIO_FRAME, 0);
        pcm
    }
}

/// The server refused an offer: the HTTP status and the JSON body it answered.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// HTTP status.
    pub status: u16,
    /// The reply body (`{"status":"failed","meta":{"error":…}}` or a 422 `detail`).
    pub body: Value,
}

impl Rejected {
    /// `meta.error` of a FastRTC soft failure, if any.
    pub fn error_code(&self) -> Option<&str> {
        self.body.pointer("/meta/error").and_then(Value::as_str)
    }
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "offer rejected with HTTP {}: {}", self.status, self.body)
    }
}

impl std::error::Error for Rejected {}

/// Lock `mutex`, also when a panicking task poisoned it (what it holds stays usable).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The next value of `counter`, and the clock's nanoseconds within the second: what
/// identifiers unique in this process and unlikely to repeat across processes are made of.
fn count_and_clock(counter: &AtomicU64) -> (u64, u32) {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (n, nanos)
}

/// A fresh `webrtc_id` (unique in this process, random across processes).
pub fn new_webrtc_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (n, nanos) = count_and_clock(&NEXT);
    format!("peer-{}-{nanos:08x}-{n}", std::process::id())
}

/// An HTTP client for the stream's routes (plain HTTP, JSON).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("HTTP client")
}

/// `POST {base}/webrtc/offer` with any JSON body: the status and the JSON reply
/// (`Value::Null` when the reply is not JSON).
pub async fn post_offer(base: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    post_json(&http_client(), &format!("{base}/webrtc/offer"), body).await
}

/// `POST {base}/input_hook` with `{"webrtc_id": id, …values}`: the status and the reply.
pub async fn post_input(
    base: &str,
    webrtc_id: &str,
    values: &Value,
) -> anyhow::Result<(u16, Value)> {
    let mut body = values.as_object().cloned().unwrap_or_default();
    body.insert("webrtc_id".into(), Value::String(webrtc_id.to_string()));
    post_json(
        &http_client(),
        &format!("{base}/input_hook"),
        &Value::Object(body),
    )
    .await
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let reply = client
        .post(url)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = reply.status().as_u16();
    let bytes = reply
        .bytes()
        .await
        .with_context(|| format!("body of POST {url}"))?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// The SSE stream of `GET {base}/outputs?webrtc_id=…`: yields each `output` event's data.
pub struct Outputs {
    reply: reqwest::Response,
    buffer: String,
}

impl Outputs {
    /// Open the stream; fails unless the server answers 200.
    pub async fn open(base: &str, webrtc_id: &str) -> anyhow::Result<Self> {
        // No overall timeout: the stream lasts as long as the connection.
        let client = reqwest::Client::new();
        let reply = client
            .get(format!("{base}/outputs"))
            .query(&[("webrtc_id", webrtc_id)])
            .send()
            .await
            .context("GET /outputs")?;
        if !reply.status().is_success() {
            let status = reply.status();
            let text = reply.text().await.unwrap_or_default();
            bail!("GET /outputs answered {status}: {text}");
        }
        Ok(Self {
            reply,
            buffer: String::new(),
        })
    }

    /// The data of the next `output` event, or `None` when the stream ends or `timeout`
    /// passes first.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message";
                let mut data = String::new();
                for line in event.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if name == "output" {
                    return Some(serde_json::from_str(&data).unwrap_or(Value::String(data)));
                }
            }
            match tokio::time::timeout_at(deadline, self.reply.chunk()).await {
                Ok(Ok(Some(chunk))) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
                _ => return None,
            }
        }
    }
}

/// What the peer has received, shared with its tasks.
#[derive(Default)]
struct Received {
    /// Decoded remote audio, 48 kHz mono.
    audio: Mutex<Vec<i16>>,
    /// Arrival of each remote audio packet, with the samples decoded by then.
    audio_arrivals: Mutex<Vec<(Instant, usize)>>,
    /// Audio RTP packets received.
    audio_packets: AtomicUsize,
    /// The last decoded remote pictures (I420).
    pictures: Mutex<VecDeque<Picture>>,
    /// Remote pictures decoded in all.
    video_frames: AtomicUsize,
    /// Video RTP packets received.
    video_packets: AtomicUsize,
    /// Data-channel messages, parsed as JSON (text that is not JSON is kept as a string).
    messages: Mutex<Vec<Value>>,
    /// Whether the data channel is open.
    channel_open: AtomicBool,
    /// Audio samples sent so far.
    audio_sent: AtomicUsize,
    /// Video frames sent so far.
    video_sent: AtomicUsize,
}

struct Handler {
    received: Arc<Received>,
    video_codec: VideoCodec,
    gathered: watch::Sender<bool>,
    state: watch::Sender<RTCPeerConnectionState>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let (received, video_codec) = (self.received.clone(), self.video_codec);
        // The callback runs on the connection's driver: read the track elsewhere.
        let task = tokio::spawn(async move {
            match track.kind().await {
                RtpCodecKind::Audio => read_audio(track, received).await,
                RtpCodecKind::Video => read_video(track, video_codec, received).await,
                _ => {}
            }
        });
        lock(&self.tasks).push(task);
    }
}

/// The next RTP packet of `track`; `None` once it has ended.
async fn next_packet(track: &dyn TrackRemote) -> Option<rtc::rtp::Packet> {
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(p) => return Some(p),
            TrackRemoteEvent::OnEnded => return None,
            _ => {}
        }
    }
    None
}

async fn read_audio(track: Arc<dyn TrackRemote>, received: Arc<Received>) {
    let Ok(mut decoder) = OpusDecoder::new(1) else {
        return;
    };
    let mut next_seq: Option<u16> = None;
    while let Some(packet) = next_packet(track.as_ref()).await {
        received.audio_packets.fetch_add(1, Ordering::Relaxed);
        let seq = packet.header.sequence_number;
        let mut pcm = Vec::new();
        if let Some(expected) = next_seq {
            let lost = seq.wrapping_sub(expected);
            if lost >= 0x8000 {
                // Late or duplicate: already concealed.
                continue;
            }
            if lost > 0 && lost <= MAX_CONCEALED {
                for _ in 0..lost {
                    if let Ok(buf) = decoder.decode(None) {
                        pcm.extend_from_slice(&buf.samples);
                    }
                }
            }
        }
        next_seq = Some(seq.wrapping_add(1));
        if let Ok(buf) = decoder.decode(Some(&packet.payload)) {
            pcm.extend_from_slice(&buf.samples);
        }
        let mut audio = lock(&received.audio);
        audio.extend_from_slice(&pcm);
        let total = audio.len();
        drop(audio);
        lock(&received.audio_arrivals).push((Instant::now(), total));
    }
}

/// The RTP payload format of a video codec: a payload's share of its frame.
enum PayloadFormat {
    /// RFC 7741: each payload carries a descriptor and part of the frame.
    Vp8,
    /// RFC 6184: single NAL units, STAP-A and FU-A, out as Annex B; FU-A fragments are
    /// kept until the last one.
    H264(H264Packet),
}

impl PayloadFormat {
    fn new(codec: VideoCodec) -> Self {
        match codec {
            VideoCodec::Vp8 => PayloadFormat::Vp8,
            VideoCodec::H264 => PayloadFormat::H264(H264Packet::default()),
        }
    }

    /// Forget fragments of an earlier frame.
    fn restart(&mut self) {
        if let PayloadFormat::H264(packet) = self {
            *packet = H264Packet::default();
        }
    }

    /// The bytes `payload` adds to its frame, and whether it begins the frame; `None` if
    /// it does not parse.
    fn depacketize(&mut self, payload: &Bytes) -> Option<(Bytes, bool)> {
        match self {
            PayloadFormat::Vp8 => {
                let mut descriptor = Vp8Packet::default();
                let data = descriptor.depacketize(payload).ok()?;
                Some((data, descriptor.s == 1 && descriptor.pid == 0))
            }
            PayloadFormat::H264(packet) => {
                let starts = packet.is_partition_head(payload);
                Some((packet.depacketize(payload).ok()?, starts))
            }
        }
    }
}

/// Reassembles video frames (VP8 frames, H.264 access units) from RTP packets by
/// timestamp and marker bit, dropping frames with a loss.
struct FrameAssembler {
    format: PayloadFormat,
    timestamp: Option<u32>,
    next_seq: Option<u16>,
    frame: Vec<u8>,
    /// A packet of the frame being assembled was taken.
    started: bool,
    /// The frame being assembled missed a packet (or its start).
    broken: bool,
}

enum Assembled {
    Nothing,
    Frame(Vec<u8>),
    /// A frame was lost: ask for a keyframe.
    Lost,
}

impl FrameAssembler {
    fn new(codec: VideoCodec) -> Self {
        Self {
            format: PayloadFormat::new(codec),
            timestamp: None,
            next_seq: None,
            frame: Vec::new(),
            started: false,
            broken: false,
        }
    }

    fn push(&mut self, packet: &rtc::rtp::Packet) -> Assembled {
        let h = &packet.header;
        let mut lost = false;
        if let Some(expected) = self.next_seq {
            let gap = h.sequence_number.wrapping_sub(expected);
            if gap >= 0x8000 {
                return Assembled::Nothing; // Late or duplicate.
            }
            lost = gap != 0;
        }
        self.next_seq = Some(h.sequence_number.wrapping_add(1));
        if self.timestamp != Some(h.timestamp) {
            // A new frame; an unfinished previous one is dropped.
            lost |= self.started && !self.broken;
            self.timestamp = Some(h.timestamp);
            self.frame.clear();
            self.format.restart();
            self.started = false;
            self.broken = false;
        }
        let Some((payload, starts)) = self.format.depacketize(&packet.payload) else {
            self.broken = true;
            return Assembled::Lost;
        };
        if lost || (!self.started && !starts) {
            self.broken = true;
        }
        self.started = true;
        if !self.broken {
            self.frame.extend_from_slice(&payload);
        }
        if h.marker {
            let frame = std::mem::take(&mut self.frame);
            self.format.restart();
            self.started = false;
            if std::mem::take(&mut self.broken) {
                return Assembled::Lost;
            }
            return Assembled::Frame(frame);
        }
        if lost {
            Assembled::Lost
        } else {
            Assembled::Nothing
        }
    }
}

async fn read_video(track: Arc<dyn TrackRemote>, codec: VideoCodec, received: Arc<Received>) {
    let Ok(mut decoder) = VideoDecoder::new(codec) else {
        return;
    };
    let mut assembler = FrameAssembler::new(codec);
    let mut waiting_keyframe = true;
    let mut last_pli: Option<Instant> = None;
    while let Some(packet) = next_packet(track.as_ref()).await {
        received.video_packets.fetch_add(1, Ordering::Relaxed);
        let ssrc = packet.header.ssrc;
        let mut need_keyframe = false;
        match assembler.push(&packet) {
            Assembled::Nothing => {}
            Assembled::Lost => {
                waiting_keyframe = true;
                need_keyframe = true;
            }
            Assembled::Frame(frame) => {
                let key = codec.is_keyframe(&frame);
                if waiting_keyframe && !key {
                    need_keyframe = true;
                } else {
                    let ts = u64::from(packet.header.timestamp) * 100 / 9;
                    match decoder.decode(&frame, ts) {
                        Ok(Some(picture)) => {
                            waiting_keyframe = false;
                            let mut pictures = lock(&received.pictures);
                            if pictures.len() == KEEP_PICTURES {
                                pictures.pop_front();
                            }
                            pictures.push_back(picture);
                            drop(pictures);
                            received.video_frames.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => {}
                        Err(_) => {
                            waiting_keyframe = true;
                            need_keyframe = true;
                        }
                    }
                }
            }
        }
        if need_keyframe && last_pli.is_none_or(|t| t.elapsed() > Duration::from_millis(250)) {
            last_pli = Some(Instant::now());
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            let _ = track.write_rtcp(vec![Box::new(pli)]).await;
        }
    }
}

/// A picture of the test pattern: the top half white, the bottom half black (I420,
/// limited range: Y 235 / 16), with `frame`'s low 16 bits drawn as a row of 16x8 blocks
/// along the top edge (white for 1, black for 0).
pub fn test_pattern(width: u32, height: u32, frame: u64, timestamp_us: u64) -> Picture {
    let mut picture = Picture::black(width, height, PixelFormat::I420, timestamp_us);
    let (w, h) = (width as usize, height as usize);
    picture.data[..w * (h / 2)].fill(235);
    for bit in 0..16usize {
        let on = frame >> bit & 1 == 1;
        for y in 0..8.min(h) {
            for x in bit * 16..((bit + 1) * 16).min(w) {
                picture.data[y * w + x] = if on { 235 } else { 16 };
            }
        }
    }
    picture
}

/// Mean of the Y plane of an I420 picture over rows `rows`.
pub fn mean_luma(picture: &Picture, rows: std::ops::Range<u32>) -> f64 {
    let Some((y, _, _)) = picture.planes() else {
        return 0.0;
    };
    let w = picture.width as usize;
    let rows = rows.start as usize..(rows.end.min(picture.height)) as usize;
    let n = rows.len() * w;
    if n == 0 {
        return 0.0;
    }
    let sum: u64 = y[rows.start * w..rows.end * w]
        .iter()
        .map(|&v| u64::from(v))
        .sum();
    sum as f64 / n as f64
}

/// The codec the peer offers for `kind` (Opus for audio, `video` for video), with its
/// payload type.
fn codec(kind: RtpCodecKind, video: VideoCodec) -> RTCRtpCodecParameters {
    let (rtp_codec, payload_type) = match (kind, video) {
        (RtpCodecKind::Audio, _) => (
            RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            OPUS_PT,
        ),
        (_, VideoCodec::Vp8) => (
            RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
            VP8_PT,
        ),
        (_, VideoCodec::H264) => (
            RTCRtpCodec {
                mime_type: MIME_TYPE_H264.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line:
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                        .to_owned(),
                rtcp_feedback: vec![],
            },
            H264_PT,
        ),
    };
    RTCRtpCodecParameters {
        rtp_codec,
        payload_type,
    }
}

fn local_track(
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    ssrc: u32,
) -> anyhow::Result<Arc<TrackLocalStaticSample>> {
    let name = match kind {
        RtpCodecKind::Audio => "audio",
        _ => "video",
    };
    let track = MediaStreamTrack::new(
        "wasmrtc-test-peer".to_owned(),
        format!("wasmrtc-test-{name}"),
        format!("wasmrtc-test-{name}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    );
    Ok(Arc::new(TrackLocalStaticSample::new(
        Instant::now(),
        track,
    )?))
}

/// Connect to the stream at `base` with these audio and video directions, the other
/// options default; panics if the connection does not come up.
pub async fn connect(base: &str, audio: Media, video: Media) -> TestPeer {
    TestPeer::connect(base, PeerOptions::new(audio, video))
        .await
        .unwrap_or_else(|e| panic!("connect to {base}: {e:#}"))
}

/// A WebRTC client of one wasmrtc stream.
pub struct TestPeer {
    pc: Arc<dyn PeerConnection>,
    channel: Arc<dyn DataChannel>,
    webrtc_id: String,
    base: String,
    received: Arc<Received>,
    state: watch::Receiver<RTCPeerConnectionState>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    closed: bool,
}

impl TestPeer {
    /// Connect to the stream served at `base` (e.g. `http://127.0.0.1:PORT` or with a
    /// mount prefix): offer, wait for ICE gathering, post the offer, apply the answer,
    /// and wait until the connection is up (and the data channel open, with
    /// `media_after_channel`). A refused offer is an error holding a [`Rejected`].
    pub async fn connect(base: &str, options: PeerOptions) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        let webrtc_id = options.webrtc_id.clone().unwrap_or_else(new_webrtc_id);

        let mut media_engine = MediaEngine::default();
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            media_engine.register_codec(codec(kind, options.video_codec), kind)?;
        }
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;

        let received = Arc::new(Received::default());
        let (gathered_tx, mut gathered) = watch::channel(false);
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(Handler {
            received: received.clone(),
            video_codec: options.video_codec,
            gathered: gathered_tx,
            state: state_tx,
            tasks: tasks.clone(),
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            // A concrete loopback address: a wildcard would skip loopback interfaces.
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        // From here on, close the connection on any failure.
        let peer = async {
            // The tracks the peer sends on: (kind, track, sender, SSRC).
            let mut outgoing = Vec::new();
            for (kind, media) in [
                (RtpCodecKind::Audio, options.audio),
                (RtpCodecKind::Video, options.video),
            ] {
                let Some(direction) = media.direction() else {
                    continue;
                };
                let init = RTCRtpTransceiverInit {
                    direction,
                    ..Default::default()
                };
                if media.sends() {
                    let ssrc = rand_ssrc();
                    let track =
                        local_track(kind, codec(kind, options.video_codec).rtp_codec, ssrc)?;
                    let transceiver = pc
                        .add_transceiver_from_track(
                            track.clone() as Arc<dyn TrackLocal>,
                            Some(init),
                        )
                        .await?;
                    let sender = transceiver
                        .sender()
                        .await?
                        .ok_or_else(|| anyhow!("transceiver has no sender"))?;
                    outgoing.push((kind, track, sender, ssrc));
                } else {
                    pc.add_transceiver_from_kind(kind, Some(init)).await?;
                }
            }
            let channel = pc.create_data_channel("text", None).await?;

            let offer = pc.create_offer(None).await?;
            pc.set_local_description(offer).await?;
            tokio::time::timeout(Duration::from_secs(10), gathered.wait_for(|g| *g))
                .await
                .context("ICE gathering did not complete")??;
            let offer = pc
                .local_description()
                .await
                .ok_or_else(|| anyhow!("no local description"))?;

            let body = json!({"sdp": offer.sdp, "type": "offer", "webrtc_id": webrtc_id});
            let (status, reply) = post_offer(&base, &body).await?;
            let answer = match (
                status,
                reply.get("type").and_then(Value::as_str),
                reply.get("sdp").and_then(Value::as_str),
            ) {
                (200, Some("answer"), Some(sdp)) => sdp.to_string(),
                _ => {
                    return Err(anyhow::Error::new(Rejected {
                        status,
                        body: reply,
                    }));
                }
            };
            pc.set_remote_description(RTCSessionDescription::answer(answer)?)
                .await?;
            Ok::<_, anyhow::Error>((channel, outgoing))
        }
        .await;
        let (channel, outgoing) = match peer {
            Ok(p) => p,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };

        // The data channel: note when it opens, keep every message.
        {
            let channel = channel.clone();
            let received = received.clone();
            let task = tokio::spawn(async move {
                while let Some(event) = channel.poll().await {
                    match event {
                        DataChannelEvent::OnOpen => {
                            received.channel_open.store(true, Ordering::Release)
                        }
                        DataChannelEvent::OnClose => {
                            received.channel_open.store(false, Ordering::Release);
                            break;
                        }
                        DataChannelEvent::OnMessage(m) => {
                            let text = String::from_utf8_lossy(&m.data).into_owned();
                            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                            lock(&received.messages).push(value);
                        }
                        _ => {}
                    }
                }
            });
            lock(&tasks).push(task);
        }

        let mut peer = TestPeer {
            pc,
            channel,
            webrtc_id,
            base,
            received,
            state,
            tasks,
            closed: false,
        };
        if let Err(e) = peer.wait_connected(options.connect_timeout).await {
            peer.close().await;
            return Err(e);
        }
        if options.media_after_channel && !peer.wait_channel_open(options.connect_timeout).await {
            peer.close().await;
            bail!(
                "the data channel did not open within {:?}",
                options.connect_timeout
            );
        }

        for (kind, track, sender, ssrc) in outgoing {
            let pt = payload_type(&sender, codec(kind, options.video_codec).payload_type).await;
            let (options, received) = (options.clone(), peer.received.clone());
            peer.push_task(tokio::spawn(async move {
                match kind {
                    RtpCodecKind::Audio => send_audio(track, ssrc, pt, options, received).await,
                    _ => send_video(track, ssrc, pt, options, received).await,
                }
            }));
        }
        Ok(peer)
    }

    fn push_task(&self, task: JoinHandle<()>) {
        lock(&self.tasks).push(task);
    }

    async fn wait_connected(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let waited = tokio::time::timeout(
            timeout,
            self.state.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            }),
        )
        .await
        .map(|r| r.map(|s| *s));
        match waited {
            Ok(Ok(RTCPeerConnectionState::Connected)) => Ok(()),
            Ok(Ok(s)) => bail!("the connection went {s} instead of connecting"),
            Ok(Err(_)) => bail!("the connection's handler went away"),
            Err(_) => bail!(
                "not connected within {timeout:?} (state {})",
                *self.state.borrow()
            ),
        }
    }

    /// Wait until the data channel is open; whether it opened within `timeout`.
    pub async fn wait_channel_open(&self, timeout: Duration) -> bool {
        poll_until(timeout, || {
            self.received.channel_open.load(Ordering::Acquire)
        })
        .await
    }

    /// The `webrtc_id` this peer connected with.
    pub fn webrtc_id(&self) -> &str {
        &self.webrtc_id
    }

    /// The base URL of the stream (`http://host:port[/prefix]`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The connection state now.
    pub fn state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// Send a text message on the data channel.
    pub async fn send_text(&self, text: &str) -> anyhow::Result<()> {
        self.channel.send_text(text).await?;
        Ok(())
    }

    /// Every data-channel message received so far.
    pub fn messages(&self) -> Vec<Value> {
        lock(&self.received.messages).clone()
    }

    /// Wait for a data-channel message (received before or after the call) matching
    /// `pred`; the first such, or `None` after `timeout`.
    pub async fn wait_message(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let mut found = None;
        poll_until(timeout, || {
            found = lock(&self.received.messages)
                .iter()
                .find(|m| pred(m))
                .cloned();
            found.is_some()
        })
        .await;
        found
    }

    /// Wait for a message whose `"type"` is `kind`.
    pub async fn wait_message_type(&self, timeout: Duration, kind: &str) -> Option<Value> {
        self.wait_message(timeout, |m| {
            m.get("type").and_then(Value::as_str) == Some(kind)
        })
        .await
    }

    /// Decoded remote audio so far (48 kHz mono).
    pub fn audio(&self) -> Vec<i16> {
        lock(&self.received.audio).clone()
    }

    /// Number of remote audio samples decoded so far.
    pub fn audio_len(&self) -> usize {
        lock(&self.received.audio).len()
    }

    /// Wait until at least `samples` remote audio samples were decoded; whether they were.
    pub async fn wait_audio(&self, samples: usize, timeout: Duration) -> bool {
        poll_until(timeout, || self.audio_len() >= samples).await
    }

    /// RMS of the remote audio samples `range`, once they have arrived; panics if they
    /// do not within `timeout`.
    pub async fn level(&self, range: std::ops::Range<usize>, timeout: Duration) -> f64 {
        assert!(
            self.wait_audio(range.end, timeout).await,
            "audio stopped: {} samples, waited for {}",
            self.audio_len(),
            range.end
        );
        crate::signal::rms(&self.audio()[range])
    }

    /// RMS of one second of remote audio starting half a second after sample `from` (the
    /// half second skipped is audio already on its way); see [`TestPeer::level`].
    pub async fn level_after(&self, from: usize, timeout: Duration) -> f64 {
        let rate = AUDIO_RATE as usize;
        self.level(from + rate / 2..from + 3 * rate / 2, timeout)
            .await
    }

    /// When each remote audio packet arrived, with the number of samples decoded by then.
    pub fn audio_arrivals(&self) -> Vec<(Instant, usize)> {
        lock(&self.received.audio_arrivals).clone()
    }

    /// Remote audio RTP packets received.
    pub fn audio_packets(&self) -> usize {
        self.received.audio_packets.load(Ordering::Relaxed)
    }

    /// Audio samples sent so far.
    pub fn audio_sent(&self) -> usize {
        self.received.audio_sent.load(Ordering::Relaxed)
    }

    /// Remote pictures decoded so far.
    pub fn video_frames(&self) -> usize {
        self.received.video_frames.load(Ordering::Relaxed)
    }

    /// Remote video RTP packets received.
    pub fn video_packets(&self) -> usize {
        self.received.video_packets.load(Ordering::Relaxed)
    }

    /// Video frames sent so far.
    pub fn video_sent(&self) -> usize {
        self.received.video_sent.load(Ordering::Relaxed)
    }

    /// The last decoded remote pictures (I420), oldest first.
    pub fn pictures(&self) -> Vec<Picture> {
        lock(&self.received.pictures).iter().cloned().collect()
    }

    /// Wait until at least `frames` remote pictures were decoded; whether they were.
    pub async fn wait_video(&self, frames: usize, timeout: Duration) -> bool {
        poll_until(timeout, || self.video_frames() >= frames).await
    }

    /// `POST {base}/input_hook` for this connection.
    pub async fn set_input(&self, values: Value) -> anyhow::Result<(u16, Value)> {
        post_input(&self.base, &self.webrtc_id, &values).await
    }

    /// Open `GET {base}/outputs` for this connection.
    pub async fn outputs(&self) -> anyhow::Result<Outputs> {
        Outputs::open(&self.base, &self.webrtc_id).await
    }

    /// Stop the peer's tasks (sending, reading, the data channel's).
    fn abort_tasks(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    /// Stop sending and close the connection.
    pub async fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        self.abort_tasks();
        let _ = self.channel.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.pc.close()).await;
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.abort_tasks();
    }
}

fn rand_ssrc() -> u32 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (n, nanos) = count_and_clock(&NEXT);
    // Any non-zero value will do; mix the clock with a counter.
    (nanos ^ (n as u32).wrapping_mul(0x9E37_79B9) ^ std::process::id().rotate_left(16)) | 1
}

/// The payload type negotiated for a sender (what `write_sample` must stamp).
async fn payload_type(sender: &Arc<dyn RtpSender>, fallback: u8) -> u8 {
    match sender.get_parameters().await {
        Ok(p) => p
            .rtp_parameters
            .codecs
            .first()
            .map_or(fallback, |c| c.payload_type),
        Err(_) => fallback,
    }
}

/// Send a sine as 20 ms Opus packets, paced in real time.
async fn send_audio(
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    pt: u8,
    options: PeerOptions,
    received: Arc<Received>,
) {
    let mut encoder = match OpusEncoder::new(1, OpusSettings::default()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("test peer: no Opus encoder: {e}");
            return;
        }
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut offset = 0usize;
    loop {
        ticker.tick().await;
        let pcm = match &options.audio_feed {
            Some(feed) => feed.next_packet(),
            None => crate::signal::sine(
                options.tone_hz,
                options.tone_amplitude,
                AUDIO_RATE,
                offset,
                AUDIO_FRAME,
            ),
        };
        offset += AUDIO_FRAME;
        let Ok(packet) = encoder.encode(&pcm) else {
            continue;
        };
        let sample = Sample {
            data: Bytes::from(packet),
            duration: Duration::from_millis(20),
            ..Sample::new(Instant::now())
        };
        if track
            .sample_writer(ssrc, pt)
            .write_sample(&sample)
            .await
            .is_err()
        {
            // Not bound yet or closed; keep the clock going.
            continue;
        }
        received
            .audio_sent
            .fetch_add(AUDIO_FRAME, Ordering::Relaxed);
    }
}

/// Send the test pattern in the configured codec, size and frame rate.
async fn send_video(
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    pt: u8,
    options: PeerOptions,
    received: Arc<Received>,
) {
    let (w, h) = options.video_size;
    let fps = options.fps.max(1);
    // 600 kbit/s and a keyframe every second: the peer does not see the server's
    // keyframe requests (webrtc-rs keeps inbound RTCP for its interceptors).
    let settings = VideoSettings {
        bitrate_kbps: 600,
        fps,
        keyframe_interval: fps,
        ..VideoSettings::default()
    };
    let mut encoder = match VideoEncoder::new(options.video_codec, w, h, settings) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("test peer: no {:?} encoder: {e}", options.video_codec);
            return;
        }
    };
    let period = Duration::from_secs(1) / fps;
    let mut ticker = tokio::time::interval(period);
    let mut frame = 0u64;
    loop {
        ticker.tick().await;
        let picture = test_pattern(w, h, frame, frame * 1_000_000 / u64::from(fps));
        frame += 1;
        let Ok(encoded) = encoder.encode(&picture) else {
            continue;
        };
        for f in encoded {
            let sample = Sample {
                data: Bytes::from(f.data),
                duration: period,
                ..Sample::new(Instant::now())
            };
            let _ = track.sample_writer(ssrc, pt).write_sample(&sample).await;
        }
        received.video_sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// A data-channel-only offer from a client that will never do ICE.
pub fn abandoned_offer() -> String {
    let fingerprint = (0..32)
        .map(|i| format!("{:02X}", i * 7 % 256))
        .collect::<Vec<_>>()
        .join(":");
    [
        "v=0",
        "o=- 4215775240449105457 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        "a=ice-options:trickle",
        &format!("a=fingerprint:sha-256 {fingerprint}"),
        "a=setup:actpass",
        "a=mid:0",
        "a=sctp-port:5000",
        "a=max-message-size:262144",
        "",
    ]
    .join("\r\n")
}

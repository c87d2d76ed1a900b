//! End to end over FastRTC's WebSocket audio transport (`/websocket/offer`) and Twilio
//! Media Streams (`/telephone/incoming`, `/telephone/handler`): real tokio-tungstenite
//! clients against a wasmrtc server on 127.0.0.1. Each test starts its own server and
//! bounds every wait.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wasmrtc::media::mulaw;
use wasmrtc::{Stream, StreamConfig, Transport};
use wasmrtc_tests::peer::{self, poll_until};
use wasmrtc_tests::{guests, signal, test_runtime};

/// Longest wait for anything to happen.
pub(super) const WAIT: Duration = Duration::from_secs(15);
/// The echo and gain guests take and give 48 kHz.
const RATE: u32 = 48_000;
const TONE: f64 = 440.0;

/// A stream of the guest at `path` mounted at `prefix` of a fresh server.
async fn serve_at(path: &str, config: StreamConfig, prefix: &str) -> (SocketAddr, Stream) {
    let component = test_runtime()
        .load_file("stream", path)
        .await
        .expect("load the guest");
    let transport = Transport::bind("127.0.0.1:0".parse().unwrap(), None).expect("bind UDP");
    let stream = Stream::new(component, transport, config);
    let (addr, _server) = peer::serve_router(stream.mount(axum::Router::new(), prefix)).await;
    (addr, stream)
}

pub(super) async fn serve(path: &str, config: StreamConfig) -> (SocketAddr, Stream) {
    serve_at(path, config, "").await
}

/// What a client received, in order.
#[derive(Debug, Clone)]
pub(super) enum Got {
    /// A text frame, when it arrived.
    Text(Instant, String),
    /// A binary frame (never expected).
    Binary,
    /// The server's close frame: (code, reason), or none.
    Close(Option<(u16, String)>),
    /// The connection ended without a close frame.
    Ended,
}

/// The frames one client received, shared with its reader task.
#[derive(Clone, Default)]
pub(super) struct Inbox {
    got: Arc<Mutex<Vec<Got>>>,
    changed: Arc<Notify>,
}

impl Inbox {
    pub(super) fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    pub(super) fn texts(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter_map(|g| match g {
                Got::Text(_, t) => Some(t),
                _ => None,
            })
            .collect()
    }

    pub(super) fn json(&self) -> Vec<Value> {
        self.texts()
            .iter()
            .map(|t| serde_json::from_str(t).unwrap_or(Value::String(t.clone())))
            .collect()
    }

    /// Media messages: (arrival, message).
    pub(super) fn media(&self) -> Vec<(Instant, Value)> {
        self.all()
            .into_iter()
            .filter_map(|g| match g {
                Got::Text(at, t) => {
                    let v: Value = serde_json::from_str(&t).ok()?;
                    (v["event"] == "media").then_some((at, v))
                }
                _ => None,
            })
            .collect()
    }

    /// Decoded payloads of the media messages.
    fn payloads(&self) -> Vec<Vec<u8>> {
        self.media()
            .iter()
            .map(|(_, m)| {
                let p = m["media"]["payload"].as_str().expect("payload is a string");
                BASE64.decode(p).expect("payload is base64")
            })
            .collect()
    }

    /// All received μ-law audio, decoded.
    pub(super) fn mulaw_audio(&self) -> Vec<i16> {
        self.payloads()
            .iter()
            .flat_map(|p| mulaw::decode_slice(p))
            .collect()
    }

    /// All received pcm16 audio.
    fn pcm16_audio(&self) -> Vec<i16> {
        self.payloads().iter().flat_map(|p| from_pcm16(p)).collect()
    }

    fn close(&self) -> Option<Option<(u16, String)>> {
        self.all().into_iter().find_map(|g| match g {
            Got::Close(c) => Some(c),
            Got::Ended => Some(None),
            _ => None,
        })
    }

    /// Wait until `cond` holds on what was received; whether it did in time.
    pub(super) async fn wait(&self, timeout: Duration, cond: impl Fn(&Inbox) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if cond(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return cond(self);
            }
        }
    }

    pub(super) async fn wait_text(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        self.wait(timeout, |i| i.json().iter().any(&pred)).await;
        self.json().into_iter().find(pred)
    }

    async fn wait_close(&self, timeout: Duration) -> Option<Option<(u16, String)>> {
        self.wait(timeout, |i| i.close().is_some()).await;
        self.close()
    }

    /// The code of the server's close frame, once the connection has ended.
    async fn wait_close_code(&self, timeout: Duration) -> Option<u16> {
        self.wait_close(timeout).await.flatten().map(|c| c.0)
    }

    /// Wait until `audio` (μ-law or pcm16) holds `samples`; panics if it does not in time.
    async fn wait_samples(&self, audio: fn(&Inbox) -> Vec<i16>, samples: usize) {
        assert!(
            self.wait(WAIT, |i| audio(i).len() >= samples).await,
            "got {} samples back",
            audio(self).len()
        );
    }

    /// The connection ends with close `code` after an `error` message containing `text`.
    async fn assert_error_close(&self, text: &str, code: u16, what: &str) {
        let close = self.wait_close_code(WAIT).await;
        let error = self.json().into_iter().find(|v| is_type(v, "error"));
        assert!(
            error
                .as_ref()
                .is_some_and(|e| e["message"].as_str().is_some_and(|m| m.contains(text))),
            "{what}: error {error:?}"
        );
        assert_eq!(close, Some(code), "{what}");
    }
}

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// A WebSocket client whose reader task collects everything into an [`Inbox`].
pub(super) struct Client {
    tx: Sink,
    pub(super) inbox: Inbox,
}

impl Client {
    pub(super) async fn connect(url: &str) -> Client {
        Self::connect_with(url.into_client_request().unwrap())
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
    }

    /// Connect with `request`'s headers; the handshake's error when it is refused.
    async fn connect_with(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")?;
        let (tx, mut rx) = ws.split();
        let inbox = Inbox::default();
        let reader = inbox.clone();
        tokio::spawn(async move {
            loop {
                let got = match rx.next().await {
                    Some(Ok(Message::Text(t))) => Got::Text(Instant::now(), t.to_string()),
                    Some(Ok(Message::Binary(_))) => Got::Binary,
                    Some(Ok(Message::Close(frame))) => {
                        Got::Close(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => Got::Ended,
                };
                let end = matches!(got, Got::Ended);
                reader.got.lock().unwrap().push(got);
                reader.changed.notify_waiters();
                if end {
                    break;
                }
            }
        });
        Ok(Client { tx, inbox })
    }

    async fn send(&mut self, msg: Message) {
        tokio::time::timeout(WAIT, self.tx.send(msg))
            .await
            .expect("send in time")
            .expect("send");
    }

    pub(super) async fn send_json(&mut self, v: Value) {
        self.send(Message::Text(v.to_string().into())).await;
    }

    /// FastRTC's `start` with this `websocket_id`.
    async fn start(&mut self, id: &str) {
        self.send_json(json!({"event": "start", "websocket_id": id}))
            .await;
    }

    /// Send `seconds` of the test tone in 20 ms messages, in real time; `message` wraps
    /// each encoded chunk (already base64) in the protocol's media message.
    async fn send_tone(
        &mut self,
        seconds: f64,
        rate: u32,
        encode: fn(&[i16]) -> Vec<u8>,
        message: impl Fn(usize, String) -> Value,
    ) {
        let chunk = rate as usize / 50;
        let chunks = (seconds * 50.0) as usize;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..chunks {
            tick.tick().await;
            let pcm = signal::sine(TONE, 8000.0, rate, i * chunk, chunk);
            let payload = BASE64.encode(encode(&pcm));
            self.send_json(message(i, payload)).await;
        }
    }
}

fn to_pcm16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn from_pcm16(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

fn ws_media(_: usize, payload: String) -> Value {
    json!({"event": "media", "media": {"payload": payload}})
}

pub(super) fn twilio_media(sid: &'static str) -> impl Fn(usize, String) -> Value {
    move |i, payload| {
        json!({"event": "media", "sequenceNumber": (i + 2).to_string(), "streamSid": sid,
               "media": {"track": "inbound", "chunk": (i + 1).to_string(),
                         "timestamp": (i * 20).to_string(), "payload": payload}})
    }
}

pub(super) fn twilio_start(sid: &str) -> Value {
    json!({"event": "start", "sequenceNumber": "1", "streamSid": sid,
           "start": {"accountSid": "AC0", "streamSid": sid, "callSid": "CA0", "tracks": ["inbound"],
                     "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                     "customParameters": {}}})
}

fn is_type(v: &Value, kind: &str) -> bool {
    v["type"] == kind
}

/// The test tone came back: its frequency after the first `skip` samples of `audio`
/// (at `rate`); its level, returned.
fn assert_echoed_tone(audio: &[i16], skip: usize, rate: u32) -> f64 {
    let (f, rms) = signal::measure(audio, skip, rate);
    assert!((f - TONE).abs() < 5.0, "echoed frequency {f:.1} Hz");
    rms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_returns_the_tone_in_real_time() {
    let (addr, stream) = serve(guests::ECHO, StreamConfig::default()).await;
    let url = format!("ws://{addr}/websocket/offer");
    let mut client = Client::connect(&url).await;
    let inbox = client.inbox.clone();

    client.send_json(json!({"event": "ping"})).await;
    assert!(
        inbox
            .wait(WAIT, |i| i
                .texts()
                .iter()
                .any(|t| t == r#"{"event":"pong"}"#))
            .await,
        "no pong: {:?}",
        inbox.all()
    );

    client.start("ws-echo").await;
    assert!(
        poll_until(WAIT, || stream.connection_ids() == ["ws-echo"]).await,
        "not registered: {:?}",
        stream.connection_ids()
    );
    assert_eq!(stream.active_connections(), 1);

    // The same id again is refused, FastRTC-style, and closed.
    let mut twin = Client::connect(&url).await;
    twin.start("ws-echo").await;
    let twin_close = twin.inbox.wait_close_code(WAIT).await;
    assert_eq!(
        twin.inbox.texts(),
        [r#"{"status":"failed","meta":{"error":"connection_already_exists"}}"#]
    );
    assert_eq!(twin_close, Some(1000));

    client
        .send_tone(2.0, RATE, mulaw::encode_slice, ws_media)
        .await;
    let want = (RATE as usize) * 3 / 2;
    inbox.wait_samples(Inbox::mulaw_audio, want).await;

    // 20 ms chunks at the handler's output rate (48 kHz: 960 μ-law bytes).
    let payloads = inbox.payloads();
    assert!(
        payloads.iter().all(|p| p.len() == 960),
        "chunk sizes {:?}",
        payloads.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let rms = assert_echoed_tone(&inbox.mulaw_audio(), RATE as usize / 4, RATE);
    assert!(rms > 3000.0, "echoed level {rms:.0}");
    // Paced in real time: n chunks take about (n - 1) x 20 ms, not a burst.
    let media = inbox.media();
    let span = media.last().unwrap().0 - media[0].0;
    let ideal = Duration::from_millis(20) * (media.len() as u32 - 1);
    assert!(
        span >= ideal.mul_f64(0.75) && span <= ideal.mul_f64(1.5),
        "{} chunks over {span:?} (real time: {ideal:?})",
        media.len()
    );

    client.send_json(json!({"event": "stop"})).await;
    assert_eq!(inbox.wait_close_code(WAIT).await, Some(1000));
    assert!(
        poll_until(WAIT, || stream.active_connections() == 0
            && stream.connection_ids().is_empty())
        .await,
        "the slot was not released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_pcm16_mode_round_trips_at_the_negotiated_rate() {
    let (addr, stream) = serve(guests::ECHO, StreamConfig::default()).await;

    // Negotiated in the query: 16 kHz both ways (the guest runs at 48 kHz).
    let mut client = Client::connect(&format!(
        "ws://{addr}/websocket/offer?format=pcm16&sample_rate=16000"
    ))
    .await;
    client.start("pcm-query").await;
    client.send_tone(2.0, 16_000, to_pcm16, ws_media).await;
    let inbox = client.inbox.clone();
    inbox.wait_samples(Inbox::pcm16_audio, 24_000).await;
    assert!(
        inbox.payloads().iter().all(|p| p.len() == 640),
        "20 ms of 16 kHz pcm16 is 640 bytes"
    );
    let rms = assert_echoed_tone(&inbox.pcm16_audio(), 4_000, 16_000);
    assert!(
        (rms / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.2,
        "echoed level {rms:.0}"
    );
    client.send_json(json!({"event": "stop"})).await;
    assert!(client.inbox.wait_close(WAIT).await.is_some());

    // Negotiated in `start`: 24 kHz.
    let mut client = Client::connect(&format!("ws://{addr}/websocket/offer")).await;
    client
        .send_json(json!({"event": "start", "websocket_id": "pcm-start",
                          "format": "pcm16", "sample_rate": 24000}))
        .await;
    client.send_tone(1.5, 24_000, to_pcm16, ws_media).await;
    let inbox = client.inbox.clone();
    inbox.wait_samples(Inbox::pcm16_audio, 24_000).await;
    assert!(inbox.payloads().iter().all(|p| p.len() == 960));
    assert_echoed_tone(&inbox.pcm16_audio(), 6_000, 24_000);

    // A bad rate is refused with a readable error.
    let mut bad = Client::connect(&format!("ws://{addr}/websocket/offer?sample_rate=3")).await;
    bad.start("pcm-bad").await;
    bad.inbox
        .assert_error_close("sample_rate", 1008, "a bad rate")
        .await;
    drop(client);
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_gain_reacts_to_the_input_hook() {
    let (addr, _stream) = serve(guests::GAIN, StreamConfig::default()).await;
    let mut client = Client::connect(&format!("ws://{addr}/websocket/offer")).await;
    client.start("ws-gain").await;
    let inbox = client.inbox.clone();
    assert!(
        inbox
            .wait(WAIT, |i| i
                .texts()
                .iter()
                .any(|t| t == r#"{"type": "send_input", "data": []}"#))
            .await,
        "no send_input: {:?}",
        inbox.texts()
    );

    let sec = RATE as usize;
    let check = async {
        assert!(
            inbox.wait(WAIT, |i| i.mulaw_audio().len() >= sec).await,
            "no audio at gain 1"
        );
        let before = signal::rms(&inbox.mulaw_audio()[sec / 4..sec]);
        let reply = reqwest::Client::new()
            .post(format!("http://{addr}/input_hook"))
            .json(&json!({"webrtc_id": "ws-gain", "gain": 0.25}))
            .send()
            .await
            .expect("POST /input_hook");
        assert_eq!(reply.status(), 200);
        assert_eq!(
            reply.json::<Value>().await.unwrap(),
            json!({"status": "success"})
        );
        let from = inbox.mulaw_audio().len();
        // Skip 0.4 s for audio already on its way, then measure 0.6 s.
        assert!(
            inbox
                .wait(WAIT, |i| i.mulaw_audio().len() >= from + sec)
                .await,
            "audio stopped after the input"
        );
        let after = signal::rms(&inbox.mulaw_audio()[from + 2 * sec / 5..from + sec]);
        (before, after)
    };
    let (_, (before, after)) = tokio::join!(
        client.send_tone(3.5, RATE, mulaw::encode_slice, ws_media),
        check
    );
    let ratio = after / before;
    assert!(before > 3000.0, "level at gain 1: {before:.0}");
    assert!(
        (ratio - 0.25).abs() < 0.05,
        "level {before:.0} -> {after:.0}: ratio {ratio:.3}, expected 0.25"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telephone_echo_at_8khz_answers_marks() {
    let (addr, stream) = serve(guests::ECHO, StreamConfig::default()).await;
    let mut phone = Client::connect(&format!("ws://{addr}/telephone/handler")).await;
    let inbox = phone.inbox.clone();
    phone
        .send_json(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        .await;
    phone.send_json(twilio_start("MZ0001")).await;
    assert!(
        poll_until(WAIT, || stream.connection_ids() == ["MZ0001"]).await,
        "the call is not registered: {:?}",
        stream.connection_ids()
    );

    phone
        .send_tone(2.0, 8_000, mulaw::encode_slice, twilio_media("MZ0001"))
        .await;
    phone
        .send_json(
            json!({"event": "mark", "sequenceNumber": "200", "streamSid": "MZ0001",
                          "mark": {"name": "after-tone"}}),
        )
        .await;
    let mark = inbox
        .wait_text(WAIT, |v| v["event"] == "mark")
        .await
        .unwrap_or_else(|| panic!("no mark back: {:?}", inbox.texts()));
    assert_eq!(
        mark,
        json!({"event": "mark", "streamSid": "MZ0001", "mark": {"name": "after-tone"}})
    );
    inbox.wait_samples(Inbox::mulaw_audio, 12_000).await;
    let media = inbox.media();
    assert!(
        media.iter().all(|(_, m)| m["streamSid"] == "MZ0001"),
        "media without the streamSid"
    );
    assert!(
        inbox.payloads().iter().all(|p| p.len() == 160),
        "20 ms of 8 kHz μ-law is 160 bytes"
    );
    // The mark came back after the audio sent before it.
    let texts = inbox.json();
    let mark_at = texts.iter().position(|v| v["event"] == "mark").unwrap();
    let media_before = texts[..mark_at]
        .iter()
        .filter(|v| v["event"] == "media")
        .count();
    assert!(
        media_before >= 50,
        "only {media_before} chunks before the mark"
    );
    let rms = assert_echoed_tone(&inbox.mulaw_audio(), 2_000, 8_000);
    assert!(rms > 3000.0, "echoed level {rms:.0}");

    phone
        .send_json(
            json!({"event": "stop", "sequenceNumber": "201", "streamSid": "MZ0001",
                          "stop": {"accountSid": "AC0", "callSid": "CA0"}}),
        )
        .await;
    assert_eq!(inbox.wait_close_code(WAIT).await, Some(1000));
    assert!(poll_until(WAIT, || stream.active_connections() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telephone_twiml_keeps_the_host_and_port() {
    let (addr, _stream) = serve_at(guests::ECHO, StreamConfig::default(), "/phone").await;
    let url = format!("http://{addr}/phone/telephone/incoming");
    let http = reqwest::Client::new();
    let twiml = |stream_url: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Connecting to the AI assistant.</Say><Connect><Stream url="{stream_url}" /></Connect><Say>The call has been disconnected.</Say></Response>"#
        )
    };
    // The call's webhook, behind a proxy that sets `headers`.
    let incoming = async |headers: &[(&str, &str)]| {
        let mut request = http.post(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    };

    let reply = incoming(&[]).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "application/xml");
    assert_eq!(
        reply.text().await.unwrap(),
        twiml(&format!("ws://{addr}/phone/telephone/handler")),
        "loopback without X-Forwarded-Proto: plain ws, port kept"
    );

    // Behind a proxy: its host, and wss unless it says plain http.
    let proxied: [(&[(&str, &str)], &str); 3] = [
        (
            &[
                ("X-Forwarded-Host", "calls.example.com:8443"),
                ("X-Forwarded-Proto", "https"),
            ],
            "wss://calls.example.com:8443/phone/telephone/handler",
        ),
        (
            &[("X-Forwarded-Host", "calls.example.com, proxy.internal")],
            "wss://calls.example.com/phone/telephone/handler",
        ),
        (
            &[
                ("X-Forwarded-Host", "10.1.2.3:8000"),
                ("X-Forwarded-Proto", "http"),
            ],
            "ws://10.1.2.3:8000/phone/telephone/handler",
        ),
    ];
    for (headers, stream_url) in proxied {
        assert_eq!(
            incoming(headers).await.text().await.unwrap(),
            twiml(stream_url),
            "headers {headers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_concurrency_limit_across_websocket_telephone_and_webrtc() {
    let config = StreamConfig {
        concurrency_limit: Some(1),
        ..StreamConfig::default()
    };
    let (addr, stream) = serve(guests::ECHO, config).await;
    let mut ws = Client::connect(&format!("ws://{addr}/websocket/offer")).await;
    ws.start("ws-first").await;
    assert!(poll_until(WAIT, || stream.active_connections() == 1).await);

    // A call while the WebSocket holds the only slot.
    let mut phone = Client::connect(&format!("ws://{addr}/telephone/handler")).await;
    phone.send_json(twilio_start("MZfull")).await;
    let close = phone.inbox.wait_close_code(WAIT).await;
    assert_eq!(
        phone.inbox.texts(),
        [r#"{"status":"failed","meta":{"error":"concurrency_limit_reached","limit":1}}"#]
    );
    assert_eq!(close, Some(1000));

    // A WebRTC offer meets the same limit (refused before its SDP is looked at).
    let reply: Value = reqwest::Client::new()
        .post(format!("http://{addr}/webrtc/offer"))
        .json(&json!({"sdp": "v=0\r\n", "type": "offer", "webrtc_id": "rtc"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply,
        json!({"status": "failed", "meta": {"error": "concurrency_limit_reached", "limit": 1}})
    );

    // The WebSocket leaves: the call gets in, and now holds the slot.
    ws.send_json(json!({"event": "stop"})).await;
    assert!(ws.inbox.wait_close(WAIT).await.is_some());
    assert!(poll_until(WAIT, || stream.active_connections() == 0).await);
    let mut phone = Client::connect(&format!("ws://{addr}/telephone/handler")).await;
    phone.send_json(twilio_start("MZnext")).await;
    assert!(
        poll_until(WAIT, || stream.connection_ids() == ["MZnext"]).await,
        "the call was not admitted: {:?}",
        phone.inbox.texts()
    );
    let mut late = Client::connect(&format!("ws://{addr}/websocket/offer")).await;
    late.start("ws-late").await;
    late.inbox.wait_close(WAIT).await;
    assert_eq!(
        late.inbox.texts(),
        [r#"{"status":"failed","meta":{"error":"concurrency_limit_reached","limit":1}}"#]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_warns_then_closes_websockets_and_calls() {
    let config = StreamConfig {
        time_limit: Some(Duration::from_secs(2)),
        ..StreamConfig::default()
    };
    let (addr, stream) = serve(guests::ECHO, config).await;
    let mut ws = Client::connect(&format!("ws://{addr}/websocket/offer")).await;
    let mut phone = Client::connect(&format!("ws://{addr}/telephone/handler")).await;
    let started = Instant::now();
    ws.start("ws-timed").await;
    phone.send_json(twilio_start("MZtimed")).await;

    for (client, what) in [(&ws, "websocket"), (&phone, "telephone")] {
        let inbox = &client.inbox;
        let close = inbox.wait_close_code(WAIT).await;
        let elapsed = started.elapsed();
        assert_eq!(close, Some(1000), "{what}");
        assert!(
            elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(6),
            "{what} closed after {elapsed:?}"
        );
        let messages = inbox.json();
        let warning = messages.iter().position(|v| is_type(v, "warning"));
        let end = messages
            .iter()
            .position(|v| *v == json!({"type": "end_stream", "data": "time limit reached"}));
        assert!(
            warning.is_some() && end.is_some() && warning < end,
            "{what}: {messages:?}"
        );
    }
    assert!(poll_until(WAIT, || stream.active_connections() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_end_only_their_connection() {
    let (addr, stream) = serve(guests::ECHO, StreamConfig::default()).await;
    let url = format!("ws://{addr}/websocket/offer");
    let mut good = Client::connect(&url).await;
    good.start("good").await;
    let inbox = good.inbox.clone();

    let abuse = async {
        // Let the good client's audio flow first.
        assert!(
            inbox.wait(WAIT, |i| i.media().len() >= 10).await,
            "the good client gets no audio"
        );
        let big = format!(
            r#"{{"event":"media","media":{{"payload":"{}"}}}}"#,
            "A".repeat(1_500_000)
        );
        let cases: Vec<(&str, Vec<Message>, u16, &str)> = vec![
            (
                "not JSON",
                vec![Message::Text("hello".into())],
                1008,
                "not JSON",
            ),
            (
                "bad base64",
                vec![
                    Message::Text(
                        json!({"event": "start", "websocket_id": "b64"})
                            .to_string()
                            .into(),
                    ),
                    Message::Text(
                        json!({"event": "media", "media": {"payload": "%%%not base64%%%"}})
                            .to_string()
                            .into(),
                    ),
                ],
                1008,
                "base64",
            ),
            (
                "binary",
                vec![Message::Binary(vec![1u8, 2, 3].into())],
                1003,
                "binary",
            ),
            (
                "oversized",
                vec![Message::Text(big.into())],
                1008,
                "larger than",
            ),
            (
                "media before start",
                vec![Message::Text(
                    json!({"event": "media", "media": {"payload": ""}})
                        .to_string()
                        .into(),
                )],
                1008,
                "before start",
            ),
            ("no event", vec![Message::Text("{}".into())], 1008, "event"),
            (
                "oversized mark name",
                vec![
                    Message::Text(
                        json!({"event": "start", "websocket_id": "marks"})
                            .to_string()
                            .into(),
                    ),
                    Message::Text(
                        json!({"event": "mark", "mark": {"name": "m".repeat(10_000)}})
                            .to_string()
                            .into(),
                    ),
                ],
                1008,
                "mark name",
            ),
        ];
        for (what, frames, code, text) in cases {
            let mut bad = Client::connect(&url).await;
            for f in frames {
                bad.send(f).await;
            }
            bad.inbox.assert_error_close(text, code, what).await;
        }
        inbox.media().len()
    };
    let (_, chunks_before) = tokio::join!(
        good.send_tone(3.0, RATE, mulaw::encode_slice, ws_media),
        abuse
    );
    // The good client kept its audio through all of that.
    assert!(
        inbox
            .wait(WAIT, |i| i.media().len() >= chunks_before + 10)
            .await,
        "the good client's audio stopped"
    );
    assert_echoed_tone(&inbox.mulaw_audio(), RATE as usize / 4, RATE);
    assert!(inbox.close().is_none(), "the good client was closed");
    assert!(
        poll_until(WAIT, || stream.connection_ids() == ["good"]).await,
        "slots of the bad clients not released: {:?}",
        stream.connection_ids()
    );
    assert_eq!(stream.active_connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_failure_is_reported_and_closes() {
    let (addr, stream) = serve(guests::HOSTILE_TRAP, StreamConfig::default()).await;
    let mut client = Client::connect(&format!("ws://{addr}/websocket/offer")).await;
    client.start("trap").await;
    // One 20 ms chunk: the first frame traps, and the socket closes.
    client
        .send_json(ws_media(0, BASE64.encode(vec![0xFFu8; 960])))
        .await;
    client
        .inbox
        .assert_error_close("trapped", 1011, "a trap")
        .await;
    assert!(poll_until(WAIT, || stream.active_connections() == 0).await);
}

/// Twilio's signature of `url` with form `params`: `base64(HMAC-SHA1(token, url +
/// each name and value, sorted by name))`.
fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let signed: String = std::iter::once(url.to_string())
        .chain(sorted.iter().map(|(k, v)| format!("{k}{v}")))
        .collect();
    super::ice::expected_credential(token, &signed)
}

/// With `[telephone] twilio_auth_token` set, the call's webhook and its Media Streams
/// socket take only requests signed with that token: unsigned, wrongly signed, and
/// tampered requests get 403 and are counted; signed ones get the TwiML and a call
/// that echoes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telephone_takes_only_requests_twilio_signed_when_an_auth_token_is_set() {
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";
    let dir = wasmrtc_tests::scratch_dir("websocket", "twilio-signature");
    std::fs::write(dir.join("twilio-token"), format!("{TOKEN}\n")).unwrap();
    let config = dir.join("wasmrtc.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[secrets]\ntwilio = {{ file = \"twilio-token\" }}\n\
             [telephone]\ntwilio_auth_token = \"twilio\"\n\
             [[stream]]\nname = \"phone\"\ncomponent = \"{}\"\n",
            guests::ECHO
        ),
    )
    .unwrap();
    let host = wasmrtc_tests::start_host_with_config(&config);
    let base = format!("{}/streams/phone", host.base);
    let incoming = format!("{base}/telephone/incoming");
    let params = [
        ("AccountSid", "AC0000"),
        ("CallSid", "CA0001"),
        ("From", "+15550001111"),
        ("To", "+15550002222"),
    ];
    let http = reqwest::Client::new();
    let post = async |signature: Option<String>, params: &[(&str, &str)]| {
        let body: String = params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B")))
            .collect::<Vec<_>>()
            .join("&");
        let mut request = http
            .post(&incoming)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        request.send().await.unwrap()
    };

    let signed = twilio_signature(TOKEN, &incoming, &params);
    let reply = post(Some(signed.clone()), &params).await;
    assert_eq!(reply.status(), 200);
    let stream_url = incoming
        .replace("http://", "ws://")
        .replace("incoming", "handler");
    assert!(reply.text().await.unwrap().contains(&stream_url));

    let refusals = [
        ("unsigned", post(None, &params).await),
        (
            "signed with another token",
            post(
                Some(twilio_signature("another-token", &incoming, &params)),
                &params,
            )
            .await,
        ),
        (
            "a parameter changed after signing",
            post(
                Some(signed.clone()),
                &[
                    ("AccountSid", "AC0000"),
                    ("CallSid", "CA9999"),
                    ("From", "+15550001111"),
                    ("To", "+15550002222"),
                ],
            )
            .await,
        ),
        ("garbage", post(Some("x".repeat(4000)), &params).await),
    ];
    for (what, reply) in refusals {
        assert_eq!(reply.status(), 403, "{what}");
        assert!(
            reply.text().await.unwrap().contains("X-Twilio-Signature"),
            "{what}: the refusal names the header"
        );
    }

    // The Media Streams socket: refused unsigned, taken signed, and the call echoes.
    let refused = Client::connect_with(stream_url.as_str().into_client_request().unwrap()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        Err(e) => panic!("unexpected handshake error {e}"),
        Ok(_) => panic!("an unsigned Media Streams socket was taken"),
    }
    let mut request = stream_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "X-Twilio-Signature",
        twilio_signature(TOKEN, &stream_url, &[]).parse().unwrap(),
    );
    let mut phone = Client::connect_with(request)
        .await
        .expect("a signed socket");
    let inbox = phone.inbox.clone();
    phone
        .send_json(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        .await;
    phone.send_json(twilio_start("MZ0009")).await;
    phone
        .send_tone(1.0, 8_000, mulaw::encode_slice, twilio_media("MZ0009"))
        .await;
    inbox.wait_samples(Inbox::mulaw_audio, 4_000).await;

    let metrics = wasmrtc_tests::metrics_text(&host.base).await;
    assert!(
        metrics.contains("wasmrtc_client_refused_total{reason=\"twilio_signature\"} 5\n"),
        "four webhook refusals and one socket refusal are counted:\n{metrics}"
    );
    assert!(!metrics.contains(TOKEN));
    let _ = std::fs::remove_dir_all(&dir);
}

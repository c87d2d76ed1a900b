//! End to end over real WebRTC: an independent client (webrtc-rs, `wasmrtc_tests::peer`)
//! talks FastRTC's protocol to a wasmrtc server on 127.0.0.1, with media, the data
//! channel and the HTTP hooks. Each test starts its own server and bounds every wait.

use std::time::Duration;

use serde_json::{Value, json};
use wasmrtc::runtime::{HandlerComponent, InstanceLimits};
use wasmrtc::{Stream, StreamConfig, Transport};
use wasmrtc_tests::peer::{
    self, Media, Outputs, PeerOptions, Rejected, TestPeer, VideoCodec, mean_luma, serve_guest,
    test_pattern,
};
use wasmrtc_tests::{checks, guests, signal, test_runtime};

/// Longest wait for anything to happen.
const WAIT: Duration = Duration::from_secs(15);
const RATE: usize = peer::AUDIO_RATE as usize;

async fn component(name: &str, path: &str) -> HandlerComponent {
    test_runtime().load_file(name, path).await.expect(path)
}

fn transport() -> Transport {
    Transport::bind("127.0.0.1:0".parse().unwrap(), None).expect("bind the UDP socket")
}

/// `hostile-loop` on `transport`, with a CPU budget of 20 ms a call: its first frame
/// fails.
async fn looping(transport: Transport) -> Stream {
    let limits = InstanceLimits {
        cpu_per_call: Duration::from_millis(20),
        ..Default::default()
    };
    let component = component("hostile", guests::HOSTILE_LOOP).await;
    Stream::new(
        component.with_limits(limits),
        transport,
        StreamConfig::default(),
    )
}

fn rejection(result: anyhow::Result<TestPeer>) -> Rejected {
    match result {
        Ok(_) => panic!("the offer was accepted"),
        Err(e) => e
            .downcast_ref::<Rejected>()
            .cloned()
            .unwrap_or_else(|| panic!("not a rejection: {e:#}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_returns_the_sine_and_answers_on_the_data_channel() {
    let (base, _stream) = serve_guest(guests::ECHO, StreamConfig::default()).await;
    let mut client = peer::connect(&base, Media::SendRecv, Media::None).await;

    client.send_text("handshake").await.unwrap();
    let expected = json!({"type": "log", "data": "Server received: handshake"});
    let log = client.wait_message(WAIT, |m| *m == expected).await;
    assert!(
        log.is_some(),
        "no handshake echo; messages: {:?}",
        client.messages()
    );

    assert!(
        client.wait_audio(3 * RATE, WAIT).await,
        "got {} samples back (sent {})",
        client.audio_len(),
        client.audio_sent()
    );
    let (f, rms) = signal::measure(&client.audio(), RATE / 2, peer::AUDIO_RATE);
    eprintln!("echo: {f:.1} Hz, rms {rms:.0}");
    assert!((f - 1000.0).abs() < 20.0, "echoed frequency {f:.1} Hz");
    assert!(
        rms > 2000.0,
        "echoed level {rms:.0} (sent a sine of rms {:.0})",
        8000.0 / 2f64.sqrt()
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gain_input_scales_the_returned_level() {
    let (base, _stream) = serve_guest(guests::GAIN, StreamConfig::default()).await;
    let mut client = peer::connect(&base, Media::SendRecv, Media::None).await;
    assert!(
        client.wait_message_type(WAIT, "send_input").await.is_some(),
        "no send_input; messages: {:?}",
        client.messages()
    );

    // Gain 1 (the default): 1.5 s of audio, the first 0.5 s skipped.
    let before = client.level(RATE / 2..2 * RATE, WAIT).await;

    // Values are checked against the declared input: 422 naming the field.
    let (status, reply) = client.set_input(json!({"gain": 5.0})).await.unwrap();
    assert_eq!(status, 422, "{reply}");
    assert_eq!(
        reply["detail"][0]["loc"],
        json!(["body", "gain"]),
        "{reply}"
    );
    let (status, reply) = client.set_input(json!({"volume": 1.0})).await.unwrap();
    assert_eq!(status, 422, "{reply}");
    assert_eq!(
        reply["detail"][0]["loc"],
        json!(["body", "volume"]),
        "{reply}"
    );

    checks::quarter_gain(&client, before, "gain", WAIT).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tone_reaches_a_receive_only_client() {
    let (base, _stream) = serve_guest(guests::TONE, StreamConfig::default()).await;
    let mut client = peer::connect(&base, Media::Recv, Media::None).await;
    assert!(
        client.wait_audio(2 * RATE, WAIT).await,
        "only {} samples of tone",
        client.audio_len()
    );
    let (f, rms) = signal::measure(&client.audio(), RATE / 2, peer::AUDIO_RATE);
    eprintln!("tone: {f:.1} Hz, rms {rms:.0}");
    assert!((f - 440.0).abs() < 10.0, "tone at {f:.1} Hz");
    assert!(rms > 2000.0, "tone level {rms:.0}");
    assert_eq!(
        client.audio_sent(),
        0,
        "a receive-only client sends no audio"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_warns_then_ends_its_stream() {
    // `tone` with a duration calls `notify(warning)` a second before the end, then
    // `close-stream`: the client gets FastRTC's `warning`, then `end_stream`, and the
    // audio stops after about the duration.
    let (base, stream) = serve_guest(guests::TONE, StreamConfig::default()).await;
    let client = peer::connect(&base, Media::Recv, Media::None).await;
    let (status, reply) = client.set_input(json!({"duration": 2.0})).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    let warning = client
        .wait_message_type(WAIT, "warning")
        .await
        .expect("a warning before the end");
    assert_eq!(warning["message"], "the tone ends in 1 second", "{warning}");
    let end = client
        .wait_message_type(WAIT, "end_stream")
        .await
        .expect("end_stream from close-stream");
    assert_eq!(end["data"], "the tone has played for its duration", "{end}");
    let kinds: Vec<String> = client
        .messages()
        .iter()
        .filter_map(|m| m["type"].as_str().map(str::to_string))
        .filter(|k| k == "warning" || k == "end_stream")
        .collect();
    assert_eq!(kinds, ["warning", "end_stream"], "in that order, once each");
    // The host ends the connection: its slot is released.
    assert!(
        peer::poll_until(WAIT, || stream.active_connections() == 0).await,
        "the connection was not released"
    );
    let seconds = client.audio_len() as f64 / f64::from(peer::AUDIO_RATE);
    eprintln!("tone with duration 2 s: {seconds:.2} s of audio received");
    assert!(
        (1.0..3.0).contains(&seconds),
        "{seconds:.2} s of audio for a 2 s tone"
    );
}

/// Mean luma of columns `cols` over every row of an I420 picture.
fn column_luma(picture: &wasmrtc::media::Picture, cols: std::ops::Range<usize>) -> f64 {
    let (y, _, _) = picture.planes().expect("an I420 picture");
    let w = picture.width as usize;
    let sum: u64 = y
        .chunks_exact(w)
        .flat_map(|row| row[cols.clone()].iter().map(|&v| u64::from(v)))
        .sum();
    sum as f64 / (cols.len() * picture.height as usize) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_are_generated_for_a_receive_only_client() {
    // Video receive: `next-video` paced by the host at the declared 15 fps; the client
    // sends no video. The first bar is white, the last black; the slider dims them.
    let (base, _stream) = serve_guest(guests::BARS, StreamConfig::default()).await;
    let mut client = peer::connect(&base, Media::None, Media::Recv).await;
    assert!(
        client.wait_video(10, WAIT).await,
        "{} frames received",
        client.video_frames()
    );
    let picture = client.pictures().pop().expect("a decoded picture");
    assert_eq!((picture.width, picture.height), (320, 240));
    let (white, black) = (
        column_luma(&picture, 5..35),
        column_luma(&picture, 285..315),
    );
    eprintln!("bars: white bar luma {white:.0}, black bar luma {black:.0}");
    assert!(
        white > 180.0 && black < 60.0,
        "white {white:.0}, black {black:.0}"
    );
    assert_eq!(
        client.video_sent(),
        0,
        "a receive-only client sends no video"
    );

    let (status, reply) = client.set_input(json!({"brightness": 0.25})).await.unwrap();
    assert_eq!(status, 200, "{reply}");
    let mut dimmed = white;
    peer::poll_until(WAIT, || {
        dimmed = client
            .pictures()
            .pop()
            .map_or(white, |p| column_luma(&p, 5..35));
        dimmed < 110.0
    })
    .await;
    eprintln!("bars at brightness 0.25: white bar luma {dimmed:.0}");
    assert!(dimmed < 110.0, "the white bar stayed at luma {dimmed:.0}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_reports_the_level_and_pitch_of_the_sent_audio() {
    // Audio send: `on-audio` only, outputs over SSE, no audio back. The peer sends a
    // 1 kHz sine of peak 8000: -15.3 dBFS.
    let (base, _stream) = serve_guest(guests::METER, StreamConfig::default()).await;
    let mut client = peer::connect(&base, Media::Send, Media::None).await;
    let mut outputs = client.outputs().await.unwrap();
    let mut last = None;
    // Skip the first windows (they may hold the start of the stream).
    for _ in 0..4 {
        last = outputs.next(WAIT).await;
        assert!(
            last.is_some(),
            "no output; messages: {:?}",
            client.messages()
        );
    }
    let output = last.unwrap();
    let level = output["level"].as_f64().expect("a level");
    let pitch = output["pitch"].as_f64().expect("a pitch");
    eprintln!("meter: {level:.1} dBFS, {pitch:.0} Hz");
    assert!((level - -15.3).abs() < 3.0, "level {level:.1} dBFS");
    assert!((pitch - 1000.0).abs() < 30.0, "pitch {pitch:.0} Hz");
    assert_eq!(
        client.audio_packets(),
        0,
        "a send-only client gets no audio"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flip_returns_the_video_upside_down() {
    let (base, _stream) = serve_guest(guests::FLIP, StreamConfig::default()).await;
    let sent = test_pattern(320, 240, 0, 0);
    assert!(mean_luma(&sent, 8..120) > 200.0 && mean_luma(&sent, 120..240) < 30.0);
    let mut client = peer::connect(&base, Media::None, Media::SendRecv).await;
    checks::flipped_video(&client, "flip", WAIT).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brightness_is_reported_on_the_channel_and_over_sse() {
    let (base, _stream) = serve_guest(guests::BRIGHTNESS, StreamConfig::default()).await;
    let mut client = peer::connect(&base, Media::None, Media::Send).await;
    let mut outputs = client.outputs().await.unwrap();

    assert!(
        client
            .wait_message_type(WAIT, "fetch_output")
            .await
            .is_some(),
        "no fetch_output; messages: {:?}",
        client.messages()
    );
    checks::reported_brightness(&mut outputs, "brightness", WAIT).await;
    assert_eq!(
        client.video_packets(),
        0,
        "a send-only client gets no video"
    );
    let id = client.webrtc_id().to_string();
    client.close().await;
    // The open SSE stream ends with the connection instead of polling forever…
    let mut ended = false;
    for _ in 0..600 {
        if outputs.next(WAIT).await.is_none() {
            ended = true;
            break;
        }
    }
    assert!(ended, "the outputs stream ended with the connection");
    // …and the id is unknown afterwards: 404, not an endless stream.
    let mut refused = false;
    for _ in 0..150 {
        if Outputs::open(&base, &id).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "/outputs for a closed connection is refused");
}

/// A client that offers H.264 only, with these audio and video directions.
fn h264(audio: Media, video: Media) -> PeerOptions {
    PeerOptions {
        video_codec: VideoCodec::H264,
        ..PeerOptions::new(audio, video)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_client_gets_its_video_flipped() {
    let (base, _stream) = serve_guest(guests::FLIP, StreamConfig::default()).await;
    let mut client = TestPeer::connect(&base, h264(Media::None, Media::SendRecv))
        .await
        .unwrap_or_else(|e| panic!("connect with H.264: {e:#}"));
    checks::flipped_video(&client, "flip over H.264", WAIT).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_clients_brightness_is_reported() {
    let (base, _stream) = serve_guest(guests::BRIGHTNESS, StreamConfig::default()).await;
    let mut client = TestPeer::connect(&base, h264(Media::None, Media::Send))
        .await
        .unwrap_or_else(|e| panic!("connect with H.264: {e:#}"));
    let mut outputs = client.outputs().await.unwrap();
    checks::reported_brightness(&mut outputs, "brightness over H.264", WAIT).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_handler_errors_while_another_stream_keeps_echoing() {
    let shared = transport();
    let hostile = looping(shared.clone()).await;
    let echo = Stream::new(
        component("echo", guests::ECHO).await,
        shared,
        StreamConfig::default(),
    );
    let router = hostile.mount(echo.mount(axum::Router::new(), "/b"), "/a");
    let (addr, _server) = peer::serve_router(router).await;

    let mut benign = peer::connect(&format!("http://{addr}/b"), Media::SendRecv, Media::None).await;
    assert!(
        benign.wait_audio(RATE / 2, WAIT).await,
        "echo did not start"
    );

    let mut looping =
        peer::connect(&format!("http://{addr}/a"), Media::SendRecv, Media::None).await;
    let error = looping.wait_message_type(WAIT, "error").await;
    let error =
        error.unwrap_or_else(|| panic!("no error message; messages: {:?}", looping.messages()));
    assert!(
        error.get("message").and_then(Value::as_str).is_some(),
        "{error}"
    );
    assert!(
        peer::poll_until(WAIT, || hostile.active_connections() == 0).await,
        "the failed connection was not released"
    );

    // The echo goes on: another second arrives, still the sine.
    let from = benign.audio_len();
    assert!(
        benign.wait_audio(from + RATE, WAIT).await,
        "the echo stopped"
    );
    let second = &benign.audio()[from..from + RATE];
    let f = signal::frequency(second, peer::AUDIO_RATE);
    eprintln!("hostile: {error}; echo goes on at {f:.1} Hz");
    assert!(
        (f - 1000.0).abs() < 20.0,
        "echo at {f:.1} Hz after the failure"
    );
    assert_eq!(echo.active_connections(), 1);
    looping.close().await;
    benign.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_signaling_rejects_a_body_without_webrtc_id() {
    let (base, _stream) = serve_guest(guests::ECHO, StreamConfig::default()).await;
    let (status, reply) = peer::post_offer(&base, &json!({"sdp": "v=0\r\n", "type": "offer"}))
        .await
        .unwrap();
    assert_eq!(status, 422, "{reply}");
    assert_eq!(
        reply.pointer("/detail/0/loc"),
        Some(&json!(["body", "webrtc_id"])),
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_signaling_garbage_sdp_releases_its_slot() {
    let config = StreamConfig {
        concurrency_limit: Some(1),
        ..Default::default()
    };
    let (base, stream) = serve_guest(guests::ECHO, config).await;
    let body = json!({"sdp": "this is not SDP", "type": "offer", "webrtc_id": "garbage"});
    let (status, reply) = peer::post_offer(&base, &body).await.unwrap();
    assert_ne!(
        reply.get("type").and_then(Value::as_str),
        Some("answer"),
        "{reply}"
    );
    assert_eq!(
        (status, reply.pointer("/meta/error")),
        (400, Some(&json!("invalid_sdp"))),
        "{reply}"
    );
    assert_eq!(stream.active_connections(), 0);

    let mut client = peer::connect(&base, Media::SendRecv, Media::None).await;
    assert!(
        client.wait_audio(RATE / 2, WAIT).await,
        "no echo after the bad offer"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_signaling_refuses_a_reused_webrtc_id() {
    let (base, _stream) = serve_guest(guests::ECHO, StreamConfig::default()).await;
    let options = PeerOptions {
        webrtc_id: Some("twice".into()),
        ..PeerOptions::new(Media::SendRecv, Media::None)
    };
    let mut first = TestPeer::connect(&base, options.clone())
        .await
        .expect("first");
    let rejected = rejection(TestPeer::connect(&base, options).await);
    assert_eq!(rejected.status, 200, "{rejected}");
    assert_eq!(
        rejected.error_code(),
        Some("connection_already_exists"),
        "{rejected}"
    );
    first.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_signaling_refuses_video_to_an_audio_stream() {
    let (base, stream) = serve_guest(guests::ECHO, StreamConfig::default()).await;
    let rejected = rejection(
        TestPeer::connect(&base, PeerOptions::new(Media::SendRecv, Media::SendRecv)).await,
    );
    assert_eq!(rejected.status, 400, "{rejected}");
    assert_eq!(
        rejected.error_code(),
        Some("invalid_track_kind"),
        "{rejected}"
    );
    assert_eq!(stream.active_connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_signaling_enforces_the_concurrency_limit() {
    let config = StreamConfig {
        concurrency_limit: Some(1),
        ..Default::default()
    };
    let (base, stream) = serve_guest(guests::ECHO, config).await;
    let mut first = peer::connect(&base, Media::SendRecv, Media::None).await;
    assert_eq!(stream.active_connections(), 1);

    let rejected =
        rejection(TestPeer::connect(&base, PeerOptions::new(Media::SendRecv, Media::None)).await);
    assert_eq!(rejected.status, 200, "{rejected}");
    assert_eq!(
        rejected.body,
        json!({"status": "failed", "meta": {"error": "concurrency_limit_reached", "limit": 1}})
    );

    first.close().await;
    assert!(
        peer::poll_until(WAIT, || stream.active_connections() == 0).await,
        "the closed connection still holds its slot ({} active)",
        stream.active_connections()
    );
    let mut third = peer::connect(&base, Media::SendRecv, Media::None).await;
    assert!(
        third.wait_audio(RATE / 2, WAIT).await,
        "no echo for the admitted client"
    );
    third.close().await;
}

/// Like a browser, start sending audio as soon as the connection is up: the handler fails
/// on the first packet, before the data channel has opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_failing_before_the_channel_opens_still_reports_its_error() {
    let stream = looping(transport()).await;
    let (addr, _server) = peer::serve(stream.clone()).await;
    let options = PeerOptions {
        media_after_channel: false,
        ..PeerOptions::new(Media::SendRecv, Media::None)
    };
    let mut client = TestPeer::connect(&format!("http://{addr}"), options)
        .await
        .expect("connect");
    let error = client.wait_message_type(WAIT, "error").await;
    assert!(
        error.is_some(),
        "no error message; messages: {:?}",
        client.messages()
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_keeps_failing_is_refused_for_a_while() {
    use wasmrtc::runtime::breaker::THRESHOLD;
    // The trap handler dies on its first frame; after THRESHOLD such deaths in a row,
    // new offers are refused (no handshake, no instance) with a readable reason, while
    // another stream of the same host keeps admitting.
    let (base, stream) = serve_guest(guests::HOSTILE_TRAP, StreamConfig::default()).await;
    let (echo, _echo) = serve_guest(guests::ECHO, StreamConfig::default()).await;
    for i in 0..THRESHOLD {
        let mut client = peer::connect(&base, Media::SendRecv, Media::None).await;
        assert!(
            client.wait_message_type(WAIT, "error").await.is_some(),
            "connection {i}: no error; messages: {:?}",
            client.messages()
        );
        client.close().await;
    }
    assert!(
        peer::poll_until(WAIT, || stream.active_connections() == 0).await,
        "the failed connections were not released"
    );
    let refused =
        rejection(TestPeer::connect(&base, PeerOptions::new(Media::SendRecv, Media::None)).await);
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.error_code(), Some("handler_unavailable"));
    let message = refused.body["meta"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("keeps failing"), "{message}");
    // The WebSocket route refuses too: the failed JSON, then close 1013 (try again later).
    let ws_url = format!("{}/websocket/offer", base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(
        json!({"event": "start", "websocket_id": peer::new_webrtc_id()}).to_string(),
    ))
    .await
    .unwrap();
    let mut reply = None;
    let mut close_code = None;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(WAIT, ws.next()).await {
        match m {
            Message::Text(t) => reply = serde_json::from_str::<Value>(&t).ok(),
            Message::Close(c) => {
                close_code = c.map(|c| u16::from(c.code));
                break;
            }
            _ => {}
        }
    }
    let reply = reply.expect("a reply before the close");
    assert_eq!(reply["meta"]["error"], "handler_unavailable", "{reply}");
    assert_eq!(close_code, Some(1013));
    let mut healthy = peer::connect(&echo, Media::SendRecv, Media::None).await;
    assert!(
        healthy.wait_audio(RATE / 2, WAIT).await,
        "the other stream stopped admitting"
    );
    healthy.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_limit_warns_then_ends_the_stream() {
    let config = StreamConfig {
        time_limit: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    let (base, stream) = serve_guest(guests::ECHO, config).await;
    let mut client = peer::connect(&base, Media::SendRecv, Media::None).await;
    assert!(
        client.wait_message_type(WAIT, "warning").await.is_some(),
        "no warning"
    );
    let end = client.wait_message_type(WAIT, "end_stream").await;
    assert_eq!(
        end,
        Some(json!({"type": "end_stream", "data": "time limit reached"})),
        "{:?}",
        client.messages()
    );
    let closed = client.wait_message_type(WAIT, "update_connection").await;
    assert_eq!(
        closed,
        Some(json!({"type": "update_connection", "data": "closed"}))
    );
    assert!(peer::poll_until(WAIT, || stream.active_connections() == 0).await);
    client.close().await;
}

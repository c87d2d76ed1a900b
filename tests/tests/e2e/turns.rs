//! Turn-taking end to end (FastRTC's `ReplyOnPause`): the `parrot` guest replies to
//! each utterance of synthesized speech (espeak-ng) by playing it back, over a real
//! WebRTC peer and a Twilio-style telephone socket; its Python and JavaScript twins
//! (built by `examples-guests/build-languages.sh`) do the same. Timings are printed;
//! assertions on time are generous bounds, never tight figures.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use wasmrtc::media::mulaw;
use wasmrtc::runtime::{AudioFrame, HandlerInstance, HostEvent, NotifyLevel, Value as Input};
use wasmrtc::{Stream, StreamConfig};
use wasmrtc_tests::peer::{self, AUDIO_RATE, AudioFeed, Media, PeerOptions, TestPeer};
use wasmrtc_tests::{guests, signal, speech, test_runtime};

use super::languages::built;
use super::websocket::{self, Client};

/// Longest wait for anything to happen.
const WAIT: Duration = Duration::from_secs(20);
/// The parrot's pause before it replies (its `describe-turns`).
const PAUSE: Duration = Duration::from_millis(500);

const SENTENCES: [&str; 3] = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get this message.",
    "Seven green apples fell from the tall tree.",
];

/// The log messages of turn-taking, plus `fetch_output`, in the order they came.
fn turn_events(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m["type"].as_str() {
            Some("fetch_output") => Some("fetch_output".to_string()),
            Some("log") => {
                let data = m["data"].as_str()?;
                [
                    "started_talking",
                    "pause_detected",
                    "response_starting",
                    "playback_finished",
                ]
                .contains(&data)
                .then(|| data.to_string())
            }
            _ => None,
        })
        .collect()
}

/// How many replies the peer was told had finished playing.
fn finished_replies(peer: &TestPeer) -> usize {
    turn_events(&peer.messages())
        .iter()
        .filter(|e| *e == "playback_finished")
        .count()
}

/// One reply's events, as FastRTC orders them (the parrot emits an output first).
const ONE_TURN: [&str; 5] = [
    "started_talking",
    "pause_detected",
    "fetch_output",
    "response_starting",
    "playback_finished",
];

/// A reply cut by the caller, then the caller's new turn answered in full: no
/// `playback_finished` for the cut reply.
const INTERRUPTED_TURN: [&str; 9] = [
    "started_talking",
    "pause_detected",
    "fetch_output",
    "response_starting",
    "started_talking",
    "pause_detected",
    "fetch_output",
    "response_starting",
    "playback_finished",
];

async fn serve_parrot() -> (String, Stream) {
    peer::serve_guest(guests::PARROT, StreamConfig::default()).await
}

async fn connect_speaker(base: &str) -> (TestPeer, AudioFeed) {
    let feed = AudioFeed::new();
    let options = PeerOptions {
        audio_feed: Some(feed.clone()),
        ..PeerOptions::new(Media::SendRecv, Media::None)
    };
    let peer = TestPeer::connect(base, options).await.expect("connect");
    (peer, feed)
}

/// The first remote audio packet that arrived after `after`.
fn first_audio_after(peer: &TestPeer, after: Instant) -> Option<(Instant, usize)> {
    peer.audio_arrivals().into_iter().find(|(t, _)| *t > after)
}

/// `p`-th percentile (0..=100) of `values`, nearest rank.
fn percentile(values: &[Duration], p: usize) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// The parrot at `path` (Rust, Python or JavaScript) answers each of three sentences
/// over WebRTC once, after the pause, with about as much audio as was spoken.
async fn replies_once_per_sentence_over_webrtc(name: &str, path: &str) {
    let (base, _stream) = peer::serve_guest(path, StreamConfig::default()).await;
    let (mut peer, feed) = connect_speaker(&base).await;
    // A moment of silence first, as a caller would.
    feed.push(&vec![0; AUDIO_RATE as usize / 2]);
    feed.wait_drained(WAIT).await.expect("silence sent");

    let mut latencies = Vec::new();
    for (i, text) in SENTENCES.iter().enumerate() {
        let speech = speech::sentence(text, AUDIO_RATE).expect("espeak-ng");
        let spoken = speech::seconds(&speech, AUDIO_RATE);
        let before = peer.audio_len();
        feed.push(&speech);
        let end_of_speech = feed.wait_drained(WAIT).await.expect("speech sent");
        let finished = peer::poll_until(WAIT, || finished_replies(&peer) > i).await;
        assert!(
            finished,
            "no end of reply {} ({:?}); events {:?}",
            i + 1,
            text,
            turn_events(&peer.messages())
        );
        let (first, _) = first_audio_after(&peer, end_of_speech)
            .unwrap_or_else(|| panic!("no reply audio after sentence {}", i + 1));
        let latency = first - end_of_speech;
        let reply = &peer.audio()[before..];
        let replied = speech::seconds(reply, AUDIO_RATE);
        println!(
            "{name}: sentence {}: {spoken:.2} s spoken, reply of {replied:.2} s began {} ms after the end of speech",
            i + 1,
            latency.as_millis()
        );
        // The reply waits for the pause, and does not wait much longer.
        assert!(
            latency >= PAUSE - Duration::from_millis(100),
            "replied {latency:?} after the end of speech, before the {PAUSE:?} pause"
        );
        assert!(
            latency < PAUSE + Duration::from_secs(2),
            "replied only {latency:?} after the end of speech"
        );
        // The parrot plays the utterance back at speed 1: about as long as the speech.
        assert!(
            replied > spoken * 0.8 && replied < spoken + 1.5,
            "a reply of {replied:.2} s to {spoken:.2} s of speech"
        );
        assert!(
            signal::rms(reply) > 500.0,
            "the reply is quiet: rms {:.0}",
            signal::rms(reply)
        );
        latencies.push(latency);
        // Silence between sentences.
        feed.push(&vec![0; AUDIO_RATE as usize / 2]);
        feed.wait_drained(WAIT).await.expect("silence sent");
    }
    println!(
        "{name}: reply latency (end of speech -> first reply audio) over WebRTC: p50 {} ms, max {} ms",
        percentile(&latencies, 50).as_millis(),
        latencies.iter().max().unwrap().as_millis()
    );
    let expected: Vec<String> = ONE_TURN
        .iter()
        .cycle()
        .take(ONE_TURN.len() * SENTENCES.len())
        .map(|s| s.to_string())
        .collect();
    assert_eq!(turn_events(&peer.messages()), expected, "{name}");
    peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parrot_replies_once_per_sentence_after_the_pause_over_webrtc() {
    replies_once_per_sentence_over_webrtc("parrot", guests::PARROT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_parrot_replies_once_per_sentence_after_the_pause_over_webrtc() {
    replies_once_per_sentence_over_webrtc("python-parrot", &built("python-parrot")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_parrot_replies_once_per_sentence_after_the_pause_over_webrtc() {
    replies_once_per_sentence_over_webrtc("js-parrot", &built("js-parrot")).await;
}

/// The whole reply to `utterance`, chunk by chunk until `none`, the outputs emitted,
/// and the mean time of a `next-audio` call.
async fn reply_to(
    inst: &mut HandlerInstance,
    utterance: &AudioFrame,
) -> (Vec<Vec<i16>>, Vec<Vec<Input>>, Duration) {
    inst.on_utterance(utterance).await.expect("on-utterance");
    let mut chunks = Vec::new();
    let start = Instant::now();
    while let Some(chunk) = inst.next_audio().await.expect("next-audio") {
        assert_eq!((chunk.sample_rate, chunk.channels), (24_000, 1));
        chunks.push(chunk.samples);
        assert!(chunks.len() < 1_000, "the reply does not end");
    }
    let per_call = start.elapsed() / (chunks.len() as u32 + 1);
    let outputs = inst
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            HostEvent::Outputs(values) => Some(values),
            _ => None,
        })
        .collect();
    (chunks, outputs, per_call)
}

/// The Python and JavaScript parrots describe the same stream and turn-taking as the
/// Rust one and, through the runtime, reply with its samples (within one step of
/// rounding) at several speeds, in chunks of at most 100 ms; an interruption drops
/// the rest of a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_parrots_reply_like_the_rust_parrot() {
    let runtime = test_runtime();
    let rust = runtime
        .load_file("parrot", guests::PARROT)
        .await
        .expect("parrot");
    let mut twin = rust.instantiate("rust").await.unwrap();
    let utterance = AudioFrame {
        sample_rate: 16_000,
        channels: 1,
        samples: speech::sentence(SENTENCES[2], 16_000).expect("espeak-ng"),
    };
    for name in ["python-parrot", "js-parrot"] {
        let path = built(name);
        let parrot = runtime
            .load_file(name, &path)
            .await
            .unwrap_or_else(|e| panic!("loading {path}: {e}"));
        assert_eq!(parrot.spec(), rust.spec(), "{name}: spec");
        assert_eq!(
            parrot.turn_taking(),
            rust.turn_taking(),
            "{name}: turn-taking"
        );
        let mut inst = parrot.instantiate("c1").await.unwrap();
        assert!(inst.has_turns(), "{name}");
        for speed in [1.0, 0.5, 2.0, 0.75, 1.3] {
            inst.set_inputs(&[Input::Number(speed)]).await.unwrap();
            twin.set_inputs(&[Input::Number(speed)]).await.unwrap();
            let (ours, heard, per_call) = reply_to(&mut inst, &utterance).await;
            let (theirs, heard_rust, _) = reply_to(&mut twin, &utterance).await;
            // Seconds in hundredths (a tie may round either way).
            let seconds = |outputs: &[Vec<Input>]| -> Vec<f64> {
                outputs
                    .iter()
                    .map(|o| match o[..] {
                        [Input::Number(s)] => s,
                        _ => panic!("{name}: outputs {o:?}"),
                    })
                    .collect()
            };
            let (heard, heard_rust) = (seconds(&heard), seconds(&heard_rust));
            assert!(
                heard.len() == 1
                    && heard_rust.len() == 1
                    && (heard[0] - heard_rust[0]).abs() < 0.011,
                "{name}: heard {heard:?}, Rust {heard_rust:?} at speed {speed}"
            );
            assert!(
                ours.iter().all(|c| !c.is_empty() && c.len() <= 2_400),
                "{name}: chunks of {:?} samples",
                ours.iter().map(Vec::len).collect::<Vec<_>>()
            );
            let (ours, theirs) = (ours.concat(), theirs.concat());
            // Rust and JavaScript step in f64 and may take one sample more or less at
            // the end; Python steps exactly.
            assert!(
                ours.len().abs_diff(theirs.len()) <= 1,
                "{name}: {} samples, Rust {} at speed {speed}",
                ours.len(),
                theirs.len()
            );
            let off = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .max()
                .unwrap_or(0);
            println!(
                "{name}: speed {speed}: {} samples (Rust {}), largest difference {off}, {} µs per next-audio",
                ours.len(),
                theirs.len(),
                per_call.as_micros()
            );
            // Speeds in steps of 0.05 are exact in Python; 1.3 in JavaScript.
            assert!(
                off <= 1,
                "{name}: differs from Rust's parrot by {off} at speed {speed}"
            );
        }
        inst.set_inputs(&[Input::Number(1.0)]).await.unwrap();
        inst.on_utterance(&utterance).await.unwrap();
        assert!(
            inst.next_audio().await.unwrap().is_some(),
            "{name}: a reply"
        );
        inst.on_interrupt().await.unwrap();
        assert_eq!(
            inst.next_audio().await.unwrap(),
            None,
            "{name}: the reply was dropped"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaking_over_a_reply_cuts_it_at_once_over_webrtc() {
    let (base, _stream) = serve_parrot().await;
    let (mut peer, feed) = connect_speaker(&base).await;
    feed.push(&vec![0; AUDIO_RATE as usize / 2]);
    let long = speech::sentence(
        "This is a rather long sentence, so that its reply goes on for quite a while.",
        AUDIO_RATE,
    )
    .expect("espeak-ng");
    let spoken = speech::seconds(&long, AUDIO_RATE);
    feed.push(&long);
    let end_of_speech = feed.wait_drained(WAIT).await.expect("speech sent");
    assert!(
        peer.wait_audio(AUDIO_RATE as usize / 2, WAIT).await,
        "no reply audio; events {:?}",
        turn_events(&peer.messages())
    );
    let (reply_start, before_reply) = first_audio_after(&peer, end_of_speech).expect("reply");
    // Half a second into the reply, the caller speaks again.
    tokio::time::sleep_until((reply_start + Duration::from_millis(500)).into()).await;
    let barge_in = Instant::now();
    feed.push(&speech::sentence("Stop, wait a moment.", AUDIO_RATE).expect("espeak-ng"));
    let second_turn = peer::poll_until(WAIT, || finished_replies(&peer) >= 1).await;
    assert!(
        second_turn,
        "no reply to the interruption; events {:?}",
        turn_events(&peer.messages())
    );
    // The first reply's audio: the packets before the first gap after the barge-in.
    let arrivals = peer.audio_arrivals();
    let after: Vec<_> = arrivals
        .iter()
        .filter(|(t, _)| *t > reply_start)
        .copied()
        .collect();
    let cut = after
        .windows(2)
        .find(|w| w[1].0 - w[0].0 > Duration::from_millis(200))
        .map(|w| w[0])
        .expect("the reply audio never paused");
    let (last_packet, samples_then) = cut;
    let played = speech::seconds(&vec![0; samples_then - before_reply], AUDIO_RATE);
    let cut_after = last_packet.saturating_duration_since(barge_in);
    println!(
        "interruption: {spoken:.2} s reply cut after {played:.2} s; last reply audio {} ms after the caller spoke again",
        cut_after.as_millis()
    );
    // The reply would have lasted about as long as the speech: it was cut well before.
    assert!(
        played < spoken - 0.5,
        "the reply played {played:.2} s of {spoken:.2} s"
    );
    assert!(
        last_packet < reply_start + Duration::from_secs_f64(spoken),
        "the reply was not cut before it would have ended"
    );
    let events = turn_events(&peer.messages());
    assert_eq!(events, INTERRUPTED_TURN);
    peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_and_noise_get_no_reply() {
    let (base, _stream) = serve_parrot().await;
    let (mut peer, feed) = connect_speaker(&base).await;
    // White noise at 2000 is the level at which Opus turns it into what earshot
    // scores around 0.7 (half believed); at 5000 it scores low.
    feed.push(&vec![0; AUDIO_RATE as usize * 2]);
    feed.push(&signal::noise(2_000.0, 7, AUDIO_RATE as usize * 3));
    feed.push(&vec![0; AUDIO_RATE as usize]);
    feed.push(&signal::noise(5_000.0, 8, AUDIO_RATE as usize * 2));
    feed.push(&vec![0; AUDIO_RATE as usize]);
    feed.wait_drained(WAIT).await.expect("sent");
    tokio::time::sleep(PAUSE * 3).await;
    assert_eq!(turn_events(&peer.messages()), Vec::<String>::new());
    assert_eq!(peer.audio_packets(), 0, "the server sent audio");
    peer.close().await;
}

/// A caller on a WebSocket: audio goes out in 20 ms media messages, in real time, and
/// the line carries silence between words.
struct Caller {
    phone: Client,
    /// Wraps a base64 payload in the protocol's media message.
    media: Box<dyn Fn(usize, String) -> Value + Send>,
    /// Encodes samples for the wire.
    encode: fn(&[i16]) -> Vec<u8>,
    /// Samples per 20 ms chunk.
    chunk: usize,
    chunks: usize,
    tick: tokio::time::Interval,
}

impl Caller {
    /// Twilio Media Streams: 8 kHz μ-law.
    const RATE: u32 = 8_000;

    fn telephone(phone: Client, sid: &'static str) -> Self {
        Self {
            phone,
            media: Box::new(websocket::twilio_media(sid)),
            encode: mulaw::encode_slice,
            chunk: 160,
            chunks: 0,
            tick: tokio::time::interval(Duration::from_millis(20)),
        }
    }

    /// FastRTC's WebSocket with raw PCM16 at `rate`.
    fn pcm16(phone: Client, rate: u32) -> Self {
        Self {
            phone,
            media: Box::new(|_, payload| json!({"event": "media", "media": {"payload": payload}})),
            encode: |s| s.iter().flat_map(|v| v.to_le_bytes()).collect(),
            chunk: rate as usize / 50,
            chunks: 0,
            tick: tokio::time::interval(Duration::from_millis(20)),
        }
    }

    async fn chunk(&mut self, chunk: &[i16]) {
        self.tick.tick().await;
        let payload = BASE64.encode((self.encode)(chunk));
        let message = (self.media)(self.chunks, payload);
        self.phone.send_json(message).await;
        self.chunks += 1;
    }

    async fn say(&mut self, samples: &[i16]) {
        for chunk in samples.chunks(self.chunk) {
            self.chunk(chunk).await;
        }
    }

    /// Silence until `cond` holds on what the caller received; whether it did in time.
    async fn silence_until(&mut self, cond: impl Fn(&websocket::Inbox) -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        let inbox = self.phone.inbox.clone();
        while !cond(&inbox) {
            if Instant::now() >= deadline {
                return false;
            }
            let silence = vec![0; self.chunk];
            self.chunk(&silence).await;
        }
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telephone_caller_gets_replies_and_barges_in_with_clear() {
    const SID: &str = "MZturns";
    let (addr, stream) = websocket::serve(guests::PARROT, StreamConfig::default()).await;
    let mut phone = Client::connect(&format!("ws://{addr}/telephone/handler")).await;
    let inbox = phone.inbox.clone();
    phone
        .send_json(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        .await;
    phone.send_json(websocket::twilio_start(SID)).await;
    assert!(
        peer::poll_until(WAIT, || stream.connection_ids() == [SID]).await,
        "the call is not registered"
    );
    let events = |inbox: &websocket::Inbox| turn_events(&inbox.json());
    let mut caller = Caller::telephone(phone, SID);

    let first = speech::sentence(
        "Hello, I would like to hear this long sentence played back to me.",
        Caller::RATE,
    )
    .expect("espeak-ng");
    let spoken = speech::seconds(&first, Caller::RATE);
    caller.say(&[0; 4_000]).await;
    caller.say(&first).await;
    let end_of_speech = Instant::now();
    assert!(
        caller.silence_until(|i| !i.media().is_empty()).await,
        "no reply media; events {:?}",
        events(&inbox)
    );
    let (reply_start, _) = inbox.media()[0];
    println!(
        "telephone: reply began {} ms after the end of speech",
        (reply_start - end_of_speech).as_millis()
    );
    assert!(reply_start - end_of_speech >= PAUSE - Duration::from_millis(100));
    assert!(
        inbox.media().iter().all(|(_, m)| m["streamSid"] == SID),
        "media without the streamSid"
    );

    // Half a second into the reply, the caller speaks again.
    caller.say(&[0; 4_000]).await;
    let barge_in = Instant::now();
    let second = speech::sentence("No, stop right there.", Caller::RATE).expect("espeak-ng");
    caller.say(&second).await;
    assert!(
        caller
            .silence_until(|i| events(i).iter().any(|e| e == "playback_finished"))
            .await,
        "no reply to the second turn: {:?}",
        events(&inbox)
    );
    let clear_at = inbox
        .all()
        .into_iter()
        .find_map(|g| match g {
            websocket::Got::Text(at, t) if t.contains(r#""event":"clear""#) => Some(at),
            _ => None,
        })
        .expect("no clear on the barge-in");
    let clear = inbox.json().into_iter().find(|v| v["event"] == "clear");
    assert_eq!(clear, Some(json!({"event": "clear", "streamSid": SID})));
    println!(
        "telephone: clear sent {} ms after the caller started speaking over a {spoken:.2} s reply",
        clear_at.saturating_duration_since(barge_in).as_millis()
    );
    assert!(
        clear_at < reply_start + Duration::from_secs_f64(spoken),
        "the reply was not cut before it would have ended"
    );
    assert_eq!(events(&inbox), INTERRUPTED_TURN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_pcm16_caller_gets_one_reply_with_its_events() {
    const RATE: u32 = 16_000;
    let (addr, _stream) = websocket::serve(guests::PARROT, StreamConfig::default()).await;
    let mut socket = Client::connect(&format!("ws://{addr}/websocket/offer")).await;
    let inbox = socket.inbox.clone();
    socket
        .send_json(json!({"event": "start", "websocket_id": "ws-turns",
                          "format": "pcm16", "sample_rate": RATE}))
        .await;
    let mut caller = Caller::pcm16(socket, RATE);
    let sentence = speech::sentence(SENTENCES[1], RATE).expect("espeak-ng");
    let spoken = speech::seconds(&sentence, RATE);
    caller.say(&vec![0; RATE as usize / 2]).await;
    caller.say(&sentence).await;
    let end_of_speech = Instant::now();
    assert!(
        caller
            .silence_until(|i| turn_events(&i.json()).contains(&"playback_finished".into()))
            .await,
        "no reply: {:?}",
        turn_events(&inbox.json())
    );
    let (first, _) = inbox.media()[0];
    let reply: Vec<i16> = inbox
        .media()
        .iter()
        .flat_map(|(_, m)| {
            let bytes = BASE64
                .decode(m["media"]["payload"].as_str().expect("payload"))
                .expect("base64");
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect::<Vec<_>>()
        })
        .collect();
    let replied = speech::seconds(&reply, RATE);
    println!(
        "websocket: reply of {replied:.2} s to {spoken:.2} s of speech began {} ms after its end",
        (first - end_of_speech).as_millis()
    );
    assert!(first - end_of_speech >= PAUSE - Duration::from_millis(100));
    assert!(
        replied > spoken * 0.8 && replied < spoken + 1.5,
        "a reply of {replied:.2} s to {spoken:.2} s of speech"
    );
    assert_eq!(turn_events(&inbox.json()), ONE_TURN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_against_0_1_0_still_loads_and_runs() {
    let runtime = test_runtime();
    let legacy = runtime
        .load_file("legacy", guests::LEGACY_ECHO)
        .await
        .expect("a 0.1.0 component loads on the 0.1.1 host");
    assert!(legacy.turn_taking().is_none());
    assert_eq!(legacy.spec().input_sample_rate, 48_000);
    let mut instance = legacy.instantiate("c1").await.expect("instantiate");
    assert!(!instance.has_turns());
    let frame = AudioFrame {
        sample_rate: 48_000,
        channels: 1,
        samples: signal::sine(440.0, 8_000.0, 48_000, 0, 960),
    };
    instance.on_audio(&frame).await.expect("on-audio");
    assert_eq!(
        instance.take_events(),
        [HostEvent::Notify(
            NotifyLevel::Log,
            "legacy echo on wasmrtc:handler@0.1.0".into()
        )],
        "the 0.1.0 host import is linked"
    );
    assert_eq!(
        instance.next_audio().await.expect("next-audio"),
        Some(frame)
    );

    let parrot = runtime
        .load_file("parrot", guests::PARROT)
        .await
        .expect("parrot");
    let turns = parrot.turn_taking().expect("parrot takes turns");
    assert_eq!(
        (turns.pause_ms, turns.min_speech_ms, turns.interruptible),
        (500, 200, true)
    );
}

/// The frequency of the first tone in `audio` (48 kHz) from sample `from` on: 200 ms
/// from 40 ms after the first loud 20 ms window (the reply's onset skipped).
fn first_tone(audio: &[i16], from: usize) -> Option<f64> {
    const WINDOW: usize = AUDIO_RATE as usize / 50;
    let onset = (from..audio.len().saturating_sub(WINDOW))
        .step_by(WINDOW)
        .find(|&i| signal::rms(&audio[i..i + WINDOW]) > 1_000.0)?;
    let tone = audio.get(onset + 2 * WINDOW..onset + 12 * WINDOW)?;
    Some(signal::frequency(tone, AUDIO_RATE))
}

/// How many `response_starting` logs the peer got.
fn replies_started(peer: &TestPeer) -> usize {
    turn_events(&peer.messages())
        .iter()
        .filter(|e| *e == "response_starting")
        .count()
}

/// The `greeter` guest (WIT 0.1.2 `replies`): its replies wait a few ticks
/// (`pending`) before their audio, as a handler waiting on a service would. It greets
/// a caller who says nothing (440 Hz), announced by `response_starting`, and answers
/// text on the data channel (its `said` output, then 660 Hz) without a word spoken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeter_greets_then_answers_text_with_pending_replies_over_webrtc() {
    let (base, _stream) = peer::serve_guest(guests::GREETER, StreamConfig::default()).await;
    let (peer, _feed) = connect_speaker(&base).await;
    let outputs = peer.outputs().await.expect("outputs stream");

    let started = peer
        .wait_message(WAIT, |m| m["data"] == "response_starting")
        .await;
    assert!(started.is_some(), "no greeting: {:?}", peer.messages());
    let greeting = poll_until_tone(&peer, 0)
        .await
        .expect("the greeting played no tone");
    eprintln!("greeting at {greeting:.0} Hz");
    assert!((greeting - 440.0).abs() < 15.0, "greeting at {greeting} Hz");
    assert!(
        peer::poll_until(WAIT, || finished_replies(&peer) == 1).await,
        "the greeting never finished: {:?}",
        turn_events(&peer.messages())
    );

    // Text: the handler's output, then a second announced reply at 660 Hz.
    let before = peer.audio_len();
    peer.send_text("hello").await.unwrap();
    let mut outputs = outputs;
    let said = outputs.next(WAIT).await.expect("an output event");
    assert!(said.to_string().contains("hello"), "{said}");
    assert!(
        peer::poll_until(WAIT, || replies_started(&peer) == 2).await,
        "no reply to the text: {:?}",
        turn_events(&peer.messages())
    );
    let answer = poll_until_tone(&peer, before)
        .await
        .expect("the reply's tone");
    eprintln!("reply to text at {answer:.0} Hz");
    assert!((answer - 660.0).abs() < 20.0, "reply at {answer} Hz");
    assert!(
        peer::poll_until(WAIT, || finished_replies(&peer) == 2).await,
        "the reply never finished: {:?}",
        turn_events(&peer.messages())
    );
    // Nothing was spoken, so nothing else was answered.
    assert_eq!(
        turn_events(&peer.messages()),
        [
            "response_starting",
            "playback_finished",
            "fetch_output",
            "response_starting",
            "playback_finished"
        ]
    );
}

/// Wait for a tone in the peer's audio after sample `from`; its frequency.
async fn poll_until_tone(peer: &TestPeer, from: usize) -> Option<f64> {
    let mut found = None;
    peer::poll_until(WAIT, || {
        found = first_tone(&peer.audio(), from);
        found.is_some()
    })
    .await;
    found
}

//! Turn-taking benchmark: the host's voice-activity detection per 20 ms frame (the
//! `Turns` state machine the sessions run: resampling to 16 kHz and earshot), and the
//! reply latency of the `parrot` guest over a real WebRTC peer: from the end of a
//! synthesized sentence (espeak-ng) to the first reply audio, p50/p95.
//!
//! `cargo bench -p wasmrtc-tests --bench turns`

use std::time::{Duration, Instant};

use wasmrtc::StreamConfig;
use wasmrtc::runtime::TurnTaking;
use wasmrtc::session::turns::Turns;
use wasmrtc_tests::peer::{self, AUDIO_RATE, AudioFeed, Media, PeerOptions, TestPeer};
use wasmrtc_tests::{guests, speech};

/// Turns measured for the latency figures.
const TURNS: usize = 20;

const PHRASES: [&str; 5] = [
    "Hello there.",
    "Yes, please.",
    "Good morning.",
    "Thank you.",
    "See you soon.",
];

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * q).round() as usize]
}

/// Cost of `Turns::hear` per 20 ms frame at `rate`, over speech and silence.
fn vad_cost(rate: u32) -> (Duration, Duration, usize) {
    let settings = TurnTaking {
        pause_ms: 500,
        min_speech_ms: 200,
        max_utterance_ms: 15_000,
        interruptible: true,
    };
    let mut turns = Turns::new(settings, rate).expect("turns");
    let mut audio = Vec::new();
    for text in PHRASES {
        audio.extend(speech::sentence(text, rate).expect("espeak-ng"));
        audio.extend(vec![0; rate as usize]);
    }
    let frame = rate as usize / 50;
    let mut samples = Vec::new();
    for _ in 0..3 {
        for chunk in audio.chunks_exact(frame) {
            let t = Instant::now();
            let events = turns.hear(chunk).expect("hear");
            samples.push(t.elapsed());
            if !events.is_empty() && !turns.is_talking() {
                // An utterance: play no reply, listen again.
                turns.reply_complete();
                turns.playback_idle();
            }
        }
    }
    let n = samples.len();
    (quantile(&mut samples, 0.5), quantile(&mut samples, 0.99), n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    for rate in [16_000, 48_000] {
        let (p50, p99, n) = vad_cost(rate);
        println!(
            "voice detection per 20 ms frame at {rate} Hz   p50 {:>6.1} µs   p99 {:>6.1} µs   ({n} frames)",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }

    let (base, _stream) = peer::serve_guest(guests::PARROT, StreamConfig::default()).await;
    let feed = AudioFeed::new();
    let options = PeerOptions {
        audio_feed: Some(feed.clone()),
        ..PeerOptions::new(Media::SendRecv, Media::None)
    };
    let mut client = TestPeer::connect(&base, options).await.expect("connect");
    let wait = Duration::from_secs(20);
    let phrases: Vec<Vec<i16>> = PHRASES
        .iter()
        .map(|t| speech::sentence(t, AUDIO_RATE).expect("espeak-ng"))
        .collect();
    let mut latencies = Vec::new();
    for i in 0..TURNS {
        feed.push(&vec![0; AUDIO_RATE as usize / 4]);
        feed.push(&phrases[i % phrases.len()]);
        let end = feed.wait_drained(wait).await.expect("speech sent");
        let finished = peer::poll_until(wait, || {
            client
                .messages()
                .iter()
                .filter(|m| m["data"] == "playback_finished")
                .count()
                > i
        })
        .await;
        assert!(finished, "no reply to turn {}", i + 1);
        let first = client
            .audio_arrivals()
            .into_iter()
            .find(|(t, _)| *t > end)
            .expect("reply audio");
        latencies.push(first.0 - end);
    }
    client.close().await;
    let p50 = quantile(&mut latencies, 0.5);
    let p95 = quantile(&mut latencies, 0.95);
    println!(
        "reply latency, end of speech -> first reply audio (pause 500 ms, WebRTC)   p50 {} ms   p95 {} ms   ({TURNS} turns)",
        p50.as_millis(),
        p95.as_millis()
    );
}

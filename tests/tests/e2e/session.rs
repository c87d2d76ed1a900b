//! The session core under a handler slower than real time: its calls run beside the
//! media path, so it degrades only its own video.

use std::time::{Duration, Instant};

use wasmrtc::session::stats::{Counter, counted};
use wasmrtc::{Stream, StreamConfig, Transport};
use wasmrtc_tests::peer::{self, Media};
use wasmrtc_tests::{guests, test_runtime};

/// Longest wait for anything to happen.
const WAIT: Duration = Duration::from_secs(15);
const RATE: usize = peer::AUDIO_RATE as usize;
/// How long the slow handler is watched.
const WATCH: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_real_time_degrades_only_its_own_video() {
    let runtime = test_runtime();
    let transport = Transport::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let load = |name: &'static str, path: &'static str| {
        let runtime = runtime.clone();
        async move { runtime.load_file(name, path).await.expect(path) }
    };
    let slow = Stream::new(
        load("slow", guests::SLOW_VIDEO).await,
        transport.clone(),
        StreamConfig::default(),
    );
    let flip = Stream::new(
        load("flip", guests::FLIP).await,
        transport,
        StreamConfig::default(),
    );
    let router = flip.mount(slow.mount(axum::Router::new(), "/slow"), "/flip");
    let (addr, _server) = peer::serve_router(router).await;

    let mut slow_peer = peer::connect(
        &format!("http://{addr}/slow"),
        Media::SendRecv,
        Media::SendRecv,
    )
    .await;
    let mut flip_peer =
        peer::connect(&format!("http://{addr}/flip"), Media::None, Media::SendRecv).await;
    assert!(flip_peer.wait_video(30, WAIT).await, "flip sends video");
    assert!(
        slow_peer.wait_audio(RATE, WAIT).await,
        "the slow handler echoes audio"
    );
    let dropped_before = counted(Counter::VideoDropped);

    let started = Instant::now();
    let (frames0, audio0, slow_frames0) = (
        flip_peer.video_frames(),
        slow_peer.audio_len(),
        slow_peer.video_frames(),
    );
    let mut quiet_seconds = 0;
    let mut last_audio = audio0;
    while started.elapsed() < WATCH {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            slow_peer.state(),
            webrtc::peer_connection::RTCPeerConnectionState::Connected,
            "the slow handler's connection stays up"
        );
        let now = slow_peer.audio_len();
        if now < last_audio + RATE / 2 {
            quiet_seconds += 1;
        }
        last_audio = now;
    }
    let secs = started.elapsed().as_secs_f64();
    let fps = (flip_peer.video_frames() - frames0) as f64 / secs;
    let audio = (slow_peer.audio_len() - audio0) as f64 / RATE as f64;
    let slow_fps = (slow_peer.video_frames() - slow_frames0) as f64 / secs;
    let dropped = counted(Counter::VideoDropped) - dropped_before;
    eprintln!(
        "over {secs:.1} s: flip {fps:.1} fps; slow handler {slow_fps:.1} fps, {audio:.1} s of audio back, {dropped} frames dropped"
    );
    assert!(
        fps >= 29.0,
        "the other connection keeps its frame rate: {fps:.1} fps"
    );
    assert!(
        quiet_seconds <= 2,
        "audio kept flowing: {quiet_seconds} seconds with less than half a second of it"
    );
    assert!(
        audio >= 0.8 * secs,
        "{audio:.1} s of audio back in {secs:.1} s"
    );
    assert!(
        slow_fps > 0.5 && slow_fps < 5.0,
        "the slow handler's own video degrades: {slow_fps:.1} fps"
    );
    assert!(dropped > 0, "replaced frames are counted");
    slow_peer.close().await;
    flip_peer.close().await;
}

/// `Stream::set_live_reload` (what `wasmrtc dev` turns on): a swapped-in handler of the
/// same shape takes over an open connection at its next call; one of another shape
/// does not, and the connection carries on with the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_live_reload_an_open_connection_moves_to_a_swapped_in_handler_of_the_same_shape() {
    let runtime = test_runtime();
    let transport = Transport::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let gain = runtime.load_file("gain", guests::GAIN).await.unwrap();
    let stream = Stream::new(gain, transport, StreamConfig::default());
    stream.set_live_reload(true);
    let (addr, _server) = peer::serve(stream.clone()).await;
    let client = peer::connect(&format!("http://{addr}"), Media::SendRecv, Media::None).await;
    let before = client.level_after(0, WAIT).await;
    assert!(before > 2000.0, "gain v1 echoes: level {before:.0}");

    // Version 2 doubles the default gain: the same connection gets it.
    let v2 = runtime.load_file("gain", guests::GAIN_V2).await.unwrap();
    stream.replace_component(v2);
    let mut ratio = 0.0;
    for _ in 0..10 {
        ratio = client.level_after(client.audio_len(), WAIT).await / before;
        if ratio > 1.7 {
            break;
        }
    }
    eprintln!("level after the swap: x{ratio:.2}");
    assert!(
        (1.7..2.3).contains(&ratio),
        "moved to v2: level ratio {ratio:.3}"
    );

    // A video handler is another shape: the connection stays on gain v2.
    let flip = runtime.load_file("flip", guests::FLIP).await.unwrap();
    stream.replace_component(flip);
    let from = client.audio_len();
    let after = client.level_after(from, WAIT).await / before;
    assert!(
        (1.7..2.3).contains(&after),
        "kept v2: level ratio {after:.3}"
    );
    assert!(
        client.wait_audio(from + RATE, WAIT).await,
        "audio keeps flowing after a swap it cannot take"
    );
}

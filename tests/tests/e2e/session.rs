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

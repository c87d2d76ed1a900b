//! The comparison client: the test suite's webrtc-rs [`TestPeer`], sending a continuous
//! Opus tone it encodes itself and decoding what returns. It counts received packets
//! (no round trips), to show what the client side costs with webrtc-rs.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use wasmrtc_tests::peer::{Media, PeerOptions, TestPeer};

use crate::report::{Shared, lock};

/// Run one audio peer of the stream at `base` until `stop` turns true.
pub async fn run(base: String, stats: Shared, mut stop: watch::Receiver<bool>) {
    let started = Instant::now();
    let options = PeerOptions {
        media_after_channel: false,
        connect_timeout: Duration::from_secs(30),
        ..PeerOptions::new(Media::SendRecv, Media::None)
    };
    let mut peer = match TestPeer::connect(&base, options).await {
        Ok(p) => p,
        Err(e) => {
            lock(&stats).failed = Some(format!("{e:#}"));
            return;
        }
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticker.tick() => {
                let received = peer.audio_packets() as u64;
                let mut s = lock(&stats);
                if received > 0 && s.setup.is_none() {
                    s.setup = Some(started.elapsed());
                }
                s.received = received;
                s.sent = (peer.audio_sent() / 960) as u64;
            }
        }
    }
    peer.close().await;
}

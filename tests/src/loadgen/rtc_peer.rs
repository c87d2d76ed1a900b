//! The cheap WebRTC client: a str0m peer (sans-IO, full ICE on the client side) per
//! stream, each a task with its own UDP socket on 127.0.0.1 (the server tells its peers
//! apart by their address). It offers through FastRTC's `POST /webrtc/offer`, sends the
//! shared pre-encoded media in real time and measures what comes back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use str0m::change::SdpAnswer;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use wasmrtc::media::VideoDecoder;

use crate::cli::VideoCodec;
use crate::media::{
    AUDIO_CYCLE, AUDIO_FRAME, AudioCycle, VIDEO_FPS, VIDEO_LOOP, VideoLoop, read_counter,
};
use crate::report::{Shared, lock};

/// What a peer sends.
#[derive(Clone)]
pub enum Send {
    /// Opus audio: the burst cycle, looped.
    Audio(Arc<AudioCycle>),
    /// Video (the loop's codec, the only one offered): the counter loop; `decode` also
    /// decodes what returns (for latency).
    Video(Arc<VideoLoop>, bool),
}

/// Tells returned Opus packets carrying the burst from silence by their size: the
/// server's encoder spends about 40 bytes on silence and 60-90 on the burst, so a packet
/// 30% (and 8 bytes) above the smallest of the last second carries it.
#[derive(Default)]
struct QuietSize {
    /// Smallest packet of the last complete window.
    floor: Option<usize>,
    window_min: Option<usize>,
    count: usize,
}

impl QuietSize {
    fn is_loud(&mut self, len: usize) -> bool {
        self.window_min = Some(self.window_min.map_or(len, |m| m.min(len)));
        self.count += 1;
        if self.count == 2 * AUDIO_CYCLE {
            self.floor = self.window_min.take();
            self.count = 0;
        }
        self.floor.is_some_and(|floor| len * 10 >= floor * 13 + 80)
    }
}

/// Run one peer of the stream at `base` until `stop` turns true; failures end up in
/// `stats.failed`.
pub async fn run(
    http: reqwest::Client,
    base: String,
    send: Send,
    stats: Shared,
    stop: watch::Receiver<bool>,
) {
    if let Err(e) = peer(&http, &base, send, &stats, stop).await {
        lock(&stats).failed = Some(format!("{e:#}"));
    }
}

struct Track {
    mid: Mid,
    pt: Option<Pt>,
}

/// The payload type to send with: Opus for audio; for video the codec's, and for H.264
/// one with packetization mode 1 (str0m fragments big NAL units as FU-A) if negotiated.
fn send_pt<'a>(
    params: impl Iterator<Item = &'a PayloadParams>,
    kind: MediaKind,
    video: VideoCodec,
) -> Option<Pt> {
    let codec = match (kind, video) {
        (MediaKind::Audio, _) => Codec::Opus,
        (_, VideoCodec::Vp8) => Codec::Vp8,
        (_, VideoCodec::H264) => Codec::H264,
    };
    let params: Vec<_> = params.filter(|p| p.spec().codec == codec).collect();
    params
        .iter()
        .find(|p| p.spec().format.packetization_mode == Some(1))
        .or(params.first())
        .map(|p| p.pt())
}

async fn peer(
    http: &reqwest::Client,
    base: &str,
    send: Send,
    stats: &Shared,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.context("bind UDP")?;
    let local = socket.local_addr()?;
    let video_codec = match &send {
        Send::Video(video, _) => video.codec,
        Send::Audio(_) => VideoCodec::Vp8,
    };
    let mut rtc = RtcConfig::new()
        .set_dtls_cert(wasmrtc::transport::shared_cert())
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(video_codec == VideoCodec::Vp8)
        .enable_h264(video_codec == VideoCodec::H264)
        .set_stats_interval(None)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| anyhow!("{e}"))?);
    let kind = match send {
        Send::Audio(_) => MediaKind::Audio,
        Send::Video(..) => MediaKind::Video,
    };
    let mut api = rtc.sdp_api();
    let mid = api.add_media(kind, Direction::SendRecv, None, None, None);
    api.add_channel("text".into());
    let (offer, pending) = api.apply().context("create the offer")?;

    let webrtc_id = wasmrtc_tests::peer::new_webrtc_id();
    let started = Instant::now();
    let body = json!({"sdp": offer.to_sdp_string(), "type": "offer", "webrtc_id": webrtc_id});
    let reply = http
        .post(format!("{base}/webrtc/offer"))
        .json(&body)
        .send()
        .await
        .context("POST /webrtc/offer")?;
    let status = reply.status();
    let reply: Value = reply.json().await.unwrap_or(Value::Null);
    let Some(sdp) = reply.get("sdp").and_then(Value::as_str) else {
        bail!("offer answered {status}: {reply}");
    };
    let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| anyhow!("bad answer: {e}"))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| anyhow!("answer refused: {e}"))?;

    let mut track = Track { mid, pt: None };
    let mut buf = vec![0u8; 2048];
    let period = match send {
        Send::Audio(_) => Duration::from_millis(20),
        Send::Video(..) => Duration::from_secs(1) / VIDEO_FPS,
    };
    let mut next_send: Option<Instant> = None;
    let mut sent: u64 = 0;
    // Audio: when the last burst left, until its return is seen.
    let mut burst_sent: Option<Instant> = None;
    let mut quiet = QuietSize::default();
    // Video: when each loop index last left; the decoder of returned frames.
    let mut frame_sent: Vec<Option<Instant>> = vec![None; VIDEO_LOOP];
    let mut decoder = match &send {
        Send::Video(video, true) => Some(
            VideoDecoder::new(video.codec)
                .with_context(|| format!("{} decoder", video.codec.name()))?,
        ),
        _ => None,
    };
    let mut last_pli = started;
    let mut closing = false;

    loop {
        // Run str0m until it wants to wait.
        let timeout = loop {
            match rtc.poll_output().map_err(|e| anyhow!("str0m: {e}"))? {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(e) => match e {
                    Event::Connected => next_send = Some(Instant::now()),
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        bail!("ICE disconnected")
                    }
                    Event::MediaData(d) => {
                        let now = Instant::now();
                        let mut s = lock(stats);
                        s.received += 1;
                        s.media_at(now);
                        if s.setup.is_none() {
                            s.setup = Some(now - started);
                        }
                        match &send {
                            Send::Audio(_) => {
                                let len = d.data.len();
                                if quiet.is_loud(len)
                                    && let Some(at) = burst_sent.take()
                                {
                                    s.rtts.push(now - at);
                                }
                            }
                            Send::Video(..) => {
                                drop(s);
                                if let Some(dec) = decoder.as_mut() {
                                    match dec.decode(&d.data, 0) {
                                        Ok(Some(picture)) => {
                                            if let Some(at) = read_counter(&picture)
                                                .and_then(|c| frame_sent.get(c).copied().flatten())
                                            {
                                                lock(stats).rtts.push(now - at);
                                            }
                                        }
                                        Ok(None) => {}
                                        Err(_) if now - last_pli > Duration::from_millis(300) => {
                                            last_pli = now;
                                            if let Some(mut w) = rtc.writer(track.mid) {
                                                let _ = w.request_keyframe(
                                                    None,
                                                    KeyframeRequestKind::Pli,
                                                );
                                            }
                                        }
                                        Err(_) => {}
                                    }
                                }
                            }
                        }
                    }
                    Event::Closed => bail!("closed by the server"),
                    _ => {}
                },
            }
        };
        if closing {
            return Ok(());
        }
        let wake = next_send.map_or(timeout, |n| n.min(timeout));
        tokio::select! {
            _ = stop.changed() => {
                // A graceful close (DTLS close_notify) so the server frees the slot now.
                let _ = rtc.close();
                closing = true;
            }
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r.context("UDP receive")?;
                if let Ok(contents) = buf[..n].try_into() {
                    let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
                    let _ = rtc.handle_input(input);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if let Some(at) = next_send.filter(|&at| at <= now) {
                    if track.pt.is_none() {
                        track.pt = rtc.writer(track.mid).and_then(|w| send_pt(w.payload_params(), kind, video_codec));
                    }
                    if let (Some(pt), Some(w)) = (track.pt, rtc.writer(track.mid)) {
                        let (data, time) = match &send {
                            Send::Audio(cycle) => {
                                let i = sent as usize % AUDIO_CYCLE;
                                if i == 0 {
                                    burst_sent = Some(now);
                                }
                                (cycle.opus[i].clone(), MediaTime::new(sent * AUDIO_FRAME as u64, Frequency::FORTY_EIGHT_KHZ))
                            }
                            Send::Video(video, _) => {
                                let i = sent as usize % VIDEO_LOOP;
                                frame_sent[i] = Some(now);
                                (video.frames[i].clone(), MediaTime::new(sent * 90_000 / u64::from(VIDEO_FPS), Frequency::NINETY_KHZ))
                            }
                        };
                        if w.write(pt, now, time, data).is_ok() {
                            sent += 1;
                            lock(stats).sent = sent;
                        }
                    }
                    // Keep the schedule; after a stall, skip rather than burst.
                    let mut next = at + period;
                    if next < now {
                        next = now + period;
                    }
                    next_send = Some(next);
                }
                let _ = rtc.handle_input(Input::Timeout(now));
            }
        }
    }
}

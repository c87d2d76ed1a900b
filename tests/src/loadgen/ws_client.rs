//! The WebSocket client: FastRTC's `/websocket/offer` protocol (`start` with a
//! `websocket_id`, then `media` messages of base64 μ-law), sending the burst cycle in
//! real time and measuring the audio that returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use wasmrtc::media::mulaw;

use crate::media::{AUDIO_CYCLE, AUDIO_FRAME, AudioCycle, LOUD_SAMPLE};
use crate::report::{Shared, lock};

/// Run one WebSocket stream of the server at `base` (`http://…`) until `stop` turns true.
pub async fn run(base: String, cycle: Arc<AudioCycle>, stats: Shared, stop: watch::Receiver<bool>) {
    if let Err(e) = client(&base, cycle, &stats, stop).await {
        lock(&stats).failed = Some(format!("{e:#}"));
    }
}

/// The base64 payload of a `media` message, found without parsing the whole JSON.
fn payload(text: &str) -> Option<&str> {
    if !text.contains("\"media\"") {
        return None;
    }
    let start = text.find("\"payload\"")? + "\"payload\"".len();
    let rest = text[start..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

async fn client(
    base: &str,
    cycle: Arc<AudioCycle>,
    stats: &Shared,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let url = format!("{}/websocket/offer", base.replacen("http://", "ws://", 1));
    let started = Instant::now();
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        // TCP_NODELAY, as browsers set it on WebSockets.
        tokio_tungstenite::connect_async_with_config(&url, None, true),
    )
    .await
    .context("WebSocket connect timed out")?
    .with_context(|| format!("connect {url}"))?;
    let (mut tx, mut rx) = ws.split();
    let id = wasmrtc_tests::peer::new_webrtc_id();
    tx.send(Message::text(
        serde_json::json!({"event": "start", "websocket_id": id}).to_string(),
    ))
    .await?;
    let messages: Vec<Message> = cycle
        .ws_messages
        .iter()
        .map(|m| Message::text(m.clone()))
        .collect();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0usize;
    let mut burst_sent: Option<Instant> = None;
    // Received μ-law bytes not yet counted as a whole 20 ms frame.
    let mut samples = 0usize;
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = tx.send(Message::text(r#"{"event":"stop"}"#)).await;
                let _ = tx.close().await;
                return Ok(());
            }
            _ = ticker.tick() => {
                let i = sent % AUDIO_CYCLE;
                if i == 0 {
                    burst_sent = Some(Instant::now());
                }
                tx.send(messages[i].clone()).await.context("send media")?;
                sent += 1;
                lock(stats).sent = sent as u64;
            }
            m = rx.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => anyhow::bail!("closed by the server: {c:?}"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e).context("receive"),
                    None => anyhow::bail!("the server ended the connection"),
                };
                if text.contains("\"error\"") {
                    anyhow::bail!("server error: {}", text.as_str());
                }
                let Some(b64) = payload(&text) else { continue };
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default();
                let now = Instant::now();
                let peak = bytes.iter().map(|&b| mulaw::decode(b).unsigned_abs()).max().unwrap_or(0);
                let loud = peak >= LOUD_SAMPLE as u16;
                samples += bytes.len();
                let mut s = lock(stats);
                s.media_at(now);
                if loud {
                    s.burst_peaks.push(peak);
                }
                if s.setup.is_none() {
                    s.setup = Some(now - started);
                }
                s.received += (samples / AUDIO_FRAME) as u64;
                samples %= AUDIO_FRAME;
                if loud && let Some(at) = burst_sent.take() {
                    s.rtts.push(now - at);
                }
            }
        }
    }
}

//! The media every client sends, encoded once and shared: a 500 ms audio cycle (one loud
//! 20 ms burst, then silence) as Opus packets and as μ-law, and a loop of 640x480 VP8 or
//! H.264 frames each carrying its index as a row of big black and white blocks.

use std::sync::Arc;

use anyhow::Context;
use wasmrtc::media::{
    OpusEncoder, OpusSettings, Picture, PixelFormat, VideoEncoder, VideoSettings, mulaw,
};
use wasmrtc_tests::signal;

use crate::cli::VideoCodec;

/// Samples in a 20 ms frame at 48 kHz.
pub const AUDIO_FRAME: usize = 960;
/// Frames per audio cycle: a burst every 25 x 20 ms = 500 ms.
pub const AUDIO_CYCLE: usize = 25;
/// Peak of the burst (a 1 kHz sine); the rest of the cycle is digital silence.
const BURST_AMPLITUDE: f64 = 20_000.0;
/// A returned μ-law frame with a sample this loud carries the burst.
pub const LOUD_SAMPLE: i16 = 8_000;

/// Video size and rate.
pub const VIDEO_WIDTH: u32 = 640;
/// Video height.
pub const VIDEO_HEIGHT: u32 = 480;
/// Video frames per second.
pub const VIDEO_FPS: u32 = 30;
/// Frames in the video loop (5 s); the counter drawn is the index in the loop.
pub const VIDEO_LOOP: usize = 150;
/// Bits of the counter; two more blocks (white, black) mark the band.
const COUNTER_BITS: usize = 10;
const BLOCKS: usize = COUNTER_BITS + 2;
/// Height of the counter band, in pixels.
const BAND: usize = 48;
/// Bitrate of the video loop, kbit/s.
const VIDEO_KBPS: u32 = 1_000;
/// Encodes of one picture before the loop gives up on an encoder that keeps dropping it.
const MAX_ENCODES: usize = 8;

/// One audio cycle, encoded.
pub struct AudioCycle {
    /// Opus packets of the cycle; packet 0 holds the burst.
    pub opus: Vec<Arc<[u8]>>,
    /// The same cycle as FastRTC WebSocket `media` messages (base64 μ-law at 48 kHz).
    pub ws_messages: Vec<String>,
}

impl AudioCycle {
    /// Encode the cycle (the second pass through one encoder, so the packets follow a
    /// warmed-up encoder state and decode cleanly when looped).
    pub fn new() -> anyhow::Result<Self> {
        let mut encoder = OpusEncoder::new(1, OpusSettings::default()).context("Opus encoder")?;
        let frames: Vec<Vec<i16>> = (0..AUDIO_CYCLE)
            .map(|i| {
                if i == 0 {
                    signal::sine(1_000.0, BURST_AMPLITUDE, 48_000, 0, AUDIO_FRAME)
                } else {
                    vec![0; AUDIO_FRAME]
                }
            })
            .collect();
        let mut opus = Vec::new();
        for pass in 0..2 {
            for f in &frames {
                let packet = encoder.encode(f).context("Opus encode")?;
                if pass == 1 {
                    opus.push(Arc::from(packet));
                }
            }
        }
        use base64::Engine as _;
        let ws_messages = frames
            .iter()
            .map(|f| {
                let payload =
                    base64::engine::general_purpose::STANDARD.encode(mulaw::encode_slice(f));
                serde_json::json!({"event": "media", "media": {"payload": payload}}).to_string()
            })
            .collect();
        Ok(Self { opus, ws_messages })
    }
}

/// The loop of encoded frames every video client sends.
pub struct VideoLoop {
    /// The codec of the frames.
    pub codec: VideoCodec,
    /// One encoded frame per index (VP8 frames, or H.264 Annex B access units); a
    /// keyframe every second.
    pub frames: Vec<Arc<[u8]>>,
}

impl VideoLoop {
    /// Draw and encode the loop (about a second of CPU, once).
    pub fn new(codec: VideoCodec) -> anyhow::Result<Self> {
        Self::encode(codec, VIDEO_LOOP)
    }

    /// The first `count` frames of the loop.
    fn encode(codec: VideoCodec, count: usize) -> anyhow::Result<Self> {
        let settings = VideoSettings {
            bitrate_kbps: VIDEO_KBPS,
            fps: VIDEO_FPS,
            keyframe_interval: VIDEO_FPS,
            ..VideoSettings::default()
        };
        let mut encoder = VideoEncoder::new(codec, VIDEO_WIDTH, VIDEO_HEIGHT, settings)
            .with_context(|| format!("{} encoder", codec.name()))?;
        let mut frames = Vec::with_capacity(count);
        // Encoder time runs on when a rate control drops a picture and it is encoded again.
        let mut tick = 0u64;
        for i in 0..count {
            if i == 0 {
                encoder.force_keyframe();
            }
            let mut data = Vec::new();
            for _ in 0..MAX_ENCODES {
                let picture = counter_picture(i, tick * 1_000_000 / u64::from(VIDEO_FPS));
                tick += 1;
                data = encoder
                    .encode(&picture)
                    .with_context(|| format!("{} encode", codec.name()))?
                    .into_iter()
                    .flat_map(|f| f.data)
                    .collect();
                if !data.is_empty() {
                    break;
                }
            }
            if data.is_empty() {
                anyhow::bail!("the {} encoder dropped frame {i} every time", codec.name());
            }
            frames.push(Arc::from(data));
        }
        Ok(Self { codec, frames })
    }

    /// Mean size of a frame in bytes.
    pub fn mean_bytes(&self) -> usize {
        self.frames.iter().map(|f| f.len()).sum::<usize>() / self.frames.len().max(1)
    }
}

fn block_x(b: usize) -> std::ops::Range<usize> {
    let w = VIDEO_WIDTH as usize / BLOCKS;
    b * w..(b + 1) * w
}

/// Frame `index` of the loop: a moving gradient with a box, and along the top a band of
/// blocks (bits of `index`, then a white and a black marker block).
pub fn counter_picture(index: usize, timestamp_us: u64) -> Picture {
    let (w, h) = (VIDEO_WIDTH as usize, VIDEO_HEIGHT as usize);
    let mut p = Picture::black(VIDEO_WIDTH, VIDEO_HEIGHT, PixelFormat::I420, timestamp_us);
    let y = &mut p.data[..w * h];
    for row in BAND..h {
        for col in 0..w {
            y[row * w + col] = (64 + ((col + 2 * row + 4 * index) % 128)) as u8;
        }
    }
    // A box sliding across the middle.
    let bx = (index * 8) % (w - 96);
    for row in 200..296 {
        y[row * w + bx..row * w + bx + 96].fill(200);
    }
    for b in 0..BLOCKS {
        let on = match b {
            COUNTER_BITS => true,
            b if b == COUNTER_BITS + 1 => false,
            b => index >> b & 1 == 1,
        };
        for row in 0..BAND {
            y[row * w..(row + 1) * w][block_x(b)].fill(if on { 235 } else { 16 });
        }
    }
    p
}

/// Read the counter of a returned picture, from the band at the top or (after a vertical
/// flip) at the bottom; `None` when neither band carries the markers.
pub fn read_counter(p: &Picture) -> Option<usize> {
    let (luma, _, _) = p.planes()?;
    let (w, h) = (p.width as usize, p.height as usize);
    if w != VIDEO_WIDTH as usize || h < 2 * BAND {
        return None;
    }
    let block_mean = |top: usize, b: usize| -> f64 {
        let xs = block_x(b);
        let (x0, x1) = (xs.start + xs.len() / 4, xs.end - xs.len() / 4);
        let (y0, y1) = (top + BAND / 4, top + 3 * BAND / 4);
        let mut sum = 0u64;
        for row in y0..y1 {
            sum += luma[row * w + x0..row * w + x1]
                .iter()
                .map(|&v| u64::from(v))
                .sum::<u64>();
        }
        sum as f64 / ((y1 - y0) * (x1 - x0)) as f64
    };
    [0, h - BAND].into_iter().find_map(|top| {
        let marked =
            block_mean(top, COUNTER_BITS) > 180.0 && block_mean(top, COUNTER_BITS + 1) < 70.0;
        marked.then(|| {
            (0..COUNTER_BITS)
                .filter(|&b| block_mean(top, b) > 125.0)
                .fold(0, |n, b| n | 1 << b)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmrtc::media::VideoDecoder;

    #[test]
    fn the_counter_reads_back_upright_and_flipped() {
        let p = counter_picture(137, 0);
        assert_eq!(read_counter(&p), Some(137));
        let (w, h) = (p.width as usize, p.height as usize);
        let mut flipped = p.clone();
        for row in 0..h {
            flipped.data[row * w..(row + 1) * w]
                .copy_from_slice(&p.data[(h - 1 - row) * w..(h - row) * w]);
        }
        assert_eq!(read_counter(&flipped), Some(137));
    }

    #[test]
    fn the_counter_survives_either_codec() {
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            let video = VideoLoop::encode(codec, 3).unwrap();
            let mut decoder = VideoDecoder::new(codec).unwrap();
            for (i, frame) in video.frames.iter().enumerate() {
                let picture = decoder
                    .decode(frame, 0)
                    .unwrap()
                    .expect("a picture per frame");
                assert_eq!(read_counter(&picture), Some(i), "{codec:?} frame {i}");
            }
        }
    }
}

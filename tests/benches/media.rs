//! Media benchmark: what the host's codecs cost per frame on the hot path of a stream,
//! for 640x480 video at 30 fps (VP8 decode and encode at several `cpu-used` speeds and
//! bitrates, H.264 both ways, I420↔RGB conversion) and 20 ms of 48 kHz audio (Opus
//! both ways).
//!
//! `cargo bench -p wasmrtc-tests --bench media`

use std::time::{Duration, Instant};

use wasmrtc::media::{
    H264Decoder, H264Encoder, H264Settings, OpusApplication, OpusDecoder, OpusEncoder,
    OpusSettings, Picture, PixelFormat, Vp8Decoder, Vp8Encoder, Vp8Settings,
};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
const FPS: u32 = 30;
/// Frames per measurement: 10 s of video.
const FRAMES: usize = 300;

/// A picture with motion everywhere (a drifting gradient) and a sliding box, like a
/// camera pointed at a moving scene: the encoder cannot skip blocks.
fn scene(index: usize) -> Picture {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut p = Picture::black(WIDTH, HEIGHT, PixelFormat::I420, index as u64 * 33_333);
    let y = &mut p.data[..w * h];
    for row in 0..h {
        for col in 0..w {
            y[row * w + col] = (64 + ((col + 2 * row + 4 * index) % 128)) as u8;
        }
    }
    let bx = (index * 8) % (w - 96);
    for row in 200..296 {
        y[row * w + bx..row * w + bx + 96].fill(200);
    }
    p
}

fn per_frame(total: Duration, n: usize) -> String {
    format!("{:>7.0} µs", total.as_secs_f64() * 1e6 / n as f64)
}

/// Encode the scene at `settings`; the time per frame and the stream's frames.
fn encode(settings: Vp8Settings, pictures: &[Picture]) -> (Duration, Vec<Vec<u8>>) {
    let mut encoder = Vp8Encoder::new(WIDTH, HEIGHT, settings).expect("VP8 encoder");
    let mut frames = Vec::with_capacity(pictures.len());
    let start = Instant::now();
    for p in pictures {
        let encoded = encoder.encode(p).expect("encode");
        frames.push(encoded.into_iter().flat_map(|f| f.data).collect());
    }
    (start.elapsed(), frames)
}

/// Mean PSNR of the luma of `frames` decoded against the `pictures` they encode.
fn luma_psnr(pictures: &[Picture], frames: &[Vec<u8>]) -> f64 {
    let mut decoder = Vp8Decoder::new().expect("VP8 decoder");
    let mut total = 0.0;
    let mut n = 0usize;
    for (i, (p, f)) in pictures.iter().zip(frames).enumerate() {
        let Ok(Some(d)) = decoder.decode(f, i as u64) else {
            continue;
        };
        let Ok(d) = d.convert(PixelFormat::I420) else {
            continue;
        };
        let luma = (WIDTH * HEIGHT) as usize;
        let mse = p.data[..luma]
            .iter()
            .zip(&d.data[..luma])
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum::<f64>()
            / luma as f64;
        total += if mse == 0.0 {
            99.0
        } else {
            10.0 * (255.0 * 255.0 / mse).log10()
        };
        n += 1;
    }
    total / n.max(1) as f64
}

fn video() {
    let pictures: Vec<Picture> = (0..FRAMES).map(scene).collect();
    println!("640x480 @ {FPS} fps, {FRAMES} frames, one thread, per frame:");
    println!(
        "  {:<44} {:>10} {:>10} {:>9}",
        "VP8 encode", "time", "kbit/s", "PSNR dB"
    );
    let mut reference = None;
    for bitrate_kbps in [500, 1_000] {
        for cpu_used in [8, 12, 14, 16] {
            let settings = Vp8Settings {
                bitrate_kbps,
                cpu_used,
                ..Vp8Settings::default()
            };
            let (took, frames) = encode(settings, &pictures);
            let bytes: usize = frames.iter().map(Vec::len).sum();
            let kbps = bytes as f64 * 8.0 * f64::from(FPS) / FRAMES as f64 / 1000.0;
            let default = settings == Vp8Settings::default();
            let label = format!(
                "cpu-used {cpu_used:>2}, target {bitrate_kbps:>4} kbit/s{}",
                if default { " (host default)" } else { "" }
            );
            let psnr = luma_psnr(&pictures, &frames);
            println!(
                "  {label:<44} {} {kbps:>10.0} {psnr:>9.2}",
                per_frame(took, FRAMES)
            );
            if default {
                reference = Some(frames);
            }
        }
    }

    let frames = reference.expect("the default settings were measured");
    let mut decoder = Vp8Decoder::new().expect("VP8 decoder");
    let mut decoded = Vec::with_capacity(FRAMES);
    let start = Instant::now();
    for (i, f) in frames.iter().enumerate() {
        if let Some(p) = decoder.decode(f, i as u64).expect("decode") {
            decoded.push(p);
        }
    }
    println!(
        "  {:<44} {}",
        "VP8 decode (the default stream)",
        per_frame(start.elapsed(), FRAMES)
    );

    let mut encoder =
        H264Encoder::new(WIDTH, HEIGHT, H264Settings::default()).expect("H.264 encoder");
    let start = Instant::now();
    let units: Vec<Vec<u8>> = pictures
        .iter()
        .map(|p| {
            let encoded = encoder.encode(p).expect("H.264 encode");
            encoded.into_iter().flat_map(|f| f.data).collect()
        })
        .collect();
    let took = start.elapsed();
    let bytes: usize = units.iter().map(Vec::len).sum();
    let kbps = bytes as f64 * 8.0 * f64::from(FPS) / FRAMES as f64 / 1000.0;
    println!(
        "  {:<44} {} {kbps:>10.0}",
        "H.264 encode (openh264), target 1000 kbit/s",
        per_frame(took, FRAMES)
    );
    let mut decoder = H264Decoder::new().expect("H.264 decoder");
    let start = Instant::now();
    for (i, u) in units.iter().enumerate() {
        decoder.decode(u, i as u64).expect("H.264 decode");
    }
    println!(
        "  {:<44} {}",
        "H.264 decode (that stream)",
        per_frame(start.elapsed(), FRAMES)
    );

    // One picture at a time, each dropped before the next, as a session does.
    let start = Instant::now();
    for p in &decoded {
        drop(p.clone().convert(PixelFormat::Rgb24).expect("to RGB"));
    }
    println!(
        "  {:<44} {}",
        "I420 -> RGB24 (and a copy of the I420)",
        per_frame(start.elapsed(), decoded.len())
    );
    let rgb: Vec<Picture> = decoded
        .iter()
        .map(|p| p.clone().convert(PixelFormat::Rgb24).expect("to RGB"))
        .collect();
    let start = Instant::now();
    for p in &rgb {
        drop(p.clone().convert(PixelFormat::I420).expect("to I420"));
    }
    println!(
        "  {:<44} {}",
        "RGB24 -> I420 (and a copy of the RGB24)",
        per_frame(start.elapsed(), rgb.len())
    );
}

fn audio() {
    const RATE: usize = 48_000;
    let n = 500; // 10 s of 20 ms frames
    let tone: Vec<i16> = (0..RATE / 50 * n)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / RATE as f64).sin() * 8000.0) as i16)
        .collect();
    println!("48 kHz mono, 20 ms frames, per frame:");
    for (name, application) in [
        (
            "Opus encode, Audio (host's outgoing)",
            OpusApplication::Audio,
        ),
        ("Opus encode, Voip", OpusApplication::Voip),
    ] {
        let settings = OpusSettings {
            application,
            ..OpusSettings::default()
        };
        let mut encoder = OpusEncoder::new(1, settings).expect("Opus encoder");
        let frame = encoder.frame_len();
        let start = Instant::now();
        let packets: Vec<Vec<u8>> = tone
            .chunks_exact(frame)
            .map(|c| encoder.encode(c).expect("encode"))
            .collect();
        println!("  {name:<44} {}", per_frame(start.elapsed(), packets.len()));
        let mut decoder = OpusDecoder::new(1).expect("Opus decoder");
        let start = Instant::now();
        for p in &packets {
            decoder.decode(Some(p)).expect("decode");
        }
        println!(
            "  {:<44} {}",
            "Opus decode of that",
            per_frame(start.elapsed(), packets.len())
        );
    }
}

fn main() {
    println!("wasmrtc media benchmark (release build, one thread)");
    video();
    audio();
}

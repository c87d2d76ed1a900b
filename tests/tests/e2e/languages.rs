//! Handlers written in Python (componentize-py), JavaScript (componentize-js) and C
//! (wit-bindgen c + clang + the preview1 adapter), built from source with each
//! language's real toolchain, behave like their Rust twins: through the runtime
//! (exact results), then end to end over WebRTC with the independent test peer.
//!
//! The toolchains come from `scripts/setup-languages.sh`; the build is
//! `examples-guests/build-languages.sh`, run once per test binary.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use wasmrtc::{Stream, StreamConfig};
use wasmrtc_tests::checks;
use wasmrtc_tests::peer::{self, Media};

use wasmrtc::runtime::{
    AudioFrame, HandlerComponent, HandlerInstance, HostEvent, InstanceLimits, Modality, Mode,
    PixelFormat, Value, VideoFrame,
};
use wasmrtc_tests::{guests, test_runtime};

/// `examples-guests/`.
fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples-guests")
}

/// Path of a built language example, e.g. `python-gain`; builds them all on first use.
pub(crate) fn built(name: &str) -> String {
    static BUILD: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILD.get_or_init(|| {
        let script = examples().join("build-languages.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let missing = out.status.code() == Some(2);
        Err(format!(
            "{} failed ({}){}\n--- stdout\n{}\n--- stderr\n{}",
            script.display(),
            out.status,
            if missing {
                ": a language toolchain is missing; run scripts/setup-languages.sh"
            } else {
                ""
            },
            String::from_utf8_lossy(&out.stdout),
            stderr,
        ))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let path = examples().join(format!("target/lang/{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path.display().to_string()
}

async fn load(name: &str) -> HandlerComponent {
    let path = built(name);
    test_runtime()
        .load_file(name, &path)
        .await
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

fn audio(samples: Vec<i16>) -> AudioFrame {
    AudioFrame {
        sample_rate: 48_000,
        channels: 1,
        samples,
    }
}

/// Every s16 value once, in 20 ms frames.
fn every_sample() -> Vec<Vec<i16>> {
    let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
    all.chunks(960).map(<[i16]>::to_vec).collect()
}

/// Frame sent, then the frame that comes back.
async fn round_trip(inst: &mut HandlerInstance, samples: Vec<i16>) -> Vec<i16> {
    inst.on_audio(&audio(samples)).await.unwrap();
    inst.next_audio()
        .await
        .unwrap()
        .expect("audio back")
        .samples
}

async fn check_gain(name: &str) {
    let gain = load(name).await;
    assert_eq!(
        (gain.spec().modality, gain.spec().mode),
        (Modality::Audio, Mode::SendReceive),
        "{name}"
    );
    assert_eq!(
        (
            gain.spec().input_sample_rate,
            gain.spec().output_sample_rate
        ),
        (48_000, 48_000),
        "{name}"
    );
    let defaults = wasmrtc::runtime::spec::default_values(gain.spec());
    assert_eq!(defaults, vec![Value::Number(1.0)], "{name}");
    let mut inst = gain.instantiate("c1").await.unwrap();

    let out = round_trip(&mut inst, vec![1000; 960]).await;
    assert!(out.iter().all(|&s| s == 1000), "{name}: default gain is 1");

    inst.set_inputs(&[Value::Number(0.5)]).await.unwrap();
    let out = round_trip(&mut inst, vec![1000; 960]).await;
    assert!(out.iter().all(|&s| s == 500), "{name}: gain 0.5 halves");

    inst.set_inputs(&[Value::Number(2.0)]).await.unwrap();
    let out = round_trip(&mut inst, vec![20_000; 960]).await;
    assert!(
        out.iter().all(|&s| s == i16::MAX),
        "{name}: gain saturates up"
    );
    let out = round_trip(&mut inst, vec![-20_000; 960]).await;
    assert!(
        out.iter().all(|&s| s == i16::MIN),
        "{name}: gain saturates down"
    );

    // Frames queue in order and the queue drains to `none`.
    inst.set_inputs(&[Value::Number(1.0)]).await.unwrap();
    for i in 0..5 {
        inst.on_audio(&audio(vec![i; 960])).await.unwrap();
    }
    for i in 0..5 {
        let f = inst.next_audio().await.unwrap().expect("queued frame");
        assert_eq!(f.samples, vec![i; 960], "{name}: frame {i}");
    }
    assert_eq!(
        inst.next_audio().await.unwrap(),
        None,
        "{name}: queue drained"
    );

    // Sample for sample what the Rust example computes (an f32 product rounded half
    // to even), for every s16 value; plain f64 arithmetic differs at 0.07, 0.09, 0.13.
    let rust = test_runtime()
        .load_file("gain", guests::GAIN)
        .await
        .unwrap();
    let mut twin = rust.instantiate("rust").await.unwrap();
    for factor in [
        0.0, 0.01, 0.07, 0.09, 0.13, 0.37, 0.5, 0.99, 1.01, 1.5, 1.99, 2.0,
    ] {
        inst.set_inputs(&[Value::Number(factor)]).await.unwrap();
        twin.set_inputs(&[Value::Number(factor)]).await.unwrap();
        for samples in every_sample() {
            let ours = round_trip(&mut inst, samples.clone()).await;
            let theirs = round_trip(&mut twin, samples).await;
            assert_eq!(ours, theirs, "{name} differs from Rust's gain at {factor}");
        }
    }
}

/// 64x48 I420: top half luma 50, bottom half 150 (mean 100), chroma 128.
fn halves_frame() -> VideoFrame {
    let (w, h) = (64u32, 48u32);
    let mut data = vec![50u8; (w * h / 2) as usize];
    data.extend(vec![150u8; (w * h / 2) as usize]);
    data.extend(vec![128u8; (w * h / 2) as usize]);
    VideoFrame {
        width: w,
        height: h,
        format: PixelFormat::I420,
        data,
        timestamp_us: 0,
    }
}

/// Every output value emitted since the last call.
fn outputs(inst: &mut HandlerInstance) -> Vec<Vec<Value>> {
    inst.take_events()
        .into_iter()
        .filter_map(|ev| match ev {
            HostEvent::Outputs(values) => Some(values),
            _ => None,
        })
        .collect()
}

async fn check_brightness(name: &str) {
    let b = load(name).await;
    let spec = b.spec();
    assert_eq!(
        (spec.modality, spec.mode),
        (Modality::Video, Mode::Send),
        "{name}"
    );
    assert_eq!(spec.video_format, PixelFormat::I420, "{name}");
    assert_eq!(spec.outputs.len(), 1, "{name}");
    assert_eq!(spec.outputs[0].name, "brightness", "{name}");
    let mut inst = b.instantiate("c1").await.unwrap();

    let mut frame = halves_frame();
    let mut emitted = Vec::new();
    for i in 0..30u64 {
        frame.timestamp_us = i * 33_333; // one second at 30 fps
        let back = inst.on_video(&frame).await.unwrap();
        assert_eq!(back, None, "{name}: send mode returns no video");
        emitted.extend(outputs(&mut inst));
    }
    assert!(
        (2..=5).contains(&emitted.len()),
        "{name}: {} outputs in one second",
        emitted.len()
    );
    for values in &emitted {
        assert_eq!(values, &vec![Value::Number(100.0)], "{name}");
    }

    // A non-integer mean, an odd size (unaligned tail), and time going backwards.
    let (w, h) = (641u32, 479u32);
    let pixels = (w * h) as usize;
    let mut data: Vec<u8> = (0..pixels).map(|i| (i * 31 % 256) as u8).collect();
    data.resize(pixels + 2 * (w.div_ceil(2) * h.div_ceil(2)) as usize, 128);
    let expected = data[..pixels].iter().map(|&y| f64::from(y)).sum::<f64>() / pixels as f64;
    let frame = VideoFrame {
        width: w,
        height: h,
        format: PixelFormat::I420,
        data,
        timestamp_us: 5,
    };
    inst.on_video(&frame).await.unwrap();
    assert_eq!(
        outputs(&mut inst),
        vec![vec![Value::Number(expected)]],
        "{name}: mean of a {w}x{h} ramp after a restart"
    );

    // 30 s of 640x480 video at 30 fps within the default limits: the garbage collector
    // keeps up (a call over the memory or CPU budget would fail here).
    let mut frame = VideoFrame {
        width: 640,
        height: 480,
        format: PixelFormat::I420,
        data: vec![200; wasmrtc::runtime::spec::frame_len(PixelFormat::I420, 640, 480)],
        timestamp_us: 0,
    };
    let mut count = 0;
    for i in 0..900u64 {
        frame.timestamp_us = 1_000_000 + i * 33_333;
        inst.on_video(&frame)
            .await
            .unwrap_or_else(|e| panic!("{name}: frame {i}: {e}"));
        count += outputs(&mut inst).len();
    }
    assert!(
        (110..=130).contains(&count),
        "{name}: {count} outputs in 30 s"
    );
    let memory = inst.memory_bytes();
    assert!(
        memory <= InstanceLimits::default().memory_bytes,
        "{name}: {memory} bytes of memory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_gain_scales_by_its_slider() {
    check_gain("python-gain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_gain_scales_by_its_slider() {
    check_gain("js-gain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_brightness_emits_the_mean_luma_a_few_times_a_second() {
    check_brightness("python-brightness").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_brightness_emits_the_mean_luma_a_few_times_a_second() {
    check_brightness("js-brightness").await;
}

/// A frame whose every byte of row `y` is `y` (times `mul`, wrapping).
fn rows_frame(width: u32, height: u32, format: PixelFormat) -> VideoFrame {
    let len = wasmrtc::runtime::spec::frame_len(format, width, height);
    let row_len = match format {
        PixelFormat::I420 => width as usize,
        _ => width as usize * 3,
    };
    let data = (0..len).map(|i| (i / row_len) as u8).collect();
    VideoFrame {
        width,
        height,
        format,
        data,
        timestamp_us: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_flip_reverses_the_rows() {
    let flip = load("c-flip").await;
    let spec = flip.spec();
    assert_eq!(
        (spec.modality, spec.mode, spec.video_format),
        (Modality::Video, Mode::SendReceive, PixelFormat::Rgb24)
    );
    let mut inst = flip.instantiate("c1").await.unwrap();
    let frame = rows_frame(64, 48, PixelFormat::Rgb24);
    let out = inst.on_video(&frame).await.unwrap().expect("a frame back");
    assert_eq!(
        (out.width, out.height, out.format, out.data.len()),
        (64, 48, PixelFormat::Rgb24, frame.data.len())
    );
    for (y, row) in out.data.chunks(64 * 3).enumerate() {
        assert!(
            row.iter().all(|&b| b == (47 - y) as u8),
            "row {y} is not row {}",
            47 - y
        );
    }

    // Byte for byte what the Rust example returns, for every format and odd sizes.
    let rust = test_runtime()
        .load_file("flip", guests::FLIP)
        .await
        .unwrap();
    let mut twin = rust.instantiate("rust").await.unwrap();
    for format in [PixelFormat::Rgb24, PixelFormat::Bgr24, PixelFormat::I420] {
        for (w, h) in [(640, 480), (33, 17), (1, 1)] {
            let mut frame = rows_frame(w, h, format);
            frame.timestamp_us = 1234;
            for (i, b) in frame.data.iter_mut().enumerate() {
                *b = b.wrapping_mul(7).wrapping_add((i % 5) as u8);
            }
            let ours = inst.on_video(&frame).await.unwrap();
            let theirs = twin.on_video(&frame).await.unwrap();
            assert_eq!(ours, theirs, "{format:?} {w}x{h} differs from Rust's flip");
        }
    }
}

// --- over WebRTC -------------------------------------------------------------------

/// Longest wait for anything to happen.
const WAIT: Duration = Duration::from_secs(20);
const RATE: usize = peer::AUDIO_RATE as usize;

/// A server on 127.0.0.1 streaming the built language example `name`: its base URL.
async fn serve(name: &str) -> (String, Stream) {
    peer::serve_guest(&built(name), StreamConfig::default()).await
}

/// The client's sine comes back at its level, then at a quarter of it after `gain` 0.25.
async fn gain_over_webrtc(name: &str) {
    let (base, _stream) = serve(name).await;
    let mut client = peer::connect(&base, Media::SendRecv, Media::None).await;
    let before = client.level(RATE / 2..2 * RATE, WAIT).await;
    checks::quarter_gain(&client, before, name, WAIT).await;
    client.close().await;
}

/// The mean luma of the client's video arrives over SSE.
async fn brightness_over_webrtc(name: &str) {
    let (base, _stream) = serve(name).await;
    let mut client = peer::connect(&base, Media::None, Media::Send).await;
    let mut outputs = client.outputs().await.unwrap();
    checks::reported_brightness(&mut outputs, name, WAIT).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_gain_over_webrtc() {
    gain_over_webrtc("python-gain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_gain_over_webrtc() {
    gain_over_webrtc("js-gain").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_brightness_over_webrtc() {
    brightness_over_webrtc("python-brightness").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_brightness_over_webrtc() {
    brightness_over_webrtc("js-brightness").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_flip_over_webrtc() {
    let (base, _stream) = serve("c-flip").await;
    let mut client = peer::connect(&base, Media::None, Media::SendRecv).await;
    checks::flipped_video(&client, "c-flip", WAIT).await;
    client.close().await;
}

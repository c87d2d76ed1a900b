//! Languages benchmark: the same handlers written in Rust, Python (componentize-py),
//! JavaScript (componentize-js) and C (wit-bindgen c). Per component: its size, its
//! load time (compile, link, describe) without the compiled-code cache, with a cold
//! cache and with a warm one, instantiation p50/p99, and the cost of one call:
//!
//! - `gain`: a 20 ms 48 kHz mono frame, `on-audio` + `next-audio`, at gain 0.5
//! - `brightness`: `on-video` of a 640x480 I420 frame that is measured and emitted
//! - `flip`: `on-video` of a 640x480 RGB frame
//!
//! and of an idle call, the language's fixed cost: `next-audio` on an empty queue
//! (gain), `on-video` of a 640x480 I420 frame that is not due for measuring
//! (brightness: the frame is still copied in), a 1x1 frame (flip).
//!
//! `cargo bench -p wasmrtc-tests --bench languages [-- WORD…]` (builds the language
//! examples with `examples-guests/build-languages.sh`; toolchains from
//! `scripts/setup-languages.sh`). With words, only components whose name contains
//! one of them are measured, e.g. `-- python`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmrtc::runtime::{
    AudioFrame, HandlerComponent, HandlerInstance, PixelFormat, Runtime, RuntimeConfig, Value,
    VideoFrame,
};
use wasmrtc_tests::guests;

#[derive(Clone, Copy)]
enum Example {
    Gain,
    Brightness,
    Flip,
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

fn build_languages() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples-guests");
    let status = std::process::Command::new("bash")
        .arg(examples.join("build-languages.sh"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run examples-guests/build-languages.sh");
    assert!(
        status.success(),
        "building the language examples failed ({status}); run scripts/setup-languages.sh"
    );
}

fn runtime(cache_dir: Option<&Path>) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: cache_dir.map(Path::to_path_buf),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

async fn timed_load(rt: &Runtime, path: &str) -> (HandlerComponent, Duration) {
    let t = Instant::now();
    let c = rt.load_file("bench", path).await.expect(path);
    (c, t.elapsed())
}

/// `runs` timings of one call (after a tenth as many to warm up).
async fn time_calls(inst: &mut HandlerInstance, example: Example, runs: usize) -> Vec<Duration> {
    let audio = AudioFrame {
        sample_rate: 48_000,
        channels: 1,
        samples: (0..960)
            .map(|i| ((i * 37) % 20_000 - 10_000) as i16)
            .collect(),
    };
    let (w, h) = (640u32, 480u32);
    let mut i420 = VideoFrame {
        width: w,
        height: h,
        format: PixelFormat::I420,
        data: (0..wasmrtc::runtime::spec::frame_len(PixelFormat::I420, w, h))
            .map(|i| (i % 251) as u8)
            .collect(),
        timestamp_us: 0,
    };
    let rgb = VideoFrame {
        width: w,
        height: h,
        format: PixelFormat::Rgb24,
        data: (0..(w * h * 3) as usize).map(|i| (i % 251) as u8).collect(),
        timestamp_us: 0,
    };
    if let Example::Gain = example {
        inst.set_inputs(&[Value::Number(0.5)]).await.unwrap();
    }
    let mut samples = Vec::with_capacity(runs);
    for n in 0..runs + runs / 10 {
        let t = Instant::now();
        match example {
            Example::Gain => {
                inst.on_audio(&audio).await.unwrap();
                inst.next_audio().await.unwrap().expect("audio back");
            }
            Example::Brightness => {
                // 250 ms apart: every frame is measured and its mean emitted.
                i420.timestamp_us = n as u64 * 250_000;
                inst.on_video(&i420).await.unwrap();
                assert_eq!(inst.take_events().len(), 1, "one output per frame");
            }
            Example::Flip => {
                inst.on_video(&rgb).await.unwrap().expect("a frame back");
            }
        }
        if n >= runs / 10 {
            samples.push(t.elapsed());
        }
    }
    samples
}

/// `runs` timings of the example's cheapest call (after a tenth as many to warm up).
async fn time_idle(inst: &mut HandlerInstance, example: Example, runs: usize) -> Vec<Duration> {
    let (w, h) = (640u32, 480u32);
    let i420 = VideoFrame {
        width: w,
        height: h,
        format: PixelFormat::I420,
        data: vec![16; wasmrtc::runtime::spec::frame_len(PixelFormat::I420, w, h)],
        // Far in the future, then repeated: measured once, then never due again.
        timestamp_us: 1 << 40,
    };
    let dot = VideoFrame {
        width: 1,
        height: 1,
        format: PixelFormat::Rgb24,
        data: vec![1, 2, 3],
        timestamp_us: 0,
    };
    if let Example::Brightness = example {
        inst.on_video(&i420).await.unwrap();
        inst.take_events();
    }
    let mut samples = Vec::with_capacity(runs);
    for n in 0..runs + runs / 10 {
        let t = Instant::now();
        match example {
            Example::Gain => assert!(inst.next_audio().await.unwrap().is_none()),
            Example::Brightness => {
                inst.on_video(&i420).await.unwrap();
                assert!(inst.take_events().is_empty(), "not due");
            }
            Example::Flip => {
                inst.on_video(&dot).await.unwrap().expect("a frame back");
            }
        }
        if n >= runs / 10 {
            samples.push(t.elapsed());
        }
    }
    samples
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    build_languages();
    let lang = |name: &str| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../examples-guests/target/lang/{name}.wasm"))
            .display()
            .to_string()
    };
    let cases: Vec<(&str, Example, String, usize)> = vec![
        ("rust gain", Example::Gain, guests::GAIN.to_string(), 2000),
        ("python gain", Example::Gain, lang("python-gain"), 500),
        ("js gain", Example::Gain, lang("js-gain"), 500),
        (
            "rust brightness",
            Example::Brightness,
            guests::BRIGHTNESS.to_string(),
            500,
        ),
        (
            "python brightness",
            Example::Brightness,
            lang("python-brightness"),
            100,
        ),
        (
            "js brightness",
            Example::Brightness,
            lang("js-brightness"),
            100,
        ),
        ("rust flip", Example::Flip, guests::FLIP.to_string(), 500),
        ("c flip", Example::Flip, lang("c-flip"), 500),
    ];

    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(name, ..)| words.is_empty() || words.iter().any(|w| name.contains(w.as_str())))
        .collect();

    let cache = std::env::temp_dir().join(format!("wasmrtc-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    println!("wasmrtc languages benchmark (release build, one thread)");
    println!(
        "{:<18} {:>6} | {:>8} {:>8} {:>7} | {:>8} {:>8} | {:>8} | {:>9} {:>9} | {:>6}",
        "component",
        "size",
        "no cache",
        "cold",
        "warm",
        "inst p50",
        "inst p99",
        "idle p50",
        "call p50",
        "call p99",
        "memory"
    );
    println!(
        "{:<18} {:>6} | {:>8} {:>8} {:>7} | {:>8} {:>8} | {:>8} | {:>9} {:>9} | {:>6}",
        "", "MB", "load ms", "load ms", "load ms", "µs", "µs", "µs", "µs", "µs", "MiB"
    );
    for (name, example, path, runs) in cases {
        let size = std::fs::metadata(&path).expect(&path).len();
        let (_, uncached) = timed_load(&runtime(None), &path).await;
        // A cold cache compiles and stores; a new runtime on the same directory reads it back.
        let (_, cold) = timed_load(&runtime(Some(&cache)), &path).await;
        let (component, warm) = timed_load(&runtime(Some(&cache)), &path).await;

        let inst_runs = runs.min(500);
        let mut inst_times = Vec::with_capacity(inst_runs);
        for _ in 0..inst_runs {
            let t = Instant::now();
            drop(component.instantiate("bench").await.unwrap());
            inst_times.push(t.elapsed());
        }
        let mut inst = component.instantiate("bench").await.unwrap();
        let calls = time_calls(&mut inst, example, runs).await;
        let mut idler = component.instantiate("bench").await.unwrap();
        let idle = time_idle(&mut idler, example, runs).await;
        let (ip50, ip99) = percentiles(inst_times);
        let (cp50, cp99) = percentiles(calls);
        let (idle50, _) = percentiles(idle);
        println!(
            "{:<18} {:>6.2} | {:>8.0} {:>8.0} {:>7.1} | {:>8.1} {:>8.1} | {:>8.1} | {:>9.1} {:>9.1} | {:>6.1}",
            name,
            size as f64 / 1e6,
            uncached.as_secs_f64() * 1e3,
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            ip50,
            ip99,
            idle50,
            cp50,
            cp99,
            inst.memory_bytes() as f64 / (1 << 20) as f64,
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
}

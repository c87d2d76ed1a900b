//! Runtime benchmark: instantiation from a pre-linked component and the cost of
//! calls into real example guests. Prints p50/p99 per operation.
//!
//! `cargo bench -p wasmrtc-tests --bench runtime`

use std::time::{Duration, Instant};

use wasmrtc::runtime::{AudioFrame, HandlerInstance, PixelFormat, VideoFrame};
use wasmrtc_tests::{guests, test_runtime};

struct Figures {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Figures {
    fn print(mut self) {
        self.samples.sort();
        let at = |q: f64| self.samples[((self.samples.len() as f64 - 1.0) * q) as usize];
        println!(
            "{:<40} p50 {:>9.1} µs   p99 {:>9.1} µs   ({} runs)",
            self.name,
            at(0.50).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            self.samples.len()
        );
    }
}

/// Time `runs` executions of an async block (after a tenth as many to warm up).
macro_rules! time {
    ($name:expr, $runs:expr, $body:expr) => {{
        for _ in 0..$runs / 10 {
            $body;
        }
        let mut samples = Vec::with_capacity($runs);
        for _ in 0..$runs {
            let t = Instant::now();
            $body;
            samples.push(t.elapsed());
        }
        Figures {
            name: $name,
            samples,
        }
    }};
}

fn rgb_frame() -> VideoFrame {
    VideoFrame {
        width: 640,
        height: 480,
        format: PixelFormat::Rgb24,
        data: (0..640 * 480 * 3).map(|i| (i % 251) as u8).collect(),
        timestamp_us: 0,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rt = test_runtime();
    let echo = rt.load_file("echo", guests::ECHO).await.unwrap();
    let flip = rt.load_file("flip", guests::FLIP).await.unwrap();
    let av = rt.load_file("av-echo", guests::AV_ECHO).await.unwrap();

    println!("wasmrtc runtime benchmark (release build, one thread)");
    time!("instantiate echo (from InstancePre)", 2000, {
        drop(echo.instantiate("bench").await.unwrap())
    })
    .print();

    let mut inst: HandlerInstance = echo.instantiate("bench").await.unwrap();
    let frame = AudioFrame {
        sample_rate: 48_000,
        channels: 1,
        samples: vec![1000; 960],
    };
    time!("audio 20 ms @48 kHz on-audio + next-audio", 20_000, {
        inst.on_audio(&frame).await.unwrap();
        inst.next_audio().await.unwrap().unwrap();
    })
    .print();

    let picture = rgb_frame();
    let mut flipper = flip.instantiate("bench").await.unwrap();
    time!("flip 640x480 rgb24 on-video", 500, {
        flipper.on_video(&picture).await.unwrap().unwrap();
    })
    .print();

    let mut copier = av.instantiate("bench").await.unwrap();
    time!("copy-only 640x480 rgb24 on-video", 500, {
        copier.on_video(&picture).await.unwrap().unwrap();
    })
    .print();
}

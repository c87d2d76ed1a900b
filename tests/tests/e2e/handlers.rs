//! The example handlers, loaded from their built components, behave as documented.

use wasmrtc::runtime::{
    AudioFrame, HandlerInstance, HostEvent, Modality, Mode, PixelFormat, Value, VideoFrame,
};
use wasmrtc_tests::{guests, signal, test_runtime};

fn audio(samples: Vec<i16>) -> AudioFrame {
    AudioFrame {
        sample_rate: 48_000,
        channels: 1,
        samples,
    }
}

/// An instance (`c1`) of the example at `path`.
async fn instance(name: &str, path: &str) -> HandlerInstance {
    let component = test_runtime().load_file(name, path).await.unwrap();
    component.instantiate("c1").await.unwrap()
}

/// A frame whose every byte of row `y` is `y`.
fn rows_frame(width: u32, height: u32) -> VideoFrame {
    let data = (0..height)
        .flat_map(|y| std::iter::repeat_n(y as u8, width as usize * 3))
        .collect();
    VideoFrame {
        width,
        height,
        format: PixelFormat::Rgb24,
        data,
        timestamp_us: 0,
    }
}

#[tokio::test]
async fn every_handler_table_cell_is_described() {
    // The seven cells of FastRTC's handler table, one example each.
    let rt = test_runtime();
    let cells = [
        (guests::FLIP, Modality::Video, Mode::SendReceive),
        (guests::BRIGHTNESS, Modality::Video, Mode::Send),
        (guests::BARS, Modality::Video, Mode::Receive),
        (guests::ECHO, Modality::Audio, Mode::SendReceive),
        (guests::GAIN, Modality::Audio, Mode::SendReceive),
        (guests::METER, Modality::Audio, Mode::Send),
        (guests::TONE, Modality::Audio, Mode::Receive),
        (guests::AV_ECHO, Modality::AudioVideo, Mode::SendReceive),
    ];
    for (path, modality, mode) in cells {
        let c = rt.load_file("cell", path).await.expect(path);
        assert_eq!(
            (c.spec().modality, c.spec().mode),
            (modality, mode),
            "{path}"
        );
    }
}

#[tokio::test]
async fn flip_reverses_the_rows() {
    let mut inst = instance("flip", guests::FLIP).await;
    let frame = rows_frame(64, 48);
    let out = inst.on_video(&frame).await.unwrap().expect("a frame back");
    assert_eq!(
        (out.width, out.height, out.format),
        (64, 48, PixelFormat::Rgb24)
    );
    let row_len = 64 * 3;
    for (y, row) in out.data.chunks(row_len).enumerate() {
        assert!(
            row.iter().all(|&b| b == (47 - y) as u8),
            "row {y} is not row {}",
            47 - y
        );
    }
}

#[tokio::test]
async fn gain_starts_at_its_default_and_follows_set_inputs() {
    let rt = test_runtime();
    let gain = rt.load_file("gain", guests::GAIN).await.unwrap();
    let defaults = wasmrtc::runtime::spec::default_values(gain.spec());
    assert_eq!(defaults, vec![Value::Number(1.0)]);
    let mut inst = gain.instantiate("c1").await.unwrap();

    inst.on_audio(&audio(vec![1000; 960])).await.unwrap();
    let out = inst.next_audio().await.unwrap().expect("audio back");
    assert!(out.samples.iter().all(|&s| s == 1000), "default gain is 1");

    inst.set_inputs(&[Value::Number(0.5)]).await.unwrap();
    inst.on_audio(&audio(vec![1000; 960])).await.unwrap();
    let out = inst.next_audio().await.unwrap().expect("audio back");
    assert!(out.samples.iter().all(|&s| s == 500), "gain 0.5 halves");

    inst.set_inputs(&[Value::Number(2.0)]).await.unwrap();
    inst.on_audio(&audio(vec![20_000; 960])).await.unwrap();
    let out = inst.next_audio().await.unwrap().expect("audio back");
    assert!(out.samples.iter().all(|&s| s == i16::MAX), "gain saturates");
}

#[tokio::test]
async fn echo_returns_frames_in_order() {
    let mut inst = instance("echo", guests::ECHO).await;
    for i in 0..5 {
        inst.on_audio(&audio(vec![i; 960])).await.unwrap();
    }
    for i in 0..5 {
        let f = inst.next_audio().await.unwrap().expect("queued frame");
        assert_eq!(f.samples, vec![i; 960]);
    }
    assert_eq!(inst.next_audio().await.unwrap(), None);
}

async fn tone_frequency(inst: &mut HandlerInstance) -> (f64, f64) {
    let mut samples = Vec::new();
    let mut rate = 0;
    while samples.len() < 48_000 {
        let f = inst
            .next_audio()
            .await
            .unwrap()
            .expect("tone always has audio");
        rate = f.sample_rate;
        samples.extend(f.samples);
    }
    (signal::frequency(&samples, rate), signal::rms(&samples))
}

#[tokio::test]
async fn tone_generates_the_requested_frequency() {
    let mut inst = instance("tone", guests::TONE).await;
    let (f, level) = tone_frequency(&mut inst).await;
    assert!(
        (f - 440.0).abs() < 2.0,
        "default tone is 440 Hz, measured {f}"
    );
    assert!(level > 1000.0, "tone is audible (rms {level})");

    inst.set_inputs(&[Value::Number(1000.0), Value::Number(0.5)])
        .await
        .unwrap();
    let (f, _) = tone_frequency(&mut inst).await;
    assert!((f - 1000.0).abs() < 3.0, "measured {f} Hz for 1000 Hz");
}

#[tokio::test]
async fn brightness_emits_the_mean_luma_a_few_times_a_second() {
    let rt = test_runtime();
    let b = rt
        .load_file("brightness", guests::BRIGHTNESS)
        .await
        .unwrap();
    assert_eq!(b.spec().video_format, PixelFormat::I420);
    let mut inst = b.instantiate("c1").await.unwrap();
    let (w, h) = (64u32, 48u32);
    // Top half luma 50, bottom half 150: mean 100. Chroma is irrelevant.
    let mut data = vec![50u8; (w * h / 2) as usize];
    data.extend(vec![150u8; (w * h / 2) as usize]);
    data.extend(vec![128u8; (w * h / 2) as usize]);
    let mut frame = VideoFrame {
        width: w,
        height: h,
        format: PixelFormat::I420,
        data,
        timestamp_us: 0,
    };

    let mut emitted = Vec::new();
    for i in 0..30u64 {
        frame.timestamp_us = i * 33_333; // one second at 30 fps
        assert_eq!(
            inst.on_video(&frame).await.unwrap(),
            None,
            "send mode returns no video"
        );
        for ev in inst.take_events() {
            if let HostEvent::Outputs(values) = ev {
                emitted.push(values);
            }
        }
    }
    assert!(
        (2..=5).contains(&emitted.len()),
        "{} outputs in one second",
        emitted.len()
    );
    for values in emitted {
        assert_eq!(values, vec![Value::Number(100.0)]);
    }
}

#[tokio::test]
async fn av_echo_returns_audio_and_video() {
    let mut inst = instance("av", guests::AV_ECHO).await;
    let frame = rows_frame(32, 16);
    assert_eq!(inst.on_video(&frame).await.unwrap(), Some(frame));
    inst.on_audio(&audio(vec![7; 960])).await.unwrap();
    assert_eq!(
        inst.next_audio().await.unwrap().map(|f| f.samples),
        Some(vec![7; 960])
    );
}

#[tokio::test]
async fn instances_do_not_share_state() {
    let rt = test_runtime();
    let gain = rt.load_file("gain", guests::GAIN).await.unwrap();
    let mut a = gain.instantiate("a").await.unwrap();
    let mut b = gain.instantiate("b").await.unwrap();
    a.set_inputs(&[Value::Number(0.0)]).await.unwrap();
    a.on_audio(&audio(vec![1000; 960])).await.unwrap();
    b.on_audio(&audio(vec![1000; 960])).await.unwrap();
    assert!(
        a.next_audio()
            .await
            .unwrap()
            .unwrap()
            .samples
            .iter()
            .all(|&s| s == 0)
    );
    assert!(
        b.next_audio()
            .await
            .unwrap()
            .unwrap()
            .samples
            .iter()
            .all(|&s| s == 1000)
    );
}

//! `wasmrtc run`: the real binary runs the example handlers over generated media files
//! and its JSON lines, output files and exit codes say what the handlers did.

use std::path::{Path, PathBuf};
use std::process::Command;

use wasmrtc_tests::wav::{read_wav, write_wav};
use wasmrtc_tests::{guests, scratch_dir, signal, speech, wasmrtc_bin};

/// What one `wasmrtc run` did.
struct Ran {
    code: i32,
    lines: Vec<serde_json::Value>,
    stderr: String,
}

impl Ran {
    /// The lines that have `key`, with their `t`.
    fn with(&self, key: &str) -> Vec<(f64, &serde_json::Value)> {
        self.lines
            .iter()
            .filter_map(|l| Some((l["t"].as_f64()?, l.get(key)?)))
            .collect()
    }

    fn events(&self) -> Vec<(f64, &str)> {
        self.with("event")
            .into_iter()
            .filter_map(|(t, e)| Some((t, e.as_str()?)))
            .collect()
    }
}

/// `wasmrtc run HANDLER ARGS…`.
fn run(handler: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Ran {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/run-cache");
    let out = Command::new(wasmrtc_bin())
        .arg("run")
        .arg(handler)
        .args(args.iter().map(|a| a.as_ref()))
        .env("XDG_CACHE_HOME", cache)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run wasmrtc run");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 stdout");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    Ran {
        code: out.status.code().unwrap_or(-1),
        lines,
        stderr,
    }
}

const W: usize = 64;
const H: usize = 48;

/// A y4m file of `frames` 64x48 frames, bright (Y=235) on top and dark (Y=16) below.
fn write_y4m(path: &Path, frames: usize) {
    let mut bytes = b"YUV4MPEG2 W64 H48 F15:1 Ip A1:1 C420jpeg\n".to_vec();
    for _ in 0..frames {
        bytes.extend_from_slice(b"FRAME\n");
        for row in 0..H {
            bytes.extend(std::iter::repeat_n(if row < H / 2 { 235 } else { 16 }, W));
        }
        bytes.extend(std::iter::repeat_n(128, 2 * (W / 2) * (H / 2)));
    }
    std::fs::write(path, bytes).expect("write the y4m");
}

/// The header line and the luma planes of a 4:2:0 y4m file.
fn read_y4m(path: &Path) -> (String, Vec<Vec<u8>>) {
    let bytes = std::fs::read(path).expect("read the y4m");
    let end = bytes.iter().position(|&b| b == b'\n').expect("a header");
    let header = String::from_utf8(bytes[..end].to_vec()).unwrap();
    let tag = |k: char| -> usize {
        header
            .split(' ')
            .find_map(|t| t.strip_prefix(k)?.parse().ok())
            .expect("W and H")
    };
    let (w, h) = (tag('W'), tag('H'));
    let frame = w * h + 2 * w.div_ceil(2) * h.div_ceil(2);
    let mut at = end + 1;
    let mut lumas = Vec::new();
    while at < bytes.len() {
        assert_eq!(&bytes[at..at + 6], b"FRAME\n", "frame {}", lumas.len());
        at += 6;
        lumas.push(bytes[at..at + w * h].to_vec());
        at += frame;
    }
    (header, lumas)
}

fn mean(bytes: &[u8]) -> f64 {
    bytes.iter().map(|&b| f64::from(b)).sum::<f64>() / bytes.len() as f64
}

fn dir(tag: &str) -> PathBuf {
    scratch_dir("run", tag)
}

#[test]
fn gain_halves_the_level_of_a_sine() {
    let dir = dir("gain");
    let (input, output) = (dir.join("sine.wav"), dir.join("out.wav"));
    let rate = 48_000;
    let sine = signal::sine(440.0, 10_000.0, rate, 0, 2 * rate as usize);
    write_wav(&input, rate, 1, &sine);
    let ran = run(
        guests::GAIN,
        &[
            &"--input",
            &input,
            &"--output",
            &output,
            &"--set",
            &"gain=0.5",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (out_rate, channels, out) = read_wav(&output);
    assert_eq!((out_rate, channels), (48_000, 1));
    // The first frame plays on the second 20 ms tick: 960 samples of latency.
    assert!(
        out.len() >= sine.len() && out.len() <= sine.len() + 2 * 960,
        "{} samples out for {} in",
        out.len(),
        sine.len()
    );
    let steady = |s: &[i16]| signal::rms(&s[rate as usize / 5..rate as usize * 9 / 5]);
    let ratio = steady(&out) / steady(&sine);
    assert!((ratio - 0.5).abs() < 0.02, "level ratio {ratio}");
    let (freq, _) = signal::measure(&out[4800..sine.len()], 0, rate);
    assert!((freq - 440.0).abs() < 2.0, "{freq} Hz");
    assert!(
        ran.stderr.contains("out: 100 audio frames"),
        "{}",
        ran.stderr
    );
}

#[test]
fn flip_turns_every_frame_upside_down() {
    let dir = dir("flip");
    let (input, output) = (dir.join("top.y4m"), dir.join("out.y4m"));
    write_y4m(&input, 12);
    let ran = run(guests::FLIP, &[&"--input", &input, &"--output", &output]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (header, frames) = read_y4m(&output);
    assert!(header.starts_with("YUV4MPEG2 W64 H48 F15:1"), "{header}");
    assert_eq!(frames.len(), 12);
    for (n, y) in frames.iter().enumerate() {
        let (top, bottom) = y.split_at(W * H / 2);
        assert!(
            mean(top) < 30.0 && mean(bottom) > 220.0,
            "frame {n}: top {} bottom {}",
            mean(top),
            mean(bottom)
        );
    }
}

#[test]
fn meter_and_brightness_print_their_outputs() {
    let dir = dir("outputs");
    // Stereo at 44.1 kHz: mixed down and resampled to the meter's 16 kHz.
    let wav = dir.join("tone.wav");
    let mono = signal::sine(300.0, 8_000.0, 44_100, 0, 44_100 * 3 / 2);
    let stereo: Vec<i16> = mono.iter().flat_map(|&s| [s, s]).collect();
    write_wav(&wav, 44_100, 2, &stereo);
    let ran = run(guests::METER, &[&"--input", &wav]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let outputs = ran.with("outputs");
    // 1.5 s in windows of 250 ms.
    assert!((5..=6).contains(&outputs.len()), "{:?}", ran.lines);
    let expected_db = 20.0 * (8_000.0 / 2f64.sqrt() / 32_767.0f64).log10();
    for (t, o) in &outputs[1..] {
        let level = o["level"].as_f64().expect("a level");
        let pitch = o["pitch"].as_f64().expect("a pitch");
        assert!((level - expected_db).abs() < 0.5, "at {t}: {level} dBFS");
        assert!((pitch - 300.0).abs() < 10.0, "at {t}: {pitch} Hz");
    }
    assert!(outputs.windows(2).all(|w| w[0].0 < w[1].0), "t goes up");

    let y4m = dir.join("half.y4m");
    write_y4m(&y4m, 10);
    let ran = run(guests::BRIGHTNESS, &[&"--input", &y4m]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let outputs = ran.with("outputs");
    // 10 frames at 15 fps, at most one value every 250 ms: at 0, 0.267 and 0.533 s.
    assert_eq!(outputs.len(), 3, "{:?}", ran.lines);
    for (_, o) in outputs {
        let b = o["brightness"].as_f64().unwrap();
        assert!((b - 125.5).abs() < 1.0, "{b}");
    }
}

#[test]
fn receive_handlers_run_for_the_duration_or_frames_asked() {
    let dir = dir("receive");
    let wav = dir.join("tone.wav");
    let ran = run(
        guests::TONE,
        &[
            &"--duration",
            &"2",
            &"--set",
            &"frequency=880",
            &"--output",
            &wav,
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (rate, _, samples) = read_wav(&wav);
    let seconds = samples.len() as f64 / f64::from(rate);
    assert!((seconds - 2.0).abs() <= 0.021, "{seconds} s");
    let (freq, _) = signal::measure(&samples, 960, rate);
    assert!((freq - 880.0).abs() < 2.0, "{freq} Hz");

    // The tone's own duration: a warning, then close-stream, and the run ends there.
    let ran = run(
        guests::TONE,
        &[&"--duration", &"5", &"--set", &"duration=1.5"],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let notify = ran.with("notify");
    assert_eq!(notify.len(), 1, "{:?}", ran.lines);
    assert_eq!(notify[0].1["level"], "warning");
    let close = ran.with("close");
    assert_eq!(close.len(), 1, "{:?}", ran.lines);
    assert!((close[0].0 - 1.5).abs() < 0.05, "closed at {}", close[0].0);
    assert!(ran.stderr.contains("closed the stream"), "{}", ran.stderr);

    let y4m = dir.join("bars.y4m");
    let ran = run(guests::BARS, &[&"--frames", &"9", &"--output", &y4m]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (header, frames) = read_y4m(&y4m);
    assert!(header.starts_with("YUV4MPEG2 W320 H240 F15:1"), "{header}");
    assert_eq!(frames.len(), 9);
}

#[test]
fn parrot_takes_turns_and_replies() {
    let rate = 16_000;
    let first = speech::sentence("Hello there, how are you doing today?", rate).expect("espeak-ng");
    let second = speech::sentence("I would like a cup of tea, please.", rate).expect("espeak-ng");
    let silence = |s: f64| vec![0i16; (s * f64::from(rate)) as usize];
    let mut talk = silence(0.5);
    talk.extend(&first);
    // Long enough for the first reply to play out before the caller talks again.
    talk.extend(silence(speech::seconds(&first, rate) + 2.0));
    talk.extend(&second);
    let dir = dir("parrot");
    let (input, output) = (dir.join("talk.wav"), dir.join("reply.wav"));
    write_wav(&input, rate, 1, &talk);
    let ran = run(guests::PARROT, &[&"--input", &input, &"--output", &output]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let events: Vec<&str> = ran.events().into_iter().map(|(_, e)| e).collect();
    let turn = [
        "started_talking",
        "pause_detected",
        "response_starting",
        "playback_finished",
    ];
    assert_eq!(events, [turn, turn].concat(), "{:?}", ran.lines);
    // The `heard` output: each utterance's length, about what was said.
    let heard: Vec<f64> = ran
        .with("outputs")
        .iter()
        .filter_map(|(_, o)| o["heard"].as_f64())
        .collect();
    assert_eq!(heard.len(), 2, "{:?}", ran.lines);
    for (h, said) in heard.iter().zip([&first, &second]) {
        let s = speech::seconds(said, rate);
        assert!(*h > s - 0.1 && *h < s + 1.0, "heard {h} s of {s} s");
    }
    // The replies are in the output where the core played them: after each pause.
    let (out_rate, _, reply) = read_wav(&output);
    assert_eq!(out_rate, 24_000);
    let pauses: Vec<f64> = ran
        .events()
        .into_iter()
        .filter(|(_, e)| *e == "pause_detected")
        .map(|(t, _)| t)
        .collect();
    let window = |from: f64, secs: f64| {
        let a = (from * f64::from(out_rate)) as usize;
        let b = ((from + secs) * f64::from(out_rate)) as usize;
        signal::rms(&reply[a.min(reply.len())..b.min(reply.len())])
    };
    for t in pauses {
        assert!(window(t, 1.0) > 300.0, "a reply after {t} s");
        assert!(
            window(t - 0.4, 0.3) < 50.0,
            "silence before the reply at {t} s"
        );
    }
}

#[test]
fn bad_flags_and_files_exit_2_and_a_trap_exits_1() {
    let dir = dir("errors");
    let wav = dir.join("sine.wav");
    write_wav(
        &wav,
        48_000,
        1,
        &signal::sine(440.0, 5_000.0, 48_000, 0, 9_600),
    );

    let ran = run(guests::GAIN, &[&"--input", &wav, &"--set", &"volume=1"]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("no input `volume`") && ran.stderr.contains("`gain`"),
        "{}",
        ran.stderr
    );
    assert!(ran.lines.is_empty());

    let ran = run(guests::GAIN, &[&"--input", &wav, &"--set", &"gain=3"]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("gain=3: 3 is above the maximum 2")
            && ran.stderr.contains("from 0 to 2"),
        "{}",
        ran.stderr
    );

    let bytes = std::fs::read(&wav).unwrap();
    let truncated = dir.join("truncated.wav");
    std::fs::write(&truncated, &bytes[..10_000]).unwrap();
    let ran = run(guests::GAIN, &[&"--input", &truncated]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(
            "truncated: the data chunk declares 9600 samples but the file ends at byte offset 10000"
        ),
        "{}",
        ran.stderr
    );

    let huge = dir.join("huge.y4m");
    std::fs::write(&huge, b"YUV4MPEG2 W100000 H100000 F30:1\nFRAME\n").unwrap();
    let ran = run(guests::FLIP, &[&"--input", &huge]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("100000x100000 pictures: at most 3840x2160"),
        "{}",
        ran.stderr
    );

    let ran = run(guests::FLIP, &[&"--input", &wav]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("takes no audio"), "{}", ran.stderr);

    let ran = run(guests::HOSTILE_TRAP, &[&"--input", &wav]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("error: handler failed (trap): handler trapped in `on-audio`"),
        "{}",
        ran.stderr
    );
}

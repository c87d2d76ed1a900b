//! `wasmrtc run`: a handler run offline over media files, frame by frame, under the
//! same sandbox and limits as `wasmrtc serve`, its events printed as JSON lines, so
//! handlers can be tested in CI without a browser.
//!
//! ```text
//! wasmrtc run <HANDLER.wasm> [--input FILE]... [--output FILE]... [--set NAME=VALUE]...
//!             [--duration SECS] [--frames N]
//! ```
//!
//! The connection's real session core is driven with virtual time ([`driver`]): the
//! files' frames ([`sources`]) reach it at their media times, so pacing, turn-taking,
//! playback and close behave as on a live connection, as fast as the CPU allows.
//! Exit codes: 0 done, 1 the handler failed (trap, budget…), 2 a usage or input error.

mod driver;
mod inputs;
mod lines;
mod sources;
mod wav;
mod y4m;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub use driver::{MAX_DRAIN, QUIET, Summary};
pub use inputs::{MAX_SET_BYTES, MAX_SETS};

use crate::runtime::{Modality, Mode, Runtime, RuntimeConfig, StreamSpec, spec};
use driver::{DriveError, Plan};
use sources::{AudioSource, VideoSource};
use wav::{WavIn, WavOut};
use y4m::{Y4mIn, Y4mOut};

/// How long a receive-mode handler runs without `--duration` or `--frames`.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);
/// Longest `--duration`: an hour.
pub const MAX_DURATION: f64 = 3600.0;
/// Most `--frames`: an hour at 60 fps.
pub const MAX_FRAMES: u64 = 216_000;
/// Silence after the input for a turn-taking handler, beyond its `pause-ms`: the caller
/// stops talking when the file ends, so its last turn is heard to the end.
const TURN_TAIL: Duration = Duration::from_millis(300);

/// The command line of `wasmrtc run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The handler component (.wasm, built for wasm32-wasip2).
    pub handler: PathBuf,
    /// The client's media: a WAV file (16-bit PCM, mono or stereo, 8000..=48000 Hz)
    /// for audio, a y4m file (4:2:0) for video; one of each for an audio-video handler.
    #[arg(long, value_name = "FILE")]
    pub input: Vec<PathBuf>,
    /// Where the handler's media goes: a .wav file for audio (mono, at the spec's
    /// output rate), a .y4m file for video (4:2:0); without it, media is only counted.
    #[arg(long, value_name = "FILE")]
    pub output: Vec<PathBuf>,
    /// An input value, checked against the handler's spec as `input_hook` checks it
    /// (a number for a slider or number box, true/false for a checkbox, text
    /// otherwise); repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Seconds to run a receive-mode handler (default 5), or to read of the input.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Video frames to run a receive-mode handler for (at its fps), or to read of the
    /// input y4m.
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
}

/// Why `wasmrtc run` could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The command line does not fit the handler (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The component was refused (exit code 2).
    #[error("{path}: rejected: {source}")]
    Rejected {
        /// The component.
        path: PathBuf,
        /// Why.
        source: crate::runtime::LoadError,
    },
    /// A `--set` value (exit code 2).
    #[error(transparent)]
    Set(#[from] inputs::SetError),
    /// An input or output file (exit code 2).
    #[error(transparent)]
    Source(#[from] sources::SourceError),
    /// The run (exit code 1 for a handler failure or an output that cannot be
    /// written, 2 for a bad input file found on the way).
    #[error(transparent)]
    Drive(#[from] DriveError),
    /// The runtime could not start (exit code 1).
    #[error("{0:#}")]
    Runtime(anyhow::Error),
}

impl RunError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Drive(DriveError::Source(_)) => 2,
            RunError::Drive(_) | RunError::Runtime(_) => 1,
            RunError::Usage(_)
            | RunError::Rejected { .. }
            | RunError::Set(_)
            | RunError::Source(_) => 2,
        }
    }
}

impl From<wav::WavError> for RunError {
    fn from(e: wav::WavError) -> Self {
        RunError::Source(e.into())
    }
}

impl From<y4m::Y4mError> for RunError {
    fn from(e: y4m::Y4mError) -> Self {
        RunError::Source(e.into())
    }
}

/// Runs `wasmrtc run`: prints the JSON lines on stdout, the summary (or the error) on
/// stderr, and returns the exit code.
pub async fn main(args: Args) -> anyhow::Result<ExitCode> {
    match run(args).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}

/// What a stream takes and gives, in words and flags.
struct Shape {
    name: String,
    takes_audio: bool,
    takes_video: bool,
    gives_audio: bool,
    gives_video: bool,
}

impl Shape {
    fn of(name: String, spec: &StreamSpec) -> Self {
        let has_audio = spec.modality != Modality::Video;
        let has_video = spec.modality != Modality::Audio;
        Self {
            name: format!(
                "{name} (a {} {} handler)",
                spec::modality_name(spec.modality),
                spec::mode_name(spec.mode)
            ),
            takes_audio: has_audio && spec.mode != Mode::Receive,
            takes_video: has_video && spec.mode != Mode::Receive,
            gives_audio: has_audio && spec.mode != Mode::Send,
            gives_video: has_video && spec.mode != Mode::Send,
        }
    }
}

/// What a file is, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Wav,
    Y4m,
}

fn input_kind(path: &Path) -> Result<Kind, RunError> {
    use std::io::Read as _;
    let mut head = [0u8; 10];
    let mut file = std::fs::File::open(path)
        .map_err(|e| RunError::Usage(format!("--input {}: {e}", path.display())))?;
    let n = file
        .read(&mut head)
        .map_err(|e| RunError::Usage(format!("--input {}: {e}", path.display())))?;
    match &head[..n] {
        [b'R', b'I', b'F', b'F', ..] => Ok(Kind::Wav),
        h if h.starts_with(b"YUV4MPEG2") => Ok(Kind::Y4m),
        _ => Err(RunError::Usage(format!(
            "--input {}: neither a WAV file (RIFF) nor a y4m file (YUV4MPEG2)",
            path.display()
        ))),
    }
}

fn output_kind(path: &Path) -> Result<Kind, RunError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("wav") => Ok(Kind::Wav),
        Some("y4m") => Ok(Kind::Y4m),
        _ => Err(RunError::Usage(format!(
            "--output {}: name it .wav (audio) or .y4m (video)",
            path.display()
        ))),
    }
}

/// One of each kind at most.
fn by_kind(
    flag: &str,
    files: &[PathBuf],
    kind: impl Fn(&Path) -> Result<Kind, RunError>,
) -> Result<(Option<PathBuf>, Option<PathBuf>), RunError> {
    let (mut wav, mut y4m) = (None, None);
    for f in files {
        let slot = match kind(f)? {
            Kind::Wav => &mut wav,
            Kind::Y4m => &mut y4m,
        };
        if slot.replace(f.clone()).is_some() {
            return Err(RunError::Usage(format!(
                "{flag}: at most one WAV and one y4m file"
            )));
        }
    }
    Ok((wav, y4m))
}

async fn run(args: Args) -> Result<(), RunError> {
    if let Some(d) = args.duration
        && !(d.is_finite() && d > 0.0 && d <= MAX_DURATION)
    {
        return Err(RunError::Usage(format!(
            "--duration {d}: give seconds within 0 < SECS <= {MAX_DURATION}"
        )));
    }
    if let Some(n) = args.frames
        && !(1..=MAX_FRAMES).contains(&n)
    {
        return Err(RunError::Usage(format!(
            "--frames {n}: give 1..={MAX_FRAMES}"
        )));
    }
    if args.duration.is_some() && args.frames.is_some() {
        return Err(RunError::Usage(
            "give --duration or --frames, not both".into(),
        ));
    }
    if args.set.len() > MAX_SETS {
        return Err(inputs::SetError::TooMany.into());
    }
    let (wav_in, y4m_in) = by_kind("--input", &args.input, input_kind)?;
    let (wav_out, y4m_out) = by_kind("--output", &args.output, output_kind)?;

    // The same runtime, limits and sandbox as `wasmrtc serve`.
    let runtime = Runtime::new(RuntimeConfig::default()).map_err(RunError::Runtime)?;
    let name = args
        .handler
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rejected = |source| RunError::Rejected {
        path: args.handler.clone(),
        source,
    };
    // No outbound grant: a component importing `wasi:http` is refused, as a stream
    // without `[stream.outbound]` refuses it.
    let component = runtime
        .load_file(&name, &args.handler)
        .await
        .and_then(|c| c.with_outbound(None))
        .map_err(rejected)?;
    let spec = component.spec().clone();
    let shape = Shape::of(name, &spec);
    let values = inputs::values(&spec, &args.set)?;

    // What goes in.
    let receive = spec.mode == Mode::Receive;
    if receive && (wav_in.is_some() || y4m_in.is_some()) {
        return Err(RunError::Usage(format!(
            "{} takes no input: run it with --duration SECS or --frames N",
            shape.name
        )));
    }
    if wav_in.is_some() && !shape.takes_audio {
        return Err(RunError::Usage(format!(
            "{} takes no audio: give it a y4m file",
            shape.name
        )));
    }
    if y4m_in.is_some() && !shape.takes_video {
        return Err(RunError::Usage(format!(
            "{} takes no video: give it a WAV file",
            shape.name
        )));
    }
    if !receive && wav_in.is_none() && y4m_in.is_none() {
        let wanted = match (shape.takes_audio, shape.takes_video) {
            (true, true) => "--input FILE.wav and/or --input FILE.y4m",
            (true, false) => "--input FILE.wav",
            _ => "--input FILE.y4m",
        };
        return Err(RunError::Usage(format!(
            "{} needs the client's media: {wanted}",
            shape.name
        )));
    }
    if args.frames.is_some() && spec.modality == Modality::Audio {
        return Err(RunError::Usage(format!(
            "{} has no video: --frames counts video frames; use --duration SECS",
            shape.name
        )));
    }
    // What comes out.
    if wav_out.is_some() && !shape.gives_audio {
        return Err(RunError::Usage(format!(
            "{} returns no audio: drop --output FILE.wav",
            shape.name
        )));
    }
    if y4m_out.is_some() && !shape.gives_video {
        return Err(RunError::Usage(format!(
            "{} returns no video: drop --output FILE.y4m",
            shape.name
        )));
    }

    let tail = component.turn_taking().map_or(Duration::ZERO, |t| {
        Duration::from_millis(t.pause_ms.into()) + TURN_TAIL
    });
    let audio = match wav_in {
        Some(path) => {
            let mut wav = WavIn::open(&path)?;
            if let Some(d) = args.duration {
                wav.limit_frames((d * f64::from(wav.rate())).round() as u64);
            }
            Some(AudioSource::new(wav, spec.input_sample_rate, tail)?)
        }
        None => None,
    };
    let video = match y4m_in {
        Some(path) => {
            let mut y4m = Y4mIn::open(&path)?;
            let rate = y4m.header().rate.unwrap_or((spec.fps, 1));
            if let Some(d) = args.duration {
                y4m.limit_frames((d * f64::from(rate.0) / f64::from(rate.1)).ceil() as u64);
            }
            if let Some(n) = args.frames {
                y4m.limit_frames(n);
            }
            Some(VideoSource::new(y4m, rate, spec.video_format)?)
        }
        None => None,
    };
    let end = receive.then(|| match (args.duration, args.frames) {
        (Some(d), _) => Duration::from_secs_f64(d),
        // N periods of the core's own `next-video` clock.
        (_, Some(n)) => Duration::from_secs(1) / spec.fps.max(1) * n as u32,
        _ => DEFAULT_DURATION,
    });
    let wav = wav_out
        .map(|p| WavOut::create(&p, spec.output_sample_rate))
        .transpose()?;
    let out_rate = video.as_ref().map_or((spec.fps, 1), VideoSource::rate);
    let y4m = y4m_out.map(|p| Y4mOut::create(&p, out_rate)).transpose()?;
    let instance = component
        .instantiate("run")
        .await
        .map_err(|e| RunError::Drive(DriveError::Handler(e)))?;

    let plan = Plan {
        audio,
        video,
        end,
        wav,
        y4m,
    };
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let (summary, result) = driver::drive(&component, instance, values, plan, stdout).await;
    let stats = component.stats().snapshot();
    eprintln!(
        "wasmrtc run: {:.3} s of media; in: {} audio frames ({:.3} s), {} video frames; out: {} audio frames ({:.3} s), {} video frames{}; {} JSON lines; handler: {} calls, {:.3} s in calls, memory peak {} KiB{}",
        summary.media_seconds,
        summary.audio_frames_in,
        summary.audio_seconds_in,
        summary.video_frames_in,
        summary.audio_frames_out,
        summary.audio_seconds_out,
        summary.video_frames_out,
        if summary.video_dropped > 0 {
            format!(" ({} dropped)", summary.video_dropped)
        } else {
            String::new()
        },
        summary.lines,
        stats.calls,
        stats.call_seconds,
        stats.memory_peak / 1024,
        if summary.closed {
            "; the handler closed the stream"
        } else {
            ""
        },
    );
    result.map_err(RunError::from)
}

//! The run itself: the connection's real session core, driven with virtual time.
//!
//! A live connection's adapter feeds the [`Core`] what happened with the wall-clock
//! time it happened at and forwards its calls to the handler task; here the core gets
//! the files' frames at their media times and its timers when they fall due, with
//! `now` a fixed origin plus the media time, so pacing, the playback queue,
//! turn-taking, play-out on close and the messages' order are the live ones, and the
//! run goes as fast as the handler does. Each [`Action::Call`] is made at once, in
//! order, through the handler task's own code ([`make_call`]) with its effects
//! applied by the same code ([`apply_effects`]), and its reply handed back at the same
//! virtual instant, as if the handler took no time. Nothing else differs: the
//! instance is made, sandboxed and limited (CPU budget, memory, wall clock, output
//! bounds) exactly as for `wasmrtc serve`.

use std::io::Write;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::lines::{Lines, Meaning};
use super::sources::{AudioSource, SourceError, VideoSource};
use super::wav::{WavError, WavOut};
use super::y4m::{Y4mError, Y4mOut};
use crate::media::{MediaError, PixelFormat as MediaFormat};
use crate::runtime::{CallError, HandlerComponent, HandlerInstance, Modality, Mode, Value};
use crate::session::stats::{self, Stage};
use crate::session::{
    Action, Answer, Call, CallKind, Core, CoreConfig, NextAudio, Outputs, Reply, apply_effects,
    frame_picture, make_call,
};

/// After the input ends, the run goes on until nothing has happened (no audio, video
/// or message, no pending reply) for this long.
pub const QUIET: Duration = Duration::from_secs(1);
/// Longest the run goes on after the input ends (a handler that never stops talking).
pub const MAX_DRAIN: Duration = Duration::from_secs(120);
/// Timers that fall due without time moving on before the run gives up (a guard: the
/// core always moves its timers on).
const MAX_STALLS: u32 = 10_000;

/// Why a run stopped short.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The input files.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A call failed: the instance is dead (the core has closed the connection).
    #[error("handler failed ({cause}): {0}", cause = .0.cause().as_str())]
    Handler(CallError),
    /// The output WAV.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// The output y4m.
    #[error(transparent)]
    Y4m(#[from] Y4mError),
    /// The session core's media set-up.
    #[error("{0}")]
    Media(#[from] MediaError),
    /// Standard output.
    #[error("cannot write the JSON lines: {0}")]
    Stdout(#[from] std::io::Error),
}

/// What the run is given.
#[derive(Debug)]
pub struct Plan {
    /// The client's audio.
    pub audio: Option<AudioSource>,
    /// The client's video.
    pub video: Option<VideoSource>,
    /// Stop at this media time (receive-mode handlers; the input otherwise).
    pub end: Option<Duration>,
    /// The handler's audio.
    pub wav: Option<WavOut>,
    /// The handler's video.
    pub y4m: Option<Y4mOut>,
}

/// The counts of a run, for its summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Audio frames handed to the core.
    pub audio_frames_in: u64,
    /// Seconds of the input WAV read.
    pub audio_seconds_in: f64,
    /// Video frames handed to the core.
    pub video_frames_in: u64,
    /// 20 ms audio frames the core played.
    pub audio_frames_out: u64,
    /// Seconds of audio the core played.
    pub audio_seconds_out: f64,
    /// Video frames the core sent.
    pub video_frames_out: u64,
    /// Handler frames the host could not convert (dropped, as a live session does).
    pub video_dropped: u64,
    /// JSON lines printed.
    pub lines: u64,
    /// Handler calls made.
    pub calls: u64,
    /// Media time at the end.
    pub media_seconds: f64,
    /// The handler closed the stream.
    pub closed: bool,
}

/// The core, the instance and what is collected from them.
struct Driver<W: Write> {
    core: Core,
    instance: HandlerInstance,
    component: HandlerComponent,
    outputs: broadcast::Sender<Outputs>,
    published: broadcast::Receiver<Outputs>,
    t0: Instant,
    /// Media time now.
    now: Duration,
    /// The last time something happened.
    active: Duration,
    lines: Lines<W>,
    wav: Option<WavOut>,
    y4m: Option<Y4mOut>,
    summary: Summary,
    audio_rate: u32,
    failure: Option<CallError>,
    closing: bool,
    ended: bool,
}

/// Run `instance` of `component` over `plan`, with the full list of input `values`,
/// printing JSON lines to `out`.
pub async fn drive<W: Write>(
    component: &HandlerComponent,
    instance: HandlerInstance,
    values: Vec<Value>,
    mut plan: Plan,
    out: W,
) -> (Summary, Result<(), DriveError>) {
    let spec = component.spec().clone();
    let t0 = Instant::now();
    let config = CoreConfig {
        spec: spec.clone(),
        turn_taking: component.turn_taking().copied(),
        playback_rate: spec.output_sample_rate,
        time_limit: None,
        connect_timeout: Duration::from_secs(30),
        replies: component.has_replies(),
    };
    let core = match Core::new("run", config, t0) {
        Ok(c) => c,
        Err(e) => return (Summary::default(), Err(e.into())),
    };
    // Room for every event one call may raise, collected after each call.
    let (outputs, published) = broadcast::channel(component.limits().events_per_call + 1);
    let mut d = Driver {
        core,
        instance,
        component: component.clone(),
        outputs,
        published,
        t0,
        now: Duration::ZERO,
        active: Duration::ZERO,
        lines: Lines::new(&spec, out),
        wav: plan.wav.take(),
        y4m: plan.y4m.take(),
        summary: Summary::default(),
        audio_rate: spec.output_sample_rate,
        failure: None,
        closing: false,
        ended: false,
    };
    let result = d.run(&mut plan, values).await;
    let result = result.and(d.finish());
    if let Some(a) = &plan.audio {
        d.summary.audio_seconds_in = a.seconds_read();
    }
    if let Some(v) = &plan.video {
        d.summary.video_frames_in = v.frames();
    }
    d.summary.lines = d.lines.printed();
    d.summary.calls = d.core.stats().calls;
    d.summary.media_seconds = d.now.as_secs_f64();
    let result = match (result, d.failure.take()) {
        (Ok(()), Some(e)) => Err(DriveError::Handler(e)),
        (r, _) => r,
    };
    (d.summary, result)
}

impl<W: Write> Driver<W> {
    fn at(&self) -> Instant {
        self.t0 + self.now
    }

    async fn run(&mut self, plan: &mut Plan, values: Vec<Value>) -> Result<(), DriveError> {
        let spec = self.component.spec().clone();
        // The start-up calls' events (set-inputs to the defaults), as the handler task
        // sends them first.
        let effects = apply_effects(self.instance.take_events(), &spec, &self.outputs);
        self.collect_outputs();
        let start = Reply {
            kind: CallKind::Start,
            result: Ok(Answer::Done),
            effects,
        };
        self.core.handler_reply(self.at(), start);
        let gives_audio = spec.modality != Modality::Video && spec.mode != Mode::Send;
        let gives_video = spec.modality != Modality::Audio && spec.mode != Mode::Send;
        // The client's inputs, as a client sends them when asked (`send_input`), but
        // before the media starts: `--set` values hold from the first frame.
        if !spec.inputs.is_empty() {
            self.core.set_inputs(values);
        }
        self.core.connected(self.at(), gives_audio, gives_video)?;
        self.drain().await?;

        let mut input_end = Duration::ZERO;
        let mut stalls = 0;
        while !self.ended {
            let input = if self.closing {
                None
            } else {
                match (
                    plan.audio.as_ref().and_then(AudioSource::peek),
                    plan.video.as_ref().and_then(VideoSource::peek),
                ) {
                    (Some(a), Some(v)) => Some(a.min(v)),
                    (a, v) => a.or(v),
                }
            };
            let input = input.filter(|&t| plan.end.is_none_or(|end| t < end));
            let timer = self
                .core
                .poll_timeout()
                .map(|t| t.saturating_duration_since(self.t0));
            if input.is_none() {
                let past_end = |t: Duration| plan.end.is_some_and(|end| t >= end);
                let quiet = |t: Duration| {
                    plan.end.is_none()
                        && !self.closing
                        && (t >= self.active.max(input_end) + QUIET || t >= input_end + MAX_DRAIN)
                };
                match timer {
                    None => break,
                    Some(t) if past_end(t) || quiet(t) => break,
                    Some(_) => {}
                }
            }
            // Input first when both are due at once, as a frame that arrives with a
            // pacing tick is there for the tick's `next-audio`.
            let input = input.filter(|&i| timer.is_none_or(|t| i <= t));
            match (input, timer) {
                (Some(i), _) => {
                    self.now = self.now.max(i);
                    input_end = self.now;
                    self.feed(plan).await?;
                }
                (None, Some(t)) => {
                    if t <= self.now {
                        stalls += 1;
                        if stalls > MAX_STALLS {
                            break;
                        }
                    } else {
                        stalls = 0;
                    }
                    self.now = self.now.max(t);
                    self.core.handle_timeout(self.at());
                }
                (None, None) => break,
            }
            self.drain().await?;
        }
        Ok(())
    }

    /// Hand the core the input frames due now (the earlier of audio and video).
    async fn feed(&mut self, plan: &mut Plan) -> Result<(), DriveError> {
        let audio = plan.audio.as_ref().and_then(AudioSource::peek);
        let video = plan.video.as_ref().and_then(VideoSource::peek);
        if let (Some(source), Some(t)) = (plan.audio.as_mut(), audio)
            && video.is_none_or(|v| t <= v)
        {
            for frame in source.next()? {
                self.summary.audio_frames_in += 1;
                self.core.client_audio(self.at(), frame);
            }
        } else if let Some(source) = plan.video.as_mut()
            && let Some(frame) = source.next()?
        {
            self.core.client_video(frame);
        }
        Ok(())
    }

    /// Carry out what the core says until it has nothing more to say.
    async fn drain(&mut self) -> Result<(), DriveError> {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Call(call) => self.call(call).await,
                Action::Message(text) => {
                    self.active = self.now;
                    if let Meaning::Close(_) = self.lines.message(self.now, &text)? {
                        self.closing = true;
                        self.summary.closed = true;
                    }
                }
                Action::Audio { samples, position } => {
                    self.active = self.now;
                    self.summary.audio_frames_out += 1;
                    self.summary.audio_seconds_out +=
                        samples.len() as f64 / f64::from(self.audio_rate);
                    if let Some(wav) = &mut self.wav {
                        wav.write_at(position, &samples)?;
                    }
                }
                Action::Video(frame) => {
                    self.active = self.now;
                    self.summary.video_frames_out += 1;
                    if let Some(y4m) = &mut self.y4m {
                        // As the live path encodes it: converted to I420 first.
                        match frame_picture(frame).convert(MediaFormat::I420) {
                            Ok(p) => y4m.write(p.width, p.height, &p.data)?,
                            Err(e) => {
                                self.summary.video_dropped += 1;
                                tracing::warn!("a handler frame was dropped: {e}");
                            }
                        }
                    }
                }
                Action::Mark(_) | Action::ClearAudio => {}
                // A handler failure's cause and message are in `self.failure`.
                Action::Close(_) => {
                    self.ended = true;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Make one call, as the handler task does, and hand its reply back.
    async fn call(&mut self, call: Call) {
        let kind = call.kind();
        let result = stats::timed(Stage::Handler, make_call(&mut self.instance, call)).await;
        if let Ok(Answer::Audio(answers)) = &result
            && answers.iter().any(|a| matches!(a, NextAudio::Pending))
        {
            // A reply being made is not the end of the run.
            self.active = self.now;
        }
        if let Err(e) = &result {
            self.lines
                .expect_failure(crate::session::messages::error(&e.to_string()));
            self.failure = Some(e.clone());
        }
        let spec = self.component.spec();
        let effects = apply_effects(self.instance.take_events(), spec, &self.outputs);
        self.collect_outputs();
        self.core.handler_reply(
            self.at(),
            Reply {
                kind,
                result,
                effects,
            },
        );
    }

    fn collect_outputs(&mut self) {
        while let Ok(values) = self.published.try_recv() {
            self.lines.outputs(values);
        }
    }

    /// Close the output files and flush the lines.
    fn finish(&mut self) -> Result<(), DriveError> {
        let wav = self.wav.take().map(WavOut::finish).transpose();
        let y4m = self.y4m.take().map(Y4mOut::finish).transpose();
        self.lines.flush()?;
        wav?;
        y4m?;
        Ok(())
    }
}

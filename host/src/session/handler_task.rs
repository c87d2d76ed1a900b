//! The handler's own task: one per connection, beside the media path.
//!
//! The task owns the connection's [`HandlerInstance`] and makes the calls the
//! [`Core`](super::core::Core) hands out, one at a time and in order, replying with
//! each result and the effects of the events it raised (outputs are published here,
//! at once). The transport loop sends calls without waiting and takes replies in its
//! `select!`, so a slow call delays the handler's own work, never the connection's
//! ICE, DTLS, RTP or WebSocket traffic.
//!
//! The call queue is bounded by the core (at most [`MAX_IN_FLIGHT`] calls outstanding),
//! the reply queue by its capacity. The task ends when the session drops its
//! [`HandlerTask`] (after the call in progress, itself bounded by the instance's
//! wall-clock limit) or after a failed call; the instance and the admission slot are
//! released then.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::Slot;
use super::core::{Answer, Call, CallKind, MAX_IN_FLIGHT, NextAudio, Reply};
use super::effects;
use super::registry::Outputs;
use super::stats::{self, Stage};
use crate::runtime::{self, CallError, HandlerInstance, StreamSpec};

/// The session's end of its handler task.
pub(crate) struct HandlerTask {
    calls: mpsc::UnboundedSender<Call>,
    replies: mpsc::Receiver<Reply>,
}

impl HandlerTask {
    /// Start the task of `instance`; `slot` is held until the instance is dropped.
    pub(crate) fn spawn(
        instance: HandlerInstance,
        spec: StreamSpec,
        outputs: broadcast::Sender<Outputs>,
        slot: Slot,
        reload: Option<Reload>,
    ) -> Self {
        let (calls, rx) = mpsc::unbounded_channel();
        let (tx, replies) = mpsc::channel(MAX_IN_FLIGHT + 4);
        tokio::spawn(run(instance, spec, outputs, slot, rx, tx, reload));
        Self { calls, replies }
    }

    /// Hand a call over; never waits (the core bounds how many are outstanding).
    pub(crate) fn call(&self, call: Call) {
        // A closed queue means the task ended after a failure it has replied with.
        let _ = self.calls.send(call);
    }

    /// The next reply; `None` once the task has ended.
    pub(crate) async fn reply(&mut self) -> Option<Reply> {
        self.replies.recv().await
    }
}

/// Most `next-audio` calls one [`Call::NextAudio`] makes.
const MAX_AUDIO_CALLS: usize = 64;

async fn run(
    mut instance: HandlerInstance,
    spec: StreamSpec,
    outputs: broadcast::Sender<Outputs>,
    slot: Slot,
    mut calls: mpsc::UnboundedReceiver<Call>,
    replies: mpsc::Sender<Reply>,
    mut reload: Option<Reload>,
) {
    // The events of the start-up calls (set-inputs to the defaults).
    let start = Reply {
        kind: CallKind::Start,
        result: Ok(Answer::Done),
        effects: effects::apply(instance.take_events(), &spec, &outputs),
    };
    if replies.send(start).await.is_err() {
        return;
    }
    while let Some(call) = calls.recv().await {
        if let Some(reload) = reload.as_mut() {
            if let Call::SetInputs(values) = &call {
                reload.inputs = Some(values.clone());
            }
            if let Some(fresh) = reload.fresh(&spec).await {
                instance = fresh;
            }
        }
        let kind = call.kind();
        let result = stats::timed(Stage::Handler, make(&mut instance, call)).await;
        let failed = result.is_err();
        let effects = effects::apply(instance.take_events(), &spec, &outputs);
        let reply = Reply {
            kind,
            result,
            effects,
        };
        if replies.send(reply).await.is_err() || failed {
            break;
        }
    }
    drop(instance);
    drop(slot);
}

/// Moves a connection to its stream's newest handler (`wasmrtc dev`,
/// [`crate::Stream::set_live_reload`]): before each call the task checks whether the
/// stream swapped its handler and, if the new one keeps the connection's contract
/// ([`same_shape`], turn-taking, replies), continues on a fresh instance of it given the
/// connection's inputs. The old instance's state is gone, as after a restart.
pub(crate) struct Reload {
    stream: crate::Stream,
    connection: String,
    /// The swaps already looked at.
    seen: u64,
    /// The handler the connection started with: its turn-taking and replies are part
    /// of the contract a new one must keep.
    original: crate::runtime::HandlerComponent,
    /// The connection's last input values.
    inputs: Option<Vec<crate::runtime::Value>>,
}

impl Reload {
    /// Follow `stream`'s swaps for `connection`, from its handler now.
    pub(crate) fn new(stream: crate::Stream, connection: &str) -> Self {
        Self {
            seen: stream.swaps(),
            original: stream.component(),
            stream,
            connection: connection.to_string(),
            inputs: None,
        }
    }

    /// A started instance of the stream's handler, if it was swapped since the last
    /// look and keeps the contract; `None` keeps the current one (and says why).
    async fn fresh(&mut self, spec: &StreamSpec) -> Option<HandlerInstance> {
        let swaps = self.stream.swaps();
        if swaps == self.seen {
            return None;
        }
        self.seen = swaps;
        let next = self.stream.component();
        let (id, name) = (&self.connection, self.stream.name());
        if !same_shape(next.spec(), spec)
            || next.turn_taking() != self.original.turn_taking()
            || next.has_replies() != self.original.has_replies()
        {
            tracing::warn!(stream = %name, connection = %id,
                "the new handler's spec differs from this connection's: it keeps the old one (reconnect to get the new)");
            return None;
        }
        let mut instance = match next.instantiate(id).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(stream = %name, connection = %id, "the new handler failed to start, keeping the old one: {e}");
                return None;
            }
        };
        if let Some(values) = &self.inputs
            && let Err(e) = instance.set_inputs(values).await
        {
            tracing::warn!(stream = %name, connection = %id, "the new handler refused the inputs, keeping the old one: {e}");
            return None;
        }
        tracing::info!(stream = %name, connection = %id, "connection moved to the new handler");
        Some(instance)
    }
}

/// Whether a connection set up for `old` can be served by a handler describing `new`:
/// the same media (modality, mode, rates, format, fps), outputs, and inputs by name and
/// order. Labels, ranges and defaults may differ (a connection that never set an input
/// gets the new default).
fn same_shape(new: &StreamSpec, old: &StreamSpec) -> bool {
    let names = |s: &StreamSpec| s.inputs.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
    (
        new.modality,
        new.mode,
        new.input_sample_rate,
        new.output_sample_rate,
    ) == (
        old.modality,
        old.mode,
        old.input_sample_rate,
        old.output_sample_rate,
    ) && (new.video_format, new.fps) == (old.video_format, old.fps)
        && new.outputs == old.outputs
        && names(new) == names(old)
}

/// Make one call on `instance` (also `wasmrtc run`'s way into an instance).
pub(crate) async fn make(instance: &mut HandlerInstance, call: Call) -> Result<Answer, CallError> {
    Ok(match call {
        Call::SetInputs(values) => {
            instance.set_inputs(&values).await?;
            Answer::Done
        }
        Call::Audio(frame) => {
            instance.on_audio(&frame).await?;
            Answer::Done
        }
        Call::Utterance(frame) => {
            instance.on_utterance(&frame).await?;
            Answer::Done
        }
        Call::Interrupt => {
            instance.on_interrupt().await?;
            Answer::Done
        }
        Call::NextAudio(want) => Answer::Audio(audio_batch(instance, want, false).await?),
        Call::NextReply(want) => Answer::Audio(audio_batch(instance, want, true).await?),
        Call::Greet => Answer::Began(instance.on_start().await?),
        Call::Text(text) => Answer::Began(instance.on_text(&text).await?),
        Call::Video(frame) => Answer::Video(instance.on_video(&frame).await?),
        Call::NextVideo => Answer::Video(instance.next_video().await?),
    })
}

/// Ask `next-audio` (or, for a turn reply, `next-reply`) until it has returned `want`
/// of audio, said there is no more ([`NextAudio::Done`]) or none yet
/// ([`NextAudio::Pending`]), or [`MAX_AUDIO_CALLS`] calls were made.
async fn audio_batch(
    instance: &mut HandlerInstance,
    want: Duration,
    reply: bool,
) -> Result<Vec<NextAudio>, CallError> {
    let mut answers = Vec::new();
    let mut got = Duration::ZERO;
    while got < want && answers.len() < MAX_AUDIO_CALLS {
        let next = if reply {
            match instance.next_reply().await? {
                runtime::Reply::Audio(frame) => Some(frame),
                runtime::Reply::Pending => {
                    answers.push(NextAudio::Pending);
                    break;
                }
                runtime::Reply::Done => None,
            }
        } else {
            instance.next_audio().await?
        };
        let Some(frame) = next else {
            answers.push(NextAudio::Done);
            break;
        };
        let per_second = u64::from(frame.sample_rate) * u64::from(frame.channels.max(1));
        if let Some(us) = (frame.samples.len() as u64 * 1_000_000).checked_div(per_second) {
            got += Duration::from_micros(us);
        }
        let empty = frame.samples.is_empty();
        answers.push(NextAudio::Frame(frame));
        if empty {
            break;
        }
    }
    Ok(answers)
}

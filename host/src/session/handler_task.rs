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
    ) -> Self {
        let (calls, rx) = mpsc::unbounded_channel();
        let (tx, replies) = mpsc::channel(MAX_IN_FLIGHT + 4);
        tokio::spawn(run(instance, spec, outputs, slot, rx, tx));
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

async fn make(instance: &mut HandlerInstance, call: Call) -> Result<Answer, CallError> {
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

//! One handler instance: the store of one connection and the calls into it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTableError;
use wasmtime::{PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};

use super::bindings::{HandlerExports, RepliesExports, ReplyChunk, TurnsExports};
use super::limits::{CallClock, metered};
use super::output_bounds;
use super::pool_share::Share;
use super::state::StoreState;
use super::stats::Culprit;
use super::{
    AudioFrame, CallError, ComponentStats, FailureCause, HandlerComponent, HostEvent, StreamSpec,
    TurnTaking, Value, VideoFrame,
};

/// Who made a call overrun its wall-clock deadline `wall`: the host when the call
/// spent at least half of it ready to run but not polled (a loaded host), the guest
/// otherwise (it ran or waited for what it asked for).
fn held_up(clock: &CallClock, wall: Duration) -> Culprit {
    if clock.held() * 2 >= wall {
        Culprit::Host
    } else {
        Culprit::Guest
    }
}

/// One answer to [`HandlerInstance::next_reply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Audio to queue for playback.
    Audio(AudioFrame),
    /// Nothing yet: ask again on the next tick.
    Pending,
    /// The reply is over.
    Done,
}

/// The instance serving one connection. Calls are serialized by `&mut self`;
/// after any failed call the instance is dead and every later call fails with
/// [`CallError::Dead`].
pub struct HandlerInstance {
    store: Store<StoreState>,
    handler: HandlerExports,
    /// The `turns` export, when the component has it.
    turns: Option<TurnsExports>,
    /// The `replies` export (0.1.2), when the component has it.
    replies: Option<RepliesExports>,
    wall: Duration,
    dead: bool,
    stats: Arc<ComponentStats>,
    connection: String,
    /// When the call in progress started.
    call_started: Instant,
    /// The linear memory last reported to `stats`.
    memory_reported: usize,
    /// The CPU and waiting time of the call in progress.
    clock: Arc<CallClock>,
    /// The instance's place in the pool; dropped after the store (fields drop in order).
    _share: Share,
    /// Keeps the engine's epoch ticker (the CPU meter, the yields) running as long as
    /// the instance lives, even once its component has been dropped.
    _runtime: Arc<super::engine::Inner>,
}

impl Drop for HandlerInstance {
    fn drop(&mut self) {
        self.stats.memory_moved(self.memory_reported, 0);
        self.stats.ended(&self.connection);
    }
}

impl HandlerInstance {
    pub(crate) async fn new(
        component: &HandlerComponent,
        connection: &str,
    ) -> Result<Self, CallError> {
        let c = &component.inner;
        let rt = &c.runtime;
        // A full pool is the host's answer, not the guest's failure: not counted.
        let share = rt.shares.take(c.owner.as_ref())?;
        let state = StoreState::new(
            &c.limits,
            &rt.config,
            c.spec.outputs.len(),
            &c.name,
            connection,
            c.outbound.clone(),
        );
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_callback(|mut ctx| {
            Ok(if ctx.data_mut().cpu.tick() {
                UpdateDeadline::Yield(1)
            } else {
                UpdateDeadline::Interrupt
            })
        });
        store.set_epoch_deadline(1);
        store.data_mut().cpu.reset();
        let clock = store.data().cpu.clock();
        let wall = c.limits.wall_per_call;
        let started = metered(&clock, c.pre.instantiate_async(&mut store));
        let instance = match tokio::time::timeout(wall, started).await {
            Ok(Ok(i)) => i,
            Ok(Err(e)) if e.chain().any(|e| e.is::<PoolConcurrencyLimitError>()) => {
                return Err(CallError::HostFull(format!("{e:#}")));
            }
            Ok(Err(e)) => {
                c.stats.failed(FailureCause::Instantiate);
                return Err(CallError::Instantiate(format!("{e:#}")));
            }
            Err(_) => {
                c.stats
                    .failed_by(FailureCause::Instantiate, held_up(&clock, wall));
                return Err(CallError::Instantiate(format!(
                    "start-up took longer than {wall:?}"
                )));
            }
        };
        let loaded = c.handler.load(&mut store, &instance).and_then(|handler| {
            let turns = match &c.turns {
                Some(t) => Some(t.load(&mut store, &instance)?),
                None => None,
            };
            let replies = match &c.replies {
                Some(r) => Some(r.load(&mut store, &instance)?),
                None => None,
            };
            Ok((handler, turns, replies))
        });
        let (handler, turns, replies) = match loaded {
            Ok(l) => l,
            Err(e) => {
                c.stats.failed(FailureCause::Instantiate);
                return Err(CallError::Instantiate(format!("{e:#}")));
            }
        };
        c.stats.started(connection);
        let memory = store.data().memory.in_use;
        c.stats.memory_moved(0, memory);
        Ok(Self {
            store,
            handler,
            turns,
            replies,
            wall,
            dead: false,
            stats: c.stats.clone(),
            connection: connection.to_string(),
            call_started: Instant::now(),
            memory_reported: memory,
            clock,
            _share: share,
            _runtime: rt.clone(),
        })
    }

    /// Bytes of linear memory the instance uses now.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().memory.in_use
    }

    /// The events the guest raised since the last time this was called.
    pub fn take_events(&mut self) -> Vec<HostEvent> {
        self.store.data_mut().events.take()
    }

    /// Whether an earlier call failed.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Call `describe`.
    pub async fn describe(&mut self) -> Result<StreamSpec, CallError> {
        self.begin()?;
        let f = self.handler.call_describe(&mut self.store);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        self.finish("describe", r)
    }

    /// Call `set-inputs` with the full, validated list of values.
    pub async fn set_inputs(&mut self, values: &[Value]) -> Result<(), CallError> {
        self.begin()?;
        let f = self.handler.call_set_inputs(&mut self.store, values);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        self.finish("set-inputs", r)
    }

    /// Call `on-audio`.
    pub async fn on_audio(&mut self, frame: &AudioFrame) -> Result<(), CallError> {
        self.begin()?;
        let f = self.handler.call_on_audio(&mut self.store, frame);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        self.finish("on-audio", r)
    }

    /// Call `next-audio`.
    pub async fn next_audio(&mut self) -> Result<Option<AudioFrame>, CallError> {
        self.begin()?;
        let f = self.handler.call_next_audio(&mut self.store);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        let frame = self.finish("next-audio", r)?;
        self.bounded("next-audio", frame.as_ref().map(output_bounds::check_audio))?;
        Ok(frame)
    }

    /// Call `on-video`.
    pub async fn on_video(&mut self, frame: &VideoFrame) -> Result<Option<VideoFrame>, CallError> {
        self.begin()?;
        let f = self.handler.call_on_video(&mut self.store, frame);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        let out = self.finish("on-video", r)?;
        self.bounded("on-video", out.as_ref().map(output_bounds::check_video))?;
        Ok(out)
    }

    /// Call `next-video`.
    pub async fn next_video(&mut self) -> Result<Option<VideoFrame>, CallError> {
        self.begin()?;
        let f = self.handler.call_next_video(&mut self.store);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        let out = self.finish("next-video", r)?;
        self.bounded("next-video", out.as_ref().map(output_bounds::check_video))?;
        Ok(out)
    }

    /// Whether the component exports `turns`.
    pub fn has_turns(&self) -> bool {
        self.turns.is_some()
    }

    /// Call `describe-turns` (`None` when the component does not export `turns`).
    pub async fn turn_taking(&mut self) -> Result<Option<TurnTaking>, CallError> {
        let Some(turns) = self.turns.clone() else {
            return Ok(None);
        };
        self.begin()?;
        let f = turns.call_describe_turns(&mut self.store);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        self.finish("describe-turns", r)
    }

    /// Call `on-utterance` (nothing happens when the component does not export `turns`).
    pub async fn on_utterance(&mut self, utterance: &AudioFrame) -> Result<(), CallError> {
        let Some(turns) = self.turns.clone() else {
            return Ok(());
        };
        self.begin()?;
        let f = turns.call_on_utterance(&mut self.store, utterance);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        self.finish("on-utterance", r)
    }

    /// Call `on-interrupt` (nothing happens when the component does not export `turns`).
    pub async fn on_interrupt(&mut self) -> Result<(), CallError> {
        let Some(turns) = self.turns.clone() else {
            return Ok(());
        };
        self.begin()?;
        let f = turns.call_on_interrupt(&mut self.store);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        self.finish("on-interrupt", r)
    }

    /// Whether the component exports `replies` (0.1.2).
    pub fn has_replies(&self) -> bool {
        self.replies.is_some()
    }

    /// Call `next-reply`; without the `replies` export, `next-audio` answers it
    /// (`some` plays, `none` ends the reply), as 0.1.1 defined a reply.
    pub async fn next_reply(&mut self) -> Result<Reply, CallError> {
        let Some(replies) = self.replies.clone() else {
            return Ok(match self.next_audio().await? {
                Some(frame) => Reply::Audio(frame),
                None => Reply::Done,
            });
        };
        self.begin()?;
        let f = replies.call_next_reply(&mut self.store);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        Ok(match self.finish("next-reply", r)? {
            ReplyChunk::Audio(frame) => {
                self.bounded("next-reply", Some(output_bounds::check_audio(&frame)))?;
                Reply::Audio(frame)
            }
            ReplyChunk::Pending => Reply::Pending,
            ReplyChunk::Done => Reply::Done,
        })
    }

    /// Call `on-start`: whether a reply (a greeting) starts now. `false` without `replies`.
    pub async fn on_start(&mut self) -> Result<bool, CallError> {
        let Some(replies) = self.replies.clone() else {
            return Ok(false);
        };
        self.begin()?;
        let f = replies.call_on_start(&mut self.store);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        self.finish("on-start", r)
    }

    /// Call `on-text`: whether a reply to the client's text starts now. `false` without `replies`.
    pub async fn on_text(&mut self, text: &str) -> Result<bool, CallError> {
        let Some(replies) = self.replies.clone() else {
            return Ok(false);
        };
        self.begin()?;
        let f = replies.call_on_text(&mut self.store, text);
        let r = tokio::time::timeout(self.wall, metered(&self.clock, f)).await;
        self.finish("on-text", r)
    }

    /// End the instance as `host-call-abuse` when `check` (of what `call` returned,
    /// see [`output_bounds`]) refused it.
    fn bounded(
        &mut self,
        call: &'static str,
        check: Option<Result<(), String>>,
    ) -> Result<(), CallError> {
        let Some(Err(reason)) = check else {
            return Ok(());
        };
        self.dead = true;
        let e = CallError::HostCallAbuse { call, reason };
        self.stats.failed(e.cause());
        Err(e)
    }

    fn begin(&mut self) -> Result<(), CallError> {
        if self.dead {
            return Err(CallError::Dead);
        }
        self.stats.called();
        self.store.data_mut().cpu.reset();
        self.store.set_epoch_deadline(1);
        self.call_started = Instant::now();
        Ok(())
    }

    /// Classify the outcome of a call (counting a failure by its cause); any failure
    /// kills the instance.
    fn finish<R>(
        &mut self,
        call: &'static str,
        outcome: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, CallError> {
        self.stats.timed(self.call_started.elapsed());
        let r = self.classify(call, outcome);
        match &r {
            Err(e @ CallError::WallClock { .. }) => self
                .stats
                .failed_by(e.cause(), held_up(&self.clock, self.wall)),
            Err(e) => self.stats.failed(e.cause()),
            Ok(_) => {}
        }
        let memory = self.store.data().memory.in_use;
        if memory != self.memory_reported {
            self.stats.memory_moved(self.memory_reported, memory);
            self.memory_reported = memory;
        }
        r
    }

    fn classify<R>(
        &mut self,
        call: &'static str,
        outcome: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, CallError> {
        let err = match outcome {
            Ok(Ok(r)) => {
                let Some(reason) = self.store.data().outbound.abuse() else {
                    return Ok(r);
                };
                self.dead = true;
                return Err(CallError::OutboundAbuse { call, reason });
            }
            Ok(Err(e)) => e,
            Err(_) => {
                self.dead = true;
                return Err(CallError::WallClock {
                    call,
                    limit: self.wall,
                });
            }
        };
        self.dead = true;
        let state = self.store.data_mut();
        Err(if state.cpu.exceeded {
            CallError::CpuBudget {
                call,
                budget: state.cpu.budget(),
            }
        } else if state.memory.exceeded {
            CallError::Memory {
                call,
                cap: state.memory.cap(),
            }
        } else if let Some(reason) = state.events.abuse.take() {
            CallError::HostCallAbuse { call, reason }
        } else if err
            .chain()
            .any(|e| matches!(e.downcast_ref(), Some(ResourceTableError::Full)))
        {
            CallError::HostCallAbuse {
                call,
                reason: format!(
                    "held more than {} host resources (streams, pollables, sockets) at once",
                    state.table.max_capacity()
                ),
            }
        } else {
            let trap = err
                .downcast_ref::<Trap>()
                .map(|t| t.to_string())
                .unwrap_or_else(|| format!("{err}"));
            let message = match state.stderr.last_words() {
                Some(words) => format!("{trap} ({words})"),
                None => trap,
            };
            CallError::Trap { call, message }
        })
    }
}

//! The sandboxed handler runtime: loads handler components, checks them, and runs
//! one instance per connection under CPU, memory and wall-clock limits.
//!
//! It knows nothing of transports: the session layer calls an instance with frames
//! and drains the [`HostEvent`]s the guest raised during each call.

mod bindings;
pub mod breaker;
mod compile_gate;
mod component;
mod config;
mod engine;
mod error;
mod events;
mod guest_log;
mod instance;
mod limits;
pub mod outbound;
pub mod output_bounds;
mod pool_share;
pub mod spec;
mod state;
mod stats;
pub mod wasi;

pub use bindings::exports::wasmrtc::handler::turns::TurnTaking;
pub use bindings::wasmrtc::handler::types::{
    AudioFrame, Control, Dropdown, InputSpec, Modality, Mode, NotifyLevel, NumberBox, OutputKind,
    OutputSpec, PixelFormat, Slider, StreamSpec, Value, VideoFrame,
};
pub use component::HandlerComponent;
pub use config::{InstanceLimits, RuntimeConfig};
pub use engine::Runtime;
pub use error::{CallError, FailureCause, LoadError};
pub use events::HostEvent;
pub use instance::{HandlerInstance, Reply};
pub use stats::{CALL_SECONDS_BUCKETS, ComponentStats, FAILURE_CAUSES, StatsSnapshot};

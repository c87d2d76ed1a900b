//! The `host` interface: what a guest raises during a call, queued for the session layer.

use super::InstanceLimits;
use super::bindings::wasmrtc::handler::host::Host;
use super::bindings::wasmrtc::handler::types::Host as TypesHost;
use super::state::StoreState;
use super::{NotifyLevel, Value};

/// Something a guest asked the host to do during a call.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// `emit-outputs`: one value per declared output.
    Outputs(Vec<Value>),
    /// `notify`: a message for the client.
    Notify(NotifyLevel, String),
    /// `close-stream`: end the connection with this reason.
    CloseStream(String),
    /// `clear-audio`: drop queued playback.
    ClearAudio,
}

/// Bounded queue of the events raised by the current call.
pub(crate) struct EventQueue {
    events: Vec<HostEvent>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    outputs: usize,
    /// Set when the guest broke the rules; the call is trapped and this is the reason.
    pub(crate) abuse: Option<String>,
}

impl EventQueue {
    pub(crate) fn new(limits: &InstanceLimits, outputs: usize) -> Self {
        Self {
            events: Vec::new(),
            bytes: 0,
            max_events: limits.events_per_call,
            max_bytes: limits.event_bytes_per_call,
            outputs,
            abuse: None,
        }
    }

    /// Take the events raised since the last call to this.
    pub(crate) fn take(&mut self) -> Vec<HostEvent> {
        self.bytes = 0;
        std::mem::take(&mut self.events)
    }

    fn push(&mut self, event: HostEvent, bytes: usize) -> wasmtime::Result<()> {
        if self.events.len() >= self.max_events {
            return self.refuse(format!(
                "raised more than {} host events in one call",
                self.max_events
            ));
        }
        if self.bytes + bytes > self.max_bytes {
            return self.refuse(format!(
                "raised more than {} bytes of host events in one call",
                self.max_bytes
            ));
        }
        self.bytes += bytes;
        self.events.push(event);
        Ok(())
    }

    fn refuse(&mut self, reason: String) -> wasmtime::Result<()> {
        let err = wasmtime::format_err!("{reason}");
        self.abuse = Some(reason);
        Err(err)
    }
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Text(s) | Value::Json(s) => s.len() + 16,
        _ => 16,
    }
}

impl Host for StoreState {
    fn emit_outputs(&mut self, values: Vec<Value>) -> wasmtime::Result<()> {
        let q = &mut self.events;
        if values.len() != q.outputs {
            return q.refuse(format!(
                "emit-outputs got {} values but the spec declares {} outputs",
                values.len(),
                q.outputs
            ));
        }
        let bytes = values.iter().map(value_bytes).sum();
        q.push(HostEvent::Outputs(values), bytes)
    }

    fn notify(&mut self, level: NotifyLevel, message: String) -> wasmtime::Result<()> {
        let bytes = message.len() + 16;
        self.events.push(HostEvent::Notify(level, message), bytes)
    }

    fn close_stream(&mut self, reason: String) -> wasmtime::Result<()> {
        let bytes = reason.len() + 16;
        self.events.push(HostEvent::CloseStream(reason), bytes)
    }

    fn clear_audio(&mut self) -> wasmtime::Result<()> {
        self.events.push(HostEvent::ClearAudio, 16)
    }
}

impl TypesHost for StoreState {}

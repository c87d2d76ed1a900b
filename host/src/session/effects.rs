//! What a handler's host events mean for its connection, whatever the transport:
//! outputs are published, notifications become control messages, and so on.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::messages;
use super::registry::Outputs;
use crate::runtime::{HostEvent, NotifyLevel, StreamSpec, spec};

/// The effects of the events of one handler call.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Control messages for the client, in order.
    pub(crate) messages: Vec<String>,
    /// The handler closed the stream with this reason.
    pub(crate) close: Option<String>,
    /// The handler asked to drop queued playback.
    pub(crate) clear_audio: bool,
}

/// Publish outputs on `outputs` and turn the rest into [`Effects`].
pub(crate) fn apply(
    events: Vec<HostEvent>,
    spec: &StreamSpec,
    outputs: &broadcast::Sender<Outputs>,
) -> Effects {
    let mut fx = Effects::default();
    for event in events {
        match event {
            HostEvent::Outputs(values) => {
                let map: serde_json::Map<_, _> = spec
                    .outputs
                    .iter()
                    .zip(&values)
                    .map(|(o, v)| (o.name.clone(), spec::value_to_json(v)))
                    .collect();
                let _ = outputs.send(Arc::new(map));
                fx.messages.push(messages::fetch_output());
            }
            HostEvent::Notify(level, message) => fx.messages.push(match level {
                NotifyLevel::Log => messages::log(&message),
                NotifyLevel::Warning => messages::warning(&message),
                NotifyLevel::Error => messages::error(&message),
            }),
            HostEvent::CloseStream(reason) => {
                fx.messages.push(messages::end_stream(&reason));
                fx.close = Some(reason);
            }
            HostEvent::ClearAudio => fx.clear_audio = true,
        }
    }
    fx
}

//! The JSON lines `wasmrtc run` prints, one per event, from the control messages the
//! session core sends a client (FastRTC's shapes, see [`crate::session::messages`]):
//!
//! ```text
//! {"t":0.42,"outputs":{"level":-6.1,"pitch":440}}          emit-outputs (fetch_output)
//! {"t":0.42,"notify":{"level":"warning","message":"…"}}    notify (log / warning / error)
//! {"t":2.1,"event":"pause_detected"}                        turn-taking
//! {"t":5,"close":"the tone has played for its duration"}    close-stream (end_stream)
//! ```
//!
//! `t` is the media time in seconds (to the millisecond) at which the core sent it.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use crate::runtime::StreamSpec;
use crate::session::Outputs;

/// The turn-taking messages, passed on as `event`s (FastRTC sends them as logs).
const TURN_EVENTS: [&str; 4] = [
    "started_talking",
    "pause_detected",
    "response_starting",
    "playback_finished",
];

/// What a control message meant for the run.
#[derive(Debug, PartialEq, Eq)]
pub enum Meaning {
    /// Printed, or nothing to print.
    Printed,
    /// The handler closed the stream (`end_stream`), with this reason.
    Close(String),
}

/// Writes the run's JSON lines.
pub struct Lines<W: Write> {
    out: W,
    /// The spec's output names, in order.
    names: Vec<String>,
    /// Values of `emit-outputs` calls, waiting for their `fetch_output` message.
    outputs: VecDeque<Outputs>,
    /// The `error` message of a failed call (reported on stderr, not printed here).
    failure: Option<String>,
    /// Lines printed.
    printed: u64,
}

impl<W: Write> std::fmt::Debug for Lines<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines")
            .field("printed", &self.printed)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Lines<W> {
    /// Lines for a handler of `spec`, written to `out`.
    pub fn new(spec: &StreamSpec, out: W) -> Self {
        Self {
            out,
            names: spec.outputs.iter().map(|o| o.name.clone()).collect(),
            outputs: VecDeque::new(),
            failure: None,
            printed: 0,
        }
    }

    /// Values an `emit-outputs` published (their `fetch_output` message follows).
    pub fn outputs(&mut self, values: Outputs) {
        self.outputs.push_back(values);
    }

    /// The `error` message the core will send for a failed call: not printed.
    pub fn expect_failure(&mut self, message: String) {
        self.failure = Some(message);
    }

    /// Lines printed so far.
    pub fn printed(&self) -> u64 {
        self.printed
    }

    /// One control message the core sent at media time `t`.
    pub fn message(&mut self, t: Duration, text: &str) -> std::io::Result<Meaning> {
        if self.failure.as_deref() == Some(text) {
            self.failure = None;
            return Ok(Meaning::Printed);
        }
        let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
            return Ok(Meaning::Printed);
        };
        let field = |k: &str| json.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        match field("type") {
            "log" => {
                let data = field("data");
                if TURN_EVENTS.contains(&data) {
                    self.line(t, "event", &serde_json::to_string(data)?)?;
                } else if !data.starts_with("Server received: ") {
                    self.notify(t, "log", data)?;
                }
            }
            "warning" => self.notify(t, "warning", field("message"))?,
            "error" => self.notify(t, "error", field("message"))?,
            "fetch_output" => {
                if let Some(values) = self.outputs.pop_front() {
                    let body = self.outputs_body(&values)?;
                    self.line(t, "outputs", &body)?;
                }
            }
            "end_stream" => {
                let reason = field("data").to_string();
                self.line(t, "close", &serde_json::to_string(&reason)?)?;
                return Ok(Meaning::Close(reason));
            }
            // `send_input`, `update_connection`: a client's business.
            _ => {}
        }
        Ok(Meaning::Printed)
    }

    /// Flush what is buffered.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn notify(&mut self, t: Duration, level: &str, message: &str) -> std::io::Result<()> {
        let body = serde_json::json!({ "level": level, "message": message });
        self.line(t, "notify", &serde_json::to_string(&body)?)
    }

    /// The values, keyed by output name in the spec's order.
    fn outputs_body(&self, values: &Outputs) -> std::io::Result<String> {
        let mut body = String::from("{");
        for name in self.names.iter().filter(|n| values.contains_key(*n)) {
            if body.len() > 1 {
                body.push(',');
            }
            body += &serde_json::to_string(name)?;
            body.push(':');
            body += &serde_json::to_string(&values[name])?;
        }
        body.push('}');
        Ok(body)
    }

    fn line(&mut self, t: Duration, key: &str, body: &str) -> std::io::Result<()> {
        let secs = (t.as_secs_f64() * 1000.0).round() / 1000.0;
        writeln!(
            self.out,
            "{{\"t\":{},\"{key}\":{body}}}",
            serde_json::to_string(&secs)?
        )?;
        self.printed += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Modality, Mode, OutputKind, OutputSpec, PixelFormat};
    use crate::session::messages;

    #[test]
    fn messages_become_lines() {
        let spec = StreamSpec {
            modality: Modality::Audio,
            mode: Mode::Send,
            inputs: Vec::new(),
            outputs: ["level", "pitch"]
                .map(|n| OutputSpec {
                    name: n.into(),
                    label: n.into(),
                    kind: OutputKind::Number,
                })
                .to_vec(),
            input_sample_rate: 16_000,
            output_sample_rate: 16_000,
            video_format: PixelFormat::I420,
            fps: 30,
        };
        let mut lines = Lines::new(&spec, Vec::new());
        let t = Duration::from_millis(420);
        let mut map = serde_json::Map::new();
        map.insert("pitch".into(), 440.0.into());
        map.insert("level".into(), (-6.5).into());
        lines.outputs(std::sync::Arc::new(map));
        lines.message(t, &messages::fetch_output()).unwrap();
        lines.message(t, &messages::pause_detected()).unwrap();
        lines.message(t, &messages::warning("careful")).unwrap();
        lines.message(t, &messages::echo("hi")).unwrap();
        lines.expect_failure(messages::error("boom"));
        lines.message(t, &messages::error("boom")).unwrap();
        assert_eq!(
            lines
                .message(Duration::ZERO, &messages::end_stream("done"))
                .unwrap(),
            Meaning::Close("done".into())
        );
        let text = String::from_utf8(lines.out).unwrap();
        assert_eq!(
            text,
            concat!(
                "{\"t\":0.42,\"outputs\":{\"level\":-6.5,\"pitch\":440.0}}\n",
                "{\"t\":0.42,\"event\":\"pause_detected\"}\n",
                "{\"t\":0.42,\"notify\":{\"level\":\"warning\",\"message\":\"careful\"}}\n",
                "{\"t\":0.0,\"close\":\"done\"}\n",
            )
        );
    }
}

//! Checks of a described stream spec, and the inputs' values: defaults, JSON in and out.

use super::{
    Control, InputSpec, Modality, Mode, OutputKind, PixelFormat, StreamSpec, TurnTaking, Value,
};

/// Most inputs or outputs a stream may declare.
pub const MAX_FIELDS: usize = 32;
/// Longest text input accepted, in bytes.
pub const MAX_TEXT: usize = 4096;

/// Every problem with a spec; empty when the host can serve it.
pub fn validate(spec: &StreamSpec) -> Vec<String> {
    let mut problems = Vec::new();
    if spec.modality == Modality::AudioVideo && spec.mode != Mode::SendReceive {
        problems.push("audio-video streams support only send-receive mode".to_string());
    }
    for (what, rate) in [
        ("input-sample-rate", spec.input_sample_rate),
        ("output-sample-rate", spec.output_sample_rate),
    ] {
        if !(8_000..=48_000).contains(&rate) {
            problems.push(format!("{what} {rate} is outside 8000..=48000"));
        }
    }
    if !(1..=60).contains(&spec.fps) {
        problems.push(format!("fps {} is outside 1..=60", spec.fps));
    }
    if spec.inputs.len() > MAX_FIELDS || spec.outputs.len() > MAX_FIELDS {
        problems.push(format!("more than {MAX_FIELDS} inputs or outputs"));
    }
    let names = spec
        .inputs
        .iter()
        .map(|i| ("input", &i.name, &i.label))
        .chain(spec.outputs.iter().map(|o| ("output", &o.name, &o.label)));
    let mut seen = std::collections::HashSet::new();
    for (what, name, label) in names {
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            problems.push(format!(
                "{what} name {name:?} must be 1-64 ASCII letters, digits or _"
            ));
        }
        if name == "webrtc_id" {
            problems.push(format!("{what} name `webrtc_id` is reserved"));
        }
        if label.len() > 200 {
            problems.push(format!("{what} `{name}` has a label longer than 200 bytes"));
        }
        if !seen.insert((what, name.as_str())) {
            problems.push(format!("{what} name `{name}` is used twice"));
        }
    }
    for input in &spec.inputs {
        if let Err(p) = check_control(input) {
            problems.push(format!("input `{}`: {p}", input.name));
        }
    }
    problems
}

/// Every problem with turn-taking settings for this spec; empty when the host can serve them.
pub fn validate_turn_taking(spec: &StreamSpec, turns: &TurnTaking) -> Vec<String> {
    let mut problems = Vec::new();
    if spec.modality != Modality::Audio || spec.mode != Mode::SendReceive {
        problems.push("turn-taking needs an audio send-receive stream".to_string());
    }
    for (what, value, range) in [
        ("pause-ms", turns.pause_ms, 100..=5_000),
        ("min-speech-ms", turns.min_speech_ms, 16..=2_000),
        ("max-utterance-ms", turns.max_utterance_ms, 1_000..=60_000),
    ] {
        if !range.contains(&value) {
            problems.push(format!(
                "turn-taking {what} {value} is outside {}..={}",
                range.start(),
                range.end()
            ));
        }
    }
    if turns.max_utterance_ms <= turns.min_speech_ms {
        problems.push(format!(
            "turn-taking max-utterance-ms {} is not above min-speech-ms {}",
            turns.max_utterance_ms, turns.min_speech_ms
        ));
    }
    problems
}

fn check_control(input: &InputSpec) -> Result<(), String> {
    match &input.control {
        Control::Slider(s) => {
            if !(s.min.is_finite() && s.max.is_finite() && s.step.is_finite()) {
                return Err("slider bounds must be finite".into());
            }
            if s.min >= s.max {
                return Err(format!("slider min {} is not below max {}", s.min, s.max));
            }
            if s.step <= 0.0 {
                return Err("slider step must be greater than zero".into());
            }
            if !(s.min..=s.max).contains(&s.default) {
                return Err(format!(
                    "default {} is outside {}..={}",
                    s.default, s.min, s.max
                ));
            }
        }
        Control::Number(n) => {
            if let (Some(min), Some(max)) = (n.min, n.max)
                && min > max
            {
                return Err(format!("min {min} is above max {max}"));
            }
            in_bounds(n.default, n.min, n.max).map_err(|e| format!("default {e}"))?;
        }
        Control::Text(t) => {
            if t.len() > MAX_TEXT {
                return Err(format!("default text is longer than {MAX_TEXT} bytes"));
            }
        }
        Control::Checkbox(_) => {}
        Control::Dropdown(d) => {
            if d.choices.is_empty() {
                return Err("dropdown has no choices".into());
            }
            if !d.choices.contains(&d.default) {
                return Err(format!("default {:?} is not one of the choices", d.default));
            }
        }
    }
    Ok(())
}

fn in_bounds(v: f64, min: Option<f64>, max: Option<f64>) -> Result<(), String> {
    if !v.is_finite() {
        return Err(format!("{v} is not a finite number"));
    }
    if let Some(min) = min
        && v < min
    {
        return Err(format!("{v} is below the minimum {min}"));
    }
    if let Some(max) = max
        && v > max
    {
        return Err(format!("{v} is above the maximum {max}"));
    }
    Ok(())
}

/// The declared default of one input.
pub fn default_value(input: &InputSpec) -> Value {
    match &input.control {
        Control::Slider(s) => Value::Number(s.default),
        Control::Number(n) => Value::Number(n.default),
        Control::Text(t) => Value::Text(t.clone()),
        Control::Checkbox(b) => Value::Boolean(*b),
        Control::Dropdown(d) => Value::Text(d.default.clone()),
    }
}

/// The declared defaults of every input, in order.
pub fn default_values(spec: &StreamSpec) -> Vec<Value> {
    spec.inputs.iter().map(default_value).collect()
}

/// Check a JSON value sent for `input` and turn it into a [`Value`].
pub fn value_from_json(input: &InputSpec, json: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    match (&input.control, json) {
        (Control::Slider(s), J::Number(n)) => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            in_bounds(v, Some(s.min), Some(s.max))?;
            Ok(Value::Number(v))
        }
        (Control::Number(b), J::Number(n)) => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            in_bounds(v, b.min, b.max)?;
            Ok(Value::Number(v))
        }
        (Control::Text(_), J::String(s)) if s.len() <= MAX_TEXT => Ok(Value::Text(s.clone())),
        (Control::Text(_), J::String(_)) => Err(format!("text is longer than {MAX_TEXT} bytes")),
        (Control::Checkbox(_), J::Bool(b)) => Ok(Value::Boolean(*b)),
        (Control::Dropdown(d), J::String(s)) if d.choices.contains(s) => Ok(Value::Text(s.clone())),
        (Control::Dropdown(d), J::String(s)) => Err(format!("{s:?} is not one of {:?}", d.choices)),
        (control, other) => Err(format!(
            "expected {}, got {}",
            match control {
                Control::Slider(_) | Control::Number(_) => "a number",
                Control::Text(_) | Control::Dropdown(_) => "a string",
                Control::Checkbox(_) => "a boolean",
            },
            json_kind(other)
        )),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A value as plain JSON (`json` values are parsed, falling back to a string).
pub fn value_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::None => serde_json::Value::Null,
        Value::Boolean(b) => (*b).into(),
        Value::Integer(i) => (*i).into(),
        Value::Number(n) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Text(s) => s.clone().into(),
        Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| s.clone().into()),
    }
}

/// Bytes per frame of a packed or planar picture of this size and format.
pub fn frame_len(format: PixelFormat, width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    match format {
        PixelFormat::Rgb24 | PixelFormat::Bgr24 => w * h * 3,
        PixelFormat::I420 => w * h + 2 * w.div_ceil(2) * h.div_ceil(2),
    }
}

/// FastRTC's name of a modality: `audio`, `video` or `audio-video`.
pub fn modality_name(m: Modality) -> &'static str {
    match m {
        Modality::Audio => "audio",
        Modality::Video => "video",
        Modality::AudioVideo => "audio-video",
    }
}

/// FastRTC's name of a mode: `send-receive`, `send` or `receive`.
pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::SendReceive => "send-receive",
        Mode::Send => "send",
        Mode::Receive => "receive",
    }
}

/// One line about turn-taking settings, for [`describe_text`]'s callers.
pub fn turn_taking_text(turns: &TurnTaking) -> String {
    format!(
        "turn-taking: reply after {} ms of silence, speech from {} ms, utterances up to {} ms, {}",
        turns.pause_ms,
        turns.min_speech_ms,
        turns.max_utterance_ms,
        if turns.interruptible {
            "interruptible"
        } else {
            "not interruptible"
        }
    )
}

/// A human-readable summary of a spec, one fact per line.
pub fn describe_text(spec: &StreamSpec) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "modality: {}\nmode: {}",
        modality_name(spec.modality),
        mode_name(spec.mode)
    );
    if spec.modality != Modality::Video {
        let _ = writeln!(
            out,
            "audio: {} Hz in, {} Hz out",
            spec.input_sample_rate, spec.output_sample_rate
        );
    }
    if spec.modality != Modality::Audio {
        let format = match spec.video_format {
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Bgr24 => "bgr24",
            PixelFormat::I420 => "i420",
        };
        let _ = writeln!(out, "video: {format} frames, {} fps", spec.fps);
    }
    for i in &spec.inputs {
        let control = match &i.control {
            Control::Slider(s) => format!(
                "slider {}..={} step {}, default {}",
                s.min, s.max, s.step, s.default
            ),
            Control::Number(n) => format!(
                "number {}..={}, default {}",
                n.min.map_or("".into(), |v| v.to_string()),
                n.max.map_or("".into(), |v| v.to_string()),
                n.default
            ),
            Control::Text(t) => format!("text, default {t:?}"),
            Control::Checkbox(b) => format!("checkbox, default {b}"),
            Control::Dropdown(d) => format!("dropdown {:?}, default {:?}", d.choices, d.default),
        };
        let _ = writeln!(out, "input {} ({:?}): {control}", i.name, i.label);
    }
    for o in &spec.outputs {
        let kind = match o.kind {
            OutputKind::Number => "number",
            OutputKind::Text => "text",
            OutputKind::Json => "json",
        };
        let _ = writeln!(out, "output {} ({:?}): {kind}", o.name, o.label);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio_spec(modality: Modality, mode: Mode) -> StreamSpec {
        StreamSpec {
            modality,
            mode,
            inputs: Vec::new(),
            outputs: Vec::new(),
            input_sample_rate: 16_000,
            output_sample_rate: 24_000,
            video_format: PixelFormat::Bgr24,
            fps: 30,
        }
    }

    const GOOD: TurnTaking = TurnTaking {
        pause_ms: 500,
        min_speech_ms: 200,
        max_utterance_ms: 15_000,
        interruptible: true,
    };

    #[test]
    fn turn_taking_needs_audio_send_receive_and_sane_durations() {
        let spec = audio_spec(Modality::Audio, Mode::SendReceive);
        assert!(validate_turn_taking(&spec, &GOOD).is_empty());
        let video = audio_spec(Modality::Video, Mode::SendReceive);
        assert_eq!(
            validate_turn_taking(&video, &GOOD),
            ["turn-taking needs an audio send-receive stream"]
        );
        let send = audio_spec(Modality::Audio, Mode::Send);
        assert_eq!(validate_turn_taking(&send, &GOOD).len(), 1);
        let bad = TurnTaking {
            pause_ms: 20,
            min_speech_ms: 0,
            max_utterance_ms: 120_000,
            interruptible: false,
        };
        assert_eq!(
            validate_turn_taking(&spec, &bad),
            [
                "turn-taking pause-ms 20 is outside 100..=5000",
                "turn-taking min-speech-ms 0 is outside 16..=2000",
                "turn-taking max-utterance-ms 120000 is outside 1000..=60000",
            ]
        );
        let inverted = TurnTaking {
            min_speech_ms: 2_000,
            max_utterance_ms: 1_500,
            ..GOOD
        };
        assert_eq!(
            validate_turn_taking(&spec, &inverted),
            ["turn-taking max-utterance-ms 1500 is not above min-speech-ms 2000"]
        );
    }
}

//! `--set NAME=VALUE`: input values from the command line, checked against the
//! component's own spec by the host's `input_hook` validation
//! ([`parse_inputs`](crate::session::parse_inputs)).

use crate::HookError;
use crate::runtime::{Control, InputSpec, StreamSpec, Value, spec};

/// Most `--set` flags in one run.
pub const MAX_SETS: usize = 64;
/// Longest `--set` argument, in bytes: a 64-byte name, `=` and the longest text value.
pub const MAX_SET_BYTES: usize = 64 + 1 + spec::MAX_TEXT;

/// Why `--set` values were refused.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// Too many flags.
    #[error("more than {MAX_SETS} --set flags")]
    TooMany,
    /// One flag is too long.
    #[error("--set {0}…: longer than {MAX_SET_BYTES} bytes")]
    TooLong(String),
    /// Not `NAME=VALUE`.
    #[error("--set {0}: expected NAME=VALUE")]
    Shape(String),
    /// The handler has no such input.
    #[error("--set {name}=…: the handler has no input `{name}`; {inputs}")]
    Unknown {
        /// The name given.
        name: String,
        /// The inputs the handler has.
        inputs: String,
    },
    /// The value does not fit the input.
    #[error("--set {name}={value}: {reason}; `{name}` accepts {accepts}")]
    Invalid {
        /// The input.
        name: String,
        /// The value given.
        value: String,
        /// What is wrong (the host's words).
        reason: String,
        /// What the input accepts.
        accepts: String,
    },
}

/// The full list of input values: the spec's defaults with `sets` (`NAME=VALUE`,
/// the last one of a name winning) applied.
pub fn values(spec: &StreamSpec, sets: &[String]) -> Result<Vec<Value>, SetError> {
    if sets.len() > MAX_SETS {
        return Err(SetError::TooMany);
    }
    let mut values = spec::default_values(spec);
    for set in sets {
        if set.len() > MAX_SET_BYTES {
            let head: String = set.chars().take(40).collect();
            return Err(SetError::TooLong(head));
        }
        let Some((name, text)) = set.split_once('=') else {
            return Err(SetError::Shape(set.clone()));
        };
        let Some(input) = spec.inputs.iter().find(|i| i.name == name) else {
            return Err(SetError::Unknown {
                name: name.to_string(),
                inputs: inputs_text(spec),
            });
        };
        let invalid = |reason: String| SetError::Invalid {
            name: name.to_string(),
            value: text.to_string(),
            reason,
            accepts: accepts(input),
        };
        let json = to_json(input, text).map_err(invalid)?;
        let mut map = serde_json::Map::new();
        map.insert(name.to_string(), json);
        // The host's own check of `input_hook` values.
        let updates = crate::session::parse_inputs(spec, &map).map_err(|e| match e {
            HookError::Invalid { reason, .. } => invalid(reason),
            other => invalid(other.to_string()),
        })?;
        for (i, v) in updates {
            if let Some(slot) = values.get_mut(i) {
                *slot = v;
            }
        }
    }
    Ok(values)
}

/// The text of a `--set` value as the JSON a client would send for this input.
fn to_json(input: &InputSpec, text: &str) -> Result<serde_json::Value, String> {
    Ok(match &input.control {
        Control::Slider(_) | Control::Number(_) => {
            let n: f64 = text
                .trim()
                .parse()
                .map_err(|_| format!("`{text}` is not a number"))?;
            serde_json::Number::from_f64(n)
                .map(serde_json::Value::Number)
                .ok_or_else(|| format!("{n} is not a finite number"))?
        }
        Control::Checkbox(_) => match text {
            "true" => true.into(),
            "false" => false.into(),
            _ => return Err(format!("`{text}` is not true or false")),
        },
        Control::Text(_) | Control::Dropdown(_) => text.into(),
    })
}

/// What an input accepts, in words.
fn accepts(input: &InputSpec) -> String {
    let bound = |v: Option<f64>| v.map_or("…".to_string(), |v| v.to_string());
    match &input.control {
        Control::Slider(s) => format!(
            "a number from {} to {} (a slider, step {}, default {})",
            s.min, s.max, s.step, s.default
        ),
        Control::Number(n) => format!(
            "a number from {} to {} (default {})",
            bound(n.min),
            bound(n.max),
            n.default
        ),
        Control::Checkbox(b) => format!("true or false (a checkbox, default {b})"),
        Control::Text(t) => format!("text of at most {} bytes (default {t:?})", spec::MAX_TEXT),
        Control::Dropdown(d) => format!("one of {:?} (default {:?})", d.choices, d.default),
    }
}

fn inputs_text(spec: &StreamSpec) -> String {
    if spec.inputs.is_empty() {
        return "it has no inputs".into();
    }
    let names: Vec<String> = spec
        .inputs
        .iter()
        .map(|i| format!("`{}` ({})", i.name, accepts(i)))
        .collect();
    format!("its inputs: {}", names.join(", "))
}

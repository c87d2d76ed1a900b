//! Builders for the stream spec, with FastRTC's defaults.

use crate::{
    Control, Dropdown, InputSpec, Modality, Mode, NumberBox, OutputKind, OutputSpec, PixelFormat,
    Slider, StreamSpec,
};

impl StreamSpec {
    /// A spec with no inputs or outputs, FastRTC's rates (48 kHz in, 24 kHz out),
    /// BGR frames (what FastRTC hands to Python) and 30 fps.
    pub fn new(modality: Modality, mode: Mode) -> Self {
        StreamSpec {
            modality,
            mode,
            inputs: Vec::new(),
            outputs: Vec::new(),
            input_sample_rate: 48_000,
            output_sample_rate: 24_000,
            video_format: PixelFormat::Bgr24,
            fps: 30,
        }
    }

    /// Add an input; `set_inputs` passes values in the order inputs are added.
    pub fn input(mut self, input: InputSpec) -> Self {
        self.inputs.push(input);
        self
    }

    /// Add an output; `emit_outputs` takes values in the order outputs are added.
    pub fn output(mut self, output: OutputSpec) -> Self {
        self.outputs.push(output);
        self
    }

    /// Set the audio rates: what `on_audio` receives and what `next_audio` returns.
    pub fn sample_rates(mut self, input: u32, output: u32) -> Self {
        self.input_sample_rate = input;
        self.output_sample_rate = output;
        self
    }

    /// Set the pixel format of frames given to `on_video`.
    pub fn video_format(mut self, format: PixelFormat) -> Self {
        self.video_format = format;
        self
    }

    /// Set the rate at which `next_video` is called in receive mode.
    pub fn fps(mut self, fps: u32) -> Self {
        self.fps = fps;
        self
    }
}

impl InputSpec {
    fn with(name: &str, label: &str, control: Control) -> Self {
        InputSpec {
            name: name.into(),
            label: label.into(),
            control,
        }
    }

    /// A slider from `min` to `max` in steps of `step`, starting at `default`.
    pub fn slider(name: &str, label: &str, min: f64, max: f64, step: f64, default: f64) -> Self {
        Self::with(
            name,
            label,
            Control::Slider(Slider {
                min,
                max,
                step,
                default,
            }),
        )
    }

    /// A number field with optional bounds, starting at `default`.
    pub fn number(
        name: &str,
        label: &str,
        min: Option<f64>,
        max: Option<f64>,
        default: f64,
    ) -> Self {
        Self::with(
            name,
            label,
            Control::Number(NumberBox { min, max, default }),
        )
    }

    /// A text field starting with `default`.
    pub fn text(name: &str, label: &str, default: &str) -> Self {
        Self::with(name, label, Control::Text(default.into()))
    }

    /// A checkbox starting at `default`.
    pub fn checkbox(name: &str, label: &str, default: bool) -> Self {
        Self::with(name, label, Control::Checkbox(default))
    }

    /// A drop-down list of `choices`, starting at `default`.
    pub fn dropdown(name: &str, label: &str, choices: &[&str], default: &str) -> Self {
        Self::with(
            name,
            label,
            Control::Dropdown(Dropdown {
                choices: choices.iter().map(|c| (*c).into()).collect(),
                default: default.into(),
            }),
        )
    }
}

impl OutputSpec {
    /// An output of the given kind.
    pub fn new(name: &str, label: &str, kind: OutputKind) -> Self {
        OutputSpec {
            name: name.into(),
            label: label.into(),
            kind,
        }
    }
}

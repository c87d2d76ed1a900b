"""Write wasmrtc stream handlers in Python.

The Python counterpart of the Rust SDK (`guest-sdk/`): the WIT types of
`wasmrtc:handler@0.1.1`, a `StreamHandler` base class whose methods all have
defaults except `describe`, spec builders with FastRTC's defaults, the host
functions, and `export` to turn a handler class into the component's export.

A complete handler (audio send-receive, a slider scales the samples)::

    from collections import deque
    from wasmrtc_handler import *

    class Gain(StreamHandler):
        def __init__(self):
            self.factor = 1.0
            self.queue = deque(maxlen=50)

        def describe(self):
            return spec(Modality.AUDIO, Mode.SEND_RECEIVE,
                        inputs=[slider("gain", "Gain", 0.0, 2.0, 0.01, 1.0)])

        def set_inputs(self, values):
            self.factor = as_float(values[0], self.factor)

        def on_audio(self, frame):
            f = self.factor
            frame.samples = [min(32767, max(-32768, round(s * f))) for s in frame.samples]
            self.queue.append(frame)

        def next_audio(self):
            return self.queue.popleft() if self.queue else None

    Handler = export(Gain)

`componentize-py -d wit -w handler-component componentize app -p . -o gain.wasm`
builds the component (see `build.sh`). The host creates one instance per
connection, so the attributes of your handler object are that connection's state.

Shapes of the data (what componentize-py hands you):

- `AudioFrame.samples` is a `list[int]` (s16); return a list (or any sequence of ints).
- `VideoFrame.data` is `bytes`; return `bytes` (or `bytearray`).
- Per-sample and per-pixel Python loops are slow (tens of ns per item inside
  WebAssembly); prefer whole-buffer operations: `sum(memoryview(data)[:n])`,
  slicing (`data[::3]`), `bytes.translate`, `bytes.join` of row slices, list
  comprehensions over whole lists.
"""

from typing import List, Optional, Sequence

from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    AudioFrame,
    Control_Checkbox,
    Control_Dropdown,
    Control_Number,
    Control_Slider,
    Control_Text,
    Dropdown,
    InputSpec,
    Modality,
    Mode,
    NotifyLevel,
    NumberBox,
    OutputKind,
    OutputSpec,
    PixelFormat,
    Slider,
    StreamSpec,
    Value,
    Value_Boolean,
    Value_Integer,
    Value_Json,
    Value_None_,
    Value_Number,
    Value_Text,
    VideoFrame,
)

__all__ = [
    # WIT types
    "AudioFrame", "VideoFrame", "PixelFormat", "Modality", "Mode", "OutputKind",
    "NotifyLevel", "StreamSpec", "InputSpec", "OutputSpec", "Slider", "NumberBox",
    "Dropdown", "Value",
    # values
    "NoValue", "Boolean", "Integer", "Number", "Text", "Json",
    "as_float", "as_str", "as_bool",
    # spec builders
    "spec", "slider", "number_input", "text_input", "checkbox", "dropdown", "output",
    # host functions
    "emit_outputs", "notify", "warn", "close_stream", "clear_audio",
    # the handler
    "StreamHandler", "export",
]

# --- values ------------------------------------------------------------------

#: `value::none`: `NoValue()`.
NoValue = Value_None_
#: `value::boolean`: `Boolean(True)`.
Boolean = Value_Boolean
#: `value::integer`: `Integer(3)`.
Integer = Value_Integer
#: `value::number`: `Number(0.5)`.
Number = Value_Number
#: `value::text`: `Text("hello")`.
Text = Value_Text
#: `value::json`: `Json('{"a": 1}')`.
Json = Value_Json


def as_float(value: Value, default: Optional[float] = None) -> Optional[float]:
    """The value as a float if it is a number or an integer, else `default`."""
    if isinstance(value, (Value_Number, Value_Integer)):
        return float(value.value)
    return default


def as_str(value: Value, default: Optional[str] = None) -> Optional[str]:
    """The value as text if it is text or JSON, else `default`."""
    if isinstance(value, (Value_Text, Value_Json)):
        return value.value
    return default


def as_bool(value: Value, default: Optional[bool] = None) -> Optional[bool]:
    """The value as a bool if it is a boolean, else `default`."""
    if isinstance(value, Value_Boolean):
        return value.value
    return default


# --- spec builders -------------------------------------------------------------


def spec(
    modality: Modality,
    mode: Mode,
    *,
    inputs: Sequence[InputSpec] = (),
    outputs: Sequence[OutputSpec] = (),
    input_sample_rate: int = 48_000,
    output_sample_rate: int = 24_000,
    video_format: PixelFormat = PixelFormat.BGR24,
    fps: int = 30,
) -> StreamSpec:
    """A stream spec with FastRTC's defaults: 48 kHz in, 24 kHz out, BGR frames, 30 fps.

    `set_inputs` passes values in the order of `inputs`; `emit_outputs` takes
    values in the order of `outputs`.
    """
    return StreamSpec(
        modality=modality,
        mode=mode,
        inputs=list(inputs),
        outputs=list(outputs),
        input_sample_rate=input_sample_rate,
        output_sample_rate=output_sample_rate,
        video_format=video_format,
        fps=fps,
    )


def slider(name: str, label: str, min: float, max: float, step: float, default: float) -> InputSpec:
    """A slider from `min` to `max` in steps of `step`, starting at `default`."""
    return InputSpec(name, label, Control_Slider(Slider(float(min), float(max), float(step), float(default))))


def number_input(
    name: str,
    label: str,
    default: float,
    min: Optional[float] = None,
    max: Optional[float] = None,
) -> InputSpec:
    """A number field with optional bounds, starting at `default`."""
    lo = None if min is None else float(min)
    hi = None if max is None else float(max)
    return InputSpec(name, label, Control_Number(NumberBox(lo, hi, float(default))))


def text_input(name: str, label: str, default: str = "") -> InputSpec:
    """A text field starting with `default`."""
    return InputSpec(name, label, Control_Text(default))


def checkbox(name: str, label: str, default: bool = False) -> InputSpec:
    """A checkbox starting at `default`."""
    return InputSpec(name, label, Control_Checkbox(bool(default)))


def dropdown(name: str, label: str, choices: Sequence[str], default: str) -> InputSpec:
    """A drop-down list of `choices`, starting at `default`."""
    return InputSpec(name, label, Control_Dropdown(Dropdown(list(choices), default)))


def output(name: str, label: str, kind: OutputKind = OutputKind.NUMBER) -> OutputSpec:
    """An additional output of the given kind."""
    return OutputSpec(name, label, kind)


# --- host functions ------------------------------------------------------------


def emit_outputs(values: Sequence[Value]) -> None:
    """Publish additional outputs, one value per declared output, in declared order."""
    host.emit_outputs(list(values))


def notify(level: NotifyLevel, message: str) -> None:
    """Send a message to the client at the given level."""
    host.notify(level, message)


def warn(message: str) -> None:
    """Send a warning to the client (`{"type":"warning","message":…}`)."""
    host.notify(NotifyLevel.WARNING, message)


def close_stream(reason: str) -> None:
    """End this connection after the current call; the client gets `end_stream` with `reason`."""
    host.close_stream(reason)


def clear_audio() -> None:
    """Drop the audio already queued for playback to the client (barge-in)."""
    host.clear_audio()


# --- the handler ---------------------------------------------------------------


class StreamHandler:
    """A stream handler. Override `describe` and the methods your modality and mode need:

    ========================== ================================================
    modality x mode            methods the host calls
    ========================== ================================================
    video send-receive / send  `on_video` per frame
    video receive              `next_video` at the spec's `fps`
    audio send-receive         `on_audio`, then `next_audio` when playback runs low
    audio send                 `on_audio`
    audio receive              `next_audio`
    audio-video send-receive   all of the above but `next_video`
    ========================== ================================================

    The object is created with no arguments on the connection's first call.
    """

    def describe(self) -> StreamSpec:
        """The stream's spec (see `spec`). Called once, in a throwaway instance."""
        raise NotImplementedError(f"{type(self).__name__} must define describe()")

    def set_inputs(self, values: List[Value]) -> None:
        """Every input value in declared order; called first with the defaults."""

    def on_audio(self, frame: AudioFrame) -> None:
        """Audio from the client at the spec's `input_sample_rate`."""

    def next_audio(self) -> Optional[AudioFrame]:
        """Audio for the client at the spec's `output_sample_rate`, any length; `None` = nothing now."""
        return None

    def on_video(self, frame: VideoFrame) -> Optional[VideoFrame]:
        """Video from the client; return a frame to send it back now."""
        return None

    def next_video(self) -> Optional[VideoFrame]:
        """Video for the client in receive mode, called at the spec's `fps`."""
        return None


def export(handler_class: type) -> type:
    """The component's `handler` export, backed by one `handler_class()` per instance.

    Assign the result to a module-level name `Handler` in the app module that
    componentize-py builds: `Handler = export(MyHandler)`.
    """
    state: List[StreamHandler] = []

    def this() -> StreamHandler:
        if not state:
            state.append(handler_class())
        return state[0]

    class Handler(exports.Handler):
        def describe(self) -> StreamSpec:
            return this().describe()

        def set_inputs(self, values: List[Value]) -> None:
            this().set_inputs(values)

        def on_audio(self, frame: AudioFrame) -> None:
            this().on_audio(frame)

        def next_audio(self) -> Optional[AudioFrame]:
            return this().next_audio()

        def on_video(self, frame: VideoFrame) -> Optional[VideoFrame]:
            return this().on_video(frame)

        def next_video(self) -> Optional[VideoFrame]:
            return this().next_video()

    Handler.__qualname__ = Handler.__name__ = "Handler"
    return Handler

"""Write wasmrtc stream handlers in Python.

The Python counterpart of the Rust SDK (`guest-sdk/`): the WIT types of
`wasmrtc:handler@0.1.2`, a `StreamHandler` base class whose methods all have
defaults except `describe`, spec builders with FastRTC's defaults, the host
functions, and `export` to turn a handler class into the component's export;
for turn-taking, `TurnTakingHandler`, `turn_taking` and `export_turns` (the
optional `turns` export).

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

Turn-taking (FastRTC's `ReplyOnPause`): subclass `TurnTakingHandler`, implement
`on_utterance` (the caller's whole utterance) and `next_audio` (the reply, chunk by
chunk, then `None`), and export the `turns` interface too::

    class Parrot(TurnTakingHandler):
        def describe_turns(self):
            return turn_taking(pause_ms=500)
        def on_utterance(self, utterance): ...
        def next_audio(self): ...
        def on_interrupt(self): ...

    Handler = export(Parrot)
    Turns = export_turns(Parrot)

Such a module is built against the `turn-taking-component` world (`-w
turn-taking-component`; `build.sh` picks it when `app.py` assigns `Turns`).

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

try:
    # Generated only for the `turn-taking-component` world.
    from wit_world.exports.turns import TurnTaking
except ImportError:
    TurnTaking = None

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
    # turn-taking
    "TurnTaking", "turn_taking", "TurnTakingHandler", "export_turns",
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


#: The handler object of this instance, per handler class (`export` and
#: `export_turns` of one class share it).
_instances = {}


def _instance(handler_class: type) -> StreamHandler:
    handler = _instances.get(handler_class)
    if handler is None:
        handler = _instances[handler_class] = handler_class()
    return handler


def export(handler_class: type) -> type:
    """The component's `handler` export, backed by one `handler_class()` per instance.

    Assign the result to a module-level name `Handler` in the app module that
    componentize-py builds: `Handler = export(MyHandler)`.
    """

    def this() -> StreamHandler:
        return _instance(handler_class)

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


# --- turn-taking -----------------------------------------------------------------


def _needs_turns_world(what: str) -> None:
    if TurnTaking is None:
        raise RuntimeError(
            f"{what} needs the bindings of the turn-taking-component world: build with "
            "`-w turn-taking-component` (build.sh does when app.py assigns `Turns`)"
        )


def turn_taking(
    pause_ms: int = 600,
    min_speech_ms: int = 200,
    max_utterance_ms: int = 30_000,
    interruptible: bool = True,
) -> "TurnTaking":
    """Turn-taking settings; the defaults are the Rust SDK's `TurnTaking::default()`.

    - `pause_ms` (100..=5000): silence after speech that ends the caller's turn;
    - `min_speech_ms` (16..=2000): shorter sounds are not a turn;
    - `max_utterance_ms` (1000..=60000): an utterance this long is handed over
      without waiting for a pause;
    - `interruptible`: whether the caller's speech cuts a reply (`on_interrupt`).
    """
    _needs_turns_world("turn_taking()")
    return TurnTaking(
        pause_ms=int(pause_ms),
        min_speech_ms=int(min_speech_ms),
        max_utterance_ms=int(max_utterance_ms),
        interruptible=bool(interruptible),
    )


class TurnTakingHandler(StreamHandler):
    """A voice handler with turn-taking (FastRTC's `ReplyOnPause`).

    The host detects the caller's speech, calls `on_utterance` with each whole
    utterance after the pause, then plays what `next_audio` returns until it
    returns `None`; `on_audio` is not called. The stream must be audio
    send-receive. Export both interfaces::

        Handler = export(MyHandler)
        Turns = export_turns(MyHandler)
    """

    def describe_turns(self) -> Optional["TurnTaking"]:
        """Turn-taking settings (see `turn_taking`), or `None` to stay frame by frame.

        Called once at load, after `describe`, in a throwaway instance. The default
        is `turn_taking()`: a 600 ms pause, speech from 200 ms, 30 s at most,
        interruptible.
        """
        return turn_taking()

    def on_utterance(self, utterance: AudioFrame) -> None:
        """The caller's whole utterance, mono, at the spec's `input_sample_rate`.

        Prepare the reply here; the host then takes it from `next_audio` until
        that returns `None`.
        """

    def on_interrupt(self) -> None:
        """The caller spoke during an interruptible reply: the host already dropped
        the audio it had queued; drop the rest of the reply."""


def export_turns(handler_class: type) -> type:
    """The component's `turns` export, sharing the handler object of `export`.

    Assign the result to a module-level name `Turns`, next to `Handler`:
    `Turns = export_turns(MyHandler)`. The handler class needs `describe_turns`,
    `on_utterance` and `on_interrupt` (`TurnTakingHandler` has defaults).
    """
    _needs_turns_world("export_turns()")

    def this():
        return _instance(handler_class)

    class Turns(exports.Turns):
        def describe_turns(self) -> Optional["TurnTaking"]:
            return this().describe_turns()

        def on_utterance(self, utterance: AudioFrame) -> None:
            this().on_utterance(utterance)

        def on_interrupt(self) -> None:
            this().on_interrupt()

    Turns.__qualname__ = Turns.__name__ = "Turns"
    return Turns

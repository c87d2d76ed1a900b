"""Audio send-receive: plays the client's audio back, scaled by a "gain" slider.

The Python twin of `examples-guests/gain` (Rust).
"""

import struct
from array import array
from collections import deque

from wasmrtc_handler import *

#: At most this many frames are queued (1 s of 20 ms frames); older ones are dropped.
MAX_QUEUED = 50


def to_f32(x):
    """`x` rounded to single precision, the Rust example's `f32`."""
    return struct.unpack("f", struct.pack("f", x))[0]


def scale(samples, factor):
    """`samples` times `factor` in single precision, rounded half to even, saturated to s16.

    Whole-frame passes, no per-sample method calls: a comprehension multiplies
    (an s16 times an f32 is exact in a Python float), `array('f', …)` rounds
    every product to f32 in C, `map(round, …)` rounds half to even like Rust's
    `round_ties_even`, and a last comprehension saturates.
    """
    products = array("f", [s * factor for s in samples])
    lo, hi = -32768, 32767
    return [lo if v < lo else hi if v > hi else v for v in map(round, products)]


class Gain(StreamHandler):
    def __init__(self):
        self.factor = 1.0
        self.queue = deque(maxlen=MAX_QUEUED)

    def describe(self):
        return spec(
            Modality.AUDIO,
            Mode.SEND_RECEIVE,
            input_sample_rate=48_000,
            output_sample_rate=48_000,
            inputs=[slider("gain", "Gain", 0.0, 2.0, 0.01, 1.0)],
        )

    def set_inputs(self, values):
        if values:
            self.factor = to_f32(as_float(values[0], self.factor))

    def on_audio(self, frame):
        if self.factor != 1.0:
            frame.samples = scale(frame.samples, self.factor)
        self.queue.append(frame)  # a full deque drops its oldest frame

    def next_audio(self):
        return self.queue.popleft() if self.queue else None


Handler = export(Gain)

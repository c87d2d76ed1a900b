"""Audio send-receive: plays the caller's audio back, scaled by a "gain" slider."""

from collections import deque

from wasmrtc_handler import *

#: At most this many frames are queued (1 s of 20 ms frames); older ones are dropped.
MAX_QUEUED = 50


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
            self.factor = as_float(values[0], self.factor)

    def on_audio(self, frame):
        f = self.factor
        if f != 1.0:
            # Whole-list passes (a per-sample method call would be slower): round
            # half to even, then saturate to s16.
            lo, hi = -32768, 32767
            frame.samples = [lo if v < lo else hi if v > hi else v for v in [round(s * f) for s in frame.samples]]
        self.queue.append(frame)  # a full deque drops its oldest frame

    def next_audio(self):
        return self.queue.popleft() if self.queue else None


Handler = export(Gain)

"""Audio send: measures the caller's audio and emits its level (dBFS) four times a
second. Nothing is sent back."""

import math

from wasmrtc_handler import *

RATE = 16_000
#: Samples per measurement: 250 ms.
WINDOW = RATE // 4


class Meter(StreamHandler):
    def __init__(self):
        self.pending = []

    def describe(self):
        return spec(
            Modality.AUDIO,
            Mode.SEND,
            input_sample_rate=RATE,
            output_sample_rate=RATE,
            outputs=[output("level", "Level (dBFS)", OutputKind.NUMBER)],
        )

    def on_audio(self, frame):
        # The first channel only.
        self.pending.extend(frame.samples[:: max(1, frame.channels)])
        while len(self.pending) >= WINDOW:
            window, self.pending = self.pending[:WINDOW], self.pending[WINDOW:]
            rms = math.sqrt(sum(s * s for s in window) / WINDOW) / 32768
            level = 20 * math.log10(rms) if rms > 0 else -120.0
            emit_outputs([Number(round(level, 1))])


Handler = export(Meter)

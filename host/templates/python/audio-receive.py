"""Audio receive: a sine tone with "frequency" and "volume" inputs. The caller sends
nothing."""

import math

from wasmrtc_handler import *

RATE = 48_000
#: Samples per `next_audio` call: 20 ms, mono.
FRAME = RATE // 50


class Tone(StreamHandler):
    def __init__(self):
        self.frequency = 440.0
        self.volume = 0.5
        #: Position in the current cycle, in 0..1, carried across calls.
        self.phase = 0.0

    def describe(self):
        return spec(
            Modality.AUDIO,
            Mode.RECEIVE,
            input_sample_rate=RATE,
            output_sample_rate=RATE,
            inputs=[
                number_input("frequency", "Frequency (Hz)", 440.0, min=20.0, max=20_000.0),
                slider("volume", "Volume", 0.0, 1.0, 0.01, 0.5),
            ],
        )

    def set_inputs(self, values):
        self.frequency = as_float(values[0], self.frequency)
        self.volume = as_float(values[1], self.volume)

    def next_audio(self):
        step = self.frequency / RATE
        amplitude = self.volume * 32767
        phase = self.phase
        tau = 2 * math.pi
        samples = [int(math.sin(tau * ((phase + i * step) % 1.0)) * amplitude) for i in range(FRAME)]
        self.phase = (phase + FRAME * step) % 1.0
        return AudioFrame(sample_rate=RATE, channels=1, samples=samples)


Handler = export(Tone)

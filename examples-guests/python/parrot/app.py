"""Turn-taking: plays each of the caller's utterances back, at an adjustable speed.

The Python twin of `examples-guests/parrot` (Rust): FastRTC's `ReplyOnPause`
quick-start (`def echo(audio): yield audio`). The host detects when the caller
starts and stops talking; after each pause `on_utterance` gets the whole utterance
and `next_audio` plays it back in 100 ms chunks, resampled from 16 to 24 kHz with
linear interpolation (and by the `speed` input, like a tape).

No Python code runs per sample: the resampling works on whole buffers (see
`next_audio` and `lerp`).
"""

from array import array
from fractions import Fraction

from wasmrtc_handler import *

#: Rate of the utterances the host hands over.
IN_RATE = 16_000
#: Rate of the reply.
OUT_RATE = 24_000
#: Samples of reply per `next_audio` (100 ms), so an interruption drops the rest here.
CHUNK = OUT_RATE // 10
#: Largest denominator of the resampling step (input samples per output sample), and
#: so the most passes a chunk takes: speeds in steps of 0.05 are exact, others within 1 %.
MAX_PHASES = 60

#: Flips the top bit of a byte: applied to the high byte of an s16, it turns the
#: sample into offset binary (`s + 32768`, 0..=65535) and back.
FLIP = bytes(b ^ 0x80 for b in range(256))


def to_lanes(samples):
    """One int holding `samples` (an `array('h')`) as `s + 32768`, a 32-bit lane each."""
    raw = samples.tobytes()
    lanes = bytearray(4 * len(samples))
    lanes[0::4] = raw[0::2]
    lanes[1::4] = raw[1::2].translate(FLIP)
    return int.from_bytes(lanes, "little")


def lerp(a, b, w):
    """`a + (b - a) * w / 65536`, rounded, for every pair of samples of `a` and `b`.

    Both arrays go into one big int each, a lane per sample; one multiplication by a
    small int scales every lane at once, in C. A lane holds at most
    `65535 * 65536 + 32768 < 2**32`, so lanes never carry into each other, and the
    top half of each lane is the rounded result.
    """
    n = len(a)
    half = int.from_bytes(b"\x00\x80\x00\x00" * n, "little")  # 32768 per lane
    mixed = (to_lanes(a) * (65536 - w) + to_lanes(b) * w + half).to_bytes(4 * n, "little")
    out = bytearray(2 * n)
    out[0::2] = mixed[2::4]
    out[1::2] = mixed[3::4].translate(FLIP)
    return array("h", out)


class Parrot(TurnTakingHandler):
    def __init__(self):
        self.speed = 1.0
        #: The utterance being played back.
        self.utterance = array("h")
        #: Each sample's right neighbour (the last sample repeated).
        self.right = array("h")
        #: Position in `utterance`, in input samples.
        self.position = Fraction(0)

    def describe(self):
        return spec(
            Modality.AUDIO,
            Mode.SEND_RECEIVE,
            input_sample_rate=IN_RATE,
            output_sample_rate=OUT_RATE,
            inputs=[number_input("speed", "Playback speed", 1.0, min=0.5, max=2.0)],
            outputs=[output("heard", "Utterance (s)", OutputKind.NUMBER)],
        )

    def describe_turns(self):
        return turn_taking(pause_ms=500, min_speech_ms=200, max_utterance_ms=15_000, interruptible=True)

    def set_inputs(self, values):
        speed = as_float(values[0], 1.0) if values else 1.0
        self.speed = min(2.0, max(0.5, speed))

    def on_utterance(self, utterance):
        channels = max(1, utterance.channels)
        seconds = len(utterance.samples) / channels / utterance.sample_rate
        emit_outputs([Number(round(seconds, 2))])
        samples = array("h", utterance.samples)
        if channels > 1:
            samples = samples[::channels]  # mono: the first channel
        self.utterance = samples
        self.right = samples[1:] + samples[-1:]
        self.position = Fraction(0)

    def next_audio(self):
        a, right = self.utterance, self.right
        last = len(a) - 1
        if last < 0:
            return None
        # Input samples per output sample, as m/q: output j lies at `start + j*m`
        # in units of 1/q input sample.
        step = Fraction(self.speed * IN_RATE / OUT_RATE).limit_denominator(MAX_PHASES)
        m, q = step.numerator, step.denominator
        start = round(self.position * q)
        if start > last * q:
            self.on_interrupt()
            return None
        n = min(CHUNK, (last * q - start) // m + 1)
        out = array("h", bytes(2 * n))
        # Outputs j0, j0+q, j0+2q, … share a fraction (a phase) and read every m-th
        # input sample: one pass of slices and `lerp` per phase, at most q passes.
        for j0 in range(min(q, n)):
            i0, r = divmod(start + j0 * m, q)
            count = len(range(j0, n, q))
            picks = slice(i0, i0 + (count - 1) * m + 1, m)
            if r == 0:
                out[j0::q] = a[picks]
            else:
                out[j0::q] = lerp(a[picks], right[picks], (r * 131072 + q) // (2 * q))
        self.position = Fraction(start + n * m, q)
        return AudioFrame(sample_rate=OUT_RATE, channels=1, samples=out.tolist())

    def on_interrupt(self):
        self.utterance = array("h")
        self.right = array("h")
        self.position = Fraction(0)


Handler = export(Parrot)
Turns = export_turns(Parrot)

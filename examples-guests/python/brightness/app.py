"""Video send: emits the mean brightness of the client's video, at most 4 times a second.

The Python twin of `examples-guests/brightness` (Rust).
"""

from wasmrtc_handler import *

#: Minimum time between two emitted values: 250 ms.
PERIOD_US = 250_000


def mean_luma(frame):
    """Mean luma (0..=255) of the frame, or `None` if it is empty or too short."""
    pixels = frame.width * frame.height
    data = frame.data
    if frame.format == PixelFormat.I420:
        if pixels == 0 or len(data) < pixels:
            return None
        # The fast path: `sum` over the Y plane's bytes iterates in C (~18 ns a
        # byte here). A `for i in range(pixels): total += data[i]` loop is ~8x
        # slower and overruns the 50 ms CPU budget at 640x480.
        return sum(data[:pixels]) / pixels
    # In case the format is changed: BT.601 luma, weights scaled by 256
    # (per pixel, so this path is the slow one).
    if pixels == 0 or len(data) < pixels * 3:
        return None
    wr, wb = (77, 29) if frame.format == PixelFormat.RGB24 else (29, 77)
    first, second, third = data[0 : pixels * 3 : 3], data[1 : pixels * 3 : 3], data[2 : pixels * 3 : 3]
    total = sum((wr * a + 150 * b + wb * c) >> 8 for a, b, c in zip(first, second, third))
    return total / pixels


class Brightness(StreamHandler):
    def __init__(self):
        #: Timestamp of the frame last measured; `None` before the first frame.
        self.last_emit_us = None

    def describe(self):
        # I420 so that the first `width * height` bytes are the luma plane.
        return spec(
            Modality.VIDEO,
            Mode.SEND,
            video_format=PixelFormat.I420,
            outputs=[output("brightness", "Mean brightness (0-255)", OutputKind.NUMBER)],
        )

    def on_video(self, frame):
        ts = frame.timestamp_us
        last = self.last_emit_us
        # Also emit when time goes backwards (a restarted stream) rather than stall.
        if last is None or ts < last or ts >= last + PERIOD_US:
            mean = mean_luma(frame)
            if mean is not None:
                self.last_emit_us = ts
                emit_outputs([Number(mean)])
        return None


Handler = export(Brightness)

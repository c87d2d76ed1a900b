"""Video send: emits the mean brightness (0-255) of the caller's video, at most four
times a second. Nothing is sent back."""

from wasmrtc_handler import *

#: Minimum time between two emitted values: 250 ms.
PERIOD_US = 250_000


class Brightness(StreamHandler):
    def __init__(self):
        #: Timestamp of the frame last measured; `None` before the first frame.
        self.last_emit_us = None

    def describe(self):
        # I420, so the first `width * height` bytes are the luma plane.
        return spec(
            Modality.VIDEO,
            Mode.SEND,
            video_format=PixelFormat.I420,
            outputs=[output("brightness", "Mean brightness (0-255)", OutputKind.NUMBER)],
        )

    def on_video(self, frame):
        ts, last = frame.timestamp_us, self.last_emit_us
        pixels = frame.width * frame.height
        if (last is None or ts < last or ts >= last + PERIOD_US) and 0 < pixels <= len(frame.data):
            self.last_emit_us = ts
            # `sum` over a bytes slice iterates in C.
            emit_outputs([Number(sum(frame.data[:pixels]) / pixels)])
        return None


Handler = export(Brightness)

"""Video receive: generates a grey ramp that scrolls left, at 15 fps, with a
"brightness" slider. The caller sends nothing."""

from wasmrtc_handler import *

WIDTH, HEIGHT, FPS = 320, 240, 15


class Ramp(StreamHandler):
    def __init__(self):
        self.brightness = 1.0
        #: Frames generated so far.
        self.frame = 0

    def describe(self):
        return spec(
            Modality.VIDEO,
            Mode.RECEIVE,
            video_format=PixelFormat.RGB24,
            fps=FPS,
            inputs=[slider("brightness", "Brightness", 0.0, 1.0, 0.05, 1.0)],
        )

    def set_inputs(self, values):
        self.brightness = min(1.0, max(0.0, as_float(values[0], self.brightness)))

    def next_video(self):
        # One row, shifted 4 pixels per frame, repeated for every row (bytes-level).
        shift, b = self.frame * 4, self.brightness
        row = bytes(int(((x + shift) % 256) * b) for x in range(WIDTH) for _ in range(3))
        timestamp_us = self.frame * 1_000_000 // FPS
        self.frame += 1
        return VideoFrame(
            width=WIDTH,
            height=HEIGHT,
            format=PixelFormat.RGB24,
            data=row * HEIGHT,
            timestamp_us=timestamp_us,
        )


Handler = export(Ramp)

"""Video send-receive: returns every frame flipped vertically (rows in reverse order)."""

from wasmrtc_handler import *


class Flip(StreamHandler):
    def describe(self):
        return spec(Modality.VIDEO, Mode.SEND_RECEIVE, video_format=PixelFormat.RGB24)

    def on_video(self, frame):
        # RGB: `height` rows of `width * 3` bytes; joining row slices in reverse
        # order is a bytes-level operation (no per-pixel Python code).
        stride = frame.width * 3
        data = frame.data
        if len(data) >= stride * frame.height:
            rows = [data[y * stride:(y + 1) * stride] for y in range(frame.height - 1, -1, -1)]
            frame.data = b"".join(rows)
        return frame


Handler = export(Flip)

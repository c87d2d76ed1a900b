"""Audio-video send-receive: plays the caller's audio back and returns each video
frame flipped vertically."""

from collections import deque

from wasmrtc_handler import *


class AvEcho(StreamHandler):
    def __init__(self):
        # At most 1 s of 20 ms audio frames; older ones are dropped.
        self.queue = deque(maxlen=50)

    def describe(self):
        return spec(
            Modality.AUDIO_VIDEO,
            Mode.SEND_RECEIVE,
            input_sample_rate=48_000,
            output_sample_rate=48_000,
            video_format=PixelFormat.RGB24,
        )

    def on_audio(self, frame):
        self.queue.append(frame)

    def next_audio(self):
        return self.queue.popleft() if self.queue else None

    def on_video(self, frame):
        stride = frame.width * 3
        data = frame.data
        if len(data) >= stride * frame.height:
            rows = [data[y * stride:(y + 1) * stride] for y in range(frame.height - 1, -1, -1)]
            frame.data = b"".join(rows)
        return frame


Handler = export(AvEcho)

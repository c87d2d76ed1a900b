//! Slower than real time on purpose: echoes the client's audio like `av-echo`, but
//! takes 300 ms (blocked in a WASI clock poll) over each video frame it returns.
//! The host must keep this connection's audio and ICE alive, and every other
//! connection's frame rate, while the handler falls behind its video.

use std::collections::VecDeque;
use std::time::Duration;
use wasmrtc_guest::*;

/// At most this many audio frames are queued (1 s of 20 ms frames).
const MAX_QUEUED: usize = 50;

#[derive(Default)]
struct SlowVideo {
    queue: VecDeque<AudioFrame>,
}

impl Handler for SlowVideo {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::AudioVideo, Mode::SendReceive)
            .sample_rates(48_000, 48_000)
            .video_format(PixelFormat::Rgb24)
    }

    fn on_audio(&mut self, frame: AudioFrame) {
        if self.queue.len() == MAX_QUEUED {
            self.queue.pop_front();
        }
        self.queue.push_back(frame);
    }

    fn next_audio(&mut self) -> Option<AudioFrame> {
        self.queue.pop_front()
    }

    fn on_video(&mut self, frame: VideoFrame) -> Option<VideoFrame> {
        std::thread::sleep(Duration::from_millis(300));
        Some(frame)
    }
}

export_handler!(SlowVideo);

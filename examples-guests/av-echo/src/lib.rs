//! Audio-video send-receive: plays the client's audio back and returns each video frame unchanged.

use std::collections::VecDeque;
use wasmrtc_guest::*;

/// At most this many audio frames are queued (1 s of 20 ms frames); older ones are dropped.
const MAX_QUEUED: usize = 50;

#[derive(Default)]
struct AvEcho {
    queue: VecDeque<AudioFrame>,
}

impl Handler for AvEcho {
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
        Some(frame)
    }
}

export_handler!(AvEcho);

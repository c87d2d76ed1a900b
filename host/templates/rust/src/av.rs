//! Audio-video send-receive: plays the caller's audio back and returns each video
//! frame flipped vertically.

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

    fn on_video(&mut self, mut frame: VideoFrame) -> Option<VideoFrame> {
        let stride = frame.width as usize * 3;
        let rows = frame.height as usize;
        if let Some(plane) = frame.data.get_mut(..stride * rows) {
            for top in 0..rows / 2 {
                let (head, tail) = plane.split_at_mut((rows - 1 - top) * stride);
                head[top * stride..][..stride].swap_with_slice(&mut tail[..stride]);
            }
        }
        Some(frame)
    }
}

export_handler!(AvEcho);

//! Video send-receive: returns every frame flipped vertically (rows in reverse order).

use wasmrtc_guest::*;

#[derive(Default)]
struct Flip;

impl Handler for Flip {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Video, Mode::SendReceive).video_format(PixelFormat::Rgb24)
    }

    fn on_video(&mut self, mut frame: VideoFrame) -> Option<VideoFrame> {
        // RGB: one plane of `height` rows of `width * 3` bytes.
        let stride = frame.width as usize * 3;
        let rows = frame.height as usize;
        if let Some(plane) = frame.data.get_mut(..stride * rows) {
            for top in 0..rows / 2 {
                // The bottom row `rows - 1 - top` starts `tail`; the top row is in `head`.
                let (head, tail) = plane.split_at_mut((rows - 1 - top) * stride);
                head[top * stride..][..stride].swap_with_slice(&mut tail[..stride]);
            }
        }
        Some(frame)
    }
}

export_handler!(Flip);

//! Video send-receive: returns every frame flipped vertically (rows in reverse order).

use wasmrtc_guest::*;

#[derive(Default)]
struct Flip;

impl Handler for Flip {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Video, Mode::SendReceive).video_format(PixelFormat::Rgb24)
    }

    fn on_video(&mut self, mut frame: VideoFrame) -> Option<VideoFrame> {
        let (w, h) = (frame.width as usize, frame.height as usize);
        match frame.format {
            // Packed formats: one plane of `h` rows of `w * 3` bytes.
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => flip_plane(&mut frame.data, w * 3, h),
            // I420: Y (`w * h`), then U and V (each `ceil(w/2) * ceil(h/2)`), each flipped on its own.
            PixelFormat::I420 => {
                let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                let y_len = (w * h).min(frame.data.len());
                let (y, chroma) = frame.data.split_at_mut(y_len);
                let (u, v) = chroma.split_at_mut((cw * ch).min(chroma.len()));
                flip_plane(y, w, h);
                flip_plane(u, cw, ch);
                flip_plane(v, cw, ch);
            }
        }
        Some(frame)
    }
}

/// Reverse the order of the first `rows` rows of `stride` bytes in `plane`, in place.
/// A plane shorter than `stride * rows` (a malformed frame) is left untouched.
fn flip_plane(plane: &mut [u8], stride: usize, rows: usize) {
    let Some(plane) = plane.get_mut(..stride * rows) else {
        return;
    };
    for top in 0..rows / 2 {
        // Everything from the bottom row on is in `tail`; the top row is in `head`.
        let (head, tail) = plane.split_at_mut((rows - 1 - top) * stride);
        head[top * stride..][..stride].swap_with_slice(&mut tail[..stride]);
    }
}

export_handler!(Flip);

//! Video send: emits the mean brightness of the client's video, at most 4 times a second.

use wasmrtc_guest::*;

/// Minimum time between two emitted values: 250 ms.
const PERIOD_US: u64 = 250_000;

#[derive(Default)]
struct Brightness {
    /// Timestamp of the frame last measured; `None` before the first frame.
    last_emit_us: Option<u64>,
}

impl Handler for Brightness {
    fn describe() -> StreamSpec {
        // I420 so that the first `width * height` bytes are the luma plane.
        StreamSpec::new(Modality::Video, Mode::Send)
            .video_format(PixelFormat::I420)
            .output(OutputSpec::new(
                "brightness",
                "Mean brightness (0-255)",
                OutputKind::Number,
            ))
    }

    fn on_video(&mut self, frame: VideoFrame) -> Option<VideoFrame> {
        let ts = frame.timestamp_us;
        // Also emit when time goes backwards (a restarted stream) rather than stall.
        let due = self
            .last_emit_us
            .is_none_or(|last| ts < last || ts >= last + PERIOD_US);
        if due && let Some(mean) = mean_luma(&frame) {
            self.last_emit_us = Some(ts);
            emit_outputs(&[Value::Number(mean)]);
        }
        None
    }
}

/// Mean luma (0..=255) of the frame, or `None` if it is empty or too short.
fn mean_luma(frame: &VideoFrame) -> Option<f64> {
    let pixels = frame.width as usize * frame.height as usize;
    let sum: u64 = match frame.format {
        PixelFormat::I420 => frame
            .data
            .get(..pixels)?
            .iter()
            .map(|&y| u64::from(y))
            .sum(),
        // In case the format is changed: BT.601 luma, weights scaled by 256.
        PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
            let (wr, wb) = match frame.format {
                PixelFormat::Rgb24 => (77, 29),
                _ => (29, 77),
            };
            let luma = |p: &[u8]| {
                (wr * u64::from(p[0]) + 150 * u64::from(p[1]) + wb * u64::from(p[2])) >> 8
            };
            frame
                .data
                .get(..pixels * 3)?
                .chunks_exact(3)
                .map(luma)
                .sum()
        }
    };
    (pixels > 0).then(|| sum as f64 / pixels as f64)
}

export_handler!(Brightness);

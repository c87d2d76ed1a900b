//! Video send: emits the mean brightness (0-255) of the caller's video, at most four
//! times a second. Nothing is sent back.

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
        // I420, so the first `width * height` bytes are the luma plane.
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
        let due = self
            .last_emit_us
            .is_none_or(|last| ts < last || ts >= last + PERIOD_US);
        let pixels = frame.width as usize * frame.height as usize;
        if due && pixels > 0 && let Some(luma) = frame.data.get(..pixels) {
            let sum: u64 = luma.iter().map(|&y| u64::from(y)).sum();
            self.last_emit_us = Some(ts);
            emit_outputs(&[Value::Number(sum as f64 / pixels as f64)]);
        }
        None
    }
}

export_handler!(Brightness);

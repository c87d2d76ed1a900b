//! Video receive: generates a grey ramp that scrolls left, at 15 fps, with a
//! "brightness" slider. The caller sends nothing.

use wasmrtc_guest::*;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const FPS: u32 = 15;

struct Ramp {
    brightness: f64,
    /// Frames generated so far.
    frame: u64,
}

impl Default for Ramp {
    fn default() -> Self {
        Ramp {
            brightness: 1.0,
            frame: 0,
        }
    }
}

impl Handler for Ramp {
    fn describe() -> StreamSpec {
        StreamSpec::new(Modality::Video, Mode::Receive)
            .video_format(PixelFormat::Rgb24)
            .fps(FPS)
            .input(InputSpec::slider(
                "brightness",
                "Brightness",
                0.0,
                1.0,
                0.05,
                1.0,
            ))
    }

    fn set_inputs(&mut self, values: Vec<Value>) {
        if let Some(b) = values.first().and_then(Value::as_f64) {
            self.brightness = b.clamp(0.0, 1.0);
        }
    }

    fn next_video(&mut self) -> Option<VideoFrame> {
        // One row, shifted 4 pixels per frame; every row is the same.
        let shift = self.frame as usize * 4;
        let row: Vec<u8> = (0..WIDTH as usize)
            .map(|x| ((x + shift) % 256) as f64 * self.brightness)
            .flat_map(|v| [v as u8; 3])
            .collect();
        let data = row.repeat(HEIGHT as usize);
        let timestamp_us = self.frame * 1_000_000 / u64::from(FPS);
        self.frame += 1;
        Some(VideoFrame {
            width: WIDTH,
            height: HEIGHT,
            format: PixelFormat::Rgb24,
            data,
            timestamp_us,
        })
    }
}

export_handler!(Ramp);

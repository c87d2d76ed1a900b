//! Video receive: generates colour bars (white, yellow, cyan, green, magenta, red,
//! blue, black) with a white line moving down, at 15 fps; a "brightness" slider scales
//! the picture. The client sends nothing.

use wasmrtc_guest::*;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const FPS: u32 = 15;
/// The bars, left to right (RGB).
const BARS: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

struct Bars {
    brightness: f64,
    /// Frames generated so far.
    frame: u64,
    /// One row of the bars at the current brightness (recomputed when it changes).
    row: Vec<u8>,
}

impl Default for Bars {
    fn default() -> Self {
        let mut bars = Bars {
            brightness: 1.0,
            frame: 0,
            row: Vec::new(),
        };
        bars.paint_row();
        bars
    }
}

impl Bars {
    fn paint_row(&mut self) {
        let bar_width = WIDTH as usize / BARS.len();
        self.row = (0..WIDTH as usize)
            .flat_map(|x| BARS[(x / bar_width).min(BARS.len() - 1)])
            .map(|c| (f64::from(c) * self.brightness).round() as u8)
            .collect();
    }
}

impl Handler for Bars {
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
            self.paint_row();
        }
    }

    fn next_video(&mut self) -> Option<VideoFrame> {
        let line = (self.frame * 4 % u64::from(HEIGHT)) as usize;
        let mut data = Vec::with_capacity(self.row.len() * HEIGHT as usize);
        for y in 0..HEIGHT as usize {
            if y == line || y == line + 1 {
                data.extend(std::iter::repeat_n(255, self.row.len()));
            } else {
                data.extend_from_slice(&self.row);
            }
        }
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

export_handler!(Bars);

//! Plain audio and video frame types passed between the network side and the handler.

use std::time::Duration;

use super::MediaError;

/// Largest picture side accepted, in pixels (VP8's limit; far above any WebRTC stream).
pub const MAX_PICTURE_SIDE: u32 = 16383;

/// A buffer of interleaved signed 16-bit PCM audio.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudioBuf {
    /// Samples per second, per channel.
    pub sample_rate: u32,
    /// Number of interleaved channels.
    pub channels: u8,
    /// Interleaved samples: frame 0 channel 0, frame 0 channel 1, frame 1 channel 0, ...
    pub samples: Vec<i16>,
}

impl AudioBuf {
    /// Wraps interleaved samples.
    pub fn new(sample_rate: u32, channels: u8, samples: Vec<i16>) -> Self {
        AudioBuf {
            sample_rate,
            channels,
            samples,
        }
    }

    /// A buffer of silence lasting `duration` (rounded down to whole frames).
    pub fn silence(sample_rate: u32, channels: u8, duration: Duration) -> Self {
        let frames = (duration.as_micros() * u128::from(sample_rate) / 1_000_000) as usize;
        AudioBuf::new(
            sample_rate,
            channels,
            vec![0; frames * usize::from(channels)],
        )
    }

    /// Number of frames (samples per channel); 0 if `channels` is 0.
    pub fn frames(&self) -> usize {
        match self.channels {
            0 => 0,
            ch => self.samples.len() / usize::from(ch),
        }
    }

    /// Whether the buffer holds no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Playing time of the buffer; zero if the rate or channel count is zero.
    pub fn duration(&self) -> Duration {
        frames_duration(self.frames(), self.sample_rate)
    }

    /// Peak absolute sample value.
    pub fn peak(&self) -> u16 {
        self.samples
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap_or(0)
    }

    /// Root-mean-square level, relative to full scale (0.0..=1.0).
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self
            .samples
            .iter()
            .map(|&s| {
                let x = f64::from(s) / 32768.0;
                x * x
            })
            .sum();
        (sum / self.samples.len() as f64).sqrt()
    }
}

/// Duration of `frames` samples per channel at `sample_rate`; zero if the rate is zero.
pub(crate) fn frames_duration(frames: usize, sample_rate: u32) -> Duration {
    if sample_rate == 0 {
        return Duration::ZERO;
    }
    let nanos = frames as u128 * 1_000_000_000 / u128::from(sample_rate);
    Duration::from_nanos(nanos as u64)
}

/// Layout of a [`Picture`]'s bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 8-bit R, G, B per pixel, rows top to bottom, no padding.
    Rgb24,
    /// Packed 8-bit B, G, R per pixel (OpenCV's order), rows top to bottom, no padding.
    Bgr24,
    /// Planar YUV 4:2:0, BT.601 limited range: the Y plane (`w*h`), then U, then V, each
    /// chroma plane `ceil(w/2) * ceil(h/2)`, no padding.
    I420,
}

impl PixelFormat {
    /// Bytes needed by a `width` x `height` picture in this format.
    pub fn len_for(self, width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => w * h * 3,
            PixelFormat::I420 => w * h + 2 * w.div_ceil(2) * h.div_ceil(2),
        }
    }
}

/// One video picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Layout of `data`.
    pub format: PixelFormat,
    /// Pixel bytes, exactly [`Picture::expected_len`] of them.
    pub data: Vec<u8>,
    /// Capture or presentation time, in microseconds on the stream's clock.
    pub timestamp_us: u64,
}

impl Picture {
    /// Builds a picture, checking that `data` has the length its size and format need.
    pub fn new(
        width: u32,
        height: u32,
        format: PixelFormat,
        data: Vec<u8>,
        timestamp_us: u64,
    ) -> Result<Self, MediaError> {
        let picture = Picture {
            width,
            height,
            format,
            data,
            timestamp_us,
        };
        picture.validate()?;
        Ok(picture)
    }

    /// A black picture (Y=16, U=V=128 in I420; zeros in RGB/BGR).
    pub fn black(width: u32, height: u32, format: PixelFormat, timestamp_us: u64) -> Self {
        let len = format.len_for(width, height);
        let data = match format {
            PixelFormat::I420 => {
                let luma = width as usize * height as usize;
                let mut d = vec![128u8; len];
                d[..luma].fill(16);
                d
            }
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => vec![0u8; len],
        };
        Picture {
            width,
            height,
            format,
            data,
            timestamp_us,
        }
    }

    /// Bytes this picture's size and format need.
    pub fn expected_len(&self) -> usize {
        self.format.len_for(self.width, self.height)
    }

    /// Checks the size (1..=[`MAX_PICTURE_SIDE`] each way) and the data length.
    pub fn validate(&self) -> Result<(), MediaError> {
        if self.width == 0
            || self.height == 0
            || self.width > MAX_PICTURE_SIDE
            || self.height > MAX_PICTURE_SIDE
        {
            return Err(MediaError::PictureSize {
                width: self.width,
                height: self.height,
            });
        }
        let expected = self.expected_len();
        if self.data.len() != expected {
            return Err(MediaError::PictureData {
                format: self.format,
                width: self.width,
                height: self.height,
                expected,
                actual: self.data.len(),
            });
        }
        Ok(())
    }

    /// The Y, U and V planes of an I420 picture; `None` for other formats or a bad length.
    pub fn planes(&self) -> Option<(&[u8], &[u8], &[u8])> {
        if self.format != PixelFormat::I420 || self.data.len() != self.expected_len() {
            return None;
        }
        let luma = self.width as usize * self.height as usize;
        let chroma = (self.width as usize).div_ceil(2) * (self.height as usize).div_ceil(2);
        let (y, rest) = self.data.split_at(luma);
        let (u, v) = rest.split_at(chroma);
        Some((y, u, v))
    }
}

/// One compressed video frame, as a codec produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The codec bitstream of the frame (VP8 frame, or H.264 access unit in Annex B form).
    pub data: Vec<u8>,
    /// Whether the frame decodes on its own (VP8 key frame, H.264 IDR/I frame).
    pub keyframe: bool,
    /// Timestamp of the source picture, in microseconds.
    pub timestamp_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_duration_and_frames() {
        let buf = AudioBuf::new(48_000, 2, vec![0; 960 * 2]);
        assert_eq!(buf.frames(), 960);
        assert_eq!(buf.duration(), Duration::from_millis(20));
        let silence = AudioBuf::silence(16_000, 1, Duration::from_millis(30));
        assert_eq!(silence.samples.len(), 480);
        assert_eq!(AudioBuf::default().duration(), Duration::ZERO);
    }

    #[test]
    fn picture_lengths() {
        assert_eq!(PixelFormat::I420.len_for(640, 480), 640 * 480 * 3 / 2);
        // Odd sizes round chroma up.
        assert_eq!(PixelFormat::I420.len_for(3, 3), 9 + 2 * 4);
        assert_eq!(PixelFormat::Rgb24.len_for(3, 3), 27);
        let pic = Picture::black(5, 3, PixelFormat::I420, 7);
        assert_eq!(pic.expected_len(), 15 + 2 * 6);
        pic.validate().unwrap();
        let (y, u, v) = pic.planes().unwrap();
        assert_eq!((y.len(), u.len(), v.len()), (15, 6, 6));
        assert!(y.iter().all(|&p| p == 16));
        assert!(Picture::new(4, 4, PixelFormat::Rgb24, vec![0; 47], 0).is_err());
        assert!(Picture::new(0, 4, PixelFormat::Rgb24, vec![], 0).is_err());
    }
}

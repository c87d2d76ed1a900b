//! The client's media, from files: audio as a live client's microphone would give it
//! (mono, resampled to the handler's input rate by the host's resampler, in frames of
//! at most 20 ms, as the WebSocket path cuts them), video as decoded pictures converted
//! to the handler's pixel format by the host's colour code. Each frame carries its
//! media time.

use std::time::Duration;

use super::wav::{WavError, WavIn};
use super::y4m::{Y4mError, Y4mIn};
use crate::media::{self, MediaError, Picture, Resampler};
use crate::runtime::{AudioFrame, PixelFormat, VideoFrame};
use crate::session::handler_frame;

/// One frame of the file: 20 ms.
const BLOCK: Duration = Duration::from_millis(20);

/// Why the client's media could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The WAV file.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// The y4m file.
    #[error(transparent)]
    Y4m(#[from] Y4mError),
    /// Resampling or colour conversion.
    #[error("{0}")]
    Media(#[from] MediaError),
}

/// Audio from a WAV file, then (for turn-taking) a stretch of silence.
#[derive(Debug)]
pub struct AudioSource {
    wav: WavIn,
    resampler: Resampler,
    /// Samples per 20 ms at the file's rate.
    block: usize,
    /// Samples per 20 ms at the handler's rate.
    chunk: usize,
    flushed: bool,
    /// Silence still to send after the file, in 20 ms frames.
    tail: u64,
    tail_sent: u64,
}

impl AudioSource {
    /// The audio of `wav` for a handler taking `rate` Hz, followed by `tail` of silence.
    pub fn new(wav: WavIn, rate: u32, tail: Duration) -> Result<Self, SourceError> {
        let resampler = Resampler::new(wav.rate(), rate, 1)?;
        Ok(Self {
            block: (wav.rate() / 50) as usize,
            chunk: (rate / 50).max(1) as usize,
            resampler,
            wav,
            flushed: false,
            tail: tail.as_millis().div_ceil(BLOCK.as_millis()) as u64,
            tail_sent: 0,
        })
    }

    /// Seconds of the file read.
    pub fn seconds_read(&self) -> f64 {
        self.wav.frames_read() as f64 / f64::from(self.wav.rate())
    }

    /// The media time of the next frames, or `None` when all are sent.
    pub fn peek(&self) -> Option<Duration> {
        let read = Duration::from_secs_f64(self.seconds_read());
        if self.wav.frames_left() > 0 || !self.flushed {
            Some(read)
        } else if self.tail_sent < self.tail {
            Some(read + BLOCK * self.tail_sent as u32)
        } else {
            None
        }
    }

    /// The next 20 ms of the file as handler frames (none while the resampler fills).
    pub fn next(&mut self) -> Result<Vec<AudioFrame>, SourceError> {
        let samples = if self.wav.frames_left() > 0 {
            let pcm = self.wav.read_mono(self.block)?;
            self.resampler.process(&pcm)?
        } else if !self.flushed {
            // The end of the file: what the resampler holds goes out too.
            self.flushed = true;
            self.resampler.flush()?
        } else {
            self.tail_sent += 1;
            vec![0; self.chunk]
        };
        let rate = self.resampler.to_rate();
        Ok(samples
            .chunks(self.chunk)
            .map(|c| AudioFrame {
                sample_rate: rate,
                channels: 1,
                samples: c.to_vec(),
            })
            .collect())
    }
}

/// Video from a y4m file.
#[derive(Debug)]
pub struct VideoSource {
    y4m: Y4mIn,
    /// Frames per second, as N:D.
    rate: (u32, u32),
    format: media::PixelFormat,
    /// The next frame, read ahead so the end is known.
    next: Option<Vec<u8>>,
    /// Its index.
    index: u64,
}

impl VideoSource {
    /// The frames of `y4m` at `rate` (the file's, or the spec's fps when it has
    /// none), for a handler taking `format`.
    pub fn new(mut y4m: Y4mIn, rate: (u32, u32), format: PixelFormat) -> Result<Self, SourceError> {
        let next = y4m.next_frame()?;
        Ok(Self {
            y4m,
            rate,
            format: match format {
                PixelFormat::Rgb24 => media::PixelFormat::Rgb24,
                PixelFormat::Bgr24 => media::PixelFormat::Bgr24,
                PixelFormat::I420 => media::PixelFormat::I420,
            },
            next,
            index: 0,
        })
    }

    /// The frame rate, as N:D.
    pub fn rate(&self) -> (u32, u32) {
        self.rate
    }

    /// Frames given so far.
    pub fn frames(&self) -> u64 {
        self.index
    }

    fn time_us(&self, index: u64) -> u64 {
        let (n, d) = (u128::from(self.rate.0), u128::from(self.rate.1));
        (u128::from(index) * 1_000_000 * d / n) as u64
    }

    /// The media time of the next frame, or `None` at the end.
    pub fn peek(&self) -> Option<Duration> {
        self.next
            .as_ref()
            .map(|_| Duration::from_micros(self.time_us(self.index)))
    }

    /// The next frame in the handler's format (`None` at the end).
    pub fn next(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        let Some(data) = self.next.take() else {
            return Ok(None);
        };
        let header = self.y4m.header();
        let ts = self.time_us(self.index);
        let picture = Picture::new(
            header.width,
            header.height,
            media::PixelFormat::I420,
            data,
            ts,
        )?
        .convert(self.format)?;
        self.index += 1;
        self.next = self.y4m.next_frame()?;
        Ok(Some(handler_frame(picture)))
    }
}

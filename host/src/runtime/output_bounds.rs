//! What a handler may hand the host to play or show.
//!
//! The host resamples, mixes down and encodes a handler's audio and video on the
//! handler's behalf, outside its CPU budget and memory cap, so what a call returns is
//! bounded here: audio at a rate within [`SAMPLE_RATES`], with 1 or 2 channels, and at
//! most [`MAX_FRAME`] of it per frame; pictures within [`MAX_PICTURE`] pixels a side
//! (either orientation). A frame past a bound ends the instance as `host-call-abuse`
//! (the client gets the `error` message) before the host does any of that work.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::{AudioFrame, VideoFrame};

/// Sample rates a handler's audio may have.
pub const SAMPLE_RATES: RangeInclusive<u32> = 8_000..=48_000;
/// Most channels of a handler's audio (the WIT's mono or stereo).
pub const MAX_CHANNELS: u8 = 2;
/// Most audio in one frame.
pub const MAX_FRAME: Duration = Duration::from_secs(1);
/// Largest handler picture: 3840x2160, in either orientation.
pub const MAX_PICTURE: (u32, u32) = (3840, 2160);

/// Why a handler's audio frame is refused, if it is.
pub fn check_audio(frame: &AudioFrame) -> Result<(), String> {
    if !SAMPLE_RATES.contains(&frame.sample_rate) {
        return Err(format!(
            "audio at {} Hz: the rate must be within 8000..=48000",
            frame.sample_rate
        ));
    }
    if !(1..=MAX_CHANNELS).contains(&frame.channels) {
        return Err(format!("audio with {} channels: 1 or 2", frame.channels));
    }
    let most =
        frame.sample_rate as u128 * u128::from(frame.channels) * MAX_FRAME.as_millis() / 1000;
    if frame.samples.len() as u128 > most {
        return Err(format!(
            "{} samples in one audio frame: at most {most} ({} s at {} Hz, {} channel(s))",
            frame.samples.len(),
            MAX_FRAME.as_secs_f64(),
            frame.sample_rate,
            frame.channels
        ));
    }
    Ok(())
}

/// Why a handler's picture is refused, if it is.
pub fn check_video(frame: &VideoFrame) -> Result<(), String> {
    let (long, short) = (frame.width.max(frame.height), frame.width.min(frame.height));
    if long > MAX_PICTURE.0 || short > MAX_PICTURE.1 {
        return Err(format!(
            "a {}x{} picture: at most {}x{} in either orientation",
            frame.width, frame.height, MAX_PICTURE.0, MAX_PICTURE.1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(sample_rate: u32, channels: u8, samples: usize) -> AudioFrame {
        AudioFrame {
            sample_rate,
            channels,
            samples: vec![0; samples],
        }
    }

    #[test]
    fn handler_audio_within_the_bounds_passes_and_past_them_does_not() {
        for ok in [
            audio(8_000, 1, 160),
            audio(48_000, 2, 96_000),
            audio(44_100, 1, 44_100),
            audio(24_000, 1, 0),
        ] {
            assert_eq!(check_audio(&ok), Ok(()), "{} Hz", ok.sample_rate);
        }
        for bad in [
            audio(7_999, 1, 160),
            audio(48_001, 1, 960),
            audio(1_000_000, 1, 20),
            audio(48_000, 0, 0),
            audio(48_000, 3, 960 * 3),
            audio(48_000, 1, 48_001),
            audio(8_000, 2, 16_001),
        ] {
            assert!(
                check_audio(&bad).is_err(),
                "{} Hz x{}",
                bad.sample_rate,
                bad.channels
            );
        }
    }
}

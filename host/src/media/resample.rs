//! Streaming sample-rate conversion (rubato's FFT resampler) and channel-count conversion.

use std::time::Duration;

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

use super::MediaError;
use super::frame::frames_duration;

fn resample_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Resample(e.to_string())
}

/// Converts interleaved i16 audio from one sample rate to another, chunk by chunk.
///
/// Accepts input of any length: samples that do not fill a processing block (10 ms of
/// input) are kept until the next call. Output is time-aligned with the input (the
/// filter's start-up delay is dropped), so after [`Resampler::flush`] the total output is
/// `input_frames * to_rate / from_rate` frames, rounded. When both rates are equal it is a
/// passthrough with no delay.
pub struct Resampler {
    from_rate: u32,
    to_rate: u32,
    channels: u8,
    /// `None` when the rates are equal.
    engine: Option<Engine>,
}

struct Engine {
    fft: Fft<f32>,
    /// Input frames per block.
    chunk_in: usize,
    /// Interleaved input not yet resampled (may end with a partial frame).
    pending: Vec<f32>,
    /// Interleaved output scratch for one block.
    out: Vec<f32>,
    /// The resampler's delay, in output frames.
    delay: usize,
    /// Output frames still to discard at the start of the stream.
    skip: usize,
    /// Input samples (all channels) received since the last reset.
    samples_in: u64,
    /// Output frames emitted since the last reset.
    frames_out: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from_rate", &self.from_rate)
            .field("to_rate", &self.to_rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Resampler {
    /// Creates a resampler from `from_rate` to `to_rate` Hz for `channels` interleaved channels.
    pub fn new(from_rate: u32, to_rate: u32, channels: u8) -> Result<Self, MediaError> {
        if channels == 0 {
            return Err(MediaError::UnsupportedChannels(channels));
        }
        for rate in [from_rate, to_rate] {
            if !(1_000..=768_000).contains(&rate) {
                return Err(MediaError::UnsupportedSampleRate(rate));
            }
        }
        let engine = if from_rate == to_rate {
            None
        } else {
            let ch = usize::from(channels);
            // Blocks of about 10 ms of input: half a 20 ms stream frame, so a frame is
            // resampled as soon as it arrives, with a filter delay of 5 ms. (10 ms blocks keep
            // the passband flat to 0.87 x Nyquist and alias rejection beyond 140 dB.)
            let hint = (from_rate as usize / 100).max(1);
            let fft = Fft::<f32>::new(
                from_rate as usize,
                to_rate as usize,
                hint,
                ch,
                FixedSync::Both,
            )
            .map_err(resample_err)?;
            let chunk_in = fft.input_frames_next();
            let delay = fft.output_delay();
            let out = vec![0.0; fft.output_frames_max() * ch];
            Some(Engine {
                fft,
                chunk_in,
                pending: Vec::with_capacity(chunk_in * ch * 2),
                out,
                delay,
                skip: delay,
                samples_in: 0,
                frames_out: 0,
            })
        };
        Ok(Resampler {
            from_rate,
            to_rate,
            channels,
            engine,
        })
    }

    /// Input sample rate.
    pub fn from_rate(&self) -> u32 {
        self.from_rate
    }

    /// Output sample rate.
    pub fn to_rate(&self) -> u32 {
        self.to_rate
    }

    /// Number of interleaved channels.
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Whether this resampler only copies (equal rates).
    pub fn is_passthrough(&self) -> bool {
        self.engine.is_none()
    }

    /// Worst-case latency: one block of input waiting to fill, plus the filter delay.
    pub fn latency(&self) -> Duration {
        match &self.engine {
            None => Duration::ZERO,
            Some(e) => {
                frames_duration(e.chunk_in, self.from_rate) + frames_duration(e.delay, self.to_rate)
            }
        }
    }

    /// Resamples interleaved `input` (any length) and returns the interleaved output ready so
    /// far.
    pub fn process(&mut self, input: &[i16]) -> Result<Vec<i16>, MediaError> {
        let ch = usize::from(self.channels);
        let Some(e) = &mut self.engine else {
            return Ok(input.to_vec());
        };
        e.samples_in += input.len() as u64;
        e.pending
            .extend(input.iter().map(|&s| f32::from(s) * (1.0 / 32768.0)));
        let mut result = Vec::with_capacity(
            (input.len() as u64 * u64::from(self.to_rate) / u64::from(self.from_rate)) as usize
                + ch * 16,
        );
        while e.pending.len() >= e.chunk_in * ch {
            e.run_block(ch, &mut result)?;
        }
        Ok(result)
    }

    /// Ends the stream: resamples what is still queued (padding with silence) and returns the
    /// rest of the output, then resets for a new stream.
    pub fn flush(&mut self) -> Result<Vec<i16>, MediaError> {
        let ch = usize::from(self.channels);
        let (from, to) = (u64::from(self.from_rate), u64::from(self.to_rate));
        let Some(e) = &mut self.engine else {
            return Ok(Vec::new());
        };
        let frames_in = e.samples_in / ch as u64;
        let expected_total = (frames_in * to + from / 2) / from;
        let mut result = Vec::new();
        // Drop a trailing partial frame, then pad to whole blocks until the output catches up.
        e.pending.truncate(e.pending.len() / ch * ch);
        while e.frames_out < expected_total {
            let want = e.chunk_in * ch;
            if e.pending.len() < want {
                e.pending.resize(want, 0.0);
            }
            e.run_block(ch, &mut result)?;
        }
        let surplus = e.frames_out.saturating_sub(expected_total) as usize;
        result.truncate(result.len().saturating_sub(surplus * ch));
        self.reset();
        Ok(result)
    }

    /// Drops all queued audio and filter state (e.g. on barge-in or a stream restart).
    pub fn reset(&mut self) {
        if let Some(e) = &mut self.engine {
            e.fft.reset();
            e.pending.clear();
            e.skip = e.delay;
            e.samples_in = 0;
            e.frames_out = 0;
        }
    }
}

impl Engine {
    /// Resamples one block from the front of `pending`, appending output to `result`.
    fn run_block(&mut self, ch: usize, result: &mut Vec<i16>) -> Result<(), MediaError> {
        let input = InterleavedSlice::new(&self.pending[..self.chunk_in * ch], ch, self.chunk_in)
            .map_err(resample_err)?;
        let out_frames = self.out.len() / ch;
        let mut output =
            InterleavedSlice::new_mut(&mut self.out[..], ch, out_frames).map_err(resample_err)?;
        let (used, produced) = self
            .fft
            .process_into_buffer(&input, &mut output, None)
            .map_err(resample_err)?;
        self.pending.drain(..used * ch);
        let skip = self.skip.min(produced);
        self.skip -= skip;
        let fresh = &self.out[skip * ch..produced * ch];
        result.extend(
            fresh
                .iter()
                .map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
        self.frames_out += (produced - skip) as u64;
        Ok(())
    }
}

/// Converts interleaved audio between channel counts.
///
/// Mono to N copies the channel; N to mono averages the channels; any other change maps
/// output channel `c` to input channel `c % from_ch`. A trailing partial frame is dropped.
pub fn channels_convert(samples: &[i16], from_ch: u8, to_ch: u8) -> Vec<i16> {
    let (from, to) = (usize::from(from_ch), usize::from(to_ch));
    if from == 0 || to == 0 {
        return Vec::new();
    }
    if from == to {
        return samples[..samples.len() / from * from].to_vec();
    }
    let frames = samples.chunks_exact(from);
    let mut out = Vec::with_capacity(frames.len() * to);
    if to == 1 {
        out.extend(frames.map(|f| {
            let sum: i32 = f.iter().map(|&s| i32::from(s)).sum();
            (sum / from as i32) as i16
        }));
    } else {
        for f in frames {
            out.extend((0..to).map(|c| f[c % from]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::AudioBuf;
    use crate::media::test_util::{channel, dominant_frequency, sine};

    /// Feeds `input` through `r` in awkward chunk sizes, then flushes.
    fn run_chunked(r: &mut Resampler, input: &[i16], chunk: usize) -> Vec<i16> {
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            out.extend(r.process(c).unwrap());
        }
        out.extend(r.flush().unwrap());
        out
    }

    #[test]
    fn down_and_up_keeps_tone_and_length() {
        let input = sine(440.0, 48_000, 1, 48_000, 0.5);
        let mut down = Resampler::new(48_000, 24_000, 1).unwrap();
        let mut up = Resampler::new(24_000, 48_000, 1).unwrap();
        let mid = run_chunked(&mut down, &input, 317);
        assert!(mid.len().abs_diff(24_000) <= 2, "mid {} samples", mid.len());
        let out = run_chunked(&mut up, &mid, 1_001);
        assert!(out.len().abs_diff(48_000) <= 4, "out {} samples", out.len());

        let f_mid = dominant_frequency(&mid, 24_000);
        let f_out = dominant_frequency(&out, 48_000);
        assert!((f_mid - 440.0).abs() < 0.5, "mid tone {f_mid} Hz");
        assert!((f_out - 440.0).abs() < 0.5, "out tone {f_out} Hz");

        // Level and alignment: the body of the output matches the input closely.
        let body = 4_800..43_200;
        let rms_in = AudioBuf::new(48_000, 1, input[body.clone()].to_vec()).rms();
        let rms_out = AudioBuf::new(48_000, 1, out[body.clone()].to_vec()).rms();
        assert!(
            (rms_out / rms_in - 1.0).abs() < 0.02,
            "{rms_out} vs {rms_in}"
        );
        let err: f64 = body
            .clone()
            .map(|i| (f64::from(out[i]) - f64::from(input[i])).powi(2))
            .sum::<f64>()
            / body.len() as f64;
        let snr = 10.0 * (rms_in.powi(2) * 32768f64.powi(2) / err).log10();
        assert!(snr > 40.0, "round-trip SNR {snr:.1} dB");
    }

    #[test]
    fn stereo_and_incremental_output() {
        let input = sine(1_000.0, 48_000, 2, 4_800, 0.4);
        let mut r = Resampler::new(48_000, 16_000, 2).unwrap();
        // Feeding 20 ms frames yields output as it goes (no waiting for a flush).
        let mut out = Vec::new();
        let mut produced_per_call = Vec::new();
        for frame in input.chunks(1_920) {
            let o = r.process(frame).unwrap();
            produced_per_call.push(o.len());
            out.extend(o);
        }
        assert!(produced_per_call[1..].iter().all(|&n| n > 0));
        out.extend(r.flush().unwrap());
        assert_eq!(out.len(), 1_600 * 2);
        let left = channel(&out, 2, 0);
        let f = dominant_frequency(&left[200..], 16_000);
        assert!((f - 1_000.0).abs() < 1.0, "{f} Hz");
        assert_eq!(channel(&out, 2, 0), channel(&out, 2, 1));
    }

    #[test]
    fn passthrough_and_odd_rates() {
        let mut same = Resampler::new(16_000, 16_000, 1).unwrap();
        assert!(same.is_passthrough());
        assert_eq!(same.process(&[1, 2, 3]).unwrap(), vec![1, 2, 3]);
        assert_eq!(same.latency(), Duration::ZERO);

        let input = sine(300.0, 44_100, 1, 44_100 / 2, 0.5);
        let mut r = Resampler::new(44_100, 48_000, 1).unwrap();
        let out = run_chunked(&mut r, &input, 441);
        assert!(out.len().abs_diff(24_000) <= 2, "{}", out.len());
        assert!(r.latency() < Duration::from_millis(40));
        assert!(Resampler::new(0, 48_000, 1).is_err());
        assert!(Resampler::new(48_000, 16_000, 0).is_err());
    }

    #[test]
    fn channel_conversion() {
        assert_eq!(channels_convert(&[1, 2, 3], 1, 2), vec![1, 1, 2, 2, 3, 3]);
        assert_eq!(channels_convert(&[10, 20, -4, 4, 7], 2, 1), vec![15, 0]);
        assert_eq!(channels_convert(&[5, 6], 2, 2), vec![5, 6]);
        assert_eq!(
            channels_convert(&[i16::MAX, i16::MAX], 2, 1),
            vec![i16::MAX]
        );
        assert!(channels_convert(&[1, 2], 0, 1).is_empty());
    }
}

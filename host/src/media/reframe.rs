//! Re-chunking of interleaved audio into exact fixed-duration frames (20 ms by default).

use std::collections::VecDeque;
use std::time::Duration;

use super::frame::frames_duration;

/// Accumulates interleaved samples of any chunk size and pops frames of exactly
/// [`Reframer::frame_len`] samples (20 ms unless built with [`Reframer::with_frame_ms`]).
#[derive(Debug, Clone)]
pub struct Reframer {
    sample_rate: u32,
    channels: u8,
    frame_len: usize,
    queue: VecDeque<i16>,
}

impl Reframer {
    /// A reframer producing 20 ms frames: `sample_rate / 50 * channels` samples each.
    pub fn new(sample_rate: u32, channels: u8) -> Self {
        Self::with_frame_ms(sample_rate, channels, 20)
    }

    /// A reframer producing `frame_ms` millisecond frames (at least one frame of samples).
    pub fn with_frame_ms(sample_rate: u32, channels: u8, frame_ms: u32) -> Self {
        let frames = (u64::from(sample_rate) * u64::from(frame_ms) / 1_000).max(1) as usize;
        Reframer {
            sample_rate,
            channels,
            frame_len: frames * usize::from(channels.max(1)),
            queue: VecDeque::new(),
        }
    }

    /// Sample rate of the audio.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Number of interleaved channels.
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Samples (all channels) in one output frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Duration of one output frame.
    pub fn frame_duration(&self) -> Duration {
        frames_duration(
            self.frame_len / usize::from(self.channels.max(1)),
            self.sample_rate,
        )
    }

    /// Appends interleaved samples.
    pub fn push(&mut self, samples: &[i16]) {
        self.queue.extend(samples);
    }

    /// Removes and returns the next whole frame, if one is queued.
    pub fn pop(&mut self) -> Option<Vec<i16>> {
        if self.queue.len() < self.frame_len {
            return None;
        }
        Some(self.queue.drain(..self.frame_len).collect())
    }

    /// Like [`Reframer::pop`], but if less than a frame is queued (and anything at all is),
    /// returns it padded with silence to a whole frame. For the end of a stream.
    pub fn pop_padded(&mut self) -> Option<Vec<i16>> {
        if self.queue.is_empty() {
            return None;
        }
        if let Some(frame) = self.pop() {
            return Some(frame);
        }
        let mut frame: Vec<i16> = self.queue.drain(..).collect();
        frame.resize(self.frame_len, 0);
        Some(frame)
    }

    /// Samples (all channels) queued.
    pub fn queued_samples(&self) -> usize {
        self.queue.len()
    }

    /// Playing time of the queued samples (whole frames only).
    pub fn queued_duration(&self) -> Duration {
        frames_duration(
            self.queue.len() / usize::from(self.channels.max(1)),
            self.sample_rate,
        )
    }

    /// Whether at least one whole frame is queued.
    pub fn has_frame(&self) -> bool {
        self.queue.len() >= self.frame_len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Drops everything queued (e.g. when the user interrupts playback).
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_exact_20ms_frames_from_any_chunks() {
        let mut r = Reframer::new(48_000, 2);
        assert_eq!(r.frame_len(), 1_920);
        assert_eq!(r.frame_duration(), Duration::from_millis(20));
        let input: Vec<i16> = (0..10_000).map(|i| (i % 30_000) as i16).collect();
        let mut frames = Vec::new();
        for chunk in input.chunks(777) {
            r.push(chunk);
            while let Some(f) = r.pop() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 10_000 / 1_920);
        assert!(frames.iter().all(|f| f.len() == 1_920));
        // Order and content preserved.
        let joined: Vec<i16> = frames.concat();
        assert_eq!(joined[..], input[..joined.len()]);
        let left = 10_000 - frames.len() * 1_920;
        assert_eq!(r.queued_samples(), left);
        assert!(r.queued_duration() < Duration::from_millis(20));
        assert!(!r.has_frame());

        let last = r.pop_padded().unwrap();
        assert_eq!(last.len(), 1_920);
        assert_eq!(last[..left], input[input.len() - left..]);
        assert!(last[left..].iter().all(|&s| s == 0));
        assert!(r.pop_padded().is_none());
    }

    #[test]
    fn durations_and_clear() {
        let mut r = Reframer::new(16_000, 1);
        assert_eq!(r.frame_len(), 320);
        r.push(&[0; 800]);
        assert_eq!(r.queued_duration(), Duration::from_millis(50));
        assert!(r.pop().is_some());
        assert!(r.pop().is_some());
        assert!(r.pop().is_none());
        assert_eq!(r.queued_duration(), Duration::from_millis(10));
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.queued_duration(), Duration::ZERO);
        assert_eq!(Reframer::with_frame_ms(8_000, 1, 10).frame_len(), 80);
    }
}

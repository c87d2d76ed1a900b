//! Audio queued for playback to a client: handler frames of any rate and channel
//! count, turned to mono at the wire's rate and cut into 20 ms frames.

use std::time::Duration;

use crate::media::{MediaError, Reframer, Resampler, channels_convert};
use crate::runtime::AudioFrame;

/// One playback frame.
pub(crate) const FRAME: Duration = Duration::from_millis(20);

/// The playback queue of one connection.
pub(crate) struct Playback {
    rate: u32,
    resampler: Option<Resampler>,
    queue: Reframer,
}

impl Playback {
    /// An empty queue playing at `rate`.
    pub(crate) fn new(rate: u32) -> Self {
        Self {
            rate,
            resampler: None,
            queue: Reframer::new(rate, 1),
        }
    }

    /// Whether less than one frame is queued, so the handler should be asked for more.
    pub(crate) fn wants_audio(&self) -> bool {
        self.queue.queued_duration() < FRAME
    }

    /// Queue handler audio of any rate and channel count.
    pub(crate) fn push(&mut self, frame: AudioFrame) -> Result<(), MediaError> {
        if frame.sample_rate == 0 || frame.channels == 0 {
            return Ok(());
        }
        let mono = if frame.channels == 1 {
            frame.samples
        } else {
            channels_convert(&frame.samples, frame.channels, 1)
        };
        if self.resampler.as_ref().map(Resampler::from_rate) != Some(frame.sample_rate) {
            self.resampler = Some(Resampler::new(frame.sample_rate, self.rate, 1)?);
        }
        let resampled = match &mut self.resampler {
            Some(r) => r.process(&mono)?,
            None => mono,
        };
        self.queue.push(&resampled);
        Ok(())
    }

    /// Drop everything queued (barge-in).
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
    }

    /// The end of a stretch of audio (a reply): what the resampler still holds is
    /// queued, and the last partial frame is padded with silence, so all of it plays.
    pub(crate) fn finish(&mut self) -> Result<(), MediaError> {
        if let Some(r) = &mut self.resampler {
            let tail = r.flush()?;
            self.queue.push(&tail);
        }
        let frame = self.queue.frame_len();
        let partial = self.queue.queued_samples() % frame;
        if partial != 0 {
            self.queue.push(&vec![0; frame - partial]);
        }
        Ok(())
    }

    /// The next whole frame, if one is queued.
    pub(crate) fn pop(&mut self) -> Option<Vec<i16>> {
        self.queue.pop()
    }

    /// Samples per frame.
    pub(crate) fn frame_len(&self) -> usize {
        self.queue.frame_len()
    }

    /// Samples queued.
    pub(crate) fn queued_samples(&self) -> usize {
        self.queue.queued_samples()
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

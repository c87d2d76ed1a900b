//! Opus decoding of RTP payloads and encoding of 20 ms frames, at 48 kHz (WebRTC's Opus clock).

use super::{AudioBuf, MediaError};

/// Sample rate of everything this module decodes and encodes.
pub const OPUS_RATE: u32 = 48_000;
/// Samples per channel in one 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES_20MS: usize = 960;
/// Samples per channel in the longest Opus packet (120 ms at 48 kHz).
const MAX_PACKET_SAMPLES: usize = 5_760;
/// Output buffer size for one encoded packet; libopus recommends 4000 bytes.
const MAX_PACKET_BYTES: usize = 4_000;

fn opus_channels(channels: u8) -> Result<::opus::Channels, MediaError> {
    match channels {
        1 => Ok(::opus::Channels::Mono),
        2 => Ok(::opus::Channels::Stereo),
        other => Err(MediaError::UnsupportedChannels(other)),
    }
}

/// Decodes Opus RTP payloads to interleaved 48 kHz PCM.
pub struct OpusDecoder {
    inner: ::opus::Decoder,
    channels: u8,
    /// Scratch output, large enough for the longest packet.
    scratch: Vec<i16>,
    /// Samples per channel of the last packet decoded, used to size concealment.
    last_frames: usize,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("channels", &self.channels)
            .field("last_frames", &self.last_frames)
            .finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// Creates a decoder producing `channels` (1 or 2) channels, whatever the packets carry.
    pub fn new(channels: u8) -> Result<Self, MediaError> {
        let inner = ::opus::Decoder::new(OPUS_RATE, opus_channels(channels)?)?;
        Ok(OpusDecoder {
            inner,
            channels,
            scratch: vec![0; MAX_PACKET_SAMPLES * usize::from(channels)],
            last_frames: FRAME_SAMPLES_20MS,
        })
    }

    /// Channels of the decoded audio.
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Decodes one RTP payload; `None` means the packet was lost, and produces packet-loss
    /// concealment as long as the previous packet.
    pub fn decode(&mut self, payload: Option<&[u8]>) -> Result<AudioBuf, MediaError> {
        match payload {
            Some(p) if !p.is_empty() => self.run(p, MAX_PACKET_SAMPLES, false),
            // An empty payload carries nothing either: conceal.
            _ => self.run(&[], self.last_frames, false),
        }
    }

    /// Recovers a lost packet from the in-band forward error correction carried by the
    /// packet that followed it (`next_payload`), when the sender enabled FEC; otherwise
    /// libopus falls back to concealment. Decode `next_payload` normally afterwards.
    pub fn decode_fec(&mut self, next_payload: &[u8]) -> Result<AudioBuf, MediaError> {
        self.run(next_payload, self.last_frames, true)
    }

    /// Clears the decoder's state, e.g. when the stream restarts.
    pub fn reset(&mut self) -> Result<(), MediaError> {
        self.inner.reset_state()?;
        Ok(())
    }

    fn run(&mut self, input: &[u8], frames: usize, fec: bool) -> Result<AudioBuf, MediaError> {
        let ch = usize::from(self.channels);
        let out = &mut self.scratch[..frames * ch];
        let decoded = self.inner.decode(input, out, fec)?;
        if !input.is_empty() && !fec {
            self.last_frames = decoded.clamp(1, MAX_PACKET_SAMPLES);
        }
        Ok(AudioBuf::new(
            OPUS_RATE,
            self.channels,
            self.scratch[..decoded * ch].to_vec(),
        ))
    }
}

/// Opus encoder tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Application {
    /// Speech: best intelligibility at low bitrates (the default).
    Voip,
    /// Music and general audio.
    Audio,
    /// Lowest algorithmic delay, CELT only.
    LowDelay,
}

/// Settings of an [`OpusEncoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Target bitrate in bit/s; `None` means 32 kbit/s per channel.
    pub bitrate_bps: Option<u32>,
    /// Encoder complexity 0..=10 (higher: better quality, more CPU).
    pub complexity: u8,
    /// Signal tuning.
    pub application: Application,
    /// Send in-band forward error correction (useful with `packet_loss_perc` > 0).
    pub inband_fec: bool,
    /// Expected packet loss in percent, 0..=100; drives how much FEC is sent.
    pub packet_loss_perc: u8,
    /// Discontinuous transmission: send almost nothing during silence.
    pub dtx: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bitrate_bps: None,
            complexity: 5,
            application: Application::Voip,
            inband_fec: false,
            packet_loss_perc: 0,
            dtx: false,
        }
    }
}

/// Encodes 20 ms frames of 48 kHz interleaved PCM to Opus packets (one RTP payload each).
pub struct OpusEncoder {
    inner: ::opus::Encoder,
    channels: u8,
    settings: Settings,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("channels", &self.channels)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// Creates an encoder for `channels` (1 or 2) channels.
    pub fn new(channels: u8, settings: Settings) -> Result<Self, MediaError> {
        if settings.complexity > 10 {
            return Err(MediaError::Setting(format!(
                "opus complexity {} (0..=10)",
                settings.complexity
            )));
        }
        if settings.packet_loss_perc > 100 {
            return Err(MediaError::Setting(format!(
                "opus packet loss {}% (0..=100)",
                settings.packet_loss_perc
            )));
        }
        let application = match settings.application {
            Application::Voip => ::opus::Application::Voip,
            Application::Audio => ::opus::Application::Audio,
            Application::LowDelay => ::opus::Application::LowDelay,
        };
        let mut inner = ::opus::Encoder::new(OPUS_RATE, opus_channels(channels)?, application)?;
        let bitrate = settings
            .bitrate_bps
            .unwrap_or(32_000 * u32::from(channels))
            .clamp(6_000, 510_000);
        inner.set_bitrate(::opus::Bitrate::Bits(bitrate as i32))?;
        inner.set_complexity(i32::from(settings.complexity))?;
        inner.set_inband_fec(settings.inband_fec)?;
        inner.set_packet_loss_perc(i32::from(settings.packet_loss_perc))?;
        inner.set_dtx(settings.dtx)?;
        Ok(OpusEncoder {
            inner,
            channels,
            settings,
            scratch: vec![0; MAX_PACKET_BYTES],
        })
    }

    /// Channels of the input audio.
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// Samples (all channels) in the one frame size accepted: 20 ms at 48 kHz.
    pub fn frame_len(&self) -> usize {
        FRAME_SAMPLES_20MS * usize::from(self.channels)
    }

    /// Changes the target bitrate (bit/s) on the fly.
    pub fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<(), MediaError> {
        let bitrate = bitrate_bps.clamp(6_000, 510_000);
        self.inner
            .set_bitrate(::opus::Bitrate::Bits(bitrate as i32))?;
        self.settings.bitrate_bps = Some(bitrate);
        Ok(())
    }

    /// Encodes exactly one 20 ms frame ([`OpusEncoder::frame_len`] interleaved samples).
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, MediaError> {
        if pcm.len() != self.frame_len() {
            return Err(MediaError::FrameLength {
                expected: self.frame_len(),
                actual: pcm.len(),
            });
        }
        let n = self.inner.encode(pcm, &mut self.scratch)?;
        Ok(self.scratch[..n].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_util::{dominant_frequency, sine};

    #[test]
    fn round_trip_keeps_a_1khz_tone() {
        let mut enc = OpusEncoder::new(1, Settings::default()).unwrap();
        let mut dec = OpusDecoder::new(1).unwrap();
        let input = sine(1_000.0, 48_000, 1, 48_000, 0.5); // 1 s at half scale
        let mut output = Vec::new();
        let mut bytes = 0;
        for frame in input.chunks_exact(enc.frame_len()) {
            let packet = enc.encode(frame).unwrap();
            bytes += packet.len();
            let pcm = dec.decode(Some(&packet)).unwrap();
            assert_eq!(pcm.samples.len(), 960);
            assert_eq!(pcm.sample_rate, 48_000);
            output.extend_from_slice(&pcm.samples);
        }
        assert_eq!(output.len(), input.len());
        // ~32 kbit/s for one second, with generous slack for rate control.
        assert!((2_000..6_000).contains(&bytes), "{bytes} bytes in 1 s");
        // Skip the codec's start-up (look-ahead and ramp) before measuring.
        let steady = AudioBuf::new(48_000, 1, output[9_600..].to_vec());
        let freq = dominant_frequency(&steady.samples, 48_000);
        assert!((freq - 1_000.0).abs() < 5.0, "measured {freq} Hz");
        let level = steady.rms();
        let expected = 0.5 / 2f64.sqrt();
        assert!(
            (level - expected).abs() < expected * 0.2,
            "rms {level}, expected about {expected}"
        );
    }

    #[test]
    fn stereo_and_concealment() {
        let mut enc = OpusEncoder::new(2, Settings::default()).unwrap();
        let mut dec = OpusDecoder::new(2).unwrap();
        let input = sine(440.0, 48_000, 2, 9_600, 0.3);
        let mut last = AudioBuf::default();
        for frame in input.chunks_exact(enc.frame_len()) {
            let packet = enc.encode(frame).unwrap();
            last = dec.decode(Some(&packet)).unwrap();
        }
        assert_eq!(last.channels, 2);
        assert_eq!(last.samples.len(), 1_920);
        // A lost packet is concealed with 20 ms of plausible (non-silent) audio.
        let plc = dec.decode(None).unwrap();
        assert_eq!(plc.samples.len(), 1_920);
        assert!(plc.rms() > 0.01, "concealment rms {}", plc.rms());
        // Without FEC in the stream, decode_fec still yields a 20 ms frame.
        let next = enc.encode(&input[..1_920]).unwrap();
        assert_eq!(dec.decode_fec(&next).unwrap().samples.len(), 1_920);
    }

    #[test]
    fn rejects_bad_input() {
        let mut enc = OpusEncoder::new(1, Settings::default()).unwrap();
        assert!(matches!(
            enc.encode(&[0; 480]),
            Err(MediaError::FrameLength {
                expected: 960,
                actual: 480
            })
        ));
        assert!(OpusEncoder::new(3, Settings::default()).is_err());
        let bad = Settings {
            complexity: 11,
            ..Settings::default()
        };
        assert!(OpusEncoder::new(1, bad).is_err());
        let mut dec = OpusDecoder::new(1).unwrap();
        // A corrupted packet is an error, not a panic.
        assert!(dec.decode(Some(&[0xff, 0xff, 0xff])).is_err());
    }
}

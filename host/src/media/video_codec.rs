//! VP8 and H.264 behind one name: the codec, a decoder and an encoder of either, for
//! code that follows whichever codec a connection negotiated.

use std::fmt;
use std::str::FromStr;

use super::{
    EncodedFrame, H264Decoder, H264Encoder, H264Settings, MediaError, Picture, Vp8Decoder,
    Vp8Encoder, Vp8Settings, h264, vp8,
};

/// A video codec the host decodes and encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VideoCodec {
    /// VP8 (RFC 7741), whole frames.
    #[default]
    Vp8,
    /// H.264 (RFC 6184), whole access units in Annex B form.
    H264,
}

impl VideoCodec {
    /// Whether an encoded frame (an Annex B access unit for H.264) decodes on its own.
    pub fn is_keyframe(self, frame: &[u8]) -> bool {
        match self {
            VideoCodec::Vp8 => vp8::is_keyframe(frame),
            VideoCodec::H264 => h264::is_keyframe(frame),
        }
    }

    /// The lower-case name: `vp8` or `h264`.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::H264 => "h264",
        }
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for VideoCodec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "vp8" => Ok(VideoCodec::Vp8),
            "h264" | "h.264" => Ok(VideoCodec::H264),
            _ => Err(format!("unknown video codec {s:?} (vp8 or h264)")),
        }
    }
}

/// A decoder of either codec, producing I420 pictures.
#[derive(Debug)]
pub enum VideoDecoder {
    /// VP8 frames.
    Vp8(Vp8Decoder),
    /// H.264 access units.
    H264(H264Decoder),
}

impl VideoDecoder {
    /// A decoder of `codec`.
    pub fn new(codec: VideoCodec) -> Result<Self, MediaError> {
        Ok(match codec {
            VideoCodec::Vp8 => VideoDecoder::Vp8(Vp8Decoder::new()?),
            VideoCodec::H264 => VideoDecoder::H264(H264Decoder::new()?),
        })
    }

    /// The codec it decodes.
    pub fn codec(&self) -> VideoCodec {
        match self {
            VideoDecoder::Vp8(_) => VideoCodec::Vp8,
            VideoDecoder::H264(_) => VideoCodec::H264,
        }
    }

    /// Decode one frame; the picture, if it completes one, carries `timestamp_us`. A
    /// corrupt frame, or one whose reference is missing, is an error: ask for a key frame.
    pub fn decode(
        &mut self,
        frame: &[u8],
        timestamp_us: u64,
    ) -> Result<Option<Picture>, MediaError> {
        match self {
            VideoDecoder::Vp8(d) => d.decode(frame, timestamp_us),
            VideoDecoder::H264(d) => d.decode(frame, timestamp_us),
        }
    }
}

/// What both encoders share; each codec keeps its own defaults for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSettings {
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Nominal frame rate.
    pub fps: u32,
    /// Maximum frames between key frames.
    pub keyframe_interval: u32,
    /// libvpx `cpu-used` for VP8 (-16..=16; higher magnitude is faster, lower quality).
    pub vp8_cpu_used: i32,
}

impl Default for VideoSettings {
    fn default() -> Self {
        let vp8 = Vp8Settings::default();
        VideoSettings {
            bitrate_kbps: vp8.bitrate_kbps,
            fps: vp8.fps,
            keyframe_interval: vp8.keyframe_interval,
            vp8_cpu_used: vp8.cpu_used,
        }
    }
}

/// An encoder of either codec; it follows the size of the pictures it is given.
#[derive(Debug)]
pub enum VideoEncoder {
    /// libvpx.
    Vp8(Vp8Encoder),
    /// OpenH264 (its state is large, hence the box).
    H264(Box<H264Encoder>),
}

impl VideoEncoder {
    /// An encoder of `codec` for `width` x `height` pictures.
    pub fn new(
        codec: VideoCodec,
        width: u32,
        height: u32,
        s: VideoSettings,
    ) -> Result<Self, MediaError> {
        Ok(match codec {
            VideoCodec::Vp8 => VideoEncoder::Vp8(Vp8Encoder::new(
                width,
                height,
                Vp8Settings {
                    bitrate_kbps: s.bitrate_kbps,
                    fps: s.fps,
                    keyframe_interval: s.keyframe_interval,
                    cpu_used: s.vp8_cpu_used,
                    ..Vp8Settings::default()
                },
            )?),
            VideoCodec::H264 => VideoEncoder::H264(Box::new(H264Encoder::new(
                width,
                height,
                H264Settings {
                    bitrate_kbps: s.bitrate_kbps,
                    fps: s.fps,
                    keyframe_interval: s.keyframe_interval,
                    ..H264Settings::default()
                },
            )?)),
        })
    }

    /// Make the next frame a key frame.
    pub fn force_keyframe(&mut self) {
        match self {
            VideoEncoder::Vp8(e) => e.force_keyframe(),
            VideoEncoder::H264(e) => e.force_keyframe(),
        }
    }

    /// Encode one picture (any pixel format; converted to I420 when needed): VP8
    /// frames, or one Annex B access unit; none when rate control drops the picture.
    pub fn encode(&mut self, picture: &Picture) -> Result<Vec<EncodedFrame>, MediaError> {
        match self {
            VideoEncoder::Vp8(e) => e.encode(picture),
            VideoEncoder::H264(e) => e.encode(picture),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::PixelFormat;

    #[test]
    fn either_codec_round_trips_and_tells_its_keyframes() {
        for codec in [VideoCodec::Vp8, VideoCodec::H264] {
            let mut enc = VideoEncoder::new(codec, 320, 240, VideoSettings::default()).unwrap();
            let mut dec = VideoDecoder::new(codec).unwrap();
            assert_eq!(dec.codec(), codec);
            let mut keys = Vec::new();
            for i in 0..3u64 {
                if i == 2 {
                    enc.force_keyframe();
                }
                let grey = vec![(40 + 60 * i) as u8; 320 * 240 * 3];
                let picture = Picture::new(320, 240, PixelFormat::Rgb24, grey, i).unwrap();
                for f in enc.encode(&picture).unwrap() {
                    keys.push(codec.is_keyframe(&f.data));
                    let p = dec.decode(&f.data, i).unwrap().expect("a picture");
                    assert_eq!((p.width, p.height, p.format), (320, 240, PixelFormat::I420));
                }
            }
            assert_eq!(keys, [true, false, true], "{codec}");
            assert_eq!(codec.name().parse::<VideoCodec>(), Ok(codec));
        }
        assert!("av1".parse::<VideoCodec>().is_err());
    }
}

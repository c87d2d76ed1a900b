//! Video between the wire and the handler: VP8 frames or H.264 access units ↔ pictures
//! in the handler's format.

use crate::media::{
    self, H264Decoder, H264Encoder, H264Settings, MediaError, Picture, Vp8Decoder, Vp8Encoder,
    Vp8Settings,
};
use crate::runtime::{PixelFormat, VideoFrame};

fn to_media(format: PixelFormat) -> media::PixelFormat {
    match format {
        PixelFormat::Rgb24 => media::PixelFormat::Rgb24,
        PixelFormat::Bgr24 => media::PixelFormat::Bgr24,
        PixelFormat::I420 => media::PixelFormat::I420,
    }
}

fn to_runtime(format: media::PixelFormat) -> PixelFormat {
    match format {
        media::PixelFormat::Rgb24 => PixelFormat::Rgb24,
        media::PixelFormat::Bgr24 => PixelFormat::Bgr24,
        media::PixelFormat::I420 => PixelFormat::I420,
    }
}

/// A handler frame as a media picture.
pub(crate) fn picture(frame: VideoFrame) -> Picture {
    Picture {
        width: frame.width,
        height: frame.height,
        format: to_media(frame.format),
        data: frame.data,
        timestamp_us: frame.timestamp_us,
    }
}

/// A media picture as a handler frame.
pub(crate) fn frame(p: Picture) -> VideoFrame {
    VideoFrame {
        width: p.width,
        height: p.height,
        format: to_runtime(p.format),
        data: p.data,
        timestamp_us: p.timestamp_us,
    }
}

/// A video codec a session decodes and encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoCodec {
    /// VP8 (RFC 7741), whole frames.
    Vp8,
    /// H.264 (RFC 6184), whole access units in Annex B form.
    H264,
}

impl VideoCodec {
    /// The codec of a negotiated payload type, if the session speaks it.
    pub(crate) fn of(codec: str0m::format::Codec) -> Option<Self> {
        match codec {
            str0m::format::Codec::Vp8 => Some(Self::Vp8),
            str0m::format::Codec::H264 => Some(Self::H264),
            _ => None,
        }
    }

    fn is_keyframe(self, data: &[u8]) -> bool {
        match self {
            Self::Vp8 => media::vp8::is_keyframe(data),
            Self::H264 => media::h264::is_keyframe(data),
        }
    }
}

/// A decoder of either codec.
enum Decoder {
    Vp8(Vp8Decoder),
    H264(H264Decoder),
}

impl Decoder {
    fn new(codec: VideoCodec) -> Result<Self, MediaError> {
        Ok(match codec {
            VideoCodec::Vp8 => Self::Vp8(Vp8Decoder::new()?),
            VideoCodec::H264 => Self::H264(H264Decoder::new()?),
        })
    }

    fn decode(&mut self, data: &[u8], timestamp_us: u64) -> Result<Option<Picture>, MediaError> {
        match self {
            Self::Vp8(d) => d.decode(data, timestamp_us),
            Self::H264(d) => d.decode(data, timestamp_us),
        }
    }
}

/// Client video to handler frames.
pub(crate) struct VideoIn {
    /// The decoder of the codec the client sends, made on its first frame.
    decoder: Option<(VideoCodec, Decoder)>,
    format: PixelFormat,
    waiting_keyframe: bool,
}

/// What one received frame gave.
pub(crate) enum Decoded {
    /// A picture in the handler's format.
    Frame(VideoFrame),
    /// Nothing to show (yet).
    Nothing,
    /// The decoder lost track: ask the sender for a keyframe.
    NeedKeyframe,
}

impl VideoIn {
    pub(crate) fn new(format: PixelFormat) -> Self {
        Self {
            decoder: None,
            format,
            waiting_keyframe: true,
        }
    }

    /// Decode one frame (VP8) or access unit (H.264).
    pub(crate) fn decode(
        &mut self,
        codec: VideoCodec,
        data: &[u8],
        contiguous: bool,
        timestamp_us: u64,
    ) -> Result<Decoded, MediaError> {
        if self.decoder.as_ref().map(|(c, _)| *c) != Some(codec) {
            // The first frame, or the client switched codecs: start over at a keyframe.
            self.decoder = Some((codec, Decoder::new(codec)?));
            self.waiting_keyframe = true;
        }
        let key = codec.is_keyframe(data);
        if !contiguous && !key {
            self.waiting_keyframe = true;
        }
        if self.waiting_keyframe && !key {
            return Ok(Decoded::NeedKeyframe);
        }
        let (_, decoder) = self.decoder.as_mut().expect("made above");
        Ok(match decoder.decode(data, timestamp_us) {
            Ok(Some(p)) => {
                self.waiting_keyframe = false;
                match p.convert(to_media(self.format)) {
                    Ok(p) => Decoded::Frame(frame(p)),
                    Err(_) => Decoded::Nothing,
                }
            }
            Ok(None) => Decoded::Nothing,
            Err(_) => {
                self.waiting_keyframe = true;
                Decoded::NeedKeyframe
            }
        })
    }
}

/// An encoder of either codec, made on the first frame; both follow size changes.
/// (OpenH264's encoder state is large, hence the box.)
enum Encoder {
    Vp8(Option<Vp8Encoder>, Vp8Settings),
    H264(Option<Box<H264Encoder>>, H264Settings),
}

/// Handler frames to the client's codec.
pub(crate) struct VideoOut {
    encoder: Encoder,
    keyframe: bool,
}

impl VideoOut {
    pub(crate) fn new(codec: VideoCodec, fps: u32) -> Self {
        let encoder = match codec {
            VideoCodec::Vp8 => Encoder::Vp8(
                None,
                Vp8Settings {
                    fps,
                    ..Vp8Settings::default()
                },
            ),
            VideoCodec::H264 => Encoder::H264(
                None,
                H264Settings {
                    fps,
                    ..H264Settings::default()
                },
            ),
        };
        Self {
            encoder,
            keyframe: false,
        }
    }

    /// The client asked for a keyframe.
    pub(crate) fn force_keyframe(&mut self) {
        self.keyframe = true;
    }

    /// Encode a handler frame.
    pub(crate) fn encode(&mut self, frame: VideoFrame) -> Result<Vec<Vec<u8>>, MediaError> {
        let p = picture(frame).convert(media::PixelFormat::I420)?;
        let size = (p.width, p.height);
        let keyframe = std::mem::take(&mut self.keyframe);
        let frames = match &mut self.encoder {
            Encoder::Vp8(encoder, settings) => {
                if encoder.as_ref().map(Vp8Encoder::size) != Some(size) {
                    *encoder = Some(Vp8Encoder::new(size.0, size.1, *settings)?);
                }
                let encoder = encoder.as_mut().expect("made above");
                if keyframe {
                    encoder.force_keyframe();
                }
                encoder.encode(&p)?
            }
            Encoder::H264(encoder, settings) => {
                let encoder = match encoder {
                    Some(e) => e,
                    None => encoder.insert(Box::new(H264Encoder::new(size.0, size.1, *settings)?)),
                };
                if keyframe {
                    encoder.force_keyframe();
                }
                encoder.encode(&p)?
            }
        };
        Ok(frames.into_iter().map(|f| f.data).collect())
    }
}

//! Video between the wire and the handler: VP8 frames or H.264 access units ↔ pictures
//! in the handler's format.

use crate::media::{
    self, MediaError, Picture, VideoCodec, VideoDecoder, VideoEncoder, VideoSettings,
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

/// The codec of a negotiated payload type, if the session speaks it.
pub(crate) fn codec_of(codec: str0m::format::Codec) -> Option<VideoCodec> {
    match codec {
        str0m::format::Codec::Vp8 => Some(VideoCodec::Vp8),
        str0m::format::Codec::H264 => Some(VideoCodec::H264),
        _ => None,
    }
}

/// The largest client picture decoded by default (either orientation).
pub const DEFAULT_MAX_PICTURE: MaxPicture = MaxPicture {
    width: 1920,
    height: 1080,
};

/// The largest client picture a stream decodes: a picture fits when its longer side
/// fits the longer side here and its area fits this area (so portrait fits too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPicture {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl MaxPicture {
    /// Whether a `width` x `height` picture fits.
    pub fn fits(&self, width: u32, height: u32) -> bool {
        width.max(height) <= self.width.max(self.height)
            && u64::from(width) * u64::from(height)
                <= u64::from(self.width) * u64::from(self.height)
    }
}

/// Client video to handler frames.
pub(crate) struct VideoIn {
    /// The decoder of the codec the client sends, made on its first frame.
    decoder: Option<VideoDecoder>,
    format: PixelFormat,
    waiting_keyframe: bool,
    max: MaxPicture,
}

/// What one received frame gave.
pub(crate) enum Decoded {
    /// A picture in the handler's format.
    Frame(VideoFrame),
    /// Nothing to show (yet).
    Nothing,
    /// The decoder lost track: ask the sender for a keyframe.
    NeedKeyframe,
    /// A keyframe announcing a picture larger than the stream's maximum: dropped
    /// before decoding (the decoder then waits for another keyframe).
    TooLarge {
        /// Width it announced.
        width: u32,
        /// Height it announced.
        height: u32,
    },
}

impl VideoIn {
    pub(crate) fn new(format: PixelFormat, max: MaxPicture) -> Self {
        Self {
            decoder: None,
            format,
            waiting_keyframe: true,
            max,
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
        if self.decoder.as_ref().map(VideoDecoder::codec) != Some(codec) {
            // The first frame, or the client switched codecs: start over at a keyframe.
            self.decoder = Some(VideoDecoder::new(codec)?);
            self.waiting_keyframe = true;
        }
        let key = codec.is_keyframe(data);
        if !contiguous && !key {
            self.waiting_keyframe = true;
        }
        if self.waiting_keyframe && !key {
            return Ok(Decoded::NeedKeyframe);
        }
        if key {
            // The size is read from the bitstream's header before the decoder sees it;
            // a keyframe whose size cannot be read is left to the decoder (and the
            // decoded picture is checked again below).
            let size = match codec {
                VideoCodec::Vp8 => media::vp8::keyframe_size(data),
                VideoCodec::H264 => media::h264::sps_size(data),
            };
            if let Some((width, height)) = size.filter(|&(w, h)| !self.max.fits(w, h)) {
                self.waiting_keyframe = true;
                return Ok(Decoded::TooLarge { width, height });
            }
        }
        let decoder = self.decoder.as_mut().expect("made above");
        Ok(match decoder.decode(data, timestamp_us) {
            Ok(Some(p)) if !self.max.fits(p.width, p.height) => {
                self.waiting_keyframe = true;
                Decoded::TooLarge {
                    width: p.width,
                    height: p.height,
                }
            }
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

/// Handler frames to the client's codec.
pub(crate) struct VideoOut {
    codec: VideoCodec,
    settings: VideoSettings,
    /// Made on the first frame (at its size); it follows size changes.
    encoder: Option<VideoEncoder>,
    keyframe: bool,
}

impl VideoOut {
    /// An encoder of `codec` at `fps`, VP8 at libvpx speed `vp8_cpu_used`.
    pub(crate) fn new(codec: VideoCodec, fps: u32, vp8_cpu_used: i32) -> Self {
        Self {
            codec,
            settings: VideoSettings {
                fps,
                vp8_cpu_used,
                ..VideoSettings::default()
            },
            encoder: None,
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
        let encoder = match &mut self.encoder {
            Some(e) => e,
            None => self.encoder.insert(VideoEncoder::new(
                self.codec,
                p.width,
                p.height,
                self.settings,
            )?),
        };
        if std::mem::take(&mut self.keyframe) {
            encoder.force_keyframe();
        }
        Ok(encoder.encode(&p)?.into_iter().map(|f| f.data).collect())
    }
}

/// Run codec work (video decode, encode, colour conversion) on the codec pool, off the
/// runtime's worker threads; `None` when it could not run (the pool is full, or the
/// job panicked).
pub(crate) fn offload<R: Send + 'static>(
    job: impl FnOnce() -> R + Send + 'static,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<R>> + Send>> {
    Box::pin(async move { media::CodecPool::global().run(job).await.ok() })
}

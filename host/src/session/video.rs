//! Video between the wire and the handler: VP8 frames ↔ pictures in the handler's format.

use crate::media::{self, MediaError, Picture, Vp8Decoder, Vp8Encoder, Vp8Settings};
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

/// Client VP8 to handler frames.
pub(crate) struct VideoIn {
    decoder: Vp8Decoder,
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
    pub(crate) fn new(format: PixelFormat) -> Result<Self, MediaError> {
        Ok(Self {
            decoder: Vp8Decoder::new()?,
            format,
            waiting_keyframe: true,
        })
    }

    /// Decode one VP8 frame.
    pub(crate) fn decode(&mut self, data: &[u8], contiguous: bool, timestamp_us: u64) -> Decoded {
        let key = media::vp8::is_keyframe(data);
        if !contiguous && !key {
            self.waiting_keyframe = true;
        }
        if self.waiting_keyframe && !key {
            return Decoded::NeedKeyframe;
        }
        match self.decoder.decode(data, timestamp_us) {
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
        }
    }
}

/// Handler frames to VP8.
pub(crate) struct VideoOut {
    encoder: Option<Vp8Encoder>,
    settings: Vp8Settings,
    keyframe: bool,
}

impl VideoOut {
    pub(crate) fn new(fps: u32) -> Self {
        Self {
            encoder: None,
            settings: Vp8Settings {
                fps,
                ..Vp8Settings::default()
            },
            keyframe: false,
        }
    }

    /// The client asked for a keyframe.
    pub(crate) fn force_keyframe(&mut self) {
        self.keyframe = true;
    }

    /// Encode a handler frame; the encoder follows size changes.
    pub(crate) fn encode(&mut self, frame: VideoFrame) -> Result<Vec<Vec<u8>>, MediaError> {
        let p = picture(frame).convert(media::PixelFormat::I420)?;
        let fits = self.encoder.as_ref().map(Vp8Encoder::size) == Some((p.width, p.height));
        if !fits {
            self.encoder = Some(Vp8Encoder::new(p.width, p.height, self.settings)?);
        }
        let encoder = self.encoder.as_mut().expect("encoder was just created");
        if std::mem::take(&mut self.keyframe) {
            encoder.force_keyframe();
        }
        Ok(encoder.encode(&p)?.into_iter().map(|f| f.data).collect())
    }
}

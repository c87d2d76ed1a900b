//! Media processing between the network and the handler: codecs (Opus, VP8, H.264, and
//! either video codec as one), resampling, reframing and pixel-format conversion. Knows
//! nothing of WebRTC or of WebAssembly.

pub mod color;
pub mod error;
pub mod frame;
pub mod h264;
pub mod mulaw;
pub mod opus;
pub mod pool;
pub mod reframe;
pub mod resample;
#[cfg(test)]
pub(crate) mod test_util;
pub mod video_codec;
pub mod vp8;

pub use self::error::MediaError;
pub use self::frame::{AudioBuf, EncodedFrame, MAX_PICTURE_SIDE, Picture, PixelFormat};
pub use self::h264::{H264Decoder, H264Encoder, Settings as H264Settings};
pub use self::opus::{
    Application as OpusApplication, OPUS_RATE, OpusDecoder, OpusEncoder, Settings as OpusSettings,
};
pub use self::pool::{CodecPool, PoolError, PoolStats};
pub use self::reframe::Reframer;
pub use self::resample::{Resampler, channels_convert};
pub use self::video_codec::{VideoCodec, VideoDecoder, VideoEncoder, VideoSettings};
pub use self::vp8::{Settings as Vp8Settings, Vp8Decoder, Vp8Encoder};
